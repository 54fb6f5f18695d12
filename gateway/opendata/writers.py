"""Writing one version of a dataset as CSV, JSON Lines and Parquet, row by row.

`VersionWriter` takes rows as they arrive and writes them to the three files
at once, in a temporary folder beside the dataset's files. Memory is bounded:
CSV and JSON Lines are written line by line, Parquet in row groups of
`ROW_GROUP` rows (the only rows held), and per row only an 8-byte hash is
kept for the changelog's rows added/removed counts (8 MB per million rows).

Nothing is visible until `finish`: it closes the files, fsyncs them, and only
then does the store rename them into place. `abort` removes the temporary
folder, so a failed generation leaves no half file anywhere.

Why JSON Lines, not a JSON array: each line is a whole row, so a reader can
stream a million rows without holding them, a truncated download is detected
by its checksum and cannot parse as a valid but shorter document, and the
file is the same rows, in the same order, as the CSV.
"""

from __future__ import annotations

import array
import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, cast

import pyarrow as pa
import pyarrow.parquet as pq

from spean.gateway.opendata.model import (
    FORMATS,
    Column,
    FileEntry,
    Value,
    file_name,
    json_of,
    text_of,
)

ROW_GROUP = 16_384
"""Rows held in memory for one Parquet row group."""

_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint64": pa.uint64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "bytes": pa.binary(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "json": pa.string(),
}


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    """The Parquet schema of `columns`: each column typed from its protobuf field."""
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.kind], nullable=c.nullable) for c in columns])


class _HashingFile(io.RawIOBase):
    """A binary file that hashes and counts every byte written to it."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("wb")
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data)
        self._file.write(view)
        self.sha256.update(view)
        self.size += len(view)
        return len(view)

    def sync_and_close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        super().close()


class _TextSink:
    """Text written by the CSV writer, encoded as UTF-8 into a hashing file."""

    def __init__(self, raw: _HashingFile) -> None:
        self._raw = raw

    def write(self, text: str) -> int:
        self._raw.write(text.encode())
        return len(text)


class VersionWriter:
    """The three files of version `number` of `dataset`, written as rows arrive."""

    def __init__(self, folder: Path, dataset: str, number: int, columns: Sequence[Column]) -> None:
        self.columns = tuple(columns)
        self.rows = 0
        self.row_hashes = array.array("Q")
        self._names = {fmt: file_name(dataset, number, fmt) for fmt in FORMATS}
        self.temp = Path(tempfile.mkdtemp(prefix=f".{dataset}-v{number}-", dir=folder))
        self._files = {fmt: _HashingFile(self.temp / self._names[fmt]) for fmt in FORMATS}
        self._csv = csv.writer(_TextSink(self._files["csv"]))
        self._csv.writerow([c.name for c in self.columns])
        self._names_list = [c.name for c in self.columns]
        self._schema = arrow_schema(self.columns)
        self._parquet = pq.ParquetWriter(
            cast(IO[bytes], self._files["parquet"]), self._schema, compression="zstd"
        )
        self._pending: list[list[Value]] = [[] for _ in self.columns]
        self._json = self._files["json"]

    def write(self, values: Sequence[Value]) -> None:
        self._csv.writerow([text_of(v) for v in values])
        line = (
            json.dumps(
                {
                    name: (json.loads(v) if c.kind == "json" and isinstance(v, str) else json_of(v))
                    for name, c, v in zip(self._names_list, self.columns, values, strict=True)
                },
                ensure_ascii=False,
                separators=(",", ":"),
            )
            + "\n"
        ).encode()
        self._json.write(line)
        self.row_hashes.append(
            int.from_bytes(hashlib.blake2b(line, digest_size=8).digest(), "little")
        )
        for pending, value in zip(self._pending, values, strict=True):
            pending.append(value)
        self.rows += 1
        if len(self._pending[0]) >= ROW_GROUP:
            self._flush_group()

    def _flush_group(self) -> None:
        if not self._pending[0]:
            return
        batch = pa.record_batch(
            [
                pa.array(values, type=field.type)
                for values, field in zip(self._pending, self._schema, strict=True)
            ],
            schema=self._schema,
        )
        self._parquet.write_batch(batch)
        self._pending = [[] for _ in self.columns]

    def finish(self) -> tuple[FileEntry, ...]:
        """Close and fsync the files; they are complete in `self.temp`."""
        self._flush_group()
        self._parquet.close()
        entries = []
        for fmt in FORMATS:
            handle = self._files[fmt]
            handle.sync_and_close()
            entries.append(FileEntry(fmt, self._names[fmt], handle.sha256.hexdigest(), handle.size))
        return tuple(entries)

    def abort(self) -> None:
        """Drop everything written; nothing of this version remains."""
        if self._parquet.is_open:
            # Closing writes the footer into the temporary file, which is removed below.
            self._parquet.close()
        for handle in self._files.values():
            handle.close()
        shutil.rmtree(self.temp, ignore_errors=True)


__all__ = ["ROW_GROUP", "VersionWriter", "arrow_schema"]
