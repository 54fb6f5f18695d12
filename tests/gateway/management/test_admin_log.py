"""The admin log is an audit log: exported and verified by the auditors' own tools."""

from __future__ import annotations

from pathlib import Path

import pytest

from spean.gateway.audit.record import AuditRecord
from spean.gateway.cli import main
from spean.gateway.demo.ministries import MPWT, NHIS, VEHICLES, build_demo
from spean.gateway.files.config import load_config
from spean.gateway.management.admin_log import (
    APPLIED,
    FAILED,
    AdminAction,
    AdminLog,
    open_admin_log,
    origin_of,
)
from spean.gateway.web.roles import Principal, Role
from tests.support.management import enable_management

GRANT = AdminAction("access.grant", NHIS, VEHICLES, f"grant * for {NHIS} on {VEHICLES}")


def test_admin_actions_export_and_verify_like_exchanges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    federation = build_demo(tmp_path / "federation")
    enable_management(federation.configs[MPWT])
    config = load_config(federation.configs[MPWT])
    officer = Principal("api-key:0123456789ab:ci", Role.SERVICE_ADMINISTRATOR, "api-key")
    log = AdminLog(open_admin_log(config))
    try:
        first = log.record(officer, GRANT, APPLIED)
        log.record(officer, GRANT, FAILED, first)
        recent = log.recent(10)
    finally:
        log.close()
    assert [(r.status, r.exchange_id) for _, r in recent] == [(FAILED, first), (APPLIED, first)]
    record: AuditRecord = recent[1][1]
    assert (record.user, record.purpose, record.method) == (
        officer.name,
        "service-administrator",
        "access.grant",
    )
    assert record.origin == origin_of(config) == "KH/GOV/MPWT/ss1#management"

    bundle = tmp_path / "admin.bundle"
    store = config.resolve(Path("state/management-audit.sqlite"))
    globalconf = config.global_configuration.source  # the authority's published file
    exported = main(
        [
            "audit",
            "export",
            "--config",
            str(config.path),
            "--store",
            str(store),
            "--globalconf",
            globalconf,
            "--origin",
            origin_of(config),
            "--out",
            str(bundle),
        ]
    )
    assert exported == 0
    anchor = config.resolve(config.global_configuration.anchor)
    capsys.readouterr()
    assert main(["audit", "verify", str(bundle), "--anchor", str(anchor)]) == 0
    assert "2 records" in capsys.readouterr().out
