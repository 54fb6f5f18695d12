"""The SQL adapter on real SQLite files built by spean.gateway.demo.data.

Bytes go in and come out exactly as the security server exchanges them; the
tests decode them with the generated classes. A second service, `fleettest`,
is compiled from a .proto at test time (as an IT team's would be) to cover
what the demo services do not use: repeated and nested parameters, `into`,
every type conversion.
"""

from __future__ import annotations

import inspect
import sqlite3
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
import yaml
from grpc_tools import protoc
from sqlalchemy.exc import OperationalError

from spean.adapters import (
    ConfigError,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    MethodKind,
    NotFound,
    Unavailable,
)
from spean.adapters.sql import SqlAdapter
from spean.adapters.sql import _convert as sql_module
from spean.demo.health.v1 import health_pb2
from spean.demo.identity.v1 import identity_pb2
from spean.demo.vehicles.v1 import vehicles_pb2
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
from tests.support.sql_adapter import call, get_vehicle, running

VEHICLE = "/vehicles.v1.VehicleRegistry/GetVehicle"
BY_OWNER = "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner"
VERIFY = "/identity.v1.IdentityRegistry/VerifyCitizen"
CITIZEN = "/identity.v1.IdentityRegistry/GetCitizen"
REPORT = "/health.v1.FacilityStats/GetMonthlyReport"
SLOW_SQL = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000)"
    " SELECT max(i) AS {column} FROM n"
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    demo_data.install_demo_services(folder)
    return folder


@pytest.fixture(scope="module")
def vehicles(demo: Path) -> Iterator[SqlAdapter]:
    with running(demo / "mpwt-vehicles.yaml") as adapter:
        yield adapter


@pytest.fixture(scope="module")
def identity(demo: Path) -> Iterator[SqlAdapter]:
    with running(demo / "moi-idreg.yaml") as adapter:
        yield adapter


@pytest.fixture(scope="module")
def health(demo: Path) -> Iterator[SqlAdapter]:
    with running(demo / "moh-nhis.yaml") as adapter:
        yield adapter


# --------------------------------------------------------------------------- demo services


def test_get_vehicle_returns_the_registered_vehicle(vehicles: SqlAdapter) -> None:
    vehicle = get_vehicle(vehicles, SAMPLE_PLATE)

    assert vehicle.plate == SAMPLE_PLATE
    assert vehicle.type == vehicles_pb2.VEHICLE_TYPE_CAR  # stored as "car"
    assert (vehicle.make, vehicle.model, vehicle.year, vehicle.colour) == (
        "Toyota",
        "Camry",
        2012,
        "silver",
    )
    assert vehicle.engine_cc == 2500
    # A bare date is midnight UTC of that day.
    assert vehicle.registration_date.ToDatetime(tzinfo=UTC) == datetime(2013, 3, 15, tzinfo=UTC)
    # A naive date-time is Phnom Penh time (UTC+7), as the mapping's timezone says.
    assert vehicle.last_inspection.ToDatetime(tzinfo=UTC) == datetime(2024, 9, 3, 3, 30, tzinfo=UTC)
    assert vehicle.owner_id == SAMPLE_OWNER_WITH_VEHICLES
    assert vehicle.tax_status == vehicles_pb2.TAX_STATUS_PAID


def test_null_columns_leave_fields_unset(vehicles: SqlAdapter, health: SqlAdapter) -> None:
    vehicle = get_vehicle(vehicles, SAMPLE_UNINSPECTED_PLATE)
    assert vehicle.plate == SAMPLE_UNINSPECTED_PLATE
    assert not vehicle.HasField("last_inspection")
    assert not vehicle.HasField("engine_cc")
    assert vehicle.HasField("registration_date")

    year, month = SAMPLE_REPORT_MONTH
    request = health_pb2.GetMonthlyReportRequest(
        facility_id=SAMPLE_HEALTH_CENTRE, year=year, month=month
    )
    report = health_pb2.MonthlyReport.FromString(
        health.unary(call(REPORT), request.SerializeToString())
    )
    assert report.level == health_pb2.FACILITY_LEVEL_HEALTH_CENTRE
    assert not report.HasField("bed_occupancy_rate")


def test_unknown_plate_is_not_found(vehicles: SqlAdapter) -> None:
    with pytest.raises(NotFound) as caught:
        get_vehicle(vehicles, "9Z-0000")
    assert caught.value.code == grpc.StatusCode.NOT_FOUND
    assert caught.value.message == "no result for GetVehicle with the given request"


@pytest.mark.parametrize(
    "plate",
    [
        "x' OR '1'='1",
        f"{SAMPLE_PLATE}'; DROP TABLE vehicles; --",
        f"{SAMPLE_PLATE}\x00",
        "' UNION SELECT plate, vehicle_type FROM vehicles --",
        "x" * 100_000,
    ],
)
def test_request_values_are_bound_never_spliced(
    vehicles: SqlAdapter, demo: Path, plate: str
) -> None:
    with pytest.raises(NotFound):
        get_vehicle(vehicles, plate)

    with sqlite3.connect(demo / "mpwt-vehicles.db") as db:
        assert db.execute("SELECT count(*) FROM vehicles").fetchone() == (demo_data.VEHICLE_COUNT,)
    assert get_vehicle(vehicles, SAMPLE_PLATE).plate == SAMPLE_PLATE


def test_stream_is_lazy_and_yields_every_vehicle_of_the_owner(vehicles: SqlAdapter) -> None:
    request = vehicles_pb2.ListVehiclesByOwnerRequest(owner_id=SAMPLE_OWNER_WITH_VEHICLES)

    messages = vehicles.stream(call(BY_OWNER), request.SerializeToString())

    assert inspect.isgenerator(messages)
    assert inspect.getgeneratorstate(messages) == inspect.GEN_CREATED  # no query yet
    plates = [vehicles_pb2.Vehicle.FromString(item).plate for item in messages]
    assert tuple(plates) == SAMPLE_OWNER_PLATES


def test_stream_matches_the_database_for_the_largest_fleet(
    vehicles: SqlAdapter, demo: Path
) -> None:
    with sqlite3.connect(demo / "mpwt-vehicles.db") as db:
        owner, count = db.execute(
            "SELECT owner_id, count(*) FROM vehicles GROUP BY owner_id"
            " ORDER BY count(*) DESC, owner_id LIMIT 1"
        ).fetchone()
        expected = [row[0] for row in db.execute(
            "SELECT plate FROM vehicles WHERE owner_id = ? ORDER BY plate", (owner,)
        )]  # fmt: skip
    assert count > 3

    request = vehicles_pb2.ListVehiclesByOwnerRequest(owner_id=owner).SerializeToString()
    received = [
        vehicles_pb2.Vehicle.FromString(m) for m in vehicles.stream(call(BY_OWNER), request)
    ]

    assert [v.plate for v in received] == expected
    assert all(v.owner_id == owner for v in received)


def test_stream_for_an_owner_without_vehicles_is_empty(vehicles: SqlAdapter) -> None:
    request = vehicles_pb2.ListVehiclesByOwnerRequest(owner_id="000000000")
    assert list(vehicles.stream(call(BY_OWNER), request.SerializeToString())) == []


def test_closing_a_stream_early_returns_its_connection(vehicles: SqlAdapter) -> None:
    request = vehicles_pb2.ListVehiclesByOwnerRequest(owner_id=SAMPLE_OWNER_WITH_VEHICLES)
    messages = vehicles.stream(call(BY_OWNER), request.SerializeToString())
    engine = vehicles._engine
    assert engine is not None

    next(messages)
    assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    messages.close()  # what the security server does when the caller goes away
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_verify_citizen_answers_yes_or_no_only(identity: SqlAdapter) -> None:
    def verify(id_number: str, name: str, born: str) -> bool:
        request = identity_pb2.VerifyCitizenRequest(
            id_number=id_number, full_name=name, birth_date=born
        )
        reply = identity.unary(call(VERIFY), request.SerializeToString())
        response = identity_pb2.VerifyCitizenResponse.FromString(reply)
        assert [f.name for f, _ in response.ListFields()] in ([], ["match"])
        return response.match

    sample = SAMPLE_CITIZEN
    assert verify(sample.id_number, sample.full_name, sample.birth_date)
    assert verify(sample.id_number, sample.full_name.upper(), sample.birth_date)
    assert not verify(sample.id_number, sample.full_name, "1986-04-18")
    assert not verify(sample.id_number, "Sok Dora", sample.birth_date)
    assert not verify("999999999", sample.full_name, sample.birth_date)  # unknown: no, not error


def test_get_citizen_returns_the_record(identity: SqlAdapter) -> None:
    request = identity_pb2.GetCitizenRequest(id_number=SAMPLE_CITIZEN.id_number)
    citizen = identity_pb2.Citizen.FromString(
        identity.unary(call(CITIZEN), request.SerializeToString())
    )

    assert citizen.id_number == SAMPLE_CITIZEN.id_number
    assert citizen.full_name == SAMPLE_CITIZEN.full_name
    assert citizen.birth_date == SAMPLE_CITIZEN.birth_date  # a date column as ISO text
    assert citizen.sex == identity_pb2.SEX_MALE  # stored as "male"
    assert (citizen.birth_province, citizen.province) == ("Kampong Cham", "Phnom Penh")
    assert (citizen.card_issued_on, citizen.card_expires_on) == ("2019-08-02", "2029-08-02")


def test_monthly_report_carries_every_count(health: SqlAdapter, demo: Path) -> None:
    year, month = SAMPLE_REPORT_MONTH
    request = health_pb2.GetMonthlyReportRequest(
        facility_id=SAMPLE_FACILITY, year=year, month=month
    )
    report = health_pb2.MonthlyReport.FromString(
        health.unary(call(REPORT), request.SerializeToString())
    )

    with sqlite3.connect(demo / "moh-nhis.db") as db:
        row = db.execute(
            "SELECT outpatient_visits, inpatient_admissions, births, deaths, vaccinations,"
            " referrals_out, bed_occupancy_rate, submitted_at FROM monthly_reports"
            " WHERE facility_id = ? AND report_year = ? AND report_month = ?",
            (SAMPLE_FACILITY, year, month),
        ).fetchone()
    assert (report.facility_id, report.year, report.month) == (SAMPLE_FACILITY, year, month)
    assert report.level == health_pb2.FACILITY_LEVEL_REFERRAL_HOSPITAL
    assert report.province == "Phnom Penh"
    counts = (
        report.outpatient_visits,
        report.inpatient_admissions,
        report.births,
        report.deaths,
        report.vaccinations,
        report.referrals_out,
    )
    assert counts == row[:6]
    assert report.outpatient_visits > 0
    assert report.bed_occupancy_rate == pytest.approx(row[6])
    local = datetime.fromisoformat(row[7]).replace(tzinfo=ZoneInfo("Asia/Phnom_Penh"))
    assert report.submitted_at.ToDatetime(tzinfo=UTC) == local


def test_methods_and_descriptors_are_declared(vehicles: SqlAdapter) -> None:
    assert vehicles.methods() == {
        VEHICLE: MethodKind.UNARY,
        BY_OWNER: MethodKind.SERVER_STREAMING,
    }
    assert [s.full_name for s in vehicles.services()] == ["vehicles.v1.VehicleRegistry"]
    assert vehicles.health().ok


def test_malformed_request_is_invalid_argument(vehicles: SqlAdapter) -> None:
    with pytest.raises(InvalidArgument, match=r"not a valid vehicles\.v1\.GetVehicleRequest"):
        vehicles.unary(call(VEHICLE), b"\xff\xff\xff")
    with pytest.raises(InvalidArgument):
        vehicles.stream(call(BY_OWNER), b"\x0a\x05ab")  # truncated: fails before streaming


def test_unknown_method_is_not_found(vehicles: SqlAdapter) -> None:
    with pytest.raises(NotFound, match="not served"):
        vehicles.unary(call("/vehicles.v1.VehicleRegistry/DeleteVehicle"), b"")


def test_a_past_deadline_fails_before_the_database(vehicles: SqlAdapter) -> None:
    request = vehicles_pb2.GetVehicleRequest(plate=SAMPLE_PLATE).SerializeToString()
    with pytest.raises(DeadlineExceeded):
        vehicles.unary(call(VEHICLE, deadline=time.monotonic() - 1), request)


def test_database_broken_after_start_is_unavailable(demo: Path, tmp_path: Path) -> None:
    database = tmp_path / "mpwt-vehicles.db"
    demo_data.create_mpwt_database(database)
    mapping = tmp_path / "mpwt-vehicles.yaml"
    mapping.write_text((demo / "mpwt-vehicles.yaml").read_text())
    with running(mapping) as adapter:
        assert get_vehicle(adapter, SAMPLE_PLATE).plate == SAMPLE_PLATE
        with database.open("r+b") as file:
            file.write(b"not a database" * 100)

        with pytest.raises(Unavailable) as caught:
            get_vehicle(adapter, SAMPLE_PLATE)
        assert (
            caught.value.message == "the database behind vehicles.v1.VehicleRegistry is unavailable"
        )
        assert not adapter.health().ok


def test_calls_after_stop_are_unavailable(demo: Path) -> None:
    adapter = SqlAdapter.from_file(demo / "mpwt-vehicles.yaml")
    with pytest.raises(Unavailable, match="not started"):
        get_vehicle(adapter, SAMPLE_PLATE)
    adapter.start()
    adapter.stop()
    with pytest.raises(Unavailable):
        get_vehicle(adapter, SAMPLE_PLATE)
    assert not adapter.health().ok


def test_only_queries_are_accepted_and_the_database_is_read_only(
    vehicles: SqlAdapter, demo: Path, tmp_path: Path
) -> None:
    delete = "DELETE FROM vehicles WHERE plate = :plate RETURNING plate"
    mapping = write_mapping(tmp_path, demo, {"GetVehicle": {"sql": delete}})
    with pytest.raises(ConfigError, match="does not prepare"):
        SqlAdapter.from_file(mapping).start()

    engine = vehicles._engine  # below the adapter: the connection itself refuses writes
    assert engine is not None
    with engine.connect() as conn, pytest.raises(OperationalError, match="readonly database"):
        conn.exec_driver_sql("DELETE FROM vehicles")


# --------------------------------------------------------------------------- deadlines


def test_slow_query_stops_at_the_deadline(demo: Path, tmp_path: Path) -> None:
    slow = "SELECT plate FROM vehicles WHERE plate = :plate AND (" + SLOW_SQL.format(
        column="n"
    ) + ") > 0"  # fmt: skip
    mapping = write_mapping(tmp_path, demo, {"GetVehicle": {"sql": slow}})
    with running(mapping) as adapter:
        request = vehicles_pb2.GetVehicleRequest(plate=SAMPLE_PLATE).SerializeToString()
        began = time.monotonic()

        with pytest.raises(DeadlineExceeded) as caught:
            adapter.unary(call(VEHICLE, deadline=began + 0.2), request)

        assert time.monotonic() - began < 2.0
        assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "RECURSIVE" not in caught.value.message


def test_slow_stream_stops_at_the_deadline_and_the_adapter_recovers(
    fleet: ModuleType, demo: Path, tmp_path: Path
) -> None:
    methods = {
        "Stream": {"sql": SLOW_SQL.format(column="big")},
        "Echo": {"sql": "SELECT 'fast' AS plate"},
    }
    with running(write_fleet_mapping(tmp_path, demo, methods)) as adapter:
        messages = adapter.stream(
            call("/fleettest.v1.Fleet/Stream", deadline=time.monotonic() + 0.2),
            fleet.FindRequest().SerializeToString(),
        )
        with pytest.raises(DeadlineExceeded):
            next(messages)

        # The same pooled connection serves the next call, deadline guard removed.
        reply = adapter.unary(call("/fleettest.v1.Fleet/Echo"), b"")
        assert fleet.Row.FromString(reply).plate == "fast"


# --------------------------------------------------------------------------- fleettest service


def write_mapping(tmp_path: Path, demo: Path, mapped: dict[str, Any], **top: Any) -> Path:
    document = {
        "service": "vehicles.v1.VehicleRegistry",
        "descriptor": "spean.demo.vehicles.v1.vehicles_pb2",
        "database": f"sqlite:///{demo / 'mpwt-vehicles.db'}",
        "timezone": "Asia/Phnom_Penh",
        "methods": mapped,
    } | top
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def write_fleet_mapping(tmp_path: Path, demo: Path, methods: dict[str, Any]) -> Path:
    return write_mapping(
        tmp_path,
        demo,
        methods,
        service="fleettest.v1.Fleet",
        descriptor="fleettest.v1.fleet_pb2",
    )


FIND = {
    "sql": "SELECT plate, owner_id FROM vehicles WHERE plate IN :plates ORDER BY plate",
    "result": "many",
    "into": "rows",
    "fields": {"owner_id": "owner.id"},
}


def test_repeated_parameter_binds_a_list_into_a_repeated_field(
    fleet: ModuleType, demo: Path, tmp_path: Path
) -> None:
    with running(write_fleet_mapping(tmp_path, demo, {"Find": FIND})) as adapter:
        request = fleet.FindRequest(plates=[SAMPLE_PLATE, SAMPLE_UNINSPECTED_PLATE, "9Z-0000"])
        reply = fleet.FindResponse.FromString(
            adapter.unary(call("/fleettest.v1.Fleet/Find"), request.SerializeToString())
        )
        assert [row.plate for row in reply.rows] == [SAMPLE_PLATE, SAMPLE_UNINSPECTED_PLATE]
        assert [row.owner.id for row in reply.rows] == [SAMPLE_OWNER_WITH_VEHICLES] * 2

        empty = adapter.unary(call("/fleettest.v1.Fleet/Find"), b"")  # no plates: IN ()
        assert fleet.FindResponse.FromString(empty).rows == []


def test_nested_and_optional_parameters(fleet: ModuleType, demo: Path, tmp_path: Path) -> None:
    stream = {
        "sql": "SELECT plate FROM vehicles WHERE owner_id = :owner"
        " AND (:min_year IS NULL OR model_year >= :min_year)"
        " AND (:after IS NULL OR registered_on > :after)"
        " AND (:since IS NULL OR last_inspection >= :since)"
        " ORDER BY plate",
        "params": {
            "owner": "filter.owner_id",
            "min_year": "filter.min_year",
            "after": "filter.registered_after",
            "since": "filter.inspected_since",
        },
    }
    with running(write_fleet_mapping(tmp_path, demo, {"Stream": stream})) as adapter:

        def plates(**filter_fields: Any) -> list[str]:
            request = fleet.FindRequest(
                filter=fleet.Filter(owner_id=SAMPLE_OWNER_WITH_VEHICLES, **filter_fields)
            )
            items = adapter.stream(call("/fleettest.v1.Fleet/Stream"), request.SerializeToString())
            return [fleet.Row.FromString(item).plate for item in items]

        assert tuple(plates()) == SAMPLE_OWNER_PLATES  # optional unset -> NULL -> no filter
        assert plates(min_year=2019) == ["1B-5678", SAMPLE_UNINSPECTED_PLATE]
        assert plates(min_year=0) == list(SAMPLE_OWNER_PLATES)  # set to 0 is not unset
        after = fleet.Filter().registered_after
        after.FromDatetime(datetime(2019, 1, 1, tzinfo=UTC))
        assert plates(registered_after=after) == ["1B-5678", SAMPLE_UNINSPECTED_PLATE]
        since = fleet.Day(year=2024, month=1, day=1)
        assert plates(inspected_since=since) == [SAMPLE_PLATE]
        with pytest.raises(InvalidArgument, match="inspected_since is not a valid date"):
            plates(inspected_since=fleet.Day(year=2024, month=13, day=1))


ECHO_ALL_TYPES = (
    "SELECT 'P-1' AS plate, 'Bus' AS kind, 1 AS taxed, 0.25 AS ratio, X'00FF' AS blob,"
    " 9007199254740993 AS big, '2024-06-01T08:30:00+07:00' AS at, '2024-02-29' AS day,"
    " 'o-1' AS owner_id, 42 AS note, '7' AS small"
)


def test_every_column_type_converts(fleet: ModuleType, demo: Path, tmp_path: Path) -> None:
    echo = {"sql": ECHO_ALL_TYPES, "fields": {"owner_id": "owner.id"}}
    with running(write_fleet_mapping(tmp_path, demo, {"Echo": echo})) as adapter:
        row = fleet.Row.FromString(adapter.unary(call("/fleettest.v1.Fleet/Echo"), b""))

    assert row.plate == "P-1"
    assert row.kind == fleet.KIND_BUS  # "Bus": short name, any case
    assert row.taxed is True
    assert row.ratio == 0.25
    assert row.blob == b"\x00\xff"
    assert row.big == 9007199254740993  # beyond a double's precision: kept exact
    assert row.at.ToDatetime(tzinfo=UTC) == datetime(2024, 6, 1, 1, 30, tzinfo=UTC)
    assert (row.day.year, row.day.month, row.day.day) == (2024, 2, 29)
    assert row.owner.id == "o-1"
    assert row.note == "42"
    assert row.small == 7


@pytest.mark.parametrize(
    ("value", "field", "expected"),
    [
        (Decimal("12"), "big", 12),
        (Decimal("0.125"), "ratio", 0.125),
        (Decimal("12.50"), "note", "12.50"),
        (2, "kind", 2),
        ("KIND_CAR", "kind", 1),
        ("false", "taxed", False),
        (0, "taxed", False),
        (memoryview(b"ab"), "blob", b"ab"),
        ("héllo", "blob", "héllo".encode()),
    ],
)
def test_scalar_conversions(fleet: ModuleType, value: object, field: str, expected: object) -> None:
    descriptor = fleet.Row.DESCRIPTOR.fields_by_name[field]
    message = fleet.Row()
    sql_module.field_writer(descriptor, UTC)(message, value)
    assert getattr(message, field) == expected


def test_unconvertible_value_is_internal_without_details(
    fleet: ModuleType, demo: Path, tmp_path: Path
) -> None:
    echo = {"sql": "SELECT 'spaceship' AS kind FROM vehicles LIMIT 1"}
    with (
        running(write_fleet_mapping(tmp_path, demo, {"Echo": echo})) as adapter,
        pytest.raises(Internal) as caught,
    ):
        adapter.unary(call("/fleettest.v1.Fleet/Echo"), b"")
    assert caught.value.code == grpc.StatusCode.INTERNAL
    for secret in ("spaceship", "SELECT", "vehicles LIMIT", "kind"):
        assert secret not in caught.value.message


def test_a_stream_of_many_rows_is_fetched_in_batches(
    fleet: ModuleType, demo: Path, tmp_path: Path
) -> None:
    many = {
        "sql": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)"
        " SELECT printf('P-%05d', i) AS plate FROM n"
    }
    with running(write_fleet_mapping(tmp_path, demo, {"Stream": many})) as adapter:
        items = adapter.stream(call("/fleettest.v1.Fleet/Stream"), b"")
        plates = [fleet.Row.FromString(item).plate for item in items]
    assert len(plates) == 5000
    assert (plates[0], plates[-1]) == ("P-00001", "P-05000")


# --------------------------------------------------------------------------- start-up validation

GET = "SELECT plate FROM vehicles WHERE plate = :plate"


@pytest.mark.parametrize(
    ("methods", "where", "what"),
    [
        (
            {"GetTruck": {"sql": GET}},
            "methods.GetTruck",
            "vehicles.v1.VehicleRegistry has no method 'GetTruck' "
            "(it has GetVehicle, ListVehiclesByOwner)",
        ),
        (
            {"GetVehicle": {"sql": GET, "params": {"plate": "number_plate"}}},
            "methods.GetVehicle.params.plate",
            "parameter :plate: vehicles.v1.GetVehicleRequest has no field 'number_plate'",
        ),
        (
            {"GetVehicle": {"sql": "SELECT plate FROM vehicles WHERE plate = :plate_no"}},
            "methods.GetVehicle.sql",
            "parameter :plate_no is not bound",
        ),
        (
            {"GetVehicle": {"sql": GET, "params": {"plate": "plate", "owner": "plate"}}},
            "methods.GetVehicle.params.owner",
            "the statement has no parameter :owner",
        ),
        (
            {"GetVehicle": {"sql": GET, "result": "many"}},
            "methods.GetVehicle.into",
            "a unary 'many' result needs 'into'",
        ),
        (
            {"ListVehiclesByOwner": {"sql": GET.replace("plate =", "owner_id ="), "result": "one"}},
            "methods.ListVehiclesByOwner.result",
            "a server-streaming method takes 'many'",
        ),
        (
            {"GetVehicle": {"sql": GET, "result": "single"}},
            "methods.GetVehicle.result",
            "must be 'one' or 'many', not 'single'",
        ),
        (
            {"GetVehicle": {"sq1": GET}},
            "methods.GetVehicle",
            "unknown key 'sq1'; allowed: fields, into, page, params, result, sql",
        ),
        (
            {"GetVehicle": {"sql": GET, "fields": {"plate": "owner_id.value"}}},
            "methods.GetVehicle.fields.plate",
            "column 'plate': 'owner_id' has no fields to select with 'owner_id.value'",
        ),
        (
            {"GetVehicle": {"sql": GET, "fields": {"registered_on": "registered"}}},
            "methods.GetVehicle.fields.registered_on",
            "vehicles.v1.Vehicle has no field 'registered' (it has plate, type,",
        ),
    ],
)
def test_mapping_mistakes_are_named_when_loaded(
    demo: Path, tmp_path: Path, methods: dict[str, Any], where: str, what: str
) -> None:
    mapping = write_mapping(tmp_path, demo, methods)
    with pytest.raises(ConfigError) as caught:
        SqlAdapter.from_file(mapping)
    assert caught.value.message.startswith(f"{mapping}: {where}: ")
    assert what in caught.value.message


@pytest.mark.parametrize(
    ("sql", "fields", "where", "what"),
    [
        (
            "SELECT plate FROM vehicle WHERE plate = :plate",
            {},
            "methods.GetVehicle.sql",
            "the statement does not prepare against the database: no such table: vehicle",
        ),
        (
            "SELECT plate, registered_on FROM vehicles WHERE plate = :plate",
            {},
            "methods.GetVehicle.sql",
            "column 'registered_on': vehicles.v1.Vehicle has no field 'registered_on'",
        ),
        (
            GET,
            {"registered_on": "registration_date"},
            "methods.GetVehicle.fields.registered_on",
            "the statement returns no column 'registered_on' (it returns plate)",
        ),
        (
            # SQLite renames the twin 'plate:1' inside the probe; still named as 'plate'.
            "SELECT plate, plate FROM vehicles WHERE plate = :plate",
            {},
            "methods.GetVehicle.sql",
            "the statement returns two columns named 'plate'; each column fills one field",
        ),
        (
            "SELECT plate, owner_id AS PLATE FROM vehicles WHERE plate = :plate",
            {},
            "methods.GetVehicle.sql",
            "the statement returns two columns named 'plate'",  # SQLite: names ignore case
        ),
        (
            "SELECT 1; SELECT plate FROM vehicles WHERE plate = :plate",
            {},
            "methods.GetVehicle.sql",
            "does not prepare",
        ),
    ],
)
def test_statement_mistakes_are_named_at_start(
    demo: Path, tmp_path: Path, sql: str, fields: dict[str, str], where: str, what: str
) -> None:
    mapping = write_mapping(tmp_path, demo, {"GetVehicle": {"sql": sql, "fields": fields}})
    adapter = SqlAdapter.from_file(mapping)
    with pytest.raises(ConfigError) as caught:
        adapter.start()
    assert caught.value.message.startswith(f"{mapping}: {where}: ")
    assert what in caught.value.message
    assert not adapter.health().ok  # a failed start leaves nothing running


@pytest.mark.parametrize(
    ("top", "where", "what"),
    [
        ({"service": "vehicles.v1.Garage"}, "service", "'vehicles.v1.Garage' is not defined in"),
        ({"descriptor": "spean.demo.nowhere_pb2"}, "descriptor", "cannot import Python module"),
        ({"descriptor": "spean.gateway.errors"}, "descriptor", "is not a generated _pb2 module"),
        (
            {"database": "oracle://db/mpwt"},
            "database",
            "oracle databases are not supported; use SQLite, PostgreSQL or MySQL/MariaDB",
        ),
        (
            {"database": "postgresql+psycopg2://db/mpwt"},
            "database",
            "driver 'psycopg2' is not supported for postgresql; use postgresql+psycopg://",
        ),
        (
            {"database": {"url": "postgresql://db/mpwt", "pool_size": 0}},
            "database.pool_size",
            "must be a number from 1 to 1000",
        ),
        (
            {"database": {"url": "postgresql://db/mpwt", "password_file": "nowhere.txt"}},
            "database.password_file",
            "cannot read",
        ),
        ({"database": "sqlite://"}, "database", "must be a file path"),
        ({"database": "not a url"}, "database", "is not a SQLAlchemy URL"),
        ({"database": {"url": "sqlite:///x.db", "readonly": True}}, "database", "unknown key"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone 'Mars/Olympus'"),
        ({"methods": {}}, "methods", "must list at least one method"),
        ({"colour": "blue"}, "mapping file", "unknown key 'colour'"),
    ],
)
def test_service_mistakes_are_named(
    demo: Path, tmp_path: Path, top: dict[str, Any], where: str, what: str
) -> None:
    mapping = write_mapping(tmp_path, demo, {"GetVehicle": {"sql": GET}}, **top)
    with pytest.raises(ConfigError) as caught:
        SqlAdapter.from_file(mapping)
    assert caught.value.message.startswith(f"{mapping}: {where}: ")
    assert what in caught.value.message


SCHOOLS_PROTO = """
syntax = "proto3";
package schoolstest.v1;
service Schools { rpc GetSchool(GetSchoolRequest) returns (School); }
message GetSchoolRequest { string code = 1; }
message School { string code = 1; string name = 2; }
"""


def test_python_path_finds_a_module_generated_beside_the_mapping(
    demo: Path, tmp_path: Path
) -> None:
    """An IT team's generated code lives beside its mapping, outside any installed package."""
    lib = tmp_path / "lib"
    (lib / "schoolstest" / "v1").mkdir(parents=True)
    (lib / "schoolstest" / "v1" / "schools.proto").write_text(SCHOOLS_PROTO)
    assert (
        protoc.main(["protoc", f"-I{lib}", f"--python_out={lib}", "schoolstest/v1/schools.proto"])
        == 0
    )
    get = {"sql": "SELECT plate AS code, make AS name FROM vehicles WHERE plate = :code"}
    top = {"service": "schoolstest.v1.Schools", "descriptor": "schoolstest.v1.schools_pb2"}
    mapping = write_mapping(tmp_path, demo, {"GetSchool": get}, **top)
    with pytest.raises(
        ConfigError, match=r"cannot import Python module 'schoolstest\.v1\.schools_pb2'"
    ):
        SqlAdapter.from_file(mapping)  # not on the import path yet

    mapping = write_mapping(tmp_path, demo, {"GetSchool": get}, python_path="lib", **top)
    try:
        with running(mapping) as adapter:
            assert list(adapter.methods()) == ["/schoolstest.v1.Schools/GetSchool"]
            request = adapter.services()[0].methods_by_name["GetSchool"].input_type
            reply = adapter.unary(
                call("/schoolstest.v1.Schools/GetSchool"),
                sql_module.message_class(request)(code=SAMPLE_PLATE).SerializeToString(),
            )
        assert SAMPLE_PLATE.encode() in reply
    finally:
        sys.path.remove(str(lib))


@pytest.mark.parametrize(
    ("python_path", "what"),
    [
        ("nowhere", "python_path: {tmp}/nowhere is not a folder"),
        (["lib", 3], "python_path: must be a folder or a list of folders"),
        ({"lib": True}, "python_path: must be a folder or a list of folders"),
    ],
)
def test_python_path_mistakes_are_named(
    demo: Path, tmp_path: Path, python_path: object, what: str
) -> None:
    mapping = write_mapping(tmp_path, demo, {"GetVehicle": {"sql": GET}}, python_path=python_path)
    with pytest.raises(ConfigError) as caught:
        SqlAdapter.from_file(mapping)
    assert caught.value.message == f"{mapping}: {what.format(tmp=tmp_path)}"


def test_missing_database_file_is_a_config_error_at_start(tmp_path: Path, demo: Path) -> None:
    mapping = tmp_path / "mpwt-vehicles.yaml"
    mapping.write_text((demo / "mpwt-vehicles.yaml").read_text())  # no database beside it
    adapter = SqlAdapter.from_file(mapping)  # loading needs no database
    with pytest.raises(ConfigError) as caught:
        adapter.start()
    expected = f"{mapping}: database: SQLite file {tmp_path / 'mpwt-vehicles.db'} does not exist"
    assert caught.value.message == expected


def test_a_file_that_is_not_a_database_is_a_config_error(tmp_path: Path, demo: Path) -> None:
    (tmp_path / "mpwt-vehicles.db").write_bytes(b"plate,make\n2A-1234,Toyota\n" * 50)
    mapping = tmp_path / "mpwt-vehicles.yaml"
    mapping.write_text((demo / "mpwt-vehicles.yaml").read_text())
    with pytest.raises(ConfigError, match="is not a readable SQLite database"):
        SqlAdapter.from_file(mapping).start()


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    mapping = tmp_path / "broken.yaml"
    mapping.write_text("service: a.B\nmethods:\n  Get: {sql: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML at line \d"):
        SqlAdapter.from_file(mapping)


def test_the_demo_mappings_all_start(demo: Path) -> None:
    for service in demo_data.DEMO_SERVICES:
        with running(demo / service.mapping) as adapter:
            assert adapter.health().ok
            assert {p.split("/")[1] for p in adapter.methods()} == {service.service}
