"""Throw-away event stores on the real NATS JetStream server, and a nats-server of our own.

- `nats_prefix`: a store URL with a prefix of its own (``t<random>``); every
  stream and KV bucket of that prefix is deleted afterwards, so tests never
  see each other's data nor anyone else's on the shared broker.
- `NatsServer`: a `nats-server -js` process on a free loopback port and a
  store folder of its own, that a fault story can SIGKILL and restart on the
  same folder and port (the machine's broker on 4222 is never touched).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nats
import pytest


async def _delete_prefix(url: str, prefix: str) -> None:
    connection = await nats.connect(url, connect_timeout=3, max_reconnect_attempts=1)
    try:
        js = connection.jetstream()
        for info in await js.streams_info():
            name = info.config.name or ""
            if name.startswith((f"{prefix}_", f"KV_{prefix}_")):
                await js.delete_stream(name)
    finally:
        await connection.close()


def stream_names(url: str, prefix: str, *, starting: bool = False) -> list[str]:
    """The streams (KV buckets included) of `prefix` on the broker; with `starting`, of
    every prefix that starts with `prefix`."""
    if starting:
        return [
            name
            for name in stream_names(url, "", starting=False)
            if name.removeprefix("KV_").startswith(prefix)
        ]

    async def names() -> list[str]:
        connection = await nats.connect(url, connect_timeout=3, max_reconnect_attempts=1)
        try:
            infos = await connection.jetstream().streams_info()
        finally:
            await connection.close()
        return sorted(
            name
            for info in infos
            if (name := info.config.name or "").startswith((f"{prefix}_", f"KV_{prefix}_"))
            or not prefix
        )

    return asyncio.run(names())


@contextmanager
def nats_prefix(url: str) -> Iterator[str]:
    """A ``nats://...?prefix=`` store URL of its own, deleted afterwards."""
    prefix = f"t{secrets.token_hex(6)}"
    try:
        yield f"{url}?prefix={prefix}"
    finally:
        asyncio.run(_delete_prefix(url, prefix))


def nats_server_binary() -> str:
    """The nats-server executable (Debian installs it in /usr/sbin), or skip/fail."""
    found = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if os.access("/usr/sbin/nats-server", os.X_OK) else None
    )
    if found is None:
        message = "nats-server is not installed (apt-get install nats-server)"
        if os.environ.get("SPEAN_REQUIRE_DATABASES") == "1":
            pytest.fail(f"{message} and SPEAN_REQUIRE_DATABASES=1 makes it mandatory")
        pytest.skip(message)
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class NatsServer:
    """A nats-server with JetStream on 127.0.0.1, its store in `folder`."""

    def __init__(self, folder: Path) -> None:
        self.binary = nats_server_binary()
        self.folder = folder
        self.port = _free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        log = (self.folder / "server.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-js",
                "-sd",
                str(self.folder / "store"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 20
        while True:
            if self.process.poll() is not None:
                log_text = (self.folder / "server.log").read_text(errors="replace")
                raise AssertionError(f"nats-server exited: {log_text[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                assert time.monotonic() < deadline, "nats-server did not listen in 20 s"
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
