"""The `spean` command line.

Each area registers its own subcommands from its own module, so the CLI grows
without one file holding every command. A command returns an exit code; a
`SpeanError` is printed as one line (never a stack trace) and exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from spean.gateway.errors import SpeanError

# Modules that define `register(subparsers)`; each adds its own commands.
_COMMAND_MODULES = (
    "spean.gateway.cli.authority",
    "spean.gateway.cli.member",
    "spean.gateway.cli.server",
    "spean.gateway.cli.demo",
    "spean.gateway.cli.audit",
    "spean.gateway.cli.doctor",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spean",
        description="Spean: a federated data-exchange gateway between ministries.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except SpeanError as exc:
        print(f"spean: error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
