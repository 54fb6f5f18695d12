"""The data subject of an exchange and its pseudonym (pure; docs/protocol.md section 4.4).

An exchange may name the person whose records it touches (`spean-subject`).
The subject is never recorded in clear: the provider records, and signs into
its response token, a keyed pseudonym that only the holder of its
``pseudonymisation_key`` can compute from the id.

Guarantees:

- `subject_pseudonym` is deterministic: one key and one subject always give
  the same 32 bytes, so the provider's log can be searched by subject;
- without the key nobody can compute or invert a pseudonym (HMAC-SHA256);
- the key is derived under its own context string, distinct from the one of
  masked fields (`spean.gateway.masking`), so a subject's pseudonym never
  equals a masked field's token made with the same secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final

from spean.gateway.errors import ConfigError

PSEUDONYM_SIZE: Final = 32
MAX_SUBJECT_CHARS: Final = 64
MIN_KEY_BYTES: Final = 32
SUBJECT_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+-]{0,63}\Z")
"""A subject: 1 to 64 characters of letters, digits and ``. _ : / + -``, starting
with a letter or digit (an id number, possibly with its scheme, e.g. ``KH-NID:0102``)."""

_CONTEXT: Final = b"spean-subject-v1\x00"


def is_subject(text: str) -> bool:
    """Whether `text` is a well-formed data subject."""
    return SUBJECT_PATTERN.match(text) is not None


def subject_key(secret: bytes) -> bytes:
    """The key every subject pseudonym of this provider is computed with.

    `secret` is the provider's pseudonymisation key; a short one is a
    configuration mistake (`ConfigError`).
    """
    if len(secret) < MIN_KEY_BYTES:
        raise ConfigError(
            f"provider.pseudonymisation_key must hold at least {MIN_KEY_BYTES} secret bytes"
            " (e.g. 'openssl rand -hex 32')"
        )
    return hmac.new(secret, _CONTEXT, hashlib.sha256).digest()


def subject_pseudonym(key: bytes, subject: str) -> bytes:
    """The 32-byte pseudonym of `subject` under a `subject_key`."""
    return hmac.new(key, subject.encode("utf-8"), hashlib.sha256).digest()
