"""Merging a published table's entries into an operator's server.yaml, keeping the rest."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from spean.gateway.errors import ConfigError, FailedPrecondition
from spean.gateway.publish.io.config_merge import merge_into

SERVER = """\
# MoH's security server: kept by hand.
server_id: KH/GOV/MOH/ss1
provider:
  listen: 0.0.0.0:9443   # the address other servers call
  services:
    - subsystem: KH/GOV/MOH/nhis
      adapter: {type: sql, mapping: moh-nhis.yaml}
  access:
    - client: KH/GOV/MOI/police
      service: KH/GOV/MOH/patients
      methods: [/patients.v1.PatientsRegistry/Get]
      minimise:
        - drop: [born]
"""
METHODS = [f"/patients.v1.PatientsRegistry/{m}" for m in ("Get", "List", "Export")]
ENTRIES: dict[str, list[dict[str, object]]] = {
    "services": [
        {
            "subsystem": "KH/GOV/MOH/patients",
            "adapter": {"type": "sql", "mapping": "patients-mapping.yaml"},
        }
    ],
    "access": [
        {"client": "KH/GOV/MOI/police", "service": "KH/GOV/MOH/patients", "methods": METHODS},
        {"client": "KH/GOV/MPWT/app", "service": "KH/GOV/MOH/patients", "methods": METHODS},
    ],
}


@pytest.fixture
def server_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "server.yaml"
    path.write_text(SERVER, encoding="utf-8")
    return path


def test_entries_are_added_and_the_rest_of_the_file_is_kept(server_yaml: Path) -> None:
    notes, server_id = merge_into(server_yaml, ENTRIES)
    assert server_id == "KH/GOV/MOH/ss1"
    assert notes == (
        "provider.services: added KH/GOV/MOH/patients",
        "provider.access: KH/GOV/MOI/police may now also call"
        " /patients.v1.PatientsRegistry/List, /patients.v1.PatientsRegistry/Export",
        f"provider.access: KH/GOV/MPWT/app may call {', '.join(METHODS)}",
    )
    text = server_yaml.read_text(encoding="utf-8")
    assert text.startswith("# MoH's security server: kept by hand.\n")
    assert "listen: 0.0.0.0:9443   # the address other servers call" in text
    document = yaml.safe_load(text)
    provider = document["provider"]
    assert [s["subsystem"] for s in provider["services"]] == [
        "KH/GOV/MOH/nhis",
        "KH/GOV/MOH/patients",
    ]
    police = provider["access"][0]
    assert police["methods"] == METHODS
    assert police["minimise"] == [{"drop": ["born"]}], "the operator's own rules stay"
    assert provider["access"][1]["client"] == "KH/GOV/MPWT/app"


def test_merging_again_changes_nothing(server_yaml: Path) -> None:
    merge_into(server_yaml, ENTRIES)
    once = server_yaml.read_bytes()
    notes, _ = merge_into(server_yaml, ENTRIES)
    assert notes == ()
    assert server_yaml.read_bytes() == once


def test_a_subsystem_served_by_another_adapter_is_refused_and_the_file_kept(
    server_yaml: Path,
) -> None:
    taken = {"services": [{**ENTRIES["services"][0], "subsystem": "KH/GOV/MOH/nhis"}], "access": []}
    with pytest.raises(FailedPrecondition) as refused:
        merge_into(server_yaml, taken)
    assert "provider.services[0] already serves KH/GOV/MOH/nhis with another adapter" in (
        refused.value.message
    )
    assert server_yaml.read_text(encoding="utf-8") == SERVER


def test_a_file_without_a_provider_section_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text("server_id: KH/GOV/MOH/ss1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        merge_into(path, ENTRIES)
    assert "has no provider section: add provider.listen" in refused.value.message


def test_a_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text("provider: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        merge_into(path, ENTRIES)
    assert refused.value.message.startswith(f"{path}: not valid YAML")


def test_the_file_keeps_its_mode(server_yaml: Path) -> None:
    server_yaml.chmod(0o600)  # a server.yaml the operator keeps private
    merge_into(server_yaml, ENTRIES)
    assert server_yaml.stat().st_mode & 0o777 == 0o600
    assert "KH/GOV/MOH/patients" in server_yaml.read_text(encoding="utf-8")


def test_a_merge_that_changes_nothing_does_not_rewrite_the_file(server_yaml: Path) -> None:
    merge_into(server_yaml, ENTRIES)
    before = server_yaml.stat().st_ino
    notes, _ = merge_into(server_yaml, ENTRIES)
    assert notes == ()
    assert server_yaml.stat().st_ino == before  # an atomic replacement would be a new inode
