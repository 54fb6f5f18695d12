"""The text both search backends index and the queries they compile: Khmer as bigram tokens,
English as prefixes, and limits on what a query may ask."""

from __future__ import annotations

import pytest

from spean.gateway.catalogue.search import (
    MAX_LIMIT,
    SearchQuery,
    documents,
    fts5_match,
    khmer_tokens,
    postgres_tsquery,
    split_text,
    terms,
)
from spean.gateway.errors import InvalidArgument
from tests.support.catalogue import GET_VEHICLE_SERVICE, DemoFederation, demo_catalogue


def test_a_khmer_word_becomes_its_overlapping_letter_pairs() -> None:
    # ឡាន ("car"): three code points, two pairs, each an ASCII token.
    assert khmer_tokens("ឡាន") == ("km60496070", "km60706035")
    assert khmer_tokens("ក") == ("km6016",)


def test_mixed_text_is_split_into_its_english_and_its_khmer() -> None:
    english, khmer = split_text("Vehicle registry បញ្ជីយានយន្ត (demo)")
    assert english.split() == ["Vehicle", "registry", "(demo)"]
    assert khmer.split() == list(khmer_tokens("បញ្ជីយានយន្ត"))


def test_query_words_drop_punctuation_and_operators() -> None:
    assert [t.tokens for t in terms('vehicles" OR *plate')] == [("vehicles",), ("or",), ("plate",)]
    (khmer,) = terms("យានយន្ត")
    assert khmer.khmer
    assert khmer.tokens == khmer_tokens("យានយន្ត")


def test_the_fts5_expression_quotes_every_word_and_phrases_khmer() -> None:
    # យាន is three letters, two pairs; ក alone matches every pair it starts.
    assert fts5_match(terms("NEAR យាន ក")) == (
        'english : "near"* AND khmer : "km60416070 km60706035" AND khmer : km6016*'
    )


def test_postgres_terms_are_prefixes_and_khmer_phrases() -> None:
    english, khmer = terms("vehicles យាន")
    assert postgres_tsquery(english) == "vehicles:*"
    assert postgres_tsquery(khmer) == " <-> ".join(khmer_tokens("យាន"))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"text": "x" * 201}, "longer than 200"),
        ({"limit": 0}, "limit must be between 1"),
        ({"limit": MAX_LIMIT + 1}, "limit must be between 1"),
        ({"offset": -1}, "offset must not be negative"),
        ({"data_class": "secret"}, "is not one of public, internal, personal"),
        ({"topic": "Health!"}, "is not a topic code"),
        ({"text": " ".join(["w"] * 13)}, "more than 12 words"),
    ],
)
def test_an_unreasonable_query_is_refused(query: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        SearchQuery(**query)  # type: ignore[arg-type]


def test_a_service_document_holds_its_metadata_in_both_languages(
    demo: DemoFederation,
) -> None:
    catalogue = demo_catalogue(demo)
    by_id = {d.service_id: d for d in documents(catalogue)}
    document = by_id[GET_VEHICLE_SERVICE]
    assert (document.member, document.data_class) == ("KH/GOV/MPWT", "personal")
    assert document.topics == ("transport", "vehicles")
    assert "Get Vehicle" in document.english
    assert "Vehicle registry" in document.english
    assert set(khmer_tokens("ស្លាកលេខ")) <= set(document.khmer.split())
    assert [d.position for d in by_id.values()] == list(range(len(catalogue.services)))
