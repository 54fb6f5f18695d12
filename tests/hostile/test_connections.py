"""Connection-level abuse: idle and half-open connections, endless and stalled request streams.

Bounded in count and time: a few hundred sockets, forty streams, one-second
waits. Each test ends by checking that an ordinary exchange still succeeds
promptly, which is what an attack of this kind tries to prevent. The
federation is this module's own, so a test that leaves threads busy cannot
disturb the corpus.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import yaml

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.config import split_address
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.ministries import GET_VEHICLE, MOH, MPWT, NHIS, VEHICLES, build_demo
from spean.gateway.metadata import CLIENT, SERVICE
from tests.support.exchanges import get_vehicle
from tests.support.hostile import HostileWorld
from tests.support.world import World, running

BODY = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE).SerializeToString()
HEADERS = ((CLIENT, NHIS), (SERVICE, VEHICLES))
STREAMS = 40  # more than a security server's 32 worker threads before they became 256
IDLE_CONNECTIONS = 2_000  # connections opened and left idle, half to each endpoint
# The first bytes of an HTTP/2 connection preface, never finished.
PARTIAL_PREFACE = b"PRI * HTTP/2.0\r\n"


def _exchange(h: World, timeout: float = 5.0) -> grpc.StatusCode:
    """The status of an ordinary GetVehicle through MoH, as the attack goes on."""
    with h.consumer_channel() as channel:
        return get_vehicle(channel, timeout=timeout).code


def _address(text: str) -> tuple[str, int]:
    host, port = split_address(text)
    return host, int(port)


@contextlib.contextmanager
def _sockets(address: tuple[str, int], count: int, first_bytes: bytes) -> Iterator[None]:
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(address, timeout=5)
            if first_bytes:
                sock.sendall(first_bytes)
            opened.append(sock)
        yield
    finally:
        for sock in opened:
            sock.close()


def _allow_open_files(needed: int) -> None:
    """Raise this process's soft limit on open files to `needed` (the servers run here too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        assert hard == resource.RLIM_INFINITY or hard >= needed, (
            f"this test needs {needed} open files; the hard limit is {hard} (ulimit -Hn)"
        )
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def test_thousands_of_idle_and_half_open_connections_do_not_block_exchanges(
    hostile: HostileWorld,
) -> None:
    consumer = _address(hostile.federation.consumer_addresses[MOH])
    provider = _address(hostile.federation.config(MPWT).provider.listen)  # type: ignore[union-attr]
    # Each socket costs two descriptors here: the client's and the server's.
    _allow_open_files(2 * (IDLE_CONNECTIONS + 200) + 1024)
    with (
        _sockets(consumer, IDLE_CONNECTIONS // 2, b""),
        _sockets(provider, IDLE_CONNECTIONS // 2, b""),
        _sockets(consumer, 100, PARTIAL_PREFACE),
        _sockets(provider, 100, b"\x16\x03\x01"),  # a TLS record header, then nothing
    ):
        assert _exchange(hostile) is grpc.StatusCode.OK
    assert _exchange(hostile) is grpc.StatusCode.OK


def _open_streams(
    h: World, endless_streams: bool, stop: threading.Event, count: int = STREAMS
) -> tuple[list[grpc.Channel], list[Any]]:
    channels: list[grpc.Channel] = []
    calls: list[Any] = []

    def stalled() -> Iterator[bytes]:
        stop.wait(30)  # never sends a message; bounded so no thread outlives the test
        return
        yield b""  # pragma: no cover - makes this a generator

    def endless() -> Iterator[bytes]:
        while not stop.is_set():
            yield BODY

    for _ in range(count):
        channel = h.consumer_channel()
        channels.append(channel)
        source = endless() if endless_streams else stalled()
        stub: Any = channel.stream_stream(GET_VEHICLE)  # raw bytes both ways
        calls.append(stub(source, metadata=HEADERS, timeout=30))
    return channels, calls


def _close(channels: list[grpc.Channel], calls: list[Any], stop: threading.Event) -> None:
    stop.set()
    for started in calls:
        started.cancel()
    for channel in channels:
        channel.close()


def test_request_streams_that_never_end_are_answered_after_their_first_message(
    hostile: HostileWorld,
) -> None:
    # Spean handles every call as unary-request: it takes the first message and
    # answers; the rest of a never-ending stream is ignored (protocol.md s. 12).
    stop = threading.Event()
    before = hostile.server(MOH).audit.size()
    channels, calls = _open_streams(hostile, True, stop)
    try:
        assert _exchange(hostile, timeout=5) is grpc.StatusCode.OK
    finally:
        _close(channels, calls, stop)
    assert hostile.server(MOH).audit.size() >= before + 1
    assert _exchange(hostile) is grpc.StatusCode.OK


def test_stalled_request_streams_do_not_starve_the_endpoint(hostile: HostileWorld) -> None:
    # Each stalled call holds one of the limits.workers threads (default 256)
    # until its deadline; an ordinary exchange still finds one at once.
    stop = threading.Event()
    channels, calls = _open_streams(hostile, False, stop)
    try:
        assert _exchange(hostile, timeout=1.0) is grpc.StatusCode.OK
    finally:
        _close(channels, calls, stop)


def test_the_endpoint_serves_again_once_stalled_streams_are_cancelled(
    hostile: HostileWorld,
) -> None:
    stop = threading.Event()
    channels, calls = _open_streams(hostile, False, stop)
    _close(channels, calls, stop)
    assert _exchange(hostile) is grpc.StatusCode.OK


def test_calls_beyond_the_worker_limit_are_refused_at_once_not_queued(tmp_path: Path) -> None:
    # With every worker held by a stalled call, a new call is told so
    # (RESOURCE_EXHAUSTED) at once instead of waiting behind them for ever.
    federation = build_demo(tmp_path / "federation")
    config = federation.configs[MOH]
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    document["limits"] = {"workers": 4}
    config.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    with running(federation) as world:
        stop = threading.Event()
        channels: list[grpc.Channel] = []
        calls: list[Any] = []
        try:
            deadline = time.monotonic() + 10
            code = grpc.StatusCode.OK
            while code is grpc.StatusCode.OK and time.monotonic() < deadline:
                # Four stalled calls, kept open: one that lost the race for the last
                # worker to a probe was refused (and ended), so another takes its place.
                for _ in range(4 - sum(not c.done() for c in calls)):
                    opened, started = _open_streams(world, False, stop, count=1)
                    channels += opened
                    calls += started
                time.sleep(0.05)  # until the server has taken them
                code = _exchange(world, timeout=2.0)
            assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert sum(not c.done() for c in calls) == 4  # the stalled calls hold the workers
        finally:
            _close(channels, calls, stop)
        # Cancelled on this side, the stalled calls end on the server's side a moment
        # later (the cancellation crosses the connection): the endpoint serves again then.
        recovered_by = time.monotonic() + 10
        code = _exchange(world)
        while code is grpc.StatusCode.RESOURCE_EXHAUSTED and time.monotonic() < recovered_by:
            time.sleep(0.1)
            code = _exchange(world)
        assert code is grpc.StatusCode.OK
