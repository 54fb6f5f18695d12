"""Publish/subscribe in one security server process: the parts and their lifetimes.

`PubSubNode` is built by `SecurityServer` when the configuration has a
``pubsub`` section (docs/pubsub.md). It opens the event store, and holds the
application services (`PubSubApps`, on the consumer endpoint), the receiver
of deliveries (`EventReceiver`, on the provider endpoint) and, in worker 0
only, the delivery loop (`DeliveryLoop`), so that one process pushes each
subscriber's events and their order holds. It is started after the gRPC
servers and stopped before the audit store closes, so an attempt in flight
still finds its log open.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from spean.gateway.access import AccessRule
from spean.gateway.admission import ConsumerRules
from spean.gateway.audit.store import AuditStore
from spean.gateway.config import PubSubConfig, ServerConfig
from spean.gateway.errors import ConfigError
from spean.gateway.event_admission import DeliveryRules
from spean.gateway.events import DeliveryPolicy, Subscriptions, TopicAccess, TopicId
from spean.gateway.eventstore.engines import open_event_store
from spean.gateway.eventstore.retention import Pruner, retention_of
from spean.gateway.eventstore.store import EventStore
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.identifiers import SubsystemId
from spean.gateway.server.consumer import ProviderChannels, TlsIdentity
from spean.gateway.server.pubsub_apps import PUBLISHER, SUBSCRIBER, ClientCheck, PubSubApps
from spean.gateway.server.pubsub_delivery import DeliveryLoop
from spean.gateway.server.pubsub_push import PushDelivery, push_targets
from spean.gateway.server.pubsub_receive import EVENT_DELIVERY, EventReceiver
from spean.gateway.server.pubsub_webhook import WebhookPublishing
from spean.gateway.tokens import TokenSigner


def topic_access(pubsub: PubSubConfig) -> TopicAccess:
    """The provider's topic access rules (deny by default)."""
    return TopicAccess(
        AccessRule(
            client=SubsystemId.parse(rule.client),
            service=SubsystemId.parse(rule.service),
            methods=frozenset(rule.topics),
        )
        for rule in pubsub.access
    )


def subscriptions(pubsub: PubSubConfig) -> Subscriptions:
    return Subscriptions(
        frozenset(
            (SubsystemId.parse(entry.client), TopicId.parse(entry.topic))
            for entry in pubsub.subscriptions
        )
    )


def delivery_policy(pubsub: PubSubConfig) -> DeliveryPolicy:
    delivery = pubsub.delivery
    return DeliveryPolicy(
        initial_backoff_ms=delivery.initial_backoff_ms,
        max_backoff_ms=delivery.max_backoff_ms,
        max_attempts=delivery.max_attempts,
        attempt_timeout_ms=delivery.attempt_timeout_ms,
    )


class PubSubNode:
    """The publish/subscribe parts of one process (see the module docstring)."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        origin: str,
        delivers: bool,
        configuration: Callable[[], GlobalConfiguration],
        signer: TokenSigner,
        identity: TlsIdentity,
        audit: AuditStore,
        check_client: ClientCheck,
        client_rules: Callable[[], ConsumerRules] | None = None,
    ) -> None:
        pubsub = config.pubsub
        assert pubsub is not None
        self._signer = signer
        targets = push_targets(config) if delivers else []
        self.store: EventStore = open_event_store(pubsub.store, config.base_dir)
        self._access = topic_access(pubsub)
        limits = config.limits
        clients = frozenset(
            SubsystemId.parse(c.subsystem)
            for c in (config.consumer.clients if config.consumer else ())
        )
        self.apps = PubSubApps(
            origin=origin,
            configuration=configuration,
            check_client=check_client,
            store=self.store,
            audit=audit,
            access=self._access,
            subscriptions=subscriptions(pubsub),
            max_event_bytes=limits.max_message_bytes,
            max_header_bytes=limits.max_header_bytes,
            published=self._published,
            seal_bodies=pubsub.audit_bodies == "encrypted",
            pushed=frozenset(
                (SubsystemId.parse(p.client), TopicId.parse(p.topic)) for p in pubsub.push
            ),
        )
        self.receiver = EventReceiver(
            origin=origin,
            configuration=configuration,
            signer=lambda: self._signer,
            rules=DeliveryRules(
                clients=clients,
                subscriptions=subscriptions(pubsub),
                max_event_bytes=limits.max_message_bytes,
                leeway=limits.clock_skew_seconds,
            ),
            store=self.store,
            audit=audit,
            token_lifetime=limits.token_lifetime_seconds,
            seal_bodies=pubsub.audit_bodies == "encrypted",
        )
        # Retention: the delivering process prunes (docs/pubsub.md, "Retention").
        self.pruner: Pruner | None = None
        if delivers:
            self.pruner = Pruner(
                self.store,
                retention_of(pubsub.retention),
                pubsub.retention.interval_minutes * 60.0,
            )
        self._channels: ProviderChannels | None = None
        self.loop: DeliveryLoop | None = None
        if delivers and pubsub.access:
            self._channels = ProviderChannels(identity, limits)
            self.loop = DeliveryLoop(
                origin=origin,
                configuration=configuration,
                signer=lambda: self._signer,
                channels=self._channels,
                store=self.store,
                audit=audit,
                access=lambda: self._access,
                policy=delivery_policy(pubsub),
                poll_s=pubsub.delivery.poll_ms / 1000,
                token_lifetime=limits.token_lifetime_seconds,
            )
        # Webhook delivery to internal URLs, and webhook publishing: in the delivering
        # process only (one POST per event at a time; one listener per server).
        self.push: PushDelivery | None = None
        if targets:
            self.push = PushDelivery(
                targets=targets,
                store=self.store,
                configuration=configuration,
                types=self.apps.types,
                ack_event=self.apps.ack_event,
            )
        self.webhook: WebhookPublishing | None = None
        if delivers and pubsub.webhook is not None:
            if client_rules is None:
                self.store.close()
                raise ConfigError(
                    "pubsub.webhook publishes as this server's consumer.clients: configure"
                    " the consumer endpoint"
                )
            try:
                self.webhook = WebhookPublishing(config, self.apps, client_rules)
            except BaseException:
                self.store.close()
                raise

    def _published(self) -> None:
        if self.loop is not None:
            self.loop.wake()

    def add_consumer_services(self, server: grpc.Server) -> None:
        server.add_registered_method_handlers(PUBLISHER, self.apps.publisher_handlers())
        server.add_registered_method_handlers(SUBSCRIBER, self.apps.subscriber_handlers())

    def add_provider_services(self, server: grpc.Server) -> None:
        server.add_registered_method_handlers(EVENT_DELIVERY, self.receiver.method_handlers())

    def start(self) -> None:
        if self.loop is not None:
            self.loop.start()
        if self.push is not None:
            self.push.start()
        if self.webhook is not None:
            self.webhook.start()

        if self.pruner is not None:
            self.pruner.start()

    def reconfigure(self, config: ServerConfig, signer: TokenSigner, identity: TlsIdentity) -> None:
        """Swap keys and the access rules (SIGHUP); the store and subscriptions stay."""
        self._signer = signer
        if config.pubsub is not None:
            self._access = topic_access(config.pubsub)
            self.apps.access = self._access
        if self._channels is not None:
            self._channels.use_identity(identity)

    def stop(self) -> None:
        if self.webhook is not None:
            self.webhook.stop()
        if self.push is not None:
            self.push.stop()

        if self.pruner is not None:
            self.pruner.stop()
        if self.loop is not None:
            self.loop.stop()
        if self._channels is not None:
            self._channels.close()
        self.store.close()
