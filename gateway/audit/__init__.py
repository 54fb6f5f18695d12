"""Audit log: records, Merkle tree, checkpoints and stores.

- `record`: `AuditRecord`, one per exchange and side, and its canonical bytes.
- `chain`: the per-writer hash chain over those bytes (RFC 9162 leaf hashes).
- `store`: the `AuditStore` interface (durable, fail-closed appends) and
  `open_store`; `sqlite`: the embedded backend with group commit.
- `merkle`: the RFC 9162 Merkle tree and proofs over the same leaves.
- `bundle`, `verify`, `reconcile`: offline export and checks for auditors;
  `archive`: retention (archive segments, verifying a sequence of bundles);
  `replay`: the decrypted timeline and re-sending it to a test instance.
"""

from spean.gateway.audit.chain import ChainError, ChainHead, leaf_hash, verify_chain
from spean.gateway.audit.record import AuditRecord, Side
from spean.gateway.audit.store import AuditReceipt, AuditStore, StoredRecord, open_store

__all__ = [
    "AuditReceipt",
    "AuditRecord",
    "AuditStore",
    "ChainError",
    "ChainHead",
    "Side",
    "StoredRecord",
    "leaf_hash",
    "open_store",
    "verify_chain",
]
