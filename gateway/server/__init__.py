"""The security server: consumer side, provider side and their assembly.

These modules are the edge: they read gRPC calls, call the pure core
(identifiers, tokens, access rules, global configuration) and write answers
and audit records. All protocol decisions live in the core.
"""
