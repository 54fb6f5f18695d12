"""Grant and revoke access rights as plans over the configured rules (pure).

The management API never edits the access rules in memory: it plans the
change here against the rules as the file holds them now, applies the plan
to the file (gateway/files/config.py, `edit_config`), and the server reloads
from the file. So file and API cannot disagree. A plan names the rule to
change by its index in ``provider.access`` (or appends one) and the rule's
methods afterwards; an empty list deletes the rule.

Guarantees: granting what is already granted and revoking what is not
granted are no-ops (`changed` is False), so a retried request is safe;
revoking one method from a rule that grants every method (``*``) is refused
with a message saying how to do it, never silently widened or narrowed; a
method that the service does not publish cannot be granted.

The ETag of the access rules (`access_etag`) is the SHA-256 of their
canonical JSON: any change to the rules, through the API or by hand in the
file, changes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from spean.gateway.access import ANY_METHOD
from spean.gateway.config import AccessRuleConfig, ServiceConfig
from spean.gateway.errors import FailedPrecondition, NotFound


class PreconditionFailed(FailedPrecondition):
    """The resource changed since the client read it (HTTP 412)."""

    http_status = 412


class PreconditionRequired(FailedPrecondition):
    """A write came without If-Match (HTTP 428)."""

    http_status = 428


class Conflict(FailedPrecondition):
    """The change contradicts the current rules (HTTP 409)."""

    http_status = 409


@dataclass(frozen=True, slots=True)
class AccessChange:
    client: str
    service: str
    methods: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RulePlan:
    """What to do to ``provider.access``: change rule `index` (None: append one)."""

    index: int | None
    methods: tuple[str, ...]
    changed: bool

    @property
    def deletes(self) -> bool:
        return self.index is not None and not self.methods


def access_etag(rules: Sequence[AccessRuleConfig]) -> str:
    canonical = json.dumps([rule.model_dump(mode="json") for rule in rules], sort_keys=True)
    return '"' + hashlib.sha256(canonical.encode()).hexdigest()[:32] + '"'


_ETAGGED = {"access": ("the access rules", "access"), "services": ("the services", "services")}


def services_etag(services: Sequence[ServiceConfig]) -> str:
    """The ETag of the published services' state (which methods are disabled)."""
    canonical = json.dumps(
        [[s.subsystem, [d.model_dump(mode="json") for d in s.disabled]] for s in services],
        sort_keys=True,
    )
    return '"' + hashlib.sha256(canonical.encode()).hexdigest()[:32] + '"'


def check_if_match(if_match: str | None, current: str, what: str = "access") -> None:
    """Refuse a write whose If-Match is missing (428) or stale (412)."""
    name, route = _ETAGGED[what]
    if if_match is None or not if_match.strip():
        raise PreconditionRequired(
            f"this change needs an If-Match header with the ETag of {name}"
            f" (GET /api/v1/{route} answers it), so that a concurrent change is not lost"
        )
    offered = {tag.strip() for tag in if_match.split(",")}
    if current not in offered and "*" not in offered:
        raise PreconditionFailed(
            f"{name} changed since you read them (their ETag is now {current});"
            " read them again and repeat the change if it still applies"
        )


def _find(rules: Sequence[AccessRuleConfig], change: AccessChange) -> int | None:
    for index, rule in enumerate(rules):
        if rule.client == change.client and rule.service == change.service:
            return index
    return None


def plan_grant(
    rules: Sequence[AccessRuleConfig], change: AccessChange, published: Collection[str]
) -> RulePlan:
    """Grant `change.methods`; `published` are the methods the service serves."""
    unknown = [m for m in change.methods if m != ANY_METHOD and m not in published]
    if unknown:
        raise NotFound(
            f"{change.service} does not publish {', '.join(unknown)}; its methods are"
            f" {', '.join(sorted(published)) or 'none'}"
        )
    index = _find(rules, change)
    if index is None:
        return RulePlan(index=None, methods=tuple(dict.fromkeys(change.methods)), changed=True)
    current = list(rules[index].methods)
    added = [m for m in dict.fromkeys(change.methods) if m not in current]
    if ANY_METHOD in current or not added:
        return RulePlan(index=index, methods=tuple(current), changed=False)
    return RulePlan(index=index, methods=(*current, *added), changed=True)


def plan_revoke(rules: Sequence[AccessRuleConfig], change: AccessChange) -> RulePlan:
    """Revoke `change.methods` (``*`` revokes the whole rule)."""
    index = _find(rules, change)
    if index is None:
        return RulePlan(index=None, methods=(), changed=False)
    current = list(rules[index].methods)
    if ANY_METHOD in change.methods:
        return RulePlan(index=index, methods=(), changed=True)
    if ANY_METHOD in current:
        raise Conflict(
            f"{change.client} may call every method of {change.service} (*): revoke '*' and"
            " grant the methods it should keep, or keep the rule as it is"
        )
    kept = tuple(m for m in current if m not in change.methods)
    return RulePlan(index=index, methods=kept, changed=len(kept) != len(current))
