"""Hostile global configurations offered to a running security server.

An attacker who controls the configuration source (the authority's web
server, a proxy on the way, the shared file) can offer anything. Each row
writes one such document to the source of the live federation and has
MPWT's running `GlobalConfigurationClient` refresh from it. Each must be
refused with its status, leave the held configuration in place, write
nothing to any audit log (it is not an exchange), and exchanges must go on.
After each row the authority publishes a fresh version, which every server
accepts, so rows do not depend on each other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import pytest

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway import pki
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.ministries import GET_VEHICLE, MOH, MOI, MPWT, VEHICLES, call
from spean.gateway.errors import SpeanError
from spean.gateway.files import keyfiles
from spean.gateway.globalconf import sign_global_configuration
from spean.v1 import config_pb2
from tests.support.hostile import HostileWorld

MEMBERS = (MOH, MPWT, MOI)


@dataclass(frozen=True, slots=True)
class Offer:
    document: Callable[[HostileWorld], bytes]
    status: grpc.StatusCode
    message: str


def _source(h: HostileWorld) -> bytes:
    return h.federation.authority.published_path.read_bytes()


def _envelope(h: HostileWorld) -> config_pb2.SignedGlobalConfiguration:
    envelope = config_pb2.SignedGlobalConfiguration()
    envelope.ParseFromString(_source(h))
    return envelope


def _bad_signature(h: HostileWorld) -> bytes:
    envelope = _envelope(h)
    signature = bytearray(envelope.signature)
    signature[-1] ^= 0x01
    envelope.signature = bytes(signature)
    return envelope.SerializeToString()


def _edited_content(h: HostileWorld) -> bytes:
    # The genuine signature over other bytes: a member quietly added.
    envelope = _envelope(h)
    envelope.configuration += config_pb2.GlobalConfiguration(
        members=[config_pb2.Member(id="KH/GOV/EVIL", name="Evil")]
    ).SerializeToString()
    return envelope.SerializeToString()


def _other_signer(h: HostileWorld) -> bytes:
    # A well-formed configuration signed by a key the anchor is not.
    authority = h.federation.authority
    message = authority.build_configuration(999, dt.datetime.now(dt.UTC), dt.timedelta(hours=1))
    key = pki.generate_key()
    ca = pki.create_ca(key, "KH")
    return sign_global_configuration(message, key, ca)


def _invalid_but_signed(h: HostileWorld) -> bytes:
    # The genuine authority key, content that breaks the rules (version 0).
    authority = h.federation.authority
    message = authority.build_configuration(0, dt.datetime.now(dt.UTC), dt.timedelta(hours=1))
    key = keyfiles.load_private_key(authority.directory / "signing.key")
    return sign_global_configuration(message, key, authority.signing_certificate)


def _expired(h: HostileWorld) -> bytes:
    # Genuinely signed, expired a minute ago (the anchor itself dates from a few
    # minutes back, when the federation was built).
    authority = h.federation.authority
    authority.publish(
        dt.timedelta(minutes=1), now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)
    )
    return _source(h)


def _rolled_back(h: HostileWorld) -> bytes:
    return (h.federation.authority.directory / "published" / "00000001.signed").read_bytes()


U = grpc.StatusCode
OFFERS = [
    pytest.param(Offer(_bad_signature, U.UNAUTHENTICATED, "signature"), id="bad-signature"),
    pytest.param(Offer(_edited_content, U.UNAUTHENTICATED, "signature"), id="edited-content"),
    pytest.param(Offer(_other_signer, U.UNAUTHENTICATED, ""), id="other-signer"),
    pytest.param(Offer(lambda h: b"\x0a\xff\xff", U.UNAUTHENTICATED, ""), id="garbage"),
    pytest.param(Offer(lambda h: _source(h)[:-7], U.UNAUTHENTICATED, ""), id="truncated"),
    pytest.param(
        Offer(_invalid_but_signed, U.INVALID_ARGUMENT, "version"), id="signed-but-invalid"
    ),
    pytest.param(Offer(_expired, U.UNAVAILABLE, "expired"), id="expired"),
    pytest.param(Offer(_rolled_back, U.UNAUTHENTICATED, "rollback"), id="rolled-back"),
]


def _exchange_works(h: HostileWorld) -> None:
    request = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE)
    with h.consumer_channel() as channel:
        _, _, code, details = call(channel, GET_VEHICLE, VEHICLES, request, vehicles_pb2.Vehicle)
    assert code is grpc.StatusCode.OK, details


def _republish(h: HostileWorld) -> None:
    h.federation.authority.publish()
    for member in MEMBERS:
        assert h.server(member).globalconf.refresh()


@pytest.mark.parametrize("offer", OFFERS)
def test_running_server_refuses_a_hostile_configuration(
    hostile: HostileWorld, offer: Offer
) -> None:
    server = hostile.server(MPWT)
    held = server.current_configuration().version
    published = hostile.federation.authority.published_path
    document = offer.document(hostile)
    keyfiles.write_file_atomically(published, document)
    sizes = {member: hostile.server(member).audit.size() for member in MEMBERS}
    try:
        with pytest.raises(SpeanError) as info:
            server.globalconf.refresh()
        assert info.value.code is offer.status, info.value.message
        assert offer.message in info.value.message
        assert server.current_configuration().version == held
        _exchange_works(hostile)
        # The refresh itself is no exchange: only the two records of the call above.
        assert hostile.server(MPWT).audit.size() == sizes[MPWT] + 1
        assert hostile.server(MOH).audit.size() == sizes[MOH] + 1
    finally:
        _republish(hostile)
    assert server.current_configuration().version > held
    _exchange_works(hostile)
