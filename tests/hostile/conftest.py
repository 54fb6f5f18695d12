"""The hostile federation (tests/support/hostile.py), one per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.hostile import HostileWorld, build_hostile


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileWorld]:
    federation, revoked = build_hostile(tmp_path_factory.mktemp("hostile"))
    with federation.running():
        yield HostileWorld(federation, revoked)
