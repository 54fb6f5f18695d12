"""`spean audit ...`: export, verify, reconcile, show and replay logs; archive old records.

Exit codes (docs/auditor.md, "Exit codes"): 0 when everything holds, 1 for an
error (unreadable input, or nothing found), 2 when a check found a problem,
141 when stdout was closed early, 130 on Ctrl-C. `--json` prints one JSON
document on stdout; otherwise a human summary. Commands that can take long
(export, verify, replay, archive) draw a transient progress bar when a
person watches (stdout a terminal, no `--json`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from spean.gateway import pki
from spean.gateway.errors import ConfigError, InvalidArgument
from spean.gateway.files import keyfiles

if TYPE_CHECKING:
    from spean.gateway.audit.resend import Exchange
    from spean.gateway.audit.store import AuditStore, StoredRecord

EXIT_PROBLEMS = 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit", help="export, verify, reconcile, replay and archive audit logs"
    )
    commands = parser.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)

    export = commands.add_parser("export", help="export a writer's log as a bundle")
    export.add_argument("--config", type=Path, help="the security server's YAML file")
    export.add_argument("--store", help="audit store path or URL (instead of --config)")
    export.add_argument("--globalconf", type=Path, help="signed global configuration file")
    export.add_argument("--anchor", type=Path, help="configuration-signing certificate (PEM)")
    export.add_argument("--origin", help="the log to export (default: SERVER#w0)")
    export.add_argument("--since", help="first receive time, ISO 8601 (default: the beginning)")
    export.add_argument("--until", help="receive time to stop before, ISO 8601 (default: now)")
    export.add_argument("--out", type=Path, required=True, help="bundle file to write")
    export.set_defaults(func=cmd_export)

    verify = commands.add_parser(
        "verify",
        help="verify a bundle completely; several: archive segments then a live export, "
        "which must chain into one log",
    )
    verify.add_argument("bundles", type=Path, nargs="+", metavar="BUNDLE")
    verify.add_argument("--anchor", type=Path, help="trusted configuration-signing certificate")
    verify.add_argument("--no-tokens", action="store_true", help="skip token signatures")
    verify.add_argument("--json", action="store_true", help="print a JSON report")
    verify.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="processes verifying token signatures (1: no workers; default: one per core, "
        "for bundles of 5,000 records or more)",
    )
    verify.add_argument(
        "--auditor-key",
        type=Path,
        help="the auditors' X25519 private key (PEM): decrypt sealed bodies, check their digests",
    )
    verify.set_defaults(func=cmd_verify)

    reconcile = commands.add_parser(
        "reconcile",
        help="match a consumer's log with a provider's (bundles in either order; exit 0 "
        "agree, 2 differences found, 1 unusable input)",
    )
    reconcile.add_argument(
        "first", type=Path, metavar="BUNDLE", help="one side's bundle (consumer or provider)"
    )
    reconcile.add_argument(
        "second",
        type=Path,
        metavar="BUNDLE",
        help="the other side's bundle; roles are read "
        "from the bundles, the order only decides when both members called each other",
    )
    reconcile.add_argument("--json", action="store_true", help="print a JSON report")
    reconcile.set_defaults(func=cmd_reconcile)

    show = commands.add_parser(
        "show",
        help="print one exchange from every bundle given, each record checked: its inclusion "
        "under a signed checkpoint and its tokens",
    )
    show.add_argument("exchange_id")
    show.add_argument("bundles", type=Path, nargs="+", metavar="BUNDLE")
    show.add_argument("--anchor", type=Path, help="trusted configuration-signing certificate")
    show.add_argument("--json", action="store_true", help="print JSON (times in Unix ns too)")
    show.set_defaults(func=cmd_show)

    replay = commands.add_parser(
        "replay",
        help="decrypt a bundle's bodies, show the timeline, and re-send the requests to a test "
        "instance",
    )
    replay.add_argument("bundle", type=Path)
    replay.add_argument(
        "--auditor-key", type=Path, required=True, help="the auditors' X25519 private key (PEM)"
    )
    replay.add_argument("--anchor", type=Path, help="trusted configuration-signing certificate")
    replay.add_argument(
        "--against",
        metavar="ADDRESS",
        help="host:port of a test instance's consumer endpoint: re-send every request there",
    )
    replay.add_argument(
        "--as-client",
        metavar="SUBSYSTEM",
        help="with --against: call as this subsystem instead of the recorded client",
    )
    replay.add_argument("--client", help="only exchanges of this calling subsystem")
    replay.add_argument("--service", help="only exchanges with this provider subsystem")
    replay.add_argument("--user", help="only exchanges made for this end user")
    replay.add_argument("--since", help="only exchanges received at or after, ISO 8601")
    replay.add_argument("--until", help="only exchanges received before, ISO 8601")
    replay.add_argument("--timeout", type=float, default=30.0, help="seconds per re-sent call")
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(func=cmd_replay)

    archive = commands.add_parser(
        "archive",
        help="move records older than the retention age to archive segments",
    )
    archive.add_argument("--config", type=Path, required=True, help="the server's YAML file")
    archive.add_argument(
        "--older-than",
        type=int,
        metavar="DAYS",
        help="archive records received more than DAYS ago (default: audit.retention.max_age_days)",
    )
    archive.add_argument(
        "--archive-dir", type=Path, help="segment folder (default: audit.retention.archive_dir)"
    )
    archive.add_argument("--json", action="store_true")
    archive.set_defaults(func=cmd_archive)
    _register_subject(commands)


def _time(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidArgument(f"{what} {text!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1_000_000_000)


Advance = Callable[[int], None]


def _shows_progress(args: argparse.Namespace) -> bool:
    """Progress bars only for a person watching: stdout a terminal, and no --json."""
    return not getattr(args, "json", False) and sys.stdout.isatty()


@contextmanager
def _progress(shown: bool, description: str, total: int | None = None) -> Iterator[Advance]:
    """A transient rich progress bar on the terminal (stdout) when `shown`; else a no-op.

    Yields `advance(n)`. Without a `total` the bar pulses and counts.
    """
    if not shown:
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


class _CountedStore:
    """An audit store whose record reads advance a progress bar (`progress.counted`:
    in steps of 1,000, so that a million records cost a thousand redraws)."""

    def __init__(self, store: AuditStore, advance: Advance) -> None:
        self._store = store
        self._advance = advance

    def read(
        self, start: int = 0, stop: int | None = None, *, origin: str | None = None
    ) -> Iterator[StoredRecord]:
        from spean.gateway.audit.progress import counted

        return counted(self._store.read(start, stop, origin=origin), self._advance)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _counted(store: AuditStore, advance: Advance) -> AuditStore:
    return cast("AuditStore", _CountedStore(store, advance))


def cmd_export(args: argparse.Namespace) -> int:
    from spean.gateway.audit.backends import open_store
    from spean.gateway.audit.bundle import export_bundle, write_bundle

    store_url: str | None = args.store
    globalconf_path: Path | None = args.globalconf
    anchor_path: Path | None = args.anchor
    origin: str | None = args.origin
    if args.config is not None:
        from spean.gateway.files.config import load_config

        config = load_config(args.config)
        if store_url is None:
            store_url = config.audit.store
            if "://" not in store_url:
                store_url = str(config.resolve(Path(store_url)))
        gc = config.global_configuration
        globalconf_path = globalconf_path or config.resolve(gc.cache)
        anchor_path = anchor_path or config.resolve(gc.anchor)
        origin = origin or f"{config.server_id}#w0"
    if store_url is None or globalconf_path is None or anchor_path is None or origin is None:
        raise ConfigError(
            "audit export needs --config, or all of --store, --globalconf, --anchor and --origin"
        )
    try:
        globalconf = globalconf_path.read_bytes()
        anchor_pem = anchor_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    pki.parse_certificate_pem(anchor_pem, str(anchor_path))
    # The exporter reads under its own origin name so it never writes the log.
    with (
        open_store(store_url, f"{origin}.export") as store,
        _progress(_shows_progress(args), f"exporting {origin}") as advance,
    ):
        bundle = export_bundle(
            _counted(store, advance),
            globalconf=globalconf,
            anchor_pem=anchor_pem,
            origin=origin,
            since_ns=_time(args.since, "--since"),
            until_ns=_time(args.until, "--until"),
        )
    write_bundle(bundle, args.out)
    print(
        f"exported {len(bundle.records)} records [{bundle.start}, {bundle.stop}) and "
        f"{len(bundle.checkpoints)} checkpoints of {bundle.origin} to {args.out}"
    )
    return 0


TEXT_PROBLEMS = 20
"""Problems `verify` prints after the first one; it then says how many more there are."""


def cmd_verify(args: argparse.Namespace) -> int:
    from spean.gateway.audit.bundle import open_bundle
    from spean.gateway.audit.verify_parallel import verify_bundle

    anchor = keyfiles.load_certificate(args.anchor) if args.anchor is not None else None
    auditor_key = None
    if args.auditor_key is not None:
        from spean.gateway.files.keyfiles import load_auditor_key

        auditor_key = load_auditor_key(args.auditor_key)
    if args.jobs is not None and args.jobs < 1:
        raise InvalidArgument(f"--jobs must be 1 or more, got {args.jobs}")
    if len(args.bundles) > 1:
        return _verify_sequence(args, anchor, auditor_key)
    # One streaming pass over the file: memory does not grow with the log.
    bundle = open_bundle(args.bundles[0])
    total = 2 * (bundle.frame.declared_records or 0) or None
    with _progress(_shows_progress(args), "verifying", total) as advance:
        report = verify_bundle(
            bundle,
            anchor=anchor,
            check_tokens=not args.no_tokens,
            progress=advance,
            auditor_key=auditor_key,
            jobs=args.jobs,
        )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(
            f"{report.origin}: {report.records} records from index {report.start}, "
            f"{report.checkpoints} checkpoints verified, {report.tokens_verified} tokens "
            f"verified, {report.bodies_verified} of {report.bodies} sealed bodies checked, "
            f"anchor {report.anchor}"
        )
        first = report.first
        if first is None:
            print("OK: every check holds")
        else:
            where = "" if first.index is None else f" at record {first.index}"
            print(f"FAILED{where} ({first.check.value}): {first.reason}")
            others = [p for p in report.problems if p is not first]
            for problem in others[:TEXT_PROBLEMS]:
                where = "" if problem.index is None else f"record {problem.index}: "
                print(f"  also: {where}{problem.check.value}: {problem.reason}")
            if len(others) > TEXT_PROBLEMS:
                print(
                    f"  ... and {len(others) - TEXT_PROBLEMS} more problems "
                    f"({len(report.problems)} in all; --json lists every one)"
                )
    return 0 if report.ok else EXIT_PROBLEMS


def _verify_sequence(args: argparse.Namespace, anchor: Any, auditor_key: Any) -> int:
    from spean.gateway.audit.archive import verify_sequence
    from spean.gateway.audit.bundle import open_bundle

    bundles = [open_bundle(path) for path in args.bundles]
    result = verify_sequence(
        bundles,
        anchor=anchor,
        check_tokens=not args.no_tokens,
        auditor_key=auditor_key,
        jobs=args.jobs,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0 if result.ok else EXIT_PROBLEMS
    for path, report in zip(args.bundles, result.reports, strict=True):
        summary = (
            f"{path}: {report.origin} records [{report.start}, {report.start + report.records}), "
            f"{report.checkpoints} checkpoints, {report.tokens_verified} tokens"
        )
        first = report.first
        if first is None:
            print(f"{summary}: OK")
        else:
            where = "" if first.index is None else f" at record {first.index}"
            print(f"{summary}: FAILED{where} ({first.check.value}): {first.reason}")
            if len(report.problems) > 1:
                print(
                    f"  ... and {len(report.problems) - 1} more problems in {path} "
                    "(verify it alone, or --json, to list every one)"
                )
    for problem in result.links:
        where = "" if problem.index is None else f" at record {problem.index}"
        print(f"FAILED{where} (sequence): {problem.reason}")
    if result.ok:
        total = sum(r.records for r in result.reports)
        print(f"OK: {len(bundles)} bundles chain into one log of {total} records")
    return 0 if result.ok else EXIT_PROBLEMS


RECONCILE_DIFFERENCES = 2
RECONCILE_UNUSABLE = 1


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Exit codes, as every audit command: 0 both logs agree, 2 differences (or a
    bundle that does not verify) found, 1 unusable input (unreadable file,
    unmatchable pair)."""
    from spean.gateway.audit.reconcile import reconcile_files, records_to_read
    from spean.gateway.errors import SpeanError

    try:
        if not args.json and sys.stdout.isatty():
            from rich.progress import Progress

            total = records_to_read(args.first, args.second)
            with Progress(transient=True) as bar:
                task = bar.add_task("reconciling", total=total)
                result = reconcile_files(
                    args.first, args.second, progress=lambda n: bar.advance(task, n)
                )
        else:
            result = reconcile_files(args.first, args.second)
    except SpeanError as exc:
        print(f"spean audit reconcile: {exc.message}", file=sys.stderr)
        return RECONCILE_UNUSABLE
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0 if result.ok else RECONCILE_DIFFERENCES
    consumer, provider = result.consumer, result.provider
    print(
        f"consumer: {consumer.bundle} ({consumer.origin}, {consumer.records} records); "
        f"provider: {provider.bundle} ({provider.origin}, {provider.records} records)"
        + (" [given provider first]" if result.swapped else "")
    )
    if result.both_directions:
        print(
            f"note: {provider.member} also called {consumer.member}; swap the bundles to "
            "reconcile those calls"
        )
    print(
        f"{result.matched} exchanges found on both sides, {result.witnessed} records "
        f"witnessing {result.witnessed_checkpoints} checkpoints of the provider's log "
        "checked against it"
    )
    for finding in result.findings:
        where = f" ({finding.bundle} record {finding.index})" if finding.index is not None else ""
        print(f"  {finding.kind.value}: {finding.exchange_id or '-'}{where}: {finding.detail}")
    if result.ok:
        print("OK: both logs agree")
        return 0
    print(f"DIFFERENT: {len(result.findings)} findings")
    return RECONCILE_DIFFERENCES


def cmd_show(args: argparse.Namespace) -> int:
    from spean.gateway.audit.bundle import read_bundle
    from spean.gateway.audit.record import iso_ns
    from spean.gateway.audit.show import show_exchange

    anchor = keyfiles.load_certificate(args.anchor) if args.anchor is not None else None
    found = [
        (path, shown)
        for path in args.bundles
        for shown in show_exchange(read_bundle(path), args.exchange_id, anchor)
    ]
    if not found:
        print(f"exchange {args.exchange_id} is in none of the bundles", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([{"bundle": str(path), **s.to_dict()} for path, s in found], indent=2))
    else:
        for path, shown in found:
            record = shown.record
            print(f"{record.side.value.lower()} record {shown.index} in {path}:")
            for key, value in shown.to_dict().items():
                if key in ("index", "side", "verified") or value in ("", 0, None):
                    continue
                if key.endswith("_at_ns") and isinstance(value, int):
                    print(f"  {key.removesuffix('_ns')}: {iso_ns(value)}")
                elif not key.endswith("_at"):  # the ISO copies of the times, printed above
                    print(f"  {key}: {value}")
            print(f"  inclusion: {shown.inclusion.detail}")
            print(f"  tokens: {shown.tokens.detail}")
    return 0 if all(shown.ok for _, shown in found) else EXIT_PROBLEMS


def cmd_replay(args: argparse.Namespace) -> int:
    import grpc

    from spean.gateway.audit.bundle import read_bundle
    from spean.gateway.audit.record import iso_ns
    from spean.gateway.audit.resend import TimelineFilter, build_timeline, replay
    from spean.gateway.audit.verify import load_configuration
    from spean.gateway.errors import SpeanError
    from spean.gateway.files.keyfiles import load_auditor_key

    bundle = read_bundle(args.bundle)
    key = load_auditor_key(args.auditor_key)
    where = TimelineFilter(
        client=args.client,
        service=args.service,
        user=args.user,
        since_ns=_time(args.since, "--since"),
        until_ns=_time(args.until, "--until"),
    )
    shown = _shows_progress(args)
    with _progress(shown, "decrypting bodies", len(bundle.records)) as advance:
        timeline = build_timeline(bundle, key, where, progress=advance)
    if args.against is None:
        if args.json:
            print(json.dumps([e.to_dict() for e in timeline], indent=2))
        else:
            _print_timeline(timeline)
        return 0
    anchor = keyfiles.load_certificate(args.anchor) if args.anchor is not None else None
    try:
        conf, _ = load_configuration(bundle, anchor)
    except SpeanError as exc:
        # Only used to tell streaming methods apart; the recorded answers then decide.
        print(f"warning: bundled configuration not used: {exc.message}", file=sys.stderr)
        conf = None
    with (
        grpc.insecure_channel(args.against) as channel,
        _progress(shown, f"replaying against {args.against}", len(timeline)) as advance,
    ):
        results = replay(
            channel,
            timeline,
            conf,
            client=args.as_client,
            timeout_s=args.timeout,
            progress=advance,
        )
    differing = [r for r in results if r.outcome.value == "different"]
    if args.json:
        document = {
            "ok": not differing,
            "replayed": sum(1 for r in results if r.answer is not None),
            "different": len(differing),
            "exchanges": [r.to_dict() for r in results],
        }
        print(json.dumps(document, indent=2))
    else:
        for result in results:
            record = result.exchange.record
            line = (
                f"{iso_ns(record.received_at_ns)}  #{result.exchange.index:<6} "
                f"{record.exchange_id}  {result.outcome.value.upper():<9}"
            )
            print(f"{line} {result.detail}".rstrip())
        replayed = sum(1 for r in results if r.answer is not None)
        print(
            f"{replayed} exchanges replayed against {args.against}: "
            f"{replayed - len(differing)} same, {len(differing)} different, "
            f"{len(results) - replayed} skipped"
        )
    return EXIT_PROBLEMS if differing else 0


def _print_timeline(timeline: list[Exchange]) -> None:
    from rich.console import Console
    from rich.table import Table

    from spean.gateway.audit.record import iso_ns

    table = Table(title=f"{len(timeline)} exchanges", show_lines=False)
    for column in (
        "received",
        "#",
        "exchange",
        "client",
        "service / method",
        "user",
        "status",
        "bodies",
    ):
        table.add_column(column, overflow="fold")
    for exchange in timeline:
        record = exchange.record
        table.add_row(
            iso_ns(record.received_at_ns),
            str(exchange.index),
            record.exchange_id,
            record.client,
            f"{record.service}:{record.method}",
            record.user,
            record.status,
            "decrypted" if exchange.bodies is not None else exchange.bodies_problem,
        )
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


def cmd_archive(args: argparse.Namespace) -> int:
    import time

    from spean.gateway.audit.archive import NS_PER_DAY, archive_log, member_certificates
    from spean.gateway.audit.backends import open_store
    from spean.gateway.files.config import load_config

    config = load_config(args.config)
    retention = config.audit.retention
    days = (
        args.older_than
        if args.older_than is not None
        else (retention.max_age_days if retention is not None else None)
    )
    folder = (
        args.archive_dir
        if args.archive_dir is not None
        else (config.resolve(retention.archive_dir) if retention is not None else None)
    )
    if days is None or folder is None:
        raise ConfigError(
            f"{args.config}: audit.retention is not configured; set audit.retention.max_age_days "
            "and archive_dir, or give --older-than and --archive-dir"
        )
    if days < 0:
        raise InvalidArgument(f"--older-than must be 0 or more days, got {days}")
    store_url = config.audit.store
    if "://" not in store_url:
        store_url = str(config.resolve(Path(store_url)))
    gc = config.global_configuration
    try:
        globalconf = config.resolve(gc.cache).read_bytes()
        anchor_pem = config.resolve(gc.anchor).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    before_ns = time.time_ns() - days * NS_PER_DAY
    prefix = f"{config.server_id}#"
    done = []
    with (
        open_store(store_url, f"{config.server_id}#archiver") as store,
        _progress(_shows_progress(args), f"archiving {config.server_id}") as advance,
    ):
        for origin in store.origins():
            if not origin.startswith(prefix):
                continue  # another server's log in a shared store: its own archiver's job
            segment = archive_log(
                _counted(store, advance),
                origin,
                before_ns=before_ns,
                archive_dir=folder,
                globalconf=globalconf,
                anchor_pem=anchor_pem,
                certificates=member_certificates(globalconf, anchor_pem, origin),
            )
            if segment is not None:
                done.append(segment)
    if args.json:
        print(json.dumps({"segments": [s.to_dict() for s in done]}, indent=2))
    else:
        for segment in done:
            print(
                f"archived {segment.origin} records [{segment.start}, {segment.stop}) to "
                f"{segment.path} ({segment.deleted} deleted from the store)"
            )
        if not done:
            print(f"nothing to archive: no checkpointed records older than {days} days")
    return 0


# -- access transparency: a data subject's view and its proof (docs/transparency.md) ------


def _register_subject(commands: Any) -> None:
    subject = commands.add_parser(
        "subject",
        help="provider side: write the proof of every exchange of a data subject in a bundle "
        "of this server's log; the look-up is recorded in the server's audit store",
    )
    subject.add_argument("bundle", type=Path, metavar="BUNDLE", help="the whole exported log")
    subject.add_argument(
        "--config", type=Path, required=True, help="the provider's YAML file (key, store)"
    )
    subject.add_argument("--subject", required=True, help="the person's id (spean-subject)")
    subject.add_argument("--requested-by", required=True, help="who asks: officer, ombudsman")
    subject.add_argument("--purpose", required=True, help="why: the request's case or basis")
    subject.add_argument("--out", type=Path, required=True, help="proof file to write (JSON)")
    subject.set_defaults(func=cmd_subject)

    proof = commands.add_parser(
        "verify-proof", help="verify a data subject's proof file offline (exit 0 holds, 2 not)"
    )
    proof.add_argument("proof", type=Path, metavar="PROOF")
    proof.add_argument("--anchor", type=Path, help="trusted configuration-signing certificate")
    proof.add_argument("--json", action="store_true", help="print a JSON report")
    proof.set_defaults(func=cmd_verify_proof)


def cmd_subject(args: argparse.Namespace) -> int:
    from spean.gateway.audit.bundle import read_bundle
    from spean.gateway.audit.subject import TRANSPARENCY, subject_view
    from spean.gateway.files.config import load_config, subject_key_for
    from spean.gateway.management.transparency import record_lookup
    from spean.gateway.subjects import is_subject

    if not is_subject(args.subject):
        raise InvalidArgument("--subject must be an id as spean-subject takes it (protocol.md 4.4)")
    config = load_config(args.config)
    key = subject_key_for(config)
    if key is None:
        raise ConfigError(f"{config.path}: provider.pseudonymisation_key is not set")
    view = subject_view(read_bundle(args.bundle), key, args.subject)
    text = view.to_json().encode("utf-8")
    # Recorded before the proof is written: no record, no answer (fail closed).
    record = record_lookup(config, view, text, args.requested_by, args.purpose)
    try:
        args.out.write_bytes(text)
    except OSError as exc:
        raise ConfigError(f"cannot write {args.out}: {exc.strerror}") from exc
    print(
        f"{len(view.entries)} exchanges of the subject proven in {view.origin}"
        f" ({view.pending} after the latest checkpoint, not yet provable); look-up recorded"
        f" as exchange {record.exchange_id} in {config.server_id}#{TRANSPARENCY};"
        f" proof written to {args.out}"
    )
    return 0


def cmd_verify_proof(args: argparse.Namespace) -> int:
    from spean.gateway.audit.subject import parse_proof, verify_subject_proof

    anchor = keyfiles.load_certificate(args.anchor) if args.anchor is not None else None
    try:
        text = args.proof.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise InvalidArgument(f"cannot read {args.proof}: {exc}") from exc
    report = verify_subject_proof(parse_proof(text), anchor)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(
            f"{report.origin}: {len(report.exchanges)} exchanges under the checkpoint at size"
            f" {report.checkpoint_size}, {report.pending} not yet provable, anchor {report.anchor}"
        )
        for exchange in report.exchanges:
            print(
                f"  {exchange['received_at']}  {exchange['client']}  user {exchange['user']!r}"
                f"  purpose {exchange['purpose']!r}  {exchange['method']}  {exchange['status']}"
            )
        print("OK: every exchange is proven" if report.ok else "FAILED:")
        for problem in report.problems:
            print(f"  {problem}")
    return 0 if report.ok else EXIT_PROBLEMS
