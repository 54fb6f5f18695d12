"""An honest audit log of the demo federation, with real tokens, for the verifier's tests.

`build_log` makes a demo federation under a folder and a log of its MoH
server of `count` exchanges: every record holds a real request token signed
by MoH and a real response token signed by MPWT, the records are hash
chained and checkpointed (every `EVERY` records) with MoH's real signing
key, and the bundle carries the federation's real signed configuration.
`with_record` swaps one record, re-chained (an insider's forgery) or not (a
plain edit). Used by tests/gateway/audit/test_verify*.py and
bench/audit_verify.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path

from spean.gateway.audit.bundle import Bundle
from spean.gateway.audit.chain import GENESIS
from spean.gateway.audit.checkpoint import Checkpoint, CheckpointSigner
from spean.gateway.audit.merkle import CompactRange, CompactRangeState
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.config import ServerConfig
from spean.gateway.demo.ministries import GET_VEHICLE, MOH, MPWT, NHIS, VEHICLES, build_demo
from spean.gateway.files import keyfiles
from spean.gateway.files.config import read_passphrase
from spean.gateway.identifiers import MemberId, SubsystemId
from spean.gateway.tokens import RequestClaims, ResponseClaims, TokenSigner

EVERY = 100  # records per checkpoint


def _signer(config: ServerConfig) -> tuple[TokenSigner, CheckpointSigner]:
    keys = config.keys
    key = keyfiles.load_private_key(config.resolve(keys.signing_key), read_passphrase(config))
    cert = keyfiles.load_certificate(config.resolve(keys.signing_certificate))
    return TokenSigner(key, cert), CheckpointSigner(str(config.server.member), key, cert)


def _records(
    moh: TokenSigner, mpwt: TokenSigner, origin: str, now: int, count: int
) -> list[AuditRecord]:
    records = []
    for n in range(count):
        exchange_id = f"0192c0de-0000-4000-8000-{n:012d}"
        request_sha = hashlib.sha256(b"req%d" % n).digest()
        response_sha = hashlib.sha256(b"res%d" % n).digest()
        request = moh.sign_request(
            RequestClaims(
                issuer=MemberId.parse(MOH),
                client=SubsystemId.parse(NHIS),
                audience=SubsystemId.parse(VEHICLES),
                method=GET_VEHICLE,
                exchange_id=exchange_id,
                issued_at=now,
                expires_at=now + 60,
                request_sha256=request_sha,
            )
        )
        response = mpwt.sign_response(
            ResponseClaims(
                issuer=MemberId.parse(MPWT),
                provider=SubsystemId.parse(VEHICLES),
                audience=SubsystemId.parse(NHIS),
                exchange_id=exchange_id,
                issued_at=now,
                expires_at=now + 60,
                status="OK",
                response_sha256=response_sha,
                response_messages=1,
            )
        )
        records.append(
            AuditRecord(
                exchange_id=exchange_id,
                side=Side.CONSUMER,
                origin=origin,
                client=NHIS,
                service=VEHICLES,
                method=GET_VEHICLE,
                received_at_ns=now * 1_000_000_000 + n,
                forwarded_at_ns=now * 1_000_000_000 + n + 100,
                answered_at_ns=now * 1_000_000_000 + n + 900,
                status="OK",
                request_sha256=request_sha,
                request_size=40,
                response_sha256=response_sha,
                response_size=300,
                response_messages=1,
                request_token=request,
                response_token=response,
                peer_certificate_sha256="ab" * 32,
                latency_us=900,
            )
        )
    return records


def chained_bundle(
    records: list[AuditRecord], signer: CheckpointSigner, origin: str, base: Bundle
) -> Bundle:
    """Chain and checkpoint `records` honestly, as the writer would have."""
    data = tuple(r.to_bytes() for r in records)
    head = GENESIS
    tree = CompactRange()
    chains = []
    notes = []
    previous = 0
    for n, record in enumerate(data):
        head = head.extend(record)
        chains.append(head.hash)
        tree.append_record(record)
        if (n + 1) % EVERY == 0 or n + 1 == len(data):
            notes.append(signer.sign(Checkpoint(origin, tree.size, tree.root(), previous, n)).note)
            previous = tree.size
    return dataclasses.replace(
        base,
        records=data,
        chains=tuple(chains),
        checkpoints=tuple(notes),
        log_size=len(data),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Log:
    records: list[AuditRecord]
    bundle: Bundle
    signer: CheckpointSigner
    mpwt: TokenSigner


def build_log(root: Path, count: int) -> Log:
    """A demo federation under `root` and an honest MoH log of `count` exchanges
    (also used by bench/audit_verify.py)."""
    federation = build_demo(root / "federation")
    moh_config = federation.config(MOH)
    moh, signer = _signer(moh_config)
    mpwt, _ = _signer(federation.config(MPWT))
    origin = f"{moh_config.server_id}#0"
    gc = moh_config.global_configuration
    base = Bundle(
        origin=origin,
        start=0,
        records=(),
        chains=(),
        start_chain=GENESIS.hash,
        start_state=CompactRangeState(0, ()),
        checkpoints=(),
        globalconf=(federation.root / "authority" / "globalconf.signed").read_bytes(),
        anchor_pem=moh_config.resolve(gc.anchor).read_bytes(),
        log_size=0,
        exported_at_ns=time.time_ns(),
    )
    now = int(time.time())
    records = _records(moh, mpwt, origin, now, count)
    bundle = chained_bundle(records, signer, origin, base)
    return Log(records, bundle, signer, mpwt)


def with_record(log: Log, index: int, record: AuditRecord, rechain: bool) -> Bundle:
    if rechain:
        records = list(log.records)
        records[index] = record
        return chained_bundle(records, log.signer, log.bundle.origin, log.bundle)
    data = list(log.bundle.records)
    data[index] = record.to_bytes()
    return dataclasses.replace(log.bundle, records=tuple(data))


def provider_checkpoint_signer(root: Path) -> CheckpointSigner:
    """MPWT's checkpoint signer in the federation `build_log(root, ...)` made: it
    signs the provider checkpoints a consumer's records witness."""
    from spean.gateway.files.config import load_config

    return _signer(load_config(root / "federation" / "mpwt" / "server.yaml"))[1]
