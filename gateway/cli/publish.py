"""`spean publish-table`: publish a database table or view as a service, in one command.

    spean publish-table --database URL --table NAME --subsystem KH/GOV/MOH/patients
        [--schema NAME] [--key COLUMN ...] [--exclude COLUMN ...] [--package NAME] [--service NAME]
        [--out DIR] [--timezone ZONE] [--allow-breaking] [--client SUBSYSTEM ...]
        [--config server.yaml]

Writes the .proto, its descriptor set, the generated module, the SQL
adapter's mapping and the server.yaml entries into --out, prints what it
wrote, what changed since the previous run and the next command to run: for
a folder `spean join` prepared (a join request beside --config, not admitted
yet), the authority's `admit --request` with this subsystem and descriptor
set; otherwise its `add-subsystem`, or `update-subsystem` when a previous
contract was in --out (the subsystem is registered; its contract changed).
Exit 0 when published, 1 when refused (a breaking change, an unmappable
column, an unknown table: the message says what to do); nothing is written
on a refusal. The work is `spean.gateway.publish.io.publisher`.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

import yaml

from spean.gateway.cli.join import AUTHORITY_DIR, admission_command, shown
from spean.gateway.publish.contract import Options
from spean.gateway.publish.io.publisher import Outcome, Request, publish


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "publish-table",
        help="publish a database table or view as a service (.proto, mapping, server.yaml)",
        description=(
            "Introspect a table or view and write its service: Get by key, List with paging,"
            " Export as a stream. Rerun it after the table changes: field numbers stay stable"
            " and a change that would break callers is refused unless --allow-breaking."
        ),
    )
    parser.add_argument(
        "--database",
        required=True,
        metavar="URL",
        help="SQLAlchemy URL: sqlite:///file.db, postgresql://user@host/db, mysql://user@host/db",
    )
    parser.add_argument(
        "--table", required=True, metavar="NAME", help="the table or view to publish"
    )
    parser.add_argument(
        "--schema",
        metavar="NAME",
        help="its schema (PostgreSQL) or database (MySQL), if not the default",
    )
    parser.add_argument(
        "--subsystem",
        required=True,
        help="the subsystem that publishes it, e.g. KH/GOV/MOH/patients",
    )
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="COLUMN",
        help="the column identifying a row, when there is no primary key (a view); repeat",
    )
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="COLUMN", help="a column to leave out"
    )
    parser.add_argument("--package", metavar="NAME", help="protobuf package (default: <table>.v1)")
    parser.add_argument("--service", metavar="NAME", help="service name (default: <Table>Registry)")
    parser.add_argument(
        "--out", type=Path, default=Path("."), metavar="DIR", help="folder to write into (.)"
    )
    parser.add_argument(
        "--timezone",
        metavar="ZONE",
        help="zone of the date-times the database stores without one (default: as the"
        " previous run's mapping says, else UTC), e.g. Asia/Phnom_Penh",
    )
    parser.add_argument(
        "--allow-breaking",
        action="store_true",
        help="publish even when callers of the previous contract would break",
    )
    parser.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="SUBSYSTEM",
        help="a client subsystem that may call every method (an access entry); repeat",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a server.yaml to merge the services and access entries into (the rest is kept)",
    )
    parser.set_defaults(func=cmd_publish_table)


def cmd_publish_table(args: argparse.Namespace) -> int:
    options = Options(
        subsystem=args.subsystem,
        key=tuple(args.key),
        package=args.package,
        service=args.service,
        exclude=frozenset(args.exclude),
        clients=tuple(args.client),
    )
    outcome = publish(
        Request(
            database=args.database,
            table=args.table,
            options=options,
            out=args.out,
            allow_breaking=args.allow_breaking,
            config=args.config,
            schema=args.schema,
            timezone=args.timezone,
        )
    )
    _report(outcome, args.config)
    return 0


def _report(outcome: Outcome, config: Path | None) -> None:
    contract = outcome.contract
    print(f"published {contract.table.name} as {contract.subsystem}: {contract.full_service}")
    for method, streaming in contract.methods:
        print(f"  {'stream ' if streaming else 'unary  '} {method}")
    if contract.excluded:
        print(f"  left out: {', '.join(contract.excluded)}")
    print("wrote:")
    for path in outcome.written:
        print(f"  {shown(path)}")
    if outcome.previous:
        print("changes since the previous contract:")
        for change in outcome.changes or ():
            print(f"  {change}")
        if not outcome.changes:
            print("  none")
    if config is not None:
        print(f"{config}:")
        for note in outcome.config_notes or ("already up to date",):
            print(f"  {note}")
    else:
        print("server.yaml entries (merge them under provider:, or rerun with --config):")
        text = yaml.safe_dump({"provider": outcome.entries}, sort_keys=False, width=100)
        print("".join(f"  {line}\n" for line in text.splitlines()), end="")
    if not contract.clients:
        print("no --client given: no one may call it until an access entry names a client")
    admit = None
    if config is not None:
        admit = admission_command(config, str(contract.subsystem), outcome.descriptor_set)
    if admit is not None:
        print("next, at the federation authority (admits the join request with this service):")
        print(f"  {admit}")
        return
    print("next, at the federation authority (AUTHORITY_DIR: its folder; copy the .pb there):")
    print(f"  {_next_command(outcome)}")


def _next_command(outcome: Outcome) -> str:
    contract = outcome.contract
    # A rerun changes the contract of a subsystem the authority already knows.
    command = "update-subsystem" if outcome.previous else "add-subsystem"
    words = ["spean", "authority", command, "--dir", AUTHORITY_DIR]
    words += ["--id", str(contract.subsystem)]
    if outcome.server_id is not None and not outcome.previous:
        words += ["--server", outcome.server_id]
    words += ["--descriptor-set", shown(outcome.descriptor_set)]
    for method, streaming in contract.methods:
        words += ["--streaming-method" if streaming else "--method", method]
    return shlex.join(words)
