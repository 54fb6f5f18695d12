"""The live demo federation the end-to-end stories share, one per test module.

Three demo ministries in a temporary folder with real keys, real certificates
and real SQLite databases; the tests get a `World` (tests/support/world.py)
to call through and inspect.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spean.gateway.demo.ministries import build_demo
from tests.support.world import World, running


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running(build_demo(tmp_path_factory.mktemp("federation"))) as world:
        yield world
