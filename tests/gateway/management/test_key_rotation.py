"""Rotating MPWT's keys through the management API, against the live federation.

The signing key: the API makes the next key and its CSR, the authority
certifies it and publishes, the API installs the certificate (a wrong one is
refused, naming why) and switches; MPWT's next answers are signed with the new
key and MoH accepts them. The TLS key: the same steps, and the server
presents the new certificate on new handshakes. Nothing is restarted.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl

import grpc
import httpx
import yaml

from spean.gateway import pki
from spean.gateway.demo.ministries import MOH, MPWT
from spean.gateway.digests import b64url_decode
from spean.gateway.identifiers import MemberId
from spean.gateway.web.roles import Role
from tests.support.exchanges import get_vehicle
from tests.support.management import Admin
from tests.support.world import World


def _api(admin: Admin) -> httpx.Client:
    return admin.client(admin.keys[Role.SYSTEM_ADMINISTRATOR])


def _kid(token: str) -> str:
    return str(json.loads(b64url_decode(token.split(".")[0]))["kid"])


def _publish(world: World) -> None:
    world.federation.authority.publish(dt.timedelta(days=1))
    for member in (MOH, MPWT):
        world.server(member).globalconf.refresh()


def test_the_signing_key_is_rotated_through_the_api(managed: tuple[World, Admin]) -> None:
    world, admin = managed
    with _api(admin) as api:
        before = {k["kind"]: k for k in api.get("/keys").json()}["signing"]
        started = api.post("/keys/signing/next")
        assert started.status_code == 201, started.text
        csr = started.json()["next"]["csr_pem"]
        assert csr.startswith("-----BEGIN CERTIFICATE REQUEST-----")
        again = api.post("/keys/signing/next")
        assert again.status_code == 409
        assert "already started" in again.text

        # A certificate of another key is refused, naming why.
        current = (admin.config.parent / "keys" / "signing.crt").read_text()
        wrong = api.put("/keys/signing/next/certificate", json={"certificate_pem": current})
        assert wrong.status_code == 400
        assert "not for the next signing key" in wrong.text
        early = api.post("/keys/signing/next/activation")
        assert early.status_code == 409
        assert "no certificate yet" in early.text

        # The authority certifies the new key beside the old one, and publishes.
        issued = world.federation.authority.admit_member(
            MemberId.parse(MPWT), "Ministry of Public Works and Transport", csr.encode()
        )
        _publish(world)
        installed = api.put(
            "/keys/signing/next/certificate", json={"certificate_pem": issued.decode()}
        )
        assert installed.status_code == 200, installed.text
        new_serial = installed.json()["next"]["certificate"]["serial"]

        switched = api.post("/keys/signing/next/activation")
        assert switched.status_code == 200, switched.text
        state = switched.json()
        assert state["current"]["serial"] == new_serial
        assert new_serial != before["current"]["serial"]
        assert state["next"] is None

    document = yaml.safe_load(admin.config.read_text())
    assert document["keys"]["signing_key"] == f"keys/signing-{new_serial}/signing.key"
    new_kid = pki.thumbprint(pki.parse_certificate_pem(issued))
    with world.consumer_channel() as channel:
        answer = get_vehicle(channel)
    assert answer.code is grpc.StatusCode.OK, answer.details
    assert _kid(world.record(MPWT, answer.exchange_id).response_token) == new_kid
    # Newest first: each step recorded, in order.
    actions = [e["action"] for e in _admin_log(admin) if e["action"].startswith("keys.signing.")]
    assert actions[:3] == ["keys.signing.activate", "keys.signing.install", "keys.signing.start"]


def _admin_log(admin: Admin) -> list[dict[str, str]]:
    with _api(admin) as api:
        entries: list[dict[str, str]] = api.get("/admin-log").json()
    return entries


def _presented_sha256(port: int) -> str:
    """The certificate MPWT's provider endpoint presents on a new handshake."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return pki.der_thumbprint(der)


def test_the_tls_key_is_rotated_and_presented(managed: tuple[World, Admin]) -> None:
    world, admin = managed
    server = world.server(MPWT)
    with _api(admin) as api:
        csr = api.post("/keys/tls/next").json()["next"]["csr_pem"]
        issued = world.federation.authority.admit_server(
            server.config.server, server.config.provider.listen, csr.encode(), rotate=True
        )
        _publish(world)
        installed = api.put("/keys/tls/next/certificate", json={"certificate_pem": issued.decode()})
        assert installed.status_code == 200, installed.text
        switched = api.post("/keys/tls/next/activation")
        assert switched.status_code == 200, switched.text
    assert server.provider_port is not None
    assert _presented_sha256(server.provider_port) == pki.pem_thumbprint(issued)
    with world.consumer_channel() as channel:
        assert get_vehicle(channel).code is grpc.StatusCode.OK


def test_a_rotation_can_be_abandoned_and_needs_the_role(managed: tuple[World, Admin]) -> None:
    _, admin = managed
    with admin.client(admin.keys[Role.SERVICE_ADMINISTRATOR]) as other:
        refused = other.post("/keys/signing/next")
        assert refused.status_code == 403
        assert "may not rotate-keys" in refused.text
    with _api(admin) as api:
        assert api.post("/keys/signing/next").status_code == 201
        folder = admin.config.parent / "keys" / "next-signing"
        assert (folder / "signing.key").stat().st_mode & 0o077 == 0  # private to the owner
        gone = api.delete("/keys/signing/next")
        assert gone.status_code == 200
        assert gone.json()["next"] is None
        assert not folder.exists()
        assert api.delete("/keys/signing/next").status_code == 404
        assert api.post("/keys/ssh/next").status_code == 422
