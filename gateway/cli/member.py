"""`spean member init` and `spean server init`: a member's keys and certificate requests.

Both commands generate a private key (mode 0600, optionally encrypted) and a
certificate signing request next to it; the CSR goes to the federation
authority, which returns a certificate (`spean authority admit ...`).

Passphrases come from a file (``--passphrase-file``) or the
``SPEAN_KEY_PASSPHRASE`` environment variable, never from the command line,
where process listings and shell history would show them.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import structlog

from spean.gateway.authority import init_member, init_server
from spean.gateway.errors import ConfigError, InvalidArgument
from spean.gateway.server.logs import configure_logging

PASSPHRASE_ENV = "SPEAN_KEY_PASSPHRASE"  # noqa: S105 - a variable name, not a secret


def ensure_logging() -> None:
    """Send log events to stderr, keeping stdout for the command's own output
    (a certificate may be written there). An existing configuration is kept."""
    if not structlog.is_configured():
        configure_logging()


def add_passphrase_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--passphrase-file",
        type=Path,
        metavar="FILE",
        help=f"file holding the key passphrase (default: ${PASSPHRASE_ENV}; unset: no encryption)",
    )


def read_passphrase(args: argparse.Namespace) -> bytes | None:
    """The passphrase from --passphrase-file, else $SPEAN_KEY_PASSPHRASE, else None."""
    path: Path | None = getattr(args, "passphrase_file", None)
    if path is not None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read passphrase file {path}: {exc.strerror}") from exc
        # Editors add a final newline; it is not part of the passphrase.
        passphrase = data.removesuffix(b"\n").removesuffix(b"\r")
        if not passphrase:
            raise InvalidArgument(f"passphrase file {path} is empty")
        return passphrase
    value = os.environ.get(PASSPHRASE_ENV)
    if value is None:
        return None
    if not value:
        raise InvalidArgument(f"${PASSPHRASE_ENV} is set but empty; unset it or give a passphrase")
    return value.encode()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("member", help="a member's signing key")
    commands = parser.add_subparsers(dest="member_command", metavar="COMMAND", required=True)
    init = commands.add_parser(
        "init", help="create the member's signing key and its certificate request"
    )
    init.add_argument("--dir", required=True, type=Path, help="folder for signing.key/.csr")
    init.add_argument("--id", required=True, help="member identifier, e.g. KH/GOV/MOH")
    init.add_argument(
        "--key-type",
        choices=("ec-p256", "ed25519"),
        default="ec-p256",
        help="signing key type (default ec-p256: tokens are ES256; ed25519: EdDSA)",
    )
    add_passphrase_argument(init)
    init.set_defaults(func=cmd_member_init)


def cmd_member_init(args: argparse.Namespace) -> int:
    ensure_logging()
    files = init_member(args.dir, args.id, key_kind=args.key_type, passphrase=read_passphrase(args))
    print(f"wrote {files.key} (private, mode 0600) and {files.csr}")
    print(
        f"next: send {files.csr} to the federation authority for"
        f" `spean authority admit member --id {args.id} --csr ...`"
    )
    return 0


def add_server_init_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `spean server init` (the command is wired in spean.gateway.cli.server)."""
    parser.add_argument("--dir", required=True, type=Path, help="folder for tls.key/.csr")
    parser.add_argument(
        "--id", required=True, help="security server identifier, e.g. KH/GOV/MOH/ss1"
    )
    parser.add_argument(
        "--address",
        required=True,
        help="host:port where other security servers will reach this one",
    )
    add_passphrase_argument(parser)


def cmd_server_init(args: argparse.Namespace) -> int:
    ensure_logging()
    files = init_server(args.dir, args.id, args.address, passphrase=read_passphrase(args))
    print(f"wrote {files.key} (private, mode 0600) and {files.csr}")
    print(
        f"next: send {files.csr} to the federation authority for"
        f" `spean authority admit server --id {args.id} --address {args.address} --csr ...`"
    )
    return 0
