"""`Authority.describe` and the metadata file: a provider's catalogue entry is validated, kept
readable in registry.yaml and published, signed, in the global configuration."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from pathlib import Path

import pytest
import yaml

from spean.gateway.authority import Authority, init_member
from spean.gateway.authority.describe import parse_document, read_metadata_file
from spean.gateway.errors import ConfigError, FailedPrecondition, InvalidArgument, NotFound
from spean.gateway.globalconf import verify_global_configuration

MOH = "KH/GOV/MOH"
NHIS = "KH/GOV/MOH/nhis"
CLIENT_ONLY = "KH/GOV/MOH/hospital"
REPORT = "/health.v1.FacilityStats/GetMonthlyReport"

DOCUMENT = {
    "title": {"en": "Health facility statistics", "km": "ស្ថិតិមូលដ្ឋានសុខាភិបាល"},
    "description": {"en": "Monthly reports of health facilities."},
    "topics": ["health", "statistics"],
    "data_class": "public",
    "contacts": [{"name": "MOH HIS unit", "email": "his@moh.example"}],
    "licence": "https://creativecommons.org/licenses/by/4.0/",
    "access": [{"client": CLIENT_ONLY, "methods": [REPORT]}],
    "methods": [{"path": REPORT, "summary": {"en": "A facility's monthly report"}}],
}


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    authority = Authority.init(tmp_path / "authority", "KH")
    folder = tmp_path / "members" / secrets.token_hex(4)
    csr = init_member(folder, MOH).csr.read_bytes()
    authority.admit_member(MOH, "Ministry of Health", csr)
    authority.add_subsystem(NHIS, "NHIS", methods=[(REPORT, False)])
    authority.add_subsystem(CLIENT_ONLY, "Hospital application")
    return authority


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "metadata.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


def test_a_described_subsystem_is_published_with_its_entry(
    authority: Authority, tmp_path: Path
) -> None:
    at = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    authority.describe(NHIS, read_metadata_file(write(tmp_path, DOCUMENT)), now=at)
    registry = yaml.safe_load((authority.directory / "registry.yaml").read_text())
    (kept,) = [s for s in registry["subsystems"] if s["id"] == NHIS]
    assert kept["catalogue"]["title"]["km"] == "ស្ថិតិមូលដ្ឋានសុខាភិបាល"  # readable, not base64
    authority.publish()
    conf = verify_global_configuration(
        authority.published_path.read_bytes(),
        authority.signing_certificate,
        dt.datetime.now(dt.UTC),
    )
    subsystem = conf.subsystem(next(s.id for s in conf.subsystems if str(s.id) == NHIS))
    assert subsystem is not None
    assert subsystem.catalogue is not None
    meta = subsystem.catalogue
    assert (meta.data_class, meta.topics) == ("public", ("health", "statistics"))
    assert meta.access[0].client == CLIENT_ONLY
    assert meta.updated_at == at
    # Describing again replaces the entry.
    authority.describe(NHIS, parse_document({**DOCUMENT, "topics": ["health"]}, "second"))
    authority.publish()
    conf = verify_global_configuration(
        authority.published_path.read_bytes(),
        authority.signing_certificate,
        dt.datetime.now(dt.UTC),
    )
    (again,) = [s for s in conf.subsystems if str(s.id) == NHIS]
    assert again.catalogue is not None
    assert again.catalogue.topics == ("health",)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"title": {"km": "ស្ថិតិ"}}, "title.en: Field required"),
        ({"topics": ["Health"]}, "topics: Value error, topic 'Health'"),
        (
            {"data_class": "secret"},
            "data_class: Input should be 'public', 'internal' or 'personal'",
        ),
        ({"data_class": "personal"}, "personal data needs a legal_basis"),
        ({"contacts": [{"name": "Desk"}]}, "needs an email or a telephone"),
        ({"contacts": [{"name": "Desk", "email": "not an address"}]}, "contacts.0.email"),
        ({"licence": "CC-BY"}, "licence: String should match pattern"),
        ({"owner": "me"}, "owner: Extra inputs are not permitted"),
    ],
)
def test_a_wrong_file_is_refused_naming_the_file_and_the_field(
    tmp_path: Path, change: dict[str, object], named: str
) -> None:
    path = write(tmp_path, {**DOCUMENT, **change})
    with pytest.raises(ConfigError, match=str(path)) as info:
        read_metadata_file(path)
    assert named in info.value.message


def test_a_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "metadata.yaml"
    path.write_text("title: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid UTF-8 YAML"):
        read_metadata_file(path)
    with pytest.raises(ConfigError, match="cannot read"):
        read_metadata_file(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("subsystem", "change", "error", "says"),
    [
        ("KH/GOV/MOH/none", {}, NotFound, "is not registered"),
        (CLIENT_ONLY, {}, FailedPrecondition, "publishes no method"),
        (
            NHIS,
            {"access": [{"client": CLIENT_ONLY, "methods": ["/health.v1.X/Y"]}]},
            InvalidArgument,
            "'/health.v1.X/Y' is not published",
        ),
        (
            NHIS,
            {"access": [{"client": "KH/GOV/MOH", "methods": [REPORT]}]},
            InvalidArgument,
            "access[0].client",
        ),
        ("TH/GOV/MOH/nhis", {}, InvalidArgument, "this authority serves 'KH'"),
    ],
)
def test_what_the_subsystem_cannot_have_is_refused(
    authority: Authority,
    subsystem: str,
    change: dict[str, object],
    error: type[Exception],
    says: str,
) -> None:
    with pytest.raises(error, match=re.escape(says)):
        authority.describe(subsystem, parse_document({**DOCUMENT, **change}, "test"))
    registry = yaml.safe_load((authority.directory / "registry.yaml").read_text())
    assert all("catalogue" not in s for s in registry["subsystems"])
