"""The open-data routes of the catalogue's JSON API: datasets, versions and downloads.

Included by `spean.gateway.catalogue.api.create_app` when the catalogue
serves a dataset folder. Routes (docs/catalogue.md, "Open data")::

    GET /api/v1/catalogue/datasets                        every declared dataset, its latest version
    GET /api/v1/catalogue/datasets/{id}                   its metadata, versions and changelog
    GET /api/v1/catalogue/datasets/{id}/{version}.{ext}   a file: csv, json (JSON Lines), parquet
    GET /api/v1/catalogue/datasets/{id}/{version}.sha256  the version's checksums (sha256sum -c)

`{version}` is a number or ``latest``. Files are streamed from disk
(`FileResponse`: Content-Length, Range); the ETag is the file's SHA-256, and
``If-None-Match`` with it answers 304. The datasets listed are those the
held configuration declares; a version is served only once complete.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response

from spean.gateway.catalogue_metadata import OpenDataset, Text
from spean.gateway.errors import NotFound
from spean.gateway.opendata.model import (
    EXTENSIONS,
    FORMATS,
    MEDIA_TYPES,
    DatasetIndex,
    Format,
    Version,
    checksums_text,
)
from spean.gateway.opendata.store import DatasetStore

PREFIX = "/api/v1/catalogue/datasets"
_FORMAT_OF: dict[str, Format] = {
    "csv": "csv",
    "json": "json",
    "jsonl": "json",
    "parquet": "parquet",
}


@dataclass(frozen=True, slots=True)
class Download:
    format: str
    url: str
    media_type: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class VersionEntry:
    version: int
    generated_at: str
    rows: int
    rows_added: int | None
    rows_removed: int | None
    exchange_ids: tuple[str, ...]
    configuration_version: int
    available: bool
    downloads: tuple[Download, ...]


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    id: str
    subsystem: str
    method: str
    title: Text
    description: Text
    licence: str
    licence_url: str
    frequency: str
    dropped_fields: tuple[str, ...]
    pseudonymised_fields: tuple[str, ...]
    latest: VersionEntry | None


@dataclass(frozen=True, slots=True)
class DatasetDetail(DatasetSummary):
    versions: tuple[VersionEntry, ...] = ()


def downloads(
    base: str, dataset: str, version: Version, label: str | None = None
) -> tuple[Download, ...]:
    """The download links of `version` under the API at `base` (``label`` e.g. latest)."""
    shown = label or str(version.number)
    return tuple(
        Download(f.format, f"{base}{PREFIX}/{dataset}/{shown}.{f.format}",
                 MEDIA_TYPES[f.format], f.sha256, f.size)
        for f in version.files
    )  # fmt: skip


def _version_entry(base: str, dataset: str, version: Version) -> VersionEntry:
    return VersionEntry(
        version=version.number,
        generated_at=version.generated_at.isoformat(),
        rows=version.rows,
        rows_added=version.rows_added,
        rows_removed=version.rows_removed,
        exchange_ids=version.exchange_ids,
        configuration_version=version.configuration_version,
        available=version.available,
        downloads=downloads(base, dataset, version) if version.available else (),
    )


def _summary_fields(base: str, dataset: OpenDataset, index: DatasetIndex) -> dict[str, Any]:
    latest = index.latest
    return {
        "id": dataset.id,
        "subsystem": dataset.subsystem,
        "method": dataset.method,
        "title": dataset.title,
        "description": dataset.description,
        "licence": dataset.licence,
        "licence_url": dataset.licence_url,
        "frequency": dataset.frequency,
        "dropped_fields": dataset.dropped,
        "pseudonymised_fields": dataset.pseudonymised,
        "latest": _version_entry(base, dataset.id, latest) if latest else None,
    }


def create_router(
    store: DatasetStore,
    declared: Callable[[], Sequence[OpenDataset]],
    base_url: Callable[[], str],
) -> APIRouter:
    """The routes serving `store` for the datasets `declared()` names."""
    router = APIRouter()

    def find(dataset_id: str) -> OpenDataset:
        found = next((d for d in declared() if d.id == dataset_id), None)
        if found is None:
            raise NotFound(f"dataset {dataset_id!r} is not in the catalogue")
        return found

    @router.get(PREFIX, response_model=tuple[DatasetSummary, ...])
    def list_datasets() -> tuple[DatasetSummary, ...]:
        base = base_url()
        return tuple(
            DatasetSummary(**_summary_fields(base, d, store.index(d.id))) for d in declared()
        )

    @router.get(f"{PREFIX}/{{dataset_id}}", response_model=DatasetDetail)
    def dataset_detail(dataset_id: str) -> DatasetDetail:
        dataset = find(dataset_id)
        index = store.index(dataset.id)
        base = base_url()
        return DatasetDetail(
            **_summary_fields(base, dataset, index),
            versions=tuple(_version_entry(base, dataset.id, v) for v in index.versions),
        )

    @router.api_route(
        f"{PREFIX}/{{dataset_id}}/{{name}}", methods=["GET", "HEAD"], response_class=Response
    )
    def download(dataset_id: str, name: str, request: Request) -> Response:
        dataset = find(dataset_id)
        label, dot, extension = name.rpartition(".")
        if not dot or (extension not in _FORMAT_OF and extension != "sha256"):
            raise NotFound(
                f"{name!r}: ask for VERSION.EXT, EXT one of"
                f" {', '.join(EXTENSIONS[f] for f in FORMATS)}, json or sha256"
            )
        index = store.index(dataset.id)
        version = _version(index, label)
        if extension == "sha256":
            return PlainTextResponse(checksums_text(version))
        fmt = _FORMAT_OF[extension]
        entry = version.file(fmt)
        path = store.path(dataset.id, version, fmt)
        if entry is None or path is None or not path.is_file():
            raise NotFound(f"dataset {dataset.id} version {version.number} has no {fmt} file kept")
        etag = f'"{entry.sha256}"'
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers={"ETag": etag})
        return FileResponse(
            path,
            media_type=MEDIA_TYPES[fmt],
            filename=entry.name,
            headers={"ETag": etag, "Cache-Control": "public, max-age=60"},
        )

    return router


def _version(index: DatasetIndex, label: str) -> Version:
    if label == "latest":
        found = index.latest
        if found is None:
            raise NotFound(f"dataset {index.dataset} has not been generated yet")
        return found
    if not label.isdigit():
        raise NotFound(f"{label!r} is neither a version number nor 'latest'")
    found = index.version(int(label))
    if found is None:
        raise NotFound(f"dataset {index.dataset} has no version {label}")
    if not found.available:
        raise NotFound(
            f"dataset {index.dataset} version {label} is no longer kept; the latest is"
            f" {index.latest.number if index.latest else 'none'}"
        )
    return found


__all__ = ["PREFIX", "DatasetDetail", "DatasetSummary", "Download", "create_router", "downloads"]
