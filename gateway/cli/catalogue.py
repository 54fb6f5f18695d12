"""`spean catalogue serve`: the federation's catalogue and its JSON API, beside the authority.

The catalogue reads the signed global configuration the way a security
server does: from the authority's folder (``--authority DIR`` takes
``DIR/globalconf.signed`` and the anchor ``DIR/signing.crt``) or from any
source and anchor (``--source PATH_OR_URL --anchor CERT``), verifies it,
caches it (``--cache``; with ``--authority``, in ``DIR/catalogue/``) and
refreshes it every ``--refresh-seconds``. Its search index is in memory by
default, rebuilt at start; ``--index`` puts it in an SQLite file or on
PostgreSQL (docs/catalogue.md).

``spean catalogue publish-datasets`` generates the open datasets once (for
cron): the catalogue calls each dataset's method as its own subsystem
(``--client``) through its member's security server (``--consumer``, with
``--ca``/``--cert``/``--key`` for a TLS consumer endpoint) and writes a new
version of each into ``--datasets``. ``serve --datasets DIR`` serves them, and
with ``--client`` and ``--regenerate-seconds`` regenerates them on a schedule.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from spean.gateway.authority import GLOBALCONF, SIGNING_CERT
from spean.gateway.cli.member import ensure_logging
from spean.gateway.errors import ConfigError, InvalidArgument
from spean.gateway.files import keyfiles


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("catalogue", help="serve the federation's service catalogue")
    commands = parser.add_subparsers(dest="catalogue_command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve", help="serve the catalogue's web pages, JSON API and DCAT-AP"
    )
    source = serve.add_mutually_exclusive_group(required=True)
    source.add_argument("--authority", type=Path, help="the authority directory (same machine)")
    source.add_argument("--source", help="path or http(s) URL of the signed configuration")
    serve.add_argument("--anchor", type=Path, help="the configuration anchor (with --source)")
    serve.add_argument(
        "--cache",
        type=Path,
        help="where to keep the last verified configuration (default with --authority:"
        " DIR/catalogue/globalconf.signed)",
    )
    serve.add_argument("--index", default="sqlite://", help="search index URL (default: in memory)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (0: any)")
    serve.add_argument(
        "--endpoint",
        default="SECURITY_SERVER:PORT",
        help="the consumer endpoint the snippets call (host:port)",
    )
    serve.add_argument("--base-url", help="public base URL of the catalogue (DCAT IRIs)")
    serve.add_argument("--refresh-seconds", type=float, default=60.0)
    serve.add_argument("--datasets", type=Path, help="serve the open datasets kept in this folder")
    serve.add_argument(
        "--regenerate-seconds",
        type=float,
        default=0.0,
        help="with --datasets and --client: generate the datasets at start and then this often",
    )
    _generation_arguments(serve, required=False)
    serve.set_defaults(func=cmd_serve)

    publish = commands.add_parser(
        "publish-datasets",
        help="generate the open datasets once, through the catalogue's security server",
    )
    source = publish.add_mutually_exclusive_group(required=True)
    source.add_argument("--authority", type=Path, help="the authority directory (same machine)")
    source.add_argument("--source", help="path or http(s) URL of the signed configuration")
    publish.add_argument("--anchor", type=Path, help="the configuration anchor (with --source)")
    publish.add_argument("--cache", type=Path, help="where to keep the verified configuration")
    publish.add_argument(
        "--datasets", type=Path, required=True, help="the folder of the datasets' versions"
    )
    publish.add_argument(
        "--dataset", action="append", default=[], help="only this dataset (may be repeated)"
    )
    _generation_arguments(publish, required=True)
    publish.set_defaults(func=cmd_publish_datasets)


def _generation_arguments(parser: Any, *, required: bool) -> None:
    parser.add_argument(
        "--client", required=required, help="the catalogue's subsystem, e.g. KH/GOV/MOI/catalogue"
    )
    parser.add_argument(
        "--consumer", required=required, help="its security server's consumer endpoint, HOST:PORT"
    )
    parser.add_argument("--ca", type=Path, help="CA certificate of a TLS consumer endpoint")
    parser.add_argument("--cert", type=Path, help="client certificate (with --ca and --key)")
    parser.add_argument("--key", type=Path, help="client private key (with --ca and --cert)")
    parser.add_argument(
        "--keep", type=int, default=10, help="versions whose files are kept (default 10)"
    )
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="deadline of each call in seconds"
    )


def _generator(args: argparse.Namespace, store: Any) -> Any:
    from spean.gateway.config import split_address
    from spean.gateway.opendata.generate import ConsumerEndpoint, Generator

    try:
        split_address(args.consumer)
    except ValueError as exc:
        raise InvalidArgument(f"--consumer: {exc}") from None

    def read(path: Path | None) -> bytes | None:
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc

    endpoint = ConsumerEndpoint(
        args.consumer, args.client, read(args.ca), read(args.cert), read(args.key)
    )
    return Generator(store, endpoint, timeout=args.timeout)


def cmd_publish_datasets(args: argparse.Namespace) -> int:
    import sys

    from spean.gateway.opendata.store import DatasetStore
    from spean.gateway.server.globalconf_client import GlobalConfigurationClient

    ensure_logging()
    source, anchor_path = _source(args)
    try:
        anchor = keyfiles.load_certificate(anchor_path)
    except InvalidArgument as exc:
        raise ConfigError(exc.message) from exc
    cache = args.cache
    if cache is None:
        if args.authority is None:
            raise InvalidArgument("--source needs --cache (where to keep the verified copy)")
        cache = args.authority / "catalogue" / GLOBALCONF
    conf = GlobalConfigurationClient(source, anchor, cache, 60.0).load_initial()
    generator = _generator(args, DatasetStore(args.datasets, keep=args.keep))
    failed = 0
    for outcome in generator.generate(conf, args.dataset):
        if outcome.version is not None:
            v = outcome.version
            print(
                f"{outcome.dataset}: version {v.number}, {v.rows} rows,"
                f" exchanges {' '.join(v.exchange_ids)}",
                flush=True,
            )
        elif outcome.error is not None:
            failed += 1
            print(f"{outcome.dataset}: {outcome.error.code.name}: {outcome.error.message}",
                  file=sys.stderr, flush=True)  # fmt: skip
    return 1 if failed else 0


def _source(args: argparse.Namespace) -> tuple[str, Path]:
    if args.authority is not None:
        if args.anchor is not None:
            raise InvalidArgument("--anchor goes with --source; --authority has its own")
        return str(args.authority / GLOBALCONF), args.authority / SIGNING_CERT
    if args.anchor is None:
        raise InvalidArgument("--source needs --anchor (the authority's signing.crt)")
    return str(args.source), args.anchor


def cmd_serve(args: argparse.Namespace) -> int:

    from spean.gateway.catalogue.api import PREFIX, create_app
    from spean.gateway.catalogue.index import open_index
    from spean.gateway.catalogue.service import CatalogueService
    from spean.gateway.server.globalconf_client import GlobalConfigurationClient
    from spean.gateway.web.serve import WebListener

    ensure_logging()
    source, anchor_path = _source(args)
    try:
        anchor = keyfiles.load_certificate(anchor_path)
    except InvalidArgument as exc:
        raise ConfigError(exc.message) from exc
    cache = args.cache
    if cache is None:
        if args.authority is None:
            raise InvalidArgument("--source needs --cache (where to keep the verified copy)")
        cache = args.authority / "catalogue" / GLOBALCONF
    client = GlobalConfigurationClient(source, anchor, cache, args.refresh_seconds)
    host = f"[{args.host}]" if ":" in args.host else args.host
    listener = WebListener(f"{host}:{args.port}", None, name="catalogue")
    base_url = args.base_url or f"http://{host}:{listener.port}"
    service = CatalogueService(
        client, open_index(args.index), endpoint=args.endpoint, base_url=base_url
    )
    datasets, regenerator = _datasets(args, client)
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    service.start()
    try:
        listener.start(create_app(service, datasets))
        if regenerator is not None:
            regenerator.start()
        print(f"serving {base_url}{PREFIX}", flush=True)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
        stopped.wait()
    finally:
        if regenerator is not None:
            regenerator.stop()
        listener.stop()
        service.stop()
    return 0


def _datasets(args: argparse.Namespace, client: Any) -> tuple[Any, Any]:
    """The dataset store `serve` serves, and its regeneration schedule (or None)."""
    from spean.gateway.opendata.generate import Regenerator
    from spean.gateway.opendata.store import DatasetStore

    if args.datasets is None:
        if args.client or args.regenerate_seconds:
            raise InvalidArgument("--client and --regenerate-seconds need --datasets")
        return None, None
    store = DatasetStore(args.datasets, keep=args.keep)
    if not args.regenerate_seconds:
        return store, None
    if not (args.client and args.consumer):
        raise InvalidArgument("--regenerate-seconds needs --client and --consumer")
    return store, Regenerator(_generator(args, store), client.current, args.regenerate_seconds)
