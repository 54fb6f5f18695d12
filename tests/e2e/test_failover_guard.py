"""No failover for a caller that has gone away.

MPWT lists ``ss1`` then ``ss2``; ``ss1``'s address is held by a listener
that accepts connections and never answers, so MoH's call to it hangs in
the TLS handshake. The hospital cancels its call meanwhile; then the
listener drops its connections and MoH finds ss1 unreachable. Retrying on
ss2 would run the request for nobody: MoH must not fail over, and ss2 must
never see the call.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import grpc
from structlog.testing import capture_logs

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.config import split_address
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.federation import build_federation
from spean.gateway.demo.ministries import GET_VEHICLE, MOH, MPWT, NHIS, VEHICLES
from spean.gateway.metadata import CLIENT, SERVICE
from tests.support.audit_logs import verified_records
from tests.support.plans import demo_plans_with_ss2

SS2 = f"{MPWT}/ss2"


class SilentListener:
    """Accepts TCP connections on `address` and keeps them open, saying nothing."""

    def __init__(self, address: str) -> None:
        host, port = split_address(address)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, int(port)))
        self._socket.listen()
        self._socket.settimeout(0.1)
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.accepted.append(connection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for connection in self.accepted:
            connection.close()
        self._socket.close()


def test_a_cancelled_call_is_not_retried_on_the_next_provider_server(tmp_path: Path) -> None:
    plans = demo_plans_with_ss2()
    federation = build_federation(tmp_path / "federation", plans)
    ss1_address = federation.config(MPWT).provider.listen  # type: ignore[union-attr]
    silent = SilentListener(ss1_address)
    try:
        federation.start(SS2)
        federation.start(MOH)
        request = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE)
        with grpc.insecure_channel(federation.consumer_addresses[MOH]) as channel:
            stub: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(GET_VEHICLE)
            with capture_logs() as events:
                future = stub.future(
                    request.SerializeToString(),
                    metadata=((CLIENT, NHIS), (SERVICE, VEHICLES)),
                    timeout=20,
                )
                deadline = time.monotonic() + 15
                while not silent.accepted:  # MoH is connecting to ss1
                    assert time.monotonic() < deadline, "MoH never tried ss1"
                    time.sleep(0.01)
                future.cancel()
                time.sleep(0.3)  # the cancellation reaches MoH
                silent.close()  # now MoH finds ss1 unreachable
                deadline = time.monotonic() + 15
                while not any(e["event"] == "exchange.completed" for e in events):
                    assert time.monotonic() < deadline, "MoH never ended the exchange"
                    time.sleep(0.01)
    finally:
        silent.close()
        federation.stop_all()
    assert future.cancelled()
    assert [e["server"] for e in events if e["event"] == "provider.unreachable"] == [f"{MPWT}/ss1"]
    assert [e for e in events if e["event"] == "provider.failover"] == []
    ss2_log = federation.configs[SS2].parent / "state" / "ss2" / "audit.db"
    assert verified_records(ss2_log, f"{SS2}#w0") == []


def test_a_call_without_a_deadline_still_fails_over(tmp_path: Path) -> None:
    # The guard above must not mistake "no deadline" for "no time left".
    plans = demo_plans_with_ss2()
    federation = build_federation(tmp_path / "federation", plans)
    try:
        federation.start(SS2)  # ss1, first in the list, is not running
        federation.start(MOH)
        request = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE)
        with grpc.insecure_channel(federation.consumer_addresses[MOH]) as channel:
            stub: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(GET_VEHICLE)
            with capture_logs() as events:
                answer = stub(
                    request.SerializeToString(), metadata=((CLIENT, NHIS), (SERVICE, VEHICLES))
                )
    finally:
        federation.stop_all()
    assert vehicles_pb2.Vehicle.FromString(answer).plate == demo_data.SAMPLE_PLATE
    assert [e["next_server"] for e in events if e["event"] == "provider.failover"] == [SS2]
