"""One exchange as a security server sees it, and its audit record.

Both sides fill an `ExchangeLog` (exchange_log.py) while they work and turn it into one
`AuditRecord` when the answer is decided. The invariant both sides keep: the
record is appended (durably) *before* the answer's last message and its
status leave the server; if the append fails, the answer becomes UNAVAILABLE
and no held-back message is released (fail closed).

`finish` is the one place where every exchange ends, on both sides; it closes
the hop's trace span and tells the server's `ExchangeObserver` (its metrics),
which the endpoints pass in, so nothing else needs instrumenting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Protocol

import grpc
import structlog

from spean.gateway import metadata
from spean.gateway.audit.store import AuditStore
from spean.gateway.audit.witness import TRAILER as CHECKPOINT_TRAILER
from spean.gateway.errors import AuditError
from spean.gateway.server import tracing
from spean.gateway.server.exchange_log import ExchangeLog

log = structlog.get_logger("spean.exchange")

AUDIT_REFUSAL = "the security server cannot write its audit log; the exchange was refused"


class ExchangeObserver(Protocol):
    """Told about every exchange a server ends (spean.gateway.server.metrics.ServerMetrics)."""

    def audit_started(self) -> None: ...

    def exchange_finished(self, ex: ExchangeLog, audit_seconds: float, audit_ok: bool) -> None: ...


def append_record(
    ex: ExchangeLog, store: AuditStore, origin: str, observer: ExchangeObserver | None
) -> tuple[bool, float]:
    """Append `ex`'s record durably: whether it was written, and the seconds it took.

    A failure is logged here; the caller decides what the exchange becomes,
    then calls `report_finished` with these two values.
    """
    if observer is not None:
        observer.audit_started()
    started = time.perf_counter()
    try:
        store.append(ex.record(origin), bodies=ex.sealed_bodies(origin))
    except AuditError as exc:
        log.error("audit.append_failed", exchange_id=ex.exchange_id, error=exc.message)
        return False, time.perf_counter() - started
    return True, time.perf_counter() - started


def report_finished(
    ex: ExchangeLog, observer: ExchangeObserver | None, audit_seconds: float, audit_ok: bool
) -> None:
    """The one `exchange.completed` event and the observer's count of an ended exchange."""
    # The trace id ties this event to the hop's span, when tracing is on.
    correlation = {"trace_id": trace_id} if (trace_id := tracing.trace_id(ex)) else {}
    log.info(
        "exchange.completed",
        exchange_id=ex.exchange_id,
        side=ex.side.value,
        client=ex.client,
        service=ex.service,
        method=ex.method,
        status=ex.code.name,
        ms=round((time.monotonic() - ex.received_monotonic) * 1000, 3),
        **correlation,
    )
    if observer is not None:
        observer.exchange_finished(ex, audit_seconds, audit_ok)


def finish(
    ex: ExchangeLog,
    store: AuditStore,
    origin: str,
    context: grpc.ServicerContext,
    held_back: bytes | None,
    sign: Callable[[ExchangeLog], str] | None = None,
    observer: ExchangeObserver | None = None,
) -> Iterator[bytes]:
    """Sign, write the record durably, then release the last message and the status.

    `sign` (the provider's) makes the response token over the final status;
    it goes into the record and the trailers. If the record cannot be made
    durable, the answer becomes an unsigned UNAVAILABLE and the held-back
    message is dropped: nothing leaves unlogged. Yields at most one message.
    """
    if sign is not None:
        ex.response_token = sign(ex)
    audit_ok, audit_seconds = append_record(ex, store, origin, observer)
    if not audit_ok:
        ex.code = grpc.StatusCode.UNAVAILABLE
        ex.message = AUDIT_REFUSAL
        held_back = None
        if sign is not None:
            ex.response_token = ""
    trailing: list[tuple[str, str | bytes]] = [(metadata.EXCHANGE_ID, ex.exchange_id)]
    if ex.response_token:
        trailing.append((metadata.RESPONSE_TOKEN, ex.response_token))
        latest = store.latest_checkpoint() if sign is not None else None
        if latest is not None:
            # Cross-witnessing (gateway/audit/witness.py): the provider's latest signed tree head.
            trailing.append((CHECKPOINT_TRAILER, latest.note))
    context.set_trailing_metadata(tuple(trailing))
    tracing.end_hop(ex)
    report_finished(ex, observer, audit_seconds, audit_ok)
    if ex.ok:
        if held_back is not None:
            yield held_back
        return
    context.set_code(ex.code)
    context.set_details(ex.message)


def finish_cancelled(
    ex: ExchangeLog,
    store: AuditStore,
    origin: str,
    context: grpc.ServicerContext,
    reason: str,
    observer: ExchangeObserver | None = None,
) -> None:
    """Record an exchange whose caller went away mid-answer; nothing more is released."""
    ex.code, ex.message = grpc.StatusCode.CANCELLED, reason
    for _ in finish(ex, store, origin, context, None, observer=observer):
        pass
