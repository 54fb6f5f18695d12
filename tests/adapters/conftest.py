"""Fixtures of the SQL adapter suite: a database per module and engine, the fleet service.

`backend` is parametrised over SQLite, PostgreSQL and MariaDB; every test that
takes it runs on all three (tests/support/databases.py makes and drops the
databases). `fleet` is the generated module of tests/support/fleet.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.support.databases import Backend, backend_database
from tests.support.fleet import compiled_fleet


@pytest.fixture(
    scope="module",
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    name: str = request.param
    server_url = None if name == "sqlite" else request.getfixturevalue(f"{name}_url")
    with backend_database(name, tmp_path_factory.mktemp(name), server_url) as database:
        yield database


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """A service compiled from .proto now, exactly as `make proto` would."""
    with compiled_fleet(tmp_path_factory.mktemp("fleetproto")) as module:
        yield module


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`@pytest.mark.backends(...)` runs a test only on the named backends.

    The other backends' cases are deselected, not skipped: they do not apply,
    and a skip would read as something left undone.
    """
    keep, drop = [], []
    for item in items:
        only = item.get_closest_marker("backends")
        params = getattr(getattr(item, "callspec", None), "params", {})
        if only is not None and params.get("backend") not in only.args:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
