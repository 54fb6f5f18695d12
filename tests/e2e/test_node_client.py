"""A Node application calls through a consumer endpoint, like the Python one does.

tests/e2e/node/client.js uses nothing Spean-specific: @grpc/grpc-js, the
service's own .proto (read with @grpc/proto-loader) and the two Spean
headers. It makes a unary call, a server-streaming call and one that is
refused; each answer must match what a Python client gets, carry the
``spean-exchange-id`` trailer, and be in MoH's audit log.

The npm packages are installed once per package.json into a cache folder
(``$XDG_CACHE_HOME/spean-tests/node-<digest>``, or ``$SPEAN_NODE_MODULES_CACHE``)
and reused. Without node and npm, or without a reachable npm registry, the
test is skipped and says why.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import grpc
import pytest

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.ministries import GET_VEHICLE, LIST_VEHICLES, MOH, NHIS, VEHICLES, call
from tests.support.world import World

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent / "node"
REPO = Path(__file__).resolve().parents[2]
INSTALL_SECONDS = 120  # a cold install; a cached one takes no time
NPM_OPTIONS = (
    "--no-audit",
    "--no-fund",
    "--no-package-lock",
    "--loglevel=error",
    "--fetch-retries=1",
    "--fetch-timeout=15000",
    "--fetch-retry-mintimeout=1000",
    "--fetch-retry-maxtimeout=2000",
)


def _cache_root() -> Path:
    explicit = os.environ.get("SPEAN_NODE_MODULES_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "spean-tests"


def node_modules() -> Path:
    """The installed packages of tests/e2e/node/package.json, or a skip with the reason."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed")
    manifest = (HERE / "package.json").read_bytes()
    target = _cache_root() / f"node-{hashlib.sha256(manifest).hexdigest()[:16]}"
    if (target / "node_modules" / "@grpc" / "grpc-js").is_dir():
        return target / "node_modules"
    target.parent.mkdir(parents=True, exist_ok=True)
    # Install beside the cache, then move into place: a failed or interrupted
    # install never leaves a half-filled cache behind.
    staging = Path(tempfile.mkdtemp(prefix="node-", dir=target.parent))
    try:
        (staging / "package.json").write_bytes(manifest)
        try:
            subprocess.run(
                [npm, "install", *NPM_OPTIONS],
                cwd=staging,
                capture_output=True,
                text=True,
                timeout=INSTALL_SECONDS,
                check=True,
            )
        except subprocess.TimeoutExpired:
            pytest.skip(
                f"npm install did not finish in {INSTALL_SECONDS} s (registry unreachable?)"
            )
        except subprocess.CalledProcessError as exc:
            lines = (exc.stderr or exc.stdout or "").strip().splitlines()
            reason = [line for line in lines if "complete log" not in line][:2] or [str(exc)]
            pytest.skip(f"npm install failed (registry unreachable?): {' / '.join(reason)}")
        try:
            staging.rename(target)
        except OSError:
            if not (target / "node_modules").is_dir():  # not another run's install winning
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / "node_modules"


def run_node_client(world: World) -> dict[str, Any]:
    modules = node_modules()
    completed = subprocess.run(
        [
            "node",
            str(HERE / "client.js"),
            world.federation.consumer_addresses[MOH],
            str(REPO / "protos"),
            NHIS,
            VEHICLES,
            demo_data.SAMPLE_PLATE,
            demo_data.SAMPLE_OWNER_WITH_VEHICLES,
        ],
        env={**os.environ, "NODE_PATH": str(modules)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    answer: dict[str, Any] = json.loads(completed.stdout)
    return answer


def test_a_node_client_makes_the_same_calls(world: World) -> None:
    answer = run_node_client(world)

    # Unary: the same vehicle a Python client receives.
    with world.consumer_channel() as channel:
        request = vehicles_pb2.GetVehicleRequest(plate=demo_data.SAMPLE_PLATE)
        messages, _, code, _ = call(channel, GET_VEHICLE, VEHICLES, request, vehicles_pb2.Vehicle)
    assert code is grpc.StatusCode.OK
    [python_vehicle] = messages
    assert isinstance(python_vehicle, vehicles_pb2.Vehicle)
    unary = answer["unary"]
    assert unary["code"] == grpc.StatusCode.OK.value[0], unary["details"]
    vehicle = unary["vehicle"]
    assert vehicle["plate"] == python_vehicle.plate == demo_data.SAMPLE_PLATE
    for field in ("make", "model", "owner_id", "colour"):
        assert vehicle[field] == getattr(python_vehicle, field)
    assert vehicle["year"] == python_vehicle.year
    assert world.record(MOH, unary["exchangeId"]).status == "OK"

    # Server streaming: every vehicle of the owner, one message each.
    stream = answer["stream"]
    assert stream["code"] == grpc.StatusCode.OK.value[0], stream["details"]
    assert sorted(stream["plates"]) == sorted(demo_data.SAMPLE_OWNER_PLATES)
    record = world.record(MOH, stream["exchangeId"])
    assert record.method == LIST_VEHICLES

    # A refusal reaches Node with its status, its reason and the exchange id.
    refused = answer["refused"]
    assert refused["code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert "is not in the federation" in refused["details"]
    record = world.record(MOH, refused["exchangeId"])
    assert (record.status, record.message) == ("NOT_FOUND", refused["details"])
