"""Reconcile a consumer's log with a provider's, and look up one exchange, in bundles read.

Both sides write one record per exchange, under the same exchange id. Given a
consumer bundle and a provider bundle, `reconcile` reports:

- exchanges the consumer forwarded to the provider's member that the
  provider's log does not hold (`missing-at-provider`), and exchanges the
  provider answered for the consumer's member that the consumer's log does
  not hold (`missing-at-consumer`);
- exchanges whose request digest, response digest or status differ;
- checkpoints of the provider's log that the consumer witnessed (recorded in
  `witnessed_checkpoint`) and that the provider's log contradicts: a
  consistency proof, built from the provider's records, from the witnessed
  size to the provider's latest checkpoint fails, so the provider rewrote
  its log after answering (`witness-contradicted`); or the witnessed size
  lies beyond the provider's bundle (`witness-beyond-log`).

Bundles should be verified first (`spean.gateway.audit.verify`): reconcile trusts
their records and checkpoints as given. Parts of a log exported for a time
range can miss exchanges near the range's edges; compare whole logs or
overlapping ranges.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from spean.gateway.audit.bundle import Bundle
from spean.gateway.audit.checkpoint import CheckpointError, parse_checkpoint
from spean.gateway.audit.merkle import (
    CompactRange,
    ProofError,
    consistency_proof,
    leaf_hashes,
    verify_consistency,
)
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.errors import InvalidArgument, SpeanError
from spean.gateway.identifiers import MemberId, SubsystemId, origin_server


class Kind(StrEnum):
    MISSING_AT_PROVIDER = "missing-at-provider"
    MISSING_AT_CONSUMER = "missing-at-consumer"
    STATUS_DIFFERS = "status-differs"
    REQUEST_DIFFERS = "request-digest-differs"
    RESPONSE_DIFFERS = "response-digest-differs"
    WITNESS_CONTRADICTED = "witness-contradicted"
    WITNESS_BEYOND_LOG = "witness-beyond-log"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: Kind
    exchange_id: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind.value, "exchange_id": self.exchange_id, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """`matched` exchanges found on both sides; `witnessed`: consumer records that
    hold a checkpoint of the provider's log, each checked against it."""

    matched: int
    findings: tuple[Finding, ...] = field(default=())
    witnessed: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "matched": self.matched,
            "witnessed": self.witnessed,
            "findings": [f.to_dict() for f in self.findings],
        }


def _member_of_origin(origin: str) -> MemberId:
    return origin_server(origin).member


def _member_of_subsystem(text: str) -> MemberId | None:
    try:
        return SubsystemId.parse(text).member
    except SpeanError:
        return None


def _records(bundle: Bundle, side: Side) -> dict[str, AuditRecord]:
    found: dict[str, AuditRecord] = {}
    for data in bundle.records:
        try:
            record = AuditRecord.from_bytes(data)
        except InvalidArgument:
            continue  # verify reports unreadable records; reconcile matches the rest
        if record.side is side:
            found[record.exchange_id] = record
    return found


def reconcile(consumer: Bundle, provider: Bundle) -> Reconciliation:
    """Compare both logs; see the module docstring for what is reported."""
    consumer_member = _member_of_origin(consumer.origin)
    provider_member = _member_of_origin(provider.origin)
    ours = _records(consumer, Side.CONSUMER)
    theirs = _records(provider, Side.PROVIDER)
    findings: list[Finding] = []
    matched = 0
    for exchange_id, record in ours.items():
        if _member_of_subsystem(record.service) != provider_member or not record.forwarded_at_ns:
            continue
        other = theirs.get(exchange_id)
        if other is None:
            findings.append(
                Finding(
                    Kind.MISSING_AT_PROVIDER,
                    exchange_id,
                    f"the consumer forwarded it to {record.service} ({record.status}), the "
                    "provider's log has no record of it",
                )
            )
            continue
        matched += 1
        if record.request_sha256 != other.request_sha256:
            findings.append(Finding(Kind.REQUEST_DIFFERS, exchange_id, "request digests differ"))
        if record.status != other.status:
            findings.append(
                Finding(
                    Kind.STATUS_DIFFERS,
                    exchange_id,
                    f"consumer recorded {record.status}, provider {other.status}",
                )
            )
        elif record.status == "OK" and record.response_sha256 != other.response_sha256:
            findings.append(Finding(Kind.RESPONSE_DIFFERS, exchange_id, "response digests differ"))
    for exchange_id, other in theirs.items():
        if exchange_id in ours or _member_of_subsystem(other.client) != consumer_member:
            continue
        if other.status == "UNAUTHENTICATED":
            continue  # a caller the provider could not authenticate may not be the consumer
        findings.append(
            Finding(
                Kind.MISSING_AT_CONSUMER,
                exchange_id,
                f"the provider answered {other.client} ({other.status}), the consumer's log "
                "has no record of it",
            )
        )
    witnessed: list[str] = []
    findings.extend(_check_witnessed(ours.values(), provider, witnessed))
    return Reconciliation(matched, tuple(findings), len(witnessed))


def _check_witnessed(
    records: Iterable[AuditRecord], provider: Bundle, checked: list[str]
) -> Iterator[Finding]:
    """Findings about the witnessed checkpoints of `provider`'s log; appends the
    exchange id of every record whose witness was checked to `checked`."""
    leaves = leaf_hashes(provider.records)
    latest = None
    for note in provider.checkpoints:
        try:
            signed = parse_checkpoint(note)
        except CheckpointError:
            continue
        if latest is None or signed.size > latest.size:
            latest = signed
    for record in records:
        if not record.witnessed_checkpoint:
            continue
        try:
            witnessed = parse_checkpoint(record.witnessed_checkpoint)
        except CheckpointError:
            continue  # verify reports malformed witnessed checkpoints
        if witnessed.origin != provider.origin:
            continue
        checked.append(record.exchange_id)
        size = witnessed.size
        if latest is None or size > latest.size or size > provider.stop:
            yield Finding(
                Kind.WITNESS_BEYOND_LOG,
                record.exchange_id,
                f"the consumer witnessed {provider.origin} at size {size}, beyond the "
                f"provider's bundle (size {provider.stop}): the log was truncated or the "
                "bundle is older than the exchange",
            )
            continue
        problem = _contradiction(provider, leaves, size, witnessed.root, latest.size, latest.root)
        if problem:
            yield Finding(
                Kind.WITNESS_CONTRADICTED,
                record.exchange_id,
                f"the consumer witnessed {provider.origin} at size {size}, and the provider's "
                f"log does not contain that tree: {problem}",
            )


def _contradiction(
    provider: Bundle, leaves: list[bytes], size: int, root: bytes, new_size: int, new_root: bytes
) -> str:
    """Why (size, root) is not a prefix of the provider's log, or "" when it is."""
    if provider.start == 0:
        proof = consistency_proof(leaves, size, new_size)
        try:
            verify_consistency(size, new_size, root, new_root, proof)
        except ProofError as exc:
            return f"consistency proof to size {new_size} fails ({exc.message})"
        return ""
    if size < provider.start:
        return ""  # before this bundle: nothing to compare against
    tree = CompactRange.from_state(provider.start_state)
    tree.extend(leaves[: size - provider.start])
    if tree.root() != root:
        return f"the records give another root at size {size}"
    return ""


def find_exchange(bundle: Bundle, exchange_id: str) -> Iterator[tuple[int, AuditRecord]]:
    """The records of `exchange_id` in `bundle`, with their indexes."""
    needle = exchange_id.encode("utf-8")
    for k, data in enumerate(bundle.records):
        if needle not in data:
            continue  # cheap pre-filter: the id is stored verbatim
        try:
            record = AuditRecord.from_bytes(data)
        except InvalidArgument:
            continue
        if record.exchange_id == exchange_id:
            yield bundle.start + k, record


def record_to_dict(record: AuditRecord) -> dict[str, object]:
    """A record as JSON-friendly values (digests in hex, times in ISO 8601 and ns)."""
    out: dict[str, object] = {}
    for item in dataclasses.fields(record):
        name = item.name
        value = getattr(record, name)
        if isinstance(value, bytes):
            value = (
                value.decode("utf-8", "replace") if name == "witnessed_checkpoint" else value.hex()
            )
        elif isinstance(value, Side):
            value = value.value
        out[name] = value
    return out
