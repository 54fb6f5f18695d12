"""Merging a published table's entries into an existing server.yaml, keeping everything else.

`merge_into(path, entries)` edits the file as the management API does
(`files.config.edit_document`: under the same lock, ruamel.yaml's round
trip, so its comments, order and quoting survive, and an atomic replacement
keeping the file's mode): it adds the `services` entry and the `access`
entries under `provider`. It is safe to run again: an entry already there is left as it
is, and an access rule for the same client and service gains only the
methods it lacks (its `minimise` rules and anything else stay). It refuses,
changing nothing, a file without a `provider` section (the server's listen
address is the operator's choice) and a subsystem the file already serves
through another adapter.
"""

from __future__ import annotations

from collections.abc import MutableMapping, MutableSequence
from pathlib import Path
from typing import Any

from spean.gateway.errors import ConfigError, FailedPrecondition
from spean.gateway.files.config import edit_document

__all__ = ["merge_into"]


def merge_into(
    path: Path, entries: dict[str, list[dict[str, object]]]
) -> tuple[tuple[str, ...], str | None]:
    """Merge `entries` into server.yaml `path`: what changed, and the file's server_id."""
    notes: list[str] = []
    found: list[str | None] = [None]

    def merge(document: Any) -> None:
        if not isinstance(document, MutableMapping):
            raise ConfigError(f"{path}: must be a mapping of settings")
        provider = document.get("provider")
        if not isinstance(provider, MutableMapping):
            raise ConfigError(
                f"{path}: has no provider section: add provider.listen (the address other"
                " security servers call, see docs/operator.md) and run again"
            )
        notes.extend(_services(path, provider, entries["services"]))
        notes.extend(_access(path, provider, entries["access"]))
        server_id = document.get("server_id")
        found[0] = server_id if isinstance(server_id, str) else None

    edit_document(path, merge)
    return tuple(notes), found[0]


def _list(path: Path, provider: MutableMapping[str, Any], key: str) -> MutableSequence[Any]:
    value = provider.get(key)
    if value is None:
        provider[key] = value = []
    if not isinstance(value, MutableSequence):
        raise ConfigError(f"{path}: provider.{key} must be a list")
    return value


def _services(
    path: Path, provider: MutableMapping[str, Any], wanted: list[dict[str, object]]
) -> list[str]:
    services = _list(path, provider, "services")
    notes = []
    for entry in wanted:
        index, found = next(
            ((i, s) for i, s in enumerate(services) if _get(s, "subsystem") == entry["subsystem"]),
            (None, None),
        )
        if found is None:
            services.append(entry)
            notes.append(f"provider.services: added {entry['subsystem']}")
            continue
        adapter = _get(found, "adapter")
        if not (isinstance(adapter, MutableMapping) and dict(adapter) == entry["adapter"]):
            raise FailedPrecondition(
                f"{path}: provider.services[{index}] already serves {entry['subsystem']} with"
                " another adapter; remove that entry, or publish under another --subsystem"
            )
    return notes


def _access(
    path: Path, provider: MutableMapping[str, Any], wanted: list[dict[str, object]]
) -> list[str]:
    rules = _list(path, provider, "access")
    notes = []
    for entry in wanted:
        client, service = entry["client"], entry["service"]
        found = next(
            (r for r in rules if _get(r, "client") == client and _get(r, "service") == service),
            None,
        )
        methods = list(entry["methods"])  # type: ignore[call-overload]
        if found is None:
            rules.append(entry)
            notes.append(f"provider.access: {client} may call {', '.join(methods)}")
            continue
        present = found.get("methods")
        if not isinstance(present, MutableSequence):
            raise ConfigError(f"{path}: provider.access rule for {client} has no methods list")
        missing = [m for m in methods if m not in present and "*" not in present]
        present.extend(missing)
        if missing:
            notes.append(f"provider.access: {client} may now also call {', '.join(missing)}")
    return notes


def _get(entry: object, key: str) -> object:
    return entry.get(key) if isinstance(entry, MutableMapping) else None
