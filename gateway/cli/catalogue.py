"""`spean catalogue serve`: the federation's catalogue and its JSON API, beside the authority.

The catalogue reads the signed global configuration the way a security
server does: from the authority's folder (``--authority DIR`` takes
``DIR/globalconf.signed`` and the anchor ``DIR/signing.crt``) or from any
source and anchor (``--source PATH_OR_URL --anchor CERT``), verifies it,
caches it (``--cache``; with ``--authority``, in ``DIR/catalogue/``) and
refreshes it every ``--refresh-seconds``. Its search index is in memory by
default, rebuilt at start; ``--index`` puts it in an SQLite file or on
PostgreSQL (docs/catalogue.md).
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
    serve = commands.add_parser("serve", help="serve the catalogue's web pages, JSON API and DCAT-AP")
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
    serve.set_defaults(func=cmd_serve)


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
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    service.start()
    try:
        listener.start(create_app(service))
        print(f"serving {base_url}{PREFIX}", flush=True)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
        stopped.wait()
    finally:
        listener.stop()
        service.stop()
    return 0
