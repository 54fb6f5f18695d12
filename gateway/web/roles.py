"""Who may do what on a management API: roles, permissions and the decision (pure).

Deny by default: a principal holds exactly one role, a role grants a fixed
set of permissions, and `require` refuses anything not in that set with
`PermissionDenied` naming the role, the permission and the roles that hold
it. The table below is the one place the mapping lives; docs/operator.md
shows it to operators and tests/gateway/web/test_roles.py checks that the two
agree. The roles follow X-Road's: system administrator, service
administrator, registration officer (the authority's), auditor (read-only
observer); and a fifth, the data subject: a person (or an ombudsman acting
for one, with their own identity provider login) who sees only the exchanges
that touched their own records (docs/transparency.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from spean.gateway.errors import InvalidArgument, PermissionDenied, Unauthenticated


class Role(StrEnum):
    SYSTEM_ADMINISTRATOR = "system-administrator"
    SERVICE_ADMINISTRATOR = "service-administrator"
    REGISTRATION_OFFICER = "registration-officer"
    AUDITOR = "auditor"
    DATA_SUBJECT = "data-subject"


class Permission(StrEnum):
    VIEW_STATUS = "view-status"
    """health, global configuration, keys and certificates, published services"""
    VIEW_ACCESS = "view-access"
    """access rights per method and client"""
    EDIT_ACCESS = "edit-access"
    """grant and revoke access rights"""
    EDIT_SERVICES = "edit-services"
    """disable and enable published methods"""
    VIEW_TRAFFIC = "view-traffic"
    """traffic statistics"""
    VIEW_AUDIT = "view-audit"
    """the exchange audit log, the admin log and inclusion proofs"""
    ROTATE_KEYS = "rotate-keys"
    """start, complete and abandon a rotation of the server's signing or TLS key"""
    RELOAD = "reload"
    """reload the configuration, keys and certificates from their files (SIGHUP's job)"""
    DECIDE_REGISTRATIONS = "decide-registrations"
    """approve or reject registration requests (the authority's API)"""
    VIEW_OWN_EXCHANGES = "view-own-exchanges"
    """the exchanges that touched one's own records, with their proofs (a data subject)"""
    LOOK_UP_SUBJECTS = "look-up-subjects"
    """any person's exchanges, for a stated purpose (each look-up is recorded)"""
    REGISTER = "register"
    """submit join requests, admit members, register service descriptions (the authority's)"""
    SET_APPROVAL = "set-approval"
    """whether join requests wait for an officer or are admitted at once (the authority's)"""
    REVOKE = "revoke"
    """revoke a certificate the authority issued (the authority's API)"""
    PUBLISH = "publish"
    """sign and publish the next global configuration (the authority's API)"""


_READ = frozenset({Permission.VIEW_STATUS, Permission.VIEW_ACCESS, Permission.VIEW_TRAFFIC})

PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.SYSTEM_ADMINISTRATOR: _READ
    | {
        Permission.EDIT_ACCESS,
        Permission.EDIT_SERVICES,
        Permission.VIEW_AUDIT,
        Permission.RELOAD,
        Permission.ROTATE_KEYS,
        Permission.SET_APPROVAL,
        Permission.REVOKE,
        Permission.PUBLISH,
    },
    Role.SERVICE_ADMINISTRATOR: _READ | {Permission.EDIT_ACCESS, Permission.EDIT_SERVICES},
    Role.REGISTRATION_OFFICER: frozenset(
        {Permission.VIEW_STATUS, Permission.DECIDE_REGISTRATIONS, Permission.REGISTER}
    ),
    Role.AUDITOR: _READ | {Permission.VIEW_AUDIT, Permission.LOOK_UP_SUBJECTS},
    Role.DATA_SUBJECT: frozenset({Permission.VIEW_OWN_EXCHANGES}),
}


def parse_role(value: str) -> Role:
    """The role named `value`; `InvalidArgument` listing the roles otherwise."""
    try:
        return Role(value)
    except ValueError:
        names = ", ".join(role.value for role in Role)
        raise InvalidArgument(f"unknown role {value!r}; the roles are {names}") from None


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: who (for the logs and the admin log), how, and its role."""

    name: str
    role: Role
    method: str  # "api-key", "client-certificate" or "oidc"
    subject: str | None = None
    """The person's id (OIDC `subject_claim`): set for a data subject, whose view it limits."""

    def may(self, permission: Permission) -> bool:
        return permission in PERMISSIONS[self.role]


def holders(permission: Permission) -> list[Role]:
    """The roles that hold `permission`, in the table's order."""
    return [role for role, granted in PERMISSIONS.items() if permission in granted]


def require(principal: Principal | None, permission: Permission) -> Principal:
    """`principal` if it holds `permission`; else `Unauthenticated` or `PermissionDenied`."""
    if principal is None:
        raise Unauthenticated(
            "no credentials: present an API key (Authorization: Bearer spk_...), an OIDC"
            " bearer token or a client certificate"
        )
    if not principal.may(permission):
        allowed = ", ".join(role.value for role in holders(permission))
        raise PermissionDenied(
            f"{principal.name} has role {principal.role.value}, which may not {permission.value};"
            f" roles that may: {allowed}"
        )
    return principal
