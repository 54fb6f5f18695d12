"""MPWT's security server with its management API on, in a live demo federation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spean.gateway.demo.ministries import MPWT, build_demo
from tests.support.management import Admin, enable_management
from tests.support.world import World, running


@pytest.fixture(scope="module")
def managed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, Admin]]:
    federation = build_demo(tmp_path_factory.mktemp("federation"))
    admin = enable_management(federation.configs[MPWT])
    with running(federation) as world:
        port = world.server(MPWT).management_port
        assert port is not None
        admin.port = port
        yield world, admin
