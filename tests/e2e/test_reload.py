"""Reload and key rotation under steady traffic: not one call may fail.

MoH runs as ``spean server run --workers 2`` (a real subprocess) and gets
SIGHUP; MPWT runs in this process and is reloaded with `reload()`. Traffic
flows through MoH to MPWT the whole time. The story follows
docs/operator.md, "Rotating keys":

1. MoH's member signing key: the new key is admitted (both are valid), MoH
   reloads and signs with it, then the old certificate is revoked.
2. MPWT's TLS certificate: renewed, reloaded (new handshakes present it),
   published, the old one revoked.
3. A broken configuration file sent with SIGHUP changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
from pathlib import Path

import pytest
import yaml

from spean.gateway import pki
from spean.gateway.authority import init_member, init_server
from spean.gateway.cli.doctor import probe_peer
from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import MOH, MPWT, build_demo
from spean.gateway.digests import b64url_decode
from spean.gateway.files import keyfiles
from spean.gateway.identifiers import MemberId
from tests.support.audit_logs import origins, verified_records
from tests.support.exchanges import Traffic
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.slow


def set_keys(config: Path, **paths: str) -> None:
    document = yaml.safe_load(config.read_text())
    document["keys"].update(paths)
    config.write_text(yaml.safe_dump(document, sort_keys=False))


def kid_of(token: str) -> str:
    header = json.loads(b64url_decode(token.split(".")[0]))
    return str(header["kid"])


def publish(federation: Federation) -> None:
    """The authority publishes; MPWT (in this process) picks it up at once."""
    federation.authority.publish(dt.timedelta(days=1))
    federation.servers[MPWT].globalconf.refresh()


def test_rotation_and_reload_under_traffic_drop_no_call(tmp_path: Path) -> None:
    federation = build_demo(tmp_path / "federation")
    mpwt = federation.start(MPWT)
    moh_config = federation.configs[MOH]
    moh_keys = moh_config.parent / "keys"
    old_signing = keyfiles.load_certificate(moh_keys / "signing.crt")
    moh = ServerProcess(moh_config, tmp_path / "moh.log", workers=2)
    traffic: Traffic | None = None
    try:
        moh.wait_for("server.workers_ready")
        traffic = Traffic(federation.consumer_addresses[MOH])
        traffic.wait_for_ok(10)

        # 1. Member signing key: admit the new key beside the old one.
        init_member(moh_keys / "next", MOH)
        (moh_keys / "next" / "signing.crt").write_bytes(
            federation.authority.admit_member(
                MemberId.parse(MOH),
                "Ministry of Health",
                (moh_keys / "next" / "signing.csr").read_bytes(),
            )
        )
        publish(federation)
        new_kid = pki.thumbprint(keyfiles.load_certificate(moh_keys / "next" / "signing.crt"))
        assert mpwt.current_configuration().signing_key(new_kid) is not None
        set_keys(
            moh_config,
            signing_key="keys/next/signing.key",
            signing_certificate="keys/next/signing.crt",
        )
        moh.send(signal.SIGHUP)
        reloaded = moh.wait_for("server.reloaded", count=2)
        assert {event["signing_kid"] for event in reloaded} == {new_kid}
        traffic.wait_for_ok(20)
        # Retire the old key: revoked, published; MoH no longer uses it.
        federation.authority.revoke(serial=old_signing.serial_number)
        publish(federation)
        assert mpwt.current_configuration().signing_key(pki.thumbprint(old_signing)) is None
        traffic.wait_for_ok(20)

        # 2. MPWT's TLS certificate: a new key, certified, swapped in without a restart.
        mpwt_config = federation.configs[MPWT]
        mpwt_keys = mpwt_config.parent / "keys"
        old_tls = keyfiles.load_certificate(mpwt_keys / "tls.crt")
        address = mpwt.current_configuration().server(mpwt.config.server).address  # type: ignore[union-attr]
        init_server(mpwt_keys / "next", mpwt.config.server, address)
        (mpwt_keys / "next" / "tls.crt").write_bytes(
            federation.authority.admit_server(
                mpwt.config.server,
                address,
                (mpwt_keys / "next" / "tls.csr").read_bytes(),
                replace=True,
            )
        )
        set_keys(mpwt_config, tls_key="keys/next/tls.key", tls_certificate="keys/next/tls.crt")
        mpwt.reload()
        publish(federation)
        new_tls = pki.thumbprint(keyfiles.load_certificate(mpwt_keys / "next" / "tls.crt"))
        presented = probe_peer(
            address,
            mpwt.config.server.dns_name(),
            mpwt.current_configuration().ca_pem,
            moh_keys / "tls.crt",
            moh_keys / "tls.key",
        )
        assert presented == new_tls  # new handshakes get the new certificate
        traffic.wait_for_ok(20)
        federation.authority.revoke(serial=old_tls.serial_number)
        publish(federation)
        traffic.wait_for_ok(20)

        # 3. A broken file: refused, logged, nothing changes, traffic flows.
        good = moh_config.read_text()
        moh_config.write_text("server_id: [not, valid\n")
        moh.send(signal.SIGHUP)
        failed = moh.wait_for("server.reload_failed")
        assert "not valid YAML" in failed[0]["error"]
        moh_config.write_text(good)
        traffic.wait_for_ok(20)
        traffic.stop()
        moh.send(signal.SIGTERM)
        assert moh.wait() == 0
    finally:
        if traffic is not None:
            traffic.stop()
        moh.kill()
        federation.stop_all()
    assert traffic.failures() == []
    database = moh_config.parent / "state" / "audit.db"
    records = [r for origin in origins(database) for r in verified_records(database, origin)]
    assert len(records) == traffic.ok
    kids = {kid_of(r.request_token) for r in records}
    assert kids == {pki.thumbprint(old_signing), new_kid}  # both keys signed, none failed
