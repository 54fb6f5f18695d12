"""The audit record: one per exchange and side (or publish/subscribe step), canonical bytes.

`AuditRecord` is the Python value of `spean.v1.AuditRecord`
(protos/spean/v1/audit.proto documents every field). Invariants:

- `to_bytes()` is deterministic: the same value always gives the same bytes
  (deterministic protobuf serialization, fields in number order, proto3
  defaults omitted). Those bytes are what a store keeps and what the hash chain
  and the Merkle tree hash; nobody re-encodes a stored record.
- `from_bytes()` accepts only canonical bytes: exactly what `to_bytes()` gives
  for the decoded value. Unknown fields, duplicated or reordered fields and
  unknown enum values are refused with `InvalidArgument`, so one record value
  has one byte form and `from_bytes(b).to_bytes() == b` always holds.

`kind` tells an exchange record (`Kind.EXCHANGE`, the default, encoded as
nothing) from the records of publish/subscribe (docs/protocol.md, section
13.6), which also fill `topic`, `event_id`, `sequence` and the event and ack
tokens.

This module runs on every exchange: the value is a plain frozen dataclass with
no validation beyond what protobuf does while encoding.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet

from spean.gateway.errors import InvalidArgument
from spean.v1 import audit_pb2

_Pb = audit_pb2.AuditRecord
NS_PER_SECOND = 1_000_000_000


class Side(StrEnum):
    """Which face of the security server wrote the record."""

    CONSUMER = "CONSUMER"
    PROVIDER = "PROVIDER"


_SIDE_TO_PB: dict[Side, audit_pb2.AuditRecord.Side] = {
    Side.CONSUMER: _Pb.CONSUMER,
    Side.PROVIDER: _Pb.PROVIDER,
}
_SIDE_FROM_PB: dict[int, Side] = {number: side for side, number in _SIDE_TO_PB.items()}


class Kind(StrEnum):
    """What the record is of: an exchange, or a publish/subscribe step (docs/pubsub.md)."""

    EXCHANGE = "EXCHANGE"
    EVENT_PUBLISH = "EVENT_PUBLISH"
    EVENT_DELIVERY = "EVENT_DELIVERY"
    EVENT_ACK = "EVENT_ACK"


_KIND_TO_PB: dict[Kind, audit_pb2.AuditRecord.Kind] = {
    Kind.EXCHANGE: _Pb.EXCHANGE,
    Kind.EVENT_PUBLISH: _Pb.EVENT_PUBLISH,
    Kind.EVENT_DELIVERY: _Pb.EVENT_DELIVERY,
    Kind.EVENT_ACK: _Pb.EVENT_ACK,
}
_KIND_FROM_PB: dict[int, Kind] = {number: kind for kind, number in _KIND_TO_PB.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    """What one security server saw of one exchange (see audit.proto).

    Timestamps are Unix nanoseconds, 0 meaning "not reached"; digests are raw
    32-byte SHA-256 values, empty when there was nothing to digest.
    """

    exchange_id: str
    side: Side
    origin: str
    received_at_ns: int
    status: str
    client: str = ""
    service: str = ""
    method: str = ""
    user: str = ""
    purpose: str = ""
    forwarded_at_ns: int = 0
    answered_at_ns: int = 0
    message: str = ""
    request_sha256: bytes = b""
    request_size: int = 0
    response_sha256: bytes = b""
    response_size: int = 0
    response_messages: int = 0
    request_token: str = ""
    response_token: str = ""
    peer_certificate_sha256: str = ""
    latency_us: int = 0
    witnessed_checkpoint: bytes = b""
    # Publish/subscribe (protocol.md 13.6); defaults for an exchange, so an
    # exchange record's bytes are what they were before these fields existed.
    kind: Kind = Kind.EXCHANGE
    topic: str = ""
    event_id: str = ""
    sequence: int = 0
    event_token: str = ""
    ack_token: str = ""

    @property
    def is_event(self) -> bool:
        return self.kind is not Kind.EXCHANGE

    subject_pseudonym: bytes = b""

    def to_bytes(self) -> bytes:
        """The canonical bytes of this record.

        Raises `InvalidArgument` when a value does not fit its protobuf field
        (a negative size, an integer out of range, a wrong type): that is a
        bug in the code that built the record.
        """
        try:
            message = _Pb(
                exchange_id=self.exchange_id,
                side=_SIDE_TO_PB[self.side],
                origin=self.origin,
                client=self.client,
                service=self.service,
                method=self.method,
                user=self.user,
                purpose=self.purpose,
                received_at_ns=self.received_at_ns,
                forwarded_at_ns=self.forwarded_at_ns,
                answered_at_ns=self.answered_at_ns,
                status=self.status,
                message=self.message,
                request_sha256=self.request_sha256,
                request_size=self.request_size,
                response_sha256=self.response_sha256,
                response_size=self.response_size,
                response_messages=self.response_messages,
                request_token=self.request_token,
                response_token=self.response_token,
                peer_certificate_sha256=self.peer_certificate_sha256,
                latency_us=self.latency_us,
                witnessed_checkpoint=self.witnessed_checkpoint,
                kind=_KIND_TO_PB[self.kind],
                topic=self.topic,
                event_id=self.event_id,
                sequence=self.sequence,
                event_token=self.event_token,
                ack_token=self.ack_token,
                subject_pseudonym=self.subject_pseudonym,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(
                f"audit record of exchange {self.exchange_id!r} cannot be encoded: {exc}"
            ) from exc
        return message.SerializeToString(deterministic=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> AuditRecord:
        """Decode canonical record bytes; `InvalidArgument` names what is wrong."""
        return cls.from_message(decode_canonical(data))

    @classmethod
    def from_message(cls, message: audit_pb2.AuditRecord) -> AuditRecord:
        """The value of a message `decode_canonical` returned."""
        return cls(
            exchange_id=message.exchange_id,
            side=_SIDE_FROM_PB[message.side],
            origin=message.origin,
            client=message.client,
            service=message.service,
            method=message.method,
            user=message.user,
            purpose=message.purpose,
            received_at_ns=message.received_at_ns,
            forwarded_at_ns=message.forwarded_at_ns,
            answered_at_ns=message.answered_at_ns,
            status=message.status,
            message=message.message,
            request_sha256=message.request_sha256,
            request_size=message.request_size,
            response_sha256=message.response_sha256,
            response_size=message.response_size,
            response_messages=message.response_messages,
            request_token=message.request_token,
            response_token=message.response_token,
            peer_certificate_sha256=message.peer_certificate_sha256,
            latency_us=message.latency_us,
            witnessed_checkpoint=message.witnessed_checkpoint,
            kind=_KIND_FROM_PB[message.kind],
            topic=message.topic,
            event_id=message.event_id,
            sequence=message.sequence,
            event_token=message.event_token,
            ack_token=message.ack_token,
            subject_pseudonym=message.subject_pseudonym,
        )


def decode_canonical(data: bytes) -> audit_pb2.AuditRecord:
    """The protobuf message of canonical record bytes, checked as `AuditRecord.from_bytes`
    checks them (a known side and kind, no unknown field, canonical form) without building the
    value: for readers that look at a few fields of every record (the verifier's
    content pass). `InvalidArgument` names what is wrong."""
    try:
        message = _Pb.FromString(data)
    except DecodeError as exc:
        raise InvalidArgument(f"audit record bytes are not a valid AuditRecord: {exc}") from exc
    if message.side not in _SIDE_FROM_PB:
        what = "unspecified" if message.side == 0 else f"unknown value {message.side}"
        raise InvalidArgument(f"audit record side is {what}")
    if message.kind not in _KIND_FROM_PB:
        raise InvalidArgument(f"audit record kind is unknown value {message.kind}")
    # Re-encoding is the exact test of canonical form: it normalises field order,
    # duplicates and varint padding. A decoded message without unknown fields
    # holds exactly the record's values (audit.proto has no field with
    # presence), so it re-encodes as `AuditRecord.to_bytes()` would.
    fields = UnknownFieldSet(message)
    if len(fields) or message.SerializeToString(deterministic=True) != data:
        unknown = sorted({fields[i].field_number for i in range(len(fields))})
        if unknown:
            raise InvalidArgument(
                f"audit record has unknown field numbers {unknown} (written by a newer "
                "version, or not an AuditRecord)"
            )
        raise InvalidArgument(
            "audit record bytes are not canonical (fields out of order, repeated or "
            "padded); a stored record must be kept exactly as written"
        )
    return message


def iso_ns(ns: int) -> str:
    """A record's Unix-nanosecond time as ISO 8601 UTC, every digit kept
    (2026-12-03T11:38:25.534741123Z); "not a time" for a value no calendar date
    holds (a forged or damaged field is reported, never raised on)."""
    seconds, fraction = divmod(ns, NS_PER_SECOND)
    try:
        moment = dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None)
    except (OverflowError, ValueError, OSError):
        return "not a time"
    return f"{moment.isoformat(timespec='seconds')}.{fraction:09d}Z"
