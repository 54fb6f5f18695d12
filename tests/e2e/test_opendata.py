"""Open data across the demo federation: the catalogue's subsystem generates datasets through
MoI's security server, and serves them.

MoI registers ``KH/GOV/MOI/catalogue``; MoH grants it the monthly reports (with
`submitted_at` dropped) and MPWT grants it the owner listing with `owner_id`
dropped, a masked view of the vehicle registry that MPWT's metadata declares
as the dataset ``mpwt-sample-fleet``. The stories: a generation writes CSV,
JSON Lines and Parquet with the provider's rows and no masked field, checksums
that match, and exchanges that both audit logs hold with the open-data
purpose; a second generation after a change is version 2 with its changelog;
a generation while MPWT is down keeps version 2 served and says why; the
download routes answer with the files, their ETags, ranges and 404s.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from spean.gateway.catalogue.api import create_app
from spean.gateway.catalogue.index import open_index
from spean.gateway.catalogue.service import CatalogueService
from spean.gateway.cli import main
from spean.gateway.cli import member as member_cli
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.federation import Federation, build_federation
from spean.gateway.demo.ministries import (
    LIST_VEHICLES,
    MOH,
    MOI,
    MONTHLY_REPORT,
    MPWT,
    demo_plans,
)
from spean.gateway.demo.opendata import (
    CATALOGUE,
    DATASET,
    DROPPED,
    mask_for_catalogue,
    with_open_data,
    with_vehicles_dataset,
)
from spean.gateway.errors import Unavailable
from spean.gateway.files import keyfiles
from spean.gateway.opendata.generate import ConsumerEndpoint, Generator, Regenerator
from spean.gateway.opendata.model import PURPOSE
from spean.gateway.opendata.store import DatasetStore
from spean.gateway.server.globalconf_client import GlobalConfigurationClient
from tests.support.world import World, running

FLEET = "mpwt-sample-fleet"
OWNER = demo_data.SAMPLE_OWNER_WITH_VEHICLES
API = "/api/v1/catalogue/datasets"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("opendata")
    plans = with_vehicles_dataset(with_open_data(demo_plans()), folder, FLEET, OWNER)
    federation = build_federation(folder / "federation", plans)
    mask_for_catalogue(federation.configs[MOH], MONTHLY_REPORT, DROPPED)
    mask_for_catalogue(federation.configs[MPWT], LIST_VEHICLES, ["owner_id"])
    with running(federation) as world:
        yield world


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> DatasetStore:
    return DatasetStore(tmp_path_factory.mktemp("datasets"), keep=5)


def _generator(federation: Federation, store: DatasetStore) -> Generator:
    endpoint = ConsumerEndpoint(federation.consumer_addresses[MOI], CATALOGUE)
    return Generator(store, endpoint, timeout=30.0)


def _conf(world: World):  # type: ignore[no-untyped-def]
    return world.server(MOI).current_configuration()


def _file(store: DatasetStore, dataset: str, name: str) -> bytes:
    return (store.folder(dataset) / name).read_bytes()


def test_a_generation_writes_three_formats_of_the_masked_rows(
    world: World, store: DatasetStore
) -> None:
    (outcome,) = _generator(world.federation, store).generate(_conf(world), [FLEET])
    assert outcome.error is None
    version = outcome.version
    assert version is not None
    assert version.number == 1
    assert version.rows == len(demo_data.SAMPLE_OWNER_PLATES)

    rows = list(csv.DictReader(io.StringIO(_file(store, FLEET, f"{FLEET}-v1.csv").decode())))
    assert [r["plate"] for r in rows] == list(demo_data.SAMPLE_OWNER_PLATES)
    assert "owner_id" not in rows[0]
    assert rows[0]["type"].startswith("VEHICLE_TYPE_")
    lines = _file(store, FLEET, f"{FLEET}-v1.jsonl").decode().splitlines()
    documents = [json.loads(line) for line in lines]
    assert [d["plate"] for d in documents] == list(demo_data.SAMPLE_OWNER_PLATES)
    assert all("owner_id" not in d for d in documents)
    uninspected = next(d for d in documents if d["plate"] == demo_data.SAMPLE_UNINSPECTED_PLATE)
    assert uninspected["last_inspection"] is None
    assert uninspected["engine_cc"] is None

    table = pq.read_table(store.folder(FLEET) / f"{FLEET}-v1.parquet")
    assert table.column("plate").to_pylist() == list(demo_data.SAMPLE_OWNER_PLATES)
    assert "owner_id" not in table.column_names
    assert table.schema.field("year").type == pa.int32()
    assert table.schema.field("registration_date").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("engine_cc").nullable
    assert not table.schema.field("plate").nullable

    for entry in version.files:
        data = _file(store, FLEET, entry.name)
        assert hashlib.sha256(data).hexdigest() == entry.sha256
        assert len(data) == entry.size
    assert [p.name for p in store.folder(FLEET).iterdir() if p.name.startswith(".")] == []


def test_each_generation_is_an_exchange_in_both_audit_logs(
    world: World, store: DatasetStore
) -> None:
    (outcome,) = _generator(world.federation, store).generate(_conf(world), [DATASET])
    version = outcome.version
    assert version is not None, outcome.error
    assert version.rows == 12
    assert len(version.exchange_ids) == 12
    assert len(set(version.exchange_ids)) == 12
    for exchange_id in version.exchange_ids:
        at_moi, at_moh = world.record(MOI, exchange_id), world.record(MOH, exchange_id)
        assert (at_moi.side.name, at_moh.side.name) == ("CONSUMER", "PROVIDER")
        for record in (at_moi, at_moh):
            assert record.client == CATALOGUE
            assert record.purpose == PURPOSE
            assert record.status == "OK"
    table = pq.read_table(store.folder(DATASET) / f"{DATASET}-v1.parquet")
    assert "submitted_at" not in table.column_names
    assert table.column("month").to_pylist() == list(range(1, 13))

    fleet = store.index(FLEET).latest
    assert fleet is not None
    (exchange_id,) = fleet.exchange_ids
    at_mpwt = world.record(MPWT, exchange_id)
    at_moi = world.record(MOI, exchange_id)
    assert (at_moi.side.name, at_mpwt.side.name) == ("CONSUMER", "PROVIDER")
    assert at_mpwt.client == CATALOGUE
    assert at_mpwt.purpose == PURPOSE
    assert at_mpwt.response_messages == len(demo_data.SAMPLE_OWNER_PLATES)


def test_a_second_generation_is_version_two_with_its_changelog(
    world: World, store: DatasetStore
) -> None:
    database = world.folder(MPWT) / "mpwt-vehicles.db"
    with sqlite3.connect(database) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(vehicles)")]
        found = db.execute("SELECT * FROM vehicles WHERE plate = ?", ("2A-1234",)).fetchone()
        row = dict(zip(columns, found, strict=True))
        row["plate"] = "2A-9999"
        marks = ", ".join("?" for _ in columns)
        db.execute(
            f"INSERT INTO vehicles ({', '.join(columns)}) VALUES ({marks})", list(row.values())
        )

    (outcome,) = _generator(world.federation, store).generate(_conf(world), [FLEET])
    version = outcome.version
    assert version is not None, outcome.error
    assert version.number == 2, outcome.error
    assert version.rows == len(demo_data.SAMPLE_OWNER_PLATES) + 1
    assert (version.rows_added, version.rows_removed) == (1, 0)
    index = store.index(FLEET)
    assert [v.number for v in index.versions] == [1, 2]
    first = index.version(1)
    assert first is not None
    assert first.file("csv") != version.file("csv")
    assert (store.folder(FLEET) / f"{FLEET}-v1.csv").is_file()  # kept: keep=5


def test_a_failed_generation_keeps_the_last_version_served(
    world: World, store: DatasetStore
) -> None:
    before = store.index(FLEET)
    world.federation.stop(MPWT)
    try:
        (outcome,) = _generator(world.federation, store).generate(_conf(world), [FLEET])
    finally:
        world.federation.start(MPWT)
    assert outcome.version is None
    assert isinstance(outcome.error, Unavailable)
    assert "version 2 stays served" in outcome.error.message
    assert FLEET in outcome.error.message
    assert "nothing was published" in outcome.error.message
    assert store.index(FLEET) == before
    names = sorted(p.name for p in store.folder(FLEET).iterdir())
    assert not [n for n in names if n.startswith(".") or "-v3" in n], names


@pytest.fixture(scope="module")
def api(world: World, store: DatasetStore) -> Iterator[TestClient]:
    authority = world.federation.root / "authority"
    client = GlobalConfigurationClient(
        str(authority / "globalconf.signed"),
        keyfiles.load_certificate(authority / "signing.crt"),
        store.root.parent / "catalogue-cache.signed",
    )
    service = CatalogueService(client, open_index("sqlite://"), base_url="https://cat.example")
    service.start(refresh=False)
    try:
        with TestClient(create_app(service, store)) as test_client:
            yield test_client
    finally:
        service.stop()


def test_the_datasets_are_listed_with_their_latest_version(api: TestClient) -> None:
    listed = {d["id"]: d for d in api.get(API).json()}
    assert set(listed) == {DATASET, FLEET}
    fleet = listed[FLEET]
    assert fleet["dropped_fields"] == ["owner_id"]
    assert fleet["frequency"] == "DAILY"
    assert fleet["latest"]["version"] == 2
    urls = {d["format"]: d["url"] for d in fleet["latest"]["downloads"]}
    assert urls["csv"] == f"https://cat.example{API}/{FLEET}/2.csv"
    detail = api.get(f"{API}/{FLEET}").json()
    assert [(v["version"], v["rows_added"]) for v in detail["versions"]] == [(1, None), (2, 1)]


def test_downloads_stream_the_files_with_their_checksum_as_etag(
    api: TestClient, store: DatasetStore
) -> None:
    latest = store.index(FLEET).latest
    assert latest is not None
    for fmt, extension in (("csv", "csv"), ("json", "json"), ("parquet", "parquet")):
        entry = latest.file(fmt)  # type: ignore[arg-type]
        assert entry is not None
        answer = api.get(f"{API}/{FLEET}/latest.{extension}")
        assert answer.status_code == 200
        assert hashlib.sha256(answer.content).hexdigest() == entry.sha256
        assert answer.headers["etag"] == f'"{entry.sha256}"'
        assert int(answer.headers["content-length"]) == entry.size
        same = api.get(
            f"{API}/{FLEET}/2.{extension}", headers={"If-None-Match": f'"{entry.sha256}"'}
        )
        assert same.status_code == 304
    part = api.get(f"{API}/{FLEET}/1.csv", headers={"Range": "bytes=0-4"})
    assert part.status_code == 206
    assert part.content == b"plate"
    checksums = api.get(f"{API}/{FLEET}/2.sha256").text
    assert checksums.splitlines() == [f"{f.sha256}  {f.name}" for f in latest.files]


def test_unknown_datasets_versions_and_formats_are_404(api: TestClient) -> None:
    assert api.get(f"{API}/no-such-dataset").status_code == 404
    missing = api.get(f"{API}/{FLEET}/9.csv")
    assert missing.status_code == 404
    assert "no version 9" in missing.json()["error"]
    assert api.get(f"{API}/{FLEET}/2.xlsx").status_code == 404
    assert api.get(f"{API}/{FLEET}/first.csv").status_code == 404


def test_the_dcat_lists_each_format_with_its_checksum(api: TestClient, store: DatasetStore) -> None:
    turtle = api.get("/api/v1/catalogue/dcat.ttl").text
    latest = store.index(FLEET).latest
    assert latest is not None
    assert f"https://cat.example{API}/{FLEET}/2.parquet" in turtle
    assert all(f.sha256 in turtle for f in latest.files)
    assert "frequency/DAILY" in turtle


def _publish(world: World, datasets: Path, *extra: str) -> int:
    return main([
        "catalogue", "publish-datasets", "--authority", str(world.federation.root / "authority"),
        "--datasets", str(datasets), "--client", CATALOGUE, *extra,
    ])  # fmt: skip


def test_publish_datasets_is_one_run_for_cron(
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(member_cli, "configure_logging", lambda *args, **kwargs: None)
    consumer = world.federation.consumer_addresses[MOI]
    assert _publish(world, tmp_path, "--consumer", consumer, "--dataset", DATASET) == 0
    out = capsys.readouterr().out
    assert f"{DATASET}: version 1, 12 rows, exchanges " in out
    assert (tmp_path / DATASET / f"{DATASET}-v1.parquet").is_file()

    assert _publish(world, tmp_path, "--consumer", "127.0.0.1:1", "--dataset", DATASET) == 1
    err = capsys.readouterr().err
    assert f"{DATASET}: UNAVAILABLE: dataset {DATASET}:" in err
    assert "version 1 stays served" in err

    assert _publish(world, tmp_path, "--consumer", consumer, "--dataset", "no-such") == 1
    assert "no open dataset no-such" in capsys.readouterr().err
    assert _publish(world, tmp_path, "--consumer", "nowhere", "--dataset", DATASET) == 1
    assert "--consumer" in capsys.readouterr().err


def test_serve_can_regenerate_on_a_schedule(world: World, tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    regenerator = Regenerator(
        _generator(world.federation, store), lambda: _conf(world), interval=0.2
    )
    regenerator.start()
    try:
        deadline = time.monotonic() + 60
        while len(store.index(DATASET).versions) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        regenerator.stop()
    versions = store.index(DATASET).versions
    assert len(versions) >= 2
    assert versions[-1].rows_added == 0  # the same twelve reports
    assert versions[-1].rows_removed == 0
