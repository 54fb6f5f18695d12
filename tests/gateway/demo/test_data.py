"""The synthetic demo databases: deterministic, consistent across ministries, portable."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from spean.gateway.demo import data as demo_data
from spean.gateway.demo.data import (
    SAMPLE_CITIZEN,
    SAMPLE_FACILITY,
    SAMPLE_HEALTH_CENTRE,
    SAMPLE_OWNER_PLATES,
    SAMPLE_OWNER_WITH_VEHICLES,
    SAMPLE_PLATE,
    SAMPLE_REPORT_MONTH,
    SAMPLE_UNINSPECTED_PLATE,
)


def dump(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_schema WHERE type='table'")]
        return [
            (table, *row)
            for table in sorted(tables)
            for row in db.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3")
        ]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("demo")
    demo_data.install_demo_services(folder)
    return {service.database: folder / service.database for service in demo_data.DEMO_SERVICES}


def test_the_same_seed_builds_the_same_databases(built: dict[str, Path], tmp_path: Path) -> None:
    for name, create in (
        ("moi-idreg.db", demo_data.create_moi_database),
        ("mpwt-vehicles.db", demo_data.create_mpwt_database),
        ("moh-nhis.db", demo_data.create_moh_database),
    ):
        again = tmp_path / name
        create(again)
        assert dump(again) == dump(built[name])


def test_rebuilding_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "moi.db"
    path.write_bytes(b"left over from something else")
    demo_data.create_moi_database(path)
    demo_data.create_moi_database(str(path))  # a plain string path works too
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM citizens").fetchone() == (demo_data.CITIZEN_COUNT,)


def test_citizens_are_plausible_and_include_the_sample(built: dict[str, Path]) -> None:
    with sqlite3.connect(built["moi-idreg.db"]) as db:
        rows = db.execute(
            "SELECT id_number, full_name, sex, birth_date, card_issued_on, card_expires_on"
            " FROM citizens"
        ).fetchall()
        sample = db.execute(
            "SELECT full_name, birth_date FROM citizens WHERE id_number = ?",
            (SAMPLE_CITIZEN.id_number,),
        ).fetchone()
    assert len(rows) == demo_data.CITIZEN_COUNT
    assert sample == (SAMPLE_CITIZEN.full_name, SAMPLE_CITIZEN.birth_date)
    for id_number, name, sex, born, issued, expires in rows:
        assert len(id_number) == 9
        assert id_number.isdigit()
        assert len(name.split()) == 2
        assert sex in ("female", "male")
        assert born < issued < expires
        assert int(expires[:4]) - int(issued[:4]) == 10


def test_vehicle_owners_are_citizens_and_some_own_several(built: dict[str, Path]) -> None:
    with sqlite3.connect(built["moi-idreg.db"]) as db:
        citizens = {row[0] for row in db.execute("SELECT id_number FROM citizens")}
    with sqlite3.connect(built["mpwt-vehicles.db"]) as db:
        owners = dict(db.execute("SELECT owner_id, count(*) FROM vehicles GROUP BY owner_id"))
        plates = [row[0] for row in db.execute(
            "SELECT plate FROM vehicles WHERE owner_id = ? ORDER BY plate",
            (SAMPLE_OWNER_WITH_VEHICLES,),
        )]  # fmt: skip
        total = db.execute("SELECT count(*) FROM vehicles").fetchone()[0]
        types = {row[0] for row in db.execute("SELECT DISTINCT vehicle_type FROM vehicles")}
    assert total == demo_data.VEHICLE_COUNT
    assert set(owners) <= citizens  # the demo can chain MPWT -> MOI calls
    assert sum(1 for count in owners.values() if count > 1) >= 10
    assert tuple(plates) == SAMPLE_OWNER_PLATES
    assert SAMPLE_PLATE in plates
    assert SAMPLE_UNINSPECTED_PLATE in plates
    assert types == {"motorcycle", "car", "pickup", "truck", "bus", "tuk_tuk"}


def test_sample_nulls_are_null(built: dict[str, Path]) -> None:
    with sqlite3.connect(built["mpwt-vehicles.db"]) as db:
        assert db.execute(
            "SELECT engine_cc, last_inspection FROM vehicles WHERE plate = ?",
            (SAMPLE_UNINSPECTED_PLATE,),
        ).fetchone() == (None, None)
    year, month = SAMPLE_REPORT_MONTH
    with sqlite3.connect(built["moh-nhis.db"]) as db:
        rates = dict(db.execute(
            "SELECT facility_id, bed_occupancy_rate FROM monthly_reports"
            " WHERE report_year = ? AND report_month = ?",
            (year, month),
        ))  # fmt: skip
        reports = db.execute("SELECT count(*) FROM monthly_reports").fetchone()[0]
    assert rates[SAMPLE_HEALTH_CENTRE] is None
    assert 0.5 < rates[SAMPLE_FACILITY] < 1.2
    assert reports == 12 * 24  # twelve facilities, two years


def test_install_copies_the_mappings_beside_their_databases(tmp_path: Path) -> None:
    installed = demo_data.install_demo_services(tmp_path / "demo")
    assert set(installed) == {"KH/GOV/MOI/idreg", "KH/GOV/MPWT/vehicles", "KH/GOV/MOH/nhis"}
    for service in demo_data.DEMO_SERVICES:
        mapping = installed[service.subsystem]
        assert mapping.read_text() == (demo_data.MAPPING_DIR / service.mapping).read_text()
        assert f"sqlite:///{service.database}" in mapping.read_text()
        assert (mapping.parent / service.database).stat().st_size > 0


def count_rows(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("citizens", "vehicles", "facilities", "monthly_reports")
        }


def load_all(engine: Engine) -> None:
    demo_data.create_moi_database(engine)
    demo_data.create_mpwt_database(engine)
    demo_data.create_moh_database(engine)


EXPECTED = {
    "citizens": demo_data.CITIZEN_COUNT,
    "vehicles": demo_data.VEHICLE_COUNT,
    "facilities": 12,
    "monthly_reports": 288,
}


def test_loads_into_any_engine_and_reloads_cleanly(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'all.db'}")
    try:
        load_all(engine)
        load_all(engine)  # again: tables dropped and refilled, not doubled
        assert count_rows(engine) == EXPECTED
    finally:
        engine.dispose()


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    """A private schema, so concurrent runs on one server do not meet."""
    schema = f"demo_{secrets.token_hex(4)}"
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = create_engine(postgres_url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def mariadb_engine(mariadb_url: str) -> Iterator[Engine]:
    database = f"demo_{secrets.token_hex(4)}"
    admin = create_engine(mariadb_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {database}"))
    engine = create_engine(mariadb_url.rsplit("/", 1)[0] + f"/{database}")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE {database}"))
        admin.dispose()


@pytest.mark.postgres
def test_loads_into_postgresql(postgres_engine: Engine) -> None:
    load_all(postgres_engine)
    assert count_rows(postgres_engine) == EXPECTED
    with postgres_engine.connect() as conn:
        born = conn.execute(
            text("SELECT birth_date FROM citizens WHERE id_number = :id"),
            {"id": SAMPLE_CITIZEN.id_number},
        ).scalar_one()
    assert born.isoformat() == SAMPLE_CITIZEN.birth_date


@pytest.mark.mariadb
def test_loads_into_mariadb(mariadb_engine: Engine) -> None:
    load_all(mariadb_engine)
    assert count_rows(mariadb_engine) == EXPECTED
    with mariadb_engine.connect() as conn:
        plates = conn.execute(
            text("SELECT plate FROM vehicles WHERE owner_id = :owner ORDER BY plate"),
            {"owner": SAMPLE_OWNER_WITH_VEHICLES},
        ).scalars()
        assert tuple(plates) == SAMPLE_OWNER_PLATES
