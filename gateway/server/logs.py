"""Structured logs: one event per thing that happened, key-value fields.

JSON lines in production (stdout not a terminal), readable colours on a
terminal. Secrets, keys, full tokens and bodies are never logged.
"""

from __future__ import annotations

import io
import logging
import sys
from typing import Literal, TextIO, cast

import structlog


class _CurrentStderr(io.TextIOBase):
    """Writes to whatever `sys.stderr` is now (test runners and daemons swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(
    fmt: Literal["auto", "json", "console"] = "auto", level: int = logging.INFO
) -> None:
    json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # One write per event, newline included: `print` writes the event and
        # its newline separately, and with unbuffered stderr (PYTHONUNBUFFERED,
        # as in the container image) the `--workers` processes sharing the
        # file then interleave their events into unparsable JSON lines.
        logger_factory=structlog.WriteLoggerFactory(file=cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=True,
    )


def log_to_stderr() -> None:
    """Send log events to standard error, whatever else is configured.

    For the command line, whose standard output is a command's result: only
    the destination changes (a server command then sets its format with
    `configure_logging`), and nothing is cached, so a test that captures
    events (`structlog.testing.capture_logs`) still sees them afterwards.
    """
    structlog.configure(
        logger_factory=structlog.WriteLoggerFactory(file=cast(TextIO, _CurrentStderr()))
    )
