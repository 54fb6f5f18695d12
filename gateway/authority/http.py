"""The authority's HTTP endpoint: GET /v1/globalconf serves the latest signed configuration.

GET /v1/anchor serves the configuration anchor (signing.crt, PEM), so that
`spean join` can fetch it; a new member must still compare its SHA-256 with
the authority out of band (by telephone) before trusting it, since anyone on
the path could answer with another certificate.

The server holds no state: it rereads globalconf.signed for every request, so
a publication is served at once, without a restart, and `serve` needs no key
or passphrase. Any other path is a 404 (a query string is ignored); nothing
published yet is a 404, an unreadable file a 503; answers carry
Cache-Control: no-store. Plain HTTP is enough: the signature, checked by
security servers against their anchor, protects the configuration, not the
transport (docs/protocol.md, 9.4).
"""

from __future__ import annotations

import http.server
import socket
import threading
from pathlib import Path
from typing import Any

import structlog

from spean.gateway.errors import FailedPrecondition

log = structlog.get_logger()

GLOBALCONF_PATH = "/v1/globalconf"
ANCHOR_PATH = "/v1/anchor"


class AuthorityHttpServer:
    """Serves the latest published configuration; rereads the file for every request."""

    def __init__(self, published: Path, host: str, port: int, anchor: Path | None = None) -> None:
        handler = _handler_for(published, anchor)
        server_class = _IPv6Server if ":" in host else _IPv4Server
        try:
            self._httpd = server_class((host, port), handler)
        except OSError as exc:
            raise FailedPrecondition(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},  # how quickly stop() is noticed
            name="spean-authority-http",
            daemon=True,
        )
        self._thread.start()
        log.info("authority.serving", host=host, port=self.port, path=GLOBALCONF_PATH)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{GLOBALCONF_PATH}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> AuthorityHttpServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class _IPv4Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _IPv6Server(_IPv4Server):
    address_family = socket.AF_INET6


def _handler_for(published: Path, anchor: Path | None) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "spean-authority"
        sys_version = ""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == ANCHOR_PATH and anchor is not None:
                self._send_file(anchor, "application/x-pem-file", "no configuration anchor")
                return
            if path != GLOBALCONF_PATH:
                self._send(404, b"not found; the global configuration is at /v1/globalconf\n")
                return
            try:
                data = published.read_bytes()
            except FileNotFoundError:
                self._send(404, b"no global configuration has been published yet\n")
                return
            except OSError as exc:
                log.error("authority.read_failed", path=str(published), error=exc.strerror)
                self._send(503, b"the published configuration cannot be read\n")
                return
            self._send(200, data, "application/octet-stream")

        def _send_file(self, source: Path, content_type: str, missing: str) -> None:
            try:
                data = source.read_bytes()
            except FileNotFoundError:
                self._send(404, f"{missing}\n".encode())
                return
            except OSError as exc:
                log.error("authority.read_failed", path=str(source), error=exc.strerror)
                self._send(503, b"the file cannot be read\n")
                return
            self._send(200, data, content_type)

        def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("authority.http", client=self.client_address[0], request=format % args)

    return Handler
