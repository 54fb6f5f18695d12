"""`spean doctor`'s adapter checks: the preparation the server runs at start, and its fixes.

For every service of the provider side this loads the adapter exactly as the
server does (`spean.adapters.loader.load_adapter`: the mapping file, the
descriptors, the field paths), starts it (the driver is imported, the
database answers, SQL adapters connect read-only and probe every statement)
and stops it again, then compares what the adapter serves with what the
global configuration publishes for the subsystem: the same methods, the same
call shapes and, where descriptors were published, the same request and
response types. A caller of a method the adapter does not serve, or one
whose published types differ from the served ones, would fail at call time;
here it fails before.

A provider side without a service yet (what `spean join` writes) is a
warning naming the next step, not a failure: the server starts with it.

Invariants: nothing is written; every connection opened is closed before the
check returns; each problem names its fix (a missing driver: the
``pip install`` line the server prints too).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence

from google.protobuf.descriptor import Descriptor, ServiceDescriptor

from spean.adapters.base import Adapter, MethodKind
from spean.adapters.loader import MissingDriver, load_adapter
from spean.adapters.sql import SqlAdapter
from spean.gateway.cli.findings import Finding
from spean.gateway.config import ServerConfig
from spean.gateway.errors import ConfigError, SpeanError
from spean.gateway.globalconf import GlobalConfiguration, SubsystemInfo
from spean.gateway.identifiers import SubsystemId
from spean.gateway.server.reflection import build_pool

__all__ = ["check_adapters"]


def check_adapters(config: ServerConfig, conf: GlobalConfiguration | None) -> Iterator[Finding]:
    """Prepare every provider adapter as the server does, then compare it with `conf`."""
    if config.provider is None:
        return
    if not config.provider.services:
        # A server that has just joined: valid, and it starts, but answers no call yet.
        yield Finding(
            "adapters",
            "warn",
            "the provider side publishes no service yet: its endpoint starts and answers"
            " NOT_FOUND to every call",
            f"publish one into it (spean publish-table ... --config {config.path}) or add a"
            " provider.services entry (docs/adapters.md)",
        )
        return
    for index, service in enumerate(config.provider.services):
        where = f"{config.path}: provider.services[{index}].adapter"
        name = service.subsystem
        try:
            adapter = load_adapter(service.adapter, config.base_dir, where=where)
        except SpeanError as exc:
            yield Finding(
                "adapters",
                "fail",
                f"{name}: {exc.message}",
                "correct the adapter entry or its mapping file (docs/operator.md), then run"
                " spean doctor again",
            )
            continue
        started = yield from _start(name, adapter)
        if not started:
            continue
        yield _ready(name, adapter)
        if conf is not None:
            yield from _compare(name, adapter, conf)


def _ready(name: str, adapter: Adapter) -> Finding:
    methods = f"{len(adapter.methods())} method(s)"
    if not isinstance(adapter, SqlAdapter):
        return Finding("adapters", "ok", f"{name}: adapter ready, {methods}")
    if not adapter.mapping.read_only:
        return Finding(
            "adapters",
            "warn",
            f"{name}: adapter ready, {methods}, but its mapping turns read-only off: the"
            " database would accept writes through it",
            f"remove database.read_only: false from {adapter.mapping.source}",
        )
    return Finding("adapters", "ok", f"{name}: adapter ready, {methods}, database read-only")


def _start(name: str, adapter: Adapter) -> Generator[Finding, None, bool]:
    """Start and stop `adapter`; yields a failure and returns False if it cannot start."""
    try:
        adapter.start()
    except MissingDriver as exc:
        yield Finding("adapters", "fail", f"{name}: {exc.message}", exc.fix)
        return False
    except ConfigError as exc:
        yield Finding(
            "adapters",
            "fail",
            f"{name}: {exc.message}",
            "correct the mapping so that it matches the database (docs/operator.md)",
        )
        return False
    except SpeanError as exc:
        yield Finding(
            "adapters",
            "fail",
            f"{name}: {exc.message}",
            "start the database or correct its URL and credentials in the mapping; the server"
            " refuses to start without it",
        )
        return False
    finally:
        adapter.stop()
    return True


def _compare(name: str, adapter: Adapter, conf: GlobalConfiguration) -> Iterator[Finding]:
    published = conf.subsystem(SubsystemId.parse(name))
    if published is None:
        return  # the registration check has said so, with its fix
    served = adapter.methods()
    listed = {m.path: m.server_streaming for m in published.methods}
    republish = (
        "publish the descriptors the adapter serves: spean authority update-subsystem"
        f" --id {name} --descriptor-set FILE, then publish"
    )
    for path in sorted(set(listed) - set(served)):
        yield Finding(
            "adapters",
            "fail",
            f"{name}: {path} is published in version {conf.version} but the adapter does not"
            " serve it: callers get UNIMPLEMENTED",
            f"serve it in the mapping, or {republish}",
        )
    for path in sorted(set(served) - set(listed)):
        yield Finding(
            "adapters",
            "warn",
            f"{name}: the adapter serves {path}, which version {conf.version} does not publish:"
            " nobody can call it",
            republish,
        )
    for path in sorted(set(served) & set(listed)):
        streaming = served[path] is MethodKind.SERVER_STREAMING
        if streaming != listed[path]:
            shape = "server-streaming" if listed[path] else "unary"
            yield Finding(
                "adapters",
                "fail",
                f"{name}: {path} is published as {shape} but the adapter serves it the other way",
                republish,
            )
    yield from _compare_types(name, adapter.services(), published, republish)


def _compare_types(
    name: str,
    services: Sequence[ServiceDescriptor],
    published: SubsystemInfo,
    republish: str,
) -> Iterator[Finding]:
    if not published.file_descriptor_set:
        return
    try:
        pool, _ = build_pool(published.file_descriptor_set, f"descriptors of {name}")
    except SpeanError as exc:
        yield Finding("adapters", "fail", f"{name}: {exc.message}", republish)
        return
    for service in services:
        try:
            remote = pool.FindServiceByName(service.full_name)
        except KeyError:
            yield Finding(
                "adapters",
                "fail",
                f"{name}: the published descriptors hold no service {service.full_name}",
                republish,
            )
            continue
        for method in service.methods:
            other = remote.methods_by_name.get(method.name)
            if other is None:
                continue  # a method published without descriptors is reported above
            mine = _types(method.input_type.full_name, method.output_type.full_name)
            theirs = _types(other.input_type.full_name, other.output_type.full_name)
            if mine != theirs:
                yield Finding(
                    "adapters",
                    "fail",
                    f"{name}: /{service.full_name}/{method.name} takes and returns {mine}"
                    f" here but {theirs} in the published descriptors",
                    republish,
                )
            elif _fields(method.output_type) != _fields(other.output_type):
                yield Finding(
                    "adapters",
                    "fail",
                    f"{name}: {method.output_type.full_name} has other fields here than in the"
                    " published descriptors: callers would decode answers wrongly",
                    republish,
                )


def _types(request: str, response: str) -> str:
    return f"{request} -> {response}"


def _fields(message: Descriptor) -> Mapping[int, tuple[str, int]]:
    return {f.number: (f.name, f.type) for f in message.fields}
