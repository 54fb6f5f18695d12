"""The demo's citizen: which office looked at their records, proven (docs/transparency.md).

MPWT is given a pseudonymisation key, so its server records the data subject
of a call. The hospital asks for the sample citizen's vehicles naming them
(`spean-subject`); then the citizen asks MPWT who looked at their records:
MPWT's live subject view over its logs (gateway/management/transparency.py),
the look-up itself recorded, the proof written to a file and checked offline
against the federation's anchor, as anyone could check it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from spean.gateway.audit.subject import parse_proof, verify_subject_proof
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import LIST_VEHICLES, MPWT, VEHICLES, call
from spean.gateway.files import keyfiles
from spean.gateway.files.config import edit_config
from spean.gateway.management.transparency import LogView, Transparency

CITIZEN = demo_data.SAMPLE_CITIZEN.id_number
REQUESTED_BY = "the citizen, at MPWT's transparency page"
PURPOSE = "the citizen's own request"
PROOF_WAIT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class CitizenView:
    exchange_id: str
    """The hospital's call about the citizen."""
    log: LogView
    """MPWT's worker log, with the proof of the citizen's exchanges in it."""
    proof_file: Path
    verified: bool
    anchor: Path


def give_pseudonymisation_key(config: Path) -> None:
    """MPWT's operator sets provider.pseudonymisation_key: a new 256-bit secret, 0600."""
    key = config.parent / "keys" / "pseudonym.key"
    keyfiles.write_file_atomically(key, (secrets.token_hex(32) + "\n").encode(), mode=0o600)

    def edit(document: Any, _: object) -> None:
        document["provider"]["pseudonymisation_key"] = "keys/pseudonym.key"

    edit_config(config, edit)


def ask_about_the_citizen(consumer_address: str) -> str:
    """The hospital lists the citizen's vehicles, naming the citizen; the exchange id."""
    from spean.demo.vehicles.v1 import vehicles_pb2

    with grpc.insecure_channel(consumer_address) as channel:
        _, exchange_id, code, details = call(
            channel,
            LIST_VEHICLES,
            VEHICLES,
            vehicles_pb2.ListVehiclesByOwnerRequest(owner_id=CITIZEN),
            vehicles_pb2.Vehicle,
            streaming=True,
            subject=CITIZEN,
        )
    if code is not grpc.StatusCode.OK:
        raise RuntimeError(f"the hospital's call about the citizen failed: {code.name} {details}")
    return exchange_id


def citizen_view(federation: Federation, exchange_id: str) -> CitizenView:
    """The citizen's view of MPWT once the call is under a signed checkpoint."""
    server = federation.servers[MPWT]
    config = server.config
    # The server signs a checkpoint within a second of a record; the view proves what
    # is under one, so wait for the call to be covered before looking.
    size = server.audit.size()
    deadline = time.monotonic() + PROOF_WAIT_SECONDS
    while time.monotonic() < deadline:
        signed = server.audit.checkpoints(origin=server.origin)
        if signed and signed[-1].size >= size:
            break
        time.sleep(0.1)
    views = Transparency(config, server.audit).view(CITIZEN, REQUESTED_BY, PURPOSE).logs
    worker = next((v for v in views if v.proof.origin == server.origin), None)
    if worker is None:
        raise RuntimeError(f"{server.origin} has signed no checkpoint in {PROOF_WAIT_SECONDS} s")
    out = federation.root / "citizen-proof.json"
    out.write_bytes(worker.text)
    anchor = config.resolve(config.global_configuration.anchor)
    report = verify_subject_proof(
        parse_proof(worker.text.decode()), keyfiles.load_certificate(anchor)
    )
    return CitizenView(exchange_id, worker, out, report.ok, anchor)
