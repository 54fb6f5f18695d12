"""Webhook publishing: a provider system that cannot speak gRPC publishes by HTTP POST.

An optional HTTPS listener of the provider's own security server
(``pubsub.webhook``, docs/pubsub.md "Webhook publishing"), built on the web
foundation (`web.app.create_app`, `web.serve.WebListener`): one route,
``POST /api/v1/events``, whose OpenAPI document is at
``/api/v1/openapi.json``.

- **Who**: the ``Spean-Client`` header names the publishing subsystem, which
  must be one of this server's ``consumer.clients``. It is proven by an API
  key of the webhook's key store (``Authorization: Bearer spk_...``) listed
  for that subsystem under ``pubsub.webhook.keys``, or by the TLS client
  certificate registered for it (``consumer.clients[].certificate``). A
  subsystem without a registered certificate publishes with a key only.
- **What**: ``Spean-Topic`` (the topic NAME, owned by the client),
  ``Spean-Event-Id`` (optional; the idempotency key), and the body: the
  event as ``application/x-protobuf`` (its bytes) or ``application/json``
  (protobuf's JSON mapping of the topic's event type, stored in binary).
- **When answered**: through `PubSubApps.publish_event`, the path of gRPC
  `Publish`: only once the event and its ``EVENT_PUBLISH`` audit record are
  durable (201, or 200 for a repeated event id with the same event); every
  refusal, credentials included, is audited and answered as an RFC 9457
  problem with the HTTP status of its gRPC code. Every answer carries
  ``Spean-Exchange-Id``, the audit record's exchange id.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from spean.gateway.admission import ConsumerRules, check_client
from spean.gateway.config import ServerConfig, WebhookConfig
from spean.gateway.errors import (
    ConfigError,
    InvalidArgument,
    PermissionDenied,
    SpeanError,
    Unauthenticated,
)
from spean.gateway.files.config import edit_document, load_config
from spean.gateway.identifiers import SubsystemId
from spean.gateway.metadata import EXCHANGE_ID
from spean.gateway.server.pubsub_apps import PubSubApps
from spean.gateway.tokens import new_exchange_id
from spean.gateway.web import problems
from spean.gateway.web.api_keys import PREFIX, ApiKeyStore
from spean.gateway.web.app import create_app
from spean.gateway.web.auth import Authenticator
from spean.gateway.web.roles import Role
from spean.gateway.web.serve import ListenerTls, WebListener

_KEY_ID = re.compile(r"spk_([0-9a-f]{12})_")
_PROTOBUF = ("application/x-protobuf", "application/protobuf", "application/octet-stream")
_JSON = "application/json"
# A JSON body may be several times the size of the event's binary form (field names,
# base64 of bytes fields): the body limit is this many times limits.max_message_bytes,
# and the event itself is checked against that limit once mapped.
_JSON_OVERHEAD = 4


class UnsupportedMediaType(InvalidArgument):
    """A body that is neither protobuf nor JSON (HTTP 415)."""

    http_status = 415


class Published(BaseModel):
    """The event is durable: its id, its sequence number in the topic, whether it was there."""

    event_id: str
    sequence: int
    duplicate: bool
    exchange_id: str


_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="an API key (spk_...) listed for the publishing subsystem in pubsub.webhook.keys",
)

Identify = Callable[[], tuple[SubsystemId, str]]


class WebhookCredentials:
    """Who posted: an API key mapped to a subsystem, or the client's registered certificate."""

    def __init__(
        self, section: WebhookConfig, store: ApiKeyStore, rules: Callable[[], ConsumerRules]
    ) -> None:
        self._keys = {k.id: SubsystemId.parse(k.client) for k in section.keys}
        self.store = store
        self._current_rules = rules  # the consumer endpoint's, so SIGHUP reaches them

    @property
    def _rules(self) -> ConsumerRules:
        return self._current_rules()

    @property
    def _keyed_rules(self) -> ConsumerRules:
        # With a key, the key is the credential: no client certificate is required.
        rules = self._rules
        return replace(rules, clients=dict.fromkeys(rules.clients))

    def identify(self, request: Request) -> tuple[SubsystemId, str]:
        named = request.headers.get("spean-client")
        if not named:
            raise InvalidArgument("the Spean-Client header must name the publishing subsystem")
        client = SubsystemId.parse(named)
        chain = request.scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
        pem = chain[0].encode() if chain else None
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, key = header.partition(" ")
            key = key.strip()
            if scheme.lower() != "bearer" or not key.startswith(PREFIX):
                raise Unauthenticated("the Authorization header must be 'Bearer spk_...'")
            self.store.authenticate(key)
            match = _KEY_ID.match(key)
            assert match is not None  # authenticate checked the form
            if self._keys.get(match.group(1)) != client:
                raise PermissionDenied(
                    f"API key {match.group(1)} does not publish as {client}"
                    " (pubsub.webhook.keys lists the subsystem of each key)"
                )
            thumbprint = check_client(self._keyed_rules, client, pem)
            return client, thumbprint
        if pem is None:
            raise Unauthenticated(
                "no credentials: present an API key (Authorization: Bearer spk_...) or the client"
                f" certificate registered for {client}"
            )
        if self._rules.clients.get(client) is None:
            check_client(self._rules, client, pem)  # an unregistered client is refused here
            raise Unauthenticated(
                f"{client} has no client certificate registered (consumer.clients[].certificate),"
                " so a certificate does not identify it; use an API key"
            )
        return client, check_client(self._rules, client, pem)


def webhook_app(apps: PubSubApps, credentials: WebhookCredentials, max_body_bytes: int) -> Any:
    router = APIRouter(tags=["events"])

    @router.post(
        "/events",
        status_code=201,
        response_model=Published,
        summary="Publish one event on a topic of the calling subsystem",
        responses={
            200: {"model": Published, "description": "the event id was already there"},
            **{
                status: {
                    "model": problems.Problem,
                    "content": {problems.MEDIA_TYPE: {}},
                    "description": description,
                }
                for status, description in (
                    (415, "the body is neither protobuf nor JSON"),
                    (429, "the event is larger than limits.max_message_bytes"),
                )
            },
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                    _JSON: {
                        "schema": {
                            "type": "object",
                            "description": "the event in protobuf's JSON mapping of the"
                            " topic's event type",
                        }
                    },
                },
            }
        },
    )
    async def publish(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
        spean_client: Annotated[
            str | None, Header(description="the publishing subsystem, e.g. KH/GOV/MOI/population")
        ] = None,
        spean_topic: Annotated[
            str | None, Header(description="the topic NAME, owned by the publishing subsystem")
        ] = None,
        spean_event_id: Annotated[
            str | None,
            Header(description="lower-case UUID4, the idempotency key; empty: one is made"),
        ] = None,
    ) -> Response:
        exchange_id = new_exchange_id()
        headers = {EXCHANGE_ID: exchange_id}
        body = await request.body()
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()

        def identify() -> tuple[SubsystemId, str]:
            # Inside the publish path, so that each of these refusals is audited too.
            found = credentials.identify(request)
            if not spean_topic:
                raise InvalidArgument("the Spean-Topic header must name the topic")
            if media != _JSON and media not in _PROTOBUF:
                raise UnsupportedMediaType(
                    "the body must be application/x-protobuf or application/json, not"
                    f" {media or 'untyped'}"
                )
            return found

        try:
            answer = await run_in_threadpool(
                apps.publish_event,
                exchange_id,
                identify,
                spean_topic or "",
                spean_event_id or "",
                body,
                body_is_json=media == _JSON,
            )
        except SpeanError as exc:
            response = problems.problem(
                request, problems.http_status(exc), exc.message, exc.code.name.lower()
            )
            response.headers.update(headers)
            return response
        published = Published(
            event_id=answer.event_id,
            sequence=answer.sequence,
            duplicate=answer.duplicate,
            exchange_id=exchange_id,
        )
        return JSONResponse(
            published.model_dump(), status_code=200 if answer.duplicate else 201, headers=headers
        )

    return create_app(
        "Spean webhook publishing",
        "1",
        [router],
        # The app factory's authenticator serves `requires`, which this API does not use:
        # each publish is identified (and audited) on the publish path itself.
        Authenticator(credentials.store),
        max_body_bytes,
    )


class WebhookPublishing:
    """The webhook listener of one security server: built bound, serving from `start`."""

    def __init__(
        self, config: ServerConfig, apps: PubSubApps, rules: Callable[[], ConsumerRules]
    ) -> None:
        assert config.pubsub is not None
        assert config.pubsub.webhook is not None
        section = config.pubsub.webhook
        tls = None
        if section.tls is not None:
            tls = ListenerTls(
                certificate=config.resolve(section.tls.certificate),
                key=config.resolve(section.tls.key),
                client_ca=config.resolve(section.tls.client_ca) if section.tls.client_ca else None,
            )
        credentials = WebhookCredentials(section, key_store(config), rules)
        # JSON of an event may be larger than its binary form: room for it.
        limit = config.limits.max_message_bytes * _JSON_OVERHEAD
        self._app = webhook_app(apps, credentials, limit)
        self._listener = WebListener(section.listen, tls, name="webhook")
        self.port = self._listener.port
        self.scheme = self._listener.scheme

    def start(self) -> None:
        self._listener.start(self._app)

    def stop(self) -> None:
        self._listener.stop()


def key_store(config: ServerConfig) -> ApiKeyStore:
    """The webhook's key store; never the management API's, whose keys carry roles there."""
    assert config.pubsub is not None
    assert config.pubsub.webhook is not None
    path = config.resolve(config.pubsub.webhook.api_keys)
    if config.management is not None and config.resolve(config.management.api_keys) == path:
        raise ConfigError(
            f"{config.path}: pubsub.webhook.api_keys is the management API's key store; give the"
            " webhook a store of its own (a publisher's key must not log into management)"
        )
    return ApiKeyStore(path)


# -- issuing keys: python -m spean.gateway.server.pubsub_webhook create-key|revoke-key --------


def issue_key(config_path: Path, client: str) -> tuple[str, str]:
    """A new API key for `client` in the webhook's store, listed under pubsub.webhook.keys
    of `config_path` (edited in place, comments kept); the key (shown once) and its id."""
    config = load_config(config_path)
    if config.pubsub is None or config.pubsub.webhook is None:
        raise ConfigError(f"{config_path}: there is no pubsub.webhook section; add one first")
    subsystem = SubsystemId.parse(client)
    registered = {c.subsystem for c in (config.consumer.clients if config.consumer else [])}
    if str(subsystem) not in registered:
        raise ConfigError(
            f"{config_path}: {subsystem} is not one of consumer.clients; a webhook publishes as a"
            " registered client"
        )
    # The role is not used by the webhook; the least privileged one, should it leak elsewhere.
    key, entry = key_store(config).create(f"webhook publisher {subsystem}", Role.AUDITOR)

    def add(document: Any) -> None:
        webhook = document["pubsub"]["webhook"]
        if webhook.get("keys") is None:
            webhook["keys"] = []
        webhook["keys"].append({"id": entry.id, "client": str(subsystem)})

    edit_document(config_path, add)
    return key, entry.id


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m spean.gateway.server.pubsub_webhook",
        description="API keys of the webhook publishing listener (docs/pubsub.md)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-key", help="issue a key for a client (printed once)")
    create.add_argument("--config", required=True, type=Path, help="the server's YAML file")
    create.add_argument("--client", required=True, help="the subsystem the key publishes as")
    revoke = commands.add_parser("revoke-key", help="revoke a key by its id")
    revoke.add_argument("--config", required=True, type=Path, help="the server's YAML file")
    revoke.add_argument("key_id", help="the key's id (the 12 hex digits after spk_)")
    args = parser.parse_args(argv)
    try:
        if args.command == "create-key":
            key, key_id = issue_key(args.config, args.client)
            print(key)
            print(
                f"created webhook key {key_id} for {args.client}, listed under"
                " pubsub.webhook.keys; it is shown only now: store it in your secret manager;"
                " restart the server to load the new entry"
            )
        else:
            config = load_config(args.config)
            if config.pubsub is None or config.pubsub.webhook is None:
                raise ConfigError(f"{args.config}: there is no pubsub.webhook section")
            entry = key_store(config).revoke(args.key_id)
            print(f"webhook key {entry.id} revoked at {entry.revoked_at}; it is refused at once")
    except SpeanError as exc:
        print(f"error: {exc.message}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
