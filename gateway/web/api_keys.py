"""API keys for automation: issued once, kept only as hashes, revocable.

A key reads ``spk_<id>_<secret>``: `id` (12 hex digits) names the key in
logs, the admin log and `spean management api-key list`; `secret` is 32
random bytes (256 bits, URL-safe base64). Because the secret is random and
that long, a single SHA-256 is as strong at rest as a slow KDF would be (a
KDF protects low-entropy passwords, which these are not) and keeps each
request's check to microseconds. The key store file holds, per key, its id,
a name, its role, the SHA-256 of the whole key, and when it was created and
revoked; never the key itself, which is shown once, at creation.

Guarantees: a revoked or unknown key never authenticates; comparison is in
constant time; the store file is replaced atomically (mode 0600), so a
concurrent reader sees the old list or the new one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from spean.gateway.errors import ConfigError, InvalidArgument, NotFound, Unauthenticated
from spean.gateway.files.keyfiles import write_file_atomically
from spean.gateway.web.roles import Principal, Role, parse_role

PREFIX = "spk_"
_KEY = re.compile(r"spk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})\Z")


@dataclass(frozen=True, slots=True)
class ApiKeyEntry:
    """One key as the store keeps it (no secret)."""

    id: str
    name: str
    role: Role
    sha256: str
    created_at: str
    revoked_at: str | None = None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its id."""
    key_id = secrets.token_hex(6)
    return f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}", key_id


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class ApiKeyStore:
    """The key store file: create, list, revoke, and the check a request makes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def entries(self) -> list[ApiKeyEntry]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ConfigError(
                f"{self.path}: cannot read the API key store: {exc.strerror}"
            ) from None
        try:
            rows = json.loads(text)["keys"]
            return [ApiKeyEntry(**{**row, "role": parse_role(row["role"])}) for row in rows]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.path}: the API key store is damaged ({exc})") from None

    def _write(self, entries: list[ApiKeyEntry]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows = [asdict(entry) for entry in entries]
        data = json.dumps({"keys": rows}, indent=2, sort_keys=True).encode() + b"\n"
        write_file_atomically(self.path, data, mode=0o600)

    def create(self, name: str, role: Role) -> tuple[str, ApiKeyEntry]:
        """Issue a key; returns it (shown once) and its entry."""
        if role is Role.DATA_SUBJECT:
            raise InvalidArgument(
                "an API key cannot have the data-subject role: a data subject logs in through"
                " the identity provider, whose token carries the person's id"
            )
        key, key_id = new_key()
        entry = ApiKeyEntry(id=key_id, name=name, role=role, sha256=digest(key), created_at=_now())
        with self._lock:
            self._write([*self.entries(), entry])
        return key, entry

    def revoke(self, key_id: str) -> ApiKeyEntry:
        with self._lock:
            entries = self.entries()
            for index, entry in enumerate(entries):
                if entry.id == key_id:
                    if entry.revoked_at is None:
                        entries[index] = entry = replace(entry, revoked_at=_now())
                        self._write(entries)
                    return entry
        raise NotFound(f"no API key with id {key_id} in {self.path}")

    def authenticate(self, key: str) -> Principal:
        """The principal of a presented key; `Unauthenticated` saying why otherwise."""
        match = _KEY.match(key)
        if match is None:
            raise Unauthenticated("the API key is malformed (expected spk_<id>_<secret>)")
        key_id, presented = match.group(1), digest(key)
        # The file is re-read on each check so that a revocation by the CLI takes
        # effect at once, in every process, without a restart.
        for entry in self.entries():
            if entry.id == key_id and hmac.compare_digest(entry.sha256, presented):
                if entry.revoked_at is not None:
                    raise Unauthenticated(f"API key {key_id} was revoked at {entry.revoked_at}")
                return Principal(
                    name=f"api-key:{key_id}:{entry.name}", role=entry.role, method="api-key"
                )
        raise Unauthenticated(f"API key {key_id} is not known to this server")
