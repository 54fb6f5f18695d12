"""Who may do what: deny by default, and the table operators read agrees with the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from spean.gateway.config import RoleName
from spean.gateway.errors import InvalidArgument, PermissionDenied, Unauthenticated
from spean.gateway.web.roles import PERMISSIONS, Permission, Principal, Role, parse_role, require

REPO = Path(__file__).resolve().parents[3]


def test_no_principal_is_refused_as_unauthenticated() -> None:
    with pytest.raises(Unauthenticated, match="no credentials"):
        require(None, Permission.VIEW_STATUS)


def test_an_auditor_reads_but_never_changes_access() -> None:
    auditor = Principal("certificate:auditor", Role.AUDITOR, "client-certificate")
    assert require(auditor, Permission.VIEW_AUDIT) is auditor
    with pytest.raises(PermissionDenied) as refused:
        require(auditor, Permission.EDIT_ACCESS)
    assert "role auditor" in refused.value.message
    assert "system-administrator, service-administrator" in refused.value.message


def test_a_registration_officer_sees_no_access_rights_nor_the_audit_log() -> None:
    officer = Principal("oidc:officer", Role.REGISTRATION_OFFICER, "oidc")
    assert officer.may(Permission.DECIDE_REGISTRATIONS)
    assert not officer.may(Permission.VIEW_ACCESS)
    assert not officer.may(Permission.VIEW_AUDIT)


def test_only_the_system_administrator_both_edits_and_audits() -> None:
    both = {Permission.EDIT_ACCESS, Permission.VIEW_AUDIT}
    assert [r for r, granted in PERMISSIONS.items() if both <= granted] == [
        Role.SYSTEM_ADMINISTRATOR
    ]


def test_unknown_role_names_the_roles() -> None:
    with pytest.raises(InvalidArgument, match="the roles are system-administrator"):
        parse_role("root")


def test_the_configuration_names_the_same_roles() -> None:
    assert set(get_args(RoleName)) == {role.value for role in Role}


def test_the_operator_guide_table_matches_the_permissions() -> None:
    text = (REPO / "docs" / "operator.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z-]+)` \|(.*)\|$", text, flags=re.MULTILINE)
    header = re.search(r"^\| permission \|(.*)\|$", text, flags=re.MULTILINE)
    assert header is not None, "docs/operator.md lacks the role table"
    roles = [cell.strip().strip("`") for cell in header.group(1).split("|")]
    assert roles == [role.value for role in Role]
    table = {name: [c.strip() for c in cells.split("|")] for name, cells in rows}
    assert set(table) == {p.value for p in Permission}
    for permission in Permission:
        marks = table[permission.value]
        for role, mark in zip(roles, marks, strict=True):
            assert (mark == "yes") == (permission in PERMISSIONS[Role(role)]), (permission, role)
