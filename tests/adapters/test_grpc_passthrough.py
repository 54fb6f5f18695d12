"""The gRPC pass-through adapter against a real internal gRPC server on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from spean.adapters import (
    CallContext,
    ConfigError,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    MethodKind,
    NotFound,
    PermissionDenied,
    Unavailable,
    load_adapter,
)
from spean.adapters.grpc_passthrough import GrpcPassthroughAdapter, parse_passthrough
from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway import pki
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.federation import free_port
from spean.gateway.files import keyfiles
from spean.gateway.identifiers import ServerId
from tests.support import mpwt_servicer

GET = "/vehicles.v1.VehicleRegistry/GetVehicle"
LIST = "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner"
DESCRIPTOR = "spean.demo.vehicles.v1.vehicles_pb2"
SERVICE = "vehicles.v1.VehicleRegistry"
# Not canonical protobuf: field 1 twice, then an unknown field 99. Decoding and
# re-encoding would change these bytes; a pass-through must not.
ODD_BYTES = b"\x0a\x01A\x0a\x01B\x9a\x06\x03xyz"


def _serve(address: str, credentials: grpc.ServerCredentials | None) -> grpc.Server:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    servicer = mpwt_servicer.VehicleRegistry()

    def get(request: bytes, context: grpc.ServicerContext) -> bytes:
        if request == vehicles_pb2.GetVehicleRequest(plate="RAW").SerializeToString():
            return ODD_BYTES
        parsed = vehicles_pb2.GetVehicleRequest.FromString(request)
        return servicer.GetVehicle(parsed, context).SerializeToString()

    def listing(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        parsed = vehicles_pb2.ListVehiclesByOwnerRequest.FromString(request)
        for vehicle in servicer.ListVehiclesByOwner(parsed, context):
            yield vehicle.SerializeToString()

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "GetVehicle": grpc.unary_unary_rpc_method_handler(get),
            "ListVehiclesByOwner": grpc.unary_stream_rpc_method_handler(listing),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    if credentials is None:
        server.add_insecure_port(address)
    else:
        server.add_secure_port(address, credentials)
    server.start()
    return server


@dataclass(frozen=True)
class Pki:
    folder: Path
    ca_key: Any
    ca_cert: Any


def _issue(ca: Pki, name: str, address: str) -> tuple[Path, Path]:
    key = pki.generate_key()
    csr = pki.make_csr(key, name, "server")
    cert = pki.issue_server_certificate(
        ca.ca_key, ca.ca_cert, csr, ServerId.parse(f"KH/GOV/MPWT/{name}"), address
    )
    key_path, cert_path = ca.folder / f"{name}.key", ca.folder / f"{name}.crt"
    keyfiles.write_private_key(key_path, key)
    keyfiles.write_certificate(cert_path, cert)
    return key_path, cert_path


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    key = pki.generate_key()
    cert = pki.create_ca(key, "KH")
    keyfiles.write_certificate(folder / "ca.crt", cert)
    (folder / "notpem.txt").write_text("hello")
    made = Pki(folder, key, cert)
    _issue(made, "spean", "127.0.0.1:1")  # the security server's client identity
    return made


@pytest.fixture(scope="module")
def plain() -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    server = _serve(address, None)
    yield address
    server.stop(None)


@pytest.fixture(scope="module")
def mtls(ca: Pki) -> Iterator[str]:
    """The internal service over TLS, requiring a client certificate from the same CA."""
    address = f"127.0.0.1:{free_port()}"
    key, cert = _issue(ca, "internal", address)
    credentials = grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())],
        root_certificates=(ca.folder / "ca.crt").read_bytes(),
        require_client_auth=True,
    )
    server = _serve(address, credentials)
    yield address
    server.stop(None)


def _spec(target: str, **extra: object) -> dict[str, object]:
    return {"type": "grpc", "target": target, "descriptor": DESCRIPTOR, "service": SERVICE} | extra


@pytest.fixture(scope="module")
def adapter(plain: str) -> Iterator[GrpcPassthroughAdapter]:
    built = load_adapter(_spec(plain), Path("."))
    assert isinstance(built, GrpcPassthroughAdapter)
    built.start()
    yield built
    built.stop()


def _ctx(method: str = GET, seconds: float | None = 5.0, **extra: str) -> CallContext:
    deadline = None if seconds is None else time.monotonic() + seconds
    return CallContext(
        method=method, exchange_id="ex-1", client="KH/GOV/MOH/nhis", deadline=deadline, **extra
    )


def _get(plate: str) -> bytes:
    return vehicles_pb2.GetVehicleRequest(plate=plate).SerializeToString()


def _owner(owner: str) -> bytes:
    return vehicles_pb2.ListVehiclesByOwnerRequest(owner_id=owner).SerializeToString()


# ---------------------------------------------------------------- calls


def test_methods_and_descriptor_come_from_the_module(adapter: GrpcPassthroughAdapter) -> None:
    assert adapter.methods() == {GET: MethodKind.UNARY, LIST: MethodKind.SERVER_STREAMING}
    assert [s.full_name for s in adapter.services()] == [SERVICE]
    assert adapter.health().ok


def test_unary_answer_is_the_internal_services(adapter: GrpcPassthroughAdapter) -> None:
    answer = adapter.unary(_ctx(), _get(demo_data.SAMPLE_PLATE))
    assert answer == mpwt_servicer.VEHICLES[demo_data.SAMPLE_PLATE].SerializeToString()


def test_bytes_pass_untouched_both_ways(adapter: GrpcPassthroughAdapter) -> None:
    assert adapter.unary(_ctx(), _get("RAW")) == ODD_BYTES


def test_stream_relays_every_message_in_order(adapter: GrpcPassthroughAdapter) -> None:
    messages = list(adapter.stream(_ctx(LIST), _owner("MANY:250")))
    plates = [vehicles_pb2.Vehicle.FromString(m).plate for m in messages]
    assert plates == [f"M-{i:05d}" for i in range(250)]


def test_caller_facts_reach_the_internal_service(adapter: GrpcPassthroughAdapter) -> None:
    ctx = _ctx(user="nurse-17", purpose="case 2024/118")
    vehicle = vehicles_pb2.Vehicle.FromString(adapter.unary(ctx, _get("WHO")))
    assert (vehicle.owner_id, vehicle.make, vehicle.model, vehicle.colour) == (
        "KH/GOV/MOH/nhis",
        "nurse-17",
        "case 2024/118",
        "ex-1",
    )
    # A value gRPC cannot carry as a plain header stays out rather than failing the call.
    vehicle = vehicles_pb2.Vehicle.FromString(adapter.unary(_ctx(user="Sokhá"), _get("WHO")))
    assert vehicle.make == ""
    assert vehicle.owner_id == "KH/GOV/MOH/nhis"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("plate", "error", "message"),
    [
        ("2Z-0000", NotFound, "no vehicle with plate 2Z-0000"),
        ("", InvalidArgument, "plate is required"),
        ("SECRET-1", PermissionDenied, "this plate is classified"),
    ],
)
def test_refusals_of_the_internal_service_pass_with_its_message(
    adapter: GrpcPassthroughAdapter, plate: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        adapter.unary(_ctx(), _get(plate))
    assert type(caught.value) is error
    assert str(caught.value) == message


@pytest.mark.parametrize("plate", ["CRASH", "UNAUTH"])
def test_other_statuses_are_internal_without_internal_details(
    adapter: GrpcPassthroughAdapter, plate: str
) -> None:
    with pytest.raises(Internal) as caught:
        adapter.unary(_ctx(), _get(plate))
    assert str(caught.value) == (
        f"the internal service behind {SERVICE} failed; its operator can find exchange ex-1"
        " in the log"
    )


def test_internal_unavailable_hides_its_words(adapter: GrpcPassthroughAdapter) -> None:
    with pytest.raises(Unavailable) as caught:
        adapter.unary(_ctx(), _get("BUSY"))
    assert str(caught.value) == f"the internal service behind {SERVICE} is unavailable"
    assert mpwt_servicer.SECRET not in str(caught.value)


def test_stream_failing_midway_delivers_then_raises(adapter: GrpcPassthroughAdapter) -> None:
    stream = adapter.stream(_ctx(LIST), _owner("FAILMID"))
    first = next(stream)
    assert vehicles_pb2.Vehicle.FromString(first).plate == demo_data.SAMPLE_PLATE
    with pytest.raises(Unavailable):
        next(stream)


def test_stream_crash_is_internal(adapter: GrpcPassthroughAdapter) -> None:
    stream = adapter.stream(_ctx(LIST), _owner("CRASH"))
    next(stream)
    with pytest.raises(Internal) as caught:
        next(stream)
    assert mpwt_servicer.SECRET not in str(caught.value)


def test_caller_deadline_bounds_the_internal_call(adapter: GrpcPassthroughAdapter) -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        adapter.unary(_ctx(seconds=0.3), _get("SLOW"))
    assert time.monotonic() - started < 2.0  # the internal service would take 0.6 s or more


def test_past_deadline_is_not_forwarded(adapter: GrpcPassthroughAdapter) -> None:
    with pytest.raises(DeadlineExceeded, match=r"before .* was forwarded"):
        adapter.unary(_ctx(seconds=-1), _get(demo_data.SAMPLE_PLATE))
    with pytest.raises(DeadlineExceeded):
        adapter.stream(_ctx(LIST, seconds=-1), _owner(mpwt_servicer.OWNER))


def test_closing_a_stream_cancels_the_internal_call(adapter: GrpcPassthroughAdapter) -> None:
    stream = adapter.stream(_ctx(LIST, seconds=30), _owner("ENDLESS"))
    assert [next(stream) for _ in range(3)]
    stream.close()  # type: ignore[attr-defined]
    assert mpwt_servicer.STREAM_CLOSED.wait(5)


def test_wrong_method_or_shape(adapter: GrpcPassthroughAdapter) -> None:
    with pytest.raises(NotFound, match=r"is not served by vehicles\.v1\.VehicleRegistry"):
        adapter.unary(_ctx("/vehicles.v1.VehicleRegistry/Delete"), b"")
    with pytest.raises(Internal, match="is server_streaming, not unary"):
        adapter.unary(_ctx(LIST), b"")


def test_internal_service_down_then_back(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    server = _serve(address, None)
    adapter = GrpcPassthroughAdapter(parse_passthrough(_spec(address), tmp_path, "adapter"))
    adapter.start()
    try:
        assert adapter.unary(_ctx(), _get(demo_data.SAMPLE_PLATE))
        server.stop(None).wait()
        with pytest.raises(Unavailable) as caught:
            adapter.unary(_ctx(), _get(demo_data.SAMPLE_PLATE))
        assert "127.0.0.1" not in str(caught.value)
        assert not adapter.health().ok
        server = _serve(address, None)  # the same channel reconnects by itself, soon
        recovered = time.monotonic() + 10
        while not adapter.health().ok:
            assert time.monotonic() < recovered, "no reconnection within 10 s"
        assert adapter.unary(_ctx(), _get(demo_data.SAMPLE_PLATE))
    finally:
        adapter.stop()
        server.stop(None)
    with pytest.raises(Unavailable, match="not serving"):
        adapter.unary(_ctx(), _get(demo_data.SAMPLE_PLATE))


def test_start_refuses_an_unreachable_service(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    config = parse_passthrough(_spec(address), tmp_path, "ss.yaml: provider.services[0].adapter")
    adapter = GrpcPassthroughAdapter(config, connect_seconds=0.3)
    with pytest.raises(Unavailable) as caught:
        adapter.start()
    assert str(caught.value).startswith(
        f"ss.yaml: provider.services[0].adapter.target: the internal service at {address}"
        " did not accept a connection within 0.3 s"
    )
    assert not adapter.health().ok


# ---------------------------------------------------------------- TLS


def test_mutual_tls_to_the_internal_service(ca: Pki, mtls: str) -> None:
    tls = {"ca": "ca.crt", "certificate": "spean.crt", "key": "spean.key"}
    adapter = load_adapter(_spec(mtls, tls=tls), ca.folder)
    adapter.start()
    try:
        answer = adapter.unary(_ctx(), _get(demo_data.SAMPLE_PLATE))
        assert vehicles_pb2.Vehicle.FromString(answer).plate == demo_data.SAMPLE_PLATE
        assert list(adapter.stream(_ctx(LIST), _owner(mpwt_servicer.OWNER)))
    finally:
        adapter.stop()


def test_tls_checks_the_server_name(ca: Pki, mtls: str) -> None:
    """The certificate names 127.0.0.1 and internal.mpwt.gov.kh.spean; any other name fails."""
    base = {"ca": "ca.crt", "certificate": "spean.crt", "key": "spean.key"}
    good = load_adapter(
        _spec(mtls, tls=base | {"server_name": "internal.mpwt.gov.kh.spean"}), ca.folder
    )
    good.start()
    good.stop()
    bad = GrpcPassthroughAdapter(
        parse_passthrough(_spec(mtls, tls=base | {"server_name": "x.example"}), ca.folder, "a"),
        connect_seconds=0.5,
    )
    with pytest.raises(Unavailable, match="TLS refused"):
        bad.start()


def test_tls_without_client_certificate_is_refused_by_a_mtls_service(ca: Pki, mtls: str) -> None:
    adapter = GrpcPassthroughAdapter(
        parse_passthrough(_spec(mtls, tls={"ca": "ca.crt"}), ca.folder, "a"), connect_seconds=0.5
    )
    try:
        adapter.start()
    except Unavailable:
        return  # refused at the handshake
    try:  # TLS 1.3 may only notice the missing certificate at the first call
        with pytest.raises(Unavailable):
            adapter.unary(_ctx(), _get(demo_data.SAMPLE_PLATE))
    finally:
        adapter.stop()


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"target": None}, "a.target: required, a non-empty string"),
        ({"target": "no-port"}, "a.target: 'no-port' must be host:port"),
        ({"target": "h:99999"}, "a.target: 'h:99999' must be host:port"),
        ({"descriptor": "nope.v1.nope_pb2"}, "a.descriptor: cannot import Python module"),
        (
            {"descriptor": "spean.gateway.errors"},
            "a.descriptor: spean.gateway.errors is not a generated",
        ),
        ({"service": "vehicles.v1.Nope"}, "a.service: 'vehicles.v1.Nope' is not defined in"),
        ({"timeout": 3}, "a: unknown key 'timeout' for a grpc adapter; allowed: descriptor,"),
        ({"tls": "yes"}, "a.tls: must be a mapping with at least 'ca'"),
        ({"tls": {}}, "a.tls.ca: required, the CA certificate"),
        ({"tls": {"ca": "absent.crt"}}, "a.tls.ca: cannot read "),
        ({"tls": {"ca": "ca.crt", "key": "spean.key"}}, "a.tls.certificate: a client certificate"),
        ({"tls": {"ca": "spean.key", "cafile": "x"}}, "a.tls: unknown key 'cafile'"),
        ({"tls": {"ca": "notpem.txt"}}, "a.tls.ca: the file is not PEM"),
        ({"python_path": "absent"}, "a.python_path: "),
    ],
)
def test_configuration_mistakes_name_the_field(
    ca: Pki, change: dict[str, object], message: str
) -> None:
    spec = {k: v for k, v in (_spec("127.0.0.1:1") | change).items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        load_adapter(spec, ca.folder, where="a")
    assert caught.value.message.startswith(message)
