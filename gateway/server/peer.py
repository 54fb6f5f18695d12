"""What grpc knows of the TLS peer of a call (the I/O half of `spean.gateway.trust`)."""

from __future__ import annotations

import grpc


def peer_certificate_pem(context: grpc.ServicerContext) -> bytes | None:
    """The TLS peer's certificate (PEM) as grpc reports it, or None."""
    # grpc reports each property as a list of values (its stubs say bytes).
    values: list[bytes] | None = context.auth_context().get("x509_pem_cert")  # type: ignore[assignment]
    return values[0] if values else None
