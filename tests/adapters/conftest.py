"""Databases for the SQL adapter suite: one fresh database per test module and engine.

`backend` is parametrised over SQLite, PostgreSQL and MariaDB; every test that
takes it runs on all three. On a server each module gets its own database
(``spean_t_<random>``), loaded with the three demo registries and a `sample`
table of every column type, and dropped afterwards, so tests never see each
other's data nor anyone else's on a shared server.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from types import ModuleType

import pytest
from grpc_tools import protoc
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    text,
)
from sqlalchemy.engine import make_url

from spean.gateway.demo import data as demo_data

SAMPLE = MetaData()
SAMPLE_TABLE = Table(
    "sample",
    SAMPLE,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("plate", String(40)),
    Column("kind", String(16)),
    Column("taxed", Boolean),
    Column("ratio", Float),
    Column("payload", LargeBinary),
    Column("big", BigInteger),
    Column("at", DateTime),
    Column("day", Date),
    Column("owner_id", String(9)),
    Column("note", Numeric(10, 3)),
    Column("small", Integer),
)
SAMPLE_ROWS = [
    {
        "id": 1,
        "plate": "P-1",
        "kind": "Bus",
        "taxed": True,
        "ratio": 0.25,
        "payload": b"\x00\xff",
        "big": 9007199254740993,
        "at": datetime(2024, 6, 1, 8, 30),
        "day": date(2024, 2, 29),
        "owner_id": "o-1",
        "note": Decimal("12.500"),
        "small": 7,
    },
    {"id": 2} | {c.name: None for c in SAMPLE_TABLE.columns if c.name != "id"},
]


@dataclass(frozen=True, slots=True)
class Backend:
    """A loaded database: `url` for mappings, `admin` to inspect or disturb it."""

    name: str
    url: str
    admin: Engine
    database: str


def _load(target: Engine) -> None:
    demo_data.create_moi_database(target)
    demo_data.create_mpwt_database(target)
    demo_data.create_moh_database(target)
    SAMPLE.drop_all(target)
    SAMPLE.create_all(target)
    with target.begin() as conn:
        conn.execute(SAMPLE_TABLE.insert(), SAMPLE_ROWS)


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
    if name == "sqlite":
        path: Path = tmp_path_factory.mktemp("sqlite") / "registry.db"
        url = f"sqlite:///{path}"
        admin = create_engine(url)
        _load(admin)
        try:
            yield Backend(name, url, admin, str(path))
        finally:
            admin.dispose()
        return
    server_url = make_url(request.getfixturevalue(f"{name}_url"))
    database = f"spean_t_{secrets.token_hex(6)}"
    server = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {database}"))
    url = server_url.set(database=database)
    admin = create_engine(url)
    try:
        _load(admin)
        yield Backend(name, url.render_as_string(hide_password=False), admin, database)
    finally:
        admin.dispose()
        drop = "DROP DATABASE {} WITH (FORCE)" if name == "postgres" else "DROP DATABASE {}"
        with server.connect() as conn:
            conn.execute(text(drop.format(database)))
        server.dispose()


FLEET_PROTO = """
syntax = "proto3";
package fleettest.v1;
import "google/protobuf/timestamp.proto";

enum Kind { KIND_UNSPECIFIED = 0; KIND_CAR = 1; KIND_BUS = 2; }
message Day { int32 year = 1; int32 month = 2; int32 day = 3; }
message Owner { string id = 1; }
message Filter {
  string owner_id = 1;
  optional int32 min_year = 2;
  google.protobuf.Timestamp registered_after = 3;
  Day inspected_since = 4;
  Kind kind = 5;
}
message FindRequest { repeated string plates = 1; Filter filter = 2; }
message Row {
  string plate = 1; Kind kind = 2; bool taxed = 3; double ratio = 4; bytes blob = 5;
  int64 big = 6; google.protobuf.Timestamp at = 7; Day day = 8; Owner owner = 9;
  string note = 10; uint32 small = 11; repeated string tags = 12;
}
message FindResponse { repeated Row rows = 1; int32 total = 2; }
service Fleet {
  rpc Find(FindRequest) returns (FindResponse);
  rpc Stream(FindRequest) returns (stream Row);
  rpc Echo(FindRequest) returns (Row);
}
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """A service compiled from .proto now, exactly as `make proto` would."""
    root = tmp_path_factory.mktemp("fleetproto")
    (root / "fleettest" / "v1").mkdir(parents=True)
    (root / "fleettest" / "v1" / "fleet.proto").write_text(FLEET_PROTO)
    include = str(resources.files("grpc_tools") / "_proto")
    status = protoc.main(
        ["protoc", f"-I{root}", f"-I{include}", f"--python_out={root}", "fleettest/v1/fleet.proto"]
    )
    assert status == 0
    sys.path.insert(0, str(root))
    try:
        import fleettest.v1.fleet_pb2 as module  # type: ignore[import-not-found]

        yield module
    finally:
        sys.path.remove(str(root))


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
