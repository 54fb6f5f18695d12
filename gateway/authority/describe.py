"""The catalogue metadata file a provider hands to the authority (`spean authority describe`).

A provider writes one YAML file per subsystem (docs/catalogue.md shows every
field); `read_metadata_file` validates it with pydantic and names the field
of any problem; `to_catalogue_entry` turns it into the `CatalogueEntry` that
the signed global configuration carries. The registry keeps the validated
document (`CatalogueDocument.stored`), so registry.yaml stays readable, and
every publication converts it again: a hand-edited registry is checked like
a file.

Checks that need the subsystem (its published methods, its instance) are the
pure ones of `spean.gateway.catalogue_metadata`, run by `Authority.describe`
and again when the configuration is verified before publication.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from spean.gateway.catalogue_metadata import (
    DATA_CLASS_TO_PROTO,
    DATASET_ID,
    FREQUENCIES,
    MAX_DATASET_REQUESTS,
    SPDX_ID,
    TOPIC,
)
from spean.gateway.errors import ConfigError
from spean.v1 import config_pb2

_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class LocalizedText(_Model):
    """English (required) and Khmer (optional)."""

    en: str = Field(min_length=1, max_length=4000)
    km: str = Field(default="", max_length=4000)


class Contact(_Model):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(default="", pattern=_EMAIL + "|^$", max_length=320)
    telephone: str = Field(default="", pattern=r"^(\+?[0-9][0-9 ()-]{4,30})?$")
    role: str = Field(default="", max_length=200)

    def model_post_init(self, context: Any) -> None:
        if not (self.email or self.telephone):
            raise ValueError(f"contact {self.name!r} needs an email or a telephone")


class Access(_Model):
    client: str = Field(min_length=1, description="client subsystem INSTANCE/CLASS/MEMBER/SUB")
    methods: list[str] = Field(min_length=1)


class MethodText(_Model):
    path: str = Field(min_length=1, description="/package.Service/Method")
    summary: LocalizedText


class Masking(_Model):
    """The minimise rules of the access rule that grants the catalogue's subsystem."""

    drop: list[str] = Field(default_factory=list)
    pseudonymise: list[str] = Field(default_factory=list)


class OpenDataset(_Model):
    """A dataset published for download from one method (docs/catalogue.md, "Open data")."""

    id: str = Field(pattern=f"^{DATASET_ID.pattern}$")
    title: LocalizedText
    description: LocalizedText
    method: str = Field(min_length=1, description="/package.Service/Method")
    request: dict[str, Any] | None = Field(default=None, description="the request message")
    requests: list[dict[str, Any]] | None = Field(
        default=None, min_length=1, max_length=MAX_DATASET_REQUESTS
    )
    licence: str = Field(min_length=1, description="SPDX identifier or http(s) URL")
    frequency: str = Field(description="EU frequency code, e.g. MONTHLY")
    masking: Masking = Field(default_factory=Masking)

    @field_validator("licence")
    @classmethod
    def _licence(cls, licence: str) -> str:
        if not (licence.startswith(("http://", "https://")) or SPDX_ID.fullmatch(licence)):
            raise ValueError(f"{licence!r} is neither an SPDX identifier (CC-BY-4.0) nor a URL")
        return licence

    @field_validator("frequency")
    @classmethod
    def _frequency(cls, frequency: str) -> str:
        if frequency not in FREQUENCIES:
            raise ValueError(f"{frequency!r} is not one of {', '.join(FREQUENCIES)}")
        return frequency

    def model_post_init(self, context: Any) -> None:
        if (self.request is None) == (self.requests is None):
            raise ValueError(f"open dataset {self.id!r}: give either request or requests")

    def request_texts(self) -> list[str]:
        given = [self.request] if self.request is not None else self.requests or []
        return [json.dumps(r, ensure_ascii=False, sort_keys=True) for r in given]


class CatalogueDocument(_Model):
    """The metadata file: one subsystem's catalogue entry."""

    title: LocalizedText
    description: LocalizedText
    topics: list[str] = Field(min_length=1, max_length=10)
    data_class: Literal["public", "internal", "personal"]
    contacts: list[Contact] = Field(min_length=1, max_length=10)
    terms_of_use: LocalizedText | None = None
    licence: str = Field(default="", pattern=r"^(https?://\S+)?$")
    legal_basis: LocalizedText | None = None
    access: list[Access] = Field(default_factory=list)
    methods: list[MethodText] = Field(default_factory=list)
    open_data: list[OpenDataset] = Field(default_factory=list, max_length=100)

    @field_validator("topics")
    @classmethod
    def _topics(cls, topics: list[str]) -> list[str]:
        for topic in topics:
            if not TOPIC.fullmatch(topic):
                raise ValueError(f"topic {topic!r} must be a lower-case code such as 'health'")
        if len(set(topics)) != len(topics):
            raise ValueError("a topic is listed twice")
        return topics

    def model_post_init(self, context: Any) -> None:
        if self.data_class == "personal" and self.legal_basis is None:
            raise ValueError("personal data needs a legal_basis (the law that allows sharing it)")

    def stored(self) -> dict[str, Any]:
        """The document as registry.yaml keeps it (defaults left out)."""
        return self.model_dump(mode="json", exclude_defaults=True)


def parse_document(document: object, where: str) -> CatalogueDocument:
    """Validate a parsed YAML document; errors name `where` and each bad field."""
    try:
        return CatalogueDocument.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'document'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(f"{where}: {problems}") from None


def read_metadata_file(path: Path) -> CatalogueDocument:
    """Read and validate a provider's catalogue metadata YAML file."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid UTF-8 YAML: {exc}") from exc
    return parse_document(document, str(path))


def to_catalogue_entry(
    document: CatalogueDocument, updated_at: dt.datetime | None
) -> config_pb2.CatalogueEntry:
    """The `CatalogueEntry` message for `document` (pure)."""

    def text(value: LocalizedText | None) -> config_pb2.LocalizedText:
        if value is None:
            return config_pb2.LocalizedText()
        return config_pb2.LocalizedText(en=value.en, km=value.km)

    entry = config_pb2.CatalogueEntry(
        title=text(document.title),
        description=text(document.description),
        topics=document.topics,
        data_class=DATA_CLASS_TO_PROTO[document.data_class],  # type: ignore[arg-type]
        contacts=[
            config_pb2.CatalogueContact(
                name=c.name, email=c.email, telephone=c.telephone, role=c.role
            )
            for c in document.contacts
        ],
        terms_of_use=text(document.terms_of_use),
        licence=document.licence,
        legal_basis=text(document.legal_basis),
        access=[
            config_pb2.CatalogueAccess(client=a.client, methods=a.methods) for a in document.access
        ],
        methods=[
            config_pb2.CatalogueMethodText(path=m.path, summary=text(m.summary))
            for m in document.methods
        ],
        open_data=[
            config_pb2.CatalogueOpenDataset(
                id=d.id,
                title=text(d.title),
                description=text(d.description),
                method=d.method,
                requests=d.request_texts(),
                licence=d.licence,
                frequency=d.frequency,
                dropped_fields=d.masking.drop,
                pseudonymised_fields=d.masking.pseudonymise,
            )
            for d in document.open_data
        ],
    )
    if updated_at is not None:
        entry.updated_at.FromDatetime(updated_at)
    return entry
