"""Baseline (b): the direct service behind two nginx hops with mutual TLS.

The way a ministry would proxy gRPC between two sites without Spean:

    client --h2c--> nginx "consumer" --grpcs, mTLS--> nginx "provider" --h2c--> direct service

Both hops keep upstream connections alive (`keepalive` in the upstream
block), the provider hop requires a client certificate issued by the
federation CA, and the consumer hop verifies the provider's certificate and
name. Keys and certificates come from spean.gateway.pki, the same code Spean's
authority uses. nginx runs unprivileged in a prefix folder with its own
pid file and logs (access logging off, as a tuned proxy would run).

The benchmark installs nothing: without Debian's nginx (`apt-get install
nginx-light`) `find_nginx` returns None and baseline (b) is skipped.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.procs import Child, free_port, start, wait_for_port
from spean.gateway import pki
from spean.gateway.files import keyfiles
from spean.gateway.identifiers import parse_server

_CONF = """\
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    client_max_body_size 8m;
    keepalive_requests 1000000;

    upstream provider_hop {{
        server 127.0.0.1:{provider_port};
        keepalive 64;
    }}
    upstream direct_service {{
        server {direct};
        keepalive 64;
    }}

    # Consumer-side hop: plaintext on loopback for the application.
    server {{
        listen 127.0.0.1:{consumer_port} http2;
        location / {{
            grpc_pass grpcs://provider_hop;
            grpc_ssl_certificate {prefix}/consumer.crt;
            grpc_ssl_certificate_key {prefix}/consumer.key;
            grpc_ssl_trusted_certificate {prefix}/ca.crt;
            grpc_ssl_verify on;
            grpc_ssl_protocols TLSv1.3;
            grpc_ssl_name {provider_name};
            grpc_ssl_server_name on;
            grpc_ssl_session_reuse on;
        }}
    }}

    # Provider-side hop: mutual TLS from the other ministry.
    server {{
        listen 127.0.0.1:{provider_port} ssl http2;
        ssl_certificate {prefix}/provider.crt;
        ssl_certificate_key {prefix}/provider.key;
        ssl_client_certificate {prefix}/ca.crt;
        ssl_verify_client on;
        ssl_protocols TLSv1.3;
        location / {{
            grpc_pass grpc://direct_service;
        }}
    }}
}}
"""


@dataclass(frozen=True, slots=True)
class NginxPair:
    """The running pair: its entry port and the master process."""

    entry_port: int
    child: Child


def find_nginx() -> str | None:
    """Path of the nginx binary, or None (Debian puts it in /usr/sbin)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def _issue(prefix: Path) -> str:
    """CA, provider and consumer TLS keys and certificates in `prefix`; the provider's name."""
    ca_key = pki.generate_key("ec-p256")
    ca_cert = pki.create_ca(ca_key, "BENCH")
    keyfiles.write_certificate(prefix / "ca.crt", ca_cert)
    names = {}
    for role, identifier in (
        ("provider", "BENCH/GOV/PROV/ss1"),
        ("consumer", "BENCH/GOV/CONS/ss1"),
    ):
        server = parse_server(identifier)
        key = pki.generate_key("ec-p256")
        csr = pki.make_csr(key, identifier, "server")
        cert = pki.issue_server_certificate(ca_key, ca_cert, csr, server, "127.0.0.1:1")
        keyfiles.write_private_key(prefix / f"{role}.key", key)
        keyfiles.write_certificate(prefix / f"{role}.crt", cert)
        names[role] = server.dns_name()
    return names["provider"]


def start_nginx_pair(binary: str, prefix: Path, direct_address: str, workers: int) -> NginxPair:
    """Write the configuration and certificates under `prefix` and start nginx."""
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    provider_name = _issue(prefix)
    consumer_port, provider_port = free_port(), free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        _CONF.format(
            workers=workers,
            prefix=prefix,
            consumer_port=consumer_port,
            provider_port=provider_port,
            direct=direct_address,
            provider_name=provider_name,
        ),
        encoding="utf-8",
    )
    child = start(
        "nginx",
        [binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
        prefix / "nginx.out",
    )
    wait_for_port(consumer_port, 10, child)
    wait_for_port(provider_port, 10, child)
    return NginxPair(consumer_port, child)
