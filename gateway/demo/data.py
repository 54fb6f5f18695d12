"""Synthetic sample databases for the demo ministries.

Every row is generated from a fixed seed, so two runs build identical
databases and the sample keys below always exist. The data is synthetic: names
are drawn from lists of common Khmer family and given names, identity numbers,
plates and dates are random; no record describes a real person or vehicle.

The schemas are SQLAlchemy Core tables with portable types, and each
`create_*_database` takes an Engine, a database URL or a SQLite file path, so
the same function loads SQLite, PostgreSQL or MariaDB. Existing tables of the
same name are dropped first (a SQLite file is replaced): the result is always
exactly the sample data.

Owners in the vehicle registry are identity numbers of the identity registry,
so the demo can chain calls: VerifyCitizen, then ListVehiclesByOwner.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
)

from spean.gateway.errors import ConfigError

__all__ = [
    "DEMO_SERVICES",
    "MAPPING_DIR",
    "SAMPLE_CITIZEN",
    "SAMPLE_FACILITY",
    "SAMPLE_HEALTH_CENTRE",
    "SAMPLE_OWNER_PLATES",
    "SAMPLE_OWNER_WITH_VEHICLES",
    "SAMPLE_PLATE",
    "SAMPLE_REPORT_MONTH",
    "SAMPLE_UNINSPECTED_PLATE",
    "DatabaseTarget",
    "DemoService",
    "SampleCitizen",
    "create_moh_database",
    "create_moi_database",
    "create_mpwt_database",
    "install_demo_services",
]

DatabaseTarget = Engine | str | os.PathLike[str]
"""An Engine, a SQLAlchemy URL (``scheme://...``) or a SQLite file path."""

CITIZEN_COUNT = 400
VEHICLE_COUNT = 320
_SEED = 855  # Cambodia's calling code; any fixed value keeps the data stable
_TODAY = date(2025, 1, 1)  # a fixed "today", so ages and expiries never drift


@dataclass(frozen=True, slots=True)
class SampleCitizen:
    id_number: str
    full_name: str
    birth_date: str  # YYYY-MM-DD


SAMPLE_CITIZEN = SampleCitizen(id_number="010203040", full_name="Sok Dara", birth_date="1986-04-17")
"""A registered citizen who owns the three SAMPLE_OWNER_PLATES vehicles."""
SAMPLE_OWNER_WITH_VEHICLES = SAMPLE_CITIZEN.id_number
SAMPLE_PLATE = "2A-1234"
"""A car (Toyota Camry 2012), inspected, road tax paid."""
SAMPLE_UNINSPECTED_PLATE = "2C-0042"
"""An electric motorcycle: no engine displacement, never inspected (both NULL)."""
SAMPLE_OWNER_PLATES = ("1B-5678", "2A-1234", "2C-0042")
"""Every plate of SAMPLE_OWNER_WITH_VEHICLES, in plate order."""
SAMPLE_FACILITY = "PP-RH-01"
"""A referral hospital with a report for every month of 2023 and 2024."""
SAMPLE_HEALTH_CENTRE = "KD-HC-03"
"""A health centre: no inpatient beds, so its bed occupancy rate is NULL."""
SAMPLE_REPORT_MONTH = (2024, 6)

# --------------------------------------------------------------------------- schemas

MOI = MetaData()
CITIZENS = Table(
    "citizens",
    MOI,
    Column("id_number", String(9), primary_key=True),
    Column("full_name", String(120), nullable=False),
    Column("sex", String(8), nullable=False),
    Column("birth_date", Date, nullable=False),
    Column("birth_province", String(40)),
    Column("province", String(40), nullable=False),
    Column("card_issued_on", Date, nullable=False),
    Column("card_expires_on", Date, nullable=False),
)

MPWT = MetaData()
VEHICLES = Table(
    "vehicles",
    MPWT,
    Column("plate", String(16), primary_key=True),
    Column("vehicle_type", String(16), nullable=False),
    Column("make", String(40), nullable=False),
    Column("model", String(40), nullable=False),
    Column("model_year", Integer, nullable=False),
    Column("colour", String(20), nullable=False),
    Column("engine_cc", Integer),
    Column("registered_on", Date, nullable=False),
    Column("last_inspection", DateTime),
    Column("owner_id", String(9), nullable=False, index=True),
    Column("tax_status", String(10), nullable=False),
)

MOH = MetaData()
FACILITIES = Table(
    "facilities",
    MOH,
    Column("facility_id", String(12), primary_key=True),
    Column("name", String(80), nullable=False),
    Column("province", String(40), nullable=False),
    Column("level", String(24), nullable=False),
    Column("beds", Integer, nullable=False),
)
MONTHLY_REPORTS = Table(
    "monthly_reports",
    MOH,
    Column("facility_id", String(12), ForeignKey("facilities.facility_id"), primary_key=True),
    Column("report_year", Integer, primary_key=True),
    Column("report_month", Integer, primary_key=True),
    Column("outpatient_visits", Integer, nullable=False),
    Column("inpatient_admissions", Integer, nullable=False),
    Column("births", Integer, nullable=False),
    Column("deaths", Integer, nullable=False),
    Column("vaccinations", Integer, nullable=False),
    Column("referrals_out", Integer, nullable=False),
    Column("bed_occupancy_rate", Float),
    Column("submitted_at", DateTime, nullable=False),
)

# --------------------------------------------------------------------------- word lists

_FAMILY_NAMES = (
    "Sok", "Chan", "Kim", "Heng", "Lim", "Ly", "Meas", "Nhem", "Ouk", "Pich",
    "Prak", "Sam", "Seng", "Tep", "Vann", "Yim", "Keo", "Chea", "Hun", "Mao",
)  # fmt: skip
_GIVEN_NAMES = (
    "Dara", "Sophea", "Bopha", "Vibol", "Chantha", "Rithy", "Sreymom", "Kosal",
    "Sokha", "Piseth", "Malis", "Veasna", "Channary", "Visal", "Sothea", "Pisey",
    "Ratana", "Vuthy", "Leakhena", "Sambath",
)  # fmt: skip
_PROVINCES = (
    "Phnom Penh", "Kandal", "Kampong Cham", "Siem Reap", "Battambang", "Takeo",
    "Kampot", "Prey Veng", "Svay Rieng", "Preah Sihanouk", "Kampong Speu",
    "Banteay Meanchey",
)  # fmt: skip
# type, weight, (make, model, engine cc or None for electric), tax weights
_MODELS: dict[str, tuple[int, tuple[tuple[str, str, int | None], ...]]] = {
    "motorcycle": (45, (("Honda", "Dream", 125), ("Honda", "Scoopy", 110),
                        ("Suzuki", "Smash", 115), ("Yamaha", "NMAX", 155),
                        ("VinFast", "Evo200", None))),
    "car": (25, (("Toyota", "Camry", 2500), ("Toyota", "Prius", 1800),
                 ("Lexus", "RX 350", 3500), ("Hyundai", "Tucson", 2000),
                 ("Kia", "Sorento", 2200))),
    "pickup": (12, (("Toyota", "Hilux", 2400), ("Ford", "Ranger", 2200),
                    ("Isuzu", "D-Max", 1900))),
    "truck": (6, (("Hino", "500", 7700), ("Isuzu", "NPR", 5200))),
    "bus": (3, (("Hyundai", "County", 3900), ("Toyota", "Coaster", 4000))),
    "tuk_tuk": (9, (("Bajaj", "RE", 236), ("Piaggio", "Ape", 200))),
}  # fmt: skip
_COLOURS = ("white", "black", "silver", "grey", "red", "blue", "gold")
_TAX = (("paid", 70), ("due", 15), ("overdue", 10), ("exempt", 5))
# id, name, province, level, beds
_FACILITIES = (
    ("PP-NH-01", "Preah Monivong National Hospital (demo)", "Phnom Penh", "national_hospital", 420),
    ("PP-RH-01", "Chamkar Mon Referral Hospital (demo)", "Phnom Penh", "referral_hospital", 160),
    ("PP-HC-07", "Tuol Kork Health Centre (demo)", "Phnom Penh", "health_centre", 0),
    ("KD-RH-02", "Ta Khmau Referral Hospital (demo)", "Kandal", "referral_hospital", 120),
    ("KD-HC-03", "Kien Svay Health Centre (demo)", "Kandal", "health_centre", 0),
    ("SR-PH-01", "Siem Reap Provincial Hospital (demo)", "Siem Reap", "provincial_hospital", 250),
    ("SR-HC-11", "Puok Health Centre (demo)", "Siem Reap", "health_centre", 0),
    ("BB-PH-01", "Battambang Provincial Hospital (demo)", "Battambang", "provincial_hospital", 230),
    ("BB-HC-04", "Sangkae Health Centre (demo)", "Battambang", "health_centre", 0),
    ("KC-RH-01", "Cheung Prey Referral Hospital (demo)", "Kampong Cham", "referral_hospital", 90),
    ("TK-RH-01", "Daun Keo Referral Hospital (demo)", "Takeo", "referral_hospital", 110),
    ("KP-HC-02", "Chhuk Health Centre (demo)", "Kampot", "health_centre", 0),
)
_LEVEL_SCALE = {
    "health_centre": 1,
    "referral_hospital": 4,
    "provincial_hospital": 7,
    "national_hospital": 12,
}

# --------------------------------------------------------------------------- generators


def _days(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randrange((end - start).days))


def _citizens(rng: random.Random) -> Iterator[dict[str, Any]]:
    yield {
        "id_number": SAMPLE_CITIZEN.id_number,
        "full_name": SAMPLE_CITIZEN.full_name,
        "sex": "male",
        "birth_date": date.fromisoformat(SAMPLE_CITIZEN.birth_date),
        "birth_province": "Kampong Cham",
        "province": "Phnom Penh",
        "card_issued_on": date(2019, 8, 2),
        "card_expires_on": date(2029, 8, 2),
    }
    seen = {SAMPLE_CITIZEN.id_number}
    while len(seen) < CITIZEN_COUNT:
        id_number = f"{rng.randrange(10_000_000, 200_000_000):09d}"
        if id_number in seen:
            continue
        seen.add(id_number)
        sex = rng.choice(("female", "male"))
        born = _days(rng, date(1950, 1, 1), date(2006, 12, 31))
        issued = _days(rng, max(born + timedelta(days=18 * 366), date(2012, 1, 1)), _TODAY)
        yield {
            "id_number": id_number,
            "full_name": f"{rng.choice(_FAMILY_NAMES)} {rng.choice(_GIVEN_NAMES)}",
            "sex": sex,
            "birth_date": born,
            "birth_province": rng.choice((*_PROVINCES, None)),  # some births unrecorded
            "province": rng.choice(_PROVINCES),
            "card_issued_on": issued,
            "card_expires_on": issued.replace(year=issued.year + 10)
            if (issued.month, issued.day) != (2, 29)
            else date(issued.year + 10, 3, 1),
        }


def _citizen_ids() -> list[str]:
    return [row["id_number"] for row in _citizens(random.Random(_SEED))]


def _vehicles(rng: random.Random, owners: list[str]) -> Iterator[dict[str, Any]]:
    yield from (
        _vehicle(SAMPLE_PLATE, "car", ("Toyota", "Camry", 2500), 2012, "silver",
                 date(2013, 3, 15), datetime(2024, 9, 3, 10, 30), SAMPLE_CITIZEN.id_number, "paid"),
        _vehicle("1B-5678", "motorcycle", ("Honda", "Dream", 125), 2019, "red",
                 date(2019, 11, 20), datetime(2023, 12, 1, 8, 15), SAMPLE_CITIZEN.id_number, "due"),
        _vehicle(SAMPLE_UNINSPECTED_PLATE, "motorcycle", ("VinFast", "Evo200", None), 2024,
                 "blue", date(2024, 7, 8), None, SAMPLE_CITIZEN.id_number, "paid"),
    )  # fmt: skip
    taken = set(SAMPLE_OWNER_PLATES)
    # A small pool of frequent owners, so several people own more than one vehicle.
    others = [owner for owner in owners if owner != SAMPLE_CITIZEN.id_number]
    frequent = others[:40]
    kinds = list(_MODELS)
    weights = [_MODELS[kind][0] for kind in kinds]
    while len(taken) < VEHICLE_COUNT:
        plate = f"{rng.randrange(1, 4)}{rng.choice('ABCDEFGHKLMN')}-{rng.randrange(10_000):04d}"
        if plate in taken:
            continue
        taken.add(plate)
        kind = rng.choices(kinds, weights)[0]
        model = rng.choice(_MODELS[kind][1])
        year = rng.randrange(1998, 2025)
        registered = _days(rng, date(year, 1, 1), min(date(year + 2, 1, 1), _TODAY))
        inspected: datetime | None = None
        if registered < date(2023, 1, 1):  # newer vehicles are not yet due for inspection
            day = _days(rng, max(registered, date(2022, 1, 1)), _TODAY)
            inspected = datetime(
                day.year, day.month, day.day, rng.randrange(7, 17), 15 * rng.randrange(4)
            )
        owner = rng.choice(frequent) if rng.random() < 0.5 else rng.choice(others)
        tax = rng.choices([t for t, _ in _TAX], [w for _, w in _TAX])[0]
        yield _vehicle(
            plate, kind, model, year, rng.choice(_COLOURS), registered, inspected, owner, tax
        )


def _vehicle(
    plate: str,
    kind: str,
    model: tuple[str, str, int | None],
    year: int,
    colour: str,
    registered: date,
    inspected: datetime | None,
    owner: str,
    tax: str,
) -> dict[str, Any]:
    make, name, engine_cc = model
    return {
        "plate": plate,
        "vehicle_type": kind,
        "make": make,
        "model": name,
        "model_year": year,
        "colour": colour,
        "engine_cc": engine_cc,
        "registered_on": registered,
        "last_inspection": inspected,
        "owner_id": owner,
        "tax_status": tax,
    }


def _reports(rng: random.Random) -> Iterator[dict[str, Any]]:
    for facility_id, _name, _province, level, beds in _FACILITIES:
        scale = _LEVEL_SCALE[level]
        for year in (2023, 2024):
            for month in range(1, 13):
                inpatients = rng.randrange(20, 60) * scale if beds else 0
                after = date(year + month // 12, month % 12 + 1, 1)
                day, hour = rng.randrange(3, 11), rng.randrange(8, 17)
                submitted = datetime(after.year, after.month, day, hour, rng.randrange(60))
                yield {
                    "facility_id": facility_id,
                    "report_year": year,
                    "report_month": month,
                    "outpatient_visits": rng.randrange(300, 900) * scale,
                    "inpatient_admissions": inpatients,
                    "births": rng.randrange(5, 40) * scale,
                    "deaths": rng.randrange(0, 4) * scale if beds else rng.randrange(0, 2),
                    "vaccinations": rng.randrange(80, 400) * (2 if level == "health_centre" else 1),
                    "referrals_out": rng.randrange(5, 60) if level != "national_hospital" else 0,
                    "bed_occupancy_rate": round(rng.uniform(0.55, 1.12), 3) if beds else None,
                    "submitted_at": submitted,
                }


# --------------------------------------------------------------------------- loaders


def _load(
    target: DatabaseTarget, metadata: MetaData, rows: dict[Table, list[dict[str, Any]]]
) -> None:
    if isinstance(target, Engine):
        engine, owned = target, False
    elif isinstance(target, str) and "://" in target:
        engine, owned = create_engine(target), True
    else:
        path = Path(target)
        path.unlink(missing_ok=True)  # a fresh file: the sample data and nothing else
        path.parent.mkdir(parents=True, exist_ok=True)
        engine, owned = create_engine(f"sqlite:///{path}"), True
    try:
        metadata.drop_all(engine)
        metadata.create_all(engine)
        with engine.begin() as conn:
            for table in metadata.sorted_tables:  # parents before children
                if rows.get(table):
                    conn.execute(table.insert(), rows[table])
    finally:
        if owned:
            engine.dispose()


def create_moi_database(target: DatabaseTarget) -> None:
    """The Ministry of Interior's identity registry: `citizens`, CITIZEN_COUNT rows."""
    _load(target, MOI, {CITIZENS: list(_citizens(random.Random(_SEED)))})


def create_mpwt_database(target: DatabaseTarget) -> None:
    """The vehicle registry: `vehicles`, VEHICLE_COUNT rows owned by MOI citizens."""
    rows = list(_vehicles(random.Random(_SEED + 1), _citizen_ids()))
    _load(target, MPWT, {VEHICLES: rows})


def create_moh_database(target: DatabaseTarget) -> None:
    """The health information system: `facilities` and 24 months of `monthly_reports`."""
    facilities = [
        {"facility_id": f, "name": n, "province": p, "level": lvl, "beds": b}
        for f, n, p, lvl, b in _FACILITIES
    ]
    reports = list(_reports(random.Random(_SEED + 2)))
    _load(target, MOH, {FACILITIES: facilities, MONTHLY_REPORTS: reports})


# --------------------------------------------------------------------------- demo services


@dataclass(frozen=True, slots=True)
class DemoService:
    """A demo provider subsystem served by the SQL adapter from a sample database."""

    subsystem: str
    service: str
    mapping: str  # file name in MAPPING_DIR
    database: str  # SQLite file name the mapping expects beside it
    create: Callable[[DatabaseTarget], None]


MAPPING_DIR = Path(__file__).resolve().parent / "mappings"
DEMO_SERVICES = (
    DemoService("KH/GOV/MOI/idreg", "identity.v1.IdentityRegistry", "moi-idreg.yaml",
                "moi-idreg.db", create_moi_database),
    DemoService("KH/GOV/MPWT/vehicles", "vehicles.v1.VehicleRegistry", "mpwt-vehicles.yaml",
                "mpwt-vehicles.db", create_mpwt_database),
    DemoService("KH/GOV/MOH/nhis", "health.v1.FacilityStats", "moh-nhis.yaml",
                "moh-nhis.db", create_moh_database),
)  # fmt: skip


def install_demo_services(folder: Path) -> dict[str, Path]:
    """Copy each demo mapping into `folder`, build its database beside it.

    Returns subsystem -> mapping file, ready for an adapter entry
    ``{type: sql, mapping: <path>}``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    installed: dict[str, Path] = {}
    for demo in DEMO_SERVICES:
        source = MAPPING_DIR / demo.mapping
        try:
            shutil.copyfile(source, folder / demo.mapping)
        except OSError as exc:
            raise ConfigError(
                f"cannot copy demo mapping {source} to {folder}: {exc.strerror}"
            ) from exc
        demo.create(folder / demo.database)
        installed[demo.subsystem] = folder / demo.mapping
    return installed
