"""Prometheus metrics of one security server (docs/metrics.md documents each one).

`ServerMetrics` owns a private `CollectorRegistry`: several security servers
may run in one process (tests, the demo), and each must expose only its own
numbers. It is fed from two places only:

- `spean.gateway.server.exchange.finish`, where every exchange ends on either side,
  through the `ExchangeObserver` methods `audit_started` and
  `exchange_finished` (exchanges, latency, audit append, adapter calls);
- collect-time callbacks for state that is read, not counted: the global
  configuration (kept current by subscribing to the configuration client),
  the certificates in use and the adapters' connection pools.

Invariants: metrics never hold bodies, tokens, users or purposes; label values
are identifiers, method paths and status names. The number of distinct
(client, service, method) label sets is bounded (`MAX_SERIES`): past it, new
combinations are counted under ``(other)``, so a peer sending made-up method
names cannot grow the process's memory without limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from wsgiref.simple_server import WSGIServer

import structlog
from cryptography import x509
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from spean.adapters.base import PoolStatus
from spean.gateway.audit.record import Side
from spean.gateway.config import MetricsConfig, split_address
from spean.gateway.errors import ConfigError
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.server.exchange_log import ExchangeLog

log = structlog.get_logger("spean.metrics")

MAX_SERIES = 5000
OTHER = "(other)"

# Exchanges span sub-millisecond refusals to multi-second streams.
_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
_AUDIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)


class ServerMetrics:
    """The metrics of one security server process, and their HTTP endpoint."""

    def __init__(
        self,
        *,
        server_id: str,
        origin: str,
        certificates: Callable[[], Mapping[str, x509.Certificate]],
        clock: Callable[[], float] = time.time,
        pools: Callable[[], Mapping[str, PoolStatus]] = dict,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._series: set[tuple[str, str, str]] = set()
        self._http: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        registry = self.registry
        self.exchanges = Counter(
            "spean_exchanges",
            "Exchanges ended, by side, client subsystem, provider subsystem, method and status.",
            ["side", "client", "service", "method", "status"],
            registry=registry,
        )
        self.exchange_seconds = Histogram(
            "spean_exchange_duration_seconds",
            "Time from receiving a call to its audited answer, per side (hop).",
            ["side"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.audit_seconds = Histogram(
            "spean_audit_append_duration_seconds",
            "Time for an audit record to become durable (group commit included).",
            buckets=_AUDIT_BUCKETS,
            registry=registry,
        )
        self.audit_in_flight = Gauge(
            "spean_audit_appends_in_flight",
            "Audit records waiting to become durable (the audit queue depth).",
            registry=registry,
        )
        self.audit_failures = Counter(
            "spean_audit_append_failures",
            "Audit appends that failed; each refused its exchange with UNAVAILABLE.",
            registry=registry,
        )
        self.adapter_calls = Counter(
            "spean_adapter_calls",
            "Adapter calls on the provider side, by provider subsystem, method and status.",
            ["service", "method", "status"],
            registry=registry,
        )
        self.adapter_seconds = Histogram(
            "spean_adapter_duration_seconds",
            "Time spent in the adapter (first byte asked to last message), per subsystem.",
            ["service"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._state = _StateCollector(server_id, origin, certificates, clock, pools)
        registry.register(self._state)

    # -- ExchangeObserver (called from spean.gateway.server.exchange.finish) ----------

    def audit_started(self) -> None:
        self.audit_in_flight.inc()

    def exchange_finished(self, ex: ExchangeLog, audit_seconds: float, audit_ok: bool) -> None:
        self.audit_in_flight.dec()
        self.audit_seconds.observe(audit_seconds)
        if not audit_ok:
            self.audit_failures.inc()
        client, service, method = self._bounded(ex.client, ex.service, ex.method)
        side = ex.side.value.lower()
        status = ex.code.name
        self.exchanges.labels(side, client, service, method, status).inc()
        self.exchange_seconds.labels(side).observe(time.monotonic() - ex.received_monotonic)
        if ex.side is Side.PROVIDER and ex.forwarded_ns:
            # forwarded_ns is set on the provider just before the adapter is called.
            self.adapter_calls.labels(service, method, status).inc()
            seconds = max(ex.answered_ns - ex.forwarded_ns, 0) / 1e9
            self.adapter_seconds.labels(service).observe(seconds)

    def _bounded(self, client: str, service: str, method: str) -> tuple[str, str, str]:
        key = (client, service, method)
        with self._lock:
            if key in self._series:
                return key
            if len(self._series) < MAX_SERIES:
                self._series.add(key)
                return key
        return (OTHER, OTHER, OTHER)

    # -- state read at scrape time -------------------------------------------

    def configuration_changed(self, conf: GlobalConfiguration) -> None:
        """Subscriber of the global configuration client: remember the held version."""
        self._state.conf = conf

    # -- the HTTP endpoint ---------------------------------------------------

    def serve(self, config: MetricsConfig) -> int:
        """Serve /metrics on `config.listen`; returns the bound port."""
        host, port = split_address(config.listen)
        try:
            self._http, self._thread = start_http_server(port, host, registry=self.registry)
        except OSError as exc:
            raise ConfigError(
                f"metrics.listen: cannot listen on {config.listen}: {exc.strerror or exc}"
            ) from None
        bound = int(self._http.server_port)
        log.info("metrics.listening", address=f"{host}:{bound}")
        return bound

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class _StateCollector(Collector):
    """Gauges computed at scrape time: configuration freshness, certificate expiry."""

    def __init__(
        self,
        server_id: str,
        origin: str,
        certificates: Callable[[], Mapping[str, x509.Certificate]],
        clock: Callable[[], float],
        pools: Callable[[], Mapping[str, PoolStatus]],
    ) -> None:
        self._server_id = server_id
        self._origin = origin
        self._certificates = certificates
        self._clock = clock
        self._pools = pools
        self.conf: GlobalConfiguration | None = None

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        info = GaugeMetricFamily(
            "spean_server_info", "This security server: always 1.", labels=["server", "origin"]
        )
        info.add_metric([self._server_id, self._origin], 1)
        yield info
        conf = self.conf
        if conf is not None:
            yield GaugeMetricFamily(
                "spean_globalconf_version",
                "Version of the global configuration held.",
                value=conf.version,
            )
            yield GaugeMetricFamily(
                "spean_globalconf_age_seconds",
                "Seconds since the authority signed the held global configuration.",
                value=now - conf.issued_at.timestamp(),
            )
            yield GaugeMetricFamily(
                "spean_globalconf_expires_in_seconds",
                "Seconds until the held global configuration expires (negative: expired).",
                value=conf.expires_at.timestamp() - now,
            )
        expiry = GaugeMetricFamily(
            "spean_certificate_expiry_days",
            "Days until a certificate in use expires (negative: expired).",
            labels=["certificate"],
        )
        for name, cert in sorted(self._certificates().items()):
            expiry.add_metric([name], (cert.not_valid_after_utc.timestamp() - now) / 86400)
        yield expiry
        yield from _pool_gauges(self._pools())


def _pool_gauges(pools: Mapping[str, PoolStatus]) -> Iterator[Metric]:
    """Adapter connection pools, by provider subsystem (adapters without a pool are absent)."""
    checked_out = GaugeMetricFamily(
        "spean_adapter_pool_checked_out",
        "Connections of an adapter's pool lent to calls in progress.",
        labels=["service"],
    )
    size = GaugeMetricFamily(
        "spean_adapter_pool_size",
        "Connections an adapter's pool keeps open.",
        labels=["service"],
    )
    limit = GaugeMetricFamily(
        "spean_adapter_pool_limit",
        "Most connections an adapter's pool lends at once (size plus overflow);"
        " calls wait beyond it.",
        labels=["service"],
    )
    for service, status in sorted(pools.items()):
        checked_out.add_metric([service], status.checked_out)
        size.add_metric([service], status.size)
        limit.add_metric([service], status.limit)
    yield checked_out
    yield size
    yield limit
