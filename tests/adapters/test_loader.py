"""Building adapters from a security server's `adapter:` entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from spean.adapters import ADAPTER_TYPES, ConfigError, MethodKind, load_adapter
from spean.adapters.grpc_passthrough import GrpcPassthroughAdapter
from spean.adapters.python_adapter import PythonAdapter
from spean.adapters.sql import SqlAdapter
from spean.gateway.demo import data as demo_data


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    demo_data.install_demo_services(folder)
    return folder


def test_sql_adapter_loads_unstarted_with_a_path_relative_to_the_config(demo: Path) -> None:
    adapter = load_adapter({"type": "sql", "mapping": "mpwt-vehicles.yaml"}, demo)

    assert isinstance(adapter, SqlAdapter)
    assert adapter.mapping.source == demo / "mpwt-vehicles.yaml"
    assert adapter.methods()["/vehicles.v1.VehicleRegistry/ListVehiclesByOwner"] is (
        MethodKind.SERVER_STREAMING
    )
    assert not adapter.health().ok  # not started: the security server starts it
    adapter.start()
    try:
        assert adapter.health().ok
    finally:
        adapter.stop()


def test_absolute_mapping_path_ignores_the_base(demo: Path, tmp_path: Path) -> None:
    spec = {"type": "sql", "mapping": str(demo / "moh-nhis.yaml")}
    adapter = load_adapter(spec, tmp_path)
    assert list(adapter.methods()) == ["/health.v1.FacilityStats/GetMonthlyReport"]


def test_every_announced_type_loads(tmp_path: Path) -> None:
    vehicles = {
        "descriptor": "spean.demo.vehicles.v1.vehicles_pb2",
        "service": "vehicles.v1.VehicleRegistry",
    }
    grpc = load_adapter({"type": "grpc", "target": "127.0.0.1:1"} | vehicles, tmp_path)
    servicer = "tests.support.mpwt_servicer:VehicleRegistry"
    python = load_adapter({"type": "python", "servicer": servicer} | vehicles, tmp_path)
    assert isinstance(grpc, GrpcPassthroughAdapter)
    assert isinstance(python, PythonAdapter)
    assert grpc.methods() == python.methods()
    assert not grpc.health().ok  # unstarted: nothing was connected to


def test_the_server_names_its_file_and_entry(tmp_path: Path) -> None:
    """Through the security server's configuration, an adapter mistake names file and field."""
    from spean.gateway.demo.ministries import build_demo
    from spean.gateway.server.app import SecurityServer

    federation = build_demo(tmp_path / "demo")
    config = federation.configs["KH/GOV/MPWT"]
    text = config.read_text()
    config.write_text(text.replace("type: sql", "type: grpc", 1))
    server = SecurityServer(federation.config("KH/GOV/MPWT"))
    try:
        with pytest.raises(ConfigError) as caught:
            server.start()
    finally:
        server.stop(grace=None)  # what the failed start opened (audit store, refresher)
    assert caught.value.message.startswith(
        f"{config}: provider.services[0].adapter: unknown key 'mapping' for a grpc adapter"
    )


@pytest.mark.parametrize("kind", ["mongodb", "", None, 3])
def test_unknown_type_names_the_choices(kind: object, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_adapter({"type": kind}, tmp_path, where="ss.yaml: services[1].adapter")
    assert caught.value.message == (
        f"ss.yaml: services[1].adapter.type: unknown adapter type {kind!r};"
        " choose one of: sql, grpc, python"
    )
    assert ADAPTER_TYPES == ("sql", "grpc", "python")


def test_sql_entry_mistakes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^adapter\.mapping: the path of the SQL mapping"):
        load_adapter({"type": "sql"}, tmp_path)
    with pytest.raises(ConfigError, match=r"^adapter: unknown key 'mappings' for a sql adapter"):
        load_adapter({"type": "sql", "mappings": "x.yaml"}, tmp_path)
    with pytest.raises(ConfigError, match=r"cannot read SQL mapping .*absent\.yaml"):
        load_adapter({"type": "sql", "mapping": "absent.yaml"}, tmp_path)


def test_a_mapping_mistake_names_the_mapping_file(demo: Path, tmp_path: Path) -> None:
    broken = (demo / "mpwt-vehicles.yaml").read_text().replace("GetVehicle:", "GetVehicles:")
    (tmp_path / "mpwt.yaml").write_text(broken)
    with pytest.raises(ConfigError) as caught:
        load_adapter({"type": "sql", "mapping": "mpwt.yaml"}, tmp_path)
    assert caught.value.message.startswith(f"{tmp_path / 'mpwt.yaml'}: methods.GetVehicles: ")


def test_every_announced_type_has_a_loader() -> None:
    from spean.adapters import loader

    assert tuple(loader._LOADERS) == loader.ADAPTER_TYPES
