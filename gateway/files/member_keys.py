"""The member side: a member's signing key or a security server's TLS key, and its CSR.

`init_member` and `init_server` write a private key (0600, optionally
encrypted with a passphrase) and a CSR into the member's directory; the CSR
goes to the authority, the key never leaves. Admission writes nothing there.
A running server's key rotation through the management API writes its next
key the same way.
Identifiers and addresses are checked here so that a typo is caught before it
reaches the authority.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog

from spean.gateway import pki
from spean.gateway.errors import FailedPrecondition
from spean.gateway.files import keyfiles
from spean.gateway.identifiers import MemberId, ServerId, SubsystemId, parse_server

log = structlog.get_logger()

MEMBER_KEY, MEMBER_CSR = "signing.key", "signing.csr"
SERVER_KEY, SERVER_CSR = "tls.key", "tls.csr"


@dataclass(frozen=True, slots=True)
class KeyFiles:
    """What `init_member` / `init_server` wrote: a private key and its CSR."""

    key: Path
    csr: Path


def init_member(
    directory: Path,
    member_id: str | MemberId,
    key_kind: pki.KeyKind = "ec-p256",
    passphrase: bytes | None = None,
) -> KeyFiles:
    """Generate a member's signing key (signing.key, 0600) and its CSR (signing.csr)."""
    member = member_id if isinstance(member_id, MemberId) else MemberId.parse(member_id)
    return _init_key(
        Path(directory), MEMBER_KEY, MEMBER_CSR, str(member), "member", key_kind, passphrase
    )


def init_server(
    directory: Path,
    server_id: str | ServerId,
    address: str,
    passphrase: bytes | None = None,
) -> KeyFiles:
    """Generate a security server's TLS key (tls.key, 0600, EC P-256) and its CSR (tls.csr).

    `address` is checked here so that a typo is caught before it reaches the
    authority, which records the address at admission.
    """
    server = server_id if isinstance(server_id, SubsystemId) else parse_server(server_id)
    pki.parse_address(address)
    return _init_key(
        Path(directory), SERVER_KEY, SERVER_CSR, str(server), "server", "ec-p256", passphrase
    )


def _init_key(
    directory: Path,
    key_name: str,
    csr_name: str,
    identifier: str,
    kind: pki.CsrKind,
    key_kind: pki.KeyKind,
    passphrase: bytes | None,
) -> KeyFiles:
    make_private_dir(directory)
    key_path, csr_path = directory / key_name, directory / csr_name
    key = pki.generate_key(key_kind)
    csr = pki.make_csr(key, identifier, kind)
    keyfiles.write_private_key(key_path, key, passphrase)
    keyfiles.write_file_atomically(csr_path, pki.csr_pem(csr))
    log.info("pki.key_created", identifier=identifier, key=str(key_path), csr=str(csr_path))
    return KeyFiles(key=key_path, csr=csr_path)


def make_private_dir(directory: Path) -> None:
    """`directory` and its parents, readable by the owner only (0700)."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise FailedPrecondition(f"cannot create directory {directory}: {exc.strerror}") from exc
