"""Columns typed from the protobuf response message, rows from messages, and the version index:
plain values in, plain values out."""

from __future__ import annotations

import datetime as dt

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from spean.demo.health.v1 import health_pb2
from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.catalogue_metadata import OpenDataset, Text
from spean.gateway.errors import FailedPrecondition, InvalidArgument
from spean.gateway.opendata.model import (
    Column,
    DatasetIndex,
    FileEntry,
    RowEncoder,
    Version,
    checksums_text,
    columns_of,
    text_of,
)

VEHICLE = vehicles_pb2.Vehicle.DESCRIPTOR


def _dataset(dropped: tuple[str, ...] = ("owner_id",)) -> OpenDataset:
    return OpenDataset(
        id="fleet",
        subsystem="KH/GOV/MPWT/vehicles",
        title=Text("Fleet"),
        description=Text("Vehicles"),
        method="/vehicles.v1.VehicleRegistry/ListVehiclesByOwner",
        requests=("{}",),
        licence="CC0-1.0",
        frequency="DAILY",
        dropped=dropped,
    )


def test_columns_are_the_fields_typed_less_the_dropped_ones() -> None:
    columns = {c.name: c for c in columns_of(VEHICLE, ["owner_id"])}
    assert "owner_id" not in columns
    assert list(columns)[:3] == ["plate", "type", "make"]
    assert columns["plate"] == Column("plate", "string", nullable=False)
    assert columns["type"].kind == "string"  # an enum, by name
    assert columns["year"].kind == "int32"
    assert columns["engine_cc"] == Column("engine_cc", "int32", nullable=True)  # optional
    assert columns["registration_date"] == Column("registration_date", "timestamp", nullable=True)
    report = {c.name: c for c in columns_of(health_pb2.MonthlyReport.DESCRIPTOR)}
    assert report["bed_occupancy_rate"] == Column("bed_occupancy_rate", "double", nullable=True)


def test_an_unknown_dropped_field_is_named() -> None:
    with pytest.raises(InvalidArgument, match="has no field 'owner'"):
        columns_of(VEHICLE, ["owner.id"])


def test_a_row_holds_each_value_in_column_order() -> None:
    encoder = RowEncoder(VEHICLE, _dataset())
    registered = Timestamp()
    registered.FromDatetime(dt.datetime(2013, 3, 15, tzinfo=dt.UTC))
    message = vehicles_pb2.Vehicle(
        plate="2A-1234",
        type=vehicles_pb2.VEHICLE_TYPE_CAR,
        year=2012,
        registration_date=registered,
        tax_status=vehicles_pb2.TAX_STATUS_PAID,
    )
    row = dict(zip([c.name for c in encoder.columns], encoder.values(message), strict=True))
    assert row["plate"] == "2A-1234"
    assert row["type"] == "VEHICLE_TYPE_CAR"
    assert row["engine_cc"] is None  # optional and absent: null, not 0
    assert row["colour"] == ""  # proto3 scalar: its default
    assert row["registration_date"] == dt.datetime(2013, 3, 15, tzinfo=dt.UTC)
    assert row["last_inspection"] is None
    assert text_of(row["registration_date"]) == "2013-03-15T00:00:00Z"


def test_an_answer_carrying_a_dropped_field_is_refused() -> None:
    encoder = RowEncoder(VEHICLE, _dataset())
    with pytest.raises(FailedPrecondition, match="carries owner_id, which the dataset says"):
        encoder.values(vehicles_pb2.Vehicle(plate="2A-1234", owner_id="010203040"))
    assert encoder.values(vehicles_pb2.Vehicle(plate="2A-1234"))[0] == "2A-1234"


def _version(number: int) -> Version:
    files = (FileEntry("csv", f"fleet-v{number}.csv", f"{number:064x}", 10 * number),)
    when = dt.datetime(2026, 1, number, tzinfo=dt.UTC)
    return Version(number, when, number * 3, files, (f"ex-{number}",), 7)


def test_the_index_keeps_the_files_of_the_newest_versions_only() -> None:
    index = DatasetIndex("fleet")
    removed: list[str] = []
    for number in range(1, 5):
        index, gone = index.with_version(_version(number), keep=2)
        removed.extend(gone)
    assert [v.available for v in index.versions] == [False, False, True, True]
    assert removed == ["fleet-v1.csv", "fleet-v2.csv"]
    latest = index.latest
    assert latest is not None
    assert latest.number == 4
    assert DatasetIndex.from_document(index.to_document()) == index


def test_the_index_refuses_a_gap_or_a_repeat() -> None:
    index, _ = DatasetIndex("fleet").with_version(_version(1), keep=3)
    with pytest.raises(ValueError, match="does not follow"):
        index.with_version(_version(3), keep=3)
    document = index.to_document()
    document["versions"].append(document["versions"][0])
    with pytest.raises(ValueError, match="listed at position 2"):
        DatasetIndex.from_document(document)


def test_the_checksums_file_is_what_sha256sum_checks() -> None:
    version = _version(2)
    assert checksums_text(version) == f"{2:064x}  fleet-v2.csv\n"


def test_a_dropped_nested_field_in_the_answer_is_refused_too() -> None:
    encoder = RowEncoder(VEHICLE, _dataset(("owner_id", "registration_date.seconds")))
    registered = Timestamp(seconds=1_363_305_600)
    with pytest.raises(FailedPrecondition, match=r"carries registration_date\.seconds"):
        encoder.values(vehicles_pb2.Vehicle(plate="2A-1234", registration_date=registered))
    # Without a value there, the row goes out.
    assert encoder.values(vehicles_pb2.Vehicle(plate="2A-1234"))[0] == "2A-1234"
