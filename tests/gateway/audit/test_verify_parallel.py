"""Token signatures verified across processes give the very report one process gives.

A synthetic log of the demo federation's MoH server (tests/support/honest_log.py),
large enough for `verify_bundle` to start workers: every record holds a real request token
signed by MoH and a real response token signed by MPWT, the records are hash
chained and checkpointed with MoH's real signing key, and the configuration is
the federation's real signed one. Each tampering of the e2e corpus
(tests/e2e/test_audit_bundles.py), plus bad tokens deep in the log, must give
the same report, problem for problem, with `jobs=1` and `jobs=2`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from spean.gateway.audit.bundle import Bundle, write_bundle
from spean.gateway.audit.verify import Check, Report
from spean.gateway.audit.verify_parallel import PARALLEL_MIN_RECORDS, _workers, verify_bundle
from spean.gateway.cli import main
from spean.gateway.errors import InvalidArgument
from tests.support.honest_log import Log, build_log, chained_bundle, with_record

RECORDS = 1200  # several worker chunks; `jobs=2` goes parallel whatever the size


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    return build_log(tmp_path_factory.mktemp("parallel-verify"), RECORDS)


def both(bundle: Bundle) -> Report:
    """The report with one process, after checking two processes give the same one."""
    serial = verify_bundle(bundle, jobs=1)
    parallel = verify_bundle(bundle, jobs=2)
    assert parallel == serial
    assert parallel.to_dict() == serial.to_dict()
    return serial


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
    bundle = chained_bundle(records, log.signer, log.bundle.origin, log.bundle)
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
    # must skip and check exactly what the merge loop skips and checks.
    data = list(log.bundle.records)
    data[10] = b"\xff\xff not a record"
    failed = dataclasses.replace(log.records[20], status="UNAVAILABLE", response_token="")
    data[20] = failed.to_bytes()
    report = both(dataclasses.replace(log.bundle, records=tuple(data)))
    assert (10, Check.RECORD) in {(p.index, p.check) for p in report.problems}
    # The abandoned exchange's request token is still checked.
    assert report.tokens_verified == 2 * (RECORDS - 2) + 1


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
