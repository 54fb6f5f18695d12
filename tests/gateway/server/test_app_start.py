"""A security server that fails to start leaves nothing running behind it, and says why."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
import yaml

from spean.adapters.loader import MissingDriver
from spean.gateway.demo.federation import build_federation
from spean.gateway.demo.ministries import MPWT, demo_plans
from spean.gateway.errors import ConfigError
from spean.gateway.server.app import SecurityServer


def test_a_failed_start_stops_what_it_had_started(tmp_path: Path) -> None:
    federation = build_federation(tmp_path, demo_plans())
    path = federation.configs[MPWT]
    document = yaml.safe_load(path.read_text())
    document["provider"]["services"][0]["adapter"]["mapping"] = "missing.yaml"
    path.write_text(yaml.safe_dump(document))
    threads_before = {t.name for t in threading.enumerate()}

    server = SecurityServer(federation.config(MPWT))
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        server.start()

    # The configuration refresher and the audit writer were started before the
    # adapter failed; both are gone again, and the audit log is closed.
    leftover = {t.name for t in threading.enumerate() if t.is_alive()} - threads_before
    assert not leftover, f"threads left running: {leftover}"
    # A second server on the same audit log (same origin) can start: the first
    # one released it.
    document["provider"]["services"][0]["adapter"]["mapping"] = "mpwt-vehicles.yaml"
    path.write_text(yaml.safe_dump(document))
    again = SecurityServer(federation.config(MPWT))
    again.start()
    again.stop(grace=0)


def test_a_missing_database_driver_is_said_with_the_pip_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    federation = build_federation(tmp_path, demo_plans())
    mapping = federation.configs[MPWT].parent / "mpwt-vehicles.yaml"
    document = yaml.safe_load(mapping.read_text())
    document["database"] = "postgresql://spean@127.0.0.1/vehicles"
    mapping.write_text(yaml.safe_dump(document))
    # As on a machine where spean was installed without the postgres extra.
    monkeypatch.setitem(sys.modules, "psycopg", None)

    server = SecurityServer(federation.config(MPWT))
    with pytest.raises(MissingDriver) as caught:
        server.start()

    assert caught.value.fix == "pip install 'spean[postgres]'"
    assert "the postgresql driver (psycopg) is not installed" in caught.value.message
    assert str(mapping) in caught.value.message


def test_the_server_creates_its_audit_folder(tmp_path: Path) -> None:
    federation = build_federation(tmp_path, demo_plans())
    path = federation.configs[MPWT]
    document = yaml.safe_load(path.read_text())
    document["audit"]["store"] = "state/fresh/audit.db"
    path.write_text(yaml.safe_dump(document))

    server = SecurityServer(federation.config(MPWT))
    server.start()
    server.stop(grace=0)

    assert (path.parent / "state" / "fresh" / "audit.db").is_file()
