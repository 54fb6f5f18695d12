"""Watching a running security server: its Prometheus endpoint and its spans.

`scrape` reads a server's metrics endpoint into ``{(name, labels): value}``;
`value` picks one sample (0 when absent). `recording_spans` installs an
in-memory exporter on the process's tracer provider (an SDK provider is set
first if there is none), the way an application configures OpenTelemetry.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from spean.gateway.demo.federation import Federation

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(federation: Federation, member: str) -> Samples:
    port = federation.servers[member].metrics_port
    assert port is not None, f"{member}'s server has no metrics endpoint"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def recording_spans() -> Iterator[InMemorySpanExporter]:
    """An in-memory exporter of every span this process ends, until the generator closes."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()
