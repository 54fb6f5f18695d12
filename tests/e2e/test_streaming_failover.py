"""A provider security server dies in the middle of a stream.

MPWT runs ``ss1`` and ``ss2``, both publishing ``KH/GOV/MPWT/vehicles`` from
the Python servicer below, each as a real subprocess. The first of them to
get the hospital's ListVehiclesByOwner call stops streaming once MoH's
consumer has received N messages, and the story SIGKILLs it there.

- N = 1: MoH holds that one message back (it holds back the last message of
  every answer until the answer verifies), so the hospital has seen nothing.
  MoH fails over to the other server in a new exchange (new id, new request
  token), and the hospital gets that server's whole answer, nothing of the
  dead one's. MoH's log holds both exchanges: the abandoned one UNAVAILABLE,
  naming the exchange that replaced it, then an OK one whose digest covers
  exactly what the hospital got.
- N = 1 with ss1 and ss2 writing one audit store (one SQLite file, two
  origins), so they share replay memory: the dead server had admitted the
  first request token, and the other server would refuse it as a replay.
  The new exchange is admitted: the hospital gets the whole answer.
- N = 2: the first message has reached the hospital. There is no failover:
  the hospital gets UNAVAILABLE, and the other server is never asked.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import grpc
import pytest
import yaml
from structlog.testing import capture_logs

from spean.demo.vehicles.v1 import vehicles_pb2, vehicles_pb2_grpc
from spean.gateway.audit.record import AuditRecord
from spean.gateway.demo.federation import Federation, build_federation
from spean.gateway.demo.ministries import LIST_VEHICLES, MOH, MPWT, NHIS, VEHICLES
from spean.gateway.digests import response_digest
from spean.gateway.metadata import CLIENT, EXCHANGE_ID, REQUEST_TOKEN, SERVICE
from spean.gateway.trust import claimed_exchange_id
from tests.support.audit_logs import verified_records
from tests.support.plans import hospital_and_registry, python_vehicle_registry
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.slow

ANSWER = 4  # messages in a whole answer
SS1, SS2 = f"{MPWT}/ss1", f"{MPWT}/ss2"
AS_NHIS = ((CLIENT, NHIS), (SERVICE, VEHICLES))


class StallingRegistry(vehicles_pb2_grpc.VehicleRegistryServicer):
    """ListVehiclesByOwner, asked with ``owner_id`` = ``"N:FOLDER"``.

    The first server to take a call claims ``FOLDER/stalled`` (a hard link to
    a file holding its process id, so exactly one server wins) and stops once
    the consumer has received N messages: its security server holds back the
    last message it has until the answer is logged, so that is after N + 1
    from here. It then waits to be killed. Any later server streams the whole
    answer. Plates say which kind of server sent them.
    """

    def ListVehiclesByOwner(
        self, request: vehicles_pb2.ListVehiclesByOwnerRequest, context: grpc.ServicerContext
    ) -> Iterator[vehicles_pb2.Vehicle]:
        count, _, name = request.owner_id.partition(":")
        folder = Path(name)
        mine = folder / str(os.getpid())
        mine.write_text(str(os.getpid()), encoding="utf-8")
        try:
            os.link(mine, folder / "stalled")
        except FileExistsError:
            kind, stop_at = "full", ANSWER
        else:
            kind, stop_at = "stalled", int(count) + 1
        for index in range(ANSWER):
            if index == stop_at:
                # Asked for one more: the security server has sent all but the last.
                (folder / "paused").write_text(kind, encoding="utf-8")
                deadline = time.monotonic() + 30.0
                while context.is_active() and time.monotonic() < deadline:
                    time.sleep(0.01)
                return
            yield vehicles_pb2.Vehicle(plate=f"{kind}-{index}")


def consumer_log(federation: Federation) -> list[AuditRecord]:
    """MoH's records, in log order."""
    return [AuditRecord.from_bytes(r.record_bytes) for r in federation.servers[MOH].audit.read()]


def consumer_records(federation: Federation, exchange_id: str) -> list[AuditRecord]:
    """MoH's records of the exchange."""
    return [r for r in consumer_log(federation) if r.exchange_id == exchange_id]


def provider_records(
    federation: Federation, server: str, exchange_id: str, store: Path | None = None
) -> list[AuditRecord]:
    """`server`'s records of the exchange, from its log (in `store`, by default
    its own) verified end to end."""
    if store is None:
        state = federation.configs[MPWT].parent / "state"
        store = state / "audit.db" if server == SS1 else state / "ss2" / "audit.db"
    return [r for r in verified_records(store, f"{server}#w0") if r.exchange_id == exchange_id]


def exchange_id_of(token: str) -> str | None:
    """The exchange id (``jti``) a request token carries, read without verifying it."""
    return claimed_exchange_id([(REQUEST_TOKEN, token)])


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    registry = python_vehicle_registry(f"{__name__}:StallingRegistry", [(LIST_VEHICLES, True)])
    plans = hospital_and_registry(registry, extra_servers=("ss2",))
    built = build_federation(tmp_path_factory.mktemp("streaming-failover"), plans)
    try:
        built.start(MOH)
        yield built
    finally:
        built.stop_all()


def _run(configs: dict[str, Path], logs: Path) -> Iterator[dict[str, ServerProcess]]:
    """The servers of `configs` as fresh subprocesses, killed whatever happens.

    One after another: servers sharing an audit store that does not exist yet
    would race to create it.
    """
    started: dict[str, ServerProcess] = {}
    try:
        for name, config in configs.items():
            started[name] = ServerProcess(config, logs / f"{name[-3:]}.log")
            started[name].wait_for("server.started")
        yield started
    finally:
        for server in started.values():
            server.kill()


@pytest.fixture
def providers(federation: Federation, tmp_path: Path) -> Iterator[dict[str, ServerProcess]]:
    """ss1 and ss2, each with its own audit store."""
    yield from _run({SS1: federation.configs[MPWT], SS2: federation.configs[SS2]}, tmp_path)


def _with_store(config: Path, store: Path) -> Path:
    """A copy of `config` that keeps its audit log in `store`, beside it (relative paths hold)."""
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    document["audit"]["store"] = str(store)
    copy = config.with_name(f"{config.stem}-shared.yaml")
    copy.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return copy


@pytest.fixture
def shared_store(tmp_path: Path) -> Path:
    """One SQLite audit store for ss1 and ss2; its ``.replay`` store comes with it."""
    return tmp_path / "mpwt-shared" / "audit.db"


@pytest.fixture
def sharing_providers(
    federation: Federation, shared_store: Path, tmp_path: Path
) -> Iterator[dict[str, ServerProcess]]:
    """ss1 and ss2 writing one audit store, two origins in it: one replay memory."""
    shared_store.parent.mkdir()
    configs = {
        SS1: _with_store(federation.configs[MPWT], shared_store),
        SS2: _with_store(federation.configs[SS2], shared_store),
    }
    yield from _run(configs, tmp_path)


@pytest.fixture
def channel(federation: Federation) -> Iterator[grpc.Channel]:
    """The hospital application's channel to MoH's consumer endpoint."""
    with grpc.insecure_channel(federation.consumer_addresses[MOH]) as opened:
        yield opened


def _call(channel: grpc.Channel, folder: Path, count: int) -> grpc.Call:
    """The hospital's call, raw bytes in and out, left running (also an iterator)."""
    request = vehicles_pb2.ListVehiclesByOwnerRequest(owner_id=f"{count}:{folder}")
    stream: grpc.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(LIST_VEHICLES)
    return stream(request.SerializeToString(), metadata=AS_NHIS, timeout=20)


def _wait_for(marker: Path) -> None:
    deadline = time.monotonic() + 15.0
    while not marker.exists():
        assert time.monotonic() < deadline, f"{marker.name} never appeared"
        time.sleep(0.01)


def _stalled(folder: Path, providers: dict[str, ServerProcess]) -> str:
    """The server whose servicer stalled, once it has."""
    marker = folder / "stalled"
    _wait_for(marker)
    pid = int(marker.read_text(encoding="utf-8"))
    (server,) = [name for name, p in providers.items() if os.getpgid(pid) == p.pid]
    return server


def _plates(messages: list[bytes]) -> list[str]:
    return [vehicles_pb2.Vehicle.FromString(m).plate for m in messages]


def _fails_over_after_one_message(
    federation: Federation,
    providers: dict[str, ServerProcess],
    channel: grpc.Channel,
    folder: Path,
    shared_store: Path | None = None,
) -> None:
    """The N = 1 story: the hospital gets the surviving server's whole answer, and
    MoH's log holds the abandoned exchange and the one that answered."""
    with capture_logs() as events:
        call = _call(channel, folder, count=1)
        dead = _stalled(folder, providers)
        _wait_for(folder / "paused")
        # The one message left the provider's security server; MoH holds it back.
        time.sleep(0.3)
        providers[dead].kill()  # SIGKILL: the connection breaks, no status, no trailer
        messages = list(cast(Iterator[bytes], call))
    alive = SS2 if dead == SS1 else SS1

    assert call.code() is grpc.StatusCode.OK, call.details()
    # The other server's whole answer, and nothing of the dead one's.
    assert _plates(messages) == [f"full-{i}" for i in range(ANSWER)]
    # The last server found unreachable is the one killed (MoH's log also holds
    # events of earlier tests' servers).
    unreachable = [e["server"] for e in events if e["event"] == "provider.unreachable"]
    assert unreachable[-1:] == [dead]

    # The hospital sees the exchange that answered.
    exchange_id = str(dict(call.trailing_metadata() or ())[EXCHANGE_ID])
    log = consumer_log(federation)
    (mine,) = [r for r in log if r.exchange_id == exchange_id]
    assert mine.status == "OK"
    assert mine.response_messages == ANSWER
    assert mine.response_sha256 == response_digest(messages)
    assert mine.response_size == sum(len(m) for m in messages)
    assert exchange_id_of(mine.request_token) == exchange_id
    # The exchange the dead server broke off: logged before the retry, pointing at it.
    (abandoned,) = [r for r in log if r.message.endswith(f"retried as exchange {exchange_id}")]
    assert log.index(abandoned) < log.index(mine)
    assert abandoned.status == "UNAVAILABLE"
    assert abandoned.message.startswith(f"provider security server {dead} at ")
    # It had sent its first message: the case only holding that message back makes work.
    assert "broke off after its first message" in abandoned.message
    assert abandoned.exchange_id != exchange_id
    assert exchange_id_of(abandoned.request_token) == abandoned.exchange_id
    assert abandoned.forwarded_at_ns
    assert (abandoned.response_messages, abandoned.response_token) == (0, "")
    same = ("client", "service", "method", "user", "purpose", "request_sha256", "request_size")
    assert [getattr(abandoned, f) for f in same] == [getattr(mine, f) for f in same]
    *_, failover = [e for e in events if e["event"] == "provider.failover"]
    assert failover["exchange_id"] == abandoned.exchange_id
    assert failover["retried_as"] == exchange_id
    assert (failover["server"], failover["next_server"]) == (dead, alive)

    (theirs,) = provider_records(federation, alive, exchange_id, shared_store)
    assert theirs.status == "OK"
    assert theirs.response_token == mine.response_token
    assert provider_records(federation, alive, abandoned.exchange_id, shared_store) == []
    # The dead server died before its answer was complete: it logged nothing of it.
    assert provider_records(federation, dead, abandoned.exchange_id, shared_store) == []
    assert provider_records(federation, dead, exchange_id, shared_store) == []


def test_a_stream_broken_after_one_message_fails_over(
    federation: Federation,
    providers: dict[str, ServerProcess],
    channel: grpc.Channel,
    tmp_path: Path,
) -> None:
    _fails_over_after_one_message(federation, providers, channel, tmp_path)


def test_a_failover_is_not_refused_by_replay_memory_the_servers_share(
    federation: Federation,
    sharing_providers: dict[str, ServerProcess],
    shared_store: Path,
    channel: grpc.Channel,
    tmp_path: Path,
) -> None:
    _fails_over_after_one_message(federation, sharing_providers, channel, tmp_path, shared_store)


def test_a_stream_broken_after_two_messages_is_unavailable(
    federation: Federation,
    providers: dict[str, ServerProcess],
    channel: grpc.Channel,
    tmp_path: Path,
) -> None:
    call = _call(channel, tmp_path, count=2)
    dead = _stalled(tmp_path, providers)
    # The first message reaches the hospital when the second reaches MoH.
    first = next(cast(Iterator[bytes], call))
    assert _plates([first]) == ["stalled-0"]
    with capture_logs() as events:
        providers[dead].kill()
        rest: list[bytes] = []
        with pytest.raises(grpc.RpcError):
            rest.extend(cast(Iterator[bytes], call))
    assert rest == []
    assert call.code() is grpc.StatusCode.UNAVAILABLE
    # Too late to fail over, but the dead server is backed off like any unreachable one.
    assert [e["server"] for e in events if e["event"] == "provider.unreachable"] == [dead]

    exchange_id = str(dict(call.trailing_metadata() or ())[EXCHANGE_ID])
    (mine,) = consumer_records(federation, exchange_id)
    assert mine.status == "UNAVAILABLE"
    assert mine.message == call.details()
    # No failover: only the dead server's servicer ever saw the call.
    assert [p.name for p in tmp_path.iterdir() if p.name.isdigit()] == [
        (tmp_path / "stalled").read_text(encoding="utf-8")
    ]
    alive = SS2 if dead == SS1 else SS1
    assert provider_records(federation, alive, exchange_id) == []
