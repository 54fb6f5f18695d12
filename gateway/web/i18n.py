"""The consoles' languages: English and Khmer message catalogues, checked when loaded.

Why catalogues of our own rather than gettext: the consoles have a few
hundred short messages, not a product's worth; a JSON file per language is
what a Khmer translator can read and review without tools, needs no compile
step (.po to .mo) and no extraction pass, and is checked in full when it is
loaded (pydantic): every language has every key of English, and every
message names the same ``{placeholders}`` as its English original, so a
missing or mistyped translation fails the tests, never a page.

`negotiate` picks the language: the ``spean_lang`` cookie (set by the
language switch), else the first supported one in Accept-Language, else
English.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, RootModel, ValidationError

from spean.gateway.errors import ConfigError

LOCALES = ("en", "km")
DEFAULT = "en"
FOLDER = Path(__file__).parent / "locales"
LANGUAGE_NAMES = {"en": "English", "km": "ភាសាខ្មែរ"}


class _Catalogue(RootModel[dict[str, str]]):
    model_config = ConfigDict(frozen=True)


class Catalogues(BaseModel):
    model_config = ConfigDict(frozen=True)
    messages: dict[str, dict[str, str]]


def _placeholders(message: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(message) if name}


def check(catalogues: Mapping[str, Mapping[str, str]]) -> list[str]:
    """What is wrong with `catalogues` against English; empty when nothing is."""
    problems = []
    english = catalogues[DEFAULT]
    for locale, messages in catalogues.items():
        for key in sorted(set(english) - set(messages)):
            problems.append(f"{locale}: {key} is missing")
        for key in sorted(set(messages) - set(english)):
            problems.append(f"{locale}: {key} is not an English key")
        for key in sorted(set(english) & set(messages)):
            if _placeholders(messages[key]) != _placeholders(english[key]):
                problems.append(f"{locale}: {key} must name {sorted(_placeholders(english[key]))}")
    return problems


@cache
def catalogues(folder: Path = FOLDER) -> Catalogues:
    loaded: dict[str, dict[str, str]] = {}
    for locale in LOCALES:
        path = folder / f"{locale}.json"
        try:
            loaded[locale] = _Catalogue.model_validate(json.loads(path.read_text("utf-8"))).root
        except (OSError, ValueError, ValidationError) as exc:
            raise ConfigError(f"{path}: the message catalogue cannot be read: {exc}") from None
    problems = check(loaded)
    if problems:
        raise ConfigError("message catalogues: " + "; ".join(problems))
    return Catalogues(messages=loaded)


class Translator:
    """The messages of one language: `t("key", name=value)`."""

    def __init__(self, locale: str) -> None:
        self.locale = locale if locale in LOCALES else DEFAULT
        self._messages = catalogues().messages[self.locale]

    def __call__(self, key: str, **values: object) -> str:
        return self._messages[key].format(**values)


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LOCALES:
        assert cookie is not None
        return cookie
    ranked = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, position, tag.split("-")[0].lower()))
    for _, _, language in sorted(ranked):
        if language in LOCALES:
            return language
    return DEFAULT
