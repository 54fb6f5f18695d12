"""A demo federation made for hostile tests: small limits, a huge row, odd certificates.

It is the demo federation of the end-to-end stories with three changes made
before the servers start, each through the real interfaces:

- every security server's `limits.max_message_bytes` is 64 KiB, so oversize
  requests and responses cost little to send;
- MPWT's vehicle table holds one row whose `make` is larger than that limit
  (`HUGE_PLATE`), so the SQL adapter can be made to answer too big;
- the authority admitted a second MOH security server (`REVOKED_SERVER`) and
  then revoked its TLS certificate, so a listed but revoked peer exists.

`build_hostile` makes it (not started); `HostileWorld` is the running one.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import yaml

from spean.gateway import pki
from spean.gateway.authority import init_server
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.federation import Federation, free_port
from spean.gateway.demo.ministries import MOH, MPWT, build_demo
from tests.support.world import World

MAX_MESSAGE_BYTES = 64 * 1024
HUGE_PLATE = "9Z-9999"
REVOKED_SERVER = f"{MOH}/ss2"


@dataclass(frozen=True, slots=True)
class RevokedIdentity:
    key_pem: bytes
    cert_pem: bytes


class HostileWorld(World):
    """The running hostile federation, with the revoked identity at hand."""

    def __init__(self, federation: Federation, revoked: RevokedIdentity) -> None:
        super().__init__(federation)
        self.revoked = revoked

    def vehicles_database(self) -> Path:
        return self.folder(MPWT) / "mpwt-vehicles.db"


def _shrink_limits(config: Path) -> None:
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    document["limits"] = {"max_message_bytes": MAX_MESSAGE_BYTES}
    config.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def _add_huge_row(database: Path) -> None:
    with sqlite3.connect(database) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(vehicles)")]
        row = dict(
            zip(
                columns,
                conn.execute(
                    "SELECT * FROM vehicles WHERE plate = ?", (demo_data.SAMPLE_PLATE,)
                ).fetchone(),
                strict=True,
            )
        )
        row["plate"], row["make"] = HUGE_PLATE, "x" * (2 * MAX_MESSAGE_BYTES)
        marks = ", ".join("?" for _ in columns)
        conn.execute(
            f"INSERT INTO vehicles ({', '.join(columns)}) VALUES ({marks})", list(row.values())
        )


def build_hostile(root: Path) -> tuple[Federation, RevokedIdentity]:
    """The hostile federation in `root`, not yet started, and the revoked server's identity."""
    federation = build_demo(root)
    for config in federation.configs.values():
        _shrink_limits(config)
    _add_huge_row(federation.configs[MPWT].parent / "mpwt-vehicles.db")
    # A listed security server whose certificate the authority then revoked.
    keys = federation.root / "revoked"
    keys.mkdir()
    init_server(keys, REVOKED_SERVER, f"127.0.0.1:{free_port()}")
    cert_pem = federation.authority.admit_server(
        REVOKED_SERVER, f"127.0.0.1:{free_port()}", (keys / "tls.csr").read_bytes()
    )
    federation.authority.revoke(thumbprint=pki.thumbprint(pki.parse_certificate_pem(cert_pem)))
    federation.authority.publish()
    return federation, RevokedIdentity((keys / "tls.key").read_bytes(), cert_pem)
