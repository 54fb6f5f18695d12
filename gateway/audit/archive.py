"""Retention: move a log's oldest records to archive segments, keep the rest verifiable.

Theory of operation. A log is cut only at the size of a signed checkpoint C:
records `[floor, C)` (floor = the previous cut, 0 at first) go to one archive
segment, a bundle (gateway/audit/bundle.py) holding those records, their
chain hashes and sealed bodies, the checkpoints over them (including the one
at `floor`, which proves the tree state the segment starts from, and the one
at C, which proves its end), the global configuration and the anchor. The
store then deletes them and keeps an `ArchiveCut`: the chain hash of record
C - 1 and the tree state at C. The checkpoint at C stays in the store, so the
remaining log verifies from there, and the writer carries on the same chain
and tree as if nothing had moved.

Order of steps, so that a crash at any point loses nothing: write the segment
to a temporary file, fsync it, rename it into place, fsync the folder, read it
back and verify its structure (records against signed checkpoints); only then
delete, in one transaction that re-checks, under the writer's lock, that the
store's record C - 1 and checkpoint at C are those of the segment. A crash
before the delete leaves the records in the store and the next run writes the
same segment again.

Invariants an auditor relies on (`verify_sequence`):
- each segment verifies on its own, like any bundle;
- consecutive bundles of one log chain: the next starts where the previous
  stops, with the previous one's last chain hash and tree state, and their
  checkpoints follow one another (`spean-previous`) without a fork; so
  segment 1 + segment 2 + a live export verify as one log.

A record is archived only when it and every record before it were received
before the age limit (`plan_cut`), so a late clock never archives a young
record.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from google.protobuf.message import DecodeError

from spean.gateway import pki
from spean.gateway.audit.bundle import (
    Bundle,
    BundleSource,
    export_range,
    read_bundle,
    source_of,
    write_bundle,
)
from spean.gateway.audit.checkpoint import CheckpointError, SignedCheckpoint, parse_checkpoint
from spean.gateway.audit.merkle import CompactRange, CompactRangeState
from spean.gateway.audit.record import AuditRecord
from spean.gateway.audit.store import ArchiveCut, AuditStore
from spean.gateway.audit.verify import verify_structure
from spean.gateway.audit.verify_parallel import verify_bundle
from spean.gateway.audit.verify_report import Check, Problem, Report
from spean.gateway.errors import AuditError, ConfigError, InvalidArgument
from spean.gateway.globalconf import GlobalConfiguration, verify_signature
from spean.gateway.identifiers import origin_server
from spean.v1 import config_pb2

NS_PER_DAY = 86_400 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class ArchivedSegment:
    """One segment written and removed from the store: records `[start, stop)`."""

    origin: str
    start: int
    stop: int
    path: Path
    deleted: int

    def to_dict(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "start": self.start,
            "stop": self.stop,
            "path": str(self.path),
            "deleted": self.deleted,
        }


def plan_cut(
    received: Iterable[tuple[int, int]], checkpoint_sizes: Iterable[int], floor: int, before_ns: int
) -> int | None:
    """Where to cut a log (pure): the largest checkpoint size C above `floor` such that
    every record in `[floor, C)` was received before `before_ns`, or None.

    `received` yields (index, received_at_ns) in index order from `floor`.
    """
    first_young: int | None = None
    for index, received_at in received:
        if received_at >= before_ns:
            first_young = index
            break
    sizes = [
        size
        for size in checkpoint_sizes
        if size > floor and (first_young is None or size <= first_young)
    ]
    return max(sizes) if sizes else None


def segment_name(origin: str, start: int, stop: int) -> str:
    """The segment's path under the archive folder: one folder per log."""
    folder = origin.replace("/", "_")
    return f"{folder}/{start:012d}-{stop:012d}.zip"


def archive_log(
    store: AuditStore,
    origin: str,
    *,
    before_ns: int,
    archive_dir: Path,
    globalconf: bytes,
    anchor_pem: bytes,
    certificates: tuple[x509.Certificate, ...],
) -> ArchivedSegment | None:
    """Archive `origin`'s records received before `before_ns`, up to a checkpoint.

    `certificates` are the signing certificates of the member owning the log,
    used to verify the written segment before anything is deleted. Returns
    None when nothing is old enough (or no checkpoint covers the old records).
    Raises `AuditError` when the segment cannot be written or does not verify,
    or the store refuses the cut; the store is then unchanged.
    """
    previous = store.cut(origin=origin)
    floor = 0 if previous is None else previous.size
    sizes = [c.size for c in store.checkpoints(floor + 1, origin=origin)]
    if not sizes:
        return None
    received = (
        (stored.index, AuditRecord.from_bytes(stored.record_bytes).received_at_ns)
        for stored in store.read(floor, max(sizes), origin=origin)
    )
    cut_size = plan_cut(received, sizes, floor, before_ns)
    if cut_size is None:
        return None
    bundle = export_range(
        store,
        origin=origin,
        start=floor,
        stop=cut_size,
        globalconf=globalconf,
        anchor_pem=anchor_pem,
    )
    if bundle.stop != cut_size or len(bundle.chains) != len(bundle.records):
        raise AuditError(
            f"archive of {origin}: the store returned records [{bundle.start}, {bundle.stop}) "
            f"instead of [{floor}, {cut_size}); nothing was deleted"
        )
    name = segment_name(origin, floor, cut_size)
    path = archive_dir / name
    _write_durably(bundle, path)
    written = read_bundle(path)
    if (written.records, written.chains, written.bodies) != (
        bundle.records,
        bundle.chains,
        bundle.bodies,
    ):
        raise AuditError(f"archive segment {path} does not read back as written")
    _, problems = verify_structure(written, certificates)
    if problems:
        first = problems[0]
        raise AuditError(
            f"archive segment {path} does not verify ({first.check.value}: {first.reason}); "
            "nothing was deleted from the store"
        )
    tree = CompactRange.from_state(bundle.start_state)
    for data in bundle.records:
        tree.append_record(data)
    cut = ArchiveCut(
        origin=origin,
        size=cut_size,
        chain=bundle.chains[-1] if bundle.chains else bundle.start_chain,
        tree_state=tree.state().to_bytes(),
        segment=name,
        archived_at_ns=time.time_ns(),
    )
    deleted = store.archive_prefix(cut)
    return ArchivedSegment(origin, floor, cut_size, path, deleted)


def _write_durably(bundle: Bundle, path: Path) -> None:
    """Write the segment so that, once this returns, it survives a crash."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bundle(bundle, path)
    except OSError as exc:
        raise AuditError(f"cannot write archive segment {path}: {exc.strerror}") from exc
    except InvalidArgument as exc:
        raise AuditError(f"cannot write archive segment {path}: {exc.message}") from exc


# -- verifying a sequence of segments and a live export --------------------------------------


@dataclass(frozen=True, slots=True)
class SequenceReport:
    """Each bundle's own report, and the problems of the links between them."""

    reports: tuple[Report, ...]
    links: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.links and all(r.ok for r in self.reports)

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "start": self.reports[0].start if self.reports else 0,
            "records": sum(r.records for r in self.reports),
            "bundles": [r.to_dict() for r in self.reports],
            "links": [p.to_dict() for p in self.links],
        }


def verify_sequence(
    bundles: Sequence[Bundle | BundleSource],
    *,
    anchor: x509.Certificate | None = None,
    check_tokens: bool = True,
    auditor_key: X25519PrivateKey | None = None,
    jobs: int | None = None,
) -> SequenceReport:
    """Verify each bundle (`verify_bundle`, with `jobs` as there) and that they chain
    into one log; bundle files (`BundleSource`) are streamed, one at a time."""
    reports = tuple(
        verify_bundle(
            b, anchor=anchor, check_tokens=check_tokens, auditor_key=auditor_key, jobs=jobs
        )
        for b in bundles
    )
    sources = [b if isinstance(b, BundleSource) else source_of(b) for b in bundles]
    return SequenceReport(reports, _check_links([_ends(s) for s in sources]))


@dataclass(frozen=True, slots=True)
class _Ends:
    """What the link to the next bundle needs of one bundle."""

    frame: Bundle
    stop: int
    last_chain: bytes
    state_after: CompactRangeState


def _ends(source: BundleSource) -> _Ends:
    """One streaming pass: the bundle's stop, last stored chain hash and end tree state."""
    frame = source.frame
    tree = CompactRange.from_state(frame.start_state)
    for data in source.records():
        tree.append_record(data)
    last_chain = frame.start_chain
    for stored in source.chains():
        last_chain = stored
    return _Ends(frame, frame.start + tree.size - frame.start_state.size, last_chain, tree.state())


def check_sequence(bundles: Sequence[Bundle]) -> tuple[Problem, ...]:
    """The links between consecutive bundles of one log (pure); see the module docstring."""
    return _check_links([_ends(source_of(b)) for b in bundles])


def _check_links(ends: Sequence[_Ends]) -> tuple[Problem, ...]:
    problems: list[Problem] = []

    def add(index: int | None, reason: str) -> None:
        problems.append(Problem(index, Check.SEQUENCE, reason))

    if not ends:
        return ()
    origin = ends[0].frame.origin
    for position, bundle in enumerate(ends[1:], start=1):
        previous = ends[position - 1]
        start = bundle.frame.start
        where = f"bundle {position + 1} (records [{start}, {bundle.stop}))"
        if bundle.frame.origin != origin:
            add(None, f"{where} is of log {bundle.frame.origin!r}, not {origin!r}")
            continue
        if start != previous.stop:
            what = "missing" if start > previous.stop else "given twice"
            low, high = sorted((previous.stop, start))
            add(
                min(low, high),
                f"{where} follows one ending at {previous.stop}: "
                f"records [{low}, {high}) are {what}",
            )
            continue
        if bundle.frame.start_chain != previous.last_chain:
            add(
                start,
                f"{where} starts from a chain hash that is not the last one of "
                "the bundle before it",
            )
        if bundle.frame.start_state != previous.state_after:
            add(
                start,
                f"{where} starts from a tree state that the records of the "
                "bundle before it do not produce",
            )
    problems.extend(_checkpoint_links([e.frame for e in ends]))
    return tuple(sorted(problems, key=lambda p: -1 if p.index is None else p.index))


def _checkpoint_links(bundles: Sequence[Bundle]) -> list[Problem]:
    """Across bundles: no size signed with two roots, and `spean-previous` unbroken."""
    problems: list[Problem] = []
    by_size: dict[int, SignedCheckpoint] = {}
    for bundle in bundles:
        for note in bundle.checkpoints:
            try:
                signed = parse_checkpoint(note)
            except CheckpointError:
                continue  # the bundle's own report names it
            if signed.origin != bundles[0].origin:
                continue
            seen = by_size.get(signed.size)
            if seen is not None and seen.root != signed.root:
                problems.append(
                    Problem(
                        signed.size,
                        Check.SEQUENCE,
                        f"two bundles hold checkpoints of size {signed.size} with different "
                        "roots: the log forked between archive segments",
                    )
                )
            by_size.setdefault(signed.size, signed)
    ordered = [by_size[size] for size in sorted(by_size)]
    for before, after in itertools.pairwise(ordered):
        if after.checkpoint.previous_size != before.size:
            problems.append(
                Problem(
                    before.size,
                    Check.SEQUENCE,
                    f"checkpoint at size {after.size} follows one at size "
                    f"{after.checkpoint.previous_size}, but the bundles' previous checkpoint "
                    f"is at size {before.size}: a checkpoint is missing between them",
                )
            )
    return problems


def member_certificates(
    globalconf: bytes, anchor_pem: bytes, origin: str
) -> tuple[x509.Certificate, ...]:
    """The signing certificates of the member owning `origin`, from a signed global
    configuration verified against `anchor_pem` (PEM); `ConfigError` if unusable."""
    anchor = pki.parse_certificate_pem(anchor_pem, "configuration anchor")
    data = verify_signature(globalconf, anchor, dt.datetime.now(dt.UTC))
    message = config_pb2.GlobalConfiguration()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise ConfigError(f"the global configuration cannot be decoded: {exc}") from exc
    member = origin_server(origin).member
    info = GlobalConfiguration.from_proto(message).member(member)
    if info is None:
        raise ConfigError(f"member {member} is not in the global configuration")
    return info.signing_certificates
