"""Spean: a federated data-exchange gateway between ministries, on gRPC.

One installed namespace (docs/architecture.md):

- `spean.gateway`: the security server, the authority, the audit log and the
  `spean` command line (the repository's ``gateway/`` folder);
- `spean.adapters`: the adapter interface and the SQL, gRPC pass-through and
  Python adapters (``adapters/``);
- `spean.v1`, `spean.demo`: code generated from ``protos/`` by ``make proto``,
  named after the proto packages (Spean's own messages, the demo ministries'
  services). Never edited by hand.
"""
