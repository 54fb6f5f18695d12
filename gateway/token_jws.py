"""Compact JWS as Spean's tokens use it: segments and signatures (RFC 7515, 7518; pure).

A token is ``BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(signature)``
with the header and payload compact JSON objects. Guarantees:

- `encode_segment` writes compact, pure-ASCII JSON (non-ASCII is escaped),
  so a token is ASCII text and its signing input is exactly its first two
  segments as sent.
- `decode_object` reads a segment strictly and fails closed: canonical
  base64url only (`digests.b64url_decode`), UTF-8 JSON, an object, no
  repeated names (their meaning is parser-dependent), no NaN or Infinity;
  every refusal is `Unauthenticated` naming the token and the segment.
- Signatures are made and checked with the key's one algorithm
  (`pki.sign`, `pki.signature_valid`), in the JWS form of RFC 7518: raw
  ``r || s`` (32 bytes each) for ES256 where `pki` speaks DER, the 64 raw
  bytes for EdDSA. Both are `SIGNATURE_SIZE` bytes, exactly as pyjwt makes
  them (the tests check every token against pyjwt both ways); using
  `cryptography` directly costs a few microseconds over the bare signature
  where pyjwt costs tens (``bench/tokens.py``).
- The segments of a token `is_compact` accepted are decoded without reading
  their alphabet again (`decode_compact_signature`, `decode_compact_object`):
  a segment that is canonical decodes to exactly the bytes `b64url_decode`
  gives, and any other takes `decode_segment`, so a refusal's message is the
  same whichever path met it.
"""

from __future__ import annotations

import binascii
import json
import re
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from spean.gateway import pki
from spean.gateway.digests import b64url, b64url_decode
from spean.gateway.errors import InvalidArgument, Unauthenticated
from spean.gateway.token_claims import ES256, quote

SIGNATURE_SIZE: Final = 64
"""Bytes of every token signature: ES256 (r || s, 32 bytes each) and Ed25519 alike."""
_ES256_HALF: Final = 32  # bytes of r and of s in a JWS ES256 signature (RFC 7518 3.4)

_SIGNATURE_CHARS: Final = 86  # unpadded base64url characters of SIGNATURE_SIZE bytes
# A base64url character's value is its index here; after 2 (3) leftover
# characters the last one's low 4 (2) bits are padding, zero when canonical.
_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_CANONICAL_LAST: Final = {
    0: frozenset(_ALPHABET),
    2: frozenset(_ALPHABET[::16]),
    3: frozenset(_ALPHABET[::4]),
}
_PADDING: Final = ("", "", "==", "=")  # indexed by length % 4 (1 is never canonical)
_TO_STANDARD: Final = bytes.maketrans(b"-_", b"+/")

_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\Z")
# Built once: json.dumps would build a new encoder on every call.
_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"))


def is_compact(token: str) -> bool:
    """Whether `token` is three non-empty base64url-alphabet segments joined by '.'."""
    return _COMPACT.match(token) is not None


def encode_segment(value: dict[str, object]) -> str:
    """A JSON object as a token segment: compact, ASCII-only JSON in base64url."""
    return b64url(_JSON_ENCODER.encode(value).encode("ascii"))


def sign_raw(algorithm: str, key: PrivateKeyTypes, data: bytes) -> bytes:
    """The JWS signature bytes over `data`, exactly as pyjwt makes them.

    `key` is a `TokenSigner`'s key, whose type `algorithm_for_key` checked to
    be the one `algorithm` names (EC P-256 for ES256).
    """
    if algorithm == ES256:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(pki.sign(key, data))
        return r.to_bytes(_ES256_HALF, "big") + s.to_bytes(_ES256_HALF, "big")
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return pki.sign(key, data)


def verify_raw(algorithm: str, key: PublicKeyTypes, data: bytes, signature: bytes) -> bool:
    """Whether `signature` over `data` verifies with `key` under `algorithm`.

    `key` is a `VerifyingKey`'s, whose construction checked that its type is
    the one `algorithm` names; `signature` is already `SIGNATURE_SIZE` bytes.
    """
    if algorithm == ES256:
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return False
        der = encode_dss_signature(
            int.from_bytes(signature[:_ES256_HALF], "big"),
            int.from_bytes(signature[_ES256_HALF:], "big"),
        )
        return pki.signature_valid(key, der, data)
    if not isinstance(key, ed25519.Ed25519PublicKey):
        return False
    return pki.signature_valid(key, signature, data)


def decode_segment(part: str, what: str, name: str) -> bytes:
    """The bytes of one segment; `Unauthenticated` unless it is canonical base64url."""
    try:
        return b64url_decode(part)
    except InvalidArgument as error:
        raise Unauthenticated(f"{what} {name}: {error.message}") from None


def _decode_compact(part: str) -> bytes | None:
    """The bytes of a segment of an `is_compact` token, or None unless canonical."""
    remainder = len(part) % 4
    allowed = _CANONICAL_LAST.get(remainder)
    if allowed is None or part[-1] not in allowed:
        return None
    return binascii.a2b_base64((part + _PADDING[remainder]).encode("ascii").translate(_TO_STANDARD))


def decode_compact_signature(part: str, what: str) -> bytes:
    """The signature segment of an `is_compact` token: as `decode_segment`, faster."""
    if len(part) == _SIGNATURE_CHARS:
        data = _decode_compact(part)
        if data is not None:
            return data
    return decode_segment(part, what, "signature")


def decode_compact_object(part: str, what: str, name: str) -> dict[str, Any]:
    """A JSON segment of an `is_compact` token: as `decode_object`, faster.

    The fast path takes only a canonical segment holding one object with no
    space around it (what every signer writes); anything else, including
    every error, goes through `decode_object` and its messages.
    """
    data = _decode_compact(part)
    if data is not None and data[:1] == b"{" and data[-1:] == b"}":
        try:
            text = data.decode("utf-8")
            value, end = _JSON.raw_decode(text)
        except (ValueError, RecursionError):  # _DuplicateKeyError included: said below
            pass
        else:
            if end == len(text) and isinstance(value, dict):
                return value
    return decode_object(part, what, name)


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate names are legal JSON with parser-dependent meaning; refuse them.
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _DuplicateKeyError(name)
            seen.add(name)
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(name)  # NaN, Infinity, -Infinity are not JSON


# Built once: json.loads with hooks would build a new decoder on every call.
_JSON = json.JSONDecoder(object_pairs_hook=_unique_object, parse_constant=_no_constant)


def decode_object(part: str, what: str, name: str) -> dict[str, Any]:
    """The JSON object one segment holds, read strictly (see the module docstring)."""
    data = decode_segment(part, what, name)
    try:
        value = _JSON.decode(data.decode("utf-8"))
    except _DuplicateKeyError as error:
        raise Unauthenticated(f"{what} {name} repeats the name {quote(error.key)}") from None
    except (ValueError, RecursionError):  # includes UnicodeDecodeError and JSONDecodeError
        raise Unauthenticated(f"{what} {name} is not valid UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise Unauthenticated(f"{what} {name} is not a JSON object")
    return value
