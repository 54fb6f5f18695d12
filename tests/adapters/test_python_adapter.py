"""The Python adapter running an IT team's servicer class in-process."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from spean.adapters import (
    CallContext,
    ConfigError,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    MethodKind,
    NotFound,
    PermissionDenied,
    Unavailable,
    load_adapter,
)
from spean.adapters.python_adapter import PythonAdapter, ServicerContext
from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.demo import data as demo_data
from tests.support import mpwt_servicer

GET = "/vehicles.v1.VehicleRegistry/GetVehicle"
LIST = "/vehicles.v1.VehicleRegistry/ListVehiclesByOwner"
SPEC = {
    "type": "python",
    "servicer": "tests.support.mpwt_servicer:VehicleRegistry",
    "descriptor": "spean.demo.vehicles.v1.vehicles_pb2",
    "service": "vehicles.v1.VehicleRegistry",
}


@pytest.fixture(scope="module")
def adapter() -> Iterator[PythonAdapter]:
    built = load_adapter(SPEC, Path("."))
    assert isinstance(built, PythonAdapter)
    built.start()
    yield built
    built.stop()


def _ctx(method: str = GET, seconds: float | None = 5.0, **extra: str) -> CallContext:
    deadline = None if seconds is None else time.monotonic() + seconds
    return CallContext(
        method=method, exchange_id="ex-7", client="KH/GOV/MOH/nhis", deadline=deadline, **extra
    )


def _get(plate: str) -> bytes:
    return vehicles_pb2.GetVehicleRequest(plate=plate).SerializeToString()


def _owner(owner: str) -> bytes:
    return vehicles_pb2.ListVehiclesByOwnerRequest(owner_id=owner).SerializeToString()


def test_unary_and_stream(adapter: PythonAdapter) -> None:
    assert adapter.methods() == {GET: MethodKind.UNARY, LIST: MethodKind.SERVER_STREAMING}
    assert [s.full_name for s in adapter.services()] == ["vehicles.v1.VehicleRegistry"]
    answer = vehicles_pb2.Vehicle.FromString(adapter.unary(_ctx(), _get(demo_data.SAMPLE_PLATE)))
    assert answer == mpwt_servicer.VEHICLES[demo_data.SAMPLE_PLATE]
    plates = [
        vehicles_pb2.Vehicle.FromString(m).plate
        for m in adapter.stream(_ctx(LIST), _owner(mpwt_servicer.OWNER))
    ]
    assert plates == list(demo_data.SAMPLE_OWNER_PLATES)


def test_context_carries_the_callers_facts(adapter: PythonAdapter) -> None:
    ctx = _ctx(user="nurse-17", purpose="case 2024/118")
    vehicle = vehicles_pb2.Vehicle.FromString(adapter.unary(ctx, _get("WHO")))
    assert (vehicle.owner_id, vehicle.make, vehicle.model, vehicle.colour) == (
        "KH/GOV/MOH/nhis",
        "nurse-17",
        "case 2024/118",
        "ex-7",
    )


@pytest.mark.parametrize(
    ("plate", "error", "message"),
    [
        ("2Z-0000", NotFound, "no vehicle with plate 2Z-0000"),  # abort
        ("", InvalidArgument, "plate is required"),
        ("SECRET-1", PermissionDenied, "this plate is classified"),
        ("BUSY", Unavailable, f"registry overloaded; {mpwt_servicer.SECRET}"),
        ("SETCODE", NotFound, "vehicle deregistered"),  # set_code and set_details, then return
    ],
)
def test_statuses_the_servicer_answers(
    adapter: PythonAdapter, plate: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        adapter.unary(_ctx(), _get(plate))
    assert type(caught.value) is error
    assert str(caught.value) == message


def test_unauthenticated_is_not_the_servicers_to_answer(adapter: PythonAdapter) -> None:
    with pytest.raises(Internal) as caught:
        adapter.unary(_ctx(), _get("UNAUTH"))
    assert str(caught.value) == (
        "the provider's service answered UNAUTHENTICATED; its operator can find exchange ex-7"
        " in the log"
    )


def test_an_exception_is_internal_and_logged_with_the_exchange_id(
    adapter: PythonAdapter, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(Internal) as caught:
        adapter.unary(_ctx(), _get("CRASH"))
    assert mpwt_servicer.SECRET not in str(caught.value)
    assert "ex-7" in str(caught.value)
    logged = capsys.readouterr()
    log = logged.out + logged.err
    assert "python.servicer_failed" in log
    assert "exchange_id=ex-7" in log or '"exchange_id": "ex-7"' in log
    assert mpwt_servicer.SECRET in log  # the operator sees the traceback


def test_wrong_response_type_is_internal(adapter: PythonAdapter) -> None:
    with pytest.raises(Internal, match="wrong message type"):
        adapter.unary(_ctx(), _get("WRONGTYPE"))


def test_malformed_request_is_invalid_argument(adapter: PythonAdapter) -> None:
    with pytest.raises(InvalidArgument, match=r"not a valid vehicles\.v1\.GetVehicleRequest"):
        adapter.unary(_ctx(), b"\xff\xff\xff")
    with pytest.raises(InvalidArgument):
        adapter.stream(_ctx(LIST), b"\xff\xff\xff")  # checked before the iterator is returned


def test_stream_errors_midway(adapter: PythonAdapter) -> None:
    stream = adapter.stream(_ctx(LIST), _owner("FAILMID"))
    assert vehicles_pb2.Vehicle.FromString(next(stream)).plate == demo_data.SAMPLE_PLATE
    with pytest.raises(Unavailable, match="registry went away"):
        next(stream)
    crash = adapter.stream(_ctx(LIST), _owner("CRASH"))
    next(crash)
    with pytest.raises(Internal):
        next(crash)


def test_closing_the_stream_closes_the_servicers_generator(adapter: PythonAdapter) -> None:
    stream = adapter.stream(_ctx(LIST, seconds=30), _owner("ENDLESS"))
    assert [next(stream) for _ in range(3)]
    stream.close()  # type: ignore[attr-defined]
    assert mpwt_servicer.STREAM_CLOSED.is_set()  # add_callback ran, and the generator closed


def test_deadline(adapter: PythonAdapter) -> None:
    with pytest.raises(DeadlineExceeded):  # the servicer sleeps past it; its answer is late
        adapter.unary(_ctx(seconds=0.2), _get("SLOW"))
    with pytest.raises(DeadlineExceeded):
        adapter.unary(_ctx(seconds=-1), _get(demo_data.SAMPLE_PLATE))
    stream = adapter.stream(_ctx(LIST, seconds=0.3), _owner("ENDLESS"))
    with pytest.raises(DeadlineExceeded, match="while streaming"):
        for _ in stream:
            pass


def test_servicer_context_alone() -> None:
    context = ServicerContext(_ctx(seconds=None, user="u"))
    assert context.time_remaining() is None
    assert context.peer() == "spean:KH/GOV/MOH/nhis"
    assert context.is_active()
    assert dict(context.invocation_metadata()) == {
        "spean-client": "KH/GOV/MOH/nhis",
        "spean-user": "u",
        "spean-exchange-id": "ex-7",
    }
    with pytest.raises(FailedPrecondition, match="closed today"):
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "closed today")
    assert context.code() is grpc.StatusCode.FAILED_PRECONDITION
    late = ServicerContext(_ctx(seconds=-1))
    assert late.time_remaining() == 0.0
    assert not late.is_active()


def test_stop_closes_the_servicer_and_refuses_calls() -> None:
    adapter = load_adapter(SPEC, Path("."))
    adapter.start()
    servicer = adapter._servicer  # type: ignore[attr-defined]
    adapter.stop()
    assert servicer.closed
    with pytest.raises(Unavailable, match="not started"):
        adapter.unary(_ctx(), _get(demo_data.SAMPLE_PLATE))


def test_only_methods_the_class_implements_are_published(tmp_path: Path) -> None:
    """A servicer beside the configuration, found through python_path."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "half_registry.py").write_text(
        textwrap.dedent(
            """
            from spean.demo.vehicles.v1 import vehicles_pb2, vehicles_pb2_grpc

            class Half(vehicles_pb2_grpc.VehicleRegistryServicer):
                def GetVehicle(self, request, context):
                    return vehicles_pb2.Vehicle(plate=request.plate.upper())

            class Broken(Half):
                def __init__(self):
                    raise OSError("cannot open the registry file")

            class Nothing(vehicles_pb2_grpc.VehicleRegistryServicer):
                pass
            """
        )
    )
    spec = SPEC | {"servicer": "half_registry:Half", "python_path": "lib"}
    adapter = load_adapter(spec, tmp_path)
    assert adapter.methods() == {GET: MethodKind.UNARY}
    adapter.start()
    answer = adapter.unary(_ctx(), _get("2a-1"))
    assert vehicles_pb2.Vehicle.FromString(answer).plate == "2A-1"
    with pytest.raises(NotFound):
        adapter.stream(_ctx(LIST), _owner("x"))

    broken = load_adapter(SPEC | {"servicer": "half_registry:Broken"}, tmp_path, where="w")
    with pytest.raises(ConfigError, match=r"^w\.servicer: half_registry:Broken\(\) failed: "):
        broken.start()
    with pytest.raises(ConfigError, match=r"implements none of the methods"):
        load_adapter(SPEC | {"servicer": "half_registry:Nothing"}, tmp_path, where="w")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"servicer": None}, "a.servicer: required"),
        ({"servicer": "just_a_module"}, "a.servicer: 'just_a_module' must be module:Class"),
        ({"servicer": "no_such_module_x:C"}, "a.servicer: cannot import Python module"),
        ({"servicer": "tests.support.mpwt_servicer:Nope"}, "a.servicer: module tests.support"),
        ({"servicer": "tests.support.mpwt_servicer:OWNER"}, "a.servicer: module tests.support"),
        ({"descriptor": None}, "a.descriptor: required"),
        ({"service": "vehicles.v1.Other"}, "a.service: 'vehicles.v1.Other' is not defined"),
        ({"mapping": "x.yaml"}, "a: unknown key 'mapping' for a python adapter"),
        ({"python_path": ["lib", 3]}, "a.python_path: must be a folder or a list"),
    ],
)
def test_configuration_mistakes_name_the_field(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    spec = {k: v for k, v in (SPEC | change).items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        load_adapter(spec, tmp_path, where="a")
    assert caught.value.message.startswith(message)
