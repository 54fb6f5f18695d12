"""What changed between two contracts, and which changes would break a caller."""

from __future__ import annotations

from google.protobuf import descriptor_pb2, text_format

from spean.gateway.publish.diff import Change, compare

BEFORE = """
name: "p/v1/p.proto" package: "p.v1"
message_type {
  name: "Record"
  field { name: "id" number: 1 type: TYPE_INT64 label: LABEL_OPTIONAL }
  field { name: "name" number: 2 type: TYPE_STRING label: LABEL_OPTIONAL }
  field { name: "age" number: 3 type: TYPE_INT32 label: LABEL_OPTIONAL }
  field { name: "ward" number: 4 type: TYPE_ENUM type_name: ".p.v1.Record.Ward"
          label: LABEL_OPTIONAL }
  enum_type {
    name: "Ward"
    value { name: "WARD_UNSPECIFIED" number: 0 }
    value { name: "WARD_NORTH" number: 1 }
  }
}
message_type {
  name: "GetRequest"
  field { name: "id" number: 1 type: TYPE_INT64 label: LABEL_OPTIONAL }
}
service {
  name: "PRegistry"
  method { name: "Get" input_type: ".p.v1.GetRequest" output_type: ".p.v1.Record" }
  method { name: "Export" input_type: ".p.v1.GetRequest" output_type: ".p.v1.Record"
           server_streaming: true }
}
"""


def file(text: str) -> descriptor_pb2.FileDescriptorProto:
    return text_format.Parse(text, descriptor_pb2.FileDescriptorProto())


def changed(edit: str, replacement: str) -> tuple[Change, ...]:
    assert edit in BEFORE
    return compare(file(BEFORE), file(BEFORE.replace(edit, replacement)))


def test_the_same_contract_has_no_change() -> None:
    assert compare(file(BEFORE), file(BEFORE)) == ()


def test_a_field_added_does_not_break() -> None:
    email = 'field { name: "email" number: 5 type: TYPE_STRING label: LABEL_OPTIONAL }'
    added = changed('field { name: "ward"', f'{email}\n  field {{ name: "ward"')
    assert added == (Change("field p.v1.Record.email (5) added", False),)


def test_a_field_removed_breaks() -> None:
    gone = changed('field { name: "age" number: 3 type: TYPE_INT32 label: LABEL_OPTIONAL }', "")
    assert gone == (Change("field p.v1.Record.age (3) removed", True),)


def test_a_type_change_breaks_and_names_both_types() -> None:
    retyped = changed('"age" number: 3 type: TYPE_INT32', '"age" number: 3 type: TYPE_STRING')
    assert retyped == (Change("field p.v1.Record.age changed type from int32 to string", True),)


def test_a_renumbered_field_breaks() -> None:
    moved = changed('"age" number: 3', '"age" number: 9')
    assert moved == (Change("field p.v1.Record.age renumbered from 3 to 9", True),)


def test_presence_gained_breaks_the_generated_code() -> None:
    optional = changed(
        '"name" number: 2 type: TYPE_STRING label: LABEL_OPTIONAL',
        '"name" number: 2 type: TYPE_STRING label: LABEL_OPTIONAL proto3_optional: true',
    )
    assert optional == (Change("field p.v1.Record.name is now optional (NULL-able changed)", True),)


def test_a_method_removed_breaks_and_a_changed_method_names_both_shapes() -> None:
    export = BEFORE[BEFORE.index('  method { name: "Export"') : BEFORE.index("true }") + 6]
    assert changed(export, "") == (Change("method /p.v1.PRegistry/Export removed", True),)
    unary = changed("server_streaming: true", "server_streaming: false")
    assert unary == (
        Change(
            "method /p.v1.PRegistry/Export changed from (p.v1.GetRequest) returns"
            " (stream p.v1.Record) to (p.v1.GetRequest) returns (p.v1.Record)",
            True,
        ),
    )


def test_enum_values_added_do_not_break_and_removed_ones_do() -> None:
    north = 'value { name: "WARD_NORTH" number: 1 }'
    assert changed(north, f'{north} value {{ name: "WARD_SOUTH" number: 2 }}') == (
        Change("enum value p.v1.Record.Ward.WARD_SOUTH (2) added", False),
    )
    assert changed(north, "") == (
        Change("enum value p.v1.Record.Ward.WARD_NORTH (1) removed", True),
    )


def test_a_new_package_removes_every_method_of_the_old_one() -> None:
    renamed = compare(file(BEFORE), file(BEFORE.replace("p.v1", "p.v2")))
    assert Change("method /p.v1.PRegistry/Get removed", True) in renamed
    assert Change("message p.v1.Record removed", True) in renamed
    assert Change("method /p.v2.PRegistry/Get added", False) in renamed
    assert str(Change("method /p.v1.PRegistry/Get removed", True)).startswith("breaking: ")
