"""`spean server ...`: prepare and run a security server."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from spean.gateway.files.config import load_config
from spean.gateway.server.logs import configure_logging


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("server", help="prepare and run a security server")
    commands = parser.add_subparsers(dest="server_command", metavar="COMMAND", required=True)

    from spean.gateway.cli.member import add_server_init_arguments, cmd_server_init

    init = commands.add_parser(
        "init", help="create this security server's TLS key and certificate request"
    )
    add_server_init_arguments(init)
    init.set_defaults(func=cmd_server_init)

    run = commands.add_parser("run", help="run a security server from its YAML configuration")
    run.add_argument("--config", required=True, type=Path, help="the server's YAML file")
    run.add_argument(
        "--grace",
        type=float,
        default=10.0,
        help="seconds to let calls in flight finish on SIGTERM (default 10)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes sharing the ports (SO_REUSEPORT), each with its own audit log"
        " origin SERVER#wN (default 1); SIGHUP reloads keys and access rules in all",
    )
    run.add_argument(
        "--instance",
        help="name of this replica when several share one server identity (e.g. the pod"
        " name): audit log origins become SERVER#INSTANCE-wN",
    )
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT (drain, then exit); SIGHUP reloads config and keys."""
    from spean.gateway.server.workers import Supervisor, check_ports_free, serve, worker_name

    config = load_config(args.config)
    configure_logging(config.log_format)
    check_ports_free(config)
    if args.workers == 1:
        return serve(config, worker=worker_name(0, args.instance), grace=args.grace)
    return Supervisor(config, args.workers, args.grace, args.instance).run()
