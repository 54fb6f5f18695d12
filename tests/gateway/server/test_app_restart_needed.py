"""Which settings a reload (SIGHUP, the management API) applies, and which need a restart."""

from __future__ import annotations

from typing import Any

import pytest

from spean.gateway.config import ServerConfig
from spean.gateway.demo.ministries import GET_VEHICLE, MOI, MPWT, build_demo
from spean.gateway.files.config import load_config
from spean.gateway.server.app import restart_needed


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ServerConfig]:
    federation = build_demo(tmp_path_factory.mktemp("federation"), events=True)
    return {member: load_config(federation.configs[member]) for member in (MPWT, MOI)}


def _changed(config: ServerConfig, section: str, **update: Any) -> ServerConfig:
    part = getattr(config, section)
    return config.model_copy(update={section: part.model_copy(update=update)})


def test_disabling_a_method_is_applied_by_a_reload(configs: dict[str, ServerConfig]) -> None:
    old = configs[MPWT]
    assert old.provider is not None
    service = old.provider.services[0]
    disabled = service.model_copy(
        update={"disabled": [{"method": GET_VEHICLE, "notice": "maintenance"}]}
    )
    new = _changed(old, "provider", services=[disabled, *old.provider.services[1:]])
    assert restart_needed(old, new) == []


def test_another_adapter_needs_a_restart(configs: dict[str, ServerConfig]) -> None:
    old = configs[MPWT]
    assert old.provider is not None
    service = old.provider.services[0]
    moved = service.model_copy(update={"adapter": {**service.adapter, "type": "other"}})
    new = _changed(old, "provider", services=[moved, *old.provider.services[1:]])
    assert restart_needed(old, new) == ["provider.services"]


def test_event_retention_needs_a_restart(configs: dict[str, ServerConfig]) -> None:
    old = configs[MOI]
    assert old.pubsub is not None
    retention = old.pubsub.retention.model_copy(update={"events_days": 1})
    new = _changed(old, "pubsub", retention=retention)
    assert restart_needed(old, new) == ["pubsub.retention"]
