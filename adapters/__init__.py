"""Adapters: the bridge from a published protobuf service to a ministry's systems.

The public surface is the interface in `spean.adapters.base` (re-exported here), the
error types an adapter raises (re-exported from `spean.gateway.errors`, so there is
one error tree) and `load_adapter`, which builds an adapter from a security
server's configuration. Everything else in this package may change freely.
"""

from __future__ import annotations

from spean.adapters.base import Adapter, CallContext, Health, MethodKind, PoolStatus
from spean.adapters.loader import ADAPTER_TYPES, load_adapter
from spean.gateway.errors import (
    ConfigError,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SpeanError,
    Unavailable,
)

__all__ = [
    "ADAPTER_TYPES",
    "Adapter",
    "CallContext",
    "ConfigError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Health",
    "Internal",
    "InvalidArgument",
    "MethodKind",
    "NotFound",
    "PermissionDenied",
    "PoolStatus",
    "ResourceExhausted",
    "SpeanError",
    "Unavailable",
    "load_adapter",
]
