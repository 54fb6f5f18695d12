"""Calls through the demo federation as the hospital application makes them.

`get_vehicle` is the one over-the-wire GetVehicle of the tests: MoH's
consumer endpoint, with the application's headers, and every part of the
answer kept (status, message, `spean-exchange-id`, the vehicle, the
trailers). `exchange` is the same for any method and body. `Traffic`
is steady background GetVehicle calls from a pool of threads, each on its own
channel, with every outcome kept: the exchange id of each OK answer and the
status and message of each failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.ministries import GET_VEHICLE, NHIS, VEHICLES
from spean.gateway.metadata import CLIENT, EXCHANGE_ID, PURPOSE, SERVICE, USER

USER_ID = "dr.sokha@hospital.example"
PURPOSE_TEXT = "patient admission"

# A client whose server has gone away retries its connection quickly: the
# tests measure Spean's recovery, not grpc's default one-second-and-growing backoff.
CLIENT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


@dataclass(frozen=True, slots=True)
class Answer:
    """What the application got back from one call."""

    code: grpc.StatusCode
    details: str
    exchange_id: str  # the `spean-exchange-id` trailer, "" when there was none
    response: bytes | None  # the response message, on OK
    trailers: tuple[tuple[str, str | bytes], ...] = ()

    @property
    def vehicle(self) -> vehicles_pb2.Vehicle | None:
        return None if self.response is None else vehicles_pb2.Vehicle.FromString(self.response)

    def trailer(self, name: str) -> str:
        """The text trailer `name`, "" when absent."""
        return next((str(v) for k, v in self.trailers if k == name), "")


def hospital_headers(service: str = VEHICLES) -> tuple[tuple[str, str], ...]:
    """The Spean headers the hospital application sends to call `service`."""
    return ((CLIENT, NHIS), (SERVICE, service), (USER, USER_ID), (PURPOSE, PURPOSE_TEXT))


def exchange(
    channel: grpc.Channel,
    method: str,
    body: bytes,
    *,
    headers: Sequence[tuple[str, str]],
    timeout: float = 20.0,
) -> Answer:
    """One unary call of `method` with these headers, raw bytes both ways."""
    stub: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
    try:
        response, outcome = stub.with_call(body, metadata=tuple(headers), timeout=timeout)
    except grpc.RpcError as err:
        failed: grpc.Call = err  # type: ignore[assignment]  # a failed call is both
        trailers = tuple(failed.trailing_metadata() or ())
        details = failed.details() or ""
        return Answer(failed.code(), details, _exchange_id(trailers), None, trailers)
    trailers = tuple(outcome.trailing_metadata() or ())
    return Answer(grpc.StatusCode.OK, "", _exchange_id(trailers), response, trailers)


def get_vehicle(
    channel: grpc.Channel,
    *,
    plate: str = demo_data.SAMPLE_PLATE,
    timeout: float = 20.0,
    metadata: Sequence[tuple[str, str]] = (),
    headers: Sequence[tuple[str, str]] | None = None,
) -> Answer:
    """MoH's GetVehicle of `plate` as the hospital application; `metadata` is sent too.

    `headers` replaces the application's Spean headers (client, service, user,
    purpose), to send missing, repeated or wrong ones.
    """
    sent = hospital_headers() if headers is None else headers
    body = vehicles_pb2.GetVehicleRequest(plate=plate).SerializeToString()
    return exchange(channel, GET_VEHICLE, body, headers=(*sent, *metadata), timeout=timeout)


def _exchange_id(trailers: Sequence[tuple[str, str | bytes]]) -> str:
    return next((str(v) for k, v in trailers if k == EXCHANGE_ID), "")


@dataclass
class Outcome:
    """What the application saw, one entry per call, in the order they ended."""

    ok_ids: list[str] = field(default_factory=list)
    failures: list[tuple[grpc.StatusCode, str]] = field(default_factory=list)


class Traffic:
    """Client threads calling GetVehicle through MoH until stopped; every outcome is kept.

    With `expect_failures` False (stories where not one call may fail),
    `wait_for_ok` gives up at the first failure and names it. With it True
    (fault stories), failures are part of the story: `wait_for_failures`
    waits for them and a failed call is followed by a short pause, so that
    an outage does not turn the pool into a busy loop.

    Bounded twice: at most `max_calls` calls in all, and none started after
    `max_seconds`.
    """

    def __init__(
        self,
        address: str,
        *,
        threads: int = 3,
        expect_failures: bool = False,
        call_timeout: float = 20.0,
        max_calls: int = 20_000,
        max_seconds: float = 180.0,
    ) -> None:
        self.outcome = Outcome()
        self._address = address
        self._expect_failures = expect_failures
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = 0
        self._max_calls = max_calls
        self._until = time.monotonic() + max_seconds
        self._timeout = call_timeout
        self._threads = [
            threading.Thread(target=self._run, name=f"traffic-{i}") for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def _take_one(self) -> bool:
        with self._lock:
            if self._stop.is_set() or self._started >= self._max_calls:
                return False
            if time.monotonic() >= self._until:
                return False
            self._started += 1
            return True

    def _run(self) -> None:
        with grpc.insecure_channel(self._address, options=CLIENT_OPTIONS) as channel:
            while self._take_one():
                answer = get_vehicle(channel, timeout=self._timeout)
                with self._lock:
                    if answer.code is grpc.StatusCode.OK:
                        self.outcome.ok_ids.append(answer.exchange_id)
                    else:
                        self.outcome.failures.append((answer.code, answer.details))
                if answer.code is not grpc.StatusCode.OK:
                    self._stop.wait(0.05)

    @property
    def ok(self) -> int:
        with self._lock:
            return len(self.outcome.ok_ids)

    def failures(self) -> list[tuple[grpc.StatusCode, str]]:
        with self._lock:
            return list(self.outcome.failures)

    def wait_for_ok(self, more: int, timeout: float = 30.0) -> None:
        """Wait until `more` calls beyond those already answered have succeeded."""
        target = self.ok + more
        deadline = time.monotonic() + timeout
        while self.ok < target and time.monotonic() < deadline:
            if not self._expect_failures:
                assert not self.failures(), self.failures()
            time.sleep(0.02)
        if not self._expect_failures:
            assert not self.failures(), self.failures()
        assert self.ok >= target, (
            f"only {self.ok} of {target} calls succeeded in {timeout} s; "
            f"last failures: {self.failures()[-3:]}"
        )

    def wait_for_failures(self, count: int = 1, timeout: float = 30.0) -> None:
        """Wait until `count` more calls than now have failed."""
        target = len(self.failures()) + count
        deadline = time.monotonic() + timeout
        while len(self.failures()) < target and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.failures()) >= target, f"no failure seen in {timeout} s"

    def stop(self) -> Outcome:
        """Stop the threads (any number of times); what they saw."""
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        return self.outcome
