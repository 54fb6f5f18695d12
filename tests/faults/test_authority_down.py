"""The federation authority goes down: exchanges go on until the configuration expires.

Both security servers read the signed global configuration from the
authority's HTTP endpoint (`spean authority serve`, its own process). The
authority publishes a version valid for a few seconds, then its process is
killed. Exchanges go on with the held configuration; once it expires every
exchange is refused (fail closed) with UNAVAILABLE and a message naming the
expired version and the unreachable authority. The authority comes back and
publishes a fresh version: the servers pick it up on their next refresh and
exchanges resume, without restarting anything.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import yaml

from spean.gateway.demo.federation import Federation, build_federation, free_port
from spean.gateway.demo.ministries import MOH, MPWT, demo_plans
from spean.gateway.files.keyfiles import load_certificate
from spean.gateway.globalconf import verify_global_configuration
from tests.support.audit_logs import assert_nothing_acknowledged_lost
from tests.support.exchanges import Traffic
from tests.support.servers import REPO, Servers

pytestmark = pytest.mark.slow

SHORT_VALIDITY = dt.timedelta(seconds=6)


class AuthorityProcess:
    """`spean authority serve` in a subprocess, on a fixed port across restarts."""

    def __init__(self, directory: Path, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}/v1/globalconf"
        self._argv = [
            *(sys.executable, "-m", "spean.gateway.cli", "authority", "serve"),
            *("--dir", str(directory), "--port", str(port)),
        ]
        self._log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as out:
            self.proc = subprocess.Popen(
                self._argv, cwd=REPO, stdout=out, stderr=out, start_new_session=True
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self._log.read_text()
            with (
                contextlib.suppress(urllib.error.URLError, ConnectionError),
                urllib.request.urlopen(self.url, timeout=1) as answer,
            ):
                if answer.status == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"the authority does not serve {self.url}:\n{self._log.read_text()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def authority(tmp_path: Path) -> Iterator[Callable[[Federation], AuthorityProcess]]:
    made: list[AuthorityProcess] = []

    def make(federation: Federation) -> AuthorityProcess:
        process = AuthorityProcess(federation.authority.directory, free_port(), tmp_path / "a.log")
        made.append(process)
        return process

    yield make
    for process in made:
        process.kill()


def _use_http_source(config: Path, url: str) -> None:
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    document["global_configuration"]["source"] = url
    document["global_configuration"]["refresh_seconds"] = 0.5
    config.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def _published(federation: Federation) -> tuple[int, dt.datetime]:
    authority = federation.authority
    anchor = load_certificate(authority.directory / "signing.crt")
    conf = verify_global_configuration(
        authority.published_path.read_bytes(), anchor, dt.datetime.now(dt.UTC)
    )
    return conf.version, conf.expires_at


def test_exchanges_go_on_until_the_configuration_expires_then_fail_closed(
    tmp_path: Path,
    servers: Callable[[Federation], Servers],
    authority: Callable[[Federation], AuthorityProcess],
) -> None:
    plans = [plan for plan in demo_plans() if plan.member in (MOH, MPWT)]
    federation = build_federation(tmp_path / "federation", plans)
    central = authority(federation)
    central.start()
    for member in (MOH, MPWT):
        _use_http_source(federation.configs[member], central.url)
    running = servers(federation)
    mpwt = running.start(MPWT)
    moh = running.start(MOH)
    traffic = Traffic(
        federation.consumer_addresses[MOH], threads=3, expect_failures=True, call_timeout=5.0
    )
    try:
        traffic.wait_for_ok(20)
        # A short-lived version, picked up by both servers on their next refresh.
        seen = {p: len(p.events("globalconf.refreshed")) for p in (moh, mpwt)}
        federation.authority.publish(SHORT_VALIDITY)
        version, expires_at = _published(federation)
        for process in (moh, mpwt):
            refreshed = process.wait_for("globalconf.refreshed", seen[process] + 1, timeout=10)
            assert refreshed[-1]["version"] == version
        central.kill()
        # The authority is down; the held configuration still serves.
        traffic.wait_for_ok(20)
        assert traffic.failures() == [], "an exchange failed before the configuration expired"
        assert dt.datetime.now(dt.UTC) < expires_at, "the test was too slow to see this phase"
        # Expired: every exchange is refused with the reason.
        traffic.wait_for_failures(5, timeout=SHORT_VALIDITY.total_seconds() + 10)
        time.sleep(0.5)
        ok_after_expiry = traffic.ok
        traffic.wait_for_failures(5)
        assert traffic.ok == ok_after_expiry, "an exchange passed with an expired configuration"
        refused = traffic.failures()
        assert {code for code, _ in refused} == {grpc.StatusCode.UNAVAILABLE}, refused[:3]
        details = refused[-1][1]
        assert f"global configuration version {version} expired at" in details, details
        assert central.url in details
        # The authority returns and publishes: exchanges resume without a restart.
        central.start()
        federation.authority.publish(dt.timedelta(hours=1))
        traffic.wait_for_ok(20, timeout=30)
    finally:
        outcome = traffic.stop()
    running.stop_all()

    assert_nothing_acknowledged_lost(federation, [MOH, MPWT], outcome.ok_ids, tmp_path / "b")
