"""Container health check: does the security server answer SERVING on its health port?

Asks grpc.health.v1 `Check` (overall service) on the plaintext health endpoint
that `health: {listen: ...}` in server.yaml turns on. The address comes from
SPEAN_HEALTHCHECK_ADDRESS (host:port, default 127.0.0.1:8081). Exit 0 when
the answer is SERVING; 1 otherwise (NOT_SERVING while the global
configuration is unusable or the server drains, or no answer within 2 s),
with the reason on stderr.
"""

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

address = os.environ.get("SPEAN_HEALTHCHECK_ADDRESS", "127.0.0.1:8081")
try:
    with grpc.insecure_channel(address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=2.0
        )
except grpc.RpcError as exc:
    print(f"spean healthcheck: {address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
    sys.exit(1)
if answer.status != health_pb2.HealthCheckResponse.SERVING:
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    print(f"spean healthcheck: {address}: {status}", file=sys.stderr)
    sys.exit(1)
