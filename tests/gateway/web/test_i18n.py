"""English and Khmer: every message in both, the same placeholders, the right language."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spean.gateway.errors import ConfigError
from spean.gateway.web.i18n import FOLDER, Translator, catalogues, check, negotiate


def test_the_shipped_catalogues_are_complete_and_khmer_is_khmer() -> None:
    messages = catalogues().messages
    assert check(messages) == []
    khmer = messages["km"]
    # Every Khmer message but codes and names written in Latin letters holds Khmer script.
    latin_only = {k for k, v in khmer.items() if not any("\u1780" <= c <= "\u17ff" for c in v)}
    assert latin_only <= {"certs.tls"}


def test_a_missing_key_or_a_changed_placeholder_is_named() -> None:
    problems = check(
        {
            "en": {"a": "A {name}", "b": "B"},
            "km": {"a": "ក {nom}", "c": "គ"},
        }
    )
    assert problems == [
        "km: b is missing",
        "km: c is not an English key",
        "km: a must name ['name']",
    ]


def test_a_damaged_catalogue_refuses_to_load(tmp_path: Path) -> None:
    (tmp_path / "en.json").write_text(json.dumps({"a": "A"}))
    (tmp_path / "km.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"km\.json"):
        catalogues(tmp_path)


def test_messages_fill_their_placeholders() -> None:
    assert Translator("km")("certs.days_left", days=42) == "នៅសល់ 42 ថ្ងៃ"
    assert Translator("fr")("certs.days_left", days=1) == "1 days left"  # unknown: English


@pytest.mark.parametrize(
    ("cookie", "accept", "expected"),
    [
        ("km", "en-US,en;q=0.9", "km"),
        (None, "km-KH,km;q=0.9,en;q=0.8", "km"),
        (None, "fr-FR, en;q=0.5, km;q=0.8", "km"),
        (None, "fr-FR", "en"),
        ("xx", None, "en"),
        (None, "km;q=oops, en", "en"),
    ],
)
def test_the_language_is_the_cookie_else_the_browsers_choice(
    cookie: str | None, accept: str | None, expected: str
) -> None:
    assert negotiate(cookie, accept) == expected


def test_the_catalogues_sit_in_the_package() -> None:
    assert (FOLDER / "km.json").is_file()
