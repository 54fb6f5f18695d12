"""The demo federation, built once for the open-data tests that read its configuration."""

from __future__ import annotations

import pytest

from tests.support.catalogue import DemoFederation, demo_federation


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoFederation:
    return demo_federation(tmp_path_factory.mktemp("opendata-demo"))
