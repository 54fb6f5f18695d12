"""Field numbering across any history of table changes: the guarantees of contract.py.

Whatever columns come and go over successive runs, a column keeps its number
while it stays, no number ever names two different columns, and a run's
numbers are distinct and never among those it reserves. Each run reads the
previous one's numbering back from its descriptor, as publish-table does.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from spean.gateway.publish.contract import (
    Contract,
    Numbering,
    Options,
    build_contract,
    numbering_of,
)
from spean.gateway.publish.typemap import ColumnShape, SqlKind, TableShape

NAMES = ["id", "a", "b", "c", "d", "e", "f"]


def table(columns: list[str]) -> TableShape:
    shapes = tuple(
        ColumnShape(name, name, "TEXT", SqlKind.TEXT, False) for name in ["id", *columns]
    )
    return TableShape("t", "t", "sqlite", shapes, ("id",))


def descriptor(contract: Contract) -> descriptor_pb2.FileDescriptorProto:
    """The Record message as the compiled descriptor holds it (reserved ranges exclusive)."""
    file = descriptor_pb2.FileDescriptorProto(name=contract.proto_file, package=contract.package)
    record = file.message_type.add(name="Record")
    for plan in contract.fields:
        record.field.add(name=plan.name, number=plan.number)
    for number in contract.reserved:
        record.reserved_range.add(start=number, end=number + 1)
    record.reserved_name.extend(contract.reserved_names)
    return file


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(NAMES[1:]), unique=True), min_size=1, max_size=8))
def test_numbers_are_stable_and_never_reused(history: list[list[str]]) -> None:
    owner: dict[int, str] = {}
    numbering = Numbering()
    previous_numbers: dict[str, int] = {}
    for columns in history:
        contract = build_contract(table(columns), Options("KH/GOV/MOH/t"), numbering)
        numbers = {plan.name: plan.number for plan in contract.fields}
        assert len(set(numbers.values())) == len(numbers)
        assert not set(numbers.values()) & set(contract.reserved)
        for name, number in numbers.items():
            if name in previous_numbers:
                assert number == previous_numbers[name], f"{name} was renumbered"
            assert owner.setdefault(number, name) == name, f"{number} reused for {name}"
        previous_numbers = numbers
        numbering = numbering_of(descriptor(contract))
