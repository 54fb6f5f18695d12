"""Time windows and series for the traffic charts."""

from __future__ import annotations

import pytest

from spean.gateway.errors import InvalidArgument
from spean.gateway.management.statistics import WINDOWS, Count, series, totals, window

NS = 1_000_000_000
HOUR = 3600 * NS
NOW = 1_790_000_000 * NS + 1234


def test_every_window_has_a_bounded_number_of_aligned_buckets() -> None:
    for name in WINDOWS:
        win = window(name, NOW)
        assert 12 <= win.buckets <= 30
        assert win.since_ns % win.bucket_ns == 0
        assert win.since_ns < NOW < win.until_ns


def test_an_unknown_window_names_the_known_ones() -> None:
    with pytest.raises(InvalidArgument, match="1h, 6h, 24h, 7d, 30d"):
        window("1y", NOW)


def test_series_are_zero_filled_and_count_errors() -> None:
    win = window("24h", NOW)
    last = win.until_ns - win.bucket_ns
    counts = [
        Count(last, "KH/GOV/MPWT/vehicles", "KH/GOV/MOH/nhis", "OK", 5),
        Count(last, "KH/GOV/MPWT/vehicles", "KH/GOV/MOH/nhis", "PERMISSION_DENIED", 2),
        Count(win.since_ns, "KH/GOV/MPWT/vehicles", "KH/GOV/MOI/idreg", "OK", 1),
        Count(win.since_ns - HOUR, "KH/GOV/MPWT/vehicles", "KH/GOV/MOH/nhis", "OK", 99),
    ]
    (vehicles,) = series(counts, win)
    assert len(vehicles.calls) == 24
    assert (vehicles.calls[0], vehicles.calls[-1], sum(vehicles.calls)) == (1, 7, 8)
    assert (vehicles.errors[-1], sum(vehicles.errors)) == (2, 2)


def test_totals_per_service_and_client_with_their_error_rate() -> None:
    counts = [
        Count(0, "S", "A", "OK", 3),
        Count(1, "S", "A", "UNAVAILABLE", 1),
        Count(0, "S", "B", "OK", 2),
    ]
    a, b = totals(counts)
    assert (a.client, a.calls, a.errors, a.error_rate) == ("A", 4, 1, 0.25)
    assert dict(a.by_status) == {"OK": 3, "UNAVAILABLE": 1}
    assert (b.client, b.error_rate) == ("B", 0.0)
