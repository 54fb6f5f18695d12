"""ServerMetrics fed directly, as exchange.finish feeds it; read from its own registry."""

from __future__ import annotations

import datetime as dt

import grpc
from cryptography import x509

from spean.gateway import pki
from spean.gateway.audit.record import Side
from spean.gateway.server.exchange_log import ExchangeLog
from spean.gateway.server.metrics import MAX_SERIES, OTHER, ServerMetrics

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def _certificate(days: int) -> x509.Certificate:
    return pki.create_ca(
        pki.generate_key("ec-p256"), "KH", now=NOW, validity=dt.timedelta(days=days)
    )


def _metrics(certificates: dict[str, x509.Certificate] | None = None) -> ServerMetrics:
    return ServerMetrics(
        server_id="KH/GOV/MOH/ss1",
        origin="KH/GOV/MOH/ss1#w0",
        certificates=lambda: certificates or {},
        clock=NOW.timestamp,
    )


def _exchange(
    side: Side, method: str = "/a.B/C", code: grpc.StatusCode = grpc.StatusCode.OK
) -> ExchangeLog:
    ex = ExchangeLog(side, "id", method, b"")
    ex.client, ex.service, ex.code = "KH/GOV/MOH/nhis", "KH/GOV/MPWT/vehicles", code
    return ex


def test_an_exchange_is_counted_with_its_labels() -> None:
    metrics = _metrics()
    metrics.audit_started()
    assert metrics.registry.get_sample_value("spean_audit_appends_in_flight") == 1
    metrics.exchange_finished(_exchange(Side.CONSUMER, code=grpc.StatusCode.NOT_FOUND), 0.002, True)
    labels = {
        "side": "consumer", "client": "KH/GOV/MOH/nhis", "service": "KH/GOV/MPWT/vehicles",
        "method": "/a.B/C", "status": "NOT_FOUND",
    }  # fmt: skip
    assert metrics.registry.get_sample_value("spean_exchanges_total", labels) == 1
    assert metrics.registry.get_sample_value("spean_audit_appends_in_flight") == 0
    assert metrics.registry.get_sample_value("spean_audit_append_duration_seconds_sum") == 0.002
    # A consumer hop calls no adapter.
    assert metrics.registry.get_sample_value("spean_adapter_calls_total", {}) is None


def test_a_failed_audit_append_is_counted() -> None:
    metrics = _metrics()
    metrics.audit_started()
    metrics.exchange_finished(
        _exchange(Side.PROVIDER, code=grpc.StatusCode.UNAVAILABLE), 0.1, False
    )
    assert metrics.registry.get_sample_value("spean_audit_append_failures_total") == 1


def test_made_up_methods_cannot_grow_the_series_without_bound() -> None:
    metrics = _metrics()
    for index in range(MAX_SERIES + 10):
        metrics.audit_started()
        metrics.exchange_finished(_exchange(Side.PROVIDER, f"/junk.S/M{index}"), 0.0, True)
    other = {
        "side": "provider", "client": OTHER, "service": OTHER, "method": OTHER, "status": "OK"
    }  # fmt: skip
    assert metrics.registry.get_sample_value("spean_exchanges_total", other) == 10


def test_certificate_expiry_is_in_days() -> None:
    metrics = _metrics({"tls": _certificate(30)})
    days = metrics.registry.get_sample_value(
        "spean_certificate_expiry_days", {"certificate": "tls"}
    )
    assert days is not None
    assert abs(days - 30) < 0.01
    # No global configuration seen yet: no version is made up.
    assert metrics.registry.get_sample_value("spean_globalconf_version") is None
