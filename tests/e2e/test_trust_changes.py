"""Stories where trust changes under running servers: revocation, expiry, rollback."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway import pki
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.federation import Federation, build_federation
from spean.gateway.demo.ministries import GET_VEHICLE, MOH, MPWT, VEHICLES, call, demo_plans
from spean.gateway.files import keyfiles
from spean.gateway.server.globalconf_client import GlobalConfigurationRollback
from tests.e2e.conftest import World


def _get_vehicle(world: World) -> tuple[str, grpc.StatusCode, str]:
    with world.consumer_channel() as channel:
        _, exchange_id, code, details = call(
            channel,
            GET_VEHICLE,
            VEHICLES,
            vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE),
            vehicles_pb2.Vehicle,
        )
    return exchange_id, code, details


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[World]:
    federation = build_federation(tmp_path, demo_plans())
    with federation.running():
        yield World(federation)


@pytest.fixture
def short_lived(tmp_path: Path) -> Iterator[World]:
    federation: Federation = build_federation(
        tmp_path, demo_plans(), validity=dt.timedelta(seconds=4)
    )
    with federation.running():
        yield World(federation)


def test_a_revoked_consumer_certificate_is_refused_by_the_provider(fresh: World) -> None:
    exchange_id, code, details = _get_vehicle(fresh)
    assert code is grpc.StatusCode.OK, details

    moh_tls = keyfiles.load_certificate(fresh.folder(MOH) / "keys" / "tls.crt")
    authority = fresh.federation.authority
    authority.revoke(thumbprint=pki.thumbprint(moh_tls))
    authority.publish(dt.timedelta(days=1))
    assert fresh.server(MPWT).globalconf.refresh()

    exchange_id, code, details = _get_vehicle(fresh)
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in details
    record = fresh.record(MPWT, exchange_id)
    assert record.status == "UNAUTHENTICATED"
    assert record.forwarded_at_ns == 0


def test_an_expired_global_configuration_fails_closed(short_lived: World) -> None:
    conf = short_lived.server(MOH).current_configuration()
    _, code, details = _get_vehicle(short_lived)
    assert code is grpc.StatusCode.OK, details

    wait = (conf.expires_at - dt.datetime.now(dt.UTC)).total_seconds() + 0.5
    time.sleep(max(wait, 0))
    exchange_id, code, details = _get_vehicle(short_lived)
    assert code is grpc.StatusCode.UNAVAILABLE
    assert "expired" in details
    assert short_lived.record(MOH, exchange_id).status == "UNAVAILABLE"


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
    _, code, details = _get_vehicle(fresh)
    assert code is grpc.StatusCode.OK, details


def test_a_provider_that_cannot_log_refuses_and_says_why(fresh: World) -> None:
    fresh.server(MPWT).audit.close()  # from now on every append fails
    exchange_id, code, details = _get_vehicle(fresh)
    assert code is grpc.StatusCode.UNAVAILABLE
    assert "cannot write its audit log" in details
    record = fresh.record(MOH, exchange_id)
    assert record.status == "UNAVAILABLE"
    assert record.response_messages == 0  # nothing was released to the application
