"""The `spean` command line.

Each area registers its own subcommands from its own module, so the CLI grows
without one file holding every command. A command returns an exit code; a
`SpeanError` is printed as one line (never a stack trace) and exits 1.

Standard output carries a command's result and nothing else: logs go to
standard error (`log_to_stderr`, before any command runs). When the
reader of standard output goes away early (``spean audit verify | head``),
the command stops quietly with `EXIT_STDOUT_CLOSED`, as a program killed by
SIGPIPE would report itself to a shell; an interrupt (Ctrl-C) exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from spean.gateway.errors import SpeanError
from spean.gateway.server.logs import log_to_stderr

EXIT_STDOUT_CLOSED = 141
"""The exit code when standard output was closed before the command was done (128 + SIGPIPE)."""
EXIT_INTERRUPTED = 130

# Modules that define `register(subparsers)`; each adds its own commands.
_COMMAND_MODULES = (
    "spean.gateway.cli.authority",
    "spean.gateway.cli.member",
    "spean.gateway.cli.join",
    "spean.gateway.cli.call",
    "spean.gateway.cli.server",
    "spean.gateway.cli.demo",
    "spean.gateway.cli.audit",
    "spean.gateway.cli.pubsub",
    "spean.gateway.cli.doctor",
    "spean.gateway.cli.publish",
    "spean.gateway.cli.catalogue",
    "spean.gateway.cli.management",
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
    try:
        return _run(argv)
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_STDOUT_CLOSED


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Logs never mix with a command's output; a command may set its own format.
    log_to_stderr()
    try:
        code: int = args.func(args)
        # Flushed here, so a reader that went away is noticed here and not at exit.
        sys.stdout.flush()
    except SpeanError as exc:
        print(f"spean: error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code


def _discard_stdout() -> None:
    """Point standard output at the null device: what is still buffered for the
    reader that went away is dropped, and the flush at exit cannot fail again."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError):  # no file descriptor behind sys.stdout (a test's capture)
        pass


if __name__ == "__main__":
    sys.exit(main())
