"""What changed between two versions of a contract, and which changes break callers (pure).

`compare(old, new)` takes the two `FileDescriptorProto`s (the previous run's,
read from its descriptor set, and this run's) and lists every `Change`:
messages, fields, enums, enum values and methods added or removed, a field's
type or presence changed, a field or value renumbered, a method's shape
changed. A change is *breaking* when a caller built against the old contract
could fail or misread data with the new one: anything removed, renumbered or
retyped; a method changed; a field gaining or losing presence (`optional`),
which changes the generated code. Additions are not breaking.
The list is in a stable order (by kind of element, then name).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from google.protobuf import descriptor_pb2

__all__ = ["Change", "compare"]

_F = descriptor_pb2.FieldDescriptorProto
_TYPE_NAMES = {value: name.removeprefix("TYPE_").lower() for name, value in _F.Type.items()}


@dataclass(frozen=True, slots=True)
class Change:
    what: str
    breaking: bool

    def __str__(self) -> str:
        return f"{'breaking: ' if self.breaking else ''}{self.what}"


def compare(
    old: descriptor_pb2.FileDescriptorProto, new: descriptor_pb2.FileDescriptorProto
) -> tuple[Change, ...]:
    changes = list(_services(old, new))
    changes += _messages(_all_messages(old), _all_messages(new))
    changes += _enums(_all_enums(old), _all_enums(new))
    return tuple(changes)


def _prefix(file: descriptor_pb2.FileDescriptorProto) -> str:
    return f"{file.package}." if file.package else ""


def _services(
    old: descriptor_pb2.FileDescriptorProto, new: descriptor_pb2.FileDescriptorProto
) -> Iterator[Change]:
    before = _methods(old)
    after = _methods(new)
    for path in sorted(before.keys() - after.keys()):
        yield Change(f"method {path} removed", True)
    for path in sorted(after.keys() - before.keys()):
        yield Change(f"method {path} added", False)
    for path in sorted(before.keys() & after.keys()):
        if before[path] != after[path]:
            was, now = (_shape(*before[path]), _shape(*after[path]))
            yield Change(f"method {path} changed from {was} to {now}", True)


def _methods(file: descriptor_pb2.FileDescriptorProto) -> dict[str, tuple[str, str, bool]]:
    return {
        f"/{_prefix(file)}{service.name}/{method.name}": (
            method.input_type.lstrip("."),
            method.output_type.lstrip("."),
            method.server_streaming,
        )
        for service in file.service
        for method in service.method
    }


def _shape(request: str, response: str, streaming: bool) -> str:
    return f"({request}) returns ({'stream ' if streaming else ''}{response})"


def _all_messages(
    file: descriptor_pb2.FileDescriptorProto,
) -> dict[str, descriptor_pb2.DescriptorProto]:
    found: dict[str, descriptor_pb2.DescriptorProto] = {}

    def walk(scope: str, messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
        for message in messages:
            name = f"{scope}{message.name}"
            found[name] = message
            walk(f"{name}.", message.nested_type)

    walk(_prefix(file), file.message_type)
    return found


def _all_enums(
    file: descriptor_pb2.FileDescriptorProto,
) -> dict[str, descriptor_pb2.EnumDescriptorProto]:
    found = {f"{_prefix(file)}{e.name}": e for e in file.enum_type}
    for name, message in _all_messages(file).items():
        found.update({f"{name}.{e.name}": e for e in message.enum_type})
    return found


def _messages(
    before: dict[str, descriptor_pb2.DescriptorProto],
    after: dict[str, descriptor_pb2.DescriptorProto],
) -> Iterator[Change]:
    for name in sorted(before.keys() - after.keys()):
        yield Change(f"message {name} removed", True)
    for name in sorted(after.keys() - before.keys()):
        yield Change(f"message {name} added", False)
    for name in sorted(before.keys() & after.keys()):
        yield from _fields(name, before[name], after[name])


def _fields(
    message: str, old: descriptor_pb2.DescriptorProto, new: descriptor_pb2.DescriptorProto
) -> Iterator[Change]:
    before = {f.name: f for f in old.field}
    after = {f.name: f for f in new.field}
    for name in sorted(before.keys() - after.keys()):
        yield Change(f"field {message}.{name} ({before[name].number}) removed", True)
    for name in sorted(after.keys() - before.keys()):
        yield Change(f"field {message}.{name} ({after[name].number}) added", False)
    for name in sorted(before.keys() & after.keys()):
        was, now = before[name], after[name]
        where = f"field {message}.{name}"
        if was.number != now.number:
            yield Change(f"{where} renumbered from {was.number} to {now.number}", True)
        if _type(was) != _type(now):
            yield Change(f"{where} changed type from {_type(was)} to {_type(now)}", True)
        elif was.proto3_optional != now.proto3_optional:
            presence = "optional" if now.proto3_optional else "no longer optional"
            yield Change(f"{where} is now {presence} (NULL-able changed)", True)


def _type(field: descriptor_pb2.FieldDescriptorProto) -> str:
    name = field.type_name.lstrip(".") or _TYPE_NAMES.get(field.type, str(field.type))
    return f"repeated {name}" if field.label == _F.LABEL_REPEATED else name


def _enums(
    before: dict[str, descriptor_pb2.EnumDescriptorProto],
    after: dict[str, descriptor_pb2.EnumDescriptorProto],
) -> Iterator[Change]:
    for name in sorted(before.keys() - after.keys()):
        yield Change(f"enum {name} removed", True)
    for name in sorted(after.keys() - before.keys()):
        yield Change(f"enum {name} added", False)
    for name in sorted(before.keys() & after.keys()):
        was = {v.name: v.number for v in before[name].value}
        now = {v.name: v.number for v in after[name].value}
        for value in sorted(was.keys() - now.keys()):
            yield Change(f"enum value {name}.{value} ({was[value]}) removed", True)
        for value in sorted(now.keys() - was.keys()):
            yield Change(f"enum value {name}.{value} ({now[value]}) added", False)
        for value in sorted(was.keys() & now.keys()):
            if was[value] != now[value]:
                yield Change(
                    f"enum value {name}.{value} renumbered from {was[value]} to {now[value]}", True
                )
