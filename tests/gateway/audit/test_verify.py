"""The pure verifier: its token pass is pluggable, and the report is the merge of its outcomes.

`verify_bundle` asks a `TokenPass` for each OK record's token outcome and
merges the outcomes in record order; what computes them (`in_process` here,
worker processes in `verify_parallel`) cannot change the report. The log is
the honest demo log of tests/support/honest_log.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from spean.gateway.audit.bundle import Bundle
from spean.gateway.audit.record import AuditRecord
from spean.gateway.audit.verify import (
    Check,
    TokenCheck,
    checks_tokens,
    in_process,
    verify_bundle,
)
from spean.gateway.demo.ministries import MOH
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.identifiers import MemberId
from tests.support.honest_log import Log, build_log

RECORDS = 120


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    return build_log(tmp_path_factory.mktemp("verify"), RECORDS)


def test_an_honest_log_verifies_in_process(log: Log) -> None:
    report = verify_bundle(log.bundle)
    assert report.ok, report.problems
    assert report.tokens_verified == 2 * RECORDS
    assert verify_bundle(log.bundle, tokens=in_process) == report


def test_the_outcomes_of_a_token_pass_become_the_token_problems_in_record_order(
    log: Log,
) -> None:
    asked: list[int] = []

    @contextmanager
    def scripted(
        bundle: Bundle, conf: GlobalConfiguration, conf_bytes: bytes
    ) -> Iterator[TokenCheck]:
        assert conf_bytes  # what a worker would rebuild the configuration from
        assert conf.member(MemberId.parse(MOH)) is not None  # verified, and the bundle's

        def outcome(k: int, record: AuditRecord) -> int | str:
            asked.append(k)
            return "scripted refusal" if k in (7, 3) else 2

        yield outcome

    report = verify_bundle(log.bundle, tokens=scripted)
    assert asked == list(range(RECORDS))
    assert [(p.index, p.check) for p in report.problems] == [(3, Check.TOKEN), (7, Check.TOKEN)]
    assert "scripted refusal" in report.problems[0].reason
    assert report.tokens_verified == 2 * (RECORDS - 2)


def test_no_token_pass_is_made_without_token_checks(log: Log) -> None:
    def never(
        bundle: Bundle, conf: GlobalConfiguration, conf_bytes: bytes
    ) -> AbstractContextManager[TokenCheck]:
        raise AssertionError("asked for tokens")

    report = verify_bundle(log.bundle, check_tokens=False, tokens=never)
    assert report.ok
    assert report.tokens_verified == 0


def test_every_record_holding_a_token_has_its_tokens_checked(log: Log) -> None:
    record = log.records[0]
    assert checks_tokens(record)
    assert checks_tokens(dataclasses.replace(record, status="UNAVAILABLE", response_token=""))
    assert checks_tokens(dataclasses.replace(record, request_token="", response_token=""))
    refused_early = dataclasses.replace(
        record, status="PERMISSION_DENIED", request_token="", response_token=""
    )
    assert not checks_tokens(refused_early)
