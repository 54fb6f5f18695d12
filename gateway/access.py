"""Access rights: which client subsystem may call which provider method.

Deny by default. A rule names one client subsystem, one provider subsystem
and the methods allowed (``*`` allows every method of that subsystem). The
decision is a pure lookup built once from the configuration.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from spean.gateway.errors import PermissionDenied
from spean.gateway.identifiers import SubsystemId

ANY_METHOD = "*"


@dataclass(frozen=True, slots=True)
class AccessRule:
    client: SubsystemId
    service: SubsystemId
    methods: frozenset[str]


class AccessPolicy:
    """An immutable index of access rules."""

    __slots__ = ("_allowed",)

    def __init__(self, rules: Iterable[AccessRule]) -> None:
        allowed: dict[tuple[SubsystemId, SubsystemId], set[str]] = {}
        for rule in rules:
            allowed.setdefault((rule.client, rule.service), set()).update(rule.methods)
        self._allowed = {key: frozenset(methods) for key, methods in allowed.items()}

    def allows(self, client: SubsystemId, service: SubsystemId, method: str) -> bool:
        methods = self._allowed.get((client, service))
        return methods is not None and (ANY_METHOD in methods or method in methods)

    def allowed_methods(self, client: SubsystemId, service: SubsystemId) -> frozenset[str]:
        return self._allowed.get((client, service), frozenset())

    def check(self, client: SubsystemId, service: SubsystemId, method: str) -> None:
        if not self.allows(client, service, method):
            raise PermissionDenied(
                f"{client} has no access right to {service}:{method}; the provider's"
                " administrator must grant it in the provider.access section"
            )
