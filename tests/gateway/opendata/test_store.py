"""The dataset store on a real folder: versions appear whole or not at all, their checksums are
the files', the changelog counts rows added and removed, and old files go while the changelog
stays."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from spean.gateway.errors import FailedPrecondition, Unavailable
from spean.gateway.opendata.model import Column, Version
from spean.gateway.opendata.store import DatasetStore

COLUMNS = (
    Column("plate", "string", nullable=False),
    Column("year", "int32", nullable=False),
    Column("inspected", "timestamp", nullable=True),
    Column("extras", "json", nullable=True),
)
WHEN = dt.datetime(2026, 12, 4, 9, 30, tzinfo=dt.UTC)


def _generate(store: DatasetStore, rows: list[tuple[object, ...]]) -> Version:
    with store.generation("fleet", COLUMNS) as writer:
        for row in rows:
            writer.write(row)  # type: ignore[arg-type]
        return store.commit(
            writer, "fleet", exchange_ids=["ex-1"], configuration_version=3, generated_at=WHEN
        )


def _rows(n: int, start: int = 0) -> list[tuple[object, ...]]:
    return [
        (f"P-{i:04d}", 2000 + i % 25, WHEN if i % 2 else None, '{"seats": 4}' if i % 3 else None)
        for i in range(start, start + n)
    ]


def test_a_version_is_three_complete_files_with_their_checksums(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    version = _generate(store, _rows(5))
    assert (version.number, version.rows, version.rows_added) == (1, 5, None)
    folder = store.folder("fleet")
    for entry in version.files:
        data = (folder / entry.name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry.sha256
        assert len(data) == entry.size
    table = list(csv.reader(io.StringIO((folder / "fleet-v1.csv").read_text())))
    assert table[0] == ["plate", "year", "inspected", "extras"]
    assert table[2] == ["P-0001", "2001", "2026-12-04T09:30:00Z", '{"seats": 4}']
    line = json.loads((folder / "fleet-v1.jsonl").read_text().splitlines()[1])
    assert line == {"plate": "P-0001", "year": 2001, "inspected": "2026-12-04T09:30:00Z",
                    "extras": {"seats": 4}}  # fmt: skip
    parquet = pq.read_table(folder / "fleet-v1.parquet")
    assert parquet.column("year").to_pylist() == [2000, 2001, 2002, 2003, 2004]
    assert parquet.column("inspected").to_pylist()[1] == WHEN
    assert sorted(p.name for p in folder.iterdir()) == [
        "fleet-v1.csv", "fleet-v1.jsonl", "fleet-v1.parquet", "fleet-v1.rows", "index.json",
    ]  # fmt: skip


def test_the_changelog_counts_rows_added_and_removed(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    _generate(store, _rows(10))
    second = _generate(store, _rows(10, start=4))  # rows 0-3 gone, 10-13 new
    assert (second.number, second.rows_added, second.rows_removed) == (2, 4, 4)
    third = _generate(store, _rows(10, start=4))
    assert (third.rows_added, third.rows_removed) == (0, 0)
    same, before = third.file("csv"), second.file("csv")
    assert same is not None
    assert before is not None
    assert (same.name, same.sha256) == ("fleet-v3.csv", before.sha256)  # the same rows, bytes


def test_a_failed_generation_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    _generate(store, _rows(3))
    before = sorted(p.name for p in store.folder("fleet").iterdir())

    def fail_midway() -> None:
        with store.generation("fleet", COLUMNS) as writer:
            for row in _rows(100_000):
                writer.write(row)  # type: ignore[arg-type]
                if writer.rows == 70_000:  # past a Parquet row group: files were written
                    raise Unavailable("provider down")

    with pytest.raises(Unavailable):
        fail_midway()
    assert sorted(p.name for p in store.folder("fleet").iterdir()) == before
    latest = store.index("fleet").latest
    assert latest is not None
    assert latest.number == 1


def test_old_files_go_and_their_changelog_stays(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path, keep=2)
    for n in range(3):
        _generate(store, _rows(2, start=n))
    index = store.index("fleet")
    assert [v.available for v in index.versions] == [False, True, True]
    names = {p.name for p in store.folder("fleet").iterdir()}
    assert not any(name.startswith("fleet-v1.") for name in names)
    assert "fleet-v2.csv" in names


def test_a_damaged_index_is_reported(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    store.folder("fleet").mkdir()
    (store.folder("fleet") / "index.json").write_text('{"dataset": "fleet"}')
    with pytest.raises(FailedPrecondition, match=r"index\.json is damaged"):
        store.index("fleet")
