"""Message digests bound into Spean's request and response tokens.

Part of the wire contract (DESIGN.md "Tokens"):

- The request digest is ``SHA-256(request)`` over the bytes of the single
  request message (unary and server-streaming methods take one message).
- The response digest is SHA-256 over every response message, each preceded
  by its length as 4 bytes big-endian::

      SHA-256( len(m1) || m1 || len(m2) || m2 || ... )

  The length prefix binds message boundaries: two messages ``b"ab", b"c"``
  and ``b"a", b"bc"`` have different digests. A unary response is the
  one-message case of the same rule; a response with no messages (an error
  before the first message) has digest ``SHA-256(b"")``.
- Digests travel as base64url without padding (RFC 4648 section 5). Decoding
  is strict and canonical: padding, characters outside the alphabet, an
  impossible length and non-zero trailing bits are all refused, so every byte
  string has exactly one accepted text form.

Pure functions and one small accumulator; no I/O.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Iterable

from spean.gateway.errors import InvalidArgument, ResourceExhausted

DIGEST_SIZE = 32
"""Size in bytes of every Spean digest (SHA-256)."""

MAX_MESSAGE_SIZE = 0xFFFF_FFFF
"""Largest message the 4-byte length prefix can describe (gRPC's own limit is lower)."""

_B64URL = re.compile(r"[A-Za-z0-9_-]*\Z")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_TO_URL = bytes.maketrans(b"+/", b"-_")
# The last character of a text of length 4n+2 (4n+3) carries 4 (2) bits that
# encode nothing; the canonical spelling has them zero.
_TRAILING_BITS = {2: 0b1111, 3: 0b11}
_PADDING = ("", "===", "==", "=")  # indexed by len(text) % 4


def request_digest(body: bytes) -> bytes:
    """SHA-256 of the serialized request message, exactly as received."""
    return hashlib.sha256(body).digest()


class ResponseDigest:
    """Incremental digest of a response stream (see the module docstring).

    Feed every message in order with `update`; `digest` may be read at any
    point (it does not finalize) and `count` / `size` give the number of
    messages and their total size in bytes, both recorded in the audit log.
    """

    __slots__ = ("_hash", "count", "size")

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.count = 0
        self.size = 0

    def update(self, message: bytes) -> None:
        length = len(message)
        if length > MAX_MESSAGE_SIZE:
            raise ResourceExhausted(
                f"response message of {length} bytes exceeds the {MAX_MESSAGE_SIZE} byte limit"
            )
        self._hash.update(length.to_bytes(4, "big"))
        self._hash.update(message)
        self.count += 1
        self.size += length

    def digest(self) -> bytes:
        return self._hash.digest()

    def __repr__(self) -> str:
        return f"ResponseDigest(count={self.count}, size={self.size})"


def response_digest(messages: Iterable[bytes]) -> bytes:
    """Digest of a complete response (convenience for tests and offline audit)."""
    accumulator = ResponseDigest()
    for message in messages:
        accumulator.update(message)
    return accumulator.digest()


def b64url(data: bytes) -> str:
    """Base64url without padding, as used in JWS and in Spean's digest claims."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URL).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, *, size: int | None = None) -> bytes:
    """Strictly decode unpadded base64url; with `size`, require that many bytes.

    Raises `InvalidArgument` naming the defect. Only the canonical encoding
    of a byte string is accepted: a lenient decoder ignores the unused low
    bits of the last character, so up to 16 different texts would decode to
    the same bytes, and signed data must have one spelling only.
    """
    if not isinstance(text, str) or not _B64URL.match(text):
        raise InvalidArgument(_defect(text))
    remainder = len(text) % 4
    if remainder == 1:
        raise InvalidArgument(f"base64url value has an impossible length of {len(text)}")
    if size is not None and len(text) != (size * 4 + 2) // 3:
        raise InvalidArgument(
            f"base64url value has {len(text)} characters; {size} bytes take {(size * 4 + 2) // 3}"
        )
    if remainder and _ALPHABET.index(text[-1]) & _TRAILING_BITS[remainder]:
        raise InvalidArgument("base64url value is not canonical (non-zero trailing bits)")
    padded = (text + _PADDING[remainder]).encode("ascii").translate(_TO_STANDARD)
    try:
        return binascii.a2b_base64(padded, strict_mode=True)
    except binascii.Error as error:  # unreachable after the checks above; kept as a guard
        raise InvalidArgument("base64url value does not decode") from error


def _defect(text: object) -> str:
    if not isinstance(text, str):
        return f"base64url value must be a string, got {type(text).__name__}"
    if "=" in text:
        return "base64url value must not carry '=' padding"
    return "base64url value has characters outside A-Z a-z 0-9 '-' '_'"


def decode_digest(text: str) -> bytes:
    """Decode a base64url SHA-256 digest (43 characters, 32 bytes)."""
    return b64url_decode(text, size=DIGEST_SIZE)
