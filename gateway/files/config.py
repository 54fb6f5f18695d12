"""Reading a security server's configuration file and the secrets it names.

`load_config` reads and validates the YAML file (`spean.gateway.config` holds
the pure validation); the readers below take a validated configuration and
read the secrets it points at, raising `ConfigError` naming the file and the
field when they cannot. Secrets never live in the configuration file.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from spean.gateway.config import PASSPHRASE_ENV, ServerConfig, parse_config
from spean.gateway.errors import ConfigError


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
