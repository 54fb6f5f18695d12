"""Serving an ASGI application from inside a security server process (uvicorn).

`WebListener` runs uvicorn on a thread of its own with its own event loop,
beside the gRPC servers: `start()` binds the socket first (so a port in use
fails at once with `ConfigError`, and port 0 gives a free port known before
the first request), then serves; `stop()` finishes requests in flight and
joins the thread.

TLS: TLS 1.2 or later. With a client CA, a client certificate is asked for
but optional (an API key or a bearer token may log in instead); one that is
presented must chain to that CA or the handshake fails. The verified
certificate reaches the application as the ASGI TLS extension
(``scope["extensions"]["tls"]["client_cert_chain"]``, PEM), which uvicorn's
own protocol does not fill in: `_TlsH11Protocol` adds it per connection.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from spean.gateway.config import split_address
from spean.gateway.errors import ConfigError

log = structlog.get_logger("spean.web")

Asgi = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class ListenerTls:
    certificate: Path
    key: Path
    client_ca: Path | None = None


class _TlsH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, adding the ASGI TLS extension to every scope."""

    def connection_made(self, transport: Any) -> None:  # uvicorn's own signature
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        der = ssl_object.getpeercert(binary_form=True)
        tls = {
            "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
            "tls_version": ssl_object.version(),
        }
        inner = self.app

        async def with_tls(scope: dict[str, Any], receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})["tls"] = tls
            await inner(scope, receive, send)

        self.app = with_tls


def _ssl_context(tls: ListenerTls) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(tls.certificate), str(tls.key))
        if tls.client_ca is not None:
            context.load_verify_locations(cafile=str(tls.client_ca))
            context.verify_mode = ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"management.tls: cannot load the TLS files: {exc}") from None
    return context


class WebListener:
    """One uvicorn server on its own thread: bound at construction, serving from `start`.

    The port is known before the application is given (port 0 picks a free one),
    so an application that names its own address (the catalogue's base URL) can
    be built with it."""

    def __init__(self, listen: str, tls: ListenerTls | None, name: str) -> None:
        self.name = name
        self._listen = listen
        self._tls = tls
        # TLS files first: a bad one then leaves no socket behind.
        self._context = _ssl_context(tls) if tls is not None else None
        self._socket = self._bind(listen)
        self.port: int = self._socket.getsockname()[1]
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.scheme = "https" if tls else "http"

    @staticmethod
    def _bind(listen: str) -> socket.socket:
        try:
            host, port = split_address(listen)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it (Linux): an answer's headers and body, two
        # writes, go at once. asyncio sets it only on sockets made with IPPROTO_TCP;
        # without it a keep-alive client waits ~40 ms for Nagle and its delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise ConfigError(f"cannot listen on {listen}: {exc.strerror}") from None
        sock.listen(128)
        return sock

    def start(self, app: Asgi) -> None:
        """Serve `app` on the bound socket, on a thread of its own."""
        tls, context = self._tls, self._context
        config = uvicorn.Config(
            app,
            http=_TlsH11Protocol,
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            ssl_certfile=str(tls.certificate) if tls else None,
            ssl_context_factory=(lambda _config, _default: context) if context else None,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"spean-{self.name}",
            daemon=True,
        )
        self._thread.start()
        log.info(f"{self.name}.listening", address=self._listen, port=self.port, scheme=self.scheme)

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._socket.close()
