"""Request and response bodies sealed to the federation's auditors (pure).

A provider service configured with `audit_bodies: encrypted` (and a server
with `pubsub.audit_bodies: encrypted`, for the events it publishes and
receives) keeps, next to each audit record, the exchange's bodies (or the
event's bytes) encrypted so that only the holders
of the auditor's X25519 private key can read them; the security server that
wrote them cannot, as it never holds that key.

Sealed form (all lengths fixed but the last):

    b"SPB1"                 magic and version
    ephemeral public key    32 bytes, X25519, fresh for every exchange
    wrap nonce              12 bytes
    wrapped data key        48 bytes: AES-256-GCM(KEK, data key), tag included
    body nonce              12 bytes
    ciphertext              AES-256-GCM(data key, plaintext), tag included

    KEK       = HKDF-SHA256(X25519(ephemeral, auditor), salt = ephemeral public
                || auditor public, info = "spean audit bodies v1 key wrap")
    plaintext = u32 len(request) || request || u32 count || (u32 len(m) || m)*
    AAD       = "spean-bodies/1\\n" origin "\\n" side "\\n" exchange id

Invariants:
- The data key is random per exchange and exists in the clear only while
  sealing; the KEK needs the auditor's private key to rebuild.
- The AAD binds a sealed blob to its record (writer, side, exchange): moved
  onto another record it does not decrypt.
- Bodies are not hashed into the Merkle tree; the record's digests are.
  An auditor checks decrypted bodies against those digests
  (`check_bodies`), so bodies prove themselves through the signed log, and
  can be erased (retention, data protection) without breaking verification.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from spean.gateway.audit.record import AuditRecord, Kind
from spean.gateway.digests import ResponseDigest, request_digest
from spean.gateway.errors import ConfigError, FailedPrecondition, InvalidArgument

MAGIC = b"SPB1"
_KEY = 32
_NONCE = 12
_TAG = 16
_HEADER = len(MAGIC) + _KEY + _NONCE + _KEY + _TAG + _NONCE
_U32 = struct.Struct(">I")
_INFO = b"spean audit bodies v1 key wrap"


class BodiesError(InvalidArgument):
    """Sealed bodies cannot be opened: wrong key, altered, or not sealed bodies."""


@dataclass(frozen=True, slots=True)
class Bodies:
    """One exchange's request and response messages, in order."""

    request: bytes
    responses: tuple[bytes, ...]

    def to_bytes(self) -> bytes:
        parts = [_U32.pack(len(self.request)), self.request, _U32.pack(len(self.responses))]
        for message in self.responses:
            parts += [_U32.pack(len(message)), message]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> Bodies:
        try:
            (size,) = _U32.unpack_from(data, 0)
            offset = 4 + size
            request = data[4:offset]
            (count,) = _U32.unpack_from(data, offset)
            offset += 4
            responses = []
            for _ in range(count):
                (size,) = _U32.unpack_from(data, offset)
                responses.append(data[offset + 4 : offset + 4 + size])
                offset += 4 + size
        except struct.error as exc:
            raise BodiesError("decrypted bodies are truncated") from exc
        if offset != len(data) or len(request) != _U32.unpack_from(data, 0)[0]:
            raise BodiesError("decrypted bodies have a wrong length")
        return cls(request, tuple(responses))


def associated_data(origin: str, side: str, exchange_id: str) -> bytes:
    return f"spean-bodies/1\n{origin}\n{side}\n{exchange_id}".encode()


def _kek(shared: bytes, ephemeral: bytes, auditor: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=_KEY, salt=ephemeral + auditor, info=_INFO)
    return hkdf.derive(shared)


def _raw(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def seal(bodies: Bodies, auditor_public_key: bytes, aad: bytes) -> bytes:
    """Encrypt `bodies` to the auditor's raw 32-byte X25519 public key."""
    if len(auditor_public_key) != _KEY:
        raise ConfigError("the auditor public key must be a raw 32-byte X25519 key")
    auditor = X25519PublicKey.from_public_bytes(auditor_public_key)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = _raw(ephemeral.public_key())
    kek = _kek(ephemeral.exchange(auditor), ephemeral_public, auditor_public_key)
    data_key = AESGCM.generate_key(bit_length=256)
    wrap_nonce, body_nonce = os.urandom(_NONCE), os.urandom(_NONCE)
    wrapped = AESGCM(kek).encrypt(wrap_nonce, data_key, aad)
    ciphertext = AESGCM(data_key).encrypt(body_nonce, bodies.to_bytes(), aad)
    return MAGIC + ephemeral_public + wrap_nonce + wrapped + body_nonce + ciphertext


def open_sealed(sealed: bytes, auditor_key: X25519PrivateKey, aad: bytes) -> Bodies:
    """Decrypt sealed bodies with the auditor's private key; `BodiesError` if impossible."""
    if len(sealed) < _HEADER + _TAG or not sealed.startswith(MAGIC):
        raise BodiesError("not sealed bodies (bad magic or too short)")
    offset = len(MAGIC)
    ephemeral_public = sealed[offset : offset + _KEY]
    offset += _KEY
    wrap_nonce = sealed[offset : offset + _NONCE]
    offset += _NONCE
    wrapped = sealed[offset : offset + _KEY + _TAG]
    offset += _KEY + _TAG
    body_nonce = sealed[offset : offset + _NONCE]
    ciphertext = sealed[offset + _NONCE :]
    auditor_public = _raw(auditor_key.public_key())
    try:
        shared = auditor_key.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
        kek = _kek(shared, ephemeral_public, auditor_public)
        data_key = AESGCM(kek).decrypt(wrap_nonce, wrapped, aad)
        plaintext = AESGCM(data_key).decrypt(body_nonce, ciphertext, aad)
    except (InvalidTag, ValueError) as exc:
        raise BodiesError(
            "sealed bodies do not decrypt with this auditor key (another key, another "
            "record, or altered)"
        ) from exc
    return Bodies.from_bytes(plaintext)


def open_for(record: AuditRecord, sealed: bytes, auditor_key: X25519PrivateKey) -> Bodies:
    """Decrypt the sealed bodies stored with `record`."""
    aad = associated_data(record.origin, record.side.value, record.exchange_id)
    return open_sealed(sealed, auditor_key, aad)


def check_bodies(record: AuditRecord, bodies: Bodies) -> str:
    """Why `bodies` are not the ones `record` digests, or "" when they are.

    An event's record (publish, delivery) digests the event as its request and
    has no responses: its sealed bodies are the event bytes alone."""
    if request_digest(bodies.request) != record.request_sha256:
        return "the decrypted request does not match the record's request digest"
    if len(bodies.request) != record.request_size:
        return "the decrypted request's size differs from the record"
    if record.kind is not Kind.EXCHANGE:
        return "an event's sealed bodies hold responses" if bodies.responses else ""
    digest = ResponseDigest()
    for message in bodies.responses:
        digest.update(message)
    if (digest.digest(), digest.count, digest.size) != (
        record.response_sha256,
        record.response_messages,
        record.response_size,
    ):
        return "the decrypted response does not match the record's digest, count or size"
    return ""


def auditor_key(auditor_public_key: bytes, version: int, keeper: str) -> bytes:
    """The key bodies are sealed to, from a global configuration (its key and version);
    without one, what `keeper` would keep is refused (fail closed)."""
    if not auditor_public_key:
        raise FailedPrecondition(
            f"{keeper} but global configuration version {version} has no auditor key; the"
            " federation authority must register one (spean authority set-auditor-key)"
        )
    return auditor_public_key


def fingerprint(public_key: bytes) -> str:
    """Short SHA-256 fingerprint of a raw auditor public key, for logs and reports."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def seal_exchange(
    request: bytes,
    responses: Sequence[bytes],
    auditor_public_key: bytes,
    *,
    origin: str,
    side: str,
    exchange_id: str,
) -> bytes:
    """Seal one exchange's bodies for the record (origin, side, exchange id)."""
    aad = associated_data(origin, side, exchange_id)
    return seal(Bodies(request, tuple(responses)), auditor_public_key, aad)


def seal_event(
    payload: bytes, auditor_public_key: bytes, *, origin: str, side: str, exchange_id: str
) -> bytes:
    """Seal one event's bytes for its publish or delivery record."""
    aad = associated_data(origin, side, exchange_id)
    return seal(Bodies(payload, ()), auditor_public_key, aad)


class RetainingDigest(ResponseDigest):
    """A response digest that also keeps the messages, for services whose bodies are sealed."""

    __slots__ = ("messages",)

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[bytes] = []

    def update(self, message: bytes) -> None:
        super().update(message)
        self.messages.append(message)
