"""TLS key rotation of a server that makes outgoing calls, under steady traffic.

MoH's security server calls MPWT's, which identifies it by the fingerprint of
the TLS certificate it presents. MoH runs as ``spean server run --workers 2``
(a real subprocess); MPWT runs in this process. The story follows
docs/operator.md, "Rotating keys":

1. MoH makes a new TLS key; the authority admits it with ``--rotate`` (the
   old certificate stays listed) and publishes; MPWT refreshes and now
   accepts either certificate.
2. MoH reloads (SIGHUP) onto the new key: new connections present it.
3. The authority retires (and revokes) the old certificate and publishes;
   MPWT refuses it from then on.

The application calls through MoH the whole time: not one call may fail, and
MPWT's audit log shows both certificates, the new one after the switch.
"""

from __future__ import annotations

import datetime as dt
import signal
from pathlib import Path

import grpc
import pytest
import yaml

from spean.gateway import pki
from spean.gateway.audit.record import AuditRecord
from spean.gateway.authority import init_server
from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import GET_VEHICLE, MOH, MPWT, VEHICLES, build_demo
from spean.gateway.files import keyfiles
from spean.gateway.identifiers import parse_server
from tests.support.audit_logs import verified_records
from tests.support.exchanges import Traffic
from tests.support.rogue import provider_channel, send
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.slow

MOH_SS1 = parse_server(f"{MOH}/ss1")


def set_keys(config: Path, **paths: str) -> None:
    document = yaml.safe_load(config.read_text())
    document["keys"].update(paths)
    config.write_text(yaml.safe_dump(document, sort_keys=False))


def publish_and_refresh(federation: Federation) -> None:
    """The authority publishes; MPWT (the peer that must know MoH) picks it up at once."""
    federation.authority.publish(dt.timedelta(days=1))
    federation.servers[MPWT].globalconf.refresh()


def peers_seen(federation: Federation, since: int = 0) -> list[str]:
    """The TLS fingerprints MPWT saw on MoH's calls, in log order, from record `since`."""
    stored = list(federation.servers[MPWT].audit.read())[since:]
    records = [AuditRecord.from_bytes(r.record_bytes) for r in stored]
    return [r.peer_certificate_sha256 for r in records if r.client.startswith(MOH)]


def test_tls_rotation_of_a_calling_server_drops_no_call(tmp_path: Path) -> None:
    federation = build_demo(tmp_path / "federation")
    mpwt = federation.start(MPWT)
    moh_config = federation.configs[MOH]
    keys = moh_config.parent / "keys"
    old_cert = keyfiles.load_certificate(keys / "tls.crt")
    old = pki.thumbprint(old_cert)
    listed = mpwt.current_configuration().server(MOH_SS1)
    assert listed is not None
    moh = ServerProcess(moh_config, tmp_path / "moh.log", workers=2)
    traffic: Traffic | None = None
    try:
        moh.wait_for("server.workers_ready")
        traffic = Traffic(federation.consumer_addresses[MOH])
        traffic.wait_for_ok(10)

        # 1. The new key is admitted beside the old one and published; MPWT refreshes.
        init_server(keys / "next", MOH_SS1, listed.address)
        (keys / "next" / "tls.crt").write_bytes(
            federation.authority.admit_server(
                MOH_SS1, listed.address, (keys / "next" / "tls.csr").read_bytes(), rotate=True
            )
        )
        new = pki.thumbprint(keyfiles.load_certificate(keys / "next" / "tls.crt"))
        publish_and_refresh(federation)
        during = mpwt.current_configuration().server(MOH_SS1)
        assert during is not None
        assert during.tls_fingerprints == (new, old)
        traffic.wait_for_ok(10)

        # 2. MoH switches to the new key: every worker reloads, new connections present it.
        set_keys(moh_config, tls_key="keys/next/tls.key", tls_certificate="keys/next/tls.crt")
        moh.send(signal.SIGHUP)
        reloaded = moh.wait_for("server.reloaded", count=2)
        assert {event["tls_sha256"] for event in reloaded} == {new}
        switched = len(list(mpwt.audit.read()))
        traffic.wait_for_ok(30)
        assert set(peers_seen(federation, since=switched)[-10:]) == {new}

        # 3. The old certificate is retired and revoked; MPWT refuses it from now on.
        federation.authority.retire_certificate(MOH_SS1, serial=old_cert.serial_number, revoke=True)
        publish_and_refresh(federation)
        after = mpwt.current_configuration().server(MOH_SS1)
        assert after is not None
        assert after.tls_fingerprints == (new,)
        traffic.wait_for_ok(30)
        with provider_channel(
            mpwt.current_configuration().ca_pem,
            f"127.0.0.1:{mpwt.provider_port}",
            str(mpwt.config.server),
            key_pem=(keys / "tls.key").read_bytes(),
            cert_pem=(keys / "tls.crt").read_bytes(),
        ) as channel:
            refused = send(channel, GET_VEHICLE, b"", None)
        assert refused.code is grpc.StatusCode.UNAUTHENTICATED, refused.details
        assert refused.details.startswith(f"TLS certificate {old[:16]}... is not that of a")
        assert refused.exchange_id
        assert refused.response_token == ""  # refused before the exchange was established
        [record] = [
            AuditRecord.from_bytes(r.record_bytes)
            for r in mpwt.audit.read()
            if AuditRecord.from_bytes(r.record_bytes).exchange_id == refused.exchange_id
        ]
        assert (record.status, record.message) == ("UNAUTHENTICATED", refused.details)

        traffic.stop()
        moh.send(signal.SIGTERM)
        assert moh.wait() == 0
    finally:
        if traffic is not None:
            traffic.stop()
        moh.kill()
        federation.stop_all()
    assert traffic.failures() == []
    # MPWT's log verifies and holds every call MoH completed, under both certificates.
    database = federation.configs[MPWT].parent / "state" / "audit.db"
    records = verified_records(database, f"{mpwt.config.server}#w0")
    seen = [r.peer_certificate_sha256 for r in records if r.service == VEHICLES]
    assert set(seen) == {old, new}
    assert len(seen) >= traffic.ok
