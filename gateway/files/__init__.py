"""The files a security server, a member and the authority keep on disk.

- `config`: reading a server's YAML configuration and the secrets it names
  (key passphrase, pseudonymisation key).

The lowest I/O layer: everything above it (audit, server, authority, demo,
CLI) may use it; it uses only the pure rules.
"""
