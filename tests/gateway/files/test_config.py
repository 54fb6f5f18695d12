"""Writing a server's configuration back: comments kept, validated, atomic, one at a time."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from spean.gateway.config import ServerConfig
from spean.gateway.demo.ministries import MPWT, build_demo
from spean.gateway.errors import ConfigError, FailedPrecondition
from spean.gateway.files.config import edit_config, load_config

NHIS = "KH/GOV/MOH/nhis"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo(tmp_path_factory.mktemp("federation")).configs[MPWT]


@pytest.fixture
def config(demo: Path, tmp_path: Path) -> Path:
    # Relative paths of the demo's file stay valid from its own folder: keep it there.
    path = demo.with_name(f"server-{tmp_path.name}.yaml")
    path.write_text("# kept by the IT team: do not remove\n" + demo.read_text())
    return path


def _set_methods(methods: list[str]) -> Any:
    def edit(document: Any, current: ServerConfig) -> None:
        document["provider"]["access"][0]["methods"] = methods

    return edit


def test_an_edit_keeps_comments_and_every_other_setting(config: Path) -> None:
    before = yaml.safe_load(config.read_text())
    updated = edit_config(config, _set_methods(["*"]))
    assert config.read_text().startswith("# kept by the IT team: do not remove\n")
    after = yaml.safe_load(config.read_text())
    assert after["provider"]["access"][0]["methods"] == ["*"]
    after["provider"]["access"][0]["methods"] = before["provider"]["access"][0]["methods"]
    assert after == before
    assert updated == load_config(config)


def test_an_edit_that_does_not_validate_changes_nothing(config: Path) -> None:
    before = config.read_bytes()
    with pytest.raises(ConfigError, match=r"provider\.access\[0\]\.methods"):
        edit_config(config, _set_methods([]))
    assert config.read_bytes() == before


def test_a_refused_precondition_changes_nothing(config: Path) -> None:
    before = config.read_bytes()

    def refuse(document: Any, current: ServerConfig) -> None:
        raise FailedPrecondition("stale")

    with pytest.raises(FailedPrecondition):
        edit_config(config, refuse)
    assert config.read_bytes() == before


def test_concurrent_edits_take_turns_and_none_is_lost(config: Path) -> None:
    methods = [f"/m.v1.S/Call{i}" for i in range(8)]

    def add(method: str) -> None:
        def edit(document: Any, current: ServerConfig) -> None:
            document["provider"]["access"][0]["methods"].append(method)

        edit_config(config, edit)

    threads = [threading.Thread(target=add, args=(m,)) for m in methods]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    written = load_config(config).provider
    assert written is not None
    assert set(methods) <= set(written.access[0].methods)
    assert written.access[0].client == NHIS


def test_when_the_step_after_the_write_fails_the_old_file_returns(config: Path) -> None:
    before = config.read_bytes()
    seen: list[list[str]] = []

    def refuse_reload(updated: ServerConfig) -> None:
        assert updated.provider is not None
        seen.append(list(updated.provider.access[0].methods))
        raise FailedPrecondition("the reload failed")

    with pytest.raises(FailedPrecondition, match="the reload failed"):
        edit_config(config, _set_methods(["*"]), after=refuse_reload)
    assert seen == [["*"]]  # it saw the new file ...
    assert config.read_bytes() == before  # ... which is gone again
