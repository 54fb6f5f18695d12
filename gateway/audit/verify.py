"""Offline verification of an audit bundle (pure: values in, a report out).

Theory of operation. The verifier trusts one thing: the configuration anchor
(the auditor's own copy, or, failing that, the one bundled, which the report
flags). From it, in order:

1. the bundled global configuration's signature, hence the member signing
   certificates it publishes;
2. every checkpoint: C2SP form, the log's origin, signed by the member that
   owns the writer (key name and key id), `spean-previous` linking each to
   the one before (a dropped checkpoint leaves a gap), sizes increasing, no
   two different roots for one size (a fork);
3. the structure: every record's leaf hash `SHA-256(0x00||record)`, the
   stored hash chain (which pinpoints the first altered, removed, inserted or
   reordered record), and the Merkle root at every checkpoint size recomputed
   with a `CompactRange` (which proves the records whatever the chain says);
   a checkpoint beyond the last record means the log was truncated; records
   after the last checkpoint are not proven and are reported;
4. the content: every record decodes canonically and names this origin; for
   exchanges that ended OK, the request and response tokens verify with the
   members' certificates and bind to the record (exchange id, parties,
   method, digests, status, count, user, purpose); a witnessed checkpoint
   verifies with the provider's certificates;
5. sealed bodies (given the auditor's key): each decrypts, bound to its
   record, and matches the record's request and response digests.

Consistency between checkpoints follows from 3: each root is recomputed from
the same leaves, so the smaller tree is a prefix of the larger. Consistency
proofs (gateway/audit/merkle.py) serve where leaves are absent: reconcile.

The report lists every problem found (up to `MAX_PROBLEMS`), each with the
record index (log numbering) and what is wrong; `first` is the lowest index.
Token checks are optional (`check_tokens`); they cost a signature
verification each and dominate the run time, so they run in parallel across
`jobs` worker processes; by default one per core, and only when a bundle
holds at least `PARALLEL_MIN_RECORDS` records, about as many tokens as it
takes to repay starting the pool. Workers only verify tokens: each chunk of records comes back
as one outcome per record (tokens verified, or why they do not verify), and
the main process merges the outcomes in record order, in the same loop that
decodes the records and checks their origin and witnessed checkpoint. The
report is therefore the same, problem for problem and in the same order,
whatever `jobs` is; `jobs=1` never starts a process. The structure check
stays serial: it is a single hash chain, and fast.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from google.protobuf.message import DecodeError

from spean.gateway import pki
from spean.gateway.audit.bodies import check_bodies, open_for
from spean.gateway.audit.bundle import Bundle
from spean.gateway.audit.chain import chain_hash
from spean.gateway.audit.checkpoint import (
    CheckpointError,
    SignedCheckpoint,
    parse_checkpoint,
    verify_checkpoint,
)
from spean.gateway.audit.merkle import CompactRange, leaf_hashes
from spean.gateway.audit.record import AuditRecord
from spean.gateway.audit.witness import check_witnessed
from spean.gateway.errors import InvalidArgument, SpeanError, Unauthenticated
from spean.gateway.globalconf import GlobalConfiguration, verify_signature
from spean.gateway.identifiers import MemberId, SubsystemId, origin_server
from spean.gateway.tokens import (
    KeyResolver,
    check_request_binding,
    check_response_binding,
    verify_request,
    verify_response,
)
from spean.gateway.trust import key_resolver
from spean.v1 import config_pb2

MAX_PROBLEMS = 100
# With `jobs=None` (one worker per core), bundles under this many records
# (about twice as many tokens) stay in-process: starting the pool (~0.4 s on
# the 2-core test machine) costs more than sharing ~1 s of verification saves
# (~5,000 records/s on one core, bench/audit_verify.py). An explicit `jobs`
# is obeyed whatever the size.
PARALLEL_MIN_RECORDS = 5000
# Records per task sent to a worker: large enough that pickling and the
# hand-over are negligible, small enough that the cores stay evenly busy.
_CHUNK_MIN = 250
_CHUNK_MAX = 4000


class Check(StrEnum):
    """Which check a problem comes from."""

    GLOBALCONF = "globalconf"
    CHECKPOINT = "checkpoint"
    CHAIN = "chain"
    TREE = "tree"
    TRUNCATED = "truncated"
    UNCOVERED = "uncovered"
    RECORD = "record"
    TOKEN = "token"  # noqa: S105 (a check name, not a secret)
    WITNESS = "witness"
    BODIES = "bodies"
    SEQUENCE = "sequence"  # archive segments and a live export that do not chain


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that does not hold; `index` is a record index, None if none applies."""

    index: int | None
    check: Check
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"index": self.index, "check": self.check.value, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Report:
    """What `verify_bundle` established."""

    origin: str
    start: int
    records: int
    checkpoints: int
    tokens_verified: int
    anchor: str
    problems: tuple[Problem, ...] = field(default=())
    bodies: int = 0
    bodies_verified: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        indexed = [p for p in self.problems if p.index is not None]
        if indexed:
            return min(indexed, key=lambda p: p.index or 0)
        return self.problems[0] if self.problems else None

    def to_dict(self) -> dict[str, object]:
        first = self.first
        return {
            "ok": self.ok,
            "origin": self.origin,
            "start": self.start,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "tokens_verified": self.tokens_verified,
            "bodies": self.bodies,
            "bodies_verified": self.bodies_verified,
            "anchor": self.anchor,
            "first_problem": None if first is None else first.to_dict(),
            "problems": [p.to_dict() for p in self.problems],
        }


Progress = Callable[[int], None]


class _Problems:
    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, index: int | None, check: Check, reason: str) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(Problem(index, check, reason))


def load_configuration(
    bundle: Bundle, anchor: x509.Certificate | None
) -> tuple[GlobalConfiguration, str]:
    """The bundled configuration, verified against `anchor` (or the bundled one)."""
    conf, _, source = _load_configuration(bundle, anchor)
    return conf, source


def _load_configuration(
    bundle: Bundle, anchor: x509.Certificate | None
) -> tuple[GlobalConfiguration, bytes, str]:
    """`load_configuration`, also returning the verified configuration's bytes
    (what token workers rebuild it from: parsed objects do not cross processes)."""
    source = "given"
    if anchor is None:
        anchor = pki.parse_certificate_pem(bundle.anchor_pem, "bundled anchor.pem")
        source = "bundled (not independently trusted)"
    # The anchor must have been valid when the log was exported, not today:
    # an auditor checks old bundles long after certificates have expired.
    when = dt.datetime.fromtimestamp(bundle.exported_at_ns / 1e9, dt.UTC)
    data = verify_signature(bundle.globalconf, anchor, when)
    return _parse_configuration(data), data, source


def _parse_configuration(data: bytes) -> GlobalConfiguration:
    message = config_pb2.GlobalConfiguration()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise Unauthenticated(f"the bundled global configuration cannot be decoded: {exc}") from exc
    return GlobalConfiguration.from_proto(message)


def verify_bundle(
    bundle: Bundle,
    *,
    anchor: x509.Certificate | None = None,
    check_tokens: bool = True,
    progress: Progress | None = None,
    auditor_key: X25519PrivateKey | None = None,
    jobs: int | None = None,
) -> Report:
    """Verify everything a bundle claims; see the module docstring for the checks.

    With `auditor_key`, sealed bodies are decrypted and checked against their
    records' digests; without it they are only counted. `jobs` is how many
    processes verify token signatures (None: one per core for bundles of at
    least `PARALLEL_MIN_RECORDS` records, else this process; 1: this process
    only); the report does not depend on it."""
    if jobs is not None and jobs < 1:
        raise InvalidArgument(f"jobs must be at least 1, got {jobs}")
    problems = _Problems()
    checkpoints_ok = 0
    tokens = 0
    anchor_source = "none"
    conf: GlobalConfiguration | None = None
    conf_bytes = b""
    try:
        conf, conf_bytes, anchor_source = _load_configuration(bundle, anchor)
    except SpeanError as exc:
        problems.add(None, Check.GLOBALCONF, exc.message)
    member_certs: tuple[x509.Certificate, ...] = ()
    member: MemberId | None = None
    try:
        member = origin_server(bundle.origin).member
    except SpeanError as exc:
        problems.add(None, Check.CHECKPOINT, f"origin {bundle.origin!r}: {exc.message}")
    if conf is not None and member is not None:
        info = conf.member(member)
        if info is None:
            problems.add(None, Check.GLOBALCONF, f"member {member} is not in the configuration")
        else:
            member_certs = info.signing_certificates
    signed = _check_checkpoints(bundle, member, member_certs, conf is not None, problems)
    checkpoints_ok = _check_structure(bundle, signed, problems, progress)
    if conf is not None:
        workers = _workers(jobs, len(bundle.records)) if check_tokens else 1
        if workers > 1:
            tokens = _check_content_parallel(bundle, conf, conf_bytes, workers, problems, progress)
        else:
            tokens = _check_content(bundle, conf, check_tokens, problems, progress)
    bodies_ok = _check_bodies(bundle, auditor_key, problems)
    return Report(
        origin=bundle.origin,
        start=bundle.start,
        records=len(bundle.records),
        checkpoints=checkpoints_ok,
        tokens_verified=tokens,
        anchor=anchor_source,
        problems=tuple(sorted(problems.items, key=_order)),
        bodies=len(bundle.bodies),
        bodies_verified=bodies_ok,
    )


def _check_bodies(bundle: Bundle, key: X25519PrivateKey | None, problems: _Problems) -> int:
    """Each sealed body belongs to a record of the bundle and, with `key`, matches its digests."""
    verified = 0
    seen: set[int] = set()
    for index, sealed in bundle.bodies:
        if not bundle.start <= index < bundle.stop or index in seen:
            problems.add(
                index,
                Check.BODIES,
                f"sealed bodies for record {index}, which is not in the bundle"
                if index not in seen
                else f"record {index} has sealed bodies twice",
            )
            continue
        seen.add(index)
        if key is None:
            continue
        try:
            record = AuditRecord.from_bytes(bundle.records[index - bundle.start])
            problem = check_bodies(record, open_for(record, sealed, key))
        except InvalidArgument as exc:
            problem = exc.message
        if problem:
            problems.add(index, Check.BODIES, f"record {index}: {problem}")
        else:
            verified += 1
    return verified


def verify_structure(
    bundle: Bundle, certificates: tuple[x509.Certificate, ...]
) -> tuple[int, tuple[Problem, ...]]:
    """Checks 2 and 3 alone (checkpoints, chain, tree) against the writer's
    member certificates: (checkpoints reproduced, problems)."""
    problems = _Problems()
    member = origin_server(bundle.origin).member
    signed = _check_checkpoints(bundle, member, certificates, True, problems)
    verified = _check_structure(bundle, signed, problems, None)
    return verified, tuple(sorted(problems.items, key=_order))


def _order(problem: Problem) -> tuple[int, int]:
    return (-1 if problem.index is None else problem.index, 0)


def _check_checkpoints(
    bundle: Bundle,
    member: MemberId | None,
    certificates: tuple[x509.Certificate, ...],
    have_conf: bool,
    problems: _Problems,
) -> list[SignedCheckpoint]:
    """Parse and authenticate the checkpoints; return the good ones by size."""
    good: list[SignedCheckpoint] = []
    previous_size: int | None = None
    for position, note in enumerate(bundle.checkpoints):
        try:
            signed = parse_checkpoint(note)
        except CheckpointError as exc:
            problems.add(None, Check.CHECKPOINT, f"checkpoint {position}: {exc.message}")
            continue
        where = f"checkpoint at size {signed.size}"
        index = min(signed.checkpoint.previous_size, signed.size)
        if signed.origin != bundle.origin:
            problems.add(index, Check.CHECKPOINT, f"{where} names log {signed.origin!r}")
            continue
        if member is not None and signed.key_name != str(member):
            problems.add(
                index, Check.CHECKPOINT, f"{where} is signed as {signed.key_name!r}, not {member}"
            )
            continue
        if have_conf:
            try:
                verify_checkpoint(signed, certificates)
            except CheckpointError as exc:
                problems.add(index, Check.CHECKPOINT, f"{where}: {exc.message}")
                continue
        if good and signed.size == good[-1].size:
            if signed.root != good[-1].root:
                problems.add(
                    index,
                    Check.CHECKPOINT,
                    f"two checkpoints of size {signed.size} sign different roots: the log forked",
                )
            continue
        if good and signed.size < good[-1].size:
            problems.add(
                index, Check.CHECKPOINT, f"{where} comes after size {good[-1].size}: out of order"
            )
            continue
        expected = previous_size
        if expected is None:
            # The first checkpoint of a range may follow one outside it, never
            # one inside it (that one would have been exported).
            if (bundle.start == 0 and signed.checkpoint.previous_size != 0) or (
                bundle.start > 0 and signed.checkpoint.previous_size >= bundle.start
            ):
                problems.add(
                    signed.checkpoint.previous_size,
                    Check.CHECKPOINT,
                    f"{where} follows a checkpoint at size {signed.checkpoint.previous_size} "
                    "that is missing from the bundle (dropped checkpoint)",
                )
        elif signed.checkpoint.previous_size != expected:
            problems.add(
                expected,
                Check.CHECKPOINT,
                f"{where} follows a checkpoint at size {signed.checkpoint.previous_size}, but "
                f"the bundle's previous checkpoint is at size {expected}: a checkpoint "
                "was dropped or replaced",
            )
        good.append(signed)
        previous_size = signed.size
    return good


def _check_structure(
    bundle: Bundle,
    checkpoints: list[SignedCheckpoint],
    problems: _Problems,
    progress: Progress | None,
) -> int:
    """Chain and tree; return how many checkpoints the records reproduce."""
    start, stop = bundle.start, bundle.stop
    if bundle.start_state.size != start:
        problems.add(
            start,
            Check.TREE,
            f"the bundle starts at index {start} but its tree state is at size "
            f"{bundle.start_state.size}",
        )
        return 0
    if len(bundle.chains) != len(bundle.records):
        problems.add(
            None,
            Check.CHAIN,
            f"the bundle holds {len(bundle.records)} records but {len(bundle.chains)} chain hashes",
        )
    tree = CompactRange.from_state(bundle.start_state)
    chains = bundle.chains
    records = bundle.records
    previous = bundle.start_chain
    chain_reported = False
    verified = 0
    last_verified = start
    boundaries = [c for c in checkpoints if start <= c.size <= stop]
    truncated = False
    for c in checkpoints:
        if c.size > stop:
            truncated = True
            problems.add(
                stop,
                Check.TRUNCATED,
                f"checkpoint at size {c.size} covers records [{stop}, {c.size}) that are not "
                "in the bundle: the log was truncated",
            )
            break
    position = start
    # The first record the chain flags since the last checkpoint that held:
    # where a root mismatch is reported, as the most precise place known.
    suspect: int | None = None
    by_size = {c.size: c for c in boundaries}
    for target in sorted({*by_size, stop}):
        segment = records[position - start : target - start]
        leaves = leaf_hashes(segment)
        offset = position - start
        for k, leaf in enumerate(leaves):
            computed = chain_hash(previous, leaf)
            stored = chains[offset + k] if offset + k < len(chains) else b""
            if computed != stored:
                if suspect is None:
                    suspect = position + k
                if not chain_reported or len(problems.items) < MAX_PROBLEMS:
                    problems.add(
                        position + k,
                        Check.CHAIN,
                        f"record {position + k} does not follow record {position + k - 1} in "
                        "the hash chain: it was altered, inserted, removed or moved",
                    )
                chain_reported = True
                previous = stored if stored else computed  # resynchronise on the stored chain
            else:
                previous = computed
        tree.extend(leaves)
        position = target
        if progress is not None:
            progress(len(segment))
        due = by_size.get(target)
        if due is not None:
            root = tree.root()
            if root == due.root:
                verified += 1
                last_verified = target
                suspect = None
            else:
                problems.add(
                    last_verified if suspect is None else suspect,
                    Check.TREE,
                    f"checkpoint at size {due.size} signs root {due.root.hex()[:16]}..., but the "
                    f"records give {root.hex()[:16]}...: records in [{last_verified}, {due.size}) "
                    "were altered, removed, inserted or reordered, or the checkpoint is forked",
                )
    covered = max((c.size for c in boundaries), default=start)
    if stop > covered and not truncated:  # truncation already names the tail
        problems.add(
            covered,
            Check.UNCOVERED,
            f"records [{covered}, {stop}) are after the last signed checkpoint: nothing proves "
            "them (appended after the log was checkpointed, or forged)",
        )
    return verified


def _check_content(
    bundle: Bundle,
    conf: GlobalConfiguration,
    check_tokens: bool,
    problems: _Problems,
    progress: Progress | None,
) -> int:
    """Decode every record; verify tokens and witnessed checkpoints. Return tokens verified."""

    resolve = _resolver(conf)

    def outcome(k: int, record: AuditRecord) -> int | str:
        return _token_outcome(record, resolve)

    return _merge_content(bundle, conf, outcome if check_tokens else None, problems, progress)


def _check_content_parallel(
    bundle: Bundle,
    conf: GlobalConfiguration,
    conf_bytes: bytes,
    workers: int,
    problems: _Problems,
    progress: Progress | None,
) -> int:
    """`_check_content` with the token signatures verified by `workers` processes.

    Every chunk is submitted at once; the merge loop below decodes records
    meanwhile and waits for a chunk only when it reaches a record of it, so
    the main process's own pass overlaps the workers'."""
    records = bundle.records
    size = min(_CHUNK_MAX, max(_CHUNK_MIN, len(records) // (workers * 4) or 1))
    # forkserver: workers are forked from a clean single-threaded server, never
    # from the caller, which may hold threads (a progress bar, a gRPC server)
    # whose locks a plain fork would copy held.
    context = multiprocessing.get_context("forkserver")
    # Import this module once in the server, not once per worker.
    context.set_forkserver_preload([__name__])
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(conf_bytes,),
    )
    try:
        futures = [
            pool.submit(_verify_chunk, records[first : first + size])
            for first in range(0, len(records), size)
        ]
        done: dict[int, list[int | str | None]] = {}

        def outcome(k: int, record: AuditRecord) -> int | str:
            chunk = k // size
            results = done.get(chunk)
            if results is None:
                done.clear()  # records are merged in order: earlier chunks are finished
                results = done[chunk] = futures[chunk].result()
            result = results[k - chunk * size]
            # A worker skips only records the merge loop skips too (unreadable,
            # or not ended OK), so it has an outcome for every record asked for.
            assert result is not None, f"worker returned no outcome for record {k}"
            return result

        return _merge_content(bundle, conf, outcome, problems, progress)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _merge_content(
    bundle: Bundle,
    conf: GlobalConfiguration,
    outcome: Callable[[int, AuditRecord], int | str] | None,
    problems: _Problems,
    progress: Progress | None,
) -> int:
    """The content pass in record order; `outcome` gives each OK record's token
    result (tokens verified, or why not), None skips tokens."""
    verified = 0
    step = 0
    for k, data in enumerate(bundle.records):
        index = bundle.start + k
        step += 1
        if progress is not None and step == 1000:
            progress(step)
            step = 0
        try:
            record = AuditRecord.from_bytes(data)
        except InvalidArgument as exc:
            problems.add(index, Check.RECORD, f"record {index} cannot be read: {exc.message}")
            continue
        if record.origin != bundle.origin:
            problems.add(
                index, Check.RECORD, f"record {index} names writer {record.origin!r}, not this log"
            )
        if record.witnessed_checkpoint:
            problem = _check_witness(record.witnessed_checkpoint, conf)
            if problem:
                problems.add(index, Check.WITNESS, f"record {index}: {problem}")
        if outcome is None or record.status != "OK":
            continue
        result = outcome(k, record)
        if isinstance(result, str):
            problems.add(
                index, Check.TOKEN, f"record {index} (exchange {record.exchange_id}): {result}"
            )
        else:
            verified += result
    if progress is not None and step:
        progress(step)
    return verified


def _workers(jobs: int | None, records: int) -> int:
    """How many processes to verify tokens with: 1 when the pool would not pay."""
    if jobs is not None:
        return jobs
    if records < PARALLEL_MIN_RECORDS:
        return 1
    return os.cpu_count() or 1


def _resolver(conf: GlobalConfiguration) -> KeyResolver:
    """The one key resolver, without the validity period (see `trust.key_resolver`)."""
    return key_resolver(conf, check_validity=False)


def _token_outcome(record: AuditRecord, resolve: KeyResolver) -> int | str:
    """Tokens verified for an OK record, or the reason they do not verify."""
    try:
        return _check_tokens(record, resolve)
    except SpeanError as exc:
        return exc.message


# -- token workers (run in other processes) ----------------------------------------------------

_worker_resolve: KeyResolver | None = None


def _init_worker(conf_bytes: bytes) -> None:
    """Rebuild the (already verified) configuration once per worker process."""
    global _worker_resolve  # per-process state of a pool worker
    _worker_resolve = _resolver(_parse_configuration(conf_bytes))


def _verify_chunk(records: Sequence[bytes]) -> list[int | str | None]:
    """One outcome per record: tokens verified, why not, or None where the merge
    loop does not ask (unreadable record, exchange not ended OK)."""
    resolve = _worker_resolve
    assert resolve is not None, "token worker used before _init_worker"
    results: list[int | str | None] = []
    for data in records:
        try:
            record = AuditRecord.from_bytes(data)
        except InvalidArgument:
            results.append(None)
            continue
        results.append(_token_outcome(record, resolve) if record.status == "OK" else None)
    return results


def _check_tokens(record: AuditRecord, resolve: KeyResolver) -> int:
    if not record.request_token or not record.response_token:
        raise Unauthenticated("an exchange that ended OK must hold both tokens")
    client = SubsystemId.parse(record.client)
    service = SubsystemId.parse(record.service)
    now = record.received_at_ns // 1_000_000_000
    request = verify_request(record.request_token, resolve, now=now)
    if request.exchange_id != record.exchange_id:
        raise Unauthenticated(f"request token is for exchange {request.exchange_id}")
    if request.client != client:
        raise Unauthenticated(f"request token is from {request.client}, the record says {client}")
    if (request.user, request.purpose) != (record.user, record.purpose):
        raise Unauthenticated("request token's user or purpose differs from the record")
    check_request_binding(
        request, audience=service, method=record.method, body_sha256=record.request_sha256
    )
    response = verify_response(
        record.response_token,
        resolve,
        now=record.answered_at_ns // 1_000_000_000 or now,
        expected_exchange_id=record.exchange_id,
        expected_provider=service,
        expected_client=client,
    )
    check_response_binding(
        response,
        status=record.status,
        response_sha256=record.response_sha256,
        response_messages=record.response_messages,
    )
    return 2


def _check_witness(note: bytes, conf: GlobalConfiguration) -> str:
    """Why a witnessed checkpoint does not verify, or "" when it does."""
    try:
        check_witnessed(note, conf)
    except CheckpointError as exc:
        return f"witnessed checkpoint does not verify: {exc.message}"
    return ""
