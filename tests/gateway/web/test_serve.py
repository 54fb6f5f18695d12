"""The listener binds before it serves: a port in use fails at once, by name."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import httpx
import pytest

from spean.gateway.errors import ConfigError
from spean.gateway.web.serve import ListenerTls, WebListener


async def _hello(scope: dict[str, object], receive: object, send: object) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"hello"})  # type: ignore[operator]


def test_a_free_port_is_known_before_serving_and_answers() -> None:
    listener = WebListener("127.0.0.1:0", None, name="test-web")
    assert listener.port > 0
    listener.start(_hello)
    try:
        with httpx.Client() as client:
            assert client.get(f"http://127.0.0.1:{listener.port}/").text == "hello"
    finally:
        listener.stop()


def test_a_port_in_use_is_refused_by_name() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=re.escape(f"cannot listen on 127.0.0.1:{port}")):
            WebListener(f"127.0.0.1:{port}", None, name="test-web")


def test_unreadable_tls_files_are_a_configuration_error(tmp_path: Path) -> None:
    tls = ListenerTls(certificate=tmp_path / "missing.crt", key=tmp_path / "missing.key")
    with pytest.raises(ConfigError, match=r"management\.tls: cannot load the TLS files"):
        WebListener("127.0.0.1:0", tls, name="test-web")


def test_an_address_without_a_valid_port_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=re.escape("'127.0.0.1:70000' has an invalid port")):
        WebListener("127.0.0.1:70000", None, name="test-web")


def test_connections_send_at_once() -> None:
    """TCP_NODELAY on the listening socket, which accepted connections inherit: an answer's
    headers and body (two writes) are not held back for the client's delayed ACK."""
    listener = WebListener("127.0.0.1:0", None, name="test-web")
    try:
        assert listener._socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        listener._socket.close()
