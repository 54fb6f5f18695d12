"""Signed checkpoints of a writer's Merkle log (pure, no I/O).

A checkpoint says "the log named `origin` had `size` records and this Merkle
root". Its text is a C2SP checkpoint (c2sp.org/tlog-checkpoint) wrapped in a
C2SP signed note (c2sp.org/signed-note):

    KH/GOV/MOH/ss1#w0                     origin (the log's writer)
    1024                                  size, decimal
    mVX8L4...=                            RFC 9162 root, standard base64
    spean-previous 512                    extension: size of the previous checkpoint
    spean-time 1732492800000000000        extension: Unix ns when it was signed
                                          (blank line)
    — KH/GOV/MOH AbCdEf...=               signature line(s)

Invariants a verifier relies on:
- The signed text is everything up to and including the newline before the
  blank line; the signature line holds base64(key id (4 bytes) || signature).
- The key name is the member that owns the log (its writer's server belongs
  to it); the signing key is that member's token-signing key, whose
  certificate the global configuration publishes.
- Key id: the first 4 bytes of SHA-256(name || 0x0A || type || public key),
  type 0x01 with the raw 32-byte key for Ed25519 (the C2SP definition), type
  0x02 with the DER SubjectPublicKeyInfo for ECDSA P-256 (Spean's choice;
  the signature is then DER-encoded ECDSA over SHA-256 of the text).
- `spean-previous` chains the checkpoints of one log: dropping a checkpoint
  from an export leaves a gap a verifier names. `spean-time` is signed, so it
  dates the log's size without trusting the store.
- A checkpoint covers a prefix of the log: its root must equal the Merkle
  root of the log's first `size` records, and two checkpoints of one log
  must be consistent (the smaller is a prefix of the larger).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from spean.gateway import pki
from spean.gateway.audit.merkle import HASH_SIZE
from spean.gateway.errors import ConfigError, InvalidArgument

_DASH = "\u2014 "
_ED25519 = 0x01
_ECDSA_P256 = 0x02
_PREVIOUS = "spean-previous "
_TIME = "spean-time "
MAX_NOTE_SIZE = 4096
"""Longest signed checkpoint accepted, in bytes; real ones are under 300."""


class CheckpointError(InvalidArgument):
    """A checkpoint is malformed or its signature does not verify."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The signed content of one checkpoint."""

    origin: str
    size: int
    root: bytes
    previous_size: int
    time_ns: int

    def body(self) -> str:
        """The signed text: checkpoint lines, each ending in a newline."""
        return (
            f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode('ascii')}\n"
            f"{_PREVIOUS}{self.previous_size}\n{_TIME}{self.time_ns}\n"
        )


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint and the signed note that carries it, exactly as stored."""

    checkpoint: Checkpoint
    key_name: str
    key_id: bytes
    signature: bytes
    note: bytes

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root

    @property
    def origin(self) -> str:
        return self.checkpoint.origin


def _public_key_material(key: PublicKeyTypes) -> tuple[int, bytes]:
    try:
        kind = pki.key_kind(key)
    except InvalidArgument:
        raise ConfigError(
            f"checkpoint keys must be Ed25519 or EC P-256, not {type(key).__name__}"
        ) from None
    if kind == "ed25519":
        assert isinstance(key, ed25519.Ed25519PublicKey)
        return _ED25519, key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return _ECDSA_P256, pki.public_key_bytes(key)


def key_id(name: str, key: PublicKeyTypes) -> bytes:
    """C2SP signed-note key id: SHA-256(name || 0x0A || type || key)[:4]."""
    kind, material = _public_key_material(key)
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([kind]) + material).digest()[:4]


class CheckpointSigner:
    """Signs checkpoints with a member's signing key (the one its tokens use)."""

    __slots__ = ("_key", "key_id", "name")

    def __init__(
        self, name: str, private_key: PrivateKeyTypes, certificate: x509.Certificate
    ) -> None:
        _check_key_name(name)
        public = private_key.public_key()
        if pki.public_key_bytes(public) != pki.public_key_bytes(certificate.public_key()):
            raise ConfigError("checkpoint signing key does not match its certificate")
        if not isinstance(private_key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise ConfigError(
                f"checkpoint keys must be Ed25519 or EC P-256, not {type(private_key).__name__}"
            )
        self.name = name
        self.key_id = key_id(name, public)
        self._key = private_key

    def sign(self, checkpoint: Checkpoint) -> SignedCheckpoint:
        body = checkpoint.body().encode("ascii")
        signature = pki.sign(self._key, body)
        line = base64.b64encode(self.key_id + signature).decode("ascii")
        note = body + b"\n" + f"{_DASH}{self.name} {line}\n".encode()
        return SignedCheckpoint(checkpoint, self.name, self.key_id, signature, note)

    def __repr__(self) -> str:
        return f"CheckpointSigner(name={self.name!r}, key_id={self.key_id.hex()!r})"


def parse_checkpoint(note: bytes) -> SignedCheckpoint:
    """Parse a signed checkpoint note (signature NOT checked; see `verify_checkpoint`).

    Exactly one signature line is accepted: a Spean log signs its own
    checkpoints with one key. Raises `CheckpointError` naming the defect.
    """
    if len(note) > MAX_NOTE_SIZE:
        raise CheckpointError(f"checkpoint is {len(note)} bytes, above {MAX_NOTE_SIZE}")
    try:
        text = note.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError("checkpoint is not UTF-8 text") from exc
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise CheckpointError("checkpoint contains control characters")
    split = text.rfind("\n\n")
    if split < 0 or not text.endswith("\n"):
        raise CheckpointError("checkpoint is not a signed note (no blank line before signatures)")
    body, signatures = text[: split + 1], text[split + 2 :]
    lines = body.split("\n")[:-1]
    if len(lines) != 5:
        raise CheckpointError(
            f"checkpoint text has {len(lines)} lines; expected origin, size, root, "
            "spean-previous and spean-time"
        )
    origin, size_text, root_text, previous_text, time_text = lines
    size = _decimal(size_text, "size")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as exc:
        raise CheckpointError(f"checkpoint root {root_text!r} is not base64") from exc
    if len(root) != HASH_SIZE or base64.b64encode(root).decode("ascii") != root_text:
        raise CheckpointError(f"checkpoint root must be {HASH_SIZE} bytes in canonical base64")
    if not previous_text.startswith(_PREVIOUS) or not time_text.startswith(_TIME):
        raise CheckpointError("checkpoint lacks its spean-previous and spean-time lines")
    previous = _decimal(previous_text[len(_PREVIOUS) :], "spean-previous")
    time_ns = _decimal(time_text[len(_TIME) :], "spean-time")
    if previous > size:
        raise CheckpointError(f"checkpoint previous size {previous} is above its size {size}")
    sig_lines = signatures.split("\n")[:-1]
    if len(sig_lines) != 1 or not sig_lines[0].startswith(_DASH):
        raise CheckpointError("checkpoint must carry exactly one signature line")
    name, _, encoded = sig_lines[0][len(_DASH) :].rpartition(" ")
    _check_key_name(name)
    try:
        blob = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise CheckpointError("checkpoint signature is not base64") from exc
    if len(blob) < 5:
        raise CheckpointError("checkpoint signature is too short")
    checkpoint = Checkpoint(origin, size, root, previous, time_ns)
    if checkpoint.body() != body:
        raise CheckpointError("checkpoint text is not in canonical form")
    return SignedCheckpoint(checkpoint, name, blob[:4], blob[4:], note)


def verify_checkpoint(
    signed: SignedCheckpoint, certificates: tuple[x509.Certificate, ...] | list[x509.Certificate]
) -> x509.Certificate:
    """Check the signature against the signer's certificates; return the one that signed.

    `certificates` are the member's signing certificates from the global
    configuration. Raises `CheckpointError` when none has the note's key id
    or the signature does not verify with it.
    """
    body = signed.checkpoint.body().encode("ascii")
    for certificate in certificates:
        public = certificate.public_key()
        try:
            if key_id(signed.key_name, public) != signed.key_id:
                continue
        except ConfigError:
            continue
        # A key id matched, so `public` is P-256 or Ed25519 (`_public_key_material`).
        assert isinstance(public, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey)
        if not pki.signature_valid(public, signed.signature, body):
            raise CheckpointError(
                f"checkpoint signature of {signed.key_name} (key id {signed.key_id.hex()}) "
                "does not verify"
            )
        return certificate
    raise CheckpointError(
        f"checkpoint is signed by key id {signed.key_id.hex()} under name {signed.key_name!r}, "
        "which is not a signing certificate of that member in the global configuration"
    )


def _decimal(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise CheckpointError(f"checkpoint {what} {text!r} is not a decimal number")
    value = int(text)
    if value >= 1 << 64:
        raise CheckpointError(f"checkpoint {what} {value} does not fit in 64 bits")
    return value


def _check_key_name(name: str) -> None:
    if not name or any(c in " +" or ord(c) < 0x21 for c in name):
        raise CheckpointError(f"checkpoint key name {name!r} is empty or has spaces or '+'")
