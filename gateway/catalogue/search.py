"""Catalogue search: the query, the indexed documents and the text both backends index (pure).

Both search backends (`index.py`: SQLite FTS5, PostgreSQL full text) index
the same two texts per service and compile the same query, so a search
answers alike on either:

- *English* (and any script written with spaces) is handed to the engine's
  own tokenizer and stemmer (FTS5 ``porter unicode61``, PostgreSQL
  ``english``); each query word matches as a prefix, so "vehic" finds
  "vehicles".
- *Khmer* is written without spaces between words, so no word tokenizer
  finds a word inside a run of Khmer letters. Each run is indexed as its
  overlapping pairs of code points (character bigrams), each spelled as an
  ASCII token (``km`` and the two code points in decimal) that every
  tokenizer keeps whole and no stemmer changes; a Khmer query run must match
  as a phrase of its bigrams, i.e. as a substring of the indexed text. A
  one-letter run matches any bigram it starts.

Every query word must match (AND). Filters (member, topic, data class)
narrow the results; an empty text lists the filtered services in catalogue
order. A query is capped (`MAX_QUERY_LENGTH`, `MAX_TERMS`, `MAX_LIMIT`) so
that no request makes the engine do unbounded work.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from spean.gateway.catalogue.model import Catalogue, ServiceEntry
from spean.gateway.catalogue_metadata import DATA_CLASSES, TOPIC
from spean.gateway.errors import InvalidArgument

MAX_QUERY_LENGTH = 200
MAX_TERMS = 12
MAX_LIMIT = 100

_KHMER = "\u1780-\u17ff\u19e0-\u19ff"
_RUN = re.compile(rf"[{_KHMER}]+|[^\W{_KHMER}]+", re.UNICODE)
_KHMER_RUN = re.compile(rf"[{_KHMER}]+")


@dataclass(frozen=True, slots=True)
class SearchQuery:
    text: str = ""
    member: str | None = None
    topic: str | None = None
    data_class: str | None = None
    limit: int = 20
    offset: int = 0

    def __post_init__(self) -> None:
        if len(self.text) > MAX_QUERY_LENGTH:
            raise InvalidArgument(f"the search text is longer than {MAX_QUERY_LENGTH} characters")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidArgument(f"limit must be between 1 and {MAX_LIMIT}, got {self.limit}")
        if self.offset < 0:
            raise InvalidArgument(f"offset must not be negative, got {self.offset}")
        if self.data_class is not None and self.data_class not in DATA_CLASSES:
            raise InvalidArgument(
                f"data class {self.data_class!r} is not one of {', '.join(DATA_CLASSES)}"
            )
        if self.topic is not None and not TOPIC.fullmatch(self.topic):
            raise InvalidArgument(f"topic {self.topic!r} is not a topic code")
        if len(terms(self.text)) > MAX_TERMS:
            raise InvalidArgument(f"the search text has more than {MAX_TERMS} words")


@dataclass(frozen=True, slots=True)
class Term:
    """One query word: English (matched as a prefix) or a Khmer run (its bigram tokens)."""

    khmer: bool
    tokens: tuple[str, ...]  # one lower-case word, or the run's bigram tokens


@dataclass(frozen=True, slots=True)
class SearchDocument:
    """What an index holds for one service."""

    position: int  # order in the catalogue, for listing without a text
    service_id: str
    member: str
    data_class: str | None
    topics: tuple[str, ...]
    english: str
    khmer: str  # bigram tokens, space-separated


@dataclass(frozen=True, slots=True)
class SearchResults:
    total: int
    service_ids: tuple[str, ...]


def khmer_tokens(run: str) -> tuple[str, ...]:
    """A run of Khmer letters as ASCII bigram tokens (one unigram token if one letter)."""
    codes = [ord(c) for c in run]
    if len(codes) == 1:
        return (f"km{codes[0]:04d}",)
    return tuple(f"km{a:04d}{b:04d}" for a, b in itertools.pairwise(codes))


def split_text(text: str) -> tuple[str, str]:
    """(the non-Khmer text, the Khmer runs as bigram tokens) of `text`."""
    khmer = " ".join(t for run in _KHMER_RUN.findall(text) for t in khmer_tokens(run))
    return _KHMER_RUN.sub(" ", text), khmer


def terms(text: str) -> tuple[Term, ...]:
    """The query's words, in order; punctuation and operators are dropped."""
    out = []
    for run in _RUN.findall(text):
        if _KHMER_RUN.fullmatch(run):
            out.append(Term(True, khmer_tokens(run)))
        else:
            out.append(Term(False, (run.lower(),)))
    return tuple(out)


def fts5_match(query_terms: tuple[Term, ...]) -> str:
    """The FTS5 MATCH expression: English prefixes on `english`, Khmer phrases on `khmer`."""
    parts = []
    for term in query_terms:
        if term.khmer and len(term.tokens) == 1 and len(term.tokens[0]) == 6:
            parts.append(f"khmer : {term.tokens[0]}*")
        elif term.khmer:
            parts.append(f'khmer : "{" ".join(term.tokens)}"')
        else:
            # Quoted, so that a word such as NOT or NEAR is a word and not an operator.
            parts.append(f'english : "{term.tokens[0]}"*')
    return " AND ".join(parts)


def postgres_tsquery(term: Term) -> str:
    """One term as `to_tsquery` text (English terms go through the english configuration)."""
    if term.khmer and len(term.tokens) == 1 and len(term.tokens[0]) == 6:
        return f"{term.tokens[0]}:*"
    if term.khmer:
        return " <-> ".join(term.tokens)
    word = re.sub(r"[^\w]", "", term.tokens[0])
    return f"{word}:*" if word else ""


def documents(catalogue: Catalogue) -> list[SearchDocument]:
    """Every service of `catalogue` as a search document, in catalogue order."""
    return [_document(n, service) for n, service in enumerate(catalogue.services)]


def _document(position: int, service: ServiceEntry) -> SearchDocument:
    meta = service.metadata
    texts = [
        service.title.en,
        service.title.km,
        service.method_name,
        service.path,
        service.subsystem,
        service.subsystem_name,
        service.member_name,
        service.comment,
    ]
    if meta is not None:
        texts += [meta.title.en, meta.title.km, meta.description.en, meta.description.km]
        texts += list(meta.topics)
    # Splitting "GetVehicle" gives "Get Vehicle", so "vehicle" finds the method by name.
    texts.append(re.sub(r"(?<=[a-z])(?=[A-Z])", " ", service.method_name))
    english, khmer = split_text("\n".join(t for t in texts if t))
    return SearchDocument(
        position=position,
        service_id=service.id,
        member=service.member,
        data_class=meta.data_class if meta is not None else None,
        topics=meta.topics if meta is not None else (),
        english=english,
        khmer=khmer,
    )
