"""ServerHealth: the states a balancer or probe sees through grpc.health.v1."""

from __future__ import annotations

from typing import Any

from grpc_health.v1 import health_pb2

from spean.gateway.errors import Unavailable
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.server.health import ServerHealth

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class _Usable:
    def __init__(self) -> None:
        self.expired = False

    def __call__(self) -> GlobalConfiguration:
        if self.expired:
            raise Unavailable("global configuration version 3 expired")
        return None  # type: ignore[return-value]  # only the absence of an error matters


def _check(health: ServerHealth, service: str = "") -> Any:
    check = health.method_handlers()["Check"].unary_unary
    assert check is not None
    return check(health_pb2.HealthCheckRequest(service=service), None).status


def test_not_serving_until_started_then_serving() -> None:
    health = ServerHealth(_Usable(), services=["spean.v1.MetaService"])
    assert _check(health) == NOT_SERVING
    health.serving()
    assert _check(health) == SERVING
    assert _check(health, "spean.v1.MetaService") == SERVING


def test_an_expired_configuration_makes_the_server_not_ready() -> None:
    configuration = _Usable()
    health = ServerHealth(configuration)
    health.serving()
    configuration.expired = True
    assert _check(health) == NOT_SERVING
    configuration.expired = False
    assert _check(health) == SERVING


def test_draining_is_final() -> None:
    health = ServerHealth(_Usable(), services=["spean.v1.MetaService"])
    health.serving()
    health.draining()
    health.serving()
    assert _check(health) == NOT_SERVING
    assert _check(health, "spean.v1.MetaService") == NOT_SERVING
