"""Offline verification of an audit bundle: values in, a report out, in this process.

Theory of operation. The verifier trusts one thing: the configuration anchor
(the auditor's own copy, or, failing that, the one bundled, which the report
flags). From it, in order:

1. the bundled global configuration's signature, hence the member signing
   certificates it publishes;
2. the manifest's numbers: `records` against the records read,
   `log_size` and `exported_at_ns` against the signed checkpoints (and the
   clock); `start`, `start_chain` and `start_state` through 4;
3. every checkpoint: C2SP form, the log's origin, signed by the member that
   owns the writer (key name and key id), `spean-previous` linking each to
   the one before (a dropped checkpoint leaves a gap), sizes increasing, no
   two different roots for one size (a fork);
4. the structure: every record's leaf hash `SHA-256(0x00||record)`, the
   stored hash chain (which pinpoints the first altered, removed, inserted or
   reordered record), and the Merkle root at every checkpoint size recomputed
   with a `CompactRange` (which proves the records whatever the chain says);
   a checkpoint beyond the last record means the log was truncated; records
   after the last checkpoint are not proven and are reported;
5. the content: every record decodes canonically and names this origin;
   every token a record holds, refusals included, verifies with the members'
   certificates and binds the record (request token: exchange id, client,
   service, user, purpose, method, request digest; response token: exchange
   id, service, client, status, response digest, count), except where the
   protocol records a token that did not bind as the very reason of a
   refusal (`_check_tokens`; docs/auditor.md, "What the tokens protect"); an
   exchange that ended OK holds both; each distinct witnessed checkpoint
   verifies once with the provider's certificates;
6. sealed bodies (given the auditor's key): each decrypts, bound to its
   record, and matches the record's request and response digests.

Consistency between checkpoints follows from 4: each root is recomputed from
the same leaves, so the smaller tree is a prefix of the larger. Consistency
proofs (gateway/audit/merkle.py) serve where leaves are absent: reconcile.

The report lists every problem found, each with the record index (log
numbering) and what is wrong; `first` is the lowest index.

One pass. The records are read once, in order, `CHUNK` at a time, from a
`BundleSource` (a bundle in memory, or `bundle.open_bundle`'s stream of a
file): each chunk's structure (4) is checked as it is read, beside the stored
chain hashes read from their own stream, and its content (5) a few chunks
later, once its token outcomes are in. Memory is bounded by the chunks in
flight and the largest record, plus the compact range (O(log n) hashes), the
checkpoints, the distinct witnessed checkpoints and the problems found,
whatever the number of records; the manifest's numbers are checked after the
pass, against the records counted. Sealed bodies are checked after it too,
from their own stream (in index order, as exported), with a second pass over
the records only when the auditor's key is given.

Token checks are optional (`check_tokens`); they cost a signature
verification each and dominate the run time. `verify_bundle` takes them from
a `TokenPass` (the rules are `verify_tokens.py`): by default `in_process`,
which verifies each record's tokens as the content pass reaches it;
`spean.gateway.audit.verify_parallel` supplies one that verifies each chunk
in worker processes as soon as it is read, ahead of the content pass. Either
way a token pass only gives each record's outcome (tokens verified, or why
they do not verify) and the content pass merges the outcomes in record order,
in the same loop that decodes the records and checks their origin and
witnessed checkpoint, so the report is the same, problem for problem and in
the same order, whatever computed the outcomes. Problems are listed check by
check at each index (configuration, checkpoints, manifest, structure,
content, bodies), the same order however the pass was cut into chunks.

A bundle and an anchor in, a `Report` out: this module opens no file itself
(a `BundleSource` from a file reads it through `bundle`), starts no process,
opens no connection and keeps no state between calls (an import-linter
contract checks the processes and connections). It is not in the pure-rules
contract only because `bundle` and `witness`, whose values and checks it
uses, also hold the I/O around them (reading and writing bundle files,
logging).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from google.protobuf.message import DecodeError

from spean.gateway import pki
from spean.gateway.audit.bodies import check_bodies, open_for
from spean.gateway.audit.bundle import Bundle, BundleSource, source_of
from spean.gateway.audit.checkpoint import (
    CheckpointError,
    SignedCheckpoint,
    parse_checkpoint,
    verify_checkpoint,
)
from spean.gateway.audit.merkle import HASH_SIZE, CompactRange, leaf_hashes
from spean.gateway.audit.record import AuditRecord, decode_canonical, iso_ns

# Check, Problem and Report are part of this module's surface (callers and tests
# import them from here); they live in verify_report.
from spean.gateway.audit.verify_report import Check as Check
from spean.gateway.audit.verify_report import Problem as Problem
from spean.gateway.audit.verify_report import Problems, problem_order
from spean.gateway.audit.verify_report import Report as Report
from spean.gateway.audit.verify_tokens import (
    bundle_resolver,
    checks_tokens,
    token_outcome,
)
from spean.gateway.audit.witness import check_witnessed
from spean.gateway.errors import InvalidArgument, SpeanError, Unauthenticated
from spean.gateway.globalconf import GlobalConfiguration, verify_signature
from spean.gateway.identifiers import MemberId, origin_server
from spean.v1 import config_pb2

Progress = Callable[[int], None]

CHUNK = 2000
"""Records read, checked and handed to the token pass at a time: what bounds the
verifier's memory (a few chunks in flight), large enough that the hand-over to
token workers is negligible."""

TokenCheck = Callable[[int, AuditRecord], int | str]
"""The token outcome of the record at position `k` of a submitted chunk (a
record `checks_tokens` selects): how many tokens verified, or why they do not."""


@dataclass(frozen=True, slots=True)
class TokenFeed:
    """What a token pass takes chunks with: `submit(records)` starts the token
    checks of one chunk and gives its `TokenCheck`; the content pass asks it
    only after `lookahead` more chunks were submitted (or the records ended), so
    that workers verify ahead while this process reads and hashes."""

    submit: Callable[[Sequence[bytes]], TokenCheck]
    lookahead: int = 0


TokenPass = Callable[[GlobalConfiguration, bytes], AbstractContextManager[TokenFeed]]
"""Makes the `TokenFeed` of one bundle, given its verified configuration and
that configuration's signed bytes, for the duration of the pass."""


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
    return parse_configuration(data), data, source


def parse_configuration(data: bytes) -> GlobalConfiguration:
    """The configuration in `data`, bytes whose signature was already verified."""
    message = config_pb2.GlobalConfiguration()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise Unauthenticated(f"the bundled global configuration cannot be decoded: {exc}") from exc
    return GlobalConfiguration.from_proto(message)


def verify_bundle(
    bundle: Bundle | BundleSource,
    *,
    anchor: x509.Certificate | None = None,
    check_tokens: bool = True,
    progress: Progress | None = None,
    auditor_key: X25519PrivateKey | None = None,
    tokens: TokenPass | None = None,
    now_ns: int | None = None,
) -> Report:
    """Verify everything a bundle claims; see the module docstring for the checks.

    `bundle` in memory, or a `BundleSource` (`bundle.open_bundle`) streamed in
    one pass, chunk by chunk: memory is bounded by a few chunks of records plus
    the checkpoints, the distinct witnessed checkpoints and the problems found,
    whatever the number of records. With `auditor_key`, sealed bodies are
    decrypted and checked against their records' digests (a second pass over
    the records, only then); without it they are only counted. `tokens`
    computes the token outcomes (default `in_process`); the report does not
    depend on it. `now_ns` (default: the clock) is when the verification runs:
    an export cannot claim to be later."""
    source = bundle if isinstance(bundle, BundleSource) else source_of(bundle)
    frame = source.frame
    head = Problems()
    verified = 0
    anchor_source = "none"
    conf: GlobalConfiguration | None = None
    conf_bytes = b""
    try:
        conf, conf_bytes, anchor_source = _load_configuration(frame, anchor)
    except SpeanError as exc:
        head.add(None, Check.GLOBALCONF, exc.message)
    member_certs: tuple[x509.Certificate, ...] = ()
    member: MemberId | None = None
    try:
        member = origin_server(frame.origin).member
    except SpeanError as exc:
        head.add(None, Check.CHECKPOINT, f"origin {frame.origin!r}: {exc.message}")
    if conf is not None and member is not None:
        info = conf.member(member)
        if info is None:
            head.add(None, Check.GLOBALCONF, f"member {member} is not in the configuration")
        else:
            member_certs = info.signing_certificates
    signed = _check_checkpoints(frame, member, member_certs, conf is not None, head)
    structure = _Structure(frame, signed, source.chains())
    content = None if conf is None else _Content(frame, conf)
    if conf is not None and content is not None and check_tokens:
        with (tokens or in_process)(conf, conf_bytes) as feed:
            _one_pass(source, structure, content, feed, progress)
        verified = content.tokens_verified
    else:
        _one_pass(source, structure, content, None, progress)
    structure.finish()
    manifest = Problems()
    _check_manifest(
        frame, structure.records, signed, manifest, time.time_ns() if now_ns is None else now_ns
    )
    bodies = Problems()
    bodies_seen, bodies_ok = _check_bodies(source, structure.records, auditor_key, bodies)
    # Stable sort by index: at one index, problems keep the checks' order.
    problems = [
        *head.items,
        *manifest.items,
        *structure.problems.items,
        *(content.problems.items if content is not None else ()),
        *bodies.items,
    ]
    return Report(
        origin=frame.origin,
        start=frame.start,
        records=structure.records,
        checkpoints=structure.verified,
        tokens_verified=verified,
        anchor=anchor_source,
        problems=tuple(sorted(problems, key=problem_order)),
        bodies=bodies_seen,
        bodies_verified=bodies_ok,
    )


def _one_pass(
    source: BundleSource,
    structure: _Structure,
    content: _Content | None,
    feed: TokenFeed | None,
    progress: Progress | None,
) -> None:
    """Read the records once, a chunk at a time: the structure of each chunk at
    once, its content (with its token outcomes) `feed.lookahead` chunks later.
    `progress` counts each record twice, once per check (2 x records in all)."""
    advance = progress or (lambda n: None)
    records = source.records()
    pending: deque[tuple[list[bytes], TokenCheck | None]] = deque()
    lookahead = 0 if feed is None else feed.lookahead

    def settle() -> None:
        chunk, outcome = pending.popleft()
        if content is not None:
            content.feed(chunk, outcome)
        advance(len(chunk))

    while chunk := list(itertools.islice(records, CHUNK)):
        structure.feed(chunk)
        advance(len(chunk))
        pending.append((chunk, None if feed is None else feed.submit(chunk)))
        while len(pending) > lookahead:
            settle()
    while pending:
        settle()


def _check_manifest(
    bundle: Bundle,
    records: int,
    checkpoints: list[SignedCheckpoint],
    problems: Problems,
    now_ns: int,
) -> None:
    """The manifest's numbers against the `records` read and the signed checkpoints."""
    stop = bundle.start + records
    if bundle.declared_records is not None and bundle.declared_records != records:
        problems.add(
            None,
            Check.MANIFEST,
            f"manifest.json says records {bundle.declared_records}, but records.bin holds "
            f"{records} records",
        )
    largest = max(checkpoints, key=lambda c: c.size, default=None)
    if bundle.log_size < stop:
        problems.add(
            None,
            Check.MANIFEST,
            f"manifest.json says log_size {bundle.log_size}, but the bundle holds records up "
            f"to index {stop - 1}",
        )
    elif largest is not None and bundle.log_size < largest.size:
        problems.add(
            None,
            Check.MANIFEST,
            f"manifest.json says log_size {bundle.log_size}, but a signed checkpoint has size "
            f"{largest.size}",
        )
    latest = max(checkpoints, key=lambda c: c.checkpoint.time_ns, default=None)
    if latest is not None and bundle.exported_at_ns < latest.checkpoint.time_ns:
        problems.add(
            None,
            Check.MANIFEST,
            f"manifest.json says exported_at_ns {bundle.exported_at_ns} "
            f"({iso_ns(bundle.exported_at_ns)}), before the checkpoint at size {latest.size} "
            f"was signed ({iso_ns(latest.checkpoint.time_ns)})",
        )
    if bundle.exported_at_ns > now_ns:
        problems.add(
            None,
            Check.MANIFEST,
            f"manifest.json says exported_at_ns {bundle.exported_at_ns} "
            f"({iso_ns(bundle.exported_at_ns)}), which is in the future",
        )


def _check_bodies(
    source: BundleSource, records: int, key: X25519PrivateKey | None, problems: Problems
) -> tuple[int, int]:
    """Each sealed body belongs to a record of the bundle and, with `key`, matches its
    digests: (entries, entries verified). Entries come in index order (as exported),
    so one pass over bodies.bin and, with `key`, one over the records, side by side."""
    start = source.frame.start
    stop = start + records
    entries = verified = 0
    previous = -1
    matching = enumerate(source.records(), start) if key is not None else None
    for index, sealed in source.bodies():
        entries += 1
        if not start <= index < stop or index <= previous:
            if not start <= index < stop:
                reason = f"sealed bodies for record {index}, which is not in the bundle"
            elif index == previous:
                reason = f"record {index} has sealed bodies twice"
            else:
                reason = (
                    f"sealed bodies for record {index} come after those of record {previous}: "
                    "bodies.bin is not in index order"
                )
            problems.add(index, Check.BODIES, reason)
            continue
        previous = index
        if matching is None or key is None:
            continue
        data = next(data for at, data in matching if at == index)
        try:
            record = AuditRecord.from_bytes(data)
            problem = check_bodies(record, open_for(record, sealed, key))
        except InvalidArgument as exc:
            problem = exc.message
        if problem:
            problems.add(index, Check.BODIES, f"record {index}: {problem}")
        else:
            verified += 1
    return entries, verified


def verify_structure(
    bundle: Bundle | BundleSource, certificates: tuple[x509.Certificate, ...]
) -> tuple[int, tuple[Problem, ...]]:
    """Checks 2 and 3 alone (checkpoints, chain, tree) against the writer's
    member certificates, in one streaming pass: (checkpoints reproduced, problems)."""
    source = bundle if isinstance(bundle, BundleSource) else source_of(bundle)
    head = Problems()
    member = origin_server(source.frame.origin).member
    signed = _check_checkpoints(source.frame, member, certificates, True, head)
    structure = _Structure(source.frame, signed, source.chains())
    _one_pass(source, structure, None, None, None)
    structure.finish()
    problems = [*head.items, *structure.problems.items]
    return structure.verified, tuple(sorted(problems, key=problem_order))


def _check_checkpoints(
    bundle: Bundle,
    member: MemberId | None,
    certificates: tuple[x509.Certificate, ...],
    have_conf: bool,
    problems: Problems,
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


class _Structure:
    """Chain and tree over the records fed, chunk by chunk, in index order; holds
    the stored chain hashes' iterator, the compact range (O(log n) hashes) and
    the checkpoints, never the records."""

    def __init__(
        self, bundle: Bundle, checkpoints: list[SignedCheckpoint], chains: Iterator[bytes]
    ) -> None:
        self.problems = Problems()
        self.records = 0
        self.verified = 0
        self._start = bundle.start
        self._checkpoints = checkpoints
        self._chains = chains
        self._previous = bundle.start_chain
        self._tree = CompactRange.from_state(bundle.start_state)
        self._last_verified = bundle.start
        # The first record the chain flags since the last checkpoint that held:
        # where a root mismatch is reported, as the most precise place known.
        self._suspect: int | None = None
        self._due = {c.size: c for c in checkpoints if c.size >= bundle.start}
        self._sizes = sorted(self._due)
        self._next = 0
        self._short = 0
        self._enabled = bundle.start_state.size == bundle.start
        if not self._enabled:
            self.problems.add(
                bundle.start,
                Check.TREE,
                f"the bundle starts at index {bundle.start} but its tree state is at size "
                f"{bundle.start_state.size}",
            )
        else:
            self._check_due(bundle.start)

    def feed(self, chunk: Sequence[bytes]) -> None:
        """The next records, in order."""
        position = self._start + self.records
        self.records += len(chunk)
        if not self._enabled:
            return
        end = position + len(chunk)
        leaves = leaf_hashes(chunk)
        offset = 0
        sizes = self._sizes
        while offset < len(leaves):
            # Up to the next checkpoint size inside the chunk, or the chunk's end.
            cut = len(leaves)
            if self._next < len(sizes) and sizes[self._next] < end:
                cut = sizes[self._next] - position
            self._chain(leaves[offset:cut], position + offset)
            self._tree.extend(leaves[offset:cut])
            offset = cut
            self._check_due(position + cut)

    def _chain(self, leaves: list[bytes], first: int) -> None:
        stored_block = b"".join(itertools.islice(self._chains, len(leaves)))
        sha = hashlib.sha256
        previous = self._previous
        computed_hashes: list[bytes] = []
        append = computed_hashes.append
        for leaf in leaves:
            previous = sha(previous + leaf).digest()
            append(previous)
        # The usual case, an unbroken chain, in one comparison; the record by
        # record walk below only where it breaks.
        if b"".join(computed_hashes) == stored_block:
            self._previous = previous
            return
        chains = iter(
            [stored_block[i : i + HASH_SIZE] for i in range(0, len(stored_block), HASH_SIZE)]
        )
        previous = self._previous
        for k, leaf in enumerate(leaves):
            computed = sha(previous + leaf).digest()
            stored = next(chains, b"")
            if computed == stored:
                previous = computed
                continue
            index = first + k
            if self._suspect is None:
                self._suspect = index
            self.problems.add(
                index,
                Check.CHAIN,
                f"record {index} does not follow record {index - 1} in "
                "the hash chain: it was altered, inserted, removed or moved",
            )
            if stored:
                previous = stored  # resynchronise on the stored chain
            else:
                previous = computed
                self._short += 1  # chains.bin ended before records.bin
        self._previous = previous

    def _check_due(self, size: int) -> None:
        """The root at `size`, against the checkpoint of that size if there is one."""
        sizes = self._sizes
        if self._next >= len(sizes) or sizes[self._next] != size:
            return
        self._next += 1
        due = self._due[size]
        root = self._tree.root()
        if root == due.root:
            self.verified += 1
            self._last_verified = size
            self._suspect = None
            return
        self.problems.add(
            self._last_verified if self._suspect is None else self._suspect,
            Check.TREE,
            f"checkpoint at size {due.size} signs root {due.root.hex()[:16]}..., but the "
            f"records give {root.hex()[:16]}...: records in [{self._last_verified}, "
            f"{due.size}) were altered, removed, inserted or reordered, or the checkpoint "
            "is forked",
        )

    def finish(self) -> None:
        """After the last record: the chain hashes left over, truncation, the tail."""
        if not self._enabled:
            return
        start, stop = self._start, self._start + self.records
        ahead: list[Problem] = []
        stored = self.records - self._short + sum(1 for _ in self._chains)
        if stored != self.records:
            ahead.append(
                Problem(
                    None,
                    Check.CHAIN,
                    f"the bundle holds {self.records} records but {stored} chain hashes",
                )
            )
        truncated = False
        for c in self._checkpoints:
            if c.size > stop:
                truncated = True
                ahead.append(
                    Problem(
                        stop,
                        Check.TRUNCATED,
                        f"checkpoint at size {c.size} covers records [{stop}, {c.size}) that are "
                        "not in the bundle: the log was truncated",
                    )
                )
                break
        self.problems.items[:0] = ahead
        covered = max((c.size for c in self._checkpoints if start <= c.size <= stop), default=start)
        if stop > covered and not truncated:  # truncation already names the tail
            self.problems.add(
                covered,
                Check.UNCOVERED,
                f"records [{covered}, {stop}) are after the last signed checkpoint: nothing "
                "proves them (appended after the log was checkpointed, or forged)",
            )


@contextmanager
def in_process(conf: GlobalConfiguration, conf_bytes: bytes) -> Iterator[TokenFeed]:
    """The `TokenPass` that verifies each record's tokens here, when the content
    pass asks."""
    resolve = bundle_resolver(conf)

    def check(k: int, record: AuditRecord) -> int | str:
        return token_outcome(record, resolve)

    yield TokenFeed(lambda chunk: check)


class _Content:
    """The content pass, chunk by chunk in record order: decode every record, check
    its origin and witnessed checkpoint, and merge each record's token outcome.
    Holds the distinct witnessed checkpoints' verdicts, never the records."""

    def __init__(self, bundle: Bundle, conf: GlobalConfiguration) -> None:
        self.problems = Problems()
        self.tokens_verified = 0
        self._origin = bundle.origin
        self._conf = conf
        self._index = bundle.start
        self._witnessed: dict[bytes, str] = {}  # note -> why it does not verify ("": it does)

    def feed(self, chunk: Sequence[bytes], outcome: TokenCheck | None) -> None:
        """The next chunk, with its token outcomes (None: tokens not checked)."""
        problems = self.problems
        witnessed = self._witnessed
        first = self._index
        self._index += len(chunk)
        for k, data in enumerate(chunk):
            index = first + k
            try:
                message = decode_canonical(data)
            except InvalidArgument as exc:
                problems.add(index, Check.RECORD, f"record {index} cannot be read: {exc.message}")
                continue
            if message.origin != self._origin:
                problems.add(
                    index,
                    Check.RECORD,
                    f"record {index} names writer {message.origin!r}, not this log",
                )
            note = message.witnessed_checkpoint
            if note:
                # A provider attaches the same checkpoint to every answer until it
                # signs the next: each distinct note is verified once.
                problem = witnessed.get(note)
                if problem is None:
                    problem = witnessed[note] = _check_witness(note, self._conf)
                if problem:
                    problems.add(index, Check.WITNESS, f"record {index}: {problem}")
            if outcome is None:
                continue
            record = AuditRecord.from_message(message)
            if not checks_tokens(record):
                continue
            result = outcome(k, record)
            if isinstance(result, str):
                problems.add(
                    index, Check.TOKEN, f"record {index} (exchange {message.exchange_id}): {result}"
                )
            else:
                self.tokens_verified += result


def _check_witness(note: bytes, conf: GlobalConfiguration) -> str:
    """Why a witnessed checkpoint does not verify, or "" when it does."""
    try:
        check_witnessed(note, conf)
    except CheckpointError as exc:
        return f"witnessed checkpoint does not verify: {exc.message}"
    return ""
