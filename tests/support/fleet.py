"""`fleettest.v1.Fleet`: a service an IT team would write, compiled from its .proto at test time.

It covers what the demo services do not: repeated and nested parameters,
enums, timestamps, every scalar type. `compiled_fleet` runs protoc exactly as
`make proto` would and imports the generated module for the block's duration.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from types import ModuleType

from grpc_tools import protoc

FLEET_PROTO = """
syntax = "proto3";
package fleettest.v1;
import "google/protobuf/timestamp.proto";

enum Kind { KIND_UNSPECIFIED = 0; KIND_CAR = 1; KIND_BUS = 2; }
message Day { int32 year = 1; int32 month = 2; int32 day = 3; }
message Owner { string id = 1; }
message Filter {
  string owner_id = 1;
  optional int32 min_year = 2;
  google.protobuf.Timestamp registered_after = 3;
  Day inspected_since = 4;
  Kind kind = 5;
}
message FindRequest { repeated string plates = 1; Filter filter = 2; }
message Row {
  string plate = 1; Kind kind = 2; bool taxed = 3; double ratio = 4; bytes blob = 5;
  int64 big = 6; google.protobuf.Timestamp at = 7; Day day = 8; Owner owner = 9;
  string note = 10; uint32 small = 11; repeated string tags = 12;
}
message FindResponse { repeated Row rows = 1; int32 total = 2; }
service Fleet {
  rpc Find(FindRequest) returns (FindResponse);
  rpc Stream(FindRequest) returns (stream Row);
  rpc Echo(FindRequest) returns (Row);
}
"""


@contextlib.contextmanager
def compiled_fleet(root: Path) -> Iterator[ModuleType]:
    """``fleettest.v1.fleet_pb2``, generated into `root` and importable until the block ends."""
    (root / "fleettest" / "v1").mkdir(parents=True)
    (root / "fleettest" / "v1" / "fleet.proto").write_text(FLEET_PROTO)
    include = str(resources.files("grpc_tools") / "_proto")
    status = protoc.main(
        ["protoc", f"-I{root}", f"-I{include}", f"--python_out={root}", "fleettest/v1/fleet.proto"]
    )
    assert status == 0, "protoc failed on fleet.proto"
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("fleettest.v1.fleet_pb2")
    finally:
        sys.path.remove(str(root))
