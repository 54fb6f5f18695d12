"""Tokens bind every record that holds them, refusals included; witnessed checkpoints are
verified once per distinct note.

The consumer's log is the honest demo log of tests/support/honest_log.py (real
MoH request tokens, real MPWT response tokens). Forgeries are made the way an
owner who keeps the signing key would: the record rewritten, the log re-chained
and re-checkpointed (`with_record(..., rechain=True)`), so only a token signed
by someone else can catch them. Provider-side records are checked one by one
with `token_outcome`, against the same real configuration.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from spean.gateway.audit import verify as verify_module
from spean.gateway.audit.checkpoint import Checkpoint
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.audit.verify import Check, load_configuration, verify_bundle
from spean.gateway.audit.verify_tokens import bundle_resolver, token_outcome
from spean.gateway.digests import response_digest
from spean.gateway.identifiers import MemberId, SubsystemId
from spean.gateway.tokens import KeyResolver, ResponseClaims
from tests.support.honest_log import (
    Log,
    build_log,
    chained_bundle,
    provider_checkpoint_signer,
    with_record,
)

RECORDS = 40


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("verify-tokens")


@pytest.fixture(scope="module")
def log(root: Path) -> Log:
    return build_log(root, RECORDS)


@pytest.fixture(scope="module")
def resolve(log: Log) -> KeyResolver:
    conf, _ = load_configuration(log.bundle, None)
    return bundle_resolver(conf)


def refused(
    log: Log, index: int, status: str = "NOT_FOUND", subject_pseudonym: bytes = b""
) -> AuditRecord:
    """Record `index` as the honest record of a refusal the provider signed."""
    record = log.records[index]
    empty = response_digest([])
    now = record.received_at_ns // 1_000_000_000
    token = log.mpwt.sign_response(
        ResponseClaims(
            issuer=MemberId.parse("KH/GOV/MPWT"),
            provider=SubsystemId.parse(record.service),
            audience=SubsystemId.parse(record.client),
            exchange_id=record.exchange_id,
            issued_at=now,
            expires_at=now + 60,
            status=status,
            response_sha256=empty,
            response_messages=0,
            subject_pseudonym=subject_pseudonym,
        )
    )
    return dataclasses.replace(
        record,
        subject_pseudonym=subject_pseudonym,
        status=status,
        message="no such plate",
        response_sha256=empty,
        response_size=0,
        response_messages=0,
        response_token=token,
    )


def token_problems(log: Log, index: int, record: AuditRecord) -> list[str]:
    report = verify_bundle(with_record(log, index, record, True))
    assert all(p.index == index and p.check is Check.TOKEN for p in report.problems), (
        report.problems
    )
    return [p.reason for p in report.problems]


def test_an_honest_refusal_verifies_and_its_tokens_count(log: Log) -> None:
    report = verify_bundle(with_record(log, 3, refused(log, 3), True))
    assert report.ok, report.problems
    assert report.tokens_verified == 2 * RECORDS


def test_an_ok_record_rewritten_as_a_refusal_fails_on_the_response_token(log: Log) -> None:
    record = log.records[5]
    forged = dataclasses.replace(record, status="NOT_FOUND", message="no such plate")
    (reason,) = token_problems(log, 5, forged)
    assert record.exchange_id in reason
    assert "response token signs status 'OK', the record says 'NOT_FOUND'" in reason


def test_an_edited_user_of_a_refusal_fails_on_the_request_token(log: Log) -> None:
    forged = dataclasses.replace(refused(log, 8), user="someone.else")
    (reason,) = token_problems(log, 8, forged)
    assert "request token signs user '', the record says 'someone.else'" in reason


def test_an_edited_digest_of_a_refusal_fails_on_the_response_token(log: Log) -> None:
    forged = dataclasses.replace(refused(log, 9), response_messages=1)
    (reason,) = token_problems(log, 9, forged)
    assert "counts 0 messages (claim 'cnt'), the record says 1" in reason


def test_a_consumer_refusing_an_answer_it_cannot_trust_keeps_the_token_as_received(
    log: Log,
) -> None:
    # The provider's token signs other messages than arrived: the consumer
    # records UNAUTHENTICATED with the token it got; that is not a forgery.
    record = log.records[11]
    distrusted = dataclasses.replace(
        record,
        status="UNAUTHENTICATED",
        message="response messages do not match the digest in the response token (claim 'res')",
        response_sha256=hashlib.sha256(b"tampered in transit").digest(),
    )
    report = verify_bundle(with_record(log, 11, distrusted, True))
    assert report.ok, report.problems
    assert report.tokens_verified == 2 * RECORDS - 1  # the response token proves nothing here


def test_an_unavailable_record_still_has_its_request_token_checked(log: Log) -> None:
    record = log.records[12]
    abandoned = dataclasses.replace(
        record, status="UNAVAILABLE", response_token="", method="/other.v1.Other/Call"
    )
    (reason,) = token_problems(log, 12, abandoned)
    assert "request token signs method" in reason


def provider_record(log: Log, index: int, **changes: object) -> AuditRecord:
    pseudonym = changes.pop("subject_pseudonym", b"")
    assert isinstance(pseudonym, bytes)
    record = refused(log, index, str(changes.pop("status", "NOT_FOUND")), pseudonym)
    return dataclasses.replace(
        record,
        side=Side.PROVIDER,
        origin="KH/GOV/MPWT/ss1#w0",
        peer_certificate_sha256="cd" * 32,
        **changes,  # type: ignore[arg-type]
    )


def test_a_provider_record_is_bound_by_the_consumers_request_token(
    log: Log, resolve: KeyResolver
) -> None:
    assert token_outcome(provider_record(log, 1), resolve) == 2
    outcome = token_outcome(provider_record(log, 1, user="edited"), resolve)
    assert outcome == "request token signs user '', the record says 'edited'"
    outcome = token_outcome(provider_record(log, 1, client="KH/GOV/MOI/idreg"), resolve)
    assert isinstance(outcome, str)
    assert "client" in outcome or "addressed to" in outcome


def test_a_provider_refusing_a_token_for_another_method_or_body_is_not_a_forgery(
    log: Log, resolve: KeyResolver
) -> None:
    # Steps 7 and 8 of protocol.md 4.2: the token was made for another call.
    step7 = provider_record(log, 2, status="UNAUTHENTICATED", method="/other.v1.Other/Call")
    assert token_outcome(step7, resolve) == 2
    # The same mismatch on a record that the provider answered is a forgery.
    outcome = token_outcome(provider_record(log, 2, method="/other.v1.Other/Call"), resolve)
    assert outcome == (
        "request token signs method '/vehicles.v1.VehicleRegistry/GetVehicle', "
        "the record says '/other.v1.Other/Call'"
    )


def test_an_unsigned_provider_refusal_checks_the_token_only_if_it_was_accepted(
    log: Log, resolve: KeyResolver
) -> None:
    # Refused at step 4: the caller was never learnt, the token proves nothing.
    step4 = provider_record(
        log, 4, status="UNAUTHENTICATED", response_token="", client="", service=""
    )
    step4 = dataclasses.replace(step4, request_token="not.a.token")
    assert token_outcome(step4, resolve) == 0
    # Refused at step 5: the token verified and named the caller.
    step5 = provider_record(log, 4, status="UNAUTHENTICATED", response_token="")
    assert token_outcome(step5, resolve) == 1
    outcome = token_outcome(dataclasses.replace(step5, purpose="edited"), resolve)
    assert outcome == "request token signs purpose '', the record says 'edited'"


def test_each_distinct_witnessed_checkpoint_is_verified_once(
    log: Log, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer = provider_checkpoint_signer(root)
    origin = "KH/GOV/MPWT/ss1#w0"
    notes = [
        signer.sign(Checkpoint(origin, size, bytes([size]) * 32, size - 10, size)).note
        for size in (10, 20)
    ]
    records = [
        dataclasses.replace(r, witnessed_checkpoint=notes[k * 2 // RECORDS])
        for k, r in enumerate(log.records)
    ]
    bundle = chained_bundle(records, log.signer, log.bundle.origin, log.bundle)
    checked: list[bytes] = []
    real = verify_module.check_witnessed

    def counting(note: bytes, conf: object, provider: object = None) -> object:
        checked.append(note)
        return real(note, conf)  # type: ignore[arg-type]

    monkeypatch.setattr(verify_module, "check_witnessed", counting)
    report = verify_bundle(bundle)
    assert report.ok, report.problems
    assert checked == notes


def test_a_bad_witnessed_checkpoint_is_reported_on_every_record_that_holds_it(
    log: Log, root: Path
) -> None:
    signer = provider_checkpoint_signer(root)
    note = signer.sign(Checkpoint("KH/GOV/MPWT/ss1#w0", 10, bytes(32), 0, 1)).note
    forged = note.replace(b"\n10\n", b"\n11\n")
    records = [
        dataclasses.replace(r, witnessed_checkpoint=forged if k in (3, 30) else b"")
        for k, r in enumerate(log.records)
    ]
    bundle = chained_bundle(records, log.signer, log.bundle.origin, log.bundle)
    report = verify_bundle(bundle)
    assert [(p.index, p.check) for p in report.problems] == [
        (3, Check.WITNESS),
        (30, Check.WITNESS),
    ]


def test_a_records_subject_pseudonym_is_bound_by_its_response_token(
    log: Log, resolve: KeyResolver
) -> None:
    pseudonym = hashlib.sha256(b"a data subject").digest()
    honest = refused(log, 6, subject_pseudonym=pseudonym)
    assert token_problems(log, 6, honest) == []
    assert token_outcome(provider_record(log, 6, subject_pseudonym=pseudonym), resolve) == 2

    # Rewriting whom an exchange concerned, or hiding that it concerned anyone, is caught.
    for edited in (hashlib.sha256(b"someone else").digest(), b""):
        (reason,) = token_problems(log, 6, dataclasses.replace(honest, subject_pseudonym=edited))
        assert "subject pseudonym (claim 'sbj') is not the record's subject_pseudonym" in reason
    outcome = token_outcome(
        dataclasses.replace(provider_record(log, 6), subject_pseudonym=pseudonym), resolve
    )
    assert outcome == (
        "response token's subject pseudonym (claim 'sbj') is not the record's subject_pseudonym"
    )
