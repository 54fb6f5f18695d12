"""The catalogue's JSON API (FastAPI), its DCAT-AP and descriptor set downloads.

`create_app(service)` builds the ASGI application; `spean catalogue serve`
runs it with uvicorn. Routes (docs/catalogue.md lists them with examples):

    GET /api/v1/catalogue                                   summary: version, counts, topics
    GET /api/v1/catalogue/members[/{member}]                members and their subsystems
    GET /api/v1/catalogue/subsystems/{subsystem}            a subsystem and its metadata
    GET /api/v1/catalogue/subsystems/{subsystem}/descriptors its FileDescriptorSet (binary)
    GET /api/v1/catalogue/services?q=&member=&topic=&data_class=&lang=&limit=&offset=
    GET /api/v1/catalogue/services/{service}                everything about one method
    GET /api/v1/catalogue/dcat.ttl | dcat.jsonld            DCAT-AP 3, Turtle or JSON-LD
    GET /api/v1/openapi.json, /api/v1/docs                  the generated OpenAPI document
    GET /api/v1/catalogue/datasets[/...]                    open datasets (gateway/opendata/api.py)

Identifiers are written as they are (``KH/GOV/MPWT/vehicles``, a service as
``KH/GOV/MPWT/vehicles:/vehicles.v1.VehicleRegistry/GetVehicle``); the path
converter takes the slashes. Errors are the error tree's, translated here
once: under the web pages (gateway/catalogue/pages.py, served by the same
application) a `SpeanError` is a page in the reader's language; under the API
a `SpeanError` becomes its HTTP status and a JSON body
``{"error": message, "status": grpc status name}``; a malformed query
parameter is FastAPI's 422 naming the parameter. No route writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import quote

import grpc
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from spean.gateway.catalogue import dcat, pages
from spean.gateway.catalogue.model import MemberEntry, ServiceEntry, SubsystemEntry
from spean.gateway.catalogue.search import MAX_LIMIT, MAX_QUERY_LENGTH, SearchQuery
from spean.gateway.catalogue.service import CatalogueService
from spean.gateway.catalogue_metadata import Text
from spean.gateway.errors import NotFound, SpeanError
from spean.gateway.opendata import api as opendata_api
from spean.gateway.opendata.model import Version
from spean.gateway.opendata.store import DatasetStore

PREFIX = "/api/v1/catalogue"

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.FAILED_PRECONDITION: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


@dataclass(frozen=True, slots=True)
class CatalogueSummary:
    instance: str
    version: int
    issued_at: str
    expires_at: str
    members: int
    subsystems: int
    services: int
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ServiceSummary:
    id: str
    member: str
    member_name: str
    subsystem: str
    path: str
    server_streaming: bool
    title: Text
    display_title: str  # the title in the language asked for (English when untranslated)
    data_class: str | None
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SearchPage:
    total: int
    limit: int
    offset: int
    language: str
    services: tuple[ServiceSummary, ...]


def _summary(service: ServiceEntry, language: str) -> ServiceSummary:
    meta = service.metadata
    return ServiceSummary(
        id=service.id,
        member=service.member,
        member_name=service.member_name,
        subsystem=service.subsystem,
        path=service.path,
        server_streaming=service.server_streaming,
        title=service.title,
        display_title=service.title.in_language(language),
        data_class=meta.data_class if meta is not None else None,
        topics=meta.topics if meta is not None else (),
    )


def create_app(service: CatalogueService, datasets: DatasetStore | None = None) -> FastAPI:
    app = FastAPI(
        title="Spean catalogue",
        version="1",
        description="Every service published in the federation, from its signed global"
        " configuration.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    dcat_cache: dict[tuple[object, ...], str] = {}

    @app.exception_handler(SpeanError)
    async def _spean_error(request: Request, exc: SpeanError) -> Response:
        status = HTTP_STATUS.get(exc.code, 500)
        if pages.is_page(request):
            return pages.page_error(request, status, exc)
        message = exc.message if status != 500 else "internal error; see the catalogue's log"
        return JSONResponse({"error": message, "status": exc.code.name}, status_code=status)

    @app.get(PREFIX, response_model=CatalogueSummary)
    def summary() -> CatalogueSummary:
        catalogue = service.current()
        return CatalogueSummary(
            instance=catalogue.instance,
            version=catalogue.version,
            issued_at=catalogue.issued_at.isoformat(),
            expires_at=catalogue.expires_at.isoformat(),
            members=len(catalogue.members),
            subsystems=len(catalogue.subsystems),
            services=len(catalogue.services),
            topics=catalogue.topics,
        )

    @app.get(f"{PREFIX}/dcat.ttl", response_class=Response)
    def dcat_turtle() -> Response:
        body = _dcat("turtle")
        return Response(body, media_type="text/turtle; charset=utf-8")

    @app.get(f"{PREFIX}/dcat.jsonld", response_class=Response)
    def dcat_json_ld() -> Response:
        return Response(_dcat("json-ld"), media_type="application/ld+json")

    def _dcat(kind: str) -> str:
        catalogue = service.current()
        latest: dict[str, Version] | None = None
        if datasets is not None:  # each generated dataset's newest version
            latest = {}
            for declared in dcat.open_datasets(catalogue):
                if (newest := datasets.index(declared.id).latest) is not None:
                    latest[declared.id] = newest
        key = (catalogue.version, kind, tuple((k, v.number) for k, v in (latest or {}).items()))
        if key not in dcat_cache:
            graph = dcat.catalogue_graph(catalogue, service.base_url, latest)
            text = dcat.to_turtle(graph) if kind == "turtle" else dcat.to_json_ld(graph)
            dcat_cache.clear()  # only the held version is ever asked for again
            dcat_cache[key] = text
        return dcat_cache[key]

    @app.get(f"{PREFIX}/members", response_model=tuple[MemberEntry, ...])
    def members() -> tuple[MemberEntry, ...]:
        return service.current().members

    @app.get(f"{PREFIX}/members/{{member_id:path}}", response_model=MemberEntry)
    def member(member_id: str) -> MemberEntry:
        found = service.current().member(member_id)
        if found is None:
            raise NotFound(f"member {member_id!r} is not in the catalogue")
        return found

    @app.get(f"{PREFIX}/subsystems/{{subsystem_id:path}}/descriptors", response_class=Response)
    def descriptors(subsystem_id: str) -> Response:
        catalogue = service.current()
        if catalogue.subsystem(subsystem_id) is None:
            raise NotFound(f"subsystem {subsystem_id!r} is not in the catalogue")
        data = catalogue.descriptors(subsystem_id)
        if not data:
            raise NotFound(f"subsystem {subsystem_id} published no descriptor set")
        name = quote(subsystem_id.replace("/", "_"))
        return Response(
            data,
            media_type="application/x-protobuf",
            headers={"Content-Disposition": f'attachment; filename="{name}.binpb"'},
        )

    @app.get(f"{PREFIX}/subsystems/{{subsystem_id:path}}", response_model=SubsystemEntry)
    def subsystem(subsystem_id: str) -> SubsystemEntry:
        found = service.current().subsystem(subsystem_id)
        if found is None:
            raise NotFound(f"subsystem {subsystem_id!r} is not in the catalogue")
        return found

    @app.get(f"{PREFIX}/services", response_model=SearchPage)
    def search(
        q: Annotated[str, Query(max_length=MAX_QUERY_LENGTH, description="search text")] = "",
        member: Annotated[str | None, Query(description="member id, e.g. KH/GOV/MOH")] = None,
        topic: Annotated[str | None, Query(description="topic code, e.g. health")] = None,
        data_class: Literal["public", "internal", "personal"] | None = None,
        lang: Literal["en", "km"] = "en",
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> SearchPage:
        query = SearchQuery(q, member, topic, data_class, limit, offset)
        page = service.search(query)
        return SearchPage(
            total=page.total,
            limit=limit,
            offset=offset,
            language=lang,
            services=tuple(_summary(s, lang) for s in page.services),
        )

    @app.get(f"{PREFIX}/services/{{service_id:path}}", response_model=ServiceEntry)
    def service_detail(service_id: str) -> ServiceEntry:
        found = service.current().service(service_id)
        if found is None:
            raise NotFound(f"service {service_id!r} is not in the catalogue")
        return found

    pages.install(app, service)

    if datasets is not None:  # the open-data routes (gateway/opendata/api.py)
        app.include_router(
            opendata_api.create_router(
                datasets, lambda: dcat.open_datasets(service.current()), lambda: service.base_url
            )
        )
    return app


__all__ = ["PREFIX", "CatalogueSummary", "SearchPage", "ServiceSummary", "create_app"]
