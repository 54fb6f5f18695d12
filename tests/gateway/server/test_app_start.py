"""A security server that fails to start leaves nothing running behind it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml

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
