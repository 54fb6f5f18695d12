"""The exchange audit log as the management API shows it: statistics, records, proofs.

Reads only: the store (the server's own, open) and the traffic index derived
from it (gateway/management/traffic_index.py). An inclusion proof is built
from the index's leaf hashes against the first signed checkpoint of the
store that covers the record, and checked here before it is answered, so
the API never hands out a proof that does not verify.
"""

from __future__ import annotations

import base64
import datetime as dt
import time

from spean.gateway.audit.checkpoint import parse_checkpoint
from spean.gateway.audit.merkle import (
    inclusion_proof_ranges,
    root_from_leaf_hashes,
    verify_inclusion,
)
from spean.gateway.audit.store import AuditStore
from spean.gateway.errors import NotFound
from spean.gateway.management import models
from spean.gateway.management.statistics import series, totals, window
from spean.gateway.management.traffic_index import Filters, IndexedRecord, TrafficIndex


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat()


def _summary(row: IndexedRecord) -> models.AuditRecordSummary:
    return models.AuditRecordSummary(
        origin=row.origin,
        index=row.index,
        exchange_id=row.exchange_id,
        side=row.side,
        client=row.client,
        service=row.service,
        method=row.method,
        status=row.status,
        received_at=_iso(row.received_at_ns),
        received_at_ns=row.received_at_ns,
        latency_ms=row.latency_us / 1000,
    )


class AuditView:
    def __init__(self, store: AuditStore, index: TrafficIndex, server_id: str) -> None:
        self._store = store
        self._index = index
        self._prefix = f"{server_id}#"

    def traffic(self, window_name: str, side: str | None) -> models.Traffic:
        win = window(window_name, time.time_ns())
        counts = self._index.counts(win, side.upper() if side else None)
        return models.Traffic(
            window=win.name,
            since=_iso(win.since_ns),
            until=_iso(win.until_ns),
            bucket_seconds=win.bucket_ns // 1_000_000_000,
            side=side,  # type: ignore[arg-type]
            series=[
                models.TrafficSeries(
                    service=s.service,
                    points=[
                        models.TrafficPoint(
                            bucket_start=_iso(win.since_ns + i * win.bucket_ns), calls=c, errors=e
                        )
                        for i, (c, e) in enumerate(zip(s.calls, s.errors, strict=True))
                    ],
                )
                for s in series(counts, win)
            ],
            totals=[
                models.TrafficTotal(
                    service=t.service,
                    client=t.client,
                    calls=t.calls,
                    errors=t.errors,
                    error_rate=round(t.error_rate, 4),
                    by_status=dict(t.by_status),
                )
                for t in totals(counts)
            ],
        )

    def records(self, filters: Filters, limit: int, before_ns: int | None) -> models.AuditRecords:
        rows = self._index.search(filters, limit + 1, before_ns)
        more = len(rows) > limit
        rows = rows[:limit]
        return models.AuditRecords(
            records=[_summary(row) for row in rows],
            next_before_ns=rows[-1].received_at_ns if more and rows else None,
        )

    def proof(self, origin: str, index: int) -> models.InclusionProof:
        if not origin.startswith(self._prefix):
            raise NotFound(f"{origin} is not a log of this server (its logs: {self._prefix}...)")
        self._index.catch_up()
        records = list(self._store.read(index, index + 1, origin=origin))
        if not records:
            raise NotFound(f"record {index} of {origin} is not in the audit store")
        covering = self._store.checkpoints(min_size=index + 1, origin=origin)
        if not covering:
            raise NotFound(
                f"no signed checkpoint covers record {index} of {origin} yet; the server signs"
                " one within a second of a new record: ask again shortly"
            )
        checkpoint = covering[0]
        data = records[0].record_bytes
        leaf = self._index.leaf_hashes(origin, index, index + 1)[0]
        path = [
            root_from_leaf_hashes(self._index.leaf_hashes(origin, start, stop))
            for start, stop in inclusion_proof_ranges(index, checkpoint.size)
        ]
        root = parse_checkpoint(checkpoint.note).checkpoint.root
        verify_inclusion(leaf, index, checkpoint.size, path, root)
        return models.InclusionProof(
            origin=origin,
            index=index,
            tree_size=checkpoint.size,
            record=base64.b64encode(data).decode(),
            leaf_hash=leaf.hex(),
            proof=[h.hex() for h in path],
            checkpoint=checkpoint.note.decode(),
        )
