"""Issuing the webhook's API keys: the key in its own store, its entry in server.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from spean.gateway.errors import Unauthenticated
from spean.gateway.files.config import load_config
from spean.gateway.server.pubsub_webhook import key_store, main
from tests.gateway.test_config import good

CLIENT = "KH/GOV/MPWT/portal"


def server_yaml(tmp_path: Path, **extra: object) -> Path:
    document = {
        **good(),
        "pubsub": {"store": "state/events.db", "webhook": {"listen": "127.0.0.1:0"}},
        **extra,
    }
    path = tmp_path / "server.yaml"
    path.write_text("# kept by the IT team\n" + yaml.safe_dump(document, sort_keys=False))
    return path


def test_a_key_is_issued_listed_for_its_client_and_revocable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = server_yaml(tmp_path)
    assert main(["create-key", "--config", str(path), "--client", CLIENT]) == 0
    key = capsys.readouterr().out.splitlines()[0]
    config = load_config(path)
    assert config.pubsub is not None
    assert config.pubsub.webhook is not None
    [entry] = config.pubsub.webhook.keys
    assert (entry.client, key.startswith(f"spk_{entry.id}_")) == (CLIENT, True)
    assert path.read_text().startswith("# kept by the IT team")
    store = key_store(config)
    assert store.authenticate(key).name.startswith(f"api-key:{entry.id}")
    assert main(["revoke-key", "--config", str(path), entry.id]) == 0
    assert "revoked" in capsys.readouterr().out
    with pytest.raises(Unauthenticated, match="was revoked"):
        store.authenticate(key)


def test_a_client_that_is_not_registered_gets_no_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = server_yaml(tmp_path)
    assert main(["create-key", "--config", str(path), "--client", "KH/GOV/MPWT/other"]) == 2
    assert "is not one of consumer.clients" in capsys.readouterr().out
    assert not (tmp_path / "state" / "webhook-keys.json").exists()


def test_the_management_key_store_is_refused_for_the_webhook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = server_yaml(tmp_path, management={"listen": "127.0.0.1:0"})
    document = yaml.safe_load(path.read_text())
    document["pubsub"]["webhook"]["api_keys"] = "state/management-keys.json"
    path.write_text(yaml.safe_dump(document))
    assert main(["create-key", "--config", str(path), "--client", CLIENT]) == 2
    assert "is the management API's key store" in capsys.readouterr().out
