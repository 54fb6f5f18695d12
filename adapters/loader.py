"""Build an adapter from the `adapter:` entry of a security server's configuration.

```yaml
services:
  - subsystem: KH/GOV/MPWT/vehicles
    adapter: {type: sql, mapping: mpwt-vehicles.yaml}   # path relative to the config file
  - subsystem: KH/GOV/MPWT/licences
    adapter: {type: grpc, target: licences.internal:50051,
              descriptor: licences.v1.licences_pb2, service: licences.v1.Licences}
  - subsystem: KH/GOV/MPWT/fines
    adapter: {type: python, servicer: "mpwt_fines:Fines",
              descriptor: fines.v1.fines_pb2, service: fines.v1.Fines}
```

`load_adapter` reads and checks everything that needs no outside system (the
mapping file, the descriptors, the field paths) and returns an adapter that is
not started yet: the security server calls `start()`, which checks the rest
against the database. Every mistake is a `ConfigError` that names where it is;
a database driver that is not installed is a `MissingDriver` (a `ConfigError`
whose `fix` is the `pip install` line), raised by `start()` in the server and
seen the same way by `spean doctor`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from spean.adapters._spec import check_keys
from spean.adapters.base import Adapter
from spean.adapters.grpc_passthrough import GrpcPassthroughAdapter
from spean.adapters.python_adapter import PythonAdapter
from spean.adapters.sql import SqlAdapter
from spean.adapters.sql._engines import MissingDriver
from spean.gateway.errors import ConfigError

__all__ = ["ADAPTER_TYPES", "MissingDriver", "load_adapter"]

ADAPTER_TYPES = ("sql", "grpc", "python")
"""Adapter types the configuration may name: `spean.adapters.sql`, `spean.adapters.grpc_passthrough`
and `spean.adapters.python_adapter` describe their entries."""


def _load_sql(spec: Mapping[str, Any], base_dir: Path, where: str) -> Adapter:
    check_keys(spec, frozenset({"type", "mapping"}), where)
    mapping = spec.get("mapping")
    if not isinstance(mapping, str) or not mapping.strip():
        raise ConfigError(f"{where}.mapping: the path of the SQL mapping file is required")
    path = Path(mapping.strip())
    return SqlAdapter.from_file(path if path.is_absolute() else base_dir / path)


_LOADERS: dict[str, Callable[[Mapping[str, Any], Path, str], Adapter]] = {
    "sql": _load_sql,
    "grpc": GrpcPassthroughAdapter.from_spec,
    "python": PythonAdapter.from_spec,
}


def load_adapter(spec: Mapping[str, Any], base_dir: Path, *, where: str = "adapter") -> Adapter:
    """Build the adapter `spec` describes; relative paths resolve against `base_dir`.

    `where` names the entry in error messages, e.g. ``"config.yaml: services[0].adapter"``.
    The adapter is returned unstarted.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: must be a mapping with a 'type'")
    kind = spec.get("type")
    loader = _LOADERS.get(kind) if isinstance(kind, str) else None
    if loader is None:
        choices = ", ".join(ADAPTER_TYPES)
        raise ConfigError(f"{where}.type: unknown adapter type {kind!r}; choose one of: {choices}")
    return loader(spec, base_dir, where)
