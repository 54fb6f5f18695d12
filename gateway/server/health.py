"""Standard gRPC health checking (grpc.health.v1) for a security server endpoint.

Load balancers, Kubernetes probes and ``grpc_health_probe`` ask the overall
service (``""``) or a named one (e.g. ``spean.v1.MetaService``). The answer:

- NOT_SERVING before `serving()` and after `draining()` (shutdown has begun:
  a balancer should send new calls elsewhere while those in flight finish);
- NOT_SERVING for the overall service while the global configuration cannot
  be used (expired or never loaded): every exchange would be refused, so the
  server is not ready, whatever the process state;
- SERVING otherwise.

`Check` evaluates the configuration at each call; `Watch` streams the state
set by `serving()`/`draining()` only (it is event driven, and expiry is not
an event), which is what balancers that watch need: they see the drain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2

from spean.gateway.errors import SpeanError
from spean.gateway.globalconf import GlobalConfiguration

SERVICE_NAME = "grpc.health.v1.Health"
OVERALL = ""


class _Servicer(health.HealthServicer):  # type: ignore[misc]  # untyped base
    def __init__(self, ready: Callable[[], bool]) -> None:
        super().__init__()
        self._ready = ready

    def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        answer: health_pb2.HealthCheckResponse = super().Check(request, context)
        if (
            request.service == OVERALL
            and answer.status == health_pb2.HealthCheckResponse.SERVING
            and not self._ready()
        ):
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.NOT_SERVING)
        return answer


class ServerHealth:
    """Health state of one endpoint and its grpc.health.v1 handlers."""

    def __init__(
        self, configuration: Callable[[], GlobalConfiguration], services: Iterable[str] = ()
    ) -> None:
        self._configuration = configuration
        self._services = (OVERALL, *services)
        self._servicer = _Servicer(self._configuration_usable)
        for name in self._services:
            self._servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    def _configuration_usable(self) -> bool:
        try:
            self._configuration()
        except SpeanError:
            return False
        return True

    def serving(self) -> None:
        for name in self._services:
            self._servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    def draining(self) -> None:
        """Answer NOT_SERVING from now on, for good (shutdown has begun)."""
        self._servicer.enter_graceful_shutdown()

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        """Handlers for `grpc.Server.add_registered_method_handlers(SERVICE_NAME, ...)`."""
        request = health_pb2.HealthCheckRequest.FromString
        response = health_pb2.HealthCheckResponse.SerializeToString
        return {
            "Check": grpc.unary_unary_rpc_method_handler(
                self._servicer.Check,
                request_deserializer=request,
                response_serializer=response,
            ),
            "Watch": grpc.unary_stream_rpc_method_handler(
                self._servicer.Watch,
                request_deserializer=request,
                response_serializer=response,
            ),
        }
