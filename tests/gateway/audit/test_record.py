"""AuditRecord: exact round trip, canonical bytes, refusal of anything else."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spean.gateway.audit.record import AuditRecord, Kind, Side, iso_ns
from spean.gateway.errors import InvalidArgument
from spean.v1 import audit_pb2

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
UINT64 = st.integers(min_value=0, max_value=2**64 - 1)
UINT32 = st.integers(min_value=0, max_value=2**32 - 1)


def full_record() -> AuditRecord:
    """A record with every field set to a non-default value."""
    return AuditRecord(
        exchange_id="0192c0de-1234-7abc-8def-0123456789ab",
        side=Side.PROVIDER,
        origin="KH/GOV/MPWT/ss1#worker-3",
        client="KH/GOV/MOH/nhis",
        service="KH/GOV/MPWT/vehicles",
        method="/vehicles.v1.VehicleRegistry/GetVehicle",
        user="KH:doctor-4711",
        purpose="case 2024/118 \u1780\u17d2\u179a",  # non-ASCII survives
        received_at_ns=1_732_492_800_000_000_001,
        forwarded_at_ns=1_732_492_800_000_050_002,
        answered_at_ns=1_732_492_800_000_900_003,
        status="PERMISSION_DENIED",
        message="KH/GOV/MOH/nhis has no access right for GetVehicle",
        request_sha256=hashlib.sha256(b"request").digest(),
        request_size=2**40 + 7,
        response_sha256=hashlib.sha256(b"response").digest(),
        response_size=2**63 + 11,
        response_messages=2**32 - 1,
        request_token="eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ4In0.c2ln",
        response_token="eyJhbGciOiJFZERTQSJ9.eyJzdGF0dXMiOiJPSyJ9.c2ln",
        peer_certificate_sha256="ab" * 32,
        latency_us=-1,  # int64: a clock step can make it negative; it must still encode
        witnessed_checkpoint=b"KH/GOV/MPWT/ss1#worker-3\n42\nroot\n",
        kind=Kind.EVENT_DELIVERY,
        topic="ownership-transferred",
        event_id="5c1f4b7e-2d3a-4f6b-8e9d-0a1b2c3d4e5f",
        sequence=2**64 - 1,
        event_token="eyJhbGciOiJFUzI1NiJ9.eyJldnQiOiJ4In0.c2ln",
        ack_token="eyJhbGciOiJFZERTQSJ9.eyJzZXEiOjF9.c2ln",
        subject_pseudonym=hashlib.sha256(b"subject").digest(),
    )


def test_the_subject_pseudonym_is_appended_and_leaves_older_records_unchanged() -> None:
    with_subject = full_record()
    without = dataclasses.replace(with_subject, subject_pseudonym=b"")

    # Field 40 (tag 0xc2 0x02, 32 bytes) goes last; without it a record has
    # exactly the bytes it had before the field existed, so old logs verify.
    field_40 = b"\xc2\x02\x20" + hashlib.sha256(b"subject").digest()
    assert with_subject.to_bytes() == without.to_bytes() + field_40
    assert AuditRecord.from_bytes(without.to_bytes()).subject_pseudonym == b""


def test_round_trip_of_every_field_is_exact() -> None:
    record = full_record()
    data = record.to_bytes()

    assert AuditRecord.from_bytes(data) == record
    # Every field really went over the wire: none was left at its default.
    parsed = audit_pb2.AuditRecord.FromString(data)
    assert len(parsed.ListFields()) == len(dataclasses.fields(AuditRecord))


def test_dataclass_and_proto_have_the_same_fields() -> None:
    proto_fields = {field.name for field in audit_pb2.AuditRecord.DESCRIPTOR.fields}
    assert {field.name for field in dataclasses.fields(AuditRecord)} == proto_fields


def test_bytes_are_deterministic_and_pinned() -> None:
    record = AuditRecord(
        exchange_id="x1",
        side=Side.CONSUMER,
        origin="A/B/C/s#w",
        received_at_ns=5,
        status="OK",
        response_messages=1,
    )
    same = AuditRecord.from_bytes(record.to_bytes())

    assert record.to_bytes() == same.to_bytes() == record.to_bytes()
    # Field numbers and order are a contract with every log ever written.
    assert record.to_bytes().hex() == (
        "0a027831"  # 1 exchange_id "x1"
        "1001"  # 2 side CONSUMER
        "1a09412f422f432f732377"  # 3 origin "A/B/C/s#w"
        "4805"  # 9 received_at_ns 5
        "62024f4b"  # 12 status "OK"
        "9001"
        "01"  # 18 response_messages 1
    )


@settings(max_examples=200, deadline=None)
@given(
    exchange_id=st.text(max_size=40),
    side=st.sampled_from(Side),
    origin=st.text(min_size=1, max_size=40),
    received_at_ns=INT64,
    answered_at_ns=INT64,
    status=st.text(max_size=20),
    request_sha256=st.binary(max_size=32),
    request_size=UINT64,
    response_messages=UINT32,
    latency_us=INT64,
    witnessed_checkpoint=st.binary(max_size=64),
)
def test_round_trip_holds_for_any_values(
    exchange_id: str,
    side: Side,
    origin: str,
    received_at_ns: int,
    answered_at_ns: int,
    status: str,
    request_sha256: bytes,
    request_size: int,
    response_messages: int,
    latency_us: int,
    witnessed_checkpoint: bytes,
) -> None:
    record = AuditRecord(
        exchange_id=exchange_id,
        side=side,
        origin=origin,
        received_at_ns=received_at_ns,
        answered_at_ns=answered_at_ns,
        status=status,
        request_sha256=request_sha256,
        request_size=request_size,
        response_messages=response_messages,
        latency_us=latency_us,
        witnessed_checkpoint=witnessed_checkpoint,
    )
    data = record.to_bytes()
    assert AuditRecord.from_bytes(data) == record
    assert AuditRecord.from_bytes(data).to_bytes() == data


def test_record_is_a_frozen_slotted_value() -> None:
    record = full_record()
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = "OK"  # type: ignore[misc]
    assert not hasattr(record, "__dict__")


def test_value_out_of_range_is_refused_naming_the_exchange() -> None:
    record = dataclasses.replace(full_record(), request_size=-1)
    with pytest.raises(InvalidArgument, match="0192c0de-1234"):
        record.to_bytes()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xff\xff", "not a valid AuditRecord"),
        (b"\x0a\x05ab", "not a valid AuditRecord"),  # length runs past the end
        (b"\x0a\x02\xff\xfe\x10\x01", "not a valid AuditRecord"),  # bad UTF-8 in a string
        (b"", "side is unspecified"),
        (b"\x0a\x01x", "side is unspecified"),
        (b"\x10\x07", "side is unknown value 7"),
        (b"\x10\x01\xf8\x07\x01", "unknown field numbers \\[127\\]"),
        (b"\x08\x01\x10\x01", "unknown field numbers \\[1\\]"),  # wrong wire type for field 1
    ],
)
def test_garbage_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=reason):
        AuditRecord.from_bytes(data)


def test_non_canonical_encodings_of_a_valid_record_are_refused() -> None:
    canonical = AuditRecord(
        exchange_id="x1", side=Side.CONSUMER, origin="o", received_at_ns=0, status="OK"
    ).to_bytes()
    exchange_id, side, rest = canonical[:4], canonical[4:6], canonical[6:]
    reordered = side + exchange_id + rest
    repeated = exchange_id + canonical
    padded_varint = exchange_id + b"\x10\x81\x00" + rest  # side 1 in two bytes
    explicit_default = canonical + b"\x58\x00"  # answered_at_ns = 0 written out

    for variant in (reordered, repeated, padded_varint, explicit_default):
        # protobuf itself decodes each variant to the same value...
        assert audit_pb2.AuditRecord.FromString(variant) == audit_pb2.AuditRecord.FromString(
            canonical
        )
        # ...but a stored record has exactly one byte form.
        with pytest.raises(InvalidArgument, match="not canonical"):
            AuditRecord.from_bytes(variant)


def test_times_keep_every_nanosecond_in_iso_8601_utc() -> None:
    assert iso_ns(1_796_298_137_128_515_770) == "2026-12-03T11:42:17.128515770Z"
    assert iso_ns(5) == "1970-01-01T00:00:00.000000005Z"
    # A forged manifest or record time is named, not raised on.
    assert iso_ns(10**30) == "not a time"


def test_every_kind_round_trips_and_an_unknown_kind_is_refused() -> None:
    for kind in Kind:
        record = dataclasses.replace(full_record(), kind=kind)
        assert AuditRecord.from_bytes(record.to_bytes()).kind is kind
    assert not AuditRecord(
        exchange_id="x", side=Side.CONSUMER, origin="o", received_at_ns=1, status="OK"
    ).is_event
    message = audit_pb2.AuditRecord.FromString(full_record().to_bytes())
    message.kind = 9  # type: ignore[assignment]
    with pytest.raises(InvalidArgument, match="kind is unknown value 9"):
        AuditRecord.from_bytes(message.SerializeToString(deterministic=True))
