"""One exchange as a security server sees it, and its audit record.

Both sides fill an `ExchangeLog` (exchange_log.py) while they work and turn it into one
`AuditRecord` when the answer is decided. The invariant both sides keep: the
record is appended (durably) *before* the answer's last message and its
status leave the server; if the append fails, the answer becomes UNAVAILABLE
and no held-back message is released (fail closed).

`finish_provider` and `finish_consumer` are where every exchange ends (the
provider's signs its answer and attaches its latest checkpoint; the
consumer's passes the provider's token on): they record, then release, and
close the hop's trace span and tell the server's `ExchangeObserver` (its
metrics), which the endpoints pass in, so nothing else needs instrumenting.
A consumer's attempt abandoned for another provider server ends at
`append_record` (recorded, never released: its successor is).
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


def unary_handler(
    exchange: Callable[[bytes, grpc.ServicerContext], Iterator[bytes]],
) -> grpc.RpcMethodHandler[bytes, bytes]:
    """Serve `exchange` as a unary method: the answer, trailers and status leave in one batch.

    The exchange is the same code as for streaming; here it yields at most one
    message, and None (no message) goes with the status the finish set on the
    context (bench/hops.py: ~25 to 30% less CPU than the streaming framing).
    """

    def behaviour(request: bytes, context: grpc.ServicerContext) -> bytes | None:
        answer = None
        for message in exchange(request, context):
            answer = message
        return answer

    return grpc.unary_unary_rpc_method_handler(behaviour)


def append_record(
    ex: ExchangeLog, store: AuditStore, origin: str, observer: ExchangeObserver | None
) -> tuple[bool, float]:
    """Append `ex`'s record durably: whether it was written, and the seconds it took.

    A record written moves `ex` to recorded. A failure is logged here; the
    caller decides what the exchange becomes, then calls `report_finished`
    with these two values.
    """
    if observer is not None:
        observer.audit_started()
    started = time.perf_counter()
    try:
        store.append(ex.record(origin), bodies=ex.sealed_bodies(origin))
    except AuditError as exc:
        log.error("audit.append_failed", exchange_id=ex.exchange_id, error=exc.message)
        return False, time.perf_counter() - started
    ex.recorded()
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


def finish_provider(
    ex: ExchangeLog,
    store: AuditStore,
    origin: str,
    context: grpc.ServicerContext,
    held_back: bytes | None,
    sign: Callable[[ExchangeLog], str] | None,
    observer: ExchangeObserver | None = None,
) -> Iterator[bytes]:
    """Sign, write the record durably, then release the last message and the status.

    `sign` makes the response token over the final status, for an
    established exchange (None before: a refusal at steps 1 to 5 of
    docs/protocol.md 4.2 is unsigned); the token goes into the record and the
    trailers, with the provider's latest signed checkpoint. If the record
    cannot be made durable, the answer becomes an unsigned UNAVAILABLE and the
    held-back message is dropped: nothing leaves unlogged. Yields at most one
    message.
    """
    if sign is not None:
        ex.sign(sign(ex))
    yield from _record_and_release(ex, store, origin, context, held_back, observer, witness=True)


def finish_consumer(
    ex: ExchangeLog,
    store: AuditStore,
    origin: str,
    context: grpc.ServicerContext,
    held_back: bytes | None,
    observer: ExchangeObserver | None = None,
) -> Iterator[bytes]:
    """Write the record durably, then release the last message and the status.

    The provider's response token, when it verified, is passed on to the
    application in the trailers. If the record cannot be made durable, the
    answer becomes UNAVAILABLE and the held-back message is dropped. Yields at
    most one message.
    """
    yield from _record_and_release(ex, store, origin, context, held_back, observer, witness=False)


def _record_and_release(
    ex: ExchangeLog,
    store: AuditStore,
    origin: str,
    context: grpc.ServicerContext,
    held_back: bytes | None,
    observer: ExchangeObserver | None,
    *,
    witness: bool,
) -> Iterator[bytes]:
    audit_ok, audit_seconds = append_record(ex, store, origin, observer)
    if not audit_ok:
        # A provider's token signed the status it no longer gives: it goes.
        ex.unrecorded(AUDIT_REFUSAL, unsign=witness)
        held_back = None
    trailing: list[tuple[str, str | bytes]] = [(metadata.EXCHANGE_ID, ex.exchange_id)]
    if ex.response_token:
        trailing.append((metadata.RESPONSE_TOKEN, ex.response_token))
        latest = store.latest_checkpoint() if witness else None
        if latest is not None:
            # Cross-witnessing (gateway/audit/witness.py): the provider's latest signed tree head.
            trailing.append((CHECKPOINT_TRAILER, latest.note))
    context.set_trailing_metadata(tuple(trailing))
    tracing.end_hop(ex)
    report_finished(ex, observer, audit_seconds, audit_ok)
    ex.released()
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
    ex.cancel(reason)
    for _ in _record_and_release(ex, store, origin, context, None, observer, witness=False):
        pass
