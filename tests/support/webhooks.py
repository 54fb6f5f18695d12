"""Webhooks on both edges of publish/subscribe, as a ministry's IT team sets them up.

`enable_webhooks` edits a built event federation (tests/support/events.py):

- MoI: its consumer endpoint on TLS with the population register's client
  certificate registered (`consumer.clients[].certificate`), and the webhook
  listener (``pubsub.webhook``) on HTTPS, asking for client certificates of
  the ministry's CA, with API keys of the key store mapped to subsystems;
- MoH: the hospital application's subscription POSTed as JSON to an internal
  HTTPS receiver; MPWT: the vehicle registry's POSTed as protobuf to an
  internal plain-HTTP receiver on loopback.

`Receiver` is that internal system: a real HTTP(S) server on a loopback
port that refuses the first attempts of each event with 503, checks the
signature, and keeps the events it accepted once by event id.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from spean.gateway import pki
from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import MOH, MOI, MPWT, NHIS, POPULATION, VEHICLES
from spean.gateway.files import keyfiles
from spean.gateway.web.api_keys import ApiKeyStore
from spean.gateway.web.roles import Role
from tests.support.events import TOPIC
from tests.support.management import _certificate, _write_pair

SECRET = b"moh-internal-webhook-secret-0123456789"


@dataclass
class Accepted:
    """One POST the receiver answered 2xx to."""

    event_id: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An internal system's HTTP endpoint (see the module docstring)."""

    failures_per_event: int
    secret: bytes
    attempts: dict[str, int] = field(default_factory=dict)
    accepted: list[Accepted] = field(default_factory=list)
    repeats: int = 0
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    # Called with each newly accepted event id and how many were accepted, before the answer.
    on_accept: Callable[[str, int], None] | None = None

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        event_id = headers.get("spean-event-id", "")
        expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        with self.lock:
            if not hmac.compare_digest(expected, headers.get("spean-signature", "")):
                self.bad_signatures += 1
                return 401
            self.attempts[event_id] = self.attempts.get(event_id, 0) + 1
            if self.attempts[event_id] <= self.failures_per_event:
                return 503
            if any(a.event_id == event_id for a in self.accepted):
                self.repeats += 1  # processed already: answered 2xx, not acted on twice
                return 200
            self.accepted.append(Accepted(event_id, headers, body))
            count = len(self.accepted)
        if self.on_accept is not None:
            self.on_accept(event_id, count)
        return 204

    def ids(self) -> list[str]:
        with self.lock:
            return [a.event_id for a in self.accepted]

    def start(self, tls: tuple[Path, Path] | None = None) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status = receiver.handle({k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            server.socket = context.wrap_socket(server.socket, server_side=True)
            scheme = "https"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.server = server
        return f"{scheme}://127.0.0.1:{server.server_address[1]}/events"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class Webhooks:
    """What the tests hold: the CA, the certificates, the keys and the receivers."""

    ca: Path
    population_cert: tuple[Path, Path]
    stranger_cert: tuple[Path, Path]
    keys: dict[str, str]
    revoked_key: str
    health: Receiver
    vehicles: Receiver
    port: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/api/v1"

    def client(self, key: str | None = None, cert: tuple[Path, Path] | None = None) -> httpx.Client:
        """A real HTTPS client of MoI's webhook listener; an API key or a certificate."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        context = ssl.create_default_context(cafile=str(self.ca))
        if cert is not None:
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        return httpx.Client(base_url=self.url, verify=context, headers=headers, timeout=30.0)


def _edit(config: Path, change: dict[str, object], pubsub: dict[str, object]) -> None:
    document = yaml.safe_load(config.read_text())
    for key, value in change.items():
        document.setdefault("consumer", {})[key] = value
    document["pubsub"].update(pubsub)
    config.write_text(yaml.safe_dump(document, sort_keys=False))


def enable_webhooks(federation: Federation, failures_per_event: int = 2) -> Webhooks:
    """Set up both edges (see the module docstring) before the federation starts."""
    folder = federation.root / "ministry-ca"
    folder.mkdir()
    ca_key = pki.generate_key()
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = _certificate("MoI applications CA", ca_key, None, ca_key, ca=True)
    keyfiles.write_certificate(folder / "ca.crt", ca)

    def issued(cn: str, server: bool = False) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        return _write_pair(folder, cn, key, _certificate(cn, key, ca, ca_key, server=server))

    listener = issued("listener", server=True)
    population = issued("population")
    # Issued by the same CA, but not the certificate registered for the population register.
    stranger = issued("stranger")
    moi = federation.configs[MOI]
    store = ApiKeyStore(moi.parent / "state" / "webhook-keys.json")
    keys: dict[str, str] = {}
    entries = []
    for client in (POPULATION, "KH/GOV/MOI/idreg"):
        keys[client], entry = store.create(f"publisher {client}", Role.SERVICE_ADMINISTRATOR)
        entries.append({"id": entry.id, "client": client})
    unmapped, _ = store.create("not listed", Role.SERVICE_ADMINISTRATOR)
    keys["unmapped"] = unmapped
    revoked, entry = store.create("retired", Role.SERVICE_ADMINISTRATOR)
    entries.append({"id": entry.id, "client": POPULATION})
    store.revoke(entry.id)
    _edit(
        moi,
        {
            "tls": {"certificate": str(listener[0]), "key": str(listener[1])},
            "clients": [{"subsystem": POPULATION, "certificate": str(population[0])}],
        },
        {
            "webhook": {
                "listen": "127.0.0.1:0",
                "tls": {
                    "certificate": str(listener[0]),
                    "key": str(listener[1]),
                    "client_ca": str(folder / "ca.crt"),
                },
                "keys": entries,
            }
        },
    )
    health = Receiver(failures_per_event, SECRET)
    health_url = health.start(tls=issued("hospital-internal", server=True))
    vehicles = Receiver(failures_per_event, SECRET)
    vehicles_url = vehicles.start()
    fast = {"initial_backoff_ms": 50, "max_backoff_ms": 200}
    for member, client, url, form, extra in (
        (MOH, NHIS, health_url, "json", {"ca": str(folder / "ca.crt")}),
        (MPWT, VEHICLES, vehicles_url, "protobuf", {}),
    ):
        secret = federation.configs[member].parent / "keys" / "push.secret"
        secret.write_bytes(SECRET + b"\n")
        push = {"client": client, "topic": TOPIC, "url": url, "secret_file": str(secret)}
        _edit(federation.configs[member], {}, {"push": [{**push, "format": form, **fast, **extra}]})
    return Webhooks(
        ca=folder / "ca.crt",
        population_cert=population,
        stranger_cert=stranger,
        keys=keys,
        revoked_key=revoked,
        health=health,
        vehicles=vehicles,
    )


def add_push(
    federation: Federation, member: str, client: str, url: str, form: str = "protobuf"
) -> None:
    """List `client`'s subscription of `member` under pubsub.push, POSTed to `url`."""
    secret = federation.configs[member].parent / "keys" / "push.secret"
    secret.write_bytes(SECRET + b"\n")
    entry = {"client": client, "topic": TOPIC, "url": url, "secret_file": str(secret)}
    fast = {"initial_backoff_ms": 50, "max_backoff_ms": 200}
    _edit(federation.configs[member], {}, {"push": [{**entry, "format": form, **fast}]})
