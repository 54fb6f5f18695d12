"""A running federation on loopback as the tests see it: servers, audit logs, a channel.

`World` wraps a `Federation` whose security servers run in this process: the
tests call through MoH's consumer endpoint and read what each member's audit
log holds. `running(federation)` starts the servers and hands out the
`World`, stopping everything on exit; it is the one federation fixture the
end-to-end, hostile and trust stories share (their conftest files only call
it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import grpc

from spean.gateway.audit.record import AuditRecord
from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import MOH
from spean.gateway.server.app import SecurityServer


class World:
    """The running federation, seen from the tests."""

    def __init__(self, federation: Federation) -> None:
        self.federation = federation

    def server(self, member: str) -> SecurityServer:
        return self.federation.servers[member]

    def records(self, member: str) -> list[AuditRecord]:
        return [AuditRecord.from_bytes(r.record_bytes) for r in self.server(member).audit.read()]

    def records_of(self, member: str, exchange_id: str) -> list[AuditRecord]:
        """Every record `member` holds of `exchange_id`, in log order (a replay adds one)."""
        return [r for r in self.records(member) if r.exchange_id == exchange_id]

    def record(self, member: str, exchange_id: str) -> AuditRecord:
        matches = self.records_of(member, exchange_id)
        assert len(matches) == 1, f"{member} holds {len(matches)} records of {exchange_id}"
        return matches[0]

    def consumer_channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.federation.consumer_addresses[MOH])

    def folder(self, member: str) -> Path:
        return self.federation.configs[member].parent


@contextlib.contextmanager
def running(federation: Federation) -> Iterator[World]:
    """Start every server of `federation`; the `World` until the block ends."""
    with federation.running():
        yield World(federation)
