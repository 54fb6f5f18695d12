"""ProviderBackoff: which provider server a consumer tries first, on a hand-driven clock."""

from __future__ import annotations

import threading

import pytest

from spean.gateway.backoff import ProviderBackoff
from spean.gateway.globalconf import ServerInfo
from spean.gateway.identifiers import parse_server


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def server(code: str, address: str = "") -> ServerInfo:
    return ServerInfo(
        id=parse_server(f"KH/GOV/MPWT/{code}"),
        address=address or f"{code}.example:9443",
        host=f"{code}.example",
        port=9443,
        tls_certificate_sha256="0" * 64,
        tls_certificate=None,  # type: ignore[arg-type]  # not read by the back-off
    )


SS1, SS2, SS3 = server("ss1"), server("ss2"), server("ss3")
LISTED = [SS1, SS2, SS3]


def codes(servers: list[ServerInfo]) -> list[str]:
    return [s.id.code for s in servers]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def backoff(clock: Clock) -> ProviderBackoff:
    return ProviderBackoff(initial=1.0, maximum=8.0, clock=clock)


def test_listed_order_while_nothing_failed(backoff: ProviderBackoff) -> None:
    assert codes(backoff.order(LISTED)) == ["ss1", "ss2", "ss3"]
    assert backoff.backed_off() == {}


def test_a_failed_server_is_tried_last_until_its_back_off_ends(
    backoff: ProviderBackoff, clock: Clock
) -> None:
    assert backoff.failed(SS1) == 1.0
    assert codes(backoff.order(LISTED)) == ["ss2", "ss3", "ss1"]  # last, never dropped
    clock.now += 0.99
    assert codes(backoff.order(LISTED)) == ["ss2", "ss3", "ss1"]
    assert backoff.backed_off() == {SS1.id: pytest.approx(0.01)}
    clock.now += 0.01
    # Time is up: this call probes ss1 in its listed place ...
    assert codes(backoff.order(LISTED)) == ["ss1", "ss2", "ss3"]
    # ... and concurrent calls keep skipping it while the probe runs.
    assert codes(backoff.order(LISTED)) == ["ss2", "ss3", "ss1"]
    backoff.reached(SS1)
    assert codes(backoff.order(LISTED)) == ["ss1", "ss2", "ss3"]
    assert backoff.backed_off() == {}


def test_each_failed_probe_doubles_the_back_off_up_to_the_maximum(
    backoff: ProviderBackoff, clock: Clock
) -> None:
    seen = []
    backoff.failed(SS2)
    for _ in range(6):
        clock.now += 100
        assert codes(backoff.order(LISTED))[1] == "ss2"  # the probe
        seen.append(backoff.failed(SS2))
    assert seen == [2.0, 4.0, 8.0, 8.0, 8.0, 8.0]


def test_failures_of_calls_already_in_flight_do_not_lengthen_it(
    backoff: ProviderBackoff, clock: Clock
) -> None:
    assert backoff.failed(SS1) == 1.0
    clock.now += 0.5
    assert backoff.failed(SS1) == pytest.approx(0.5)  # same back-off, not 2 s
    clock.now += 0.5
    assert codes(backoff.order(LISTED))[0] == "ss1"


def test_a_server_that_moved_is_a_new_server(backoff: ProviderBackoff) -> None:
    backoff.failed(SS1)
    moved = server("ss1", "10.0.0.9:9443")
    assert codes(backoff.order([moved, SS2])) == ["ss1", "ss2"]


def test_all_failed_still_tries_every_server_in_listed_order(backoff: ProviderBackoff) -> None:
    for s in LISTED:
        backoff.failed(s)
    assert codes(backoff.order(LISTED)) == ["ss1", "ss2", "ss3"]


def test_only_one_thread_claims_the_probe(backoff: ProviderBackoff, clock: Clock) -> None:
    backoff.failed(SS1)
    clock.now += 5
    firsts: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        first = codes(backoff.order(LISTED))[0]
        with lock:
            firsts.append(first)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(firsts) == ["ss1"] + ["ss2"] * 7


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="initial <= maximum"):
        ProviderBackoff(initial=5, maximum=1)
    assert ProviderBackoff().interval(100) == 30.0  # the default maximum
