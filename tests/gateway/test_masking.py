"""Data minimisation on plain values: rules compiled against real descriptors."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.errors import ConfigError, Internal
from spean.gateway.identifiers import SubsystemId
from spean.gateway.masking import MaskingPolicy, MaskRule, client_key

SECRET = b"0123456789abcdef0123456789abcdef-provider-secret"
MOH = SubsystemId.parse("KH/GOV/MOH/nhis")
MOI = SubsystemId.parse("KH/GOV/MOI/police")
MPWT = SubsystemId.parse("KH/GOV/MPWT/vehicles")
GET = "/vehicles.v1.VehicleRegistry/GetVehicle"
LIST = "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner"
SERVICES = {MPWT: [vehicles_pb2.DESCRIPTOR.services_by_name["VehicleRegistry"]]}
VEHICLE = vehicles_pb2.Vehicle(
    plate="2A-1234", make="Toyota", model="Camry", year=2012, owner_id="012345678", engine_cc=2500
)


def policy(*rules: MaskRule, secret: bytes | None = SECRET) -> MaskingPolicy:
    return MaskingPolicy(rules, SERVICES, secret)


def rule(client: SubsystemId = MOH, method: str = "*", **fields: tuple[str, ...]) -> MaskRule:
    return MaskRule(client=client, service=MPWT, method=method, where="server.yaml: r", **fields)


def masked(p: MaskingPolicy, client: SubsystemId, method: str = GET) -> vehicles_pb2.Vehicle:
    masker = p.masker(client, MPWT, method)
    assert masker is not None
    return vehicles_pb2.Vehicle.FromString(masker.apply(VEHICLE.SerializeToString()))


def test_dropped_fields_are_cleared_and_the_rest_kept() -> None:
    vehicle = masked(policy(rule(drop=("make", "engine_cc"))), MOH)
    assert vehicle.make == ""
    assert not vehicle.HasField("engine_cc")
    assert (vehicle.plate, vehicle.model, vehicle.owner_id) == ("2A-1234", "Camry", "012345678")


def test_pseudonyms_are_keyed_per_client_and_stable() -> None:
    p = policy(rule(MOH, pseudonymise=("owner_id",)), rule(MOI, pseudonymise=("owner_id",)))
    for_moh, again, for_moi = masked(p, MOH), masked(p, MOH, LIST), masked(p, MOI)

    expected = hmac.new(client_key(SECRET, MOH), b"012345678", hashlib.sha256).digest()
    assert for_moh.owner_id == base64.urlsafe_b64encode(expected).rstrip(b"=").decode()
    assert again.owner_id == for_moh.owner_id  # same client, another method: joinable
    assert for_moi.owner_id != for_moh.owner_id  # another client: not joinable
    assert "012345678" not in (for_moh.owner_id, for_moi.owner_id)
    assert len(for_moh.owner_id) == 43


def test_rules_apply_only_to_their_client_and_method() -> None:
    p = policy(rule(MOH, method=LIST, drop=("make",)))
    assert p.masker(MOH, MPWT, GET) is None
    assert p.masker(MOI, MPWT, LIST) is None
    assert masked(p, MOH, LIST).make == ""


def test_an_undecodable_response_is_refused_not_passed_on() -> None:
    masker = policy(rule(drop=("make",))).masker(MOH, MPWT, GET)
    assert masker is not None
    with pytest.raises(Internal, match=r"does not decode as vehicles\.v1\.Vehicle"):
        masker.apply(b"\xff\xff\xff")


@pytest.mark.parametrize(
    ("bad", "secret", "message"),
    [
        (
            rule(pseudonymise=("engine_cc",)),
            SECRET,
            "server.yaml: r.pseudonymise: 'engine_cc' is a int32 number or flag in"
            " vehicles.v1.Vehicle: only string and bytes fields can hold a pseudonym",
        ),
        (
            rule(pseudonymise=("type",)),
            SECRET,
            "'type' is an enum (vehicles.v1.VehicleType)",
        ),
        (
            rule(pseudonymise=("registration_date",)),
            SECRET,
            "'registration_date' is google.protobuf.Timestamp",
        ),
        (
            rule(drop=("owner",)),
            SECRET,
            "server.yaml: r.drop: 'owner': vehicles.v1.Vehicle has no field 'owner' (it has plate,",
        ),
        (
            rule(drop=("plate.text",)),
            SECRET,
            "'plate' is not a message, it has no field 'text'",
        ),
        (
            rule(method="/vehicles.v1.VehicleRegistry/Delete", drop=("make",)),
            SECRET,
            "server.yaml: r.method: KH/GOV/MPWT/vehicles does not publish",
        ),
        (rule(pseudonymise=("owner_id",)), None, "needs provider.pseudonymisation_key"),
        (rule(pseudonymise=("owner_id",)), b"short", "at least 32 secret bytes"),
    ],
)
def test_impossible_rules_are_refused_when_compiled(
    bad: MaskRule, secret: bytes | None, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        policy(bad, secret=secret)
    assert message in caught.value.message


def test_an_adapter_without_descriptors_cannot_be_masked() -> None:
    with pytest.raises(ConfigError, match="declares no protobuf descriptors"):
        MaskingPolicy([rule(drop=("make",))], {MPWT: []}, SECRET)


def _nested_types() -> tuple[type, type]:
    """A response with repeated messages holding strings, bytes and repeated strings."""
    file = descriptor_pb2.FileDescriptorProto(name="masktest.proto", package="masktest")
    owner = file.message_type.add(name="Owner")
    owner.field.add(name="id", number=1, type=9, label=1)
    owner.field.add(name="photo", number=2, type=12, label=1)
    owner.field.add(name="aliases", number=3, type=9, label=3)
    row = file.message_type.add(name="Row")
    row.field.add(name="owner", number=1, type=11, label=1, type_name=".masktest.Owner")
    reply = file.message_type.add(name="Reply")
    reply.field.add(name="rows", number=1, type=11, label=3, type_name=".masktest.Row")
    service = file.service.add(name="Rows")
    service.method.add(name="Find", input_type=".masktest.Row", output_type=".masktest.Reply")
    pool = descriptor_pool.DescriptorPool()
    fd = pool.Add(file)
    return (
        message_factory.GetMessageClass(fd.message_types_by_name["Reply"]),
        fd.services_by_name["Rows"],
    )


def test_paths_reach_through_repeated_messages() -> None:
    reply_class, service = _nested_types()
    reply = reply_class()
    for ident in ("a", "b"):
        row = reply.rows.add()
        row.owner.id = ident
        row.owner.photo = b"\x89PNG"
        row.owner.aliases.extend(["x", ""])
    reply.rows.add()  # a row without an owner: nothing to mask, no error
    rules = [
        MaskRule(MOH, MPWT, "*", pseudonymise=("rows.owner.id", "rows.owner.aliases")),
        MaskRule(MOH, MPWT, "*", pseudonymise=("rows.owner.photo",)),
    ]
    masker = MaskingPolicy(rules, {MPWT: [service]}, SECRET).masker(
        MOH, MPWT, "/masktest.Rows/Find"
    )
    assert masker is not None

    out = reply_class.FromString(masker.apply(reply.SerializeToString()))

    ids = [row.owner.id for row in out.rows[:2]]
    assert ids[0] != ids[1]
    assert "a" not in ids
    assert all(len(i) == 43 for i in ids)
    assert all(len(row.owner.photo) == 32 for row in out.rows[:2])
    assert [list(row.owner.aliases)[1] for row in out.rows[:2]] == ["", ""]  # empty stays empty
    assert out.rows[0].owner.aliases[0] == out.rows[1].owner.aliases[0] != "x"
    assert not out.rows[2].HasField("owner")
