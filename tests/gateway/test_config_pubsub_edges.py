"""The webhook and push settings of the pubsub section: defaults, and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateway.test_config_pubsub import errors_of, with_pubsub

TOPIC = "KH/GOV/MOI/population:citizen-address-changed"
SUBSCRIBED = [{"client": "KH/GOV/MPWT/portal", "topic": TOPIC}]


def push(**entry: Any) -> dict[str, Any]:
    return {
        "client": "KH/GOV/MPWT/portal",
        "topic": TOPIC,
        "url": "https://records.moh.internal/events",
        "secret_file": "keys/push.secret",
        **entry,
    }


def test_defaults_of_a_push_entry_and_a_webhook() -> None:
    from pathlib import Path

    from spean.gateway.config import parse_config

    config = parse_config(
        with_pubsub(
            subscriptions=SUBSCRIBED,
            push=[push()],
            webhook={
                "listen": "127.0.0.1:8443",
                "keys": [{"id": "0123456789ab", "client": "KH/GOV/MPWT/portal"}],
            },
        ),
        Path("/etc/spean/server.yaml"),
    )
    assert config.pubsub is not None
    entry = config.pubsub.push[0]
    assert (entry.format, entry.timeout_ms, entry.initial_backoff_ms) == ("protobuf", 10_000, 500)
    assert config.pubsub.webhook is not None
    assert str(config.pubsub.webhook.api_keys) == "state/webhook-keys.json"


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ({"push": [push()]}, "push[0]: KH/GOV/MPWT/portal does not subscribe to"),
        ({"subscriptions": SUBSCRIBED, "push": [push(), push()]}, "push[1] is listed twice"),
        (
            {"subscriptions": SUBSCRIBED, "push": [push(url="ftp://x")]},
            "push[0].url: must be an http:// or https:// URL",
        ),
        ({"subscriptions": SUBSCRIBED, "push": [push(format="xml")]}, "push[0].format"),
        (
            {"subscriptions": SUBSCRIBED, "push": [push(initial_backoff_ms=9, max_backoff_ms=5)]},
            "initial_backoff_ms must not exceed max_backoff_ms",
        ),
        ({"webhook": {"listen": "10.0.0.5:8443"}}, "plain HTTP is only allowed on loopback"),
        (
            {
                "webhook": {
                    "listen": "127.0.0.1:0",
                    "keys": [{"id": "short", "client": "KH/GOV/MPWT/portal"}],
                }
            },
            "webhook.keys[0].id",
        ),
        (
            {
                "webhook": {
                    "listen": "127.0.0.1:0",
                    "keys": [
                        {"id": "0123456789ab", "client": "KH/GOV/MPWT/portal"},
                        {"id": "0123456789ab", "client": "KH/GOV/MPWT/other"},
                    ],
                }
            },
            "an API key is listed twice",
        ),
    ],
)
def test_a_bad_edge_setting_is_refused_naming_it(section: dict[str, Any], words: str) -> None:
    assert words in errors_of(with_pubsub(**section))
