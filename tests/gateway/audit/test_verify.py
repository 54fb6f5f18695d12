"""The pure verifier: its token pass is pluggable, and the report is the merge of its outcomes.

`verify_bundle` asks a `TokenPass` for each OK record's token outcome and
merges the outcomes in record order; what computes them (`in_process` here,
worker processes in `verify_parallel`) cannot change the report. The log is
the honest demo log of tests/support/honest_log.py.
"""

from __future__ import annotations

import dataclasses
import tracemalloc
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

import pytest

from spean.gateway.audit.bundle import BundleSource
from spean.gateway.audit.chain import GENESIS, next_chain_hash
from spean.gateway.audit.checkpoint import Checkpoint
from spean.gateway.audit.merkle import CompactRange
from spean.gateway.audit.record import AuditRecord
from spean.gateway.audit.verify import (
    CHUNK,
    Check,
    TokenCheck,
    TokenFeed,
    in_process,
    verify_bundle,
)
from spean.gateway.audit.verify_tokens import checks_tokens
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
    def scripted(conf: GlobalConfiguration, conf_bytes: bytes) -> Iterator[TokenFeed]:
        assert conf_bytes  # what a worker would rebuild the configuration from
        assert conf.member(MemberId.parse(MOH)) is not None  # verified, and the bundle's

        def submit(chunk: Sequence[bytes]) -> TokenCheck:
            def outcome(k: int, record: AuditRecord) -> int | str:
                asked.append(k)
                return "scripted refusal" if k in (7, 3) else 2

            return outcome

        yield TokenFeed(submit)

    report = verify_bundle(log.bundle, tokens=scripted)
    assert asked == list(range(RECORDS))
    assert [(p.index, p.check) for p in report.problems] == [(3, Check.TOKEN), (7, Check.TOKEN)]
    assert "scripted refusal" in report.problems[0].reason
    assert report.tokens_verified == 2 * (RECORDS - 2)


def test_no_token_pass_is_made_without_token_checks(log: Log) -> None:
    def never(conf: GlobalConfiguration, conf_bytes: bytes) -> AbstractContextManager[TokenFeed]:
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


# -- memory: one streaming pass, bounded whatever the number of records ----------------------


def synthetic_source(log: Log, count: int) -> BundleSource:
    """A bundle of `count` honest records made on the fly: MoH's first record with a new
    receive time each, chained and checkpointed every 1000 records with MoH's key.
    Only the checkpoint notes are held; records and chain hashes are generated at
    every pass, as a bundle file streams them."""
    template = log.records[0]

    def records() -> Iterator[bytes]:
        for n in range(count):
            yield dataclasses.replace(
                template, received_at_ns=template.received_at_ns + n
            ).to_bytes()

    def chains() -> Iterator[bytes]:
        head = GENESIS.hash
        for data in records():
            head = next_chain_hash(head, data)
            yield head

    tree = CompactRange()
    notes = []
    previous = 0
    for data in records():
        tree.append_record(data)
        if tree.size % 1000 == 0 or tree.size == count:
            checkpoint = Checkpoint(log.bundle.origin, tree.size, tree.root(), previous, 1)
            notes.append(log.signer.sign(checkpoint).note)
            previous = tree.size
    frame = dataclasses.replace(
        log.bundle,
        records=(),
        chains=(),
        checkpoints=tuple(notes),
        log_size=count,
        declared_records=count,
    )
    return BundleSource("synthetic", frame, records, chains, lambda: iter(()))


@contextmanager
def two_tokens_each(conf: GlobalConfiguration, conf_bytes: bytes) -> Iterator[TokenFeed]:
    """A token pass that holds its chunks like the pool does (lookahead) and says every
    record's two tokens verified (the records share one exchange's tokens)."""
    yield TokenFeed(lambda chunk: lambda k, record: 2, lookahead=1)


def peak_bytes(source: BundleSource) -> int:
    tracemalloc.start()
    try:
        report = verify_bundle(source, tokens=two_tokens_each)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok, report.problems[:3]
    assert report.records == source.frame.declared_records
    assert report.tokens_verified == 2 * report.records
    return peak


def test_verify_holds_a_few_chunks_of_records_not_the_log(log: Log) -> None:
    small = 4 * CHUNK  # more chunks than are ever in flight (lookahead + 1)
    record_size = len(log.bundle.records[0])
    peak_small = peak_bytes(synthetic_source(log, small))
    peak_large = peak_bytes(synthetic_source(log, 4 * small))
    # Holding the records would add 3 * small records (~34 MB) between the two runs;
    # one pass holds the chunks in flight either way (and O(log n) tree hashes).
    assert peak_large < peak_small + 100 * record_size, (peak_small, peak_large)
    assert peak_small < 4 * CHUNK * record_size, peak_small


def test_sealed_bodies_are_read_in_index_order_and_each_belongs_to_a_record(log: Log) -> None:
    # Without the auditor's key bodies are only counted, but their framing is still
    # checked: exported in index order, each for a record of the bundle, once.
    bodies = ((5, b"sealed"), (9, b"sealed"), (9, b"again"), (3, b"late"), (RECORDS, b"beyond"))
    report = verify_bundle(dataclasses.replace(log.bundle, bodies=bodies))
    assert [(p.index, p.check) for p in report.problems] == [
        (3, Check.BODIES),
        (9, Check.BODIES),
        (RECORDS, Check.BODIES),
    ]
    reasons = [p.reason for p in report.problems]
    assert "come after those of record 9: bodies.bin is not in index order" in reasons[0]
    assert reasons[1] == "record 9 has sealed bodies twice"
    assert "which is not in the bundle" in reasons[2]
    assert (report.bodies, report.bodies_verified) == (5, 0)
