"""How to call a catalogued method: snippets for `spean call`, Python, Node and grpcurl (pure).

An application calls a remote service on its own security server's consumer
endpoint with two headers, `spean-client` (its subsystem) and
`spean-service` (the provider subsystem); the snippets show exactly that,
for one method, with the example request the catalogue generated from the
method's types. They are plain text, safe to paste into a POSIX shell: the
JSON is quoted with `shlex.quote`, so a quote inside an example cannot end
the argument early.

The endpoint and the client are the reader's own: the catalogue fills in
what it knows (the endpoint given to `spean catalogue serve`, the first
client the provider lists as allowed) and placeholders otherwise.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from spean.gateway.metadata import CLIENT, SERVICE

PLACEHOLDER_ENDPOINT = "SECURITY_SERVER:PORT"
PLACEHOLDER_CLIENT = "INSTANCE/CLASS/MEMBER/SUBSYSTEM"


@dataclass(frozen=True, slots=True)
class CallTarget:
    """Everything a snippet needs about one method."""

    endpoint: str  # the caller's consumer endpoint, host:port
    client: str  # the calling subsystem
    service: str  # the provider subsystem
    path: str  # /package.Service/Method
    server_streaming: bool
    example: dict[str, Any]
    proto_file: str  # the service's .proto file, e.g. "vehicles/v1/vehicles.proto"
    request_module: str  # Python module of the request message
    response_module: str
    request_type: str  # fully qualified message names
    response_type: str
    proto_package: str
    descriptor_file: str  # where the reader saved the descriptor set download


@dataclass(frozen=True, slots=True)
class Snippets:
    spean_call: str
    python: str
    node: str
    grpcurl: str


def python_module(proto_file: str) -> str:
    """The module protoc writes for `proto_file` (`a/b/c.proto` -> `a.b.c_pb2`)."""
    stem = proto_file.removesuffix(".proto")
    return stem.replace("/", ".").replace("-", "_") + "_pb2"


def snippets_for(target: CallTarget) -> Snippets:
    body = json.dumps(target.example, ensure_ascii=False)
    return Snippets(
        spean_call=_spean_call(target, body),
        python=_python(target, body),
        node=_node(target),
        grpcurl=_grpcurl(target, body),
    )


def _spean_call(t: CallTarget, body: str) -> str:
    return (
        f"spean call --endpoint {shlex.quote(t.endpoint)} --client {shlex.quote(t.client)}"
        f" --service {shlex.quote(t.service)} {shlex.quote(t.path)} {shlex.quote(body)}"
    )


def _grpcurl(t: CallTarget, body: str) -> str:
    # Reflection on the consumer endpoint describes the provider's services when
    # asked with the same two headers, so no .proto file is needed.
    method = t.path.lstrip("/")
    return (
        f"grpcurl -plaintext -H {shlex.quote(f'{CLIENT}: {t.client}')}"
        f" -H {shlex.quote(f'{SERVICE}: {t.service}')} \\\n"
        f"  -d {shlex.quote(body)} {shlex.quote(t.endpoint)} {method}"
    )


def _class_expr(module: str, message: str, package: str) -> tuple[str, str]:
    """(import line, class expression) for a fully qualified message name."""
    package_prefix = f"{package}." if package and message.startswith(f"{package}.") else ""
    local = message[len(package_prefix) :]
    parent, _, name = module.rpartition(".")
    alias = name
    line = f"from {parent} import {name}" if parent else f"import {name}"
    return line, f"{alias}.{local}"


def _python(t: CallTarget, body: str) -> str:
    req_import, req_class = _class_expr(t.request_module, t.request_type, t.proto_package)
    res_import, res_class = _class_expr(t.response_module, t.response_type, t.proto_package)
    imports = dict.fromkeys(["import grpc", "from google.protobuf import json_format"])
    imports.update(dict.fromkeys([req_import, res_import]))
    factory = "unary_stream" if t.server_streaming else "unary_unary"
    call = (
        "for response in call(request, metadata=metadata):\n"
        "    print(json_format.MessageToJson(response))"
        if t.server_streaming
        else "response = call(request, metadata=metadata)\n"
        "print(json_format.MessageToJson(response))"
    )
    return (
        "\n".join(imports)
        + "\n\n"
        + f"channel = grpc.insecure_channel({t.endpoint!r})\n"
        + f"call = channel.{factory}(\n"
        + f"    {t.path!r},\n"
        + f"    request_serializer={req_class}.SerializeToString,\n"
        + f"    response_deserializer={res_class}.FromString,\n"
        + ")\n"
        + f"request = json_format.Parse({body!r}, {req_class}())\n"
        + f"metadata = [({CLIENT!r}, {t.client!r}), ({SERVICE!r}, {t.service!r})]\n"
        + call
        + "\n"
    )


def _node(t: CallTarget) -> str:
    service_name, method = t.path.lstrip("/").split("/", 1)
    accessor = "".join(f"[{json.dumps(part)}]" for part in service_name.split("."))
    body = json.dumps(t.example, ensure_ascii=False)
    if t.server_streaming:
        call = (
            f"const call = client.{method}(request, metadata);\n"
            'call.on("data", (response) => console.log(JSON.stringify(response)));\n'
            'call.on("error", (error) => console.error(error.code, error.details));\n'
        )
    else:
        call = (
            f"client.{method}(request, metadata, (error, response) => {{\n"
            "  if (error) return console.error(error.code, error.details);\n"
            "  console.log(JSON.stringify(response));\n"
            "});\n"
        )
    return (
        'const fs = require("fs");\n'
        'const grpc = require("@grpc/grpc-js");\n'
        'const protoLoader = require("@grpc/proto-loader");\n\n'
        "// The descriptor set the catalogue serves for this subsystem.\n"
        "const definition = protoLoader.loadFileDescriptorSetFromBuffer(\n"
        f"  fs.readFileSync({json.dumps(t.descriptor_file)}),\n"
        "  { longs: String, enums: String, defaults: true },\n"
        ");\n"
        "const proto = grpc.loadPackageDefinition(definition);\n"
        f"const client = new proto{accessor}(\n"
        f"  {json.dumps(t.endpoint)},\n"
        "  grpc.credentials.createInsecure(),\n"
        ");\n"
        "const metadata = new grpc.Metadata();\n"
        f"metadata.set({json.dumps(CLIENT)}, {json.dumps(t.client)});\n"
        f"metadata.set({json.dumps(SERVICE)}, {json.dumps(t.service)});\n"
        f"const request = {body};\n" + call
    )
