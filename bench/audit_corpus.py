"""Synthetic audit logs of the demo federation at national scale, for bench/audit_scale.py.

`generate(exchanges, folder)` writes `consumer.zip` (MoH's server, calling)
and `provider.zip` (MPWT's server, answering) of `exchanges` exchanges each,
that verify and reconcile clean, with everything a real pair holds:

- a realistic mix, spread through the log: 86% OK unary answers
  (`GetVehicle`), 4% OK server-streaming answers of 5 messages
  (`ListVehiclesByOwner`), 4% `NOT_FOUND` and 3% `PERMISSION_DENIED` answered
  by the provider (with a signed response token), 1% refused by the provider
  before it signs a response (`UNAUTHENTICATED`, a replayed token: the
  request token only), 2% refused by the consumer before forwarding
  (`NOT_FOUND`, `INVALID_ARGUMENT`: no token at all, no provider record);
- real, distinct ES256 tokens: every exchange's request token signed with
  MoH's signing key and response token with MPWT's, over that exchange's own
  id, parties, user, purpose, digests, status and message count, at the
  exchange's own time. No token is reused, so verifying each one is real
  work (nothing a cache could answer);
- one exchange per millisecond, checkpoints every 1000 records (a writer
  signs one every 1000 records or every second, whichever comes first),
  signed with each member's real key, and each forwarded consumer record
  witnessing the provider's latest checkpoint (what the provider attaches
  to its answers), so a consumer's log of N exchanges witnesses ~N/1000
  distinct checkpoints;
- the federation's real signed global configuration and anchor.

Tokens are signed in a process pool (one worker per core), in chunks of
exchanges; the records, chains, trees and checkpoints are built in order in
this process and streamed into the ZIP files, so memory stays small.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import time
import zipfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from spean.gateway.audit.bundle import FORMAT, NOTE_SEPARATOR
from spean.gateway.audit.chain import GENESIS, chain_hash
from spean.gateway.audit.checkpoint import Checkpoint, CheckpointSigner
from spean.gateway.audit.merkle import CompactRange, CompactRangeState, leaf_hash
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.demo.ministries import (
    GET_VEHICLE,
    LIST_VEHICLES,
    MOH,
    MPWT,
    NHIS,
    VEHICLES,
    build_demo,
)
from spean.gateway.files import keyfiles
from spean.gateway.files.config import load_config, read_passphrase
from spean.gateway.identifiers import MemberId, SubsystemId
from spean.gateway.tokens import RequestClaims, ResponseClaims, TokenSigner

EVERY = 1000  # records per checkpoint
CHUNK = 2000  # exchanges per signing task
STEP_NS = 1_000_000  # one exchange per millisecond

# n -> kind, spread through the log (37 is prime to 100: every kind recurs evenly).
OK, STREAM, NOT_FOUND, DENIED, REPLAYED, CONSUMER_REFUSED = range(6)
_KIND = (
    [OK] * 86 + [STREAM] * 4 + [NOT_FOUND] * 4 + [DENIED] * 3 + [REPLAYED] + [CONSUMER_REFUSED] * 2
)
KINDS = {
    OK: "OK unary",
    STREAM: "OK streaming (5 messages)",
    NOT_FOUND: "NOT_FOUND, signed",
    DENIED: "PERMISSION_DENIED, signed",
    REPLAYED: "UNAUTHENTICATED, request token only",
    CONSUMER_REFUSED: "refused by the consumer, no token",
}


def kind(n: int) -> int:
    return _KIND[n * 37 % 100]


@dataclass(frozen=True, slots=True)
class Exchange:
    """The facts of exchange `n`, the same in the signing worker and here."""

    n: int
    at_ns: int
    kind: int

    @property
    def exchange_id(self) -> str:
        n = self.n
        return f"0192c0de-{n >> 32 & 0xFFFF:04x}-4{n >> 16 & 0xFFF:03x}-8000-{n:012x}"

    @property
    def method(self) -> str:
        return LIST_VEHICLES if self.kind == STREAM else GET_VEHICLE

    @property
    def user(self) -> str:
        return f"dr.user-{self.n % 997}@hospital.example"

    @property
    def status(self) -> str:
        return {
            OK: "OK",
            STREAM: "OK",
            NOT_FOUND: "NOT_FOUND",
            DENIED: "PERMISSION_DENIED",
            REPLAYED: "UNAUTHENTICATED",
        }.get(self.kind, "INVALID_ARGUMENT" if self.n % 2 else "NOT_FOUND")

    @property
    def messages(self) -> int:
        return {OK: 1, STREAM: 5}.get(self.kind, 0)

    @property
    def request_sha256(self) -> bytes:
        return hashlib.sha256(b"request %d" % self.n).digest()

    @property
    def response_sha256(self) -> bytes:
        return hashlib.sha256(b"response %d" % self.n if self.messages else b"").digest()


# -- signing workers ------------------------------------------------------------------------

_signers: tuple[TokenSigner, TokenSigner] | None = None


def _load_signers(moh_yaml: Path, mpwt_yaml: Path) -> tuple[TokenSigner, TokenSigner]:
    signers = []
    for path in (moh_yaml, mpwt_yaml):
        config = load_config(path)
        keys = config.keys
        key = keyfiles.load_private_key(config.resolve(keys.signing_key), read_passphrase(config))
        signers.append(
            TokenSigner(key, keyfiles.load_certificate(config.resolve(keys.signing_certificate)))
        )
    return signers[0], signers[1]


def _init(moh_yaml: Path, mpwt_yaml: Path) -> None:
    global _signers  # per-process state of a pool worker
    _signers = _load_signers(moh_yaml, mpwt_yaml)


def _sign(task: tuple[int, int, int]) -> list[tuple[str, str]]:
    """(request token, response token) of exchanges [first, stop), "" where none."""
    first, stop, base_ns = task
    assert _signers is not None
    moh, mpwt = _signers
    out = []
    for n in range(first, stop):
        e = Exchange(n, base_ns + n * STEP_NS, kind(n))
        if e.kind == CONSUMER_REFUSED:
            out.append(("", ""))
            continue
        now = e.at_ns // 1_000_000_000
        request = moh.sign_request(
            RequestClaims(
                issuer=MemberId.parse(MOH),
                client=SubsystemId.parse(NHIS),
                audience=SubsystemId.parse(VEHICLES),
                method=e.method,
                exchange_id=e.exchange_id,
                issued_at=now,
                expires_at=now + 60,
                request_sha256=e.request_sha256,
                user=e.user,
                purpose="treatment",
            )
        )
        response = ""
        if e.kind != REPLAYED:
            response = mpwt.sign_response(
                ResponseClaims(
                    issuer=MemberId.parse(MPWT),
                    provider=SubsystemId.parse(VEHICLES),
                    audience=SubsystemId.parse(NHIS),
                    exchange_id=e.exchange_id,
                    issued_at=now,
                    expires_at=now + 60,
                    status=e.status,
                    response_sha256=e.response_sha256,
                    response_messages=e.messages,
                )
            )
        out.append((request, response))
    return out


# -- writing the two bundles ---------------------------------------------------------------


class _Log:
    """One writer's bundle being written: records streamed to the ZIP, chain, tree."""

    def __init__(self, path: Path, origin: str, signer: CheckpointSigner) -> None:
        self.origin = origin
        self.signer = signer
        self.archive = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED)
        self.stream = self.archive.open("records.bin", "w", force_zip64=True)
        self.chains: list[bytes] = []
        self.head = GENESIS.hash
        self.tree = CompactRange()
        self.notes: list[bytes] = []
        self.previous = 0

    def append(self, data: bytes, at_ns: int, last: bool) -> None:
        self.stream.write(len(data).to_bytes(4, "big") + data)
        leaf = leaf_hash(data)
        self.head = chain_hash(self.head, leaf)
        self.chains.append(self.head)
        self.tree.append(leaf)
        if self.tree.size % EVERY == 0 or last:
            size = self.tree.size
            checkpoint = Checkpoint(self.origin, size, self.tree.root(), self.previous, at_ns)
            self.notes.append(self.signer.sign(checkpoint).note)
            self.previous = size

    def close(self, globalconf: bytes, anchor_pem: bytes) -> int:
        self.stream.close()
        size = self.tree.size
        manifest = {
            "format": FORMAT,
            "origin": self.origin,
            "start": 0,
            "records": size,
            "log_size": size,
            "start_chain": base64.b64encode(GENESIS.hash).decode("ascii"),
            "start_state": CompactRangeState(0, ()).to_dict(),
            "exported_at_ns": time.time_ns(),
        }
        self.archive.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")
        self.archive.writestr("chains.bin", b"".join(self.chains))
        self.archive.writestr("checkpoints.txt", b"".join(n + NOTE_SEPARATOR for n in self.notes))
        self.archive.writestr("globalconf.bin", globalconf)
        self.archive.writestr("anchor.pem", anchor_pem)
        self.archive.close()
        return size


def _signed(
    pool: ProcessPoolExecutor, tasks: list[tuple[int, int, int]]
) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """The tokens of each task, in order, with a few tasks in flight (not all: the
    tokens of a million exchanges would not fit in memory)."""
    pending: deque[tuple[int, Future[list[tuple[str, str]]]]] = deque()
    for task in tasks:
        pending.append((task[0], pool.submit(_sign, task)))
        if len(pending) > 8:
            first, future = pending.popleft()
            yield first, future.result()
    while pending:
        first, future = pending.popleft()
        yield first, future.result()


def generate(exchanges: int, folder: Path) -> tuple[Path, Path]:
    """Write consumer.zip and provider.zip of `exchanges` exchanges into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    federation = build_demo(folder / "federation")
    yamls = (federation.configs[MOH], federation.configs[MPWT])
    moh_config, mpwt_config = (load_config(path) for path in yamls)
    checkpoint_signers = []
    for config in (moh_config, mpwt_config):
        keys = config.keys
        key = keyfiles.load_private_key(config.resolve(keys.signing_key), read_passphrase(config))
        certificate = keyfiles.load_certificate(config.resolve(keys.signing_certificate))
        checkpoint_signers.append(CheckpointSigner(str(config.server.member), key, certificate))
    globalconf = (federation.root / "authority" / "globalconf.signed").read_bytes()
    anchor_pem = moh_config.resolve(moh_config.global_configuration.anchor).read_bytes()
    consumer_path, provider_path = folder / "consumer.zip", folder / "provider.zip"
    consumer = _Log(consumer_path, f"{moh_config.server_id}#w0", checkpoint_signers[0])
    provider = _Log(provider_path, f"{mpwt_config.server_id}#w0", checkpoint_signers[1])
    # All in the past: the last exchange a minute before now.
    base_ns = time.time_ns() - (exchanges * STEP_NS) - 60 * 1_000_000_000
    tasks = [
        (first, min(first + CHUNK, exchanges), base_ns) for first in range(0, exchanges, CHUNK)
    ]
    refused = sum(1 for n in range(exchanges) if kind(n) == CONSUMER_REFUSED)
    provider_total = exchanges - refused
    with ProcessPoolExecutor(os.cpu_count() or 1, initializer=_init, initargs=yamls) as pool:
        for first, tokens in _signed(pool, tasks):
            for offset, (request_token, response_token) in enumerate(tokens):
                n = first + offset
                e = Exchange(n, base_ns + n * STEP_NS, kind(n))
                forwarded = e.kind != CONSUMER_REFUSED
                common = AuditRecord(
                    exchange_id=e.exchange_id,
                    side=Side.CONSUMER,
                    origin=consumer.origin,
                    received_at_ns=e.at_ns,
                    status=e.status,
                    client=NHIS,
                    service=VEHICLES,
                    method=e.method,
                    user=e.user,
                    purpose="treatment",
                    forwarded_at_ns=e.at_ns + 100_000 if forwarded else 0,
                    answered_at_ns=e.at_ns + 900_000 if forwarded else 0,
                    message="" if e.status == "OK" else f"{e.status.lower()}: refused",
                    request_sha256=e.request_sha256,
                    request_size=40,
                    response_sha256=e.response_sha256 if forwarded else b"",
                    response_size=300 * e.messages,
                    response_messages=e.messages,
                    request_token=request_token,
                    response_token=response_token,
                    peer_certificate_sha256="ab" * 32 if forwarded else "",
                    latency_us=900,
                    witnessed_checkpoint=provider.notes[-1]
                    if forwarded and provider.notes
                    else b"",
                )
                if forwarded:
                    # The provider reached its adapter unless it refused first.
                    served = e.kind in (OK, STREAM, NOT_FOUND)
                    on_provider = dataclasses.replace(
                        common,
                        side=Side.PROVIDER,
                        origin=provider.origin,
                        received_at_ns=e.at_ns + 200_000,
                        forwarded_at_ns=e.at_ns + 300_000 if served else 0,
                        answered_at_ns=e.at_ns + 800_000,
                        witnessed_checkpoint=b"",
                    )
                    provider.append(
                        on_provider.to_bytes(), e.at_ns, provider.tree.size + 1 == provider_total
                    )
                consumer.append(common.to_bytes(), e.at_ns, n + 1 == exchanges)
    consumer.close(globalconf, anchor_pem)
    provider.close(globalconf, anchor_pem)
    return consumer_path, provider_path
