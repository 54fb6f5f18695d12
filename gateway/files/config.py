"""Reading a security server's configuration file and the secrets it names.

`load_config` reads and validates the YAML file (`spean.gateway.config` holds
the pure validation); the readers below take a validated configuration and
read the secrets it points at, raising `ConfigError` naming the file and the
field when they cannot. Secrets never live in the configuration file.

`edit_config` is how the management API writes a change back: under an
exclusive lock on the file (so two editors, in one process or several, take
turns), it re-reads the file, lets the caller check its precondition and edit
the document, validates the result completely and replaces the file
atomically. Comments, key order and every other setting are kept (ruamel.yaml
round trip); an edit that would not validate leaves the file untouched.
`edit_document` is the same lock, round trip and atomic replacement without
the validation, for an editor of one part of a file that may not be complete
yet (`spean publish-table --config`); both keep the file's mode, and neither
rewrites a file the edit left as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError as RoundTripError

from spean.gateway.config import PASSPHRASE_ENV, ServerConfig, parse_config
from spean.gateway.errors import ConfigError, SpeanError
from spean.gateway.files.keyfiles import write_file_atomically
from spean.gateway.subjects import subject_key

Edit = Callable[[Any, ServerConfig], None]
After = Callable[[ServerConfig], None]


def load_config(path: Path) -> ServerConfig:
    """Read and validate a security server configuration file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    return parse_config(data, path.resolve())


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        handle = lock_path.open("a")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot lock the configuration: {exc.strerror}") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def edit_config(path: Path, edit: Edit, after: After | None = None) -> ServerConfig:
    """Apply `edit(document, current)` to the file and write it back; return the new config.

    `document` is the file's round-trip YAML mapping, which `edit` changes in
    place; `current` is the file's validated configuration as it is now, for
    the caller's precondition (an ETag), which `edit` may refuse by raising a
    `SpeanError`: then nothing is written. `after(updated)` runs once the
    file is written, still under the lock (the server's reload); if it
    raises a `SpeanError` the previous file is put back, so file and server
    stay equal.
    """
    with _locked(path):
        original = path.read_bytes()
        current = load_config(path)
        rt, document = _round_trip(path)
        edit(document, current)
        text = _dump(rt, document)
        updated = parse_config(yaml.safe_load(text), path.resolve())
        _replace(path, text, original)
        if after is not None:
            try:
                after(updated)
            except SpeanError:
                write_file_atomically(path, original, mode=_mode(path))
                raise
    return updated


def edit_document(path: Path, edit: Callable[[Any], None]) -> bool:
    """Apply `edit(document)` to the file's round-trip YAML under `edit_config`'s
    lock and replace the file atomically; True when the text changed (else the
    file is not rewritten). Nothing is validated: the caller checks what it edits."""
    with _locked(path):
        try:
            original = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from None
        rt, document = _round_trip(path)
        edit(document)
        return _replace(path, _dump(rt, document), original)


def _round_trip(path: Path) -> tuple[YAML, Any]:
    rt = YAML()
    rt.preserve_quotes = True
    try:
        return rt, rt.load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot re-read the configuration: {exc}") from None
    except RoundTripError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None


def _dump(rt: YAML, document: Any) -> str:
    out = io.StringIO()
    rt.dump(document, out)
    return out.getvalue()


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _replace(path: Path, text: str, original: bytes) -> bool:
    data = text.encode("utf-8")
    if data == original:
        return False
    write_file_atomically(path, data, mode=_mode(path))
    return True


def read_pseudonymisation_key(config: ServerConfig) -> bytes | None:
    """The provider's pseudonym secret, read from its file; None when not configured."""
    if config.provider is None or config.provider.pseudonymisation_key is None:
        return None
    path = config.resolve(config.provider.pseudonymisation_key)
    try:
        return path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(
            f"{config.path}: provider.pseudonymisation_key: cannot read {path}: {exc.strerror}"
        ) from None


def subject_key_for(config: ServerConfig) -> bytes | None:
    """The provider's key for data subjects' pseudonyms (docs/protocol.md 4.4), or None.

    None when no pseudonymisation key is configured: the provider then refuses
    calls that name a data subject. A key file too short is a `ConfigError`.
    """
    secret = read_pseudonymisation_key(config)
    if secret is None:
        return None
    try:
        return subject_key(secret)
    except ConfigError as exc:
        raise ConfigError(f"{config.path}: {exc.message}") from None


def read_passphrase(config: ServerConfig) -> bytes | None:
    """The passphrase of the server's private keys: its file, else $SPEAN_KEY_PASSPHRASE."""
    if config.keys.passphrase_file is not None:
        path = config.resolve(config.keys.passphrase_file)
        try:
            return path.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(
                f"{config.path}: keys.passphrase_file: cannot read {path}: {exc.strerror}"
            ) from None
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None
