"""Reconcile a consumer's log with a provider's, and look up one exchange, in bundles read.

Both sides write one record per exchange, under the same exchange id. Given
two bundles, in either order, `reconcile` first works out their roles from
the bundles themselves: the member that wrote each one (its origin names the
server), and which side of the exchanges between the two members each holds
(records carry `side`; a consumer record names the provider's service, a
provider record the calling client). A pair that cannot be matched is
refused with `PairingError`, saying why: an empty bundle (it shows no side),
two bundles of one log, two bundles that hold only one and the same side, or two members that never
exchanged with each other (no record of either names the other's member).
When both members called each other, the first bundle is taken as the
consumer's and the result says so (swap the arguments for the other way).

Then it reports:

- exchanges the consumer forwarded to the provider's member that the
  provider's log does not hold (`missing-at-provider`), and exchanges the
  provider answered for the consumer's member that the consumer's log does
  not hold (`missing-at-consumer`: with the provider at OK, the consumer
  crashed before its record was durable, so its application never got the
  answer);
- exchanges whose status, request digest, response digest (status OK) or
  parties differ (`fields-differ`: client, service, method, user, purpose,
  and the data subject's pseudonym;
  a field one side left empty is compared only when the provider forwarded
  the request, so knew every field), each with both records' values;
- checkpoints of the provider's log that the consumer witnessed (recorded in
  `witnessed_checkpoint`) and that the provider's records contradict: the
  Merkle root of the provider's first `size` records is not the witnessed
  root, so the provider rewrote its log after answering
  (`witness-contradicted`); or the witnessed size lies beyond the provider's
  bundle (`witness-beyond-log`);
- what makes either bundle unfit to be compared, as findings naming the
  file and the record: records that do not decode (`unreadable-record`),
  records that do not reproduce one of the bundle's own checkpoints
  (`checkpoint-mismatch`), a checkpoint over records the bundle lacks
  (`checkpoint-beyond-records`).

Cost: linear in the records. Each bundle is read twice (once to learn its
role and check it against its own checkpoints, once to match) and the
provider's a third time only to describe differences; the provider's tree is
built on each of its first two reads, incrementally (the first checks the
bundle's own checkpoints, the second the witnessed ones), and each distinct
witnessed checkpoint is checked once against the root at its size. Memory:
one index of the provider's exchange ids (with a record index and a 16-byte
fingerprint of the compared fields), the distinct witnessed checkpoints, and the findings (with the
consumer's fields of each exchange that differs, until the last pass).

Reconcile does not check signatures (checkpoints, tokens) or the hash chain:
verify both bundles first (`spean.gateway.audit.verify`). Parts of a log
exported for a time range can miss exchanges near the range's edges; compare
whole logs or overlapping ranges.
"""

from __future__ import annotations

import hashlib
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from google.protobuf.message import DecodeError

from spean.gateway.audit.bundle import Bundle, iter_bundle_records, read_bundle_frame
from spean.gateway.audit.checkpoint import CheckpointError, parse_checkpoint
from spean.gateway.audit.merkle import CompactRange, leaf_hash
from spean.gateway.audit.progress import Progress, counted
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.errors import InvalidArgument, SpeanError
from spean.gateway.identifiers import SubsystemId, origin_server
from spean.v1 import audit_pb2

_Pb = audit_pb2.AuditRecord
_CONSUMER = _Pb.CONSUMER
_PROVIDER = _Pb.PROVIDER
_EVENT_DELIVERY = _Pb.EVENT_DELIVERY
_blake2b = hashlib.blake2b
_ENTRY = struct.Struct(">Q?16s")
"""Index entry of one provider record: record index, counts as missing at the
consumer if unmatched, fingerprint of the compared fields."""

PARTIES = ("client", "service", "method", "user", "purpose")
"""Fields besides status and digests that both sides record for one exchange."""


class Kind(StrEnum):
    MISSING_AT_PROVIDER = "missing-at-provider"
    MISSING_AT_CONSUMER = "missing-at-consumer"
    STATUS_DIFFERS = "status-differs"
    REQUEST_DIFFERS = "request-digest-differs"
    RESPONSE_DIFFERS = "response-digest-differs"
    FIELDS_DIFFER = "fields-differ"
    WITNESS_CONTRADICTED = "witness-contradicted"
    WITNESS_BEYOND_LOG = "witness-beyond-log"
    UNREADABLE_RECORD = "unreadable-record"
    CHECKPOINT_MISMATCH = "checkpoint-mismatch"
    CHECKPOINT_BEYOND_RECORDS = "checkpoint-beyond-records"


class PairingError(InvalidArgument):
    """Two bundles that cannot be reconciled with each other; the message says why."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One difference or defect. `bundle` and `index` name the record it is about
    (the consumer's for exchange findings, except `missing-at-consumer`);
    `consumer` and `provider` hold both records' differing fields (for a missing
    exchange, the present record's main fields)."""

    kind: Kind
    exchange_id: str
    detail: str
    bundle: str = ""
    index: int | None = None
    consumer: dict[str, object] | None = None
    provider: dict[str, object] | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "exchange_id": self.exchange_id,
            "bundle": self.bundle,
            "index": self.index,
            "detail": self.detail,
            "consumer": self.consumer,
            "provider": self.provider,
        }


@dataclass(frozen=True, slots=True)
class Role:
    """What a bundle turned out to be: whose log, which side, where it was read."""

    bundle: str
    origin: str
    member: str
    side: Side
    records: int

    def to_dict(self) -> dict[str, object]:
        return {
            "bundle": self.bundle,
            "origin": self.origin,
            "member": self.member,
            "side": self.side.value,
            "records": self.records,
        }


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """`matched` exchanges found on both sides; `witnessed`: consumer records that
    hold a checkpoint of the provider's log, each checked against it
    (`witnessed_checkpoints` distinct ones); `swapped`: the bundles were given
    provider first; `both_directions`: each member also called the other (the
    first bundle was taken as the consumer's)."""

    matched: int
    consumer: Role
    provider: Role
    findings: tuple[Finding, ...] = field(default=())
    witnessed: int = 0
    witnessed_checkpoints: int = 0
    swapped: bool = False
    both_directions: bool = False

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "consumer": self.consumer.to_dict(),
            "provider": self.provider.to_dict(),
            "swapped": self.swapped,
            "both_directions": self.both_directions,
            "matched": self.matched,
            "witnessed": self.witnessed,
            "witnessed_checkpoints": self.witnessed_checkpoints,
            "findings": [f.to_dict() for f in self.findings],
        }


# -- reading a bundle ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Log:
    """A bundle as reconcile reads it: its frame (records possibly left out) and
    a way to read its records, as often as needed, in index order."""

    name: str
    frame: Bundle
    records: Callable[[], Iterable[bytes]]
    expected: int
    """Records announced (the manifest's count): only sizes the progress bar."""


def _log_of_bundle(bundle: Bundle, name: str) -> _Log:
    return _Log(name, bundle, lambda: bundle.records, len(bundle.records))


def _log_of_file(path: Path) -> _Log:
    frame, count = read_bundle_frame(path)
    return _Log(str(path), frame, lambda: iter_bundle_records(path), count)


def _decode(data: bytes) -> _Pb | None:
    try:
        message = _Pb.FromString(data)
    except DecodeError:
        return None
    return message if message.side in (_CONSUMER, _PROVIDER) else None


class _Members:
    """Member of a subsystem id, parsed once per distinct text ("" when unparseable)."""

    def __init__(self) -> None:
        self._known: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        member = self._known.get(text)
        if member is None:
            try:
                member = str(SubsystemId.parse(text).member)
            except SpeanError:
                member = ""
            self._known[text] = member
        return member


@dataclass(slots=True)
class _Survey:
    """What one pass over a bundle learned: sides, members named, witnesses, defects."""

    records: int = 0
    consumer_records: int = 0
    provider_records: int = 0
    calls_to: Counter[str] = field(default_factory=Counter)
    """Consumer records forwarded to a member's service, by that member."""
    calls_from: Counter[str] = field(default_factory=Counter)
    """Provider records of a member's client, by that member."""
    witnesses: dict[bytes, tuple[str, int, bytes]] = field(default_factory=dict)
    """Distinct witnessed checkpoint notes: (origin, size, root); unparseable ones left out."""
    findings: list[Finding] = field(default_factory=list)


def _survey(log: _Log, members: _Members, progress: Progress | None) -> _Survey:
    frame = log.frame
    found = _Survey()
    own: dict[int, bytes] = {}
    for note in frame.checkpoints:
        try:
            signed = parse_checkpoint(note)
        except CheckpointError:
            continue  # verify reports malformed checkpoints
        if signed.origin == frame.origin and signed.size >= frame.start:
            own.setdefault(signed.size, signed.root)
    sizes = sorted(own)
    tree = CompactRange.from_state(frame.start_state)
    position = 0
    index = frame.start - 1
    for data in counted(log.records(), progress):
        index += 1
        tree.append(leaf_hash(data))
        while position < len(sizes) and sizes[position] == tree.size:
            size = sizes[position]
            position += 1
            if tree.root() != own[size]:
                found.findings.append(
                    Finding(
                        Kind.CHECKPOINT_MISMATCH,
                        "",
                        f"records [{frame.start}, {size}) of {frame.origin} do not reproduce "
                        f"its checkpoint at size {size}: the bundle does not verify",
                        log.name,
                        size - 1,
                    )
                )
        message = _decode(data)
        if message is None:
            found.findings.append(
                Finding(
                    Kind.UNREADABLE_RECORD,
                    "",
                    f"record {index} of {frame.origin} is not an audit record of a known side",
                    log.name,
                    index,
                )
            )
            continue
        if message.side == _CONSUMER:
            found.consumer_records += 1
            if message.forwarded_at_ns:
                found.calls_to[members(message.service)] += 1
            note = message.witnessed_checkpoint
            if note and note not in found.witnesses:
                try:
                    signed = parse_checkpoint(note)
                except CheckpointError:
                    continue  # verify reports malformed witnessed checkpoints
                found.witnesses[note] = (signed.origin, signed.size, signed.root)
        else:
            found.provider_records += 1
            found.calls_from[members(message.client)] += 1
    found.records = index + 1 - frame.start
    stop = index + 1
    for size in sizes[position:]:
        found.findings.append(
            Finding(
                Kind.CHECKPOINT_BEYOND_RECORDS,
                "",
                f"the checkpoint of {frame.origin} at size {size} covers records the bundle "
                f"lacks (it stops at {stop}): the bundle is truncated and does not verify",
                log.name,
                stop,
            )
        )
    return found


# -- roles --------------------------------------------------------------------------------


def _member(log: _Log) -> str:
    try:
        return str(origin_server(log.frame.origin).member)
    except SpeanError as exc:
        raise PairingError(
            f"{log.name}: origin {log.frame.origin!r} names no security server: {exc.message}"
        ) from exc


def _roles(first: _Log, a: _Survey, second: _Log, b: _Survey) -> tuple[bool, bool]:
    """(swapped, both_directions); `PairingError` when the pair cannot be matched."""
    for log, survey in ((first, a), (second, b)):
        if survey.records == 0:
            raise PairingError(
                f"{log.name} holds no records: an empty bundle shows neither side of any "
                "exchange; export a range that holds the exchanges to reconcile"
            )
        if survey.consumer_records + survey.provider_records == 0:
            raise PairingError(f"{log.name} holds no readable audit record")
    member_a, member_b = _member(first), _member(second)
    for side in ("consumer", "provider"):
        if all(
            getattr(s, f"{side}_records") == s.consumer_records + s.provider_records for s in (a, b)
        ):
            raise PairingError(
                f"{first.name} ({member_a}) and {second.name} ({member_b}) both hold only "
                f"{side} records: reconcile needs one consumer's log and one provider's"
            )
    if first.frame.origin == second.frame.origin:
        raise PairingError(
            f"{first.name} and {second.name} are both of the log {first.frame.origin}: "
            "reconcile needs one consumer's log and one provider's"
        )
    a_calls_b = a.calls_to[member_b] + b.calls_from[member_a]
    b_calls_a = b.calls_to[member_a] + a.calls_from[member_b]
    if not a_calls_b and not b_calls_a:
        raise PairingError(
            f"{first.name} ({member_a}) and {second.name} ({member_b}) never exchanged with "
            "each other: no record of either names the other's member"
        )
    return (not a_calls_b, bool(a_calls_b and b_calls_a))


# -- matching -----------------------------------------------------------------------------


def _fingerprint(message: _Pb) -> bytes:
    """BLAKE2b-128 of the compared fields, length-prefixed so that no two different
    sets of values share an input."""
    texts = (
        message.status,
        message.client,
        message.service,
        message.method,
        message.user,
        message.purpose,
    )
    request, response = message.request_sha256, message.response_sha256
    subject = message.subject_pseudonym
    lengths = (*map(len, texts), len(request), len(response), len(subject))
    framed = "%d,%d,%d,%d,%d,%d,%d,%d,%d:" % lengths + "".join(texts)  # noqa: UP031
    return _blake2b(framed.encode("utf-8") + request + response + subject, digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class _Compared:
    """The fields of a consumer record kept to describe a difference."""

    index: int
    status: str
    request_sha256: bytes
    response_sha256: bytes
    parties: tuple[str, ...]
    subject_pseudonym: bytes


def _compared(index: int, message: _Pb) -> _Compared:
    return _Compared(
        index,
        message.status,
        message.request_sha256,
        message.response_sha256,
        tuple(getattr(message, name) for name in PARTIES),
        message.subject_pseudonym,
    )


def _differences(exchange_id: str, ours: _Compared, theirs: _Pb, name: str) -> Iterator[Finding]:
    def finding(kind: Kind, detail: str, fields: dict[str, tuple[object, object]]) -> Finding:
        return Finding(
            kind,
            exchange_id,
            detail,
            name,
            ours.index,
            {k: v[0] for k, v in fields.items()},
            {k: v[1] for k, v in fields.items()},
        )

    if ours.request_sha256 != theirs.request_sha256:
        yield finding(
            Kind.REQUEST_DIFFERS,
            "request digests differ",
            {"request_sha256": (ours.request_sha256.hex(), theirs.request_sha256.hex())},
        )
    if ours.status != theirs.status:
        yield finding(
            Kind.STATUS_DIFFERS,
            f"consumer recorded {ours.status}, provider {theirs.status}",
            {"status": (ours.status, theirs.status)},
        )
    elif ours.status == "OK" and ours.response_sha256 != theirs.response_sha256:
        yield finding(
            Kind.RESPONSE_DIFFERS,
            "response digests differ",
            {"response_sha256": (ours.response_sha256.hex(), theirs.response_sha256.hex())},
        )
    differing: dict[str, tuple[object, object]] = {}
    for name_, mine in zip(PARTIES, ours.parties, strict=True):
        other = getattr(theirs, name_)
        # An empty field was not reached by that side; the provider reached them
        # all once it forwarded the request.
        if mine != other and ((mine and other) or theirs.forwarded_at_ns):
            differing[name_] = (mine, other)
    # The data subject's pseudonym (protocol.md 4.4), by the same rule: the provider
    # made it before forwarding; the consumer holds it from the verified answer.
    mine_subject, other_subject = ours.subject_pseudonym, theirs.subject_pseudonym
    if mine_subject != other_subject and (
        (mine_subject and other_subject) or theirs.forwarded_at_ns
    ):
        differing["subject_pseudonym"] = (mine_subject.hex(), other_subject.hex())
    if differing:
        listed = ", ".join(f"{k} {v[0]!r} / {v[1]!r}" for k, v in differing.items())
        yield finding(Kind.FIELDS_DIFFER, f"consumer and provider recorded {listed}", differing)


def _summary(message: _Pb) -> dict[str, object]:
    return {
        "status": message.status,
        "client": message.client,
        "service": message.service,
        "method": message.method,
        "received_at_ns": message.received_at_ns,
    }


def _witness_verdicts(
    provider: _Log, witnesses: dict[bytes, tuple[str, int, bytes]], stop: int
) -> dict[bytes, tuple[Kind, str] | None]:
    """For each distinct witnessed note of the provider's log: None when the provider's
    records reproduce it, else the finding's kind and detail; notes the bundle cannot
    judge (before its first record) are left out."""
    frame = provider.frame
    verdicts: dict[bytes, tuple[Kind, str] | None] = {}
    wanted: dict[int, list[bytes]] = {}
    for note, (origin, size, root) in witnesses.items():
        if origin != frame.origin:
            continue
        if size > stop:
            verdicts[note] = (
                Kind.WITNESS_BEYOND_LOG,
                f"the consumer witnessed {frame.origin} at size {size}, beyond the "
                f"provider's bundle {provider.name} (it stops at {stop}): the log was "
                "truncated or the bundle is older than the exchange",
            )
        elif size == frame.start_state.size:
            verdicts[note] = _verdict(frame.origin, size, root, frame.start_state.root())
        elif size > frame.start_state.size:
            wanted.setdefault(size, []).append(note)
    return verdicts | {note: None for notes in wanted.values() for note in notes}


def _verdict(origin: str, size: int, witnessed: bytes, actual: bytes) -> tuple[Kind, str] | None:
    if witnessed == actual:
        return None
    return (
        Kind.WITNESS_CONTRADICTED,
        f"the consumer witnessed {origin} at size {size}, and the provider's log does not "
        f"contain that tree: its first {size} records give another root",
    )


def _index_provider(
    provider: _Log,
    consumer_member: str,
    members: _Members,
    witnesses: dict[bytes, tuple[str, int, bytes]],
    verdicts: dict[bytes, tuple[Kind, str] | None],
    progress: Progress | None,
) -> dict[str, bytes]:
    """The provider's records by exchange id (`_ENTRY`), building its tree once
    and settling the witnessed checkpoints still open in `verdicts`."""
    frame = provider.frame
    open_sizes: dict[int, list[bytes]] = {}
    for note, verdict in verdicts.items():
        if verdict is None:
            open_sizes.setdefault(witnesses[note][1], []).append(note)
    sizes = sorted(open_sizes)
    position = 0
    tree = CompactRange.from_state(frame.start_state)
    index: dict[str, bytes] = {}
    pack = _ENTRY.pack
    k = frame.start - 1
    for data in counted(provider.records(), progress):
        k += 1
        tree.append(leaf_hash(data))
        if position < len(sizes) and sizes[position] == tree.size:
            root = tree.root()
            for note in open_sizes[sizes[position]]:
                verdicts[note] = _verdict(frame.origin, tree.size, witnesses[note][2], root)
            position += 1
        message = _decode(data)
        if message is None or message.side != _PROVIDER:
            continue
        counts = (
            message.status != "UNAUTHENTICATED"  # may not be the consumer at all
            and members(message.client) == consumer_member
            # An event delivery no subscriber server answered left no record there.
            and not (message.kind == _EVENT_DELIVERY and not message.peer_certificate_sha256)
        )
        index[message.exchange_id] = pack(k, counts, _fingerprint(message))
    return index


def _reconcile(first: _Log, second: _Log, progress: Progress | None) -> Reconciliation:
    members = _Members()
    a = _survey(first, members, progress)
    b = _survey(second, members, progress)
    swapped, both = _roles(first, a, second, b)
    consumer, provider = (second, first) if swapped else (first, second)
    ours, theirs = (b, a) if swapped else (a, b)
    consumer_member, provider_member = _member(consumer), _member(provider)
    findings = a.findings + b.findings
    stop = provider.frame.start + theirs.records
    verdicts = _witness_verdicts(provider, ours.witnesses, stop)
    index = _index_provider(provider, consumer_member, members, ours.witnesses, verdicts, progress)
    unpack = _ENTRY.unpack
    matched = witnessed = 0
    to_describe: dict[int, tuple[str, _Compared]] = {}
    k = consumer.frame.start - 1
    for data in counted(consumer.records(), progress):
        k += 1
        message = _decode(data)
        if message is None or message.side != _CONSUMER:
            continue
        exchange_id = message.exchange_id
        note = message.witnessed_checkpoint
        if note and note in verdicts:
            witnessed += 1
            verdict = verdicts[note]
            if verdict is not None:
                findings.append(Finding(verdict[0], exchange_id, verdict[1], consumer.name, k))
        if members(message.service) != provider_member:
            continue
        entry = index.pop(exchange_id, None)
        if entry is None:
            if message.forwarded_at_ns:
                findings.append(
                    Finding(
                        Kind.MISSING_AT_PROVIDER,
                        exchange_id,
                        f"the consumer forwarded it to {message.service} ({message.status}), "
                        f"the provider's log {provider.name} has no record of it",
                        consumer.name,
                        k,
                        _summary(message),
                        None,
                    )
                )
            continue
        matched += 1
        at, _, fingerprint = unpack(entry)
        if fingerprint != _fingerprint(message):
            to_describe[at] = (exchange_id, _compared(k, message))
    missing = {unpack(e)[0]: i for i, e in index.items() if unpack(e)[1]}
    del index
    if to_describe or missing:
        findings.extend(_describe(provider, consumer.name, to_describe, missing))
    findings.sort(key=_order)
    return Reconciliation(
        matched,
        _role(consumer, Side.CONSUMER, consumer_member, ours),
        _role(provider, Side.PROVIDER, provider_member, theirs),
        tuple(findings),
        witnessed,
        witnessed_checkpoints=len({ours.witnesses[note][1:] for note in verdicts}),
        swapped=swapped,
        both_directions=both,
    )


def _describe(
    provider: _Log,
    consumer_name: str,
    to_describe: dict[int, tuple[str, _Compared]],
    missing: dict[int, str],
) -> Iterator[Finding]:
    """Findings that need the provider's records again: one more pass, decoding
    only the records named."""
    last = max([*to_describe, *missing])
    k = provider.frame.start - 1
    for data in provider.records():
        k += 1
        if k > last:
            break
        if k not in to_describe and k not in missing:
            continue
        message = _decode(data)
        if message is None:
            continue
        if k in to_describe:
            exchange_id, ours = to_describe[k]
            yield from _differences(exchange_id, ours, message, consumer_name)
        else:
            yield Finding(
                Kind.MISSING_AT_CONSUMER,
                missing[k],
                f"the provider answered {message.client} ({message.status}) in record {k} "
                f"of {provider.name}, the consumer's log has no record of it"
                + (
                    ": the consumer's server stopped before its record was durable, so "
                    "its application never got the answer"
                    if message.status == "OK"
                    else ""
                ),
                provider.name,
                k,
                None,
                _summary(message),
            )


_GROUP = {
    Kind.UNREADABLE_RECORD: 0,
    Kind.CHECKPOINT_MISMATCH: 0,
    Kind.CHECKPOINT_BEYOND_RECORDS: 0,
    Kind.MISSING_AT_CONSUMER: 2,
}


def _order(finding: Finding) -> tuple[int, str, int]:
    group = _GROUP.get(finding.kind, 1)
    return (group, finding.bundle if group == 0 else "", finding.index or 0)


def _role(log: _Log, side: Side, member: str, survey: _Survey) -> Role:
    return Role(log.name, log.frame.origin, member, side, survey.records)


def reconcile(
    first: Bundle,
    second: Bundle,
    *,
    names: tuple[str, str] = ("first bundle", "second bundle"),
    progress: Progress | None = None,
) -> Reconciliation:
    """Compare both logs, given in either order; see the module docstring.

    Raises `PairingError` when the two cannot be matched."""
    return _reconcile(_log_of_bundle(first, names[0]), _log_of_bundle(second, names[1]), progress)


def reconcile_files(
    first: Path, second: Path, *, progress: Progress | None = None
) -> Reconciliation:
    """`reconcile` of two bundle files, streaming their records.

    Raises `BundleError` for a file that is not a readable bundle and
    `PairingError` for a pair that cannot be matched."""
    return _reconcile(_log_of_file(first), _log_of_file(second), progress)


def records_to_read(first: Path, second: Path) -> int:
    """How many records `reconcile_files` reads to match (each bundle twice), from the
    manifests: a progress bar's total."""
    return sum(2 * read_bundle_frame(path)[1] for path in (first, second))


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
