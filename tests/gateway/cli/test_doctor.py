"""`spean doctor`: a healthy server passes; each kind of breakage is named with a fix."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spean.gateway.cli import main
from spean.gateway.cli.doctor import Finding, diagnose, failed, render
from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import MOH, MPWT, build_demo, run_demo_calls


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    federation = build_demo(tmp_path_factory.mktemp("doctor"))
    with federation.running():
        yield federation


def problems(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check and f.level != "ok"]


def copy_member(federation: Federation, member: str, tmp_path: Path) -> Path:
    """A private copy of a member's folder, to break without disturbing the others."""
    source = federation.configs[member].parent
    target = tmp_path / source.name
    shutil.copytree(source, target)
    return target / "server.yaml"


def test_a_running_federation_is_healthy(federation: Federation) -> None:
    findings = diagnose(federation.configs[MOH])
    assert not failed(findings), render(findings)
    assert problems(findings, "peers") == []
    text = render(findings)
    assert "3 of 3 security server(s) answered mutual TLS" in text
    assert "every chain verifies" in text


def test_the_cli_exits_0_when_healthy_and_1_on_a_missing_file(
    federation: Federation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", "--config", str(federation.configs[MPWT]), "--no-peers"]) == 0
    assert main(["doctor", "--config", str(tmp_path / "nope.yaml")]) == 1
    out = capsys.readouterr().out
    assert "FAIL  config" in out
    assert "cannot read the configuration" in out


def test_a_certificate_that_is_not_for_the_key(federation: Federation, tmp_path: Path) -> None:
    config = copy_member(federation, MOH, tmp_path)
    keys = config.parent / "keys"
    shutil.copyfile(keys / "signing.crt", keys / "tls.crt")
    findings = diagnose(config, peers=False)
    assert failed(findings)
    [problem] = [f for f in problems(findings, "keys") if "is not for the key" in f.message]
    assert "TLS certificate" in problem.message
    assert "certificate the authority issued" in problem.fix


def test_expiry_is_reported_before_and_after(federation: Federation) -> None:
    in_a_year = dt.datetime.now(dt.UTC) + dt.timedelta(days=350)
    soon = diagnose(federation.configs[MOH], now=in_a_year, peers=False)
    tls = [f for f in problems(soon, "certificates") if "TLS" in f.message]
    assert tls[0].level == "warn"
    assert "expires in" in tls[0].message
    expired = [f for f in problems(soon, "globalconf") if "exchange is refused" in f.message]
    assert expired[0].level == "fail"  # the configuration lasts a day
    assert "spean authority publish" in expired[0].fix


def test_a_tampered_audit_log_fails(federation: Federation, tmp_path: Path) -> None:
    run_demo_calls(federation.consumer_addresses[MOH])  # MoH's log holds records of its own
    config = copy_member(federation, MOH, tmp_path)
    assert problems(diagnose(config, peers=False), "audit") == []  # the copy verifies as is
    # WAL mode: the live files were copied; alter the copy's first record.
    database = config.parent / "state" / "audit.db"
    with sqlite3.connect(database) as conn:
        altered = conn.execute(
            "UPDATE audit_records SET record = x'00' WHERE origin = ? AND idx = 0",
            ("KH/GOV/MOH/ss1#w0",),
        ).rowcount
    assert altered == 1, "MoH's log has no first record to alter"
    findings = diagnose(config, peers=False)
    [problem] = problems(findings, "audit")
    assert problem.level == "fail"
    assert "does not verify" in problem.message


def test_an_unregistered_server_is_named(federation: Federation, tmp_path: Path) -> None:
    config = copy_member(federation, MOH, tmp_path)
    config.write_text(config.read_text().replace("KH/GOV/MOH/ss1", "KH/GOV/MOH/ss9"))
    findings = diagnose(config, peers=False)
    found = [f for f in problems(findings, "globalconf") if "KH/GOV/MOH/ss9" in f.message]
    assert found[0].level == "fail"
    assert "spean authority admit server" in found[0].fix


def test_an_archived_log_still_verifies(federation: Federation, tmp_path: Path) -> None:
    consumer = federation.consumer_addresses[MOH]
    run_demo_calls(consumer)
    store = federation.servers[MOH].audit
    deadline = time.monotonic() + 10
    while (store.latest_checkpoint() or None) is None:
        assert time.monotonic() < deadline, "no checkpoint was signed"
        time.sleep(0.1)
    archive = tmp_path / "archive"
    config = federation.configs[MOH]
    args = ["audit", "archive", "--config", str(config), "--older-than", "0"]
    assert main([*args, "--archive-dir", str(archive)]) == 0
    assert list(archive.rglob("*.zip")), "nothing was archived"
    run_demo_calls(consumer)  # records after the cut: the live log starts past index 0
    findings = diagnose(config, peers=False)
    assert problems(findings, "audit") == [], render(findings)
