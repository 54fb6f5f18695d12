"""OpenTelemetry traces: one span per hop and one per adapter call.

A call from a ministry's application crosses up to three spans: the consumer
hop (``spean.consumer``, from the application's call to its audited answer),
the provider hop (``spean.provider``, in the other ministry), and the adapter
call under it. The W3C ``traceparent``/``tracestate`` headers carry the trace
across ministries: the consumer hop continues the application's trace if it
sent one, injects its own context into the call to the provider, and the
provider hop continues from there. So one trace id spans both ministries.

Spans use the OpenTelemetry API only; without configuration the API's
no-op provider makes them free. `configure` installs the SDK with an OTLP
exporter when the server's config has a ``tracing`` section. The tracer
provider is process-wide (an OpenTelemetry rule): the first configured server
of a process sets it; a later different setting is logged and ignored.

Invariant: spans carry identifiers, the method path, the side, the exchange id
and the status, never bodies, tokens, the end user or the purpose.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import structlog
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from spean.gateway.config import TracingConfig
from spean.gateway.errors import SpeanError

if TYPE_CHECKING:
    from spean.gateway.server.exchange_log import ExchangeLog

log = structlog.get_logger("spean.tracing")

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_PROPAGATOR = TraceContextTextMapPropagator()
_tracer = trace.get_tracer("spean")
_lock = threading.Lock()
_configured: TracingConfig | None = None


def configure(config: TracingConfig | None, server_id: str) -> None:
    """Install the SDK and its OTLP exporter for this process, if `config` asks for it."""
    global _configured
    if config is None:
        return
    with _lock:
        if _configured is not None:
            if _configured != config:
                log.warning(
                    "tracing.already_configured",
                    endpoint=_configured.otlp_endpoint,
                    ignored=config.otlp_endpoint,
                    hint="one process exports to one OTLP endpoint",
                )
            return
        # Imported here: the SDK and the exporter are only needed when tracing is on.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        provider = TracerProvider(
            resource=Resource.create(
                {"service.name": config.service_name, "spean.server": server_id}
            ),
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
        )
        provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=config.otlp_endpoint, insecure=config.insecure)
            )
        )
        trace.set_tracer_provider(provider)
        _configured = config
        log.info("tracing.configured", endpoint=config.otlp_endpoint, ratio=config.sample_ratio)


def start_hop(ex: ExchangeLog, invocation_metadata: Iterable[tuple[str, str | bytes]]) -> None:
    """Open the span of this hop, continuing the caller's trace if it sent one."""
    carrier = {
        key: value
        for key, value in invocation_metadata
        if key in (TRACEPARENT, TRACESTATE) and isinstance(value, str)
    }
    parent = _PROPAGATOR.extract(carrier) if carrier else None
    ex.span = _tracer.start_span(
        f"spean.{ex.side.value.lower()} {ex.method}",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={
            "rpc.system": "grpc",
            "rpc.method": ex.method,
            "spean.side": ex.side.value.lower(),
        },
    )


def outgoing_headers(ex: ExchangeLog) -> tuple[tuple[str, str], ...]:
    """``traceparent`` (and ``tracestate``) for the call to the next hop; empty if not traced."""
    if not ex.span.get_span_context().is_valid:
        return ()
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(ex.span))
    return tuple(carrier.items())


def end_hop(ex: ExchangeLog) -> None:
    """Close the hop's span with what the exchange became; idempotent."""
    span = ex.span
    if not span.is_recording():
        return
    span.set_attributes(
        {
            "spean.exchange_id": ex.exchange_id,
            "spean.client": ex.client,
            "spean.service": ex.service,
            "rpc.grpc.status_code": ex.code.value[0],
        }
    )
    if not ex.ok:
        span.set_status(Status(StatusCode.ERROR, ex.code.name))
    span.end()


def trace_id(ex: ExchangeLog) -> str:
    """The hop's trace id in hex, for log correlation; empty if not traced."""
    context = ex.span.get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


@contextlib.contextmanager
def adapter_call(ex: ExchangeLog, adapter: str) -> Iterator[Span]:
    """A child span of the provider hop around the adapter call."""
    span = _tracer.start_span(
        f"spean.adapter {ex.method}",
        context=trace.set_span_in_context(ex.span),
        kind=SpanKind.CLIENT,
        attributes={"rpc.method": ex.method, "spean.adapter": adapter},
    )
    try:
        yield span
    except SpeanError as exc:
        span.set_status(Status(StatusCode.ERROR, exc.code.name))
        raise
    finally:
        span.end()
