"""`spean authority api-key ...`: the keys of the authority's management API.

The authority's management settings file (`--management FILE`, a YAML file
with one ``management`` section, read by `spean authority serve
--management FILE`) names the key store. Keys are created, listed and
revoked here, on the authority's machine, by whoever may read its
settings: the API never issues keys, so a stolen key cannot mint more. A
new key is printed once; the store keeps only its SHA-256.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from spean.gateway.authority.listener import load_settings
from spean.gateway.cli.management import create_key, list_keys, revoke_key
from spean.gateway.web.api_keys import ApiKeyStore
from spean.gateway.web.roles import Role

__all__ = ["add_management_argument", "register_api_keys"]


def add_management_argument(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "--management",
        type=Path,
        required=required,
        metavar="FILE",
        help="the management API's settings (YAML with a 'management' section; docs/operator.md)",
    )


def register_api_keys(commands: Any) -> None:
    keys = commands.add_parser("api-key", help="create, list and revoke management API keys")
    key_commands = keys.add_subparsers(
        dest="authority_api_key_command", metavar="COMMAND", required=True
    )
    create = key_commands.add_parser("create", help="issue a key (printed once)")
    add_management_argument(create, required=True)
    create.add_argument(
        "--role", required=True, choices=[role.value for role in Role], help="the key's role"
    )
    create.add_argument("--name", required=True, help="what the key is for, e.g. 'officer-sok'")
    create.set_defaults(func=cmd_create)

    listing = key_commands.add_parser("list", help="the keys, without their secrets")
    add_management_argument(listing, required=True)
    listing.set_defaults(func=cmd_list)

    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    add_management_argument(revoke, required=True)
    revoke.add_argument("key_id", help="the key's id (the 12 hex digits after spk_)")
    revoke.set_defaults(func=cmd_revoke)


def _store(path: Path) -> ApiKeyStore:
    return ApiKeyStore(load_settings(path).api_keys)


def cmd_create(args: argparse.Namespace) -> int:
    return create_key(_store(args.management), args.name, args.role)


def cmd_list(args: argparse.Namespace) -> int:
    return list_keys(_store(args.management))


def cmd_revoke(args: argparse.Namespace) -> int:
    return revoke_key(_store(args.management), args.key_id)
