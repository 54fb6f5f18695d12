"""Audit log: records, Merkle tree, checkpoints, stores and the auditors' tools.

Pure (values in, values out):
- `record`: `AuditRecord`, one per exchange and side, and its canonical bytes;
- `chain`: the per-writer hash chain over those bytes;
- `merkle`: the RFC 9162 Merkle tree and proofs over the same leaves;
- `checkpoint`: signed checkpoints (C2SP checkpoint text);
- `reconcile`: matching a consumer's log against a provider's.

Stores (I/O):
- `store`: the `AuditStore` interface (durable, fail-closed appends);
- `backends`: SQLite and PostgreSQL, and `open_store`;
- `writer`: the group-commit writer both backends share.

Auditors' tools over exported logs:
- `bundle`, `verify` (the pure verifier) and `verify_parallel` (the same with
  token signatures checked in worker processes), `archive`, `bodies`,
  `witness`, `resend` (the decrypted timeline, and re-sending it to a test
  instance).

This package imports nothing on purpose: importing `spean.gateway.audit.merkle`
loads the Merkle tree, not a database driver.
"""
