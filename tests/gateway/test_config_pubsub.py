"""The pubsub section of a server configuration: errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spean.gateway.config import parse_config
from spean.gateway.errors import ConfigError
from tests.gateway.test_config import good


def with_pubsub(**section: Any) -> dict[str, Any]:
    return {**good(), "pubsub": {"store": "state/events.db", **section}}


def errors_of(document: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(document, Path("/etc/spean/server.yaml"))
    return info.value.message


def test_a_provider_grants_topics_and_a_consumer_subscribes() -> None:
    config = parse_config(
        with_pubsub(
            access=[
                {
                    "client": "KH/GOV/MOH/nhis",
                    "service": "KH/GOV/MPWT/vehicles",
                    "topics": ["ownership-transferred", "*"],
                }
            ],
            subscriptions=[
                {
                    "client": "KH/GOV/MPWT/portal",
                    "topic": "KH/GOV/MOI/population:citizen-address-changed",
                }
            ],
            delivery={"max_attempts": 5},
        ),
        Path("/etc/spean/server.yaml"),
    )
    assert config.pubsub is not None
    assert config.pubsub.delivery.max_attempts == 5
    assert config.pubsub.delivery.initial_backoff_ms == 500


@pytest.mark.parametrize(
    ("section", "words"),
    [
        (
            {
                "access": [
                    {
                        "client": "KH/GOV/MOH/nhis",
                        "service": "KH/GOV/MPWT/vehicles",
                        "topics": ["Bad"],
                    }
                ]
            },
            "pubsub.access[0].topics[0]: topic name 'Bad'",
        ),
        (
            {"access": [{"client": "KH/GOV/MOH/nhis", "service": "KH/GOV/MOI/x", "topics": ["*"]}]},
            "subsystem KH/GOV/MOI/x does not belong to KH/GOV/MPWT",
        ),
        (
            {"subscriptions": [{"client": "KH/GOV/MPWT/portal", "topic": "KH/GOV/MOI/population"}]},
            "must be SUBSYSTEM:NAME",
        ),
        (
            {"subscriptions": [{"client": "KH/GOV/MPWT/vehicles", "topic": "KH/GOV/MOI/p:t"}]},
            "must be one of consumer.clients",
        ),
        (
            {"delivery": {"initial_backoff_ms": 5000, "max_backoff_ms": 100}},
            "initial_backoff_ms must not exceed max_backoff_ms",
        ),
    ],
)
def test_a_bad_pubsub_section_is_refused_naming_the_field(
    section: dict[str, Any], words: str
) -> None:
    assert words in errors_of(with_pubsub(**section))


def test_subscriptions_need_a_provider_endpoint_to_receive_on() -> None:
    document = with_pubsub(
        subscriptions=[{"client": "KH/GOV/MPWT/portal", "topic": "KH/GOV/MOI/p:t"}]
    )
    del document["provider"]
    assert "need a provider endpoint" in errors_of(document)
