"""Assembly of one security server process from its configuration.

`SecurityServer` owns the parts that live as long as the process: keys, the
global configuration client, the audit store, the adapters and the two gRPC
servers. It starts them in dependency order and stops them in reverse, so an
exchange in flight when `stop` is called still finds its audit store open.

`reload` (SIGHUP) re-reads the configuration file and swaps in what can
change while calls are in flight: keys and certificates, consumer clients and
the provider's access rules. Everything is loaded and checked before anything
is swapped, so a bad file changes nothing. TLS material reaches grpc through
dynamic server credentials (`_TlsSwitch`): new handshakes get the new
certificate, open connections keep theirs, and no call is dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from spean.adapters.base import Adapter, PoolStatus
from spean.adapters.loader import load_adapter
from spean.gateway import pki
from spean.gateway.access import AccessPolicy, AccessRule
from spean.gateway.admission import ConsumerRules
from spean.gateway.audit.backends import open_store
from spean.gateway.audit.store import AuditStore
from spean.gateway.audit.writer import server_checkpoint_policy
from spean.gateway.config import (
    ConsumerConfig,
    ProviderConfig,
    ServerConfig,
    ServiceConfig,
    is_loopback,
    split_address,
)
from spean.gateway.errors import ConfigError, NotFound, SpeanError
from spean.gateway.files import keyfiles
from spean.gateway.files.config import load_config, read_passphrase, subject_key_for
from spean.gateway.globalconf import GlobalConfiguration
from spean.gateway.identifiers import SubsystemId
from spean.gateway.management.listener import ManagementListener
from spean.gateway.server import health, metaservices, reflection, tracing
from spean.gateway.server.consumer import ConsumerEndpoint, ProviderChannels, TlsIdentity
from spean.gateway.server.globalconf_client import GlobalConfigurationClient
from spean.gateway.server.metrics import ServerMetrics
from spean.gateway.server.prepare import masking_policy
from spean.gateway.server.provider import ProviderEndpoint
from spean.gateway.server.pubsub import PubSubNode
from spean.gateway.server.replay_guard import ReplayCache, shared_store_for
from spean.gateway.tokens import TokenSigner

log = structlog.get_logger("spean.server")


METADATA_LIMIT = 16 * 1024


def _grpc_options(config: ServerConfig) -> list[tuple[str, Any]]:
    # gRPC's own limit sits above Spean's so that an oversized message reaches
    # the handler and is refused there, with a clear status and an audit record.
    limit = config.limits.max_message_bytes * 2
    return [
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
        # One metadata limit, soft = hard: between gRPC's default soft and hard
        # limits a call is refused at random. Spean's own header limits (1 KiB
        # per spean-* value, 8 KiB per token) sit well below it.
        ("grpc.max_metadata_size", METADATA_LIMIT),
        ("grpc.absolute_max_metadata_size", METADATA_LIMIT),
        ("grpc.so_reuseport", 1),
    ]


class _TlsSwitch:
    """Server TLS material that may change while the server runs.

    grpc calls `fetch` before every new handshake. It answers a new
    configuration once after each change (a reloaded key pair, a new set of
    trusted roots) and None, "keep the current one", otherwise, so the cost of
    rebuilding TLS state is paid once per change, not per connection.
    """

    def __init__(self, pairs: list[tuple[bytes, bytes]], roots: Callable[[], bytes | None]) -> None:
        self._lock = threading.Lock()
        self._pairs = pairs
        self._roots = roots
        self._served_pairs = pairs
        self._served_roots = roots()

    def credentials(self, require_client_auth: bool) -> grpc.ServerCredentials:
        initial = grpc.ssl_server_certificate_configuration(
            self._served_pairs, root_certificates=self._served_roots
        )
        # grpc documents None as "no change"; its type stubs omit it.
        return grpc.dynamic_ssl_server_credentials(
            initial,
            self.fetch,  # type: ignore[arg-type]
            require_client_authentication=require_client_auth,
        )

    def use_pairs(self, pairs: list[tuple[bytes, bytes]]) -> None:
        with self._lock:
            self._pairs = pairs

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        try:
            roots = self._roots()
        except SpeanError:
            # An expired global configuration: keep the roots in use; the
            # exchange itself is refused, with its reason, by the endpoint.
            roots = self._served_roots
        with self._lock:
            if self._pairs is self._served_pairs and roots == self._served_roots:
                return None
            self._served_pairs, self._served_roots = self._pairs, roots
            return grpc.ssl_server_certificate_configuration(
                self._served_pairs, root_certificates=roots
            )


def _load_keys(config: ServerConfig) -> tuple[TokenSigner, TlsIdentity]:
    """The member signing key and this server's TLS identity, read from the key files."""
    passphrase = read_passphrase(config)
    keys = config.keys
    tls_key = keyfiles.load_private_key(config.resolve(keys.tls_key), passphrase)
    tls_cert = keyfiles.load_certificate(config.resolve(keys.tls_certificate))
    signer = TokenSigner(
        keyfiles.load_private_key(config.resolve(keys.signing_key), passphrase),
        keyfiles.load_certificate(config.resolve(keys.signing_certificate)),
    )
    identity = TlsIdentity(
        private_key_pem=tls_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        certificate_pem=tls_cert.public_bytes(serialization.Encoding.PEM),
    )
    return signer, identity


def _client_thumbprints(
    config: ServerConfig, consumer: ConsumerConfig
) -> dict[SubsystemId, str | None]:
    clients: dict[SubsystemId, str | None] = {}
    for client in consumer.clients:
        thumbprint = None
        if client.certificate is not None:
            cert = keyfiles.load_certificate(config.resolve(client.certificate))
            thumbprint = pki.thumbprint(cert)
        clients[SubsystemId.parse(client.subsystem)] = thumbprint
    return clients


def _consumer_tls(
    config: ServerConfig, consumer: ConsumerConfig
) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
    """The consumer endpoint's key pair and the client certificates it accepts."""
    assert consumer.tls is not None
    try:
        pair = (
            config.resolve(consumer.tls.key).read_bytes(),
            config.resolve(consumer.tls.certificate).read_bytes(),
        )
        client_pems = [
            config.resolve(c.certificate).read_bytes()
            for c in consumer.clients
            if c.certificate is not None
        ]
    except OSError as exc:
        raise ConfigError(
            f"{config.path}: consumer.tls: cannot read {exc.filename}: {exc.strerror}"
        ) from None
    return [pair], b"".join(client_pems) or None


def _access_policy(provider: ProviderConfig) -> AccessPolicy:
    return AccessPolicy(
        AccessRule(
            client=SubsystemId.parse(rule.client),
            service=SubsystemId.parse(rule.service),
            methods=frozenset(rule.methods),
        )
        for rule in provider.access
    )


def _disabled_methods(provider: ProviderConfig) -> dict[SubsystemId, dict[str, str]]:
    """Each published subsystem's disabled methods and their notices (step 12a)."""
    return {
        SubsystemId.parse(service.subsystem): {d.method: d.notice for d in service.disabled}
        for service in provider.services
        if service.disabled
    }


def _adapters(provider: ProviderConfig) -> list[ServiceConfig]:
    return [service.model_copy(update={"disabled": []}) for service in provider.services]


def restart_needed(old: ServerConfig, new: ServerConfig) -> list[str]:
    """The settings that differ between `old` and `new` and that only a restart applies."""
    changed = [
        name
        for name in (
            "server_id",
            "global_configuration",
            "audit",
            "limits",
            "log_format",
            "metrics",
            "tracing",
            "health",
            "management",
        )
        if getattr(old, name) != getattr(new, name)
    ]
    for side in ("consumer", "provider"):
        before, after = getattr(old, side), getattr(new, side)
        if (before is None) != (after is None):
            changed.append(side)
        elif before is not None and before.listen != after.listen:
            changed.append(f"{side}.listen")
    if old.consumer and new.consumer and (old.consumer.tls is None) != (new.consumer.tls is None):
        changed.append("consumer.tls")
    # Which methods are disabled may change on reload; the adapters may not.
    if old.provider and new.provider and _adapters(old.provider) != _adapters(new.provider):
        changed.append("provider.services")
    # pubsub.access may change on reload; the store, subscriptions and delivery may not.
    if (old.pubsub is None) != (new.pubsub is None):
        changed.append("pubsub")
    elif old.pubsub is not None and new.pubsub is not None:
        for name in (
            "store",
            "subscriptions",
            "delivery",
            "retention",
            "audit_bodies",
            "webhook",
            "push",
        ):
            if getattr(old.pubsub, name) != getattr(new.pubsub, name):
                changed.append(f"pubsub.{name}")
    return changed


class SecurityServer:
    """One security server process: consumer and/or provider endpoint."""

    def __init__(
        self,
        config: ServerConfig,
        worker: str = "w0",
        reload_peers: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.worker = worker
        # Under a supervisor: asks it to reload every worker (the management API's changes
        # are made in one worker, and the others must follow without a restart).
        self._reload_peers = reload_peers
        self.origin = f"{config.server_id}#{worker}"
        self.consumer_port: int | None = None
        self.provider_port: int | None = None
        self._servers: list[grpc.Server] = []
        self._adapters: list[Adapter] = []
        self._audit: AuditStore | None = None
        self._globalconf: GlobalConfigurationClient | None = None
        self._channels: ProviderChannels | None = None
        self._consumer: ConsumerEndpoint | None = None
        self._provider: ProviderEndpoint | None = None
        self._replay: ReplayCache | None = None
        self._consumer_tls: _TlsSwitch | None = None
        self._provider_tls: _TlsSwitch | None = None
        self._consumer_roots: bytes | None = None
        self._reload_lock = threading.Lock()
        self._stopped = threading.Event()
        self.metrics_port: int | None = None
        self._metrics: ServerMetrics | None = None
        # One health state per endpoint (consumer, provider, plaintext health port).
        self._healths: list[health.ServerHealth] = []
        self.health_port: int | None = None
        # Publish/subscribe (docs/pubsub.md), when the configuration has a pubsub section.
        self.pubsub: PubSubNode | None = None
        self._management: ManagementListener | None = None
        self.management_port: int | None = None

    @property
    def first_worker(self) -> bool:
        """Whether this process is worker 0 (``w0`` or ``INSTANCE-w0``, as
        `workers.worker_name` names it): the one that runs what a server runs once,
        event delivery and the management listener."""
        return self.worker == "w0" or self.worker.endswith("-w0")

    @property
    def globalconf(self) -> GlobalConfigurationClient:
        assert self._globalconf is not None, "start() first"
        return self._globalconf

    @property
    def audit(self) -> AuditStore:
        assert self._audit is not None, "start() first"
        return self._audit

    def current_configuration(self) -> GlobalConfiguration:
        return self.globalconf.current()

    def start(self) -> None:
        """Start every part; if one fails, stop those already started and re-raise."""
        try:
            self._start()
        except BaseException:
            self.stop(grace=0)
            raise

    def _start(self) -> None:
        config = self.config
        signer, identity = _load_keys(config)
        gc = config.global_configuration
        self._globalconf = GlobalConfigurationClient(
            source=gc.source if "://" in gc.source else str(config.resolve(Path(gc.source))),
            anchor=keyfiles.load_certificate(config.resolve(gc.anchor)),
            cache_path=config.resolve(gc.cache),
            refresh_seconds=gc.refresh_seconds,
        )
        self._globalconf.load_initial()
        self._globalconf.start()
        conf = self._globalconf.current()
        if conf.server(config.server) is None:
            log.warning(
                "server.not_in_globalconf",
                server=config.server_id,
                version=conf.version,
                hint="the authority has not admitted this server or not published since",
            )
        tracing.configure(config.tracing, config.server_id)
        if config.metrics is not None:
            self._start_metrics()
        store_url = config.audit.store
        if "://" not in store_url:
            store_path = config.resolve(Path(store_url))
            # A new server's state folder may not exist yet (spean doctor: a warning).
            store_path.parent.mkdir(parents=True, exist_ok=True)
            store_url = str(store_path)
        self._audit = open_store(
            store_url, self.origin, checkpoints=server_checkpoint_policy(config)
        )
        if config.pubsub is not None:
            self.pubsub = PubSubNode(
                config,
                origin=self.origin,
                delivers=self.first_worker,  # one delivery loop per server
                configuration=self.current_configuration,
                signer=signer,
                identity=identity,
                audit=self.audit,
                check_client=self._check_client,
                client_rules=self._consumer_rules if config.consumer is not None else None,
            )
        if config.provider is not None:
            self._start_provider(signer, identity)
        if config.consumer is not None:
            self._start_consumer(signer, identity)
        if config.health is not None:
            self._start_health_port()
        if self.pubsub is not None:
            self.pubsub.start()
        # One management listener per server: the first worker serves it (its port and
        # its admin log origin cannot be shared by several processes).
        if config.management is not None and self.first_worker:
            self._start_management()
        for state in self._healths:
            state.serving()
        log.info(
            "server.started",
            server=config.server_id,
            origin=self.origin,
            consumer_port=self.consumer_port,
            provider_port=self.provider_port,
            globalconf_version=conf.version,
        )

    def _start_consumer(self, signer: TokenSigner, identity: TlsIdentity) -> None:
        config = self.config
        consumer = config.consumer
        assert consumer is not None
        clients = _client_thumbprints(config, consumer)
        self._channels = ProviderChannels(identity, config.limits)
        endpoint = ConsumerEndpoint(
            server_id=config.server,
            origin=self.origin,
            configuration=self.current_configuration,
            signer=signer,
            clients=clients,
            channels=self._channels,
            audit=self.audit,
            observer=self._metrics,
            limits=config.limits,
        )
        self._consumer = endpoint
        server = self._new_grpc_server(endpoint)
        self._add_metaservices(server, endpoint)
        host, _ = split_address(consumer.listen)
        if consumer.tls is None:
            assert is_loopback(host)
            port = server.add_insecure_port(consumer.listen)
        else:
            pairs, self._consumer_roots = _consumer_tls(config, consumer)
            self._consumer_tls = _TlsSwitch(pairs, lambda: self._consumer_roots)
            # grpc either requires and verifies a client certificate or never
            # asks for one: without asking, a registered certificate is never
            # seen and `check_client` refuses every call. So once a client
            # certificate is registered, the handshake requires one of them.
            credentials = self._consumer_tls.credentials(
                require_client_auth=self._consumer_roots is not None
            )
            port = server.add_secure_port(consumer.listen, credentials)
        self.consumer_port = self._bound(port, consumer.listen)
        server.start()
        self._servers.append(server)

    def _start_provider(self, signer: TokenSigner, identity: TlsIdentity) -> None:
        config = self.config
        provider = config.provider
        assert provider is not None
        services: dict[SubsystemId, Adapter] = {}
        for index, service in enumerate(provider.services):
            where = f"{config.path}: provider.services[{index}].adapter"
            adapter = load_adapter(service.adapter, config.base_dir, where=where)
            adapter.start()
            self._adapters.append(adapter)
            services[SubsystemId.parse(service.subsystem)] = adapter
        policy = _access_policy(provider)
        # Shared by every worker and replica: a replay to another process is refused too.
        self._replay = ReplayCache(config.limits.clock_skew_seconds, shared_store_for(config))
        endpoint = ProviderEndpoint(
            server_id=config.server,
            origin=self.origin,
            configuration=self.current_configuration,
            signer=signer,
            services=services,
            policy=policy,
            replay=self._replay,
            audit=self.audit,
            observer=self._metrics,
            limits=config.limits,
            masking=masking_policy(config, services),
            subject_key=subject_key_for(config),
            disabled=_disabled_methods(provider),
            sealed_bodies=frozenset(
                SubsystemId.parse(s.subsystem)
                for s in provider.services
                if s.audit_bodies == "encrypted"
            ),
        )
        self._provider = endpoint
        server = self._new_grpc_server(endpoint)
        # The trusted roots follow the federation's CA set as the global
        # configuration changes; the key pair follows `reload`.
        self._provider_tls = _TlsSwitch(
            [(identity.private_key_pem, identity.certificate_pem)],
            lambda: self.current_configuration().ca_pem,
        )
        credentials = self._provider_tls.credentials(require_client_auth=True)
        self.provider_port = self._bound(
            server.add_secure_port(provider.listen, credentials), provider.listen
        )
        # Health over the same mutual TLS: peers and balancers that hold a
        # federation certificate may ask; it takes precedence over the endpoint.
        provider_health = health.ServerHealth(self.current_configuration)
        self._healths.append(provider_health)
        server.add_registered_method_handlers(
            health.SERVICE_NAME, provider_health.method_handlers()
        )
        if self.pubsub is not None:
            self.pubsub.add_provider_services(server)
        server.start()
        self._servers.append(server)

    def _new_grpc_server(self, handler: grpc.GenericRpcHandler) -> grpc.Server:
        # grpc's sync server gives a call its thread before the request message
        # has arrived, so a caller that opens a call and never sends holds one
        # until its deadline or disconnection. The pool is sized well above the
        # calls doing work (an idle thread waiting costs little), and the calls
        # beyond it are refused at once (RESOURCE_EXHAUSTED) instead of queueing
        # without bound behind stalled ones.
        workers = self.config.limits.workers
        return grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spean"),
            handlers=[handler],
            options=_grpc_options(self.config),
            maximum_concurrent_rpcs=workers,
        )

    def _bound(self, port: int, address: str) -> int:
        if port == 0:
            raise ConfigError(f"{self.config.path}: cannot listen on {address} (in use?)")
        return port

    def reload(self) -> ServerConfig:
        """Re-read the configuration file and keys and swap them in; return the new config.

        Swaps keys and certificates (signing and TLS), consumer clients and
        consumer TLS, and the provider's access rules, then refreshes the
        global configuration. Calls in flight finish with what they started
        with. Raises `ConfigError` (and changes nothing) if the file or a key
        is wrong, or if a setting that only a restart applies has changed.
        """
        with self._reload_lock:
            new = load_config(self.config.path)
            changed = restart_needed(self.config, new)
            if changed:
                raise ConfigError(
                    f"{new.path}: {', '.join(changed)} changed; these apply only on restart"
                    " (nothing was reloaded)"
                )
            # Load everything before swapping anything: a bad file changes nothing.
            signer, identity = _load_keys(new)
            clients = _client_thumbprints(new, new.consumer) if new.consumer else {}
            consumer_tls = (
                _consumer_tls(new, new.consumer)
                if new.consumer is not None and new.consumer.tls is not None
                else None
            )
            policy = _access_policy(new.provider) if new.provider else None
            masking = (
                masking_policy(new, self._provider.services) if self._provider is not None else None
            )
            subject_key = subject_key_for(new)
            if self._consumer is not None:
                self._consumer.reconfigure(signer=signer, clients=clients)
            if self._channels is not None:
                self._channels.use_identity(identity)
            if self._consumer_tls is not None and consumer_tls is not None:
                pairs, self._consumer_roots = consumer_tls
                self._consumer_tls.use_pairs(pairs)
            if self._provider is not None and policy is not None:
                assert new.provider is not None  # a policy comes from it
                self._provider.reconfigure(
                    signer=signer,
                    policy=policy,
                    masking=masking,
                    subject_key=subject_key,
                    disabled=_disabled_methods(new.provider),
                )
            if self._provider_tls is not None:
                self._provider_tls.use_pairs([(identity.private_key_pem, identity.certificate_pem)])
            if self.pubsub is not None:
                self.pubsub.reconfigure(new, signer, identity)
            self.config = new
        try:
            self.globalconf.refresh()
        except SpeanError as exc:
            log.warning("server.reload_globalconf_failed", error=exc.message)
        log.info(
            "server.reloaded",
            server=new.server_id,
            origin=self.origin,
            signing_kid=signer.kid,
            tls_sha256=pki.pem_thumbprint(identity.certificate_pem),
        )
        return new

    def stop(self, grace: float | None = 5.0) -> None:
        """Stop accepting calls, let those in flight finish, then close the rest."""
        for state in self._healths:
            state.draining()
        if self.pubsub is not None:
            self.pubsub.apps.close_streams()  # open Subscribe streams would hold the grace
        self._stop_management()
        events = [server.stop(grace) for server in self._servers]
        for event in events:
            event.wait()
        self._servers.clear()
        if self._channels is not None:
            self._channels.close()
        if self.pubsub is not None:
            self.pubsub.stop()
        for adapter in self._adapters:
            adapter.stop()
        self._adapters.clear()
        if self._replay is not None:
            self._replay.close()
        if self._globalconf is not None:
            self._globalconf.stop()
        if self._audit is not None:
            self._audit.close()
        if self._metrics is not None:
            self._metrics.stop()
        self._stopped.set()
        log.info("server.stopped", server=self.config.server_id, origin=self.origin)

    def wait(self) -> None:
        self._stopped.wait()

    def _start_metrics(self) -> None:
        """The Prometheus endpoint, fed by every exchange's end (exchange.finish)."""
        assert self.config.metrics is not None
        metrics = ServerMetrics(
            server_id=self.config.server_id,
            origin=self.origin,
            certificates=self._certificates_in_use,
            pools=self._adapter_pools,
        )
        metrics.configuration_changed(self.globalconf.current())
        self.globalconf.subscribe(metrics.configuration_changed)
        self.metrics_port = metrics.serve(self.config.metrics)
        self._metrics = metrics

    def _adapter_pools(self) -> dict[str, PoolStatus]:
        # Read at scrape time; the provider may not be started yet.
        provider, pools = self._provider, {}
        if provider is not None:
            for subsystem, adapter in provider.services.items():
                status = adapter.pool_status()
                if status is not None:
                    pools[str(subsystem)] = status
        return pools

    def _certificates_in_use(self) -> dict[str, x509.Certificate]:
        # Read from the files the configuration names, so a reload is reflected.
        config, found = self.config, {}
        for name, path in (
            ("tls", config.keys.tls_certificate),
            ("signing", config.keys.signing_certificate),
        ):
            try:
                found[name] = keyfiles.load_certificate(config.resolve(path))
            except SpeanError as exc:
                log.warning("metrics.certificate_unreadable", certificate=name, error=exc.message)
        return found

    # ---- the management API (gateway/management): its listener, and what it reads here

    def _start_management(self) -> None:
        listener = ManagementListener(self)
        listener.start()
        self._management = listener
        self.management_port = listener.port

    def _stop_management(self) -> None:
        if self._management is not None:
            self._management.stop()
            self._management = None

    def published_adapters(self) -> Mapping[SubsystemId, Adapter]:
        """The provider's adapters by subsystem (empty without a provider)."""
        return self._provider.services if self._provider is not None else {}

    def reload_peers(self) -> None:
        """After a change this process made and reloaded: the other workers reload too.

        A server of one process has no peers. Under a supervisor (``--workers N``)
        the supervisor is asked to send SIGHUP to every worker, this one included
        (a second reload of the same file changes nothing here).
        """
        if self._reload_peers is not None:
            self._reload_peers()
            log.info("server.reload_peers_requested", origin=self.origin)

    # ---- end of the management API's part

    def _start_health_port(self) -> None:
        """grpc.health.v1, plaintext, and nothing else: for probes without mutual TLS."""
        assert self.config.health is not None
        listen = self.config.health.listen
        state = health.ServerHealth(self.current_configuration)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="spean-health"),
            options=[("grpc.so_reuseport", 1)],
        )
        server.add_registered_method_handlers(health.SERVICE_NAME, state.method_handlers())
        self.health_port = self._bound(server.add_insecure_port(listen), listen)
        server.start()
        self._healths.append(state)
        self._servers.append(server)

    def _add_metaservices(self, server: grpc.Server, endpoint: ConsumerEndpoint) -> None:
        """Metaservices, reflection and health on the consumer endpoint.

        Registered method handlers take precedence over the endpoint's generic
        handler, which keeps every other path (AllowedMethods included: an
        exchange answered by the provider).
        """
        meta = metaservices.MetaServices(
            configuration=self.current_configuration,
            check_client=endpoint.check_client,
            max_header_bytes=self.config.limits.max_header_bytes,
        )
        consumer_health = health.ServerHealth(
            self.current_configuration, services=[metaservices.SERVICE_NAME]
        )
        self._healths.append(consumer_health)
        reflect = reflection.RemoteReflection(
            configuration=self.current_configuration,
            check_client=endpoint.check_client,
            local_services=[metaservices.SERVICE_NAME, health.SERVICE_NAME],
            max_header_bytes=self.config.limits.max_header_bytes,
        )
        server.add_registered_method_handlers(metaservices.SERVICE_NAME, meta.method_handlers())
        server.add_registered_method_handlers(
            health.SERVICE_NAME, consumer_health.method_handlers()
        )
        for name, handlers in reflect.method_handlers().items():
            server.add_registered_method_handlers(name, handlers)
        if self.pubsub is not None:
            self.pubsub.add_consumer_services(server)

    def _consumer_rules(self) -> ConsumerRules:
        """The consumer endpoint's current rules, for the webhook of publish/subscribe: the
        same registered clients as gRPC calls, SIGHUP included."""
        assert self._consumer is not None  # asked for only when there is a consumer side
        return self._consumer.rules

    def _check_client(self, client: SubsystemId, context: grpc.ServicerContext) -> str:
        """Publish/subscribe identify the application as the consumer endpoint does."""
        if self._consumer is None:
            raise NotFound("this security server has no consumer endpoint for applications")
        return self._consumer.check_client(client, context)
