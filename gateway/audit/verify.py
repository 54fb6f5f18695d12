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
Token checks are optional (`check_tokens`); they cost a signature
verification each and dominate the run time. `verify_bundle` takes them from
a `TokenPass`: by default `in_process`, which verifies each record's
tokens as the content pass reaches it; `spean.gateway.audit.verify_parallel`
supplies one that verifies them in worker processes. Either way a token pass
only gives each record's outcome (tokens verified, or why they do not
verify) and the content pass merges the outcomes in record order, in the
same loop that decodes the records and checks their origin and witnessed
checkpoint, so the report is the same, problem for problem and in the same
order, whatever computed the outcomes. The structure check is a single hash
chain, and fast: it always runs here.

A bundle already read and an anchor in, a `Report` out: this module reads
no file, starts no process, opens no connection and keeps no state between
calls (an import-linter contract checks the processes and connections). It
is not in the pure-rules contract only because `bundle` and `witness`, whose
values and checks it uses, also hold the I/O around them (reading and
writing bundle files, logging).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
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
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.audit.witness import check_witnessed
from spean.gateway.errors import InvalidArgument, SpeanError, Unauthenticated
from spean.gateway.globalconf import GlobalConfiguration, verify_signature
from spean.gateway.identifiers import MemberId, SubsystemId, origin_server
from spean.gateway.tokens import (
    KeyResolver,
    check_recorded_subject,
    verify_request,
    verify_response,
)
from spean.gateway.trust import key_resolver
from spean.v1 import config_pb2


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
    MANIFEST = "manifest"  # a number of manifest.json the bundle's content contradicts


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

TokenCheck = Callable[[int, AuditRecord], int | str]
"""The token outcome of the record at position `k` of the bundle (a record
`checks_tokens` selects): how many tokens verified, or why they do not."""

TokenPass = Callable[[Bundle, GlobalConfiguration, bytes], AbstractContextManager[TokenCheck]]
"""Makes the `TokenCheck` of one bundle, given its verified configuration and
that configuration's signed bytes, for the duration of the content pass."""


class _Problems:
    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, index: int | None, check: Check, reason: str) -> None:
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
    bundle: Bundle,
    *,
    anchor: x509.Certificate | None = None,
    check_tokens: bool = True,
    progress: Progress | None = None,
    auditor_key: X25519PrivateKey | None = None,
    tokens: TokenPass | None = None,
    now_ns: int | None = None,
) -> Report:
    """Verify everything a bundle claims; see the module docstring for the checks.

    With `auditor_key`, sealed bodies are decrypted and checked against their
    records' digests; without it they are only counted. `tokens` computes the
    token outcomes (default `in_process`); the report does not depend on it.
    `now_ns` (default: the clock) is when the verification runs: an export
    cannot claim to be later."""
    problems = _Problems()
    checkpoints_ok = 0
    verified = 0
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
    _check_manifest(bundle, signed, problems, time.time_ns() if now_ns is None else now_ns)
    checkpoints_ok = _check_structure(bundle, signed, problems, progress)
    if conf is not None:
        if check_tokens:
            with (tokens or in_process)(bundle, conf, conf_bytes) as check:
                verified = _check_content(bundle, conf, check, problems, progress)
        else:
            verified = _check_content(bundle, conf, None, problems, progress)
    bodies_ok = _check_bodies(bundle, auditor_key, problems)
    return Report(
        origin=bundle.origin,
        start=bundle.start,
        records=len(bundle.records),
        checkpoints=checkpoints_ok,
        tokens_verified=verified,
        anchor=anchor_source,
        problems=tuple(sorted(problems.items, key=_order)),
        bodies=len(bundle.bodies),
        bodies_verified=bodies_ok,
    )


def _check_manifest(
    bundle: Bundle, checkpoints: list[SignedCheckpoint], problems: _Problems, now_ns: int
) -> None:
    """The manifest's numbers against what the bundle holds and its signed checkpoints."""
    if bundle.declared_records is not None and bundle.declared_records != len(bundle.records):
        problems.add(
            None,
            Check.MANIFEST,
            f"manifest.json says records {bundle.declared_records}, but records.bin holds "
            f"{len(bundle.records)} records",
        )
    largest = max(checkpoints, key=lambda c: c.size, default=None)
    if bundle.log_size < bundle.stop:
        problems.add(
            None,
            Check.MANIFEST,
            f"manifest.json says log_size {bundle.log_size}, but the bundle holds records up "
            f"to index {bundle.stop - 1}",
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
            f"({_iso(bundle.exported_at_ns)}), before the checkpoint at size {latest.size} "
            f"was signed ({_iso(latest.checkpoint.time_ns)})",
        )
    if bundle.exported_at_ns > now_ns:
        problems.add(
            None,
            Check.MANIFEST,
            f"manifest.json says exported_at_ns {bundle.exported_at_ns} "
            f"({_iso(bundle.exported_at_ns)}), which is in the future",
        )


def _iso(ns: int) -> str:
    try:
        return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):
        return "not a time"


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
                problems.add(
                    position + k,
                    Check.CHAIN,
                    f"record {position + k} does not follow record {position + k - 1} in "
                    "the hash chain: it was altered, inserted, removed or moved",
                )
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


@contextmanager
def in_process(
    bundle: Bundle, conf: GlobalConfiguration, conf_bytes: bytes
) -> Iterator[TokenCheck]:
    """The `TokenPass` that verifies each record's tokens here, when asked."""
    resolve = bundle_resolver(conf)
    yield lambda k, record: token_outcome(record, resolve)


def _check_content(
    bundle: Bundle,
    conf: GlobalConfiguration,
    outcome: TokenCheck | None,
    problems: _Problems,
    progress: Progress | None,
) -> int:
    """The content pass in record order: decode every record, check its origin
    and witnessed checkpoint, and merge each record's token outcome (None:
    tokens not checked). Returns the tokens verified."""
    verified = 0
    step = 0
    witnessed: dict[bytes, str] = {}  # note -> why it does not verify ("": it does)
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
            # A provider attaches the same checkpoint to every answer until it
            # signs the next: each distinct note is verified once.
            problem = witnessed.get(record.witnessed_checkpoint)
            if problem is None:
                problem = witnessed[record.witnessed_checkpoint] = _check_witness(
                    record.witnessed_checkpoint, conf
                )
            if problem:
                problems.add(index, Check.WITNESS, f"record {index}: {problem}")
        if outcome is None or not checks_tokens(record):
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


def checks_tokens(record: AuditRecord) -> bool:
    """Whether the content pass checks this record's tokens: every record that
    holds one (refusals included), and every exchange that ended OK, which must
    hold both."""
    return record.status == "OK" or bool(record.request_token or record.response_token)


def bundle_resolver(conf: GlobalConfiguration) -> KeyResolver:
    """The one key resolver (`trust.key_resolver`), without the validity period:
    a bundle is judged long after its certificates may have expired, and each
    token's period was checked when the token was accepted."""
    return key_resolver(conf, check_validity=False)


def token_outcome(record: AuditRecord, resolve: KeyResolver) -> int | str:
    """Tokens verified for a record (`checks_tokens`), or the reason they do not verify."""
    try:
        return _check_tokens(record, resolve)
    except SpeanError as exc:
        return exc.message


# A consumer refuses an answer whose response token does not verify or does not
# bind the answer with UNAUTHENTICATED, and keeps the token for the record
# (protocol.md 3.5); a provider refuses a request token made for another method
# or body (steps 7 and 8 of protocol.md 4.2) with UNAUTHENTICATED too.
REFUSED = "UNAUTHENTICATED"


def _check_tokens(record: AuditRecord, resolve: KeyResolver) -> int:
    """The rules of docs/auditor.md, "What the tokens protect"; returns the tokens verified."""
    if record.status == "OK" and not (record.request_token and record.response_token):
        raise Unauthenticated("an exchange that ended OK must hold both tokens")
    verified = 0
    if record.request_token:
        verified += _check_request_token(record, resolve)
    if record.response_token:
        verified += _check_response_token(record, resolve)
    return verified


def _check_request_token(record: AuditRecord, resolve: KeyResolver) -> int:
    provider = record.side == Side.PROVIDER
    # An unsigned refusal (steps 1 to 5): a token refused at step 3 or 4 left
    # the caller unknown (no client, service, user or purpose noted); it
    # proves nothing and is not checked.
    if (
        provider
        and not record.response_token
        and not (record.client or record.service or record.user or record.purpose)
    ):
        return 0
    now = (record.forwarded_at_ns or record.received_at_ns) // 1_000_000_000
    request = verify_request(record.request_token, resolve, now=now)
    if request.exchange_id != record.exchange_id:
        raise Unauthenticated(
            f"request token is for exchange {request.exchange_id}, the record says "
            f"{record.exchange_id}"
        )
    _same("request token", "client", str(request.client), record.client)
    _same("request token", "service", str(request.audience), record.service)
    _same("request token", "user", request.user, record.user)
    _same("request token", "purpose", request.purpose, record.purpose)
    if provider and (not record.response_token or record.status == REFUSED):
        # The provider may have refused the call precisely because the token
        # names another method or body (steps 7, 8), or before reaching them.
        return 1
    _same("request token", "method", request.method, record.method)
    if request.request_sha256 != record.request_sha256:
        raise Unauthenticated(
            "request token's digest (claim 'req') is not the record's request_sha256"
        )
    return 1


def _check_response_token(record: AuditRecord, resolve: KeyResolver) -> int:
    consumer = record.side == Side.CONSUMER
    try:
        response = verify_response(
            record.response_token,
            resolve,
            now=(record.answered_at_ns or record.received_at_ns) // 1_000_000_000,
            expected_exchange_id=record.exchange_id,
            expected_provider=SubsystemId.parse(record.service),
            expected_client=SubsystemId.parse(record.client),
        )
        status = response.status
        if consumer and record.status == "INTERNAL" and status == "UNKNOWN":
            status = "INTERNAL"  # the consumer never passes UNKNOWN on (protocol.md 3.5)
        _same("response token", "status", status, record.status)
        if response.response_sha256 != record.response_sha256:
            raise Unauthenticated(
                "response token's digest (claim 'res') is not the record's response_sha256"
            )
        if response.response_messages != record.response_messages:
            raise Unauthenticated(
                f"response token counts {response.response_messages} messages (claim 'cnt'), "
                f"the record says {record.response_messages}"
            )
        check_recorded_subject(response, record.subject_pseudonym)
    except SpeanError:
        if consumer and record.status == REFUSED:
            # The consumer refused this answer because of its token: recorded as received.
            return 0
        raise
    return 1


def _same(token: str, field_name: str, signed: str, recorded: str) -> None:
    if signed != recorded:
        raise Unauthenticated(
            f"{token} signs {field_name} {signed!r}, the record says {recorded!r}"
        )


def _check_witness(note: bytes, conf: GlobalConfiguration) -> str:
    """Why a witnessed checkpoint does not verify, or "" when it does."""
    try:
        check_witnessed(note, conf)
    except CheckpointError as exc:
        return f"witnessed checkpoint does not verify: {exc.message}"
    return ""
