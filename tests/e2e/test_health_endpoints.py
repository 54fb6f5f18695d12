"""Health on every face of a security server: consumer, provider (mutual TLS) and the
optional plaintext health port that probes without a federation certificate use.

MPWT runs in this process with ``health: {listen: 127.0.0.1:0}``. A peer with
a federation certificate asks the provider endpoint; kubelet or a container
HEALTHCHECK asks the health port (deploy/container/healthcheck.py is run as
the container runs it); the health port answers nothing but health.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import MOH, MPWT, build_demo
from spean.gateway.metadata import EXCHANGE_ID
from spean.v1 import metaservices_pb2 as pb
from spean.v1 import metaservices_pb2_grpc as pb_grpc
from tests.support.rogue import provider_channel, tls_identity

HEALTHCHECK = Path(__file__).resolve().parents[2] / "deploy" / "container" / "healthcheck.py"
SERVING = health_pb2.HealthCheckResponse.SERVING


def check(channel: grpc.Channel, service: str = "") -> int:
    answer = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5
    )
    return int(answer.status)


def healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    """deploy/container/healthcheck.py, as the container's HEALTHCHECK runs it."""
    env = {**os.environ, "SPEAN_HEALTHCHECK_ADDRESS": f"127.0.0.1:{port}"}
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def federation(tmp_path: Path) -> Federation:
    federation = build_demo(tmp_path / "federation")
    config = federation.configs[MPWT]
    document = yaml.safe_load(config.read_text())
    document["health"] = {"listen": "127.0.0.1:0"}
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    return federation


def test_provider_endpoint_answers_health_over_mutual_tls(
    federation: Federation,
) -> None:
    mpwt = federation.start(MPWT)
    try:
        ca_pem = mpwt.current_configuration().ca_pem
        address = f"127.0.0.1:{mpwt.provider_port}"
        key, cert = tls_identity(federation.configs[MOH].parent)
        with provider_channel(
            ca_pem, address, str(mpwt.config.server), key_pem=key, cert_pem=cert
        ) as channel:
            assert check(channel) == SERVING
        # Without a federation certificate the handshake itself is refused.
        with (
            provider_channel(
                ca_pem, address, str(mpwt.config.server), key_pem=None, cert_pem=None
            ) as channel,
            pytest.raises(grpc.RpcError) as refused,
        ):
            check(channel)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        # Refused by TLS before any Spean code ran: no exchange id (section 4.1).
        trailing = dict(refused.value.trailing_metadata() or ())  # type: ignore[attr-defined]
        assert EXCHANGE_ID not in trailing
    finally:
        federation.stop_all()


def test_health_port_serves_health_and_nothing_else(federation: Federation) -> None:
    mpwt = federation.start(MPWT)
    try:
        assert mpwt.health_port is not None
        with grpc.insecure_channel(f"127.0.0.1:{mpwt.health_port}") as channel:
            assert check(channel) == SERVING
            with pytest.raises(grpc.RpcError) as other:
                pb_grpc.MetaServiceStub(channel).ListClients(pb.ListClientsRequest(), timeout=5)
            assert other.value.code() is grpc.StatusCode.UNIMPLEMENTED
        ok = healthcheck(mpwt.health_port)
        assert ok.returncode == 0, ok.stderr
    finally:
        port = mpwt.health_port
        federation.stop_all()
    # Stopped: the container's check fails and says why.
    assert port is not None
    down = healthcheck(port)
    assert down.returncode == 1
    assert "spean healthcheck: 127.0.0.1:" in down.stderr


@pytest.mark.slow
def test_health_port_is_not_serving_once_the_configuration_expires(
    federation: Federation,
) -> None:
    # A configuration valid for a few seconds only: the server starts with it,
    # then it expires and nothing newer is published.
    federation.authority.publish(dt.timedelta(seconds=4))
    mpwt = federation.start(MPWT)
    try:
        assert mpwt.health_port is not None
        assert healthcheck(mpwt.health_port).returncode == 0
        expires_at = mpwt.current_configuration().expires_at
        time.sleep(max(0.0, (expires_at - dt.datetime.now(dt.UTC)).total_seconds()) + 0.2)
        answer = healthcheck(mpwt.health_port)
        assert answer.returncode == 1
        assert "NOT_SERVING" in answer.stderr
    finally:
        federation.stop_all()
