"""Data minimisation across the demo federation: masked fields never leave MPWT.

MPWT's access rules are given minimisation entries: for the hospital
(KH/GOV/MOH/nhis) `make` is dropped and `owner_id` pseudonymised; for a
second MoH client (KH/GOV/MOH/ambulance) `owner_id` is pseudonymised only.
The stories check what each client receives, in unary and streaming calls,
and that what MPWT digested, signed and logged is the masked message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.audit.record import AuditRecord
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.federation import Federation, build_federation
from spean.gateway.demo.ministries import (
    GET_VEHICLE,
    LIST_VEHICLES,
    MOH,
    MPWT,
    NHIS,
    VEHICLES,
    demo_plans,
)
from spean.gateway.digests import response_digest
from spean.gateway.metadata import CLIENT, EXCHANGE_ID, SERVICE

AMBULANCE = "KH/GOV/MOH/ambulance"
OWNER = demo_data.SAMPLE_OWNER_WITH_VEHICLES


def _plans() -> list:  # type: ignore[type-arg]
    plans = []
    for plan in demo_plans():
        if plan.member == MOH:
            plan = dataclasses.replace(plan, clients=[NHIS, AMBULANCE])
        if plan.member == MPWT:
            service = plan.services[0]
            access = [*service.access, (AMBULANCE, [GET_VEHICLE, LIST_VEHICLES])]
            plan = dataclasses.replace(plan, services=[dataclasses.replace(service, access=access)])
        plans.append(plan)
    return plans


def _minimise(config: Path) -> None:
    """MPWT's operator adds minimisation to the access rules, and the key file."""
    (config.parent / "keys" / "pseudonym.key").write_text("9f" * 32 + "\n")
    document = yaml.safe_load(config.read_text())
    provider = document["provider"]
    provider["pseudonymisation_key"] = "keys/pseudonym.key"
    for rule in provider["access"]:
        if rule["client"] == NHIS:
            rule["minimise"] = [{"drop": ["make"], "pseudonymise": ["owner_id"]}]
        else:
            rule["minimise"] = [{"method": LIST_VEHICLES, "pseudonymise": ["owner_id"]},
                                {"method": GET_VEHICLE, "pseudonymise": ["owner_id"]}]  # fmt: skip
    config.write_text(yaml.safe_dump(document, sort_keys=False))


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    built = build_federation(tmp_path_factory.mktemp("masking"), _plans())
    _minimise(built.configs[MPWT])
    with built.running():
        yield built


def _call(
    federation: Federation, client: str, method: str, request: bytes, streaming: bool
) -> tuple[list[bytes], str]:
    metadata = ((CLIENT, client), (SERVICE, VEHICLES))
    with grpc.insecure_channel(federation.consumer_addresses[MOH]) as channel:
        if streaming:
            call = channel.unary_stream(method)(request, metadata=metadata, timeout=10)
            messages = list(call)
            trailing = call.trailing_metadata()
        else:
            message, outcome = channel.unary_unary(method).with_call(
                request, metadata=metadata, timeout=10
            )
            messages, trailing = [message], outcome.trailing_metadata()
    exchange_id = next(str(v) for k, v in trailing or () if k == EXCHANGE_ID)
    return messages, exchange_id


def _provider_record(federation: Federation, exchange_id: str) -> AuditRecord:
    records = [
        AuditRecord.from_bytes(r.record_bytes) for r in federation.servers[MPWT].audit.read()
    ]
    (record,) = [r for r in records if r.exchange_id == exchange_id]
    return record


def test_unary_answer_is_minimised_per_client(federation: Federation) -> None:
    request = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE).SerializeToString()

    raw_nhis, exchange_id = _call(federation, NHIS, GET_VEHICLE, request, streaming=False)
    raw_amb, _ = _call(federation, AMBULANCE, GET_VEHICLE, request, streaming=False)
    nhis = vehicles_pb2.Vehicle.FromString(raw_nhis[0])
    ambulance = vehicles_pb2.Vehicle.FromString(raw_amb[0])

    assert nhis.plate == demo_data.SAMPLE_PLATE
    assert nhis.make == ""  # dropped for the hospital
    assert ambulance.make == "Toyota"  # kept for the ambulance service
    for vehicle, raw in ((nhis, raw_nhis[0]), (ambulance, raw_amb[0])):
        assert vehicle.owner_id != OWNER
        assert len(vehicle.owner_id) == 43
        assert OWNER.encode() not in raw
    assert nhis.owner_id != ambulance.owner_id  # tokens differ between clients

    # What MPWT digested, signed and logged is the masked message.
    record = _provider_record(federation, exchange_id)
    assert record.response_sha256 == response_digest(raw_nhis)


def test_stream_is_minimised_and_tokens_are_stable(federation: Federation) -> None:
    request = vehicles_pb2.ListVehiclesByOwnerRequest(owner_id=OWNER).SerializeToString()
    single = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE).SerializeToString()

    raw, exchange_id = _call(federation, NHIS, LIST_VEHICLES, request, streaming=True)
    vehicles = [vehicles_pb2.Vehicle.FromString(m) for m in raw]
    unary, _ = _call(federation, NHIS, GET_VEHICLE, single, streaming=False)

    assert tuple(v.plate for v in vehicles) == demo_data.SAMPLE_OWNER_PLATES
    assert all(v.make == "" for v in vehicles)
    assert all(OWNER.encode() not in m for m in raw)
    # One owner, one token: the hospital can still group the vehicles by owner.
    assert {v.owner_id for v in vehicles} == {vehicles_pb2.Vehicle.FromString(unary[0]).owner_id}
    record = _provider_record(federation, exchange_id)
    assert record.response_sha256 == response_digest(raw)
    assert record.response_messages == len(raw)
