"""Key and certificate files: created private, replaced atomically, read with clear errors.

- Private keys are PEM PKCS#8, created with mode 0600 from the first byte
  (``os.open`` with the mode, never chmod after the fact) and never
  overwritten.
- Every other file is replaced atomically (temporary file, fsync, rename,
  fsync of the folder): a reader sees the old content or the new, even after
  a crash.
- An OSError becomes `FailedPrecondition` naming the file and the reason
  (`ConfigError` for the auditors' X25519 key files).
- The auditors' key (`generate_auditor_key`, `load_auditor_key`,
  `load_auditor_public_key`) is an X25519 key in PKCS#8 PEM, unencrypted,
  written 0600 and never overwritten; `spean.gateway.audit.bodies` seals to
  its raw 32-byte public key.

Parsing and encoding are `spean.gateway.pki`'s (pure); this module only
moves bytes between it and the disk.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from spean.gateway.errors import ConfigError, FailedPrecondition
from spean.gateway.pki import (
    PrivateKey,
    certificate_pem,
    parse_certificate_pem,
    parse_private_key,
    private_key_pem,
)


def write_private_key(path: Path, key: PrivateKey, passphrase: bytes | None = None) -> None:
    """Write `key` to a new file created with mode 0600; an existing file is never replaced."""
    data = private_key_pem(key, passphrase)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError as exc:
        raise FailedPrecondition(
            f"{path} already exists; refusing to overwrite a private key (move it away first)"
        ) from exc
    except OSError as exc:
        raise FailedPrecondition(f"cannot create private key file {path}: {exc.strerror}") from exc
    try:
        # The umask can only have removed bits; make the mode exactly 0600 anyway.
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise FailedPrecondition(f"cannot write private key file {path}: {exc.strerror}") from exc


def load_private_key(path: Path, passphrase: bytes | None = None) -> PrivateKey:
    """Load a PEM private key; errors say whether the passphrase is missing or wrong.

    A passphrase given for an unencrypted key is ignored, so that one
    SPEAN_KEY_PASSPHRASE can serve a mix of encrypted and plain keys.
    """
    return parse_private_key(_read(path, "private key"), passphrase, str(path))


def write_file_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data`: temporary file, fsync, rename, fsync the directory.

    A reader sees the old content or the new one, never a mix, even after a crash.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise FailedPrecondition(f"cannot write {path}: {exc.strerror}") from exc


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FailedPrecondition(f"cannot read {what} {path}: {exc.strerror}") from exc


def write_certificate(path: Path, cert: x509.Certificate) -> None:
    """Write a PEM certificate (mode 0644, atomically replacing any previous one)."""
    write_file_atomically(path, certificate_pem(cert))


def load_certificate(path: Path) -> x509.Certificate:
    """Load the first PEM certificate in `path`."""
    return parse_certificate_pem(_read(path, "certificate"), str(path))


def generate_auditor_key(path: Path) -> bytes:
    """Write a new X25519 private key (PKCS#8 PEM, mode 0600) to `path`; return its public key."""
    key = X25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
    except FileExistsError as exc:
        raise ConfigError(f"{path} already exists; an auditor key is never overwritten") from exc
    except OSError as exc:
        raise ConfigError(f"cannot write auditor key {path}: {exc.strerror}") from exc
    return _raw_public(key.public_key())


def load_auditor_key(path: Path) -> X25519PrivateKey:
    """Read an auditor's X25519 private key (PKCS#8 PEM)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"cannot read auditor key {path}: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, X25519PrivateKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, not an X25519 auditor key")
    return key


def load_auditor_public_key(path: Path) -> bytes:
    """Raw 32-byte public key from a PEM public key, or from a PEM private key."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read auditor key {path}: {exc.strerror}") from exc
    if b"PRIVATE KEY" in data:
        return _raw_public(load_auditor_key(path).public_key())
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM public key: {exc}") from exc
    if not isinstance(key, X25519PublicKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, not an X25519 public key")
    return _raw_public(key)


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
