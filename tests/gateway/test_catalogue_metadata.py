"""The catalogue metadata carried in the signed configuration: what a verifier accepts and
what it refuses, with the field named."""

from __future__ import annotations

import pytest

from spean.gateway.catalogue_metadata import parse_catalogue_entry
from spean.gateway.errors import InvalidArgument
from spean.gateway.identifiers import SubsystemId
from spean.v1 import config_pb2

VEHICLES = SubsystemId.parse("KH/GOV/MPWT/vehicles")
GET = "/vehicles.v1.VehicleRegistry/GetVehicle"
LIST = "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner"
PUBLISHED = {GET, LIST}


def entry(**changes: object) -> config_pb2.CatalogueEntry:
    fields: dict[str, object] = {
        "title": config_pb2.LocalizedText(en="Vehicle registry", km="បញ្ជីយានយន្ត"),
        "description": config_pb2.LocalizedText(en="Registered vehicles."),
        "topics": ["transport"],
        "data_class": config_pb2.CATALOGUE_DATA_CLASS_PERSONAL,
        "contacts": [config_pb2.CatalogueContact(name="Desk", email="desk@mpwt.example")],
        "legal_basis": config_pb2.LocalizedText(en="Law on road traffic"),
        "access": [config_pb2.CatalogueAccess(client="KH/GOV/MOH/nhis", methods=[GET])],
        "methods": [
            config_pb2.CatalogueMethodText(
                path=GET, summary=config_pb2.LocalizedText(en="Look up", km="រកមើល")
            )
        ],
    }
    fields.update(changes)
    return config_pb2.CatalogueEntry(**fields)  # type: ignore[arg-type]


def test_a_complete_entry_reads_as_values() -> None:
    meta = parse_catalogue_entry(entry(), VEHICLES, PUBLISHED)
    assert meta.title.en == "Vehicle registry"
    assert meta.title.in_language("km") == "បញ្ជីយានយន្ត"
    assert meta.description.in_language("km") == "Registered vehicles."  # untranslated: English
    assert meta.data_class == "personal"
    assert meta.access[0].client == "KH/GOV/MOH/nhis"
    summary = meta.summary_of(GET)
    assert summary is not None
    assert summary.km == "រកមើល"
    assert meta.summary_of(LIST) is None
    assert meta.terms_of_use is None
    assert meta.updated_at is None


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"title": config_pb2.LocalizedText(km="បញ្ជី")}, "title.en is empty"),
        ({"topics": []}, "no topic"),
        ({"topics": ["Transport"]}, "topic 'Transport'"),
        ({"topics": ["transport", "transport"]}, "listed twice"),
        ({"data_class": config_pb2.CATALOGUE_DATA_CLASS_UNSPECIFIED}, "data_class"),
        ({"legal_basis": config_pb2.LocalizedText()}, "legal basis"),
        ({"contacts": []}, "no contact"),
        ({"contacts": [config_pb2.CatalogueContact(name="Desk")]}, "neither an e-mail"),
        (
            {"access": [config_pb2.CatalogueAccess(client="KH/GOV/MOH", methods=[GET])]},
            "access[0].client",
        ),
        (
            {"access": [config_pb2.CatalogueAccess(client="TH/GOV/MOH/app", methods=[GET])]},
            "another instance",
        ),
        (
            {"access": [config_pb2.CatalogueAccess(client="KH/GOV/MOH/nhis", methods=["/x.Y/Z"])]},
            "'/x.Y/Z' is not published",
        ),
        ({"methods": [config_pb2.CatalogueMethodText(path=LIST)]}, "summary.en is empty"),
    ],
)
def test_a_wrong_entry_is_refused_naming_the_field(changes: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidArgument, match="subsystem KH/GOV/MPWT/vehicles: catalogue") as info:
        parse_catalogue_entry(entry(**changes), VEHICLES, PUBLISHED)
    assert named in info.value.message


def test_public_data_needs_no_legal_basis() -> None:
    meta = parse_catalogue_entry(
        entry(
            data_class=config_pb2.CATALOGUE_DATA_CLASS_PUBLIC,
            legal_basis=config_pb2.LocalizedText(),
            licence="https://creativecommons.org/licenses/by/4.0/",
        ),
        VEHICLES,
        PUBLISHED,
    )
    assert (meta.data_class, meta.legal_basis) == ("public", None)
