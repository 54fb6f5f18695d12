"""A demo federation whose exchanges name data subjects, run once and exported.

MPWT gets a pseudonymisation key; MoI has none. `run_subject_story` makes
the hospital's calls (two citizens, none, a malformed subject, a provider
without a key), stops the servers, exports every member's log with
`spean audit export` and returns what a test needs to read or prove.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import grpc
import yaml
from google.protobuf.message import Message

from spean.demo.identity.v1 import identity_pb2
from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.audit.record import AuditRecord
from spean.gateway.cli import main
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.federation import Federation
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
    federation: Federation
    outcomes: dict[str, Outcome]
    stored: dict[str, list[bytes]]  # each member's log as its store held it
    bundles: dict[str, Path]  # and as `spean audit export` wrote it, after the servers stopped

    def records_of(self, member: str, exchange_id: str) -> list[AuditRecord]:
        records = (AuditRecord.from_bytes(data) for data in self.stored[member])
        return [r for r in records if r.exchange_id == exchange_id]

    def record(self, member: str, exchange_id: str) -> AuditRecord:
        (record,) = self.records_of(member, exchange_id)
        return record


def pseudonym_of(subject: str) -> bytes:
    """MPWT's pseudonym of `subject` (docs/protocol.md 4.4), computed as a test would."""
    return subject_pseudonym(subject_key(KEY_TEXT.encode()), subject)


def give_mpwt_a_key(config: Path) -> None:
    """MPWT's operator sets provider.pseudonymisation_key (a file of 64 hex characters)."""
    (config.parent / "keys" / "pseudonym.key").write_text(KEY_TEXT + "\n")
    document = yaml.safe_load(config.read_text())
    document["provider"]["pseudonymisation_key"] = "keys/pseudonym.key"
    config.write_text(yaml.safe_dump(document, sort_keys=False))


def call(world: World, method: str, service: str, request: Message, subject: str | None) -> Outcome:
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


def run_subject_story(root: Path) -> Story:
    federation = build_demo(root / "federation")
    give_mpwt_a_key(federation.configs[MPWT])
    vehicle = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE)
    citizen = identity_pb2.VerifyCitizenRequest(id_number=CITIZEN, full_name="Sok Dara")
    with running(federation) as world:
        outcomes = {
            "citizen": call(world, GET_VEHICLE, VEHICLES, vehicle, CITIZEN),
            "other": call(world, GET_VEHICLE, VEHICLES, vehicle, OTHER_CITIZEN),
            "citizen again": call(world, GET_VEHICLE, VEHICLES, vehicle, CITIZEN),
            "none": call(world, GET_VEHICLE, VEHICLES, vehicle, None),
            "malformed": call(world, GET_VEHICLE, VEHICLES, vehicle, "KH NID 0102"),
            "no key": call(world, VERIFY_CITIZEN, IDREG, citizen, CITIZEN),
        }
        stored = {
            member: [r.record_bytes for r in world.server(member).audit.read()]
            for member in (MOH, MPWT, MOI)
        }
    # Stopped: each writer signed a final checkpoint over its whole log.
    story = Story(federation, outcomes, stored, {})
    out = root / "bundles"
    out.mkdir()
    for member in (MOH, MPWT, MOI):
        path = out / f"{member.rsplit('/', 1)[-1]}.zip"
        config = str(federation.configs[member])
        assert main(["audit", "export", "--config", config, "--out", str(path)]) == 0
        story.bundles[member] = path
    return story
