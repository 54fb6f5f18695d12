"""SVG charts: accessible, escaped, and drawn to scale."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import pytest

from spean.gateway.web.charts import (
    ERROR_COLOUR,
    GOOD_COLOUR,
    OK_COLOUR,
    WARN_COLOUR,
    Expiry,
    bar_chart,
    expiry_colour,
    expiry_timeline,
)

SVG = "{http://www.w3.org/2000/svg}"
NOW = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)


def _heights(svg: str, colour: str) -> list[float]:
    return [float(h) for h in re.findall(rf'height="([\d.]+)" fill="{colour}"', svg)]


def test_a_bar_chart_is_an_image_with_a_title_a_description_and_escaped_text() -> None:
    svg = bar_chart(
        [4, 0, 2], [1, 0, 2], ["08:00", "09:00", "<10:00>"], "Calls & errors", "7 calls"
    )
    root = ET.fromstring(svg)
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title").text == "Calls & errors"  # type: ignore[union-attr]
    assert root.find(f"{SVG}desc").text == "7 calls"  # type: ignore[union-attr]
    assert "&lt;10:00&gt;" in svg


def test_bars_are_to_scale_with_errors_stacked() -> None:
    svg = bar_chart([4, 2], [1, 2], ["a", "b"], "t", "d")
    ok, errors = _heights(svg, OK_COLOUR), _heights(svg, ERROR_COLOUR)
    assert len(ok) == 1  # the second bucket is all errors
    assert ok[0] == pytest.approx(3 * errors[0])
    assert errors[1] == pytest.approx(2 * errors[0])


def test_mismatched_series_are_refused() -> None:
    with pytest.raises(ValueError, match="one length"):
        bar_chart([1], [], ["a"], "t", "d")


def test_the_expiry_timeline_colours_by_days_left_on_one_scale() -> None:
    svg = expiry_timeline(
        [
            Expiry("TLS", NOW + dt.timedelta(days=20), "20 days left"),
            Expiry("Signing", NOW + dt.timedelta(days=400), "400 days left"),
        ],
        NOW,
        "Expiry",
        "d",
        "today",
    )
    ET.fromstring(svg)
    short = re.search(rf'width="([\d.]+)" height="18" fill="{ERROR_COLOUR}"', svg)
    long = re.search(rf'width="([\d.]+)" height="18" fill="{GOOD_COLOUR}"', svg)
    assert short is not None
    assert long is not None
    assert float(long.group(1)) == pytest.approx(20 * float(short.group(1)))
    assert (expiry_colour(29), expiry_colour(89), expiry_colour(90)) == (
        ERROR_COLOUR,
        WARN_COLOUR,
        GOOD_COLOUR,
    )
