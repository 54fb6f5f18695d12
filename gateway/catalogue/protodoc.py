"""Protobuf documentation from a FileDescriptorSet: services, methods, messages, examples (pure).

The catalogue documents each published method from the descriptor set its
subsystem published with the authority: the method's comment, its request
and response messages with every field (name, JSON name, number, type,
label, comment) and the messages and enums they use, and an example request
in protobuf's JSON mapping, generated from the types.

Comments come from `source_code_info`, present when the set was made with
``protoc --include_source_info``; without it every comment is empty and the
rest is unchanged. The set is read as plain descriptor messages, never
loaded into a descriptor pool, so a malformed or hostile set can cost no more
than its walk: unknown type names are shown as written, recursion in the
example stops at `MAX_EXAMPLE_DEPTH`, and a set that does not decode gives no
documentation rather than an error (the configuration that carries it was
already verified).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError

MAX_EXAMPLE_DEPTH = 4

FDP = descriptor_pb2.FieldDescriptorProto
_SCALARS: dict[int, str] = {
    FDP.TYPE_DOUBLE: "double",
    FDP.TYPE_FLOAT: "float",
    FDP.TYPE_INT64: "int64",
    FDP.TYPE_UINT64: "uint64",
    FDP.TYPE_INT32: "int32",
    FDP.TYPE_FIXED64: "fixed64",
    FDP.TYPE_FIXED32: "fixed32",
    FDP.TYPE_BOOL: "bool",
    FDP.TYPE_STRING: "string",
    FDP.TYPE_BYTES: "bytes",
    FDP.TYPE_UINT32: "uint32",
    FDP.TYPE_SFIXED32: "sfixed32",
    FDP.TYPE_SFIXED64: "sfixed64",
    FDP.TYPE_SINT32: "sint32",
    FDP.TYPE_SINT64: "sint64",
}
_INT64 = {"int64", "uint64", "fixed64", "sfixed64", "sint64"}
# Protobuf's JSON mapping writes these well-known types as strings or plain values.
_WELL_KNOWN_EXAMPLES: dict[str, Any] = {
    "google.protobuf.Timestamp": "2024-06-01T08:30:00Z",
    "google.protobuf.Duration": "1.5s",
    "google.protobuf.StringValue": "text",
    "google.protobuf.Int32Value": 0,
    "google.protobuf.Int64Value": "0",
    "google.protobuf.BoolValue": False,
    "google.protobuf.DoubleValue": 0.0,
    "google.protobuf.Struct": {},
    "google.protobuf.Value": None,
    "google.protobuf.Empty": {},
}


@dataclass(frozen=True, slots=True)
class FieldDoc:
    name: str
    json_name: str
    number: int
    type: str  # a scalar name or a fully qualified message or enum name
    label: str  # "", "repeated", "optional" or "map<K, V>"
    comment: str


@dataclass(frozen=True, slots=True)
class MessageDoc:
    name: str  # fully qualified, without the leading dot
    comment: str
    fields: tuple[FieldDoc, ...]


@dataclass(frozen=True, slots=True)
class EnumDoc:
    name: str
    comment: str
    values: tuple[tuple[str, int, str], ...]  # name, number, comment


@dataclass(frozen=True, slots=True)
class MethodDoc:
    """One method's documentation: what it does, what it takes and returns."""

    path: str
    service_comment: str
    comment: str
    request_type: str
    response_type: str
    server_streaming: bool
    proto_file: str  # the .proto file that defines the service, e.g. "vehicles/v1/vehicles.proto"
    proto_package: str
    request_file: str  # the .proto files defining the request and response messages
    response_file: str
    # The request and response messages first, then every message and enum they use.
    messages: tuple[MessageDoc, ...]
    enums: tuple[EnumDoc, ...]
    example_request: dict[str, Any]


class DescriptorIndex:
    """The messages, enums and methods of one descriptor set, with their comments."""

    def __init__(self, data: bytes) -> None:
        self.messages: dict[str, tuple[descriptor_pb2.DescriptorProto, str]] = {}
        self.enums: dict[str, tuple[descriptor_pb2.EnumDescriptorProto, str, list[str]]] = {}
        self.methods: dict[str, MethodDoc] = {}
        self._field_comments: dict[str, list[str]] = {}
        self._files: dict[str, str] = {}  # message name -> the .proto file defining it
        self._current_file = ""
        fds = descriptor_pb2.FileDescriptorSet()
        try:
            fds.ParseFromString(data)
        except DecodeError:
            return
        for file in fds.file:
            self._index_file(file)
        for file in fds.file:
            self._index_methods(file)

    def method(self, path: str) -> MethodDoc | None:
        return self.methods.get(path)

    # ------------------------------------------------------------ indexing

    def _index_file(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        self._current_file = file.name
        comments = _comments(file)
        prefix = f"{file.package}." if file.package else ""
        for i, message in enumerate(file.message_type):
            self._index_message(message, prefix, (4, i), comments)
        for i, enum in enumerate(file.enum_type):
            self._index_enum(enum, prefix, (5, i), comments)

    def _index_message(
        self,
        message: descriptor_pb2.DescriptorProto,
        prefix: str,
        path: tuple[int, ...],
        comments: dict[tuple[int, ...], str],
    ) -> None:
        name = prefix + message.name
        self.messages[name] = (message, comments.get(path, ""))
        self._files[name] = self._current_file
        self._field_comments[name] = [
            comments.get((*path, 2, j), "") for j in range(len(message.field))
        ]
        for k, nested in enumerate(message.nested_type):
            self._index_message(nested, f"{name}.", (*path, 3, k), comments)
        for k, enum in enumerate(message.enum_type):
            self._index_enum(enum, f"{name}.", (*path, 4, k), comments)

    def _index_enum(
        self,
        enum: descriptor_pb2.EnumDescriptorProto,
        prefix: str,
        path: tuple[int, ...],
        comments: dict[tuple[int, ...], str],
    ) -> None:
        values = [comments.get((*path, 2, j), "") for j in range(len(enum.value))]
        self.enums[prefix + enum.name] = (enum, comments.get(path, ""), values)

    def _index_methods(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        comments = _comments(file)
        prefix = f"{file.package}." if file.package else ""
        for s, service in enumerate(file.service):
            for m, method in enumerate(service.method):
                path = f"/{prefix}{service.name}/{method.name}"
                request, response = method.input_type.lstrip("."), method.output_type.lstrip(".")
                messages, enums = self._closure((request, response))
                self.methods[path] = MethodDoc(
                    path=path,
                    service_comment=comments.get((6, s), ""),
                    comment=comments.get((6, s, 2, m), ""),
                    request_type=request,
                    response_type=response,
                    server_streaming=method.server_streaming,
                    proto_file=file.name,
                    proto_package=file.package,
                    request_file=self._files.get(request, ""),
                    response_file=self._files.get(response, ""),
                    messages=messages,
                    enums=enums,
                    example_request=self.example(request),
                )

    # ------------------------------------------------------------ documents

    def message_doc(self, name: str) -> MessageDoc | None:
        found = self.messages.get(name)
        if found is None:
            return None
        message, comment = found
        nested_maps = {
            nested.name: nested for nested in message.nested_type if nested.options.map_entry
        }
        fields = []
        for field, field_comment in zip(message.field, self._field_comments[name], strict=True):
            label, type_name = self._describe_field(field, nested_maps)
            fields.append(
                FieldDoc(
                    name=field.name,
                    json_name=field.json_name or field.name,
                    number=field.number,
                    type=type_name,
                    label=label,
                    comment=field_comment,
                )
            )
        return MessageDoc(name, comment, tuple(fields))

    def _describe_field(
        self,
        field: descriptor_pb2.FieldDescriptorProto,
        nested_maps: dict[str, descriptor_pb2.DescriptorProto],
    ) -> tuple[str, str]:
        type_name = _SCALARS.get(field.type) or field.type_name.lstrip(".")
        if field.label == FDP.LABEL_REPEATED:
            entry = nested_maps.get(field.type_name.rsplit(".", 1)[-1])
            if entry is not None and len(entry.field) == 2:
                key, value = entry.field
                value_type = _SCALARS.get(value.type) or value.type_name.lstrip(".")
                return f"map<{_SCALARS.get(key.type, '?')}, {value_type}>", value_type
            return "repeated", type_name
        if field.proto3_optional:
            return "optional", type_name
        return "", type_name

    def _closure(
        self, roots: tuple[str, ...]
    ) -> tuple[tuple[MessageDoc, ...], tuple[EnumDoc, ...]]:
        """The root messages and every message and enum reachable from them, roots first."""
        seen: dict[str, MessageDoc] = {}
        enums: dict[str, EnumDoc] = {}
        pending = list(roots)
        while pending:
            name = pending.pop(0)
            if name in seen:
                continue
            doc = self.message_doc(name)
            if doc is None:
                continue
            seen[name] = doc
            for field in doc.fields:
                if field.type in self.messages:  # a map's type is its value type
                    pending.append(field.type)
                elif field.type in self.enums and field.type not in enums:
                    enum, comment, value_comments = self.enums[field.type]
                    enums[field.type] = EnumDoc(
                        field.type,
                        comment,
                        tuple(
                            (v.name, v.number, c)
                            for v, c in zip(enum.value, value_comments, strict=True)
                        ),
                    )
        return tuple(seen.values()), tuple(enums.values())

    def example(self, name: str, depth: int = 0) -> dict[str, Any]:
        """An example message in protobuf's JSON mapping (lowerCamel field names)."""
        doc = self.message_doc(name)
        if doc is None or depth >= MAX_EXAMPLE_DEPTH:
            return {}
        out: dict[str, Any] = {}
        for field in doc.fields:
            value = self._example_value(field.type, depth)
            if field.label.startswith("map<"):
                out[field.json_name] = {"key": value}
            elif field.label == "repeated":
                out[field.json_name] = [value]
            else:
                out[field.json_name] = value
        return out

    def _example_value(self, type_name: str, depth: int) -> Any:
        if type_name in _WELL_KNOWN_EXAMPLES:
            return _WELL_KNOWN_EXAMPLES[type_name]
        if type_name in self.enums:
            values = self.enums[type_name][0].value
            chosen = next((v for v in values if v.number != 0), values[0] if values else None)
            return chosen.name if chosen is not None else 0
        if type_name in self.messages:
            return self.example(type_name, depth + 1)
        if type_name == "string":
            return "string"
        if type_name == "bytes":
            return "AA=="
        if type_name == "bool":
            return False
        if type_name in ("double", "float"):
            return 0.0
        if type_name in _INT64:
            return "0"  # the JSON mapping writes 64-bit integers as strings
        return 0


def _comments(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    """Leading (else trailing) comments by source path, tidied."""
    out: dict[tuple[int, ...], str] = {}
    for location in file.source_code_info.location:
        text = location.leading_comments or location.trailing_comments
        if text:
            out[tuple(location.path)] = "\n".join(_lines(text)).strip()
    return out


def _lines(text: str) -> Iterator[str]:
    for line in text.splitlines():
        yield line[1:] if line.startswith(" ") else line
