"""The SQL adapter's paged `many` results (`page:`), on SQLite, PostgreSQL and MariaDB.

A region's clinics are keyed by (region, n): a composite key, so pages are
ordered and resumed by a row value. The application pages through them;
rows added or removed between two pages neither repeat nor vanish from the
rest. Page tokens carry typed key values and refuse anything else; mapping
mistakes are refused at load or start, naming the place in the file.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from sqlalchemy import Column, Integer, MetaData, String, Table, delete, insert

from spean.adapters import ConfigError, InvalidArgument
from spean.adapters.sql import SqlAdapter, parse_mapping
from spean.adapters.sql._paging import PageSpec, decode_token, encode_token
from spean.gateway.publish.io.protoc import compile_proto
from tests.support.databases import Backend
from tests.support.sql_adapter import call, running

PROTO = """
syntax = "proto3";
package pagetest.v1;
message ListRequest { int32 page_size = 1; string page_token = 2; string region = 3; }
message Clinic { string region = 1; int64 n = 2; string label = 3; }
message ListResponse { repeated Clinic clinics = 1; string next_page_token = 2; }
service Clinics {
  rpc List(ListRequest) returns (ListResponse);
  rpc Stream(ListRequest) returns (stream Clinic);
}
"""
LIST = "/pagetest.v1.Clinics/List"
CLINICS = MetaData()
CLINICS_TABLE = Table(
    "clinics",
    CLINICS,
    Column("region", String(8), primary_key=True),
    Column("n", Integer, primary_key=True, autoincrement=False),
    Column("label", String(20)),
)
ROWS = [
    {"region": r, "n": n, "label": f"{r}-{n}"} for r in ("north", "south") for n in (1, 2, 3, 4)
]


@pytest.fixture(scope="module")
def pages_module(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModuleType]:
    folder = tmp_path_factory.mktemp("pagetest")
    compiled = compile_proto(PROTO, "pagetest/v1/page.proto")
    (folder / "pagetest" / "v1").mkdir(parents=True)
    (folder / "pagetest" / "v1" / "page_pb2.py").write_bytes(compiled.python_module)
    mapping = mapping_file(folder, "sqlite:///unused.db")
    SqlAdapter.from_file(mapping)  # imports the module through python_path
    from pagetest.v1 import page_pb2  # type: ignore[import-not-found]

    return folder, page_pb2


def mapping_file(folder: Path, url: str, **page: object) -> Path:
    path = folder / f"clinics-{uuid.uuid4().hex[:8]}.yaml"
    document = {
        "service": "pagetest.v1.Clinics",
        "descriptor": "pagetest.v1.page_pb2",
        "python_path": ".",
        "database": url,
        "methods": {
            "List": {
                "sql": "SELECT region, n, label FROM clinics WHERE region LIKE :region",
                "result": "many",
                "into": "clinics",
                "page": {"key": ["region", "n"], "max": 3, "default": 2, **page},
            }
        },
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def clinics(
    backend: Backend, pages_module: tuple[Path, ModuleType]
) -> Iterator[tuple[SqlAdapter, ModuleType, Backend]]:
    CLINICS.drop_all(backend.admin)
    CLINICS.create_all(backend.admin)
    with backend.admin.begin() as conn:
        conn.execute(insert(CLINICS_TABLE), ROWS)
    folder, module = pages_module
    with running(mapping_file(folder, backend.url)) as adapter:
        yield adapter, module, backend


def page(
    adapter: SqlAdapter, module: ModuleType, token: str = "", size: int = 0, region: str = "%"
) -> tuple[list[tuple[str, int]], str]:
    request = module.ListRequest(page_size=size, page_token=token, region=region)
    response = module.ListResponse.FromString(
        adapter.unary(call(LIST), request.SerializeToString())
    )
    return [(c.region, c.n) for c in response.clinics], response.next_page_token


def test_pages_follow_the_composite_key_to_the_last_row(
    clinics: tuple[SqlAdapter, ModuleType, Backend],
) -> None:
    adapter, module, _ = clinics
    seen, token, sizes = [], "", []
    while True:
        rows, token = page(adapter, module, token, size=3)
        seen += rows
        sizes.append(len(rows))
        if not token:
            break
    assert seen == [(r["region"], r["n"]) for r in ROWS]
    assert sizes == [3, 3, 2]


def test_size_zero_is_the_default_larger_is_the_max_and_parameters_still_bind(
    clinics: tuple[SqlAdapter, ModuleType, Backend],
) -> None:
    adapter, module, _ = clinics
    assert len(page(adapter, module)[0]) == 2
    assert len(page(adapter, module, size=500)[0]) == 3
    rows, token = page(adapter, module, size=3, region="south")
    assert rows == [("south", 1), ("south", 2), ("south", 3)]
    assert page(adapter, module, token, size=3, region="south") == ([("south", 4)], "")


def test_rows_changed_between_pages_neither_repeat_nor_hide_the_rest(
    clinics: tuple[SqlAdapter, ModuleType, Backend],
) -> None:
    adapter, module, backend = clinics
    first, token = page(adapter, module, size=3)
    assert first[-1] == ("north", 3)
    with backend.admin.begin() as conn:
        conn.execute(insert(CLINICS_TABLE), [{"region": "north", "n": 0, "label": "new"}])
        conn.execute(delete(CLINICS_TABLE).where(CLINICS_TABLE.c.n == 4))
    try:
        rest, token = page(adapter, module, token, size=3)
        assert rest == [("south", 1), ("south", 2), ("south", 3)]
    finally:
        with backend.admin.begin() as conn:
            conn.execute(delete(CLINICS_TABLE).where(CLINICS_TABLE.c.n == 0))
            conn.execute(insert(CLINICS_TABLE), [r for r in ROWS if r["n"] == 4])


@pytest.mark.backends("sqlite")
def test_a_forged_token_or_a_negative_size_is_invalid(
    clinics: tuple[SqlAdapter, ModuleType, Backend],
) -> None:
    adapter, module, _ = clinics
    with pytest.raises(InvalidArgument, match="page_token is not a token this method returned"):
        page(adapter, module, token=encode_token(["north"]))  # one value for a two-column key
    with pytest.raises(InvalidArgument, match="page_size must not be negative"):
        page(adapter, module, size=-5)


@pytest.mark.parametrize(
    "values",
    [
        (1, "text", True),
        (Decimal("12.500"), 2.5, b"\x00\xff"),
        (date(2024, 2, 29), datetime(2024, 6, 1, 8, 30, 0, 123), time(8, 30)),
        (uuid.UUID("6f1c2a9e-6f1c-4a9e-8f1c-2a9e6f1c2a9e"), 10**20),
    ],
)
def test_a_token_carries_each_key_type_back_as_it_was(values: tuple[object, ...]) -> None:
    decoded = decode_token(encode_token(values), len(values), "page_token")
    assert decoded == values
    assert [type(v) for v in decoded] == [type(v) for v in values]


@pytest.mark.parametrize(
    "token",
    [
        "%%%",
        "bm90IGpzb24",
        "eyJhIjogMX0",
        "W1siaSIsInRleHQiXV0",
        "W1sieiIsMV1d",
        "W1siaSIsdHJ1ZV1d",
    ],
    ids=["not-base64", "not-json", "not-a-list", "int-holding-text", "unknown-tag", "bool-as-int"],
)
def test_a_token_that_is_not_ours_is_refused(token: str) -> None:
    with pytest.raises(InvalidArgument, match="page_token is not a token this method returned"):
        decode_token(token, 1, "page_token")


def test_a_key_value_no_column_holds_cannot_become_a_token() -> None:
    with pytest.raises(TypeError, match="a key value of type list"):
        encode_token([[1, 2]])


def test_page_sizes_follow_the_spec() -> None:
    spec = PageSpec(key=("id",), default=20, max=50)
    assert spec.rows_for(0) == 20
    assert spec.rows_for(7) == 7
    assert spec.rows_for(51) == 50


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ({"key": []}, "methods.List.page.key: must name the column(s) the pages are ordered by"),
        ({"key": ["id"], "size": "page size"}, "methods.List.page.size: must name a field"),
        ({"key": ["id"], "max": 0}, "methods.List.page.max: must be a number from 1 to 100000"),
        ({"key": ["id"], "max": 10, "default": 11}, "methods.List.page.default: must be a number"),
        ({"key": ["id"], "offset": 1}, "methods.List.page: unknown key 'offset'"),
    ],
)
def test_a_malformed_page_entry_is_refused_naming_the_place(
    page: dict[str, object], message: str, tmp_path: Path
) -> None:
    document = {
        "service": "s.S",
        "descriptor": "s_pb2",
        "database": "sqlite:///x.db",
        "methods": {"List": {"sql": "SELECT 1", "page": page}},
    }
    with pytest.raises(ConfigError) as refused:
        parse_mapping(document, tmp_path / "m.yaml")
    assert message in refused.value.message


def test_a_stream_or_missing_page_fields_are_refused_at_load(
    pages_module: tuple[Path, ModuleType],
) -> None:
    folder, _ = pages_module
    path = mapping_file(folder, "sqlite:///unused.db", size="region_size")
    with pytest.raises(
        ConfigError, match=r"page\.size: pagetest\.v1\.ListRequest has no integer field"
    ):
        SqlAdapter.from_file(path)
    path = mapping_file(folder, "sqlite:///unused.db", next="more")
    with pytest.raises(
        ConfigError, match=r"page\.next: pagetest\.v1\.ListResponse has no string field"
    ):
        SqlAdapter.from_file(path)
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    document["methods"] = {"Stream": {**document["methods"]["List"], "into": None}}
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(ConfigError, match="only a unary 'many' method with 'into' is paged"):
        SqlAdapter.from_file(path)


@pytest.mark.backends("sqlite")
def test_a_key_the_statement_does_not_return_is_refused_at_start(
    clinics: tuple[SqlAdapter, ModuleType, Backend], pages_module: tuple[Path, ModuleType]
) -> None:
    _, _, backend = clinics
    folder, _ = pages_module
    adapter = SqlAdapter.from_file(mapping_file(folder, backend.url, key=["region", "id"]))
    with pytest.raises(ConfigError, match=r"page\.key: the statement returns no column 'id'"):
        adapter.start()
