"""`spean doctor` prepares the adapters as the server does at start, and names each fix."""

from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path

import pytest
import yaml

from spean.gateway.cli import main
from spean.gateway.cli.doctor import diagnose
from spean.gateway.cli.findings import Finding
from spean.gateway.demo.federation import Federation, build_federation
from spean.gateway.demo.ministries import MPWT, demo_plans


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Federation:
    return build_federation(tmp_path_factory.mktemp("doctor-adapters"), demo_plans())


def mpwt_copy(federation: Federation, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of MPWT's folder: its server.yaml and its vehicle mapping."""
    source = federation.configs[MPWT].parent
    shutil.copytree(source, tmp_path / "mpwt")
    return tmp_path / "mpwt" / "server.yaml", tmp_path / "mpwt" / "mpwt-vehicles.yaml"


def edit(path: Path, **changes: object) -> None:
    document = yaml.safe_load(path.read_text())
    document.update(changes)
    path.write_text(yaml.safe_dump(document))


def adapter_findings(config: Path) -> list[Finding]:
    return [f for f in diagnose(config, peers=False) if f.check == "adapters"]


def test_a_ready_adapter_is_ok(federation: Federation) -> None:
    findings = adapter_findings(federation.configs[MPWT])
    assert [f.level for f in findings] == ["ok"]
    assert (
        findings[0].message
        == "KH/GOV/MPWT/vehicles: adapter ready, 2 method(s), database read-only"
    )


def test_a_mapping_that_may_write_is_a_warning(federation: Federation, tmp_path: Path) -> None:
    config, mapping = mpwt_copy(federation, tmp_path)
    edit(mapping, database={"url": "sqlite:///mpwt-vehicles.db", "read_only": False})

    (finding,) = adapter_findings(config)
    assert finding.level == "warn"
    assert "turns read-only off" in finding.message
    assert finding.fix == f"remove database.read_only: false from {mapping}"


def test_a_missing_driver_fails_with_the_pip_line(
    federation: Federation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, mapping = mpwt_copy(federation, tmp_path)
    edit(mapping, database="postgresql://spean@127.0.0.1/vehicles")
    monkeypatch.setitem(sys.modules, "psycopg", None)

    (finding,) = adapter_findings(config)
    assert finding.level == "fail"
    assert "the postgresql driver (psycopg) is not installed" in finding.message
    assert finding.fix == "pip install 'spean[postgres]'"


def test_an_unreachable_database_fails_before_the_server_would(
    federation: Federation, tmp_path: Path
) -> None:
    config, mapping = mpwt_copy(federation, tmp_path)
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    edit(mapping, database=f"postgresql://spean@127.0.0.1:{port}/vehicles")

    (finding,) = adapter_findings(config)
    assert finding.level == "fail"
    assert "cannot be reached" in finding.message
    assert "start the database or correct its URL" in finding.fix


def test_a_broken_mapping_names_the_file(federation: Federation, tmp_path: Path) -> None:
    config, mapping = mpwt_copy(federation, tmp_path)
    edit(mapping, service="vehicles.v1.NoSuchRegistry")

    (finding,) = adapter_findings(config)
    assert finding.level == "fail"
    assert "NoSuchRegistry" in finding.message
    assert "correct the adapter entry or its mapping file" in finding.fix


def test_a_published_method_the_adapter_does_not_serve_fails(
    federation: Federation, tmp_path: Path
) -> None:
    config, mapping = mpwt_copy(federation, tmp_path)
    document = yaml.safe_load(mapping.read_text())
    del document["methods"]["ListVehiclesByOwner"]
    mapping.write_text(yaml.safe_dump(document))

    findings = adapter_findings(config)
    assert [f.level for f in findings] == ["ok", "fail"]
    assert "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner is published" in findings[1].message
    assert "UNIMPLEMENTED" in findings[1].message
    # The subsystem is registered: its contract is replaced, not added again.
    assert "spean authority update-subsystem --id KH/GOV/MPWT/vehicles" in findings[1].fix


def test_a_missing_audit_folder_is_a_warning_and_the_cli_passes(
    federation: Federation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = mpwt_copy(federation, tmp_path)
    edit(config, audit={"store": "state/new/audit.db"})

    assert main(["doctor", "--config", str(config), "--no-peers"]) == 0
    out = capsys.readouterr().out
    assert "WARN  audit" in out
    assert "the server creates it at start" in out
    assert "OK    adapters" in out
