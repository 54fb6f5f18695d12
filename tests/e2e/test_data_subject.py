"""Stories of exchanges that name a data subject (`spean-subject`, docs/protocol.md 4.4).

The demo federation, with MPWT given a pseudonymisation key and MoI left
without one (tests/support/subjects.py). The hospital asks MPWT about a
citizen's vehicles naming the citizen; both logs hold the provider's
pseudonym of the citizen, never the id itself, and both exported logs
verify, pseudonyms included. A malformed subject is refused at MoH; a
provider that cannot pseudonymise refuses the call rather than answer one it
could not record.
"""

from __future__ import annotations

import grpc
import pytest

from spean.gateway.audit.bundle import read_bundle
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.audit.verify import verify_bundle
from spean.gateway.demo.ministries import MOH, MOI, MPWT
from tests.support.subjects import CITIZEN, OTHER_CITIZEN, Story, pseudonym_of, run_subject_story


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    return run_subject_story(tmp_path_factory.mktemp("data-subject"))


def _records(story: Story, name: str) -> tuple[AuditRecord, AuditRecord]:
    exchange_id = story.outcomes[name].exchange_id
    member = MOI if name == "no key" else MPWT
    return story.record(MOH, exchange_id), story.record(member, exchange_id)


def test_both_logs_hold_the_providers_pseudonym_of_the_subject(story: Story) -> None:
    assert story.outcomes["citizen"].code is grpc.StatusCode.OK, story.outcomes["citizen"]
    consumer, provider = _records(story, "citizen")
    assert (consumer.side, provider.side) == (Side.CONSUMER, Side.PROVIDER)
    assert consumer.subject_pseudonym == provider.subject_pseudonym == pseudonym_of(CITIZEN)
    # The official stays the user; the subject is not in any clear-text field.
    assert consumer.user == provider.user == "dr.sokha"
    assert consumer.response_token == provider.response_token


def test_two_subjects_get_two_pseudonyms_and_a_call_without_one_gets_none(story: Story) -> None:
    _, citizen = _records(story, "citizen")
    consumer, other = _records(story, "other")
    assert other.subject_pseudonym == consumer.subject_pseudonym == pseudonym_of(OTHER_CITIZEN)
    assert other.subject_pseudonym != citizen.subject_pseudonym
    assert story.outcomes["none"].code is grpc.StatusCode.OK
    assert [r.subject_pseudonym for r in _records(story, "none")] == [b"", b""]


def test_no_log_and_no_exported_bundle_holds_the_subject_in_clear(story: Story) -> None:
    for member in (MOH, MPWT, MOI):
        stored = story.stored[member]
        exported = read_bundle(story.bundles[member]).records
        assert stored
        assert list(exported) == stored
        for data in stored:
            for subject in (CITIZEN, OTHER_CITIZEN):
                assert subject.encode() not in data, f"{member} logged a subject in clear"


def test_a_malformed_subject_is_refused_at_the_consumer_without_quoting_it(story: Story) -> None:
    outcome = story.outcomes["malformed"]
    assert outcome.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "header spean-subject must be 1 to 64 characters" in outcome.details
    assert "KH NID 0102" not in outcome.details
    record = story.record(MOH, outcome.exchange_id)
    assert record.status == "INVALID_ARGUMENT"
    assert story.records_of(MPWT, outcome.exchange_id) == [], "never forwarded"


def test_a_provider_without_a_key_refuses_with_a_signed_answer(story: Story) -> None:
    outcome = story.outcomes["no key"]
    assert outcome.code is grpc.StatusCode.FAILED_PRECONDITION
    assert "provider.pseudonymisation_key is not set" in outcome.details
    consumer, provider = _records(story, "no key")
    assert consumer.status == provider.status == "FAILED_PRECONDITION"
    assert provider.forwarded_at_ns == 0, "the adapter was never called"
    assert consumer.response_token == provider.response_token != ""
    assert consumer.subject_pseudonym == provider.subject_pseudonym == b""


def test_every_exported_log_verifies_pseudonyms_included(story: Story) -> None:
    for member, path in story.bundles.items():
        report = verify_bundle(read_bundle(path))
        assert report.ok, (member, report.problems)
        assert report.tokens_verified >= 2
