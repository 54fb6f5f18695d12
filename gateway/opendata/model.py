"""Open datasets as values: their columns, their rows, their versions and changelog (pure).

A dataset is the answers of one published method to fixed requests
(`catalogue_metadata.OpenDataset`). Its columns are the top-level fields of
the method's response message, typed from the protobuf descriptor, less the
fields the provider drops for the catalogue; each response message is one
row. Guarantees:

- `columns_of` is a function of the descriptor and the dropped fields only,
  so every version of a dataset from the same contract has the same columns;
- `RowEncoder.values` refuses (`FailedPrecondition`) a message that carries a
  field the dataset says is dropped: the catalogue never republishes a field
  the provider meant to mask, even when the provider's rule is missing;
- a version is immutable once recorded; the index lists versions in order,
  numbered from 1 without gaps, and keeps the changelog of every version even
  after old files are removed.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from spean.gateway.catalogue_metadata import OpenDataset
from spean.gateway.errors import FailedPrecondition, InvalidArgument
from spean.gateway.globalconf import SubsystemInfo

Format = Literal["csv", "json", "parquet"]
FORMATS: tuple[Format, ...] = ("csv", "json", "parquet")
EXTENSIONS: Mapping[Format, str] = {"csv": "csv", "json": "jsonl", "parquet": "parquet"}
MEDIA_TYPES: Mapping[Format, str] = {
    "csv": "text/csv",
    "json": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
PURPOSE = "open data publication"
"""The `spean-purpose` of every generation's exchange, in both audit logs."""

Kind = Literal["string", "int32", "int64", "uint64", "double", "bool", "bytes", "timestamp", "json"]

_SCALAR_KINDS: Mapping[int, Kind] = {
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_DOUBLE: "double",
    FieldDescriptor.TYPE_FLOAT: "double",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_SINT32: "int32",
    FieldDescriptor.TYPE_SFIXED32: "int32",
    FieldDescriptor.TYPE_UINT32: "int64",
    FieldDescriptor.TYPE_FIXED32: "int64",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_SINT64: "int64",
    FieldDescriptor.TYPE_SFIXED64: "int64",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_FIXED64: "uint64",
    FieldDescriptor.TYPE_ENUM: "string",  # by the value's name
}
_TIMESTAMP = "google.protobuf.Timestamp"


@dataclass(frozen=True, slots=True)
class Column:
    """One column: a top-level field of the response message."""

    name: str
    kind: Kind
    nullable: bool
    comment: str = ""


def columns_of(descriptor: Descriptor, dropped: Collection[str] = ()) -> tuple[Column, ...]:
    """The dataset's columns for response type `descriptor`, less top-level `dropped` fields.

    Scalars keep their type (unsigned 32-bit widened to int64, float to
    double), enums are written by name, `google.protobuf.Timestamp` is a UTC
    timestamp, and other messages, maps and repeated fields are JSON text
    (protobuf's JSON mapping). A field that can be absent (`optional`, a
    message) is nullable; a plain proto3 scalar is never null.
    """
    top = {path.split(".", 1)[0] for path in dropped if "." not in path}
    for path in dropped:
        if path.split(".", 1)[0] not in descriptor.fields_by_name:
            raise InvalidArgument(
                f"dropped field {path!r}: {descriptor.full_name} has no field"
                f" {path.split('.', 1)[0]!r}"
            )
    columns = []
    for fd in descriptor.fields:
        if fd.name in top:
            continue
        columns.append(Column(fd.name, _kind(fd), _nullable(fd)))
    if not columns:
        raise InvalidArgument(
            f"every field of {descriptor.full_name} is dropped: nothing to publish"
        )
    return tuple(columns)


def _kind(fd: FieldDescriptor) -> Kind:
    if fd.is_repeated:
        return "json"
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        is_time = fd.message_type is not None and fd.message_type.full_name == _TIMESTAMP
        return "timestamp" if is_time else "json"
    return _SCALAR_KINDS[fd.type]


def _nullable(fd: FieldDescriptor) -> bool:
    return not fd.is_repeated and bool(fd.has_presence)


Value = str | int | float | bool | bytes | dt.datetime | None


class RowEncoder:
    """Turns each response message into its row of values, in column order."""

    def __init__(self, descriptor: Descriptor, dataset: OpenDataset) -> None:
        self.columns = columns_of(descriptor, dataset.dropped)
        self._dataset = dataset.id
        # Nested paths too (owner.id): a dropped field anywhere in the answer stops it.
        self._dropped = tuple(p.split(".") for p in dataset.dropped)
        self._getters = [_getter(descriptor.fields_by_name[c.name]) for c in self.columns]

    def values(self, message: Message) -> tuple[Value, ...]:
        if self._dropped:
            present = {".".join(p) for p in self._dropped if _carries(message, p)}
            if present:
                raise FailedPrecondition(
                    f"dataset {self._dataset}: the provider's answer carries"
                    f" {', '.join(sorted(present))}, which the dataset says the provider drops;"
                    " its access rule for the catalogue lacks that minimise rule, so nothing is"
                    " published"
                )
        return tuple(get(message) for get in self._getters)


def _carries(message: Message, path: Sequence[str]) -> bool:
    """Whether `message` holds a value at the field path (through nested and repeated
    messages)."""
    for fd, value in message.ListFields():
        if fd.name != path[0]:
            continue
        if len(path) == 1:
            return True
        if fd.message_type is None:
            return False
        items = value if fd.is_repeated else [value]
        return any(_carries(item, path[1:]) for item in items)
    return False


def _getter(fd: FieldDescriptor) -> Callable[[Message], Value]:
    name = fd.name
    kind = _kind(fd)
    if kind == "json":
        is_map = fd.message_type is not None and fd.message_type.GetOptions().map_entry

        def as_json(message: Message) -> Value:
            value = getattr(message, name)
            document: object
            if is_map:
                document = {str(k): _plain(v) for k, v in value.items()}
            elif fd.is_repeated:
                document = [_plain(v) for v in value]
            elif not message.HasField(name):
                return None
            else:
                document = _plain(value)
            return json.dumps(document, ensure_ascii=False)

        return as_json
    if kind == "timestamp":

        def as_time(message: Message) -> Value:
            if not message.HasField(name):
                return None
            value: dt.datetime = getattr(message, name).ToDatetime(tzinfo=dt.UTC)
            return value

        return as_time
    if fd.type == FieldDescriptor.TYPE_ENUM:
        names = {v.number: v.name for v in fd.enum_type.values} if fd.enum_type else {}

        def as_enum(message: Message) -> Value:
            if fd.has_presence and not message.HasField(name):
                return None
            number = getattr(message, name)
            return names.get(number, str(number))

        return as_enum
    if fd.has_presence:

        def optional(message: Message) -> Value:
            return getattr(message, name) if message.HasField(name) else None

        return optional

    def plain(message: Message) -> Value:
        value: Value = getattr(message, name)
        return value

    return plain


def _plain(value: object) -> object:
    if isinstance(value, Message):
        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    return value


def text_of(value: Value) -> str:
    """A value as CSV writes it: empty for null, RFC 3339 times, base64 bytes."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


def json_of(value: Value) -> object:
    """A value as a JSON Lines row holds it (JSON columns nested, not as text)."""
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a version."""

    format: Format
    name: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Version:
    """One generation of a dataset, and its changelog entry."""

    number: int
    generated_at: dt.datetime
    rows: int
    files: tuple[FileEntry, ...]
    exchange_ids: tuple[str, ...]
    configuration_version: int
    rows_added: int | None = None  # distinct rows not in the previous version
    rows_removed: int | None = None  # distinct rows of the previous version now gone
    available: bool = True  # False once the files were removed (older than kept)

    def file(self, fmt: Format) -> FileEntry | None:
        return next((f for f in self.files if f.format == fmt), None)

    def to_document(self) -> dict[str, Any]:
        return {
            "version": self.number,
            "generated_at": self.generated_at.isoformat(),
            "rows": self.rows,
            "files": [
                {"format": f.format, "name": f.name, "sha256": f.sha256, "size": f.size}
                for f in self.files
            ],
            "exchange_ids": list(self.exchange_ids),
            "configuration_version": self.configuration_version,
            "rows_added": self.rows_added,
            "rows_removed": self.rows_removed,
            "available": self.available,
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Version:
        return cls(
            number=int(document["version"]),
            generated_at=dt.datetime.fromisoformat(document["generated_at"]),
            rows=int(document["rows"]),
            files=tuple(
                FileEntry(f["format"], f["name"], f["sha256"], int(f["size"]))
                for f in document["files"]
            ),
            exchange_ids=tuple(document["exchange_ids"]),
            configuration_version=int(document["configuration_version"]),
            rows_added=document.get("rows_added"),
            rows_removed=document.get("rows_removed"),
            available=bool(document.get("available", True)),
        )


@dataclass(frozen=True, slots=True)
class DatasetIndex:
    """Every version of one dataset, oldest first."""

    dataset: str
    versions: tuple[Version, ...] = field(default=())

    @property
    def latest(self) -> Version | None:
        return self.versions[-1] if self.versions else None

    def version(self, number: int) -> Version | None:
        if 1 <= number <= len(self.versions):
            return self.versions[number - 1]
        return None

    def with_version(self, version: Version, keep: int) -> tuple[DatasetIndex, tuple[str, ...]]:
        """This index with `version` appended, and the file names no longer kept.

        Only the `keep` newest versions keep their files; older ones stay in
        the changelog, marked unavailable.
        """
        if version.number != len(self.versions) + 1:
            raise ValueError(f"version {version.number} does not follow {len(self.versions)}")
        versions = [*self.versions, version]
        removed: list[str] = []
        for n, old in enumerate(versions[:-keep] if keep > 0 else []):
            if old.available:
                removed.extend(f.name for f in old.files)
                versions[n] = _unavailable(old)
        return DatasetIndex(self.dataset, tuple(versions)), tuple(removed)

    def to_document(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "versions": [v.to_document() for v in self.versions]}

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> DatasetIndex:
        versions = tuple(Version.from_document(v) for v in document["versions"])
        for n, version in enumerate(versions, start=1):
            if version.number != n:
                raise ValueError(f"version {version.number} is listed at position {n}")
        return cls(str(document["dataset"]), versions)


def _unavailable(version: Version) -> Version:
    return Version(
        version.number,
        version.generated_at,
        version.rows,
        version.files,
        version.exchange_ids,
        version.configuration_version,
        version.rows_added,
        version.rows_removed,
        available=False,
    )


def file_name(dataset: str, number: int, fmt: Format) -> str:
    return f"{dataset}-v{number}.{EXTENSIONS[fmt]}"


def checksums_text(version: Version) -> str:
    """The version's checksums in the `sha256sum` format (``sha256sum -c`` checks them)."""
    return "".join(f"{f.sha256}  {f.name}\n" for f in version.files)


def open_datasets_of(subsystems: Sequence[SubsystemInfo]) -> list[OpenDataset]:
    """Every open dataset the subsystems' catalogue metadata declares, in order."""
    found: list[OpenDataset] = []
    for info in subsystems:
        if info.catalogue is not None:
            found.extend(info.catalogue.open_data)
    return found


__all__ = [
    "EXTENSIONS",
    "FORMATS",
    "MEDIA_TYPES",
    "PURPOSE",
    "Column",
    "DatasetIndex",
    "FileEntry",
    "Format",
    "Kind",
    "RowEncoder",
    "Value",
    "Version",
    "checksums_text",
    "columns_of",
    "file_name",
    "json_of",
    "open_datasets_of",
    "text_of",
]
