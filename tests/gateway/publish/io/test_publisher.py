"""A ministry publishes a real table on SQLite, PostgreSQL and MariaDB, and another calls it.

`publish` introspects the `sample` table (every column type the adapter
suite covers, tests/support/databases.py) with more rows added, writes the
contract, the mapping and the server entries; a real federation
(tests/support/world.py) then serves them: MPWT's security server runs the
SQL adapter from the generated mapping, MoH's hospital application calls Get,
pages through List and streams Export through its own security server, and
every answer is compared with the table's rows. A column whose type changes
is refused on the next run, and published when the operator allows it.
"""

from __future__ import annotations

import importlib
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf.message import Message
from sqlalchemy import Column, Integer, MetaData, String, Table, select, text
from sqlalchemy.engine import make_url

from spean.gateway.demo.federation import MemberPlan, ServicePlan, build_federation
from spean.gateway.demo.ministries import MOH, NHIS, call
from spean.gateway.errors import ConfigError, FailedPrecondition
from spean.gateway.publish.contract import Options
from spean.gateway.publish.io.protoc import main_file
from spean.gateway.publish.io.publisher import Outcome, Request, publish
from tests.support.databases import SAMPLE_ROWS, SAMPLE_TABLE, Backend, backend_database
from tests.support.sql_adapter import call as adapter_call
from tests.support.sql_adapter import running as running_adapter
from tests.support.world import World, running

PROVIDER = "KH/GOV/MPWT"
SAMPLE = "KH/GOV/MPWT/sample"
EXTRA_ROWS = [
    {**SAMPLE_ROWS[0], "id": n, "plate": f"P-{n}", "big": n * 1_000_000_007} for n in range(3, 8)
]


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
        with database.admin.begin() as conn:
            conn.execute(SAMPLE_TABLE.insert(), EXTRA_ROWS)
        yield database


@dataclass
class Published:
    outcome: Outcome
    world: World
    module: ModuleType

    def call(self, method: str, request: Message, response: type[Message], **kw: Any) -> Any:
        return call(
            self.world.consumer_channel(),
            self.outcome.contract.method(method),
            SAMPLE,
            request,
            response,
            **kw,
        )


@pytest.fixture(scope="module")
def published(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    out = tmp_path_factory.mktemp("out")
    options = Options(SAMPLE, package=f"sample_{backend.name}.v1", clients=(NHIS,))
    first = publish(Request(backend.url, "sample", options, out))
    contract = first.contract
    plans = [
        MemberPlan(member=MOH, name="Ministry of Health", clients=[NHIS]),
        MemberPlan(
            member=PROVIDER,
            name="Ministry of Public Works and Transport",
            services=[  # what the authority registers: the printed add-subsystem command's
                ServicePlan(
                    subsystem=SAMPLE,
                    adapter={},
                    methods=contract.methods,
                    file_descriptor_set=first.descriptor_set.read_bytes(),
                )
            ],
        ),
    ]
    federation = build_federation(tmp_path_factory.mktemp("federation"), plans)
    # MPWT's server.yaml as its operator has it before publishing: a provider section
    # with its listen address and nothing served yet. publish-table --config fills it in.
    config = federation.configs[PROVIDER]
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    del document["provider"]["services"], document["provider"]["access"]
    config.write_text(yaml.safe_dump(document), encoding="utf-8")
    outcome = publish(Request(backend.url, "sample", options, out, config=config))
    assert outcome.changes == (), "the same table gives the same contract"
    assert outcome.config_notes == (
        f"provider.services: added {SAMPLE}",
        f"provider.access: {NHIS} may call {', '.join(p for p, _ in contract.methods)}",
    )
    with running(federation) as world:
        # The provider's server imported the generated module from --out (python_path).
        yield Published(outcome, world, importlib.import_module(contract.module))


def rows(backend: Backend) -> list[dict[str, Any]]:
    with backend.admin.connect() as conn:
        result = conn.execute(select(SAMPLE_TABLE).order_by(SAMPLE_TABLE.c.id))
        return [dict(row._mapping) for row in result]


def assert_matches(record: Message, row: dict[str, Any]) -> None:
    """Every column of `row` as its field holds it; NULL as an unset field."""
    for name, value in row.items():
        if value is None:
            assert not record.HasField(name), f"{name} is set for a NULL"
            continue
        field = getattr(record, name)
        if isinstance(value, datetime):
            assert field.ToDatetime() == value, name
        elif isinstance(value, date):
            assert date(field.year, field.month, field.day) == value, name
        elif isinstance(value, Decimal):
            assert Decimal(field) == value, name  # the exact digits, as the database keeps them
        else:
            assert field == value, name


def test_the_table_becomes_a_contract_of_its_columns(published: Published) -> None:
    record = published.module.Record.DESCRIPTOR
    assert [f.name for f in record.fields] == [c.name for c in SAMPLE_TABLE.columns]
    kinds = {f.name: f.type for f in record.fields}
    assert kinds["note"] == record.fields_by_name["plate"].TYPE_STRING  # NUMERIC: exact text
    assert record.fields_by_name["at"].message_type.full_name == "google.protobuf.Timestamp"
    assert record.fields_by_name["taxed"].type == record.fields_by_name["taxed"].TYPE_BOOL
    assert record.fields_by_name["big"].type == record.fields_by_name["big"].TYPE_INT64
    assert record.fields_by_name["plate"].has_presence  # NULL-able: optional
    assert not record.fields_by_name["id"].has_presence  # the primary key


def test_get_answers_each_row_and_not_found_for_a_missing_key(
    published: Published, backend: Backend
) -> None:
    module = published.module
    for row in rows(backend):
        (record,), exchange_id, code, _ = published.call(
            "Get", module.GetRequest(id=row["id"]), module.Record
        )
        assert code is grpc.StatusCode.OK
        assert exchange_id
        assert_matches(record, row)
    _, _, code, details = published.call("Get", module.GetRequest(id=999), module.Record)
    assert code is grpc.StatusCode.NOT_FOUND
    assert details == "no result for Get with the given request"


def test_list_pages_through_every_row_in_key_order(published: Published, backend: Backend) -> None:
    module = published.module
    seen, token, pages = [], "", 0
    while True:
        (page,), _, code, _ = published.call(
            "List", module.ListRequest(page_size=3, page_token=token), module.ListResponse
        )
        assert code is grpc.StatusCode.OK
        assert len(page.records) <= 3
        seen.extend(page.records)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    table = rows(backend)
    assert pages == 3  # 7 rows, 3 a page
    assert [r.id for r in seen] == [row["id"] for row in table]
    for record, row in zip(seen, table, strict=True):
        assert_matches(record, row)


def test_list_refuses_a_forged_token_and_a_negative_size(published: Published) -> None:
    module = published.module
    _, _, code, details = published.call(
        "List", module.ListRequest(page_token="not-a-token"), module.ListResponse
    )
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert details == "page_token is not a token this method returned; start again without it"
    _, _, code, details = published.call(
        "List", module.ListRequest(page_size=-1), module.ListResponse
    )
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert details == "page_size must not be negative (0 asks for 100)"


def test_export_streams_every_row(published: Published, backend: Backend) -> None:
    module = published.module
    records, _, code, _ = published.call(
        "Export", module.ExportRequest(), module.Record, streaming=True
    )
    assert code is grpc.StatusCode.OK
    table = rows(backend)
    assert len(records) == len(table)
    for record, row in zip(records, table, strict=True):
        assert_matches(record, row)


def test_both_audit_logs_hold_the_exchanges(published: Published) -> None:
    module = published.module
    _, exchange_id, code, _ = published.call("Get", module.GetRequest(id=1), module.Record)
    assert code is grpc.StatusCode.OK
    assert published.world.record(MOH, exchange_id).status == "OK"
    assert published.world.record(PROVIDER, exchange_id).status == "OK"


def retyped(backend: Backend, amount: Any) -> None:
    """Table `retyped` afresh, its `amount` column of type `amount`."""
    metadata = MetaData()
    table = Table(
        "retyped",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("amount", amount),
    )
    metadata.drop_all(backend.admin)
    metadata.create_all(backend.admin)
    with backend.admin.begin() as conn:
        conn.execute(table.insert(), [{"id": 1, "amount": "7"}])


def test_a_column_type_change_is_refused_then_published_when_allowed(
    backend: Backend, tmp_path: Path
) -> None:
    options = Options(SAMPLE, package=f"retyped_{backend.name}.v1")
    retyped(backend, Integer)
    first = publish(Request(backend.url, "retyped", options, tmp_path))
    number = first.contract.fields[1].number
    before = (tmp_path / "retyped.pb").read_bytes()
    retyped(backend, String(20))
    with pytest.raises(FailedPrecondition) as refused:
        publish(Request(backend.url, "retyped", options, tmp_path))
    field = f"retyped_{backend.name}.v1.Record.amount"
    expected = "int64" if backend.name == "sqlite" else "int32"
    assert f"field {field} changed type from {expected} to string" in refused.value.message
    assert "--allow-breaking" in refused.value.message
    assert (tmp_path / "retyped.pb").read_bytes() == before, "a refused run wrote nothing"
    allowed = publish(Request(backend.url, "retyped", options, tmp_path, allow_breaking=True))
    assert [c.what for c in allowed.changes if c.breaking] == [
        f"field {field} changed type from {expected} to string"
    ]
    assert allowed.contract.fields[1].number == number, "the field keeps its number"
    republished = main_file((tmp_path / "retyped.pb").read_bytes())
    assert republished is not None
    record = next(m for m in republished.message_type if m.name == "Record")
    assert record.field[1].type == record.field[1].TYPE_STRING


@pytest.mark.postgres
def test_a_password_in_the_url_goes_to_a_file_of_its_own(postgres_url: str, tmp_path: Path) -> None:
    with backend_database("postgres", tmp_path, postgres_url) as database:
        url = make_url(database.url).set(password="s3cret-for-test")
        outcome = publish(
            Request(url.render_as_string(hide_password=False), "sample", Options(SAMPLE), tmp_path)
        )
    mapping = (tmp_path / "sample-mapping.yaml").read_text(encoding="utf-8")
    assert "s3cret-for-test" not in mapping
    assert yaml.safe_load(mapping)["database"]["password_file"] == "sample.password"
    secret = tmp_path / "sample.password"
    assert secret.read_text(encoding="utf-8") == "s3cret-for-test\n"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert secret in outcome.written


@pytest.mark.postgres
def test_a_materialized_view_in_its_own_schema_is_published_by_the_key_named(
    postgres_url: str, tmp_path: Path
) -> None:
    with backend_database("postgres", tmp_path, postgres_url) as database:
        with database.admin.begin() as conn:
            conn.execute(text("CREATE SCHEMA stats"))
            conn.execute(
                text("CREATE MATERIALIZED VIEW stats.plates AS SELECT id, plate FROM sample")
            )
        options = Options(SAMPLE, key=("id",), package="plates_pg.v1")
        outcome = publish(Request(database.url, "plates", options, tmp_path, schema="stats"))
        assert outcome.contract.table.is_view
        assert (
            "FROM stats.plates WHERE id = :id"
            in yaml.safe_load((tmp_path / "plates-mapping.yaml").read_text(encoding="utf-8"))[
                "methods"
            ]["Get"]["sql"]
        )
        with running_adapter(tmp_path / "plates-mapping.yaml") as adapter:
            module = importlib.import_module("plates_pg.v1.plates_pb2")
            request = module.GetRequest(id=1).SerializeToString()
            answer = adapter.unary(adapter_call(outcome.contract.method("Get")), request)
            assert module.Record.FromString(answer).plate == "P-1"


@pytest.mark.postgres
def test_columns_without_a_protobuf_type_are_named_and_can_be_left_out(
    postgres_url: str, tmp_path: Path
) -> None:
    with backend_database("postgres", tmp_path, postgres_url) as database:
        with database.admin.begin() as conn:
            conn.execute(
                text("CREATE TABLE trips (id INTEGER PRIMARY KEY, took INTERVAL, at POINT)")
            )
        options = Options(SAMPLE, package="trips_pg.v1")
        with pytest.raises(ConfigError) as refused:
            publish(Request(database.url, "trips", options, tmp_path))
        message = refused.value.message
        assert (
            "column 'took' (INTERVAL) has no protobuf type: leave it out with --exclude took"
            in (message)
        )
        assert "--exclude at" in message
        assert not list(tmp_path.glob("*.pb")), "nothing written"
        allowed = Options(SAMPLE, package="trips_pg.v1", exclude=frozenset({"took", "at"}))
        outcome = publish(Request(database.url, "trips", allowed, tmp_path))
    assert [f.name for f in outcome.contract.fields] == ["id"]
    assert outcome.contract.excluded == ("took", "at")


def test_a_composite_primary_key_is_the_get_request_and_the_page_order(tmp_path: Path) -> None:
    with backend_database("sqlite", tmp_path, None) as database:
        metadata = MetaData()
        beds = Table(
            "beds",
            metadata,
            Column("ward", String(8), primary_key=True),
            Column("bed", Integer, primary_key=True, autoincrement=False),
            Column("patient", String(20)),
        )
        metadata.create_all(database.admin)
        rows = [{"ward": w, "bed": b, "patient": f"{w}{b}"} for w in ("b", "a") for b in (2, 1)]
        with database.admin.begin() as conn:
            conn.execute(beds.insert(), rows)
        options = Options(SAMPLE, package="beds_sqlite.v1")
        outcome = publish(Request(database.url, "beds", options, tmp_path))
        assert [f.name for f in outcome.contract.key] == ["ward", "bed"]
        with running_adapter(tmp_path / "beds-mapping.yaml") as adapter:
            module = importlib.import_module("beds_sqlite.v1.beds_pb2")
            get = adapter_call(outcome.contract.method("Get"))
            answer = adapter.unary(get, module.GetRequest(ward="b", bed=1).SerializeToString())
            assert module.Record.FromString(answer).patient == "b1"
            listed, token = [], ""
            while True:
                request = module.ListRequest(page_size=3, page_token=token).SerializeToString()
                page = module.ListResponse.FromString(
                    adapter.unary(adapter_call(outcome.contract.method("List")), request)
                )
                listed += [(r.ward, r.bed) for r in page.records]
                token = page.next_page_token
                if not token:
                    break
    assert listed == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]
