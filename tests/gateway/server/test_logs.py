"""Logging follows sys.stderr as it is at write time, not when configured."""

from __future__ import annotations

import io
import json
import sys

import pytest
import structlog

from spean.gateway.server.logs import configure_logging


def test_json_events_go_to_the_current_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging("json")
    try:
        first, second = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "stderr", first)
        structlog.get_logger("t").info("exchange.completed", status="OK")
        monkeypatch.setattr(sys, "stderr", second)
        structlog.get_logger("t").info("exchange.completed", status="NOT_FOUND")
    finally:
        structlog.reset_defaults()
    assert json.loads(first.getvalue())["status"] == "OK"
    event = json.loads(second.getvalue())
    assert event["event"] == "exchange.completed"
    assert event["status"] == "NOT_FOUND"


class _Writes(io.StringIO):
    """Records every `write` call: what one process would hand the kernel unbuffered."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return super().write(text)


def test_each_event_is_one_write_with_its_newline(monkeypatch: pytest.MonkeyPatch) -> None:
    # Worker processes share one stderr file; an event split over two writes
    # (event, then newline) interleaves with another process's event.
    configure_logging("json")
    try:
        stderr = _Writes()
        monkeypatch.setattr(sys, "stderr", stderr)
        structlog.get_logger("t").info("exchange.completed", status="OK")
        structlog.get_logger("u").warning("server.reload_failed", error="not valid YAML")
    finally:
        structlog.reset_defaults()
    assert len(stderr.calls) == 2
    assert all(call.endswith("\n") and call.count("\n") == 1 for call in stderr.calls)
    assert [json.loads(call)["event"] for call in stderr.calls] == [
        "exchange.completed",
        "server.reload_failed",
    ]
