"""The `open_data:` list of a provider's metadata file: what is accepted, and each mistake
refused with the file and the field named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from spean.gateway.authority.describe import parse_document, read_metadata_file, to_catalogue_entry
from spean.gateway.catalogue_metadata import parse_catalogue_entry
from spean.gateway.errors import ConfigError, InvalidArgument
from spean.gateway.identifiers import SubsystemId

VEHICLES = SubsystemId.parse("KH/GOV/MPWT/vehicles")
LIST = "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner"
GET = "/vehicles.v1.VehicleRegistry/GetVehicle"


def _document(**dataset: Any) -> dict[str, Any]:
    entry = {
        "id": "vehicles-open",
        "title": {"en": "Vehicles", "km": "យានយន្ត"},
        "description": {"en": "Registered vehicles, owners dropped."},
        "method": LIST,
        "request": {"owner_id": "010203040"},
        "licence": "CC-BY-4.0",
        "frequency": "WEEKLY",
        "masking": {"drop": ["owner_id"]},
    }
    entry.update(dataset)
    return {
        "title": {"en": "Vehicle registry"},
        "description": {"en": "Vehicles."},
        "topics": ["transport"],
        "data_class": "public",
        "contacts": [{"name": "Desk", "email": "desk@mpwt.example"}],
        "open_data": [{k: v for k, v in entry.items() if v is not None}],
    }


def test_a_valid_dataset_reaches_the_signed_entry_and_back() -> None:
    document = parse_document(_document(), "vehicles.yaml")
    entry = to_catalogue_entry(document, None)
    metadata = parse_catalogue_entry(entry, VEHICLES, [GET, LIST])
    (dataset,) = metadata.open_data
    assert dataset.id == "vehicles-open"
    assert dataset.subsystem == str(VEHICLES)
    assert dataset.requests == ('{"owner_id": "010203040"}',)
    assert dataset.dropped == ("owner_id",)
    assert dataset.title.km == "យានយន្ត"
    assert dataset.licence_url == "https://spdx.org/licenses/CC-BY-4.0.html"


def test_several_requests_are_kept_in_order() -> None:
    requests = [{"owner_id": "1"}, {"owner_id": "2"}]
    document = parse_document(_document(request=None, requests=requests), "v.yaml")
    metadata = parse_catalogue_entry(to_catalogue_entry(document, None), VEHICLES, [LIST])
    assert [r for r in metadata.open_data[0].requests] == ['{"owner_id": "1"}', '{"owner_id": "2"}']


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"frequency": "SOMETIMES"},
            "open_data.0.frequency: Value error, 'SOMETIMES' is not one of",
        ),
        ({"licence": "free to use"}, "open_data.0.licence: Value error, 'free to use' is neither"),
        ({"id": "Vehicles Open"}, "open_data.0.id: String should match pattern"),
        ({"requests": [{"owner_id": "1"}]}, "give either request or requests"),
        ({"request": None}, "give either request or requests"),
        ({"colour": "red"}, "open_data.0.colour: Extra inputs are not permitted"),
        ({"masking": {"hide": ["owner_id"]}}, "open_data.0.masking.hide: Extra inputs"),
    ],
)
def test_a_bad_dataset_is_refused_naming_the_file_and_field(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_document(_document(**change), "vehicles.yaml")
    assert refused.value.message.startswith("vehicles.yaml: ")
    assert message in refused.value.message


def test_the_file_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "vehicles.yaml"
    path.write_text(yaml.safe_dump(_document(frequency="NOW"), allow_unicode=True))
    with pytest.raises(ConfigError, match=r"vehicles\.yaml: open_data\.0\.frequency"):
        read_metadata_file(path)


def test_a_method_the_subsystem_does_not_publish_is_refused() -> None:
    entry = to_catalogue_entry(parse_document(_document(), "v.yaml"), None)
    with pytest.raises(InvalidArgument) as refused:
        parse_catalogue_entry(entry, VEHICLES, [GET])
    assert "open_data[0] (vehicles-open)" in refused.value.message
    assert f"method {LIST!r} is not published" in refused.value.message


def test_the_signed_entry_is_checked_again() -> None:
    entry = to_catalogue_entry(parse_document(_document(), "v.yaml"), None)
    entry.open_data[0].requests[0] = "[1, 2]"
    with pytest.raises(InvalidArgument, match=r"requests\[0\] must be a JSON object"):
        parse_catalogue_entry(entry, VEHICLES, [LIST])
    entry.open_data[0].requests[0] = "{}"
    entry.open_data[0].frequency = "daily"
    with pytest.raises(InvalidArgument, match="frequency 'daily' is not one of"):
        parse_catalogue_entry(entry, VEHICLES, [LIST])
    entry.open_data[0].frequency = "DAILY"
    entry.open_data.add().CopyFrom(entry.open_data[0])
    with pytest.raises(InvalidArgument, match="an open dataset id is given twice"):
        parse_catalogue_entry(entry, VEHICLES, [LIST])
