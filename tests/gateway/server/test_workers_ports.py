"""`check_ports_free`: a listener on the port is refused, a dead server's TIME_WAIT is not."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from spean.gateway.demo.ministries import MPWT, build_demo
from spean.gateway.errors import ConfigError
from spean.gateway.files.config import load_config
from spean.gateway.server.workers import check_ports_free


def leave_time_wait_on(port: int) -> None:
    """Accept one loopback connection on `port` and close it server side first.

    The side that closes first keeps the connection in TIME_WAIT for a
    minute, as a SIGKILLed server's sockets do after the kernel closes them.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()
        client.recv(1)  # wait for the server's FIN before closing this side
        client.close()
    # The situation the probe must tolerate: a plain bind is refused.
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as plain,
        pytest.raises(OSError, match="Address already in use"),
    ):
        plain.bind(("127.0.0.1", port))


def test_a_port_in_time_wait_counts_as_free(tmp_path: Path) -> None:
    federation = build_demo(tmp_path / "federation")
    config = load_config(federation.configs[MPWT])
    assert config.provider is not None
    port = int(config.provider.listen.rsplit(":", 1)[1])
    leave_time_wait_on(port)
    check_ports_free(config)  # raises ConfigError without SO_REUSEADDR on the probe


def test_a_listening_port_is_refused(tmp_path: Path) -> None:
    federation = build_demo(tmp_path / "federation")
    config = load_config(federation.configs[MPWT])
    assert config.provider is not None
    port = int(config.provider.listen.rsplit(":", 1)[1])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as grpc does
        listener.bind(("127.0.0.1", port))
        listener.listen()
        with pytest.raises(ConfigError, match=r"provider\.listen .*already running"):
            check_ports_free(config)
