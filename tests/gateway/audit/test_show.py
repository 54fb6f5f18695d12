"""`show_exchange`: one exchange's records, each with its inclusion and tokens checked.

Bundles are real exports of a few demo exchanges (tests/support/audit_logs.py);
a tampered copy is made the way an owner rewriting its log would: change a
record's bytes and keep everything else.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from spean.gateway.audit import show as show_module
from spean.gateway.audit.bundle import Bundle, read_bundle
from spean.gateway.audit.record import AuditRecord
from spean.gateway.audit.show import show_exchange
from spean.gateway.audit.verify import verify_bundle
from tests.support.audit_logs import DemoBundles, demo_bundles
from tests.support.honest_log import build_log, with_record


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> DemoBundles:
    return demo_bundles(tmp_path_factory.mktemp("show"))


def _rewritten(bundle: Bundle, exchange_id: str, **changes: object) -> Bundle:
    records = list(bundle.records)
    for k, data in enumerate(records):
        record = AuditRecord.from_bytes(data)
        if record.exchange_id == exchange_id:
            records[k] = dataclasses.replace(record, **changes).to_bytes()  # type: ignore[arg-type]
    return dataclasses.replace(bundle, records=tuple(records))


def test_an_ok_record_is_included_under_a_signed_checkpoint_and_its_tokens_verify(
    bundles: DemoBundles,
) -> None:
    bundle = read_bundle(bundles.provider)
    [shown] = show_exchange(bundle, bundles.ok_ids[1])
    assert shown.ok
    assert shown.inclusion.detail.startswith("verified: leaf 1 of the log's Merkle tree of size")
    assert "signed in a checkpoint" in shown.inclusion.detail
    assert shown.tokens.detail.startswith("verified: request and response tokens against")
    assert "anchor bundled (not independently trusted)" in shown.tokens.detail


def test_a_refusal_shows_the_tokens_it_holds_verified(bundles: DemoBundles) -> None:
    [shown] = show_exchange(read_bundle(bundles.provider), bundles.not_found_id)
    assert shown.record.status == "NOT_FOUND"
    assert shown.ok, shown
    assert shown.tokens.detail.startswith("verified: request and response tokens")


def test_an_edited_record_is_neither_included_nor_bound_by_its_tokens(
    bundles: DemoBundles,
) -> None:
    bundle = _rewritten(read_bundle(bundles.provider), bundles.not_found_id, user="someone-else")
    [shown] = show_exchange(bundle, bundles.not_found_id)
    assert not shown.ok
    assert shown.inclusion.detail.startswith("NOT included: the bundle's records up to size")
    assert shown.tokens.detail == (
        "NOT verified: request token signs user 'dr.sokha@hospital.example',"
        " the record says 'someone-else'"
    )


def test_a_record_no_signed_checkpoint_covers_is_said_to_be_unproven(
    bundles: DemoBundles,
) -> None:
    bundle = dataclasses.replace(read_bundle(bundles.provider), checkpoints=())
    [shown] = show_exchange(bundle, bundles.ok_ids[0])
    assert not shown.inclusion.ok
    assert "no signed checkpoint in the bundle covers record 0" in shown.inclusion.detail
    assert shown.tokens.ok  # the tokens do not depend on the tree


def test_a_bundle_whose_configuration_does_not_verify_proves_nothing(
    bundles: DemoBundles,
) -> None:
    bundle = read_bundle(bundles.provider)
    broken = dataclasses.replace(bundle, globalconf=bundle.globalconf[:-1] + b"\x00")
    [shown] = show_exchange(broken, bundles.ok_ids[0])
    assert not shown.inclusion.ok
    assert not shown.tokens.ok
    assert shown.tokens.detail.startswith(
        "not verified: the bundle's global configuration does not verify"
    )


def test_an_exchange_not_in_the_bundle_shows_nothing(bundles: DemoBundles) -> None:
    assert show_exchange(read_bundle(bundles.consumer), "no-such-exchange") == []


def test_show_judges_tokens_by_verifys_rules_a_refused_untrusted_answer_verifies(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # The consumer refused an answer whose response token did not bind what arrived
    # and kept that token as received (protocol.md 3.5): honest, so verify accepts it,
    # and show must say the same, not "NOT verified".
    log = build_log(tmp_path_factory.mktemp("show-refusal"), 12)
    record = log.records[5]
    distrusted = dataclasses.replace(
        record,
        status="UNAUTHENTICATED",
        message="response messages do not match the digest in the response token (claim 'res')",
        response_sha256=hashlib.sha256(b"tampered in transit").digest(),
    )
    bundle = with_record(log, 5, distrusted, True)
    assert verify_bundle(bundle).ok
    [shown] = show_exchange(bundle, record.exchange_id)
    assert shown.tokens.ok, shown.tokens.detail
    assert "1 of the 2 tokens held" in shown.tokens.detail
    edited = with_record(log, 5, dataclasses.replace(distrusted, user="someone.else"), True)
    [forged] = show_exchange(edited, record.exchange_id)
    assert not forged.tokens.ok
    assert "request token signs user" in forged.tokens.detail


def test_records_of_one_exchange_share_one_tree_pass(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two records under one exchange id (a consumer's abandoned attempt and its
    # retry would look alike to show): both are covered by the checkpoint at 100.
    log = build_log(tmp_path_factory.mktemp("show-two"), 120)
    twin = dataclasses.replace(log.records[7], exchange_id=log.records[3].exchange_id)
    bundle = with_record(log, 7, twin, True)
    hashed: list[bytes] = []
    real = show_module.leaf_hash
    monkeypatch.setattr(show_module, "leaf_hash", lambda data: hashed.append(data) or real(data))
    shown = show_exchange(bundle, log.records[3].exchange_id)
    assert [s.index for s in shown] == [3, 7]
    assert all(s.inclusion.ok for s in shown), [s.inclusion.detail for s in shown]
    assert "tree of size 100" in shown[1].inclusion.detail
    assert len(hashed) == 100  # the first 100 records once, not once per record shown
