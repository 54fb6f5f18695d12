"""`spean call`: MoH's hospital calls through its consumer endpoint by name, JSON in and out,
and a member that has just joined is called the same way."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.cli import main
from spean.gateway.cli import member as member_cli
from spean.gateway.cli.call import EXIT_RPC_BASE, normalise_method
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.ministries import MOH, build_demo
from spean.gateway.files.config import load_config
from spean.gateway.server.app import SecurityServer
from spean.gateway.server.reflection import file_descriptor_set
from tests.support.world import World, running

VEHICLES = "KH/GOV/MPWT/vehicles"
GET_VEHICLE = "/vehicles.v1.VehicleRegistry/GetVehicle"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running(build_demo(tmp_path_factory.mktemp("call") / "demo")) as world:
        yield world


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPEAN_KEY_PASSPHRASE", raising=False)
    monkeypatch.setattr(member_cli, "configure_logging", lambda *args, **kwargs: None)


def call(world: World, *argv: str) -> int:
    return main(["call", "--config", str(world.federation.configs[MOH]), *argv])


def test_a_unary_call_prints_the_answer_as_json_and_the_exchange_id(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    request = json.dumps({"plate": demo_data.SAMPLE_PLATE})
    assert call(world, "--service", VEHICLES, "--user", "dr.sokha", GET_VEHICLE, request) == 0

    out, err = capsys.readouterr()
    answer = json.loads(out)
    assert answer["plate"] == demo_data.SAMPLE_PLATE
    assert answer["type"] == "VEHICLE_TYPE_CAR"
    exchange_id = err.split("exchange-id: ")[1].split()[0]
    assert world.record(MOH, exchange_id).status == "OK"


def test_a_stream_prints_one_line_per_message(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    owner = json.dumps({"owner_id": demo_data.SAMPLE_OWNER_WITH_VEHICLES})
    method = "vehicles.v1.VehicleRegistry.ListVehiclesByOwner"
    assert call(world, "--service", VEHICLES, method, owner) == 0

    plates = [json.loads(line)["plate"] for line in capsys.readouterr().out.splitlines()]
    assert plates == list(demo_data.SAMPLE_OWNER_PLATES)


def test_a_refusal_prints_status_and_message_and_exits_64_plus_the_code(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    method = "/identity.v1.IdentityRegistry/GetCitizen"
    code = call(world, "--service", "KH/GOV/MOI/idreg", method, '{"id_number": "1"}')

    assert code == EXIT_RPC_BASE + 7  # PERMISSION_DENIED
    err = capsys.readouterr().err
    assert "PERMISSION_DENIED: KH/GOV/MOH/nhis has no access right" in err
    assert "exchange-id: " in err


def test_wait_does_not_retry_a_refusal(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    method = "/identity.v1.IdentityRegistry/GetCitizen"
    argv = ["--service", "KH/GOV/MOI/idreg", "--wait", "60s", method, '{"id_number": "1"}']
    assert call(world, *argv) == EXIT_RPC_BASE + 7

    err = capsys.readouterr().err
    assert err.count("exchange-id: ") == 1, err
    assert "retrying" not in err


def test_wait_does_not_retry_the_providers_answer_that_no_row_matches(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--service", VEHICLES, "--wait", "60s", GET_VEHICLE, '{"plate": "NO-SUCH-PLATE"}']
    assert call(world, *argv) == EXIT_RPC_BASE + 5  # NOT_FOUND

    err = capsys.readouterr().err
    assert err.count("exchange-id: ") == 1, err
    assert "retrying" not in err


def test_an_endpoint_nobody_listens_on_is_named_with_what_to_check(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, nobody listening
        probe.bind(("127.0.0.1", 0))
        endpoint = f"127.0.0.1:{probe.getsockname()[1]}"
    argv = ["call", "--endpoint", endpoint, "--client", "KH/GOV/MOH/nhis", "--service", VEHICLES]
    assert main([*argv, GET_VEHICLE, "{}"]) == 1

    err = capsys.readouterr().err
    assert f"cannot reach the consumer endpoint {endpoint}" in err
    assert "is its security server running" in err


def test_a_request_from_a_file_through_an_endpoint_with_descriptors_given(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "request.json").write_text(json.dumps({"plate": demo_data.SAMPLE_PLATE}))
    (tmp_path / "vehicles.pb").write_bytes(file_descriptor_set(vehicles_pb2.DESCRIPTOR))
    argv = [
        "call",
        "--endpoint",
        world.federation.consumer_addresses[MOH],
        "--client",
        "KH/GOV/MOH/nhis",
        "--service",
        VEHICLES,
        "--descriptor-set",
        str(tmp_path / "vehicles.pb"),
        "-d",
        f"@{tmp_path / 'request.json'}",
        GET_VEHICLE,
    ]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["make"]


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        ([GET_VEHICLE, '{"plate": '], "is not a vehicles.v1.GetVehicleRequest in JSON"),
        ([GET_VEHICLE, '{"colour": "red"}'], "is not a vehicles.v1.GetVehicleRequest in JSON"),
        (["/vehicles.v1.VehicleRegistry/Nope"], "has no method Nope; it has: GetVehicle"),
        (
            ["/vehicles.v1.Nothing/Get"],
            "KH/GOV/MPWT/vehicles describes no service vehicles.v1.Nothing",
        ),
    ],
)
def test_a_local_mistake_is_named_and_exits_1(
    world: World, argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert call(world, "--service", VEHICLES, *argv) == 1
    assert complaint in capsys.readouterr().err


def test_method_names_are_accepted_in_the_usual_spellings() -> None:
    for spelling in (GET_VEHICLE, GET_VEHICLE[1:], "vehicles.v1.VehicleRegistry.GetVehicle"):
        assert normalise_method(spelling) == GET_VEHICLE


def test_a_member_that_just_joined_is_called_by_name(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """MoE joins, publishes a registry (the demo's vehicles, copied), is admitted, starts its
    server; MoH calls it, waiting while its configuration refreshes."""
    demo = world.federation.root
    folder = tmp_path / "moe"
    join = [
        "join",
        "--member",
        "KH/GOV/MOE",
        "--name",
        "Ministry of Education",
        "--address",
        "127.0.0.1:0",
        "--authority",
        str(demo / "authority"),
        "--dir",
        str(folder),
    ]
    assert main(join) == 0
    shutil.copyfile(demo / "mpwt" / "mpwt-vehicles.yaml", folder / "registry.yaml")
    shutil.copyfile(demo / "mpwt" / "mpwt-vehicles.db", folder / "mpwt-vehicles.db")
    document = yaml.safe_load((folder / "server.yaml").read_text())
    document["provider"]["services"] = [
        {"subsystem": "KH/GOV/MOE/registry", "adapter": {"type": "sql", "mapping": "registry.yaml"}}
    ]
    document["provider"]["access"] = [
        {"client": "KH/GOV/MOH/nhis", "service": "KH/GOV/MOE/registry", "methods": ["*"]}
    ]
    (folder / "server.yaml").write_text(yaml.safe_dump(document))
    (folder / "registry.pb").write_bytes(file_descriptor_set(vehicles_pb2.DESCRIPTOR))
    admit = [
        "authority",
        "admit",
        "--dir",
        str(demo / "authority"),
        "--request",
        str(folder / "join-request.yaml"),
        "--subsystem",
        "KH/GOV/MOE/registry",
        "--descriptor-set",
        str(folder / "registry.pb"),
    ]
    assert main(admit) == 0
    server = SecurityServer(load_config(folder / "server.yaml"))
    server.start()
    capsys.readouterr()
    try:
        request = json.dumps({"plate": demo_data.SAMPLE_PLATE})
        argv = ["--service", "KH/GOV/MOE/registry", "--wait", "30s", GET_VEHICLE, request]
        assert call(world, *argv) == 0
    finally:
        server.stop(grace=0)
    out, err = capsys.readouterr()
    assert json.loads(out)["plate"] == demo_data.SAMPLE_PLATE
    # Each attempt --wait made before the answer says it is retrying.
    attempts = err.count("exchange-id: ")
    assert err.count("; retrying for ") == attempts - 1, err
