"""A security server's view of the global configuration: load, refresh, cache, refuse."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from spean.gateway.authority import Authority
from spean.gateway.errors import FailedPrecondition, Unauthenticated, Unavailable
from spean.gateway.globalconf import GlobalConfiguration, GlobalConfigurationExpired
from spean.gateway.server import globalconf_client
from spean.gateway.server.globalconf_client import (
    GlobalConfigurationClient,
    GlobalConfigurationRollback,
)

START = dt.datetime.now(dt.UTC).replace(microsecond=0)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += dt.timedelta(**kwargs)


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority.init(tmp_path / "authority", "KH", now=START)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[MutableMapping[str, Any]]]:
    """Log events of the client. A fresh logger, because a logger cached by an earlier
    `configure_logging` in the same session would bypass the capture."""
    with capture_logs() as captured:
        monkeypatch.setattr(globalconf_client, "log", structlog.get_logger())
        yield captured


def publish(authority: Authority, hours: float = 24) -> bytes:
    return authority.publish(dt.timedelta(hours=hours), now=START).read_bytes()


def client_for(
    authority: Authority, tmp_path: Path, clock: Clock, source: str | None = None
) -> GlobalConfigurationClient:
    return GlobalConfigurationClient(
        source=source or str(authority.published_path),
        anchor=authority.signing_certificate,
        cache_path=tmp_path / "server" / "state" / "globalconf.signed",
        refresh_seconds=60,
        clock=clock,
    )


def test_load_from_source_writes_the_cache(
    authority: Authority, tmp_path: Path, clock: Clock, logs: list[MutableMapping[str, Any]]
) -> None:
    signed = publish(authority)
    client = client_for(authority, tmp_path, clock)
    conf = client.load_initial()
    assert conf.version == 1
    cache = tmp_path / "server" / "state" / "globalconf.signed"
    assert cache.read_bytes() == signed
    assert {"event": "globalconf.refreshed"}.items() <= logs[-1].items()
    assert client.last_reached == START


def test_refresh_installs_a_newer_version_and_notifies(
    authority: Authority, tmp_path: Path, clock: Clock
) -> None:
    publish(authority)
    client = client_for(authority, tmp_path, clock)
    client.load_initial()
    seen: list[int] = []
    client.subscribe(lambda conf: seen.append(conf.version))
    assert client.refresh() is False  # same version: kept as it is
    signed = publish(authority)
    assert client.refresh() is True
    assert client.current().version == 2
    assert seen == [2]
    assert client._cache_path.read_bytes() == signed


def test_a_rollback_is_refused_and_the_version_stays(
    authority: Authority, tmp_path: Path, clock: Clock, logs: list[MutableMapping[str, Any]]
) -> None:
    old = publish(authority)
    publish(authority)
    client = client_for(authority, tmp_path, clock)
    assert client.load_initial().version == 2
    authority.published_path.write_bytes(old)  # an attacker or a restored backup
    with pytest.raises(GlobalConfigurationRollback, match="version 1"):
        client.refresh()
    assert isinstance(GlobalConfigurationRollback("x"), Unauthenticated)
    assert client.current().version == 2
    assert any(
        log["event"] == "globalconf.rollback_refused" and log["offered_version"] == 1
        for log in logs
    )


def test_a_rollback_is_refused_after_a_restart(
    authority: Authority, tmp_path: Path, clock: Clock, logs: list[MutableMapping[str, Any]]
) -> None:
    old = publish(authority)
    publish(authority)
    client_for(authority, tmp_path, clock).load_initial()
    authority.published_path.write_bytes(old)
    restarted = client_for(authority, tmp_path, clock)
    assert restarted.load_initial().version == 2
    assert any(log["event"] == "globalconf.rollback_refused" for log in logs)


def test_an_expired_cache_still_sets_the_rollback_floor(
    authority: Authority, tmp_path: Path, clock: Clock
) -> None:
    long_lived = publish(authority, hours=24 * 10)
    publish(authority, hours=1)
    client_for(authority, tmp_path, clock).load_initial()  # caches version 2
    authority.published_path.write_bytes(long_lived)
    clock.advance(hours=2)  # version 2 has expired; version 1 has not
    restarted = client_for(authority, tmp_path, clock)
    with pytest.raises(FailedPrecondition, match="lower than version 2"):
        restarted.load_initial()


def test_the_cache_serves_when_the_source_is_down(
    authority: Authority, tmp_path: Path, clock: Clock, logs: list[MutableMapping[str, Any]]
) -> None:
    publish(authority)
    client_for(authority, tmp_path, clock).load_initial()
    restarted = client_for(authority, tmp_path, clock, source=str(tmp_path / "gone.signed"))
    assert restarted.load_initial().version == 1
    assert any(log["event"] == "globalconf.source_failed_using_cache" for log in logs)
    assert restarted.last_reached is None


def test_neither_cache_nor_source_is_a_clear_error(
    authority: Authority, tmp_path: Path, clock: Clock
) -> None:
    client = client_for(authority, tmp_path, clock)
    with pytest.raises(FailedPrecondition) as failure:
        client.load_initial()
    message = failure.value.message
    assert "does not exist" in message
    assert f"cannot read the global configuration {authority.published_path}" in message
    with pytest.raises(FailedPrecondition, match="no global configuration is loaded yet"):
        client.current()


def test_a_tampered_cache_is_refused_and_the_source_used(
    authority: Authority, tmp_path: Path, clock: Clock, logs: list[MutableMapping[str, Any]]
) -> None:
    publish(authority)
    client = client_for(authority, tmp_path, clock)
    client.load_initial()
    cache = client._cache_path
    data = bytearray(cache.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cache.write_bytes(bytes(data))
    assert client_for(authority, tmp_path, clock).load_initial().version == 1
    assert any(log["event"] == "globalconf.cache_refused" for log in logs)
    assert cache.read_bytes() == authority.published_path.read_bytes()


def test_a_configuration_from_another_authority_is_refused(
    authority: Authority, tmp_path: Path, clock: Clock
) -> None:
    impostor = Authority.init(tmp_path / "impostor", "KH", now=START)
    publish(impostor)
    client = client_for(authority, tmp_path, clock, source=str(impostor.published_path))
    with pytest.raises(FailedPrecondition, match="not by the configuration anchor"):
        client.load_initial()


def test_http_source_round_trip_and_expiry_while_the_authority_is_down(
    authority: Authority, tmp_path: Path, clock: Clock
) -> None:
    server = authority.serve("127.0.0.1", 0)
    try:
        client = client_for(authority, tmp_path, clock, source=server.url)
        with pytest.raises(FailedPrecondition, match="answered HTTP 404"):
            client.load_initial()
        publish(authority, hours=2)
        assert client.load_initial().version == 1
        reached = client.last_reached
    finally:
        server.stop()
    # The authority is down: the held configuration keeps serving until it expires.
    clock.advance(hours=1)
    with pytest.raises(Unavailable, match="cannot reach the federation authority"):
        client.refresh()
    assert client.current().version == 1
    clock.advance(hours=1)
    with pytest.raises(Unavailable) as failure:
        client.current()
    assert reached is not None
    assert failure.value.message == (
        f"global configuration version 1 expired at {(START + dt.timedelta(hours=2)).isoformat()};"
        f" the authority at {server.url} was last reached at {reached.isoformat()}"
    )


def test_an_expired_configuration_at_the_source_is_refused(
    authority: Authority, tmp_path: Path, clock: Clock
) -> None:
    publish(authority, hours=1)
    clock.advance(hours=2)
    client = client_for(authority, tmp_path, clock)
    with pytest.raises(GlobalConfigurationExpired):
        client.refresh()


def test_file_url_source(authority: Authority, tmp_path: Path, clock: Clock) -> None:
    publish(authority)
    url = authority.published_path.resolve().as_uri()
    assert client_for(authority, tmp_path, clock, source=url).load_initial().version == 1


def test_unknown_source_scheme_is_refused(
    authority: Authority, tmp_path: Path, clock: Clock
) -> None:
    with pytest.raises(FailedPrecondition, match="use a file path, file://, http:// or https://"):
        client_for(authority, tmp_path, clock, source="ftp://authority/globalconf")


def test_a_failing_subscriber_does_not_stop_the_swap(
    authority: Authority, tmp_path: Path, clock: Clock, logs: list[MutableMapping[str, Any]]
) -> None:
    publish(authority)
    client = client_for(authority, tmp_path, clock)
    client.load_initial()

    def broken(conf: GlobalConfiguration) -> None:
        raise RuntimeError("subscriber bug")

    seen: list[int] = []
    client.subscribe(broken)
    unsubscribe = client.subscribe(lambda conf: seen.append(conf.version))
    publish(authority)
    assert client.refresh() is True
    assert seen == [2]
    assert any(log["event"] == "globalconf.subscriber_failed" for log in logs)
    unsubscribe()
    publish(authority)
    client.refresh()
    assert seen == [2]


def test_background_refresh_picks_up_a_publication_and_stops(
    authority: Authority, tmp_path: Path, clock: Clock
) -> None:
    publish(authority)
    client = GlobalConfigurationClient(
        source=str(authority.published_path),
        anchor=authority.signing_certificate,
        cache_path=tmp_path / "cache.signed",
        refresh_seconds=0.02,
        clock=clock,
    )
    client.load_initial()
    swapped = threading.Event()
    client.subscribe(lambda conf: swapped.set())
    client.start()
    try:
        publish(authority)
        assert swapped.wait(5), "the refresh thread did not pick up version 2"
        assert client.current().version == 2
    finally:
        client.stop()
    threads = [t for t in threading.enumerate() if t.name == "spean-globalconf-refresh"]
    assert threads == []
    publish(authority)
    time.sleep(0.1)
    assert client.current().version == 2  # stopped: no more refreshes


def test_background_refresh_survives_a_source_outage(
    authority: Authority, tmp_path: Path, clock: Clock, logs: list[MutableMapping[str, Any]]
) -> None:
    publish(authority)
    source = tmp_path / "mirror.signed"
    shutil.copyfile(authority.published_path, source)
    client = client_for(authority, tmp_path, clock, source=str(source))
    client._refresh_seconds = 0.02
    client.load_initial()
    source.unlink()
    client.start()
    try:
        deadline = time.monotonic() + 5
        while not any(log["event"] == "globalconf.refresh_failed" for log in logs):
            assert time.monotonic() < deadline, "no refresh failure was logged"
            time.sleep(0.01)
        shutil.copyfile(authority.publish(now=START), source)
        while client.current().version != 2:
            assert time.monotonic() < deadline, "the refresh thread stopped after a failure"
            time.sleep(0.01)
    finally:
        client.stop()
