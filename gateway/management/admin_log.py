"""The signed log of admin actions: who changed what on this server, and when.

Admin actions are written with the same machinery as exchanges (an
`AuditStore` with group commit, hash chain, Merkle tree and checkpoints
signed with the member's signing key), in a store of their own
(``management.audit_store``) under the origin ``<server id>#management``, so
`spean audit export --store ... --origin ...` and `spean audit verify` check
it like any exchange log.

A record of an admin action fills the exchange record's fields as follows:
`exchange_id` a fresh action id, `side` PROVIDER (this server acting on its
own configuration), `user` the principal, `purpose` its role, `method` the
action (``access.grant``, ``access.revoke``), `client` and `service` the
subsystems concerned, `message` what changed in words, and `status`
``APPLIED`` or ``FAILED``. The status is never ``OK`` (an OK record is an
exchange and must hold both tokens) and no token is ever set.

Fail closed: the action's record is durable before the change is written;
when the change then fails, a ``FAILED`` record follows with the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from spean.gateway.audit.backends import open_store
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.audit.store import AuditStore
from spean.gateway.audit.writer import server_checkpoint_policy
from spean.gateway.config import ServerConfig
from spean.gateway.token_claims import new_exchange_id
from spean.gateway.web.roles import Principal

APPLIED = "APPLIED"
FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class AdminAction:
    action: str
    client: str
    service: str
    description: str


def origin_of(config: ServerConfig) -> str:
    return f"{config.server_id}#management"


def open_admin_log(config: ServerConfig) -> AuditStore:
    assert config.management is not None
    url = config.management.audit_store
    if "://" not in url:
        url = str(config.resolve(Path(url)))
    return open_store(url, origin_of(config), checkpoints=server_checkpoint_policy(config))


class AdminLog:
    """Appends admin actions to their store; reads them back for the API."""

    def __init__(self, store: AuditStore) -> None:
        self.store = store

    def record(
        self, principal: Principal, action: AdminAction, status: str, action_id: str = ""
    ) -> str:
        """Append one action durably; returns its id (pass it again for the outcome)."""
        action_id = action_id or new_exchange_id()
        self.store.append(
            AuditRecord(
                exchange_id=action_id,
                side=Side.PROVIDER,
                origin=self.store.origin,
                received_at_ns=time.time_ns(),
                status=status,
                client=action.client,
                service=action.service,
                method=action.action,
                user=principal.name,
                purpose=principal.role.value,
                message=action.description,
            )
        )
        return action_id

    def recent(self, limit: int) -> list[tuple[int, AuditRecord]]:
        """The newest `limit` actions, newest first, with their indexes in the log."""
        size = self.store.size()
        rows = self.store.read(max(0, size - limit), size)
        found = [(row.index, AuditRecord.from_bytes(row.record_bytes)) for row in rows]
        return found[::-1]

    def close(self) -> None:
        self.store.close()
