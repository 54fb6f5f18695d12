"""Compiling a .proto in-process with grpcio-tools, so no operator ever runs protoc.

`compile_proto(text, name)` writes the text into a temporary folder, runs
`grpc_tools.protoc.main` there with the well-known types' include path that
grpcio-tools ships, and returns the descriptor set (imports and source info
included, so the comments reach the catalogue and reflection) and the
generated Python module, as bytes. Nothing outside the temporary folder is
touched: a failed compilation leaves the operator's files as they were.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from spean.gateway.errors import Internal

__all__ = ["Compiled", "compile_proto", "main_file"]


@dataclass(frozen=True, slots=True)
class Compiled:
    descriptor_set: bytes
    python_module: bytes


def compile_proto(text: str, name: str) -> Compiled:
    """Compile `text`, the file `name` (a path like ``patients/v1/patients.proto``)."""
    include = str(resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory(prefix="spean-publish-") as folder:
        root = Path(folder)
        source = root / "src" / name
        source.parent.mkdir(parents=True)
        source.write_text(text, encoding="utf-8")
        out = root / "out"
        out.mkdir()
        descriptor_set = root / "descriptors.pb"
        status = protoc.main(
            [
                "protoc",
                f"-I{root / 'src'}",
                f"-I{include}",
                f"--python_out={out}",
                "--include_imports",
                "--include_source_info",
                f"--descriptor_set_out={descriptor_set}",
                name,
            ]
        )
        if status != 0:
            # The text is Spean's own: a failure is a bug, and protoc said why on stderr.
            raise Internal(f"the generated {name} did not compile (protoc exit {status})")
        module = out / name.replace(".proto", "_pb2.py")
        return Compiled(descriptor_set.read_bytes(), module.read_bytes())


def main_file(descriptor_set: bytes) -> descriptor_pb2.FileDescriptorProto | None:
    """The published file of a descriptor set `compile_proto` wrote: the last one, since
    protoc lists imports first; None for a set that holds none but well-known types."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set).file
    own = [f for f in files if not f.name.startswith("google/protobuf/")]
    return own[-1] if own else None
