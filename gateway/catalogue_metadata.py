"""The catalogue metadata a provider maintains for a subsystem: values and validation (pure).

A provider describes each subsystem it publishes (title, description, topics,
data class, contacts, terms of use, licence, legal basis, its published access
list, per-method summaries) in English and Khmer; the authority carries it in
the signed global configuration (`Subsystem.catalogue`, config.proto), and
every catalogue renders the same signed text.

Guarantees of a `CatalogueMetadata` built by `parse_catalogue_entry`:

- the English title and description are not empty; a missing Khmer text is
  empty, never absent (readers fall back to English);
- topics are lower-case codes (``[a-z][a-z0-9-]*``), unique, at least one;
- the data class is one of public, internal, personal, and personal data
  names its legal basis;
- there is at least one contact, and each gives an e-mail or a telephone;
- every client in the access list is a subsystem identifier of this
  instance, and every method named (access list, summaries) is one the
  subsystem publishes.

Nothing here grants access: the access list is what the provider publishes;
its security server enforces its own rules.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

from spean.gateway.errors import InvalidArgument
from spean.gateway.identifiers import SubsystemId
from spean.v1 import config_pb2

DataClass = Literal["public", "internal", "personal"]
DATA_CLASSES: tuple[DataClass, ...] = ("public", "internal", "personal")

_DATA_CLASS_FROM_PROTO: dict[int, DataClass] = {
    config_pb2.CATALOGUE_DATA_CLASS_PUBLIC: "public",
    config_pb2.CATALOGUE_DATA_CLASS_INTERNAL: "internal",
    config_pb2.CATALOGUE_DATA_CLASS_PERSONAL: "personal",
}
DATA_CLASS_TO_PROTO: dict[DataClass, int] = {v: k for k, v in _DATA_CLASS_FROM_PROTO.items()}

TOPIC = re.compile(r"[a-z][a-z0-9-]{0,39}")
DATASET_ID = re.compile(r"[a-z][a-z0-9-]{0,63}")
SPDX_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]{0,63}")
FIELD_PATH = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*")
FREQUENCIES = (
    "CONT", "UPDATE_CONT", "HOURLY", "DAILY", "WEEKLY", "BIWEEKLY", "MONTHLY",
    "BIMONTHLY", "QUARTERLY", "ANNUAL", "BIENNIAL", "IRREG", "NEVER", "UNKNOWN",
)  # fmt: skip
"""Codes of the EU frequency vocabulary (DCAT accrualPeriodicity) a dataset may name."""
MAX_DATASET_REQUESTS = 1000


@dataclass(frozen=True, slots=True)
class Text:
    """A text in English (always given) and Khmer (empty when not translated)."""

    en: str
    km: str = ""

    def in_language(self, language: str) -> str:
        """The text in `language` ("en" or "km"), English when there is no Khmer."""
        return self.km if language == "km" and self.km else self.en


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    email: str = ""
    telephone: str = ""
    role: str = ""


@dataclass(frozen=True, slots=True)
class AccessGrant:
    """The provider's published statement that `client` may call `methods`."""

    client: str
    methods: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OpenDataset:
    """A dataset the catalogue publishes: the answers of `method` to `requests`.

    `dropped` and `pseudonymised` repeat the minimise rules of the provider's
    access rule for the catalogue's subsystem: the provider enforces them, the
    catalogue leaves dropped fields out of the columns and refuses an answer
    that carries one.
    """

    id: str
    subsystem: str
    title: Text
    description: Text
    method: str
    requests: tuple[str, ...]
    licence: str
    frequency: str
    dropped: tuple[str, ...] = ()
    pseudonymised: tuple[str, ...] = ()

    @property
    def licence_url(self) -> str:
        """The licence as a URL (an SPDX identifier's page on spdx.org)."""
        if self.licence.startswith(("http://", "https://")):
            return self.licence
        return f"https://spdx.org/licenses/{self.licence}.html"


@dataclass(frozen=True, slots=True)
class CatalogueMetadata:
    """The catalogue's description of one subsystem, as its provider maintains it."""

    title: Text
    description: Text
    topics: tuple[str, ...]
    data_class: DataClass
    contacts: tuple[Contact, ...]
    terms_of_use: Text | None
    licence: str
    legal_basis: Text | None
    access: tuple[AccessGrant, ...]
    method_summaries: tuple[tuple[str, Text], ...]
    updated_at: dt.datetime | None
    open_data: tuple[OpenDataset, ...] = ()

    def summary_of(self, path: str) -> Text | None:
        return next((text for p, text in self.method_summaries if p == path), None)


def parse_catalogue_entry(
    entry: config_pb2.CatalogueEntry,
    subsystem: SubsystemId,
    published: Collection[str],
) -> CatalogueMetadata:
    """Validate `entry` of `subsystem` (which publishes the methods `published`)."""
    where = f"subsystem {subsystem}: catalogue"

    def fail(detail: str) -> InvalidArgument:
        return InvalidArgument(f"{where}: {detail}")

    title = _text(entry.title)
    description = _text(entry.description)
    if title is None:
        raise fail("title.en is empty; give the subsystem a title in English")
    if description is None:
        raise fail("description.en is empty; say in English what the services return")
    topics = tuple(entry.topics)
    if not topics:
        raise fail("no topic is given; name at least one (e.g. health, transport)")
    for topic in topics:
        if not TOPIC.fullmatch(topic):
            raise fail(f"topic {topic!r} must be a lower-case code such as 'public-health'")
    if len(set(topics)) != len(topics):
        raise fail("a topic is listed twice")
    data_class = _DATA_CLASS_FROM_PROTO.get(entry.data_class)
    if data_class is None:
        raise fail("data_class must be public, internal or personal")
    legal_basis = _text(entry.legal_basis)
    if data_class == "personal" and legal_basis is None:
        raise fail("personal data needs a legal basis (legal_basis.en)")
    if not entry.contacts:
        raise fail("no contact is given; name at least one")
    contacts = []
    for n, contact in enumerate(entry.contacts):
        if not contact.name.strip():
            raise fail(f"contacts[{n}].name is empty")
        if not (contact.email or contact.telephone):
            raise fail(f"contacts[{n}] ({contact.name}) gives neither an e-mail nor a telephone")
        contacts.append(Contact(contact.name, contact.email, contact.telephone, contact.role))
    access = []
    for n, grant in enumerate(entry.access):
        try:
            client = SubsystemId.parse(grant.client)
        except InvalidArgument as exc:
            raise fail(f"access[{n}].client: {exc.message}") from exc
        if client.instance != subsystem.instance:
            raise fail(f"access[{n}].client {client} belongs to another instance")
        if not grant.methods:
            raise fail(f"access[{n}] ({client}) names no method")
        for path in grant.methods:
            _check_published(path, published, fail, f"access[{n}]")
        access.append(AccessGrant(str(client), tuple(grant.methods)))
    summaries = []
    for n, method in enumerate(entry.methods):
        _check_published(method.path, published, fail, f"methods[{n}]")
        text = _text(method.summary)
        if text is None:
            raise fail(f"methods[{n}] ({method.path}): summary.en is empty")
        summaries.append((method.path, text))
    if len({path for path, _ in summaries}) != len(summaries):
        raise fail("a method's summary is given twice")
    updated_at = (
        entry.updated_at.ToDatetime(tzinfo=dt.UTC) if entry.HasField("updated_at") else None
    )
    open_data = tuple(
        _open_dataset(n, dataset, subsystem, published, fail)
        for n, dataset in enumerate(entry.open_data)
    )
    if len({d.id for d in open_data}) != len(open_data):
        raise fail("an open dataset id is given twice")
    return CatalogueMetadata(
        title=title,
        description=description,
        topics=topics,
        data_class=data_class,
        contacts=tuple(contacts),
        terms_of_use=_text(entry.terms_of_use),
        licence=entry.licence,
        legal_basis=legal_basis,
        access=tuple(access),
        method_summaries=tuple(summaries),
        updated_at=updated_at,
        open_data=open_data,
    )


def _open_dataset(
    n: int,
    dataset: config_pb2.CatalogueOpenDataset,
    subsystem: SubsystemId,
    published: Collection[str],
    fail: Callable[[str], InvalidArgument],
) -> OpenDataset:
    where = f"open_data[{n}]"
    if not DATASET_ID.fullmatch(dataset.id):
        raise fail(f"{where}.id {dataset.id!r} must be a lower-case code such as 'vehicles-open'")
    where = f"open_data[{n}] ({dataset.id})"
    title, description = _text(dataset.title), _text(dataset.description)
    if title is None or description is None:
        raise fail(f"{where}: title.en and description.en must not be empty")
    _check_published(dataset.method, published, fail, where)
    if not dataset.requests:
        raise fail(f"{where}: no request is given")
    if len(dataset.requests) > MAX_DATASET_REQUESTS:
        raise fail(f"{where}: more than {MAX_DATASET_REQUESTS} requests")
    for r, text in enumerate(dataset.requests):
        try:
            request = json.loads(text)
        except ValueError as exc:
            raise fail(f"{where}: requests[{r}] is not JSON: {exc}") from None
        if not isinstance(request, dict):
            raise fail(f"{where}: requests[{r}] must be a JSON object (the request message)")
    licence = dataset.licence
    if not (licence.startswith(("http://", "https://")) or SPDX_ID.fullmatch(licence)):
        raise fail(f"{where}: licence {licence!r} is neither an SPDX identifier nor a URL")
    if dataset.frequency not in FREQUENCIES:
        raise fail(
            f"{where}: frequency {dataset.frequency!r} is not one of {', '.join(FREQUENCIES)}"
        )
    for path in (*dataset.dropped_fields, *dataset.pseudonymised_fields):
        if not FIELD_PATH.fullmatch(path):
            raise fail(f"{where}: {path!r} is not a field path such as owner_id or owner.id")
    if set(dataset.dropped_fields) & set(dataset.pseudonymised_fields):
        raise fail(f"{where}: a field is both dropped and pseudonymised")
    return OpenDataset(
        id=dataset.id,
        subsystem=str(subsystem),
        title=title,
        description=description,
        method=dataset.method,
        requests=tuple(dataset.requests),
        licence=licence,
        frequency=dataset.frequency,
        dropped=tuple(dataset.dropped_fields),
        pseudonymised=tuple(dataset.pseudonymised_fields),
    )


def _text(value: config_pb2.LocalizedText) -> Text | None:
    en, km = value.en.strip(), value.km.strip()
    if not en:
        return None
    return Text(en, km)


def _check_published(
    path: str, published: Collection[str], fail: Callable[[str], InvalidArgument], where: str
) -> None:
    if path not in published:
        raise fail(f"{where}: method {path!r} is not published by this subsystem")


__all__ = [
    "DATASET_ID",
    "DATA_CLASSES",
    "DATA_CLASS_TO_PROTO",
    "FREQUENCIES",
    "SPDX_ID",
    "TOPIC",
    "AccessGrant",
    "CatalogueMetadata",
    "Contact",
    "DataClass",
    "OpenDataset",
    "Text",
    "parse_catalogue_entry",
]
