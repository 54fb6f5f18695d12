"""A change through the management API reaches every worker of ``--workers 2``, unrestarted.

MPWT runs as ``spean server run --workers 2`` (a real subprocess: a supervisor
and two spawned workers sharing the provider port); worker 0 serves the
management API. A revocation through the API is applied by worker 0, which
asks the supervisor to reload the others: both workers log the reload, and
MoH's calls, whichever worker their connection reached, are refused; the grant
brings them back.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import grpc
import pytest
import yaml

from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import GET_VEHICLE, MOH, MPWT, NHIS, VEHICLES, build_demo
from spean.gateway.web.roles import Role
from tests.support.exchanges import get_vehicle
from tests.support.management import Admin, enable_management
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _change(admin: Admin, action: str) -> None:
    with admin.client(admin.keys[Role.SYSTEM_ADMINISTRATOR]) as client:
        etag = client.get("/access").headers["etag"]
        answer = client.post(
            f"/access/{action}",
            headers={"If-Match": etag},
            json={"client": NHIS, "service": VEHICLES, "methods": [GET_VEHICLE]},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["changed"] is True


def _reloaded(mpwt: ServerProcess, times: int) -> set[str]:
    """The workers that logged a reload, once two of them have logged `times` each."""
    deadline = time.monotonic() + 30
    while True:
        events = mpwt.events("server.reloaded")
        counts: dict[str, int] = {}
        for event in events:
            counts[str(event["origin"])] = counts.get(str(event["origin"]), 0) + 1
        if len(counts) == 2 and min(counts.values()) >= times:
            return set(counts)
        assert time.monotonic() < deadline, events
        time.sleep(0.1)


def _calls_through_a_new_moh(federation: Federation, n: int) -> set[grpc.StatusCode]:
    """MoH restarted, so its connection to MPWT is new: either worker may take it."""
    federation.servers[MOH].stop(0)
    federation.start(MOH)
    codes = set()
    for _ in range(n):
        with grpc.insecure_channel(federation.consumer_addresses[MOH]) as channel:
            codes.add(get_vehicle(channel).code)
    return codes


def test_an_api_change_is_applied_by_every_worker(tmp_path: Path) -> None:
    federation = build_demo(tmp_path / "federation")
    config = federation.configs[MPWT]
    admin = enable_management(config)
    document = yaml.safe_load(config.read_text())
    admin.port = _free_port()
    document["management"]["listen"] = f"127.0.0.1:{admin.port}"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    workers = {f"{document['server_id']}#w0", f"{document['server_id']}#w1"}
    mpwt = ServerProcess(config, tmp_path / "mpwt.log", workers=2)
    try:
        mpwt.wait_for("server.workers_ready")
        mpwt.wait_for("management.listening")
        federation.start(MOH)
        assert _calls_through_a_new_moh(federation, 3) == {grpc.StatusCode.OK}

        _change(admin, "revocations")
        assert _reloaded(mpwt, 1) == workers
        assert _calls_through_a_new_moh(federation, 4) == {grpc.StatusCode.PERMISSION_DENIED}
        assert _calls_through_a_new_moh(federation, 4) == {grpc.StatusCode.PERMISSION_DENIED}

        _change(admin, "grants")
        assert _reloaded(mpwt, 2) == workers
        assert _calls_through_a_new_moh(federation, 4) == {grpc.StatusCode.OK}
    finally:
        federation.stop_all()
        mpwt.kill()
