"""Searching the demo catalogue on both backends, SQLite FTS5 and PostgreSQL full text: the same
answers in English and Khmer, with filters, paging and whole-version replacement."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from spean.gateway.catalogue import index as index_module
from spean.gateway.catalogue.index import SearchIndex, open_index
from spean.gateway.catalogue.search import SearchQuery, documents
from spean.gateway.errors import ConfigError, Unavailable
from tests.support.catalogue import (
    GET_CITIZEN_SERVICE,
    GET_VEHICLE_SERVICE,
    LIST_VEHICLES_SERVICE,
    MONTHLY_REPORT_SERVICE,
    VERIFY_CITIZEN_SERVICE,
    DemoFederation,
    demo_catalogue,
)
from tests.support.databases import postgres_schema


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def index(
    request: pytest.FixtureRequest, tmp_path: Path, demo: DemoFederation
) -> Iterator[SearchIndex]:
    if request.param == "sqlite":
        opened = open_index(f"sqlite:///{tmp_path / 'catalogue.db'}")
        yield from _loaded(opened, demo)
        return
    server = request.getfixturevalue("postgres_url")
    with postgres_schema(server) as url:
        yield from _loaded(open_index(url), demo)


def _loaded(index: SearchIndex, demo: DemoFederation) -> Iterator[SearchIndex]:
    catalogue = demo_catalogue(demo)
    index.replace(catalogue.version, documents(catalogue))
    try:
        yield index
    finally:
        index.close()


def found(index: SearchIndex, text: str = "", **filters: object) -> set[str]:
    return set(index.search(SearchQuery(text, **filters)).service_ids)  # type: ignore[arg-type]


def test_english_words_find_services_by_prefix_and_stem(index: SearchIndex) -> None:
    assert found(index, "vehicles") == {GET_VEHICLE_SERVICE, LIST_VEHICLES_SERVICE}
    assert found(index, "vehic") == {GET_VEHICLE_SERVICE, LIST_VEHICLES_SERVICE}
    assert found(index, "plate") == {GET_VEHICLE_SERVICE, LIST_VEHICLES_SERVICE}
    assert found(index, "verify citizen") == {VERIFY_CITIZEN_SERVICE}
    assert found(index, "vaccinations") == {MONTHLY_REPORT_SERVICE}
    assert found(index, "submarine") == set()


def test_khmer_words_are_found_inside_text_written_without_spaces(index: SearchIndex) -> None:
    # យានយន្ត (vehicle) sits inside បញ្ជីយានយន្ត (vehicle registry) with no space around it.
    assert found(index, "យានយន្ត") == {GET_VEHICLE_SERVICE, LIST_VEHICLES_SERVICE}
    # រកមើល (look up) is only in GetVehicle's own summary.
    assert found(index, "រកមើល") == {GET_VEHICLE_SERVICE}
    # សុខាភិបាល (health) is in the health statistics' metadata only.
    assert found(index, "សុខាភិបាល") == {MONTHLY_REPORT_SERVICE}
    # A Khmer and an English word together must both match.
    assert found(index, "អត្តសញ្ញាណ verify") == {VERIFY_CITIZEN_SERVICE}
    # Letters in another order are another word.
    assert found(index, "យនយាន") == set()


def test_filters_narrow_by_ministry_topic_and_data_class(index: SearchIndex) -> None:
    assert found(index, member="KH/GOV/MOI") == {VERIFY_CITIZEN_SERVICE, GET_CITIZEN_SERVICE}
    assert found(index, topic="health") == {MONTHLY_REPORT_SERVICE}
    assert found(index, data_class="public") == {MONTHLY_REPORT_SERVICE}
    assert found(index, "registry", data_class="personal", member="KH/GOV/MPWT") == {
        GET_VEHICLE_SERVICE,
        LIST_VEHICLES_SERVICE,
    }
    assert found(index, "vehicles", topic="health") == set()


def test_pages_count_every_match_and_hand_out_each_once(index: SearchIndex) -> None:
    first = index.search(SearchQuery("", limit=2))
    rest = index.search(SearchQuery("", limit=2, offset=2))
    last = index.search(SearchQuery("", limit=2, offset=4))
    assert first.total == rest.total == last.total == 5
    listed = first.service_ids + rest.service_ids + last.service_ids
    assert len(set(listed)) == 5
    # Without a text, services come in catalogue order.
    assert first.service_ids[0] == VERIFY_CITIZEN_SERVICE


def test_a_new_version_replaces_the_whole_index(index: SearchIndex, demo: DemoFederation) -> None:
    assert index.version() == demo.conf.version
    catalogue = demo_catalogue(demo)
    only_health = [d for d in documents(catalogue) if d.member == "KH/GOV/MOH"]
    index.replace(demo.conf.version + 1, only_health)
    assert index.version() == demo.conf.version + 1
    assert found(index) == {MONTHLY_REPORT_SERVICE}
    assert found(index, "vehicles") == set()


def test_an_unknown_index_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="use sqlite:///path or postgresql"):
        open_index("mysql+pymysql://root@127.0.0.1/test")
    with pytest.raises(ConfigError, match="schema 'no-way' is not a schema name"):
        open_index("postgresql+psycopg://postgres@127.0.0.1/test?schema=no-way")


def test_an_unreachable_database_is_unavailable_without_its_password() -> None:
    with pytest.raises(Unavailable, match="catalogue index") as info:
        open_index("postgresql+psycopg://spean:secret@127.0.0.1:1/none")
    assert "secret" not in info.value.message


def test_the_in_memory_index_serves_many_threads_while_it_is_replaced(
    demo: DemoFederation,
) -> None:
    index = open_index("sqlite://")
    catalogue = demo_catalogue(demo)
    index.replace(1, documents(catalogue))

    def search(n: int) -> int:
        if n % 10 == 0:
            index.replace(1 + n, documents(catalogue))
        return index.search(SearchQuery("vehicles")).total

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            totals = list(pool.map(search, range(80)))
    finally:
        index.close()
    assert set(totals) == {2}


def test_a_query_matching_very_many_services_lists_them_in_catalogue_order(
    index: SearchIndex, monkeypatch: pytest.MonkeyPatch, demo: DemoFederation
) -> None:
    ranked = index.search(SearchQuery("registry"))
    monkeypatch.setattr(index_module, "RANK_LIMIT", 1)
    listed = index.search(SearchQuery("registry"))
    assert listed.total == ranked.total >= 2
    order = [s.id for s in demo_catalogue(demo).services]
    assert list(listed.service_ids) == sorted(listed.service_ids, key=order.index)
    assert set(listed.service_ids) == set(ranked.service_ids)
