"""The SQL adapter suite that runs unchanged on SQLite, PostgreSQL and MariaDB.

Each test takes `backend` (tests/adapters/conftest.py, made by
tests/support/databases.py): a fresh database per module and engine, loaded
with the demo registries and a `sample` table of every column type. What
differs between engines is only the SQL a test needs to be slow; everything
the adapter promises is asserted the same way.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from spean.adapters import (
    ConfigError,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from spean.adapters.sql import SqlAdapter
from spean.demo.health.v1 import health_pb2
from spean.demo.identity.v1 import identity_pb2
from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.data import (
    SAMPLE_CITIZEN,
    SAMPLE_OWNER_PLATES,
    SAMPLE_OWNER_WITH_VEHICLES,
    SAMPLE_PLATE,
    SAMPLE_REPORT_MONTH,
    SAMPLE_UNINSPECTED_PLATE,
)
from tests.support.databases import Backend
from tests.support.sql_adapter import call, get_vehicle, running

VEHICLE = "/vehicles.v1.VehicleRegistry/GetVehicle"
BY_OWNER = "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner"
VERIFY = "/identity.v1.IdentityRegistry/VerifyCitizen"
REPORT = "/health.v1.FacilityStats/GetMonthlyReport"
STREAM = "/fleettest.v1.Fleet/Stream"
FIND = "/fleettest.v1.Fleet/Find"
# 320 x 320 x 320 rows, produced lazily by every engine: a stream that never ends by itself.
ENDLESS = "SELECT a.plate FROM vehicles AS a, vehicles AS b, vehicles AS c"
SLOW = {
    "sqlite": "SELECT plate FROM vehicles WHERE plate = :plate AND (WITH RECURSIVE n(i) AS"
    " (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) SELECT max(i) FROM n) > 0",
    "postgres": "SELECT plate FROM vehicles WHERE plate = :plate"
    " AND (SELECT 1 FROM pg_sleep(30)) = 1",
    "mariadb": "SELECT plate FROM vehicles WHERE plate = :plate AND SLEEP(30) = 0",
}


def demo_mapping(backend: Backend, folder: Path, name: str, **database: Any) -> Path:
    """A demo mapping pointed at `backend` instead of its SQLite file."""
    document = yaml.safe_load((demo_data.MAPPING_DIR / name).read_text())
    document["database"] = {"url": backend.url, **database}
    path = folder / name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def fleet_mapping(backend: Backend, folder: Path, methods: dict[str, Any], **database: Any) -> Path:
    document = {
        "service": "fleettest.v1.Fleet",
        "descriptor": "fleettest.v1.fleet_pb2",
        "database": {"url": backend.url, **database},
        "timezone": "Asia/Phnom_Penh",
        "methods": methods,
    }
    path = folder / "fleet.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mappings")


@pytest.fixture(scope="module")
def vehicles(backend: Backend, folder: Path) -> Iterator[SqlAdapter]:
    with running(demo_mapping(backend, folder, "mpwt-vehicles.yaml")) as adapter:
        yield adapter


def count_vehicles(backend: Backend) -> int:
    with backend.admin.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM vehicles")).scalar_one())


# --------------------------------------------------------------------------- demo services


def test_get_vehicle_converts_every_demo_column(vehicles: SqlAdapter) -> None:
    vehicle = get_vehicle(vehicles, SAMPLE_PLATE)

    assert vehicle.plate == SAMPLE_PLATE
    assert vehicle.type == vehicles_pb2.VEHICLE_TYPE_CAR  # stored as "car"
    assert (vehicle.make, vehicle.model, vehicle.year) == ("Toyota", "Camry", 2012)
    assert vehicle.engine_cc == 2500
    assert vehicle.registration_date.ToDatetime(tzinfo=UTC) == datetime(2013, 3, 15, tzinfo=UTC)
    # A naive date-time is Phnom Penh time (UTC+7), as the mapping's timezone says.
    assert vehicle.last_inspection.ToDatetime(tzinfo=UTC) == datetime(2024, 9, 3, 3, 30, tzinfo=UTC)
    assert vehicle.tax_status == vehicles_pb2.TAX_STATUS_PAID


def test_null_columns_leave_fields_unset(vehicles: SqlAdapter) -> None:
    vehicle = get_vehicle(vehicles, SAMPLE_UNINSPECTED_PLATE)
    assert not vehicle.HasField("last_inspection")
    assert not vehicle.HasField("engine_cc")
    assert vehicle.HasField("registration_date")


def test_unknown_plate_is_not_found(vehicles: SqlAdapter) -> None:
    with pytest.raises(NotFound) as caught:
        get_vehicle(vehicles, "9Z-0000")
    assert caught.value.message == "no result for GetVehicle with the given request"


@pytest.mark.parametrize(
    "plate",
    [
        "x' OR '1'='1",
        f"{SAMPLE_PLATE}'; DROP TABLE vehicles; --",
        f"{SAMPLE_PLATE}\x00",
        "' UNION SELECT plate, vehicle_type FROM vehicles --",
        '"; DELETE FROM vehicles; --',
        "x" * 100_000,
    ],
)
def test_request_values_are_bound_never_spliced(
    vehicles: SqlAdapter, backend: Backend, plate: str
) -> None:
    # PostgreSQL refuses a NUL byte in text outright: the caller's value, not the
    # statement, is at fault. Every other engine looks it up and finds nothing.
    with pytest.raises((NotFound, InvalidArgument)) as caught:
        get_vehicle(vehicles, plate)
    for secret in ("SELECT", "FROM vehicles", "NUL", "0x00", "PostgreSQL"):
        assert secret not in caught.value.message

    assert count_vehicles(backend) == demo_data.VEHICLE_COUNT
    assert get_vehicle(vehicles, SAMPLE_PLATE).plate == SAMPLE_PLATE


def test_stream_yields_every_vehicle_of_the_owner(vehicles: SqlAdapter) -> None:
    request = vehicles_pb2.ListVehiclesByOwnerRequest(owner_id=SAMPLE_OWNER_WITH_VEHICLES)
    items = vehicles.stream(call(BY_OWNER), request.SerializeToString())
    assert tuple(vehicles_pb2.Vehicle.FromString(i).plate for i in items) == SAMPLE_OWNER_PLATES

    empty = vehicles_pb2.ListVehiclesByOwnerRequest(owner_id="000000000")
    assert list(vehicles.stream(call(BY_OWNER), empty.SerializeToString())) == []


def test_closing_a_stream_early_returns_its_connection(vehicles: SqlAdapter) -> None:
    request = vehicles_pb2.ListVehiclesByOwnerRequest(owner_id=SAMPLE_OWNER_WITH_VEHICLES)
    messages = vehicles.stream(call(BY_OWNER), request.SerializeToString())
    pool = vehicles._engine.pool  # type: ignore[union-attr]
    before = pool.checkedout()  # type: ignore[attr-defined]

    next(messages)
    assert pool.checkedout() == before + 1  # type: ignore[attr-defined]
    messages.close()  # what the security server does when the caller goes away
    assert pool.checkedout() == before  # type: ignore[attr-defined]
    assert get_vehicle(vehicles, SAMPLE_PLATE).plate == SAMPLE_PLATE


def test_identity_and_health_services_answer(backend: Backend, folder: Path) -> None:
    with running(demo_mapping(backend, folder, "moi-idreg.yaml")) as identity:
        sample = SAMPLE_CITIZEN

        def verify(name: str, born: str) -> bool:
            request = identity_pb2.VerifyCitizenRequest(
                id_number=sample.id_number, full_name=name, birth_date=born
            )
            reply = identity.unary(call(VERIFY), request.SerializeToString())
            return bool(identity_pb2.VerifyCitizenResponse.FromString(reply).match)

        assert verify(sample.full_name.upper(), sample.birth_date)
        assert not verify(sample.full_name, "1986-04-18")

    with running(demo_mapping(backend, folder, "moh-nhis.yaml")) as health:
        year, month = SAMPLE_REPORT_MONTH
        request = health_pb2.GetMonthlyReportRequest(
            facility_id=demo_data.SAMPLE_FACILITY, year=year, month=month
        )
        report = health_pb2.MonthlyReport.FromString(
            health.unary(call(REPORT), request.SerializeToString())
        )
        assert (report.year, report.month) == (year, month)
        assert report.level == health_pb2.FACILITY_LEVEL_REFERRAL_HOSPITAL
        assert report.outpatient_visits > 0
        assert report.HasField("submitted_at")


def test_the_database_refuses_writes(vehicles: SqlAdapter, backend: Backend) -> None:
    engine = vehicles._engine  # below the adapter: the session itself is read-only
    assert engine is not None
    with engine.connect() as conn, pytest.raises(DBAPIError, match=r"(?i)read.?only"):
        conn.execute(text("DELETE FROM vehicles"))
    assert count_vehicles(backend) == demo_data.VEHICLE_COUNT


# --------------------------------------------------------------------------- fleettest service

SAMPLE_SQL = (
    "SELECT plate, kind, taxed, ratio, payload, big, at, day, owner_id, note, small"
    " FROM sample ORDER BY id"
)


def test_every_column_type_converts_and_nulls_stay_unset(
    fleet: ModuleType, backend: Backend, folder: Path
) -> None:
    stream = {"sql": SAMPLE_SQL, "fields": {"owner_id": "owner.id", "payload": "blob"}}
    with running(fleet_mapping(backend, folder, {"Stream": stream})) as adapter:
        rows = [fleet.Row.FromString(m) for m in adapter.stream(call(STREAM), b"")]

    full, empty = rows
    assert full.plate == "P-1"
    assert full.kind == fleet.KIND_BUS  # "Bus": short name, any case
    assert full.taxed is True
    assert full.ratio == 0.25
    assert full.blob == b"\x00\xff"
    assert full.big == 9007199254740993  # beyond a double's precision: kept exact
    assert full.at.ToDatetime(tzinfo=UTC) == datetime(2024, 6, 1, 1, 30, tzinfo=UTC)
    assert (full.day.year, full.day.month, full.day.day) == (2024, 2, 29)
    assert full.owner.id == "o-1"
    assert Decimal(full.note) == Decimal("12.5")
    assert full.small == 7
    assert empty.ListFields() == []  # every column NULL: nothing set, not even defaults


def test_repeated_parameter_binds_a_list(fleet: ModuleType, backend: Backend, folder: Path) -> None:
    find = {
        "sql": "SELECT plate, owner_id FROM vehicles WHERE plate IN :plates ORDER BY plate",
        "result": "many",
        "into": "rows",
        "fields": {"owner_id": "owner.id"},
    }
    with running(fleet_mapping(backend, folder, {"Find": find})) as adapter:
        request = fleet.FindRequest(plates=[SAMPLE_PLATE, SAMPLE_UNINSPECTED_PLATE, "9Z-0000"])
        reply = fleet.FindResponse.FromString(
            adapter.unary(call(FIND), request.SerializeToString())
        )
        assert [row.plate for row in reply.rows] == [SAMPLE_PLATE, SAMPLE_UNINSPECTED_PLATE]
        assert [row.owner.id for row in reply.rows] == [SAMPLE_OWNER_WITH_VEHICLES] * 2

        nothing = fleet.FindResponse.FromString(adapter.unary(call(FIND), b""))  # IN ()
        assert list(nothing.rows) == []


def test_nested_and_optional_parameters(fleet: ModuleType, backend: Backend, folder: Path) -> None:
    stream = {
        "sql": "SELECT plate FROM vehicles WHERE owner_id = :owner"
        " AND (CAST(:min_year AS INTEGER) IS NULL OR model_year >= :min_year)"
        " AND (CAST(:since AS DATE) IS NULL OR last_inspection >= :since)"
        " ORDER BY plate",
        "params": {
            "owner": "filter.owner_id",
            "min_year": "filter.min_year",
            "since": "filter.inspected_since",
        },
    }
    if backend.name == "mariadb":  # MariaDB casts to SIGNED, not INTEGER
        stream["sql"] = str(stream["sql"]).replace("AS INTEGER", "AS SIGNED")
    with running(fleet_mapping(backend, folder, {"Stream": stream})) as adapter:

        def plates(**filter_fields: Any) -> list[str]:
            request = fleet.FindRequest(
                filter=fleet.Filter(owner_id=SAMPLE_OWNER_WITH_VEHICLES, **filter_fields)
            )
            items = adapter.stream(call(STREAM), request.SerializeToString())
            return [fleet.Row.FromString(item).plate for item in items]

        assert tuple(plates()) == SAMPLE_OWNER_PLATES  # optional unset -> NULL -> no filter
        assert plates(min_year=2019) == ["1B-5678", SAMPLE_UNINSPECTED_PLATE]
        assert plates(min_year=0) == list(SAMPLE_OWNER_PLATES)  # set to 0 is not unset
        assert plates(inspected_since=fleet.Day(year=2024, month=1, day=1)) == [SAMPLE_PLATE]
        with pytest.raises(InvalidArgument, match="inspected_since is not a valid date"):
            plates(inspected_since=fleet.Day(year=2024, month=13, day=1))


# --------------------------------------------------------------------------- failures


def test_slow_query_stops_at_the_deadline_on_the_server(
    vehicles: SqlAdapter, backend: Backend, folder: Path, tmp_path: Path
) -> None:
    document = yaml.safe_load((folder / "mpwt-vehicles.yaml").read_text())
    document["methods"]["GetVehicle"] = {"sql": SLOW[backend.name]}
    document["database"] |= {"pool_size": 1, "max_overflow": 0}  # one connection, reused
    mapping = tmp_path / "slow.yaml"
    mapping.write_text(yaml.safe_dump(document))
    with running(mapping) as adapter:
        request = vehicles_pb2.GetVehicleRequest(plate=SAMPLE_PLATE).SerializeToString()
        began = time.monotonic()
        with pytest.raises(DeadlineExceeded) as caught:
            adapter.unary(call(VEHICLE, deadline=began + 0.3), request)
        assert time.monotonic() - began < 5.0
        assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "sleep" not in caught.value.message.lower()

        # The pooled connection carries no limit into the next call.
        owner = vehicles_pb2.ListVehiclesByOwnerRequest(owner_id=SAMPLE_OWNER_WITH_VEHICLES)
        items = adapter.stream(call(BY_OWNER), owner.SerializeToString())
        assert len(list(items)) == len(SAMPLE_OWNER_PLATES)


def test_exhausted_pool_is_unavailable_then_serves_again(backend: Backend, folder: Path) -> None:
    mapping = demo_mapping(
        backend, folder, "mpwt-vehicles.yaml", pool_size=1, max_overflow=0, pool_timeout=0.2
    )
    with running(mapping) as adapter:
        request = vehicles_pb2.ListVehiclesByOwnerRequest(owner_id=SAMPLE_OWNER_WITH_VEHICLES)
        holding = adapter.stream(call(BY_OWNER), request.SerializeToString())
        next(holding)  # the only connection is now busy

        with pytest.raises(Unavailable) as caught:
            get_vehicle(adapter, SAMPLE_PLATE)
        assert caught.value.message == (
            "the database behind vehicles.v1.VehicleRegistry is unavailable"
        )

        holding.close()
        assert get_vehicle(adapter, SAMPLE_PLATE).plate == SAMPLE_PLATE


@pytest.mark.backends("postgres", "mariadb")  # SQLite has no server to reach: see test_sql.py
def test_unreachable_database_at_start_is_unavailable(backend: Backend, tmp_path: Path) -> None:
    document = yaml.safe_load((demo_data.MAPPING_DIR / "mpwt-vehicles.yaml").read_text())
    scheme = "postgresql" if backend.name == "postgres" else "mysql"
    document["database"] = f"{scheme}://nobody@127.0.0.1:1/registry"  # nothing listens on 1
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(yaml.safe_dump(document))
    adapter = SqlAdapter.from_file(mapping)
    with pytest.raises(Unavailable, match="cannot be reached"):
        adapter.start()
    assert not adapter.health().ok


def _kill_sessions(backend: Backend) -> int:
    """Terminate every session of the adapter's database but our own, server-side."""
    with backend.admin.connect() as conn:
        if backend.name == "postgres":
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": backend.database},
            ).scalar_one()
            return int(killed)
        ids = conn.execute(
            text(
                "SELECT id FROM information_schema.processlist"
                " WHERE db = :db AND id <> CONNECTION_ID()"
            ),
            {"db": backend.database},
        ).scalars()
        ids = list(ids)
        for session in ids:
            conn.execute(text(f"KILL CONNECTION {int(session)}"))
        return len(ids)


@pytest.mark.backends("postgres", "mariadb")  # SQLite has no server sessions to kill
def test_killed_connections_are_unavailable_then_recover_without_restart(
    fleet: ModuleType, backend: Backend, folder: Path
) -> None:
    methods = {"Stream": {"sql": ENDLESS}, "Echo": {"sql": "SELECT plate FROM vehicles LIMIT 1"}}
    with running(fleet_mapping(backend, folder, methods)) as adapter:
        traffic = adapter.stream(call(STREAM), b"")
        next(traffic)  # mid-stream: a connection is busy on the server
        assert _kill_sessions(backend) >= 1

        with pytest.raises(Unavailable) as caught:
            for _ in traffic:
                pass
        assert "terminat" not in caught.value.message.lower()

        # Idle pooled connections killed too: the pool pings and replaces them.
        _kill_sessions(backend)
        reply = fleet.Row.FromString(adapter.unary(call("/fleettest.v1.Fleet/Echo"), b""))
        assert reply.plate
        assert adapter.health().ok


MEMORY_PROBE = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from spean.adapters import CallContext
from spean.adapters.sql import SqlAdapter
adapter = SqlAdapter.from_file(Path(sys.argv[1]))
adapter.start()
ctx = CallContext(method="/fleettest.v1.Fleet/Stream", exchange_id="ex", client="c")
items = adapter.stream(ctx, b"")
count = 0
for _ in items:
    count += 1
    if count == 5000:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
adapter.stop()
print(json.dumps({"count": count, "growth_kib": peak - base}))
"""


@pytest.mark.slow
@pytest.mark.backends("postgres")  # whose server-side cursor is the one to prove
def test_a_million_rows_stream_in_bounded_memory(
    fleet: ModuleType, backend: Backend, folder: Path
) -> None:
    stream = {
        "sql": "SELECT i AS big, repeat('x', 200) AS plate FROM generate_series(1, 1000000) AS i"
    }
    mapping = fleet_mapping(backend, folder, {"Stream": stream})
    fleet_root = str(Path(fleet.__file__).parents[2])
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MEMORY_PROBE), str(mapping), fleet_root],
        capture_output=True,
        text=True,
        timeout=110,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["count"] == 1_000_000
    # Buffered, a million 200-byte rows would need well over 200 MiB.
    assert result["growth_kib"] < 32 * 1024, result


# --------------------------------------------------------------------------- start-up validation


def test_a_statement_that_does_not_prepare_is_named_at_start(
    backend: Backend, folder: Path, tmp_path: Path
) -> None:
    document = yaml.safe_load((folder / "mpwt-vehicles.yaml").read_text())
    document["methods"] = {"GetVehicle": {"sql": "SELECT plate FROM vehicle WHERE plate = :plate"}}
    mapping = tmp_path / "bad.yaml"
    mapping.write_text(yaml.safe_dump(document))
    adapter = SqlAdapter.from_file(mapping)
    with pytest.raises(ConfigError) as caught:
        adapter.start()
    assert caught.value.message.startswith(
        f"{mapping}: methods.GetVehicle.sql: the statement does not prepare against the database"
    )
    assert not adapter.health().ok


def test_a_column_without_a_field_is_named_at_start(
    backend: Backend, folder: Path, tmp_path: Path
) -> None:
    document = yaml.safe_load((folder / "mpwt-vehicles.yaml").read_text())
    sql = "SELECT plate, registered_on FROM vehicles WHERE plate = :plate"
    document["methods"] = {"GetVehicle": {"sql": sql}}
    mapping = tmp_path / "bad.yaml"
    mapping.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError) as caught:
        SqlAdapter.from_file(mapping).start()
    assert caught.value.message.startswith(f"{mapping}: methods.GetVehicle.sql: ")
    assert "column 'registered_on': vehicles.v1.Vehicle has no field 'registered_on'" in (
        caught.value.message
    )


# --------------------------------------------------------------------------- the demo


def test_the_demo_serves_mpwt_from_the_backend(backend: Backend, tmp_path: Path) -> None:
    """`spean demo --mpwt-db URL`: the same calls answer from the server database."""
    from spean.gateway.demo.ministries import MPWT, VEHICLES, build_demo, run_demo_calls

    federation = build_demo(tmp_path / "demo", mpwt_database_url=backend.url)
    mapping = yaml.safe_load((federation.configs[MPWT].parent / "mpwt-vehicles.yaml").read_text())
    assert mapping["database"] == backend.url
    with federation.running():
        results = run_demo_calls(federation.consumer_addresses["KH/GOV/MOH"])
    from_mpwt = [r for r in results if r.service == VEHICLES]
    assert [r.status for r in from_mpwt] == ["OK", "OK"]
    assert from_mpwt[1].detail == f"{len(SAMPLE_OWNER_PLATES)} vehicles streamed"
    assert count_vehicles(backend) == demo_data.VEHICLE_COUNT


def test_two_columns_of_one_name_are_named_at_start(
    backend: Backend, folder: Path, tmp_path: Path
) -> None:
    """PostgreSQL keeps both, MariaDB refuses the probe, SQLite renames one 'plate:1':
    each way, the operator reads the same error naming the column."""
    document = yaml.safe_load((folder / "mpwt-vehicles.yaml").read_text())
    sql = "SELECT plate, owner_id AS plate FROM vehicles WHERE plate = :plate"
    document["methods"] = {"GetVehicle": {"sql": sql}}
    mapping = tmp_path / "twins.yaml"
    mapping.write_text(yaml.safe_dump(document))
    adapter = SqlAdapter.from_file(mapping)
    with pytest.raises(ConfigError) as caught:
        adapter.start()
    assert caught.value.message == (
        f"{mapping}: methods.GetVehicle.sql: the statement returns two columns named 'plate';"
        " each column fills one field, so give one of them another name with AS (or leave it out)"
    )
    assert not adapter.health().ok


# Columns whose declared type can never fill the field they are mapped to.
MISFITS = [
    ("SELECT plate AS small FROM sample WHERE id = 1", "small", "text", "uint32"),
    ("SELECT day AS kind FROM sample WHERE id = 1", "kind", "date", "enum fleettest.v1.Kind"),
    (
        "SELECT ratio AS at FROM sample WHERE id = 1",
        "at",
        "floating-point",
        "google.protobuf.Timestamp",
    ),
    ("SELECT at AS big FROM sample WHERE id = 1", "big", "date-time", "int64"),
]


@pytest.mark.parametrize(("sql", "column", "kind", "field"), MISFITS)
def test_a_column_type_that_cannot_fill_its_field_is_named_at_start(
    fleet: ModuleType,
    backend: Backend,
    tmp_path: Path,
    sql: str,
    column: str,
    kind: str,
    field: str,
) -> None:
    mapping = fleet_mapping(backend, tmp_path, {"Echo": {"sql": sql}})
    adapter = SqlAdapter.from_file(mapping)
    if backend.name == "sqlite":
        # SQLite reports no column types: the mistake can only show per call.
        adapter.start()
        try:
            with pytest.raises(Internal, match=r"could not be converted to fleettest\.v1\.Row"):
                adapter.unary(call("/fleettest.v1.Fleet/Echo"), b"")
        finally:
            adapter.stop()
        return
    with pytest.raises(ConfigError) as caught:
        adapter.start()
    assert caught.value.message.startswith(
        f"{mapping}: methods.Echo.sql: column {column!r} is {kind} in the database and cannot"
        f" fill the {field} field 'fleettest.v1.Row.{column}' (it takes "
    )
    assert f"convert it in the statement, e.g. CAST({column} AS ...)" in caught.value.message
    assert not adapter.health().ok


def test_a_mapped_column_of_the_wrong_type_names_its_fields_entry(
    fleet: ModuleType, backend: Backend, tmp_path: Path
) -> None:
    echo = {"sql": "SELECT taxed FROM sample WHERE id = 1", "fields": {"taxed": "owner.id"}}
    adapter = SqlAdapter.from_file(fleet_mapping(backend, tmp_path, {"Echo": echo}))
    if backend.name == "postgres":  # a real boolean; MariaDB's is TINYINT(1), text "1"
        with pytest.raises(
            ConfigError, match=r"methods\.Echo\.fields\.taxed: column 'taxed' is boolean"
        ):
            adapter.start()
        return
    adapter.start()
    try:
        reply = adapter.unary(call("/fleettest.v1.Fleet/Echo"), b"")
    finally:
        adapter.stop()
    assert fleet.Row.FromString(reply).owner.id == "1"


def test_a_cast_makes_a_text_column_acceptable(
    fleet: ModuleType, backend: Backend, tmp_path: Path
) -> None:
    """The fix the error suggests: say in SQL that the text holds a number."""
    text_echo = {"Echo": {"sql": "SELECT '7' AS small FROM sample WHERE id = 1"}}
    if backend.name != "sqlite":  # a quoted literal is text to PostgreSQL and MariaDB
        with pytest.raises(ConfigError, match="column 'small' is text in the database"):
            SqlAdapter.from_file(fleet_mapping(backend, tmp_path, text_echo)).start()
    cast = "SIGNED" if backend.name == "mariadb" else "INTEGER"
    echo = {"sql": f"SELECT CAST('7' AS {cast}) AS small FROM sample WHERE id = 1"}
    with running(fleet_mapping(backend, tmp_path, {"Echo": echo})) as adapter:
        reply = fleet.Row.FromString(adapter.unary(call("/fleettest.v1.Fleet/Echo"), b""))
    assert reply.small == 7
