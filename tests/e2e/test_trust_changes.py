"""Stories where trust changes under running servers: revocation, expiry, rollback."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from spean.gateway import pki
from spean.gateway.cli import main
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.federation import Federation, build_federation
from spean.gateway.demo.ministries import MOH, MPWT, demo_plans
from spean.gateway.files import keyfiles
from spean.gateway.server.globalconf_client import GlobalConfigurationRollback
from tests.support.exchanges import get_vehicle
from tests.support.world import World, running


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[World]:
    with running(build_federation(tmp_path, demo_plans())) as world:
        yield world


@pytest.fixture
def short_lived(tmp_path: Path) -> Iterator[World]:
    federation: Federation = build_federation(
        tmp_path, demo_plans(), validity=dt.timedelta(seconds=4)
    )
    with running(federation) as world:
        yield world


def test_a_revoked_consumer_certificate_is_refused_by_the_provider(fresh: World) -> None:
    with fresh.consumer_channel() as channel:
        before = get_vehicle(channel)
    assert before.code is grpc.StatusCode.OK, before.details

    moh_tls = keyfiles.load_certificate(fresh.folder(MOH) / "keys" / "tls.crt")
    authority = fresh.federation.authority
    authority.revoke(thumbprint=pki.thumbprint(moh_tls))
    authority.publish(dt.timedelta(days=1))
    assert fresh.server(MPWT).globalconf.refresh()

    with fresh.consumer_channel() as channel:
        answer = get_vehicle(channel)
    assert answer.code is grpc.StatusCode.UNAUTHENTICATED, answer.details
    # Refused at provider step 2 (unsigned); MoH passes the provider's reason on.
    assert answer.details == (
        f"TLS certificate of security server {MOH}/ss1 (serial {moh_tls.serial_number:x})"
        " is revoked"
    )
    assert answer.exchange_id
    provider, consumer = (
        fresh.record(MPWT, answer.exchange_id),
        fresh.record(MOH, answer.exchange_id),
    )
    for record in (provider, consumer):
        assert record.status == "UNAUTHENTICATED"
        assert record.message == answer.details
        assert record.response_messages == 0
        assert record.response_token == ""  # an unauthenticated peer gets no signed answer
    assert provider.forwarded_at_ns == 0  # the adapter was not reached
    assert consumer.forwarded_at_ns > 0  # MoH did send it; MPWT refused it
    # The provider's record names the certificate it refused (protocol.md section 11).
    assert provider.peer_certificate_sha256 == pki.thumbprint(moh_tls)


def test_a_request_signed_with_a_revoked_signing_certificate_is_refused_as_revoked(
    fresh: World,
) -> None:
    signing = keyfiles.load_certificate(fresh.folder(MOH) / "keys" / "signing.crt")
    authority = fresh.federation.authority
    authority.revoke(thumbprint=pki.thumbprint(signing))
    authority.publish(dt.timedelta(days=1))
    assert fresh.server(MPWT).globalconf.refresh()
    version = fresh.server(MPWT).current_configuration().version

    with fresh.consumer_channel() as channel:
        answer = get_vehicle(channel)
    assert answer.code is grpc.StatusCode.UNAUTHENTICATED, answer.details
    # Refused at provider step 4 as revoked, naming the certificate: not "an unknown key".
    assert answer.details == (
        f"request token signed by key {pki.thumbprint(signing)[:16]}: signing certificate of"
        f" {MOH} (serial {pki.serial_hex(signing.serial_number)}) is revoked"
        f" (global configuration version {version})"
    )
    provider = fresh.record(MPWT, answer.exchange_id)
    assert provider.status == "UNAUTHENTICATED"
    assert provider.message == answer.details
    assert provider.request_token  # kept for the record, as every refused token is


def test_verify_reports_a_token_of_a_since_revoked_certificate_as_revoked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An exchange accepted, then its signing certificate revoked: the auditor
    # who judges the log by the newer configuration is told it is revoked.
    with running(build_federation(tmp_path / "federation", demo_plans())) as world:
        with world.consumer_channel() as channel:
            answer = get_vehicle(channel)
        assert answer.code is grpc.StatusCode.OK, answer.details
        signing = keyfiles.load_certificate(world.folder(MOH) / "keys" / "signing.crt")
        world.federation.authority.revoke(thumbprint=pki.thumbprint(signing))
        world.federation.authority.publish(dt.timedelta(days=1))
        assert world.server(MPWT).globalconf.refresh()
    bundle = tmp_path / "provider.zip"
    config = str(world.federation.configs[MPWT])
    assert main(["audit", "export", "--config", config, "--out", str(bundle)]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", str(bundle), "--json"]) == 2
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert any(
        f"request token signed by key {pki.thumbprint(signing)[:16]}: signing certificate of"
        f" {MOH} (serial {pki.serial_hex(signing.serial_number)}) is revoked" in str(problem)
        for problem in problems
    ), problems
    assert not any("unknown key" in str(problem) for problem in problems)


def test_an_expired_global_configuration_fails_closed(short_lived: World) -> None:
    conf = short_lived.server(MOH).current_configuration()
    with short_lived.consumer_channel() as channel:
        before = get_vehicle(channel)
    assert before.code is grpc.StatusCode.OK, before.details

    wait = (conf.expires_at - dt.datetime.now(dt.UTC)).total_seconds() + 0.5
    time.sleep(max(wait, 0))
    held = len(short_lived.records(MPWT))
    with short_lived.consumer_channel() as channel:
        answer = get_vehicle(channel)
    assert answer.code is grpc.StatusCode.UNAVAILABLE, answer.details
    assert answer.details.startswith(
        f"global configuration version {conf.version} expired at {conf.expires_at.isoformat()};"
    )
    assert answer.exchange_id
    record = short_lived.record(MOH, answer.exchange_id)
    assert record.status == "UNAVAILABLE"
    assert record.message == answer.details
    assert record.forwarded_at_ns == 0  # refused by the consumer: nothing left MoH
    assert len(short_lived.records(MPWT)) == held


def test_a_rolled_back_global_configuration_is_refused(fresh: World) -> None:
    authority = fresh.federation.authority
    published = fresh.federation.root / "authority" / "globalconf.signed"
    old = fresh.folder(MOH) / "old-globalconf.signed"
    shutil.copyfile(published, old)
    held = fresh.server(MPWT).current_configuration().version

    authority.publish(dt.timedelta(days=1))
    assert fresh.server(MPWT).globalconf.refresh()
    assert fresh.server(MPWT).current_configuration().version == held + 1

    shutil.copyfile(old, published)  # an attacker or a broken mirror serves the old one
    with pytest.raises(GlobalConfigurationRollback):
        fresh.server(MPWT).globalconf.refresh()
    assert fresh.server(MPWT).current_configuration().version == held + 1
    with fresh.consumer_channel() as channel:
        answer = get_vehicle(channel)
    assert answer.code is grpc.StatusCode.OK, answer.details
    assert answer.vehicle is not None
    assert answer.vehicle.plate == demo_data.SAMPLE_PLATE


def test_a_provider_that_cannot_log_refuses_and_says_why(fresh: World) -> None:
    fresh.server(MPWT).audit.close()  # from now on every append fails
    with fresh.consumer_channel() as channel:
        answer = get_vehicle(channel)
    assert answer.code is grpc.StatusCode.UNAVAILABLE, answer.details
    assert answer.details == (
        "the security server cannot write its audit log; the exchange was refused"
    )
    assert answer.exchange_id
    record = fresh.record(MOH, answer.exchange_id)
    assert record.status == "UNAVAILABLE"
    assert record.message == answer.details
    assert record.response_messages == 0  # nothing was released to the application
