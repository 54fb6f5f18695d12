"""Token signatures verified across processes give the very report one process gives.

A synthetic log of the demo federation's MoH server, large enough for
`verify_bundle` to start workers: every record holds a real request token
signed by MoH and a real response token signed by MPWT, the records are hash
chained and checkpointed with MoH's real signing key, and the configuration is
the federation's real signed one. Each tampering of the e2e corpus
(tests/e2e/test_audit_bundles.py), plus bad tokens deep in the log, must give
the same report, problem for problem, with `jobs=1` and `jobs=2`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from spean.gateway.audit.bundle import Bundle, write_bundle
from spean.gateway.audit.chain import GENESIS
from spean.gateway.audit.checkpoint import Checkpoint, CheckpointSigner
from spean.gateway.audit.merkle import CompactRange, CompactRangeState
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.audit.verify import PARALLEL_MIN_RECORDS, Check, Report, _workers, verify_bundle
from spean.gateway.cli import main
from spean.gateway.config import ServerConfig
from spean.gateway.demo.ministries import GET_VEHICLE, MOH, MPWT, NHIS, VEHICLES, build_demo
from spean.gateway.errors import InvalidArgument
from spean.gateway.files import keyfiles
from spean.gateway.files.config import read_passphrase
from spean.gateway.identifiers import MemberId, SubsystemId
from spean.gateway.tokens import RequestClaims, ResponseClaims, TokenSigner

RECORDS = 1200  # several worker chunks; `jobs=2` goes parallel whatever the size
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


def _bundle(
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


def build_log(root: Path, count: int = RECORDS) -> Log:
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
    bundle = _bundle(records, signer, origin, base)
    return Log(records, bundle, signer, mpwt)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    return build_log(tmp_path_factory.mktemp("parallel-verify"))


def both(bundle: Bundle) -> Report:
    """The report with one process, after checking two processes give the same one."""
    serial = verify_bundle(bundle, jobs=1)
    parallel = verify_bundle(bundle, jobs=2)
    assert parallel == serial
    assert parallel.to_dict() == serial.to_dict()
    return serial


def with_record(log: Log, index: int, record: AuditRecord, rechain: bool) -> Bundle:
    if rechain:
        records = list(log.records)
        records[index] = record
        return _bundle(records, log.signer, log.bundle.origin, log.bundle)
    data = list(log.bundle.records)
    data[index] = record.to_bytes()
    return dataclasses.replace(log.bundle, records=tuple(data))


def test_an_honest_log_verifies_the_same_either_way(log: Log) -> None:
    report = both(log.bundle)
    assert report.ok, report.problems
    assert report.tokens_verified == 2 * RECORDS
    assert report.checkpoints == len(log.bundle.checkpoints)


def test_a_bad_token_deep_in_the_log_is_reported_at_its_index(log: Log) -> None:
    deep = RECORDS - 7
    record = log.records[deep]
    forged = record.response_token[:-6] + (
        "AAAAAA" if record.response_token[-6:] != "AAAAAA" else "BBBBBB"
    )
    report = both(with_record(log, deep, dataclasses.replace(record, response_token=forged), True))
    assert report.first is not None
    assert (report.first.index, report.first.check) == (deep, Check.TOKEN)
    assert record.exchange_id in report.first.reason
    assert len(report.problems) == 1
    assert report.tokens_verified == 2 * (RECORDS - 1)


def test_tokens_of_another_exchange_are_reported_in_order_across_chunks(log: Log) -> None:
    # Swapped request tokens in records far apart (different worker chunks):
    # each is signed, but for the other exchange.
    a, b = 5, RECORDS - 3
    records = list(log.records)
    records[a], records[b] = (
        dataclasses.replace(records[a], request_token=records[b].request_token),
        dataclasses.replace(records[b], request_token=records[a].request_token),
    )
    bundle = _bundle(records, log.signer, log.bundle.origin, log.bundle)
    report = both(bundle)
    assert [(p.index, p.check) for p in report.problems] == [(a, Check.TOKEN), (b, Check.TOKEN)]
    assert "request token is for exchange" in report.problems[0].reason


def test_an_edited_field_is_reported_the_same_either_way(log: Log) -> None:
    # Not re-chained: the chain flags the record, the token binding flags it too.
    index = RECORDS // 2
    edited = dataclasses.replace(log.records[index], user="someone.else")
    report = both(with_record(log, index, edited, False))
    assert report.first is not None
    assert (report.first.index, report.first.check) == (index, Check.CHAIN)
    assert {(p.index, p.check) for p in report.problems} >= {
        (index, Check.CHAIN),
        (index, Check.TOKEN),
    }


def test_deleted_and_reordered_records_are_reported_the_same_either_way(log: Log) -> None:
    data = list(log.bundle.records)
    deleted = dataclasses.replace(
        log.bundle, records=tuple(data[:300] + data[301:]), chains=log.bundle.chains[:-1]
    )
    report = both(deleted)
    assert report.first is not None
    assert report.first.index == 300
    data[600], data[601] = data[601], data[600]
    reordered = dataclasses.replace(log.bundle, records=tuple(data))
    report = both(reordered)
    assert report.first is not None
    assert (report.first.index, report.first.check) == (600, Check.CHAIN)


def test_unreadable_records_and_skipped_tokens_match(log: Log) -> None:
    # An unreadable record and an exchange that did not end OK: the workers
    # must skip exactly what the merge loop skips.
    data = list(log.bundle.records)
    data[10] = b"\xff\xff not a record"
    failed = dataclasses.replace(log.records[20], status="UNAVAILABLE", response_token="")
    data[20] = failed.to_bytes()
    report = both(dataclasses.replace(log.bundle, records=tuple(data)))
    assert (10, Check.RECORD) in {(p.index, p.check) for p in report.problems}
    assert report.tokens_verified == 2 * (RECORDS - 2)


def test_the_cli_reports_the_same_with_one_job_and_two(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = RECORDS - 11
    record = log.records[index]
    bad = dataclasses.replace(record, request_token=log.records[0].request_token)
    path = tmp_path / "bundle.zip"
    write_bundle(with_record(log, index, bad, True), path)
    outputs = []
    for jobs in ("1", "2"):
        capsys.readouterr()
        assert main(["audit", "verify", str(path), "--json", "--jobs", jobs]) == 2
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1]
    assert outputs[0]["first_problem"]["index"] == index
    assert outputs[0]["first_problem"]["check"] == "token"


def test_jobs_must_be_positive(log: Log) -> None:
    with pytest.raises(InvalidArgument, match="jobs must be at least 1, got 0"):
        verify_bundle(log.bundle, jobs=0)


def test_by_default_only_large_bundles_go_parallel() -> None:
    assert _workers(None, PARALLEL_MIN_RECORDS - 1) == 1
    assert _workers(None, PARALLEL_MIN_RECORDS) == (os.cpu_count() or 1)
    assert _workers(1, 10 * PARALLEL_MIN_RECORDS) == 1
    assert _workers(2, 10) == 2  # an explicit number is obeyed
