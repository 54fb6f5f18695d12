"""The PostgreSQL event store's own behaviour (every engine's contract: test_store_contract.py).

Each test gets a schema of its own on the PostgreSQL server (dropped
afterwards); without the server the tests are skipped, and with
SPEAN_REQUIRE_DATABASES=1 they fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spean.gateway.errors import EventStoreError
from spean.gateway.eventstore.engines import open_event_store
from spean.gateway.eventstore.postgres import PostgresEventStore
from tests.gateway.eventstore.test_sqlite import (
    TOPIC,
    event_id,
    publish,
)
from tests.support.databases import postgres_schema

pytestmark = pytest.mark.postgres


@pytest.fixture
def url(postgres_url: str) -> Iterator[str]:
    with postgres_schema(postgres_url) as schema_url:
        yield schema_url


def test_the_engine_is_chosen_by_the_url_and_survives_reopening(url: str, tmp_path: Path) -> None:
    with open_event_store(url, tmp_path) as store:
        assert isinstance(store, PostgresEventStore)
        assert [publish(store, n) for n in (1, 2, 3)] == [1, 2, 3]
    with PostgresEventStore(url) as store:
        assert store.head(TOPIC) == 3
        stored = store.event(TOPIC, 2)
        assert stored is not None
        assert (stored.event_id, stored.payload) == (event_id(2), b"event 2")


def test_an_unreachable_server_fails_closed_without_showing_the_password() -> None:
    url = "postgresql+psycopg://spean:s3cret@127.0.0.1:1/events?schema=spean_x"
    with pytest.raises(EventStoreError, match=r"127\.0\.0\.1:1") as caught:
        PostgresEventStore(url, connect_timeout_s=2)
    assert "s3cret" not in caught.value.message


def test_one_process_of_a_shared_store_leads_the_deliveries_until_it_goes(url: str) -> None:
    first, second = PostgresEventStore(url), PostgresEventStore(url)
    assert first.leads_delivery()
    assert first.leads_delivery()  # held, not retaken
    assert not second.leads_delivery()
    first.close()  # its session ends: the lease is free
    assert second.leads_delivery()
    second.close()
