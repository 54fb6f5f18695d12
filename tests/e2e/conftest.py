"""A live demo federation on loopback, shared by the end-to-end stories.

The fixture builds the three demo ministries in a temporary folder with real
keys, real certificates and real SQLite databases, starts their security
servers, and hands the tests a `World` to call through and inspect.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from spean.gateway.audit.record import AuditRecord
from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import MOH, build_demo
from spean.gateway.server.app import SecurityServer


class World:
    """The running federation, seen from the tests."""

    def __init__(self, federation: Federation) -> None:
        self.federation = federation

    def server(self, member: str) -> SecurityServer:
        return self.federation.servers[member]

    def records(self, member: str) -> list[AuditRecord]:
        return [AuditRecord.from_bytes(r.record_bytes) for r in self.server(member).audit.read()]

    def record(self, member: str, exchange_id: str) -> AuditRecord:
        matches = [r for r in self.records(member) if r.exchange_id == exchange_id]
        assert len(matches) == 1, f"{member} holds {len(matches)} records of {exchange_id}"
        return matches[0]

    def consumer_channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.federation.consumer_addresses[MOH])

    def folder(self, member: str) -> Path:
        return self.federation.configs[member].parent


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    federation = build_demo(tmp_path_factory.mktemp("federation"))
    with federation.running():
        yield World(federation)
