"""Stories of exchanges that name a data subject (`spean-subject`, docs/protocol.md 4.4).

The demo federation, with MPWT given a pseudonymisation key and MoI left
without one. The hospital asks MPWT about a citizen's vehicles naming the
citizen; both logs hold the provider's pseudonym of the citizen, never the
id itself, and both exported logs verify, pseudonyms included. A malformed
subject is refused at MoH; a provider that cannot pseudonymise refuses the
call rather than answer one it could not record.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import grpc
import pytest
import yaml
from google.protobuf.message import Message

from spean.demo.identity.v1 import identity_pb2
from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.audit.bundle import read_bundle
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.audit.verify import verify_bundle
from spean.gateway.cli import main
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.ministries import (
    GET_VEHICLE,
    IDREG,
    MOH,
    MOI,
    MPWT,
    NHIS,
    VEHICLES,
    VERIFY_CITIZEN,
    build_demo,
)
from spean.gateway.metadata import CLIENT, EXCHANGE_ID, PURPOSE, SERVICE, SUBJECT, USER
from spean.gateway.subjects import subject_key, subject_pseudonym
from tests.support.world import World, running

CITIZEN = demo_data.SAMPLE_CITIZEN.id_number
OTHER_CITIZEN = "KH-NID-000000002"
KEY_TEXT = "5e" * 32


@dataclasses.dataclass
class Outcome:
    exchange_id: str
    code: grpc.StatusCode
    details: str


@dataclasses.dataclass
class Story:
    outcomes: dict[str, Outcome]
    stored: dict[str, list[bytes]]  # each member's log as its store held it
    bundles: dict[str, Path]  # and as `spean audit export` wrote it, after the servers stopped

    def records_of(self, member: str, exchange_id: str) -> list[AuditRecord]:
        records = (AuditRecord.from_bytes(data) for data in self.stored[member])
        return [r for r in records if r.exchange_id == exchange_id]

    def record(self, member: str, exchange_id: str) -> AuditRecord:
        (record,) = self.records_of(member, exchange_id)
        return record


def _give_mpwt_a_key(config: Path) -> None:
    """MPWT's operator sets provider.pseudonymisation_key (a file of 64 hex characters)."""
    (config.parent / "keys" / "pseudonym.key").write_text(KEY_TEXT + "\n")
    document = yaml.safe_load(config.read_text())
    document["provider"]["pseudonymisation_key"] = "keys/pseudonym.key"
    config.write_text(yaml.safe_dump(document, sort_keys=False))


def _call(
    world: World, method: str, service: str, request: Message, subject: str | None
) -> Outcome:
    metadata = [(CLIENT, NHIS), (SERVICE, service), (USER, "dr.sokha"), (PURPOSE, "admission")]
    if subject is not None:
        metadata.append((SUBJECT, subject))
    with world.consumer_channel() as channel:
        try:
            _, call = channel.unary_unary(method).with_call(
                request.SerializeToString(), metadata=metadata, timeout=10
            )
        except grpc.RpcError as error:
            call = error  # type: ignore[assignment]
    trailing = dict(call.trailing_metadata() or ())
    return Outcome(str(trailing[EXCHANGE_ID]), call.code(), call.details() or "")


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    root = tmp_path_factory.mktemp("data-subject")
    federation = build_demo(root / "federation")
    _give_mpwt_a_key(federation.configs[MPWT])
    vehicle = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE)
    citizen = identity_pb2.VerifyCitizenRequest(id_number=CITIZEN, full_name="Sok Dara")
    with running(federation) as world:
        outcomes = {
            "citizen": _call(world, GET_VEHICLE, VEHICLES, vehicle, CITIZEN),
            "other": _call(world, GET_VEHICLE, VEHICLES, vehicle, OTHER_CITIZEN),
            "none": _call(world, GET_VEHICLE, VEHICLES, vehicle, None),
            "malformed": _call(world, GET_VEHICLE, VEHICLES, vehicle, "KH NID 0102"),
            "no key": _call(world, VERIFY_CITIZEN, IDREG, citizen, CITIZEN),
        }
        stored = {
            member: [r.record_bytes for r in world.server(member).audit.read()]
            for member in (MOH, MPWT, MOI)
        }
    # Stopped: each writer signed a final checkpoint over its whole log.
    story = Story(outcomes, stored, {})
    out = root / "bundles"
    out.mkdir()
    for member in (MOH, MPWT, MOI):
        path = out / f"{member.rsplit('/', 1)[-1]}.zip"
        config = str(federation.configs[member])
        assert main(["audit", "export", "--config", config, "--out", str(path)]) == 0
        story.bundles[member] = path
    return story


def _pseudonym(subject: str) -> bytes:
    return subject_pseudonym(subject_key(KEY_TEXT.encode()), subject)


def _records(story: Story, name: str) -> tuple[AuditRecord, AuditRecord]:
    exchange_id = story.outcomes[name].exchange_id
    member = MOI if name == "no key" else MPWT
    return story.record(MOH, exchange_id), story.record(member, exchange_id)


def test_both_logs_hold_the_providers_pseudonym_of_the_subject(story: Story) -> None:
    assert story.outcomes["citizen"].code is grpc.StatusCode.OK, story.outcomes["citizen"]
    consumer, provider = _records(story, "citizen")
    assert (consumer.side, provider.side) == (Side.CONSUMER, Side.PROVIDER)
    assert consumer.subject_pseudonym == provider.subject_pseudonym == _pseudonym(CITIZEN)
    # The official stays the user; the subject is not in any clear-text field.
    assert consumer.user == provider.user == "dr.sokha"
    assert consumer.response_token == provider.response_token


def test_two_subjects_get_two_pseudonyms_and_a_call_without_one_gets_none(story: Story) -> None:
    _, citizen = _records(story, "citizen")
    consumer, other = _records(story, "other")
    assert other.subject_pseudonym == consumer.subject_pseudonym == _pseudonym(OTHER_CITIZEN)
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
