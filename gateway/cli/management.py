"""`spean management ...`: API keys of the management API.

Keys are created, listed and revoked here, on the server's machine, by
whoever may edit its configuration: the API itself never issues keys, so a
stolen key cannot mint more. A new key is printed once; the store keeps
only its SHA-256 (gateway/web/api_keys.py). A revocation applies to the
next request, without a restart.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from spean.gateway.errors import ConfigError
from spean.gateway.files.config import load_config
from spean.gateway.web.api_keys import ApiKeyStore
from spean.gateway.web.roles import Role, parse_role


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("management", help="the management API's keys")
    commands = parser.add_subparsers(dest="management_command", metavar="COMMAND", required=True)
    keys = commands.add_parser("api-key", help="create, list and revoke API keys")
    key_commands = keys.add_subparsers(dest="api_key_command", metavar="COMMAND", required=True)

    create = key_commands.add_parser("create", help="issue a key (printed once)")
    create.add_argument("--config", required=True, type=Path, help="the server's YAML file")
    create.add_argument(
        "--role", required=True, choices=[role.value for role in Role], help="the key's role"
    )
    create.add_argument("--name", required=True, help="what the key is for, e.g. 'ci-deploy'")
    create.set_defaults(func=cmd_create)

    listing = key_commands.add_parser("list", help="the keys, without their secrets")
    listing.add_argument("--config", required=True, type=Path, help="the server's YAML file")
    listing.set_defaults(func=cmd_list)

    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("--config", required=True, type=Path, help="the server's YAML file")
    revoke.add_argument("key_id", help="the key's id (the 12 hex digits after spk_)")
    revoke.set_defaults(func=cmd_revoke)


def _store(config_path: Path) -> ApiKeyStore:
    config = load_config(config_path)
    if config.management is None:
        raise ConfigError(
            f"{config.path}: there is no management section; add one (docs/operator.md,"
            " 'The management API') before creating keys"
        )
    return ApiKeyStore(config.resolve(config.management.api_keys))


def cmd_create(args: argparse.Namespace) -> int:
    return create_key(_store(args.config), args.name, args.role)


def cmd_list(args: argparse.Namespace) -> int:
    return list_keys(_store(args.config))


def cmd_revoke(args: argparse.Namespace) -> int:
    return revoke_key(_store(args.config), args.key_id)


# -- shared with `spean authority api-key` (gateway/cli/authority_management.py) ---------


def create_key(store: ApiKeyStore, name: str, role: str) -> int:
    key, entry = store.create(name, parse_role(role))
    print(key)
    print(
        f"created API key {entry.id} ({entry.name}, role {entry.role.value}); it is shown"
        " only now: store it in your secret manager"
    )
    return 0


def list_keys(store: ApiKeyStore) -> int:
    for entry in store.entries():
        state = f"revoked {entry.revoked_at}" if entry.revoked_at else "active"
        print(f"{entry.id}  {entry.role.value:22}  {entry.created_at}  {state}  {entry.name}")
    return 0


def revoke_key(store: ApiKeyStore, key_id: str) -> int:
    entry = store.revoke(key_id)
    print(f"API key {entry.id} ({entry.name}) revoked at {entry.revoked_at}")
    return 0
