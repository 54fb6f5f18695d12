"""The datasets on disk: each one's versions, files and changelog.

Layout under the store's folder::

    <dataset>/index.json             every version and its changelog entry (DatasetIndex)
    <dataset>/<dataset>-v<N>.csv     the files of version N (.jsonl, .parquet beside it)
    <dataset>/<dataset>-v<N>.rows    8-byte hashes of its rows (for the next changelog)

Invariants: a version's files are complete before they are visible (written
to a temporary folder, fsynced, renamed into place, the folder fsynced), and
the index names a version only after its files are in place; index.json is
itself replaced atomically. So a reader sees the previous version or the new
one, never a half file, and a generation that fails leaves the store as it
was. Generations of one store are serialised by an exclusive lock on
``.lock`` (a cron job and a serving catalogue may share a folder). Only the
`keep` newest versions keep their files; the changelog keeps every version.
"""

from __future__ import annotations

import array
import contextlib
import datetime as dt
import fcntl
import json
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from spean.gateway.errors import ConfigError, FailedPrecondition
from spean.gateway.opendata.model import Column, DatasetIndex, FileEntry, Format, Version
from spean.gateway.opendata.writers import VersionWriter

INDEX = "index.json"
DEFAULT_KEEP = 10


class DatasetStore:
    """The folder of every dataset's versions."""

    def __init__(self, root: Path, *, keep: int = DEFAULT_KEEP) -> None:
        if keep < 1:
            raise ConfigError(f"keep {keep}: at least the newest version must be kept")
        self.root = root
        self.keep = keep
        self._lock = threading.Lock()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the dataset folder {root}: {exc.strerror}") from exc

    def folder(self, dataset: str) -> Path:
        return self.root / dataset

    def index(self, dataset: str) -> DatasetIndex:
        """The dataset's versions (none before its first generation)."""
        path = self.folder(dataset) / INDEX
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return DatasetIndex(dataset)
        except (OSError, ValueError) as exc:
            raise FailedPrecondition(f"cannot read the dataset index {path}: {exc}") from exc
        try:
            return DatasetIndex.from_document(document)
        except (KeyError, TypeError, ValueError) as exc:
            raise FailedPrecondition(f"the dataset index {path} is damaged: {exc}") from exc

    def path(self, dataset: str, version: Version, fmt: Format) -> Path | None:
        entry = version.file(fmt)
        if entry is None or not version.available:
            return None
        return self.folder(dataset) / entry.name

    @contextlib.contextmanager
    def generation(self, dataset: str, columns: Sequence[Column]) -> Iterator[VersionWriter]:
        """A writer for the next version; on any error nothing of it remains."""
        with self._lock, self._file_lock():
            folder = self.folder(dataset)
            folder.mkdir(parents=True, exist_ok=True)
            number = len(self.index(dataset).versions) + 1
            writer = VersionWriter(folder, dataset, number, columns)
            try:
                yield writer
            finally:
                writer.abort()  # after commit only the emptied temporary folder is left

    def commit(
        self,
        writer: VersionWriter,
        dataset: str,
        *,
        exchange_ids: Sequence[str],
        configuration_version: int,
        generated_at: dt.datetime,
    ) -> Version:
        """Make the writer's files the dataset's next version (inside `generation`)."""
        files = writer.finish()
        folder = self.folder(dataset)
        index = self.index(dataset)
        previous = index.latest
        added = removed = None
        if previous is not None:
            old = self._row_hashes(folder, previous.number)
            if old is not None:
                added, removed = _row_changes(old, writer.row_hashes)
        number = len(index.versions) + 1
        with (writer.temp / _rows_name(dataset, number)).open("wb") as rows:
            writer.row_hashes.tofile(rows)
            rows.flush()
            os.fsync(rows.fileno())
        for entry in files:
            os.replace(writer.temp / entry.name, folder / entry.name)
        os.replace(writer.temp / _rows_name(dataset, number), folder / _rows_name(dataset, number))
        _fsync_folder(folder)
        version = Version(
            number=number,
            generated_at=generated_at,
            rows=writer.rows,
            files=files,
            exchange_ids=tuple(exchange_ids),
            configuration_version=configuration_version,
            rows_added=added,
            rows_removed=removed,
        )
        updated, stale = index.with_version(version, self.keep)
        _write_atomically(folder / INDEX, json.dumps(updated.to_document(), indent=1) + "\n")
        for old_version in updated.versions:
            if not old_version.available:
                stale += (_rows_name(dataset, old_version.number),)
        for name in stale:
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
        return version

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _row_hashes(self, folder: Path, number: int) -> array.array[int] | None:
        path = folder / _rows_name(folder.name, number)
        hashes = array.array("Q")
        try:
            with path.open("rb") as handle:
                hashes.frombytes(handle.read())
        except FileNotFoundError:
            return None
        return hashes


def _rows_name(dataset: str, number: int) -> str:
    return f"{dataset}-v{number}.rows"


def _distinct(hashes: array.array[int]) -> Any:
    values = pa.Array.from_buffers(pa.uint64(), len(hashes), [None, pa.py_buffer(hashes)])
    return pc.unique(values)


def _row_changes(old: array.array[int], new: array.array[int]) -> tuple[int, int]:
    """(distinct rows of `new` not in `old`, distinct rows of `old` not in `new`)."""
    old_set, new_set = _distinct(old), _distinct(new)
    kept_new: pa.BooleanArray = pc.is_in(new_set, value_set=old_set)
    kept_old: pa.BooleanArray = pc.is_in(old_set, value_set=new_set)
    return len(new_set) - kept_new.true_count, len(old_set) - kept_old.true_count


def _write_atomically(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    with temp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


__all__ = ["DEFAULT_KEEP", "INDEX", "DatasetStore", "FileEntry"]
