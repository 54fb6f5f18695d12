"""Replay and retention on a running demo federation.

MPWT keeps its bodies sealed to the auditors (`audit_bodies: encrypted`). The
hospital makes a few calls; MPWT's log is exported; the auditor decrypts the
timeline and replays every request through MoH's consumer endpoint: all
answers are the recorded ones. Then a row of MPWT's registry changes, and the
replay names exactly the exchanges whose answers changed.

Retention: `spean audit archive` moves MPWT's checkpointed records to an
archive segment while the server keeps writing; the segment and a later live
export verify as one log (tokens included); a tampered segment does not.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml

from spean.demo.vehicles.v1 import vehicles_pb2
from spean.gateway.audit.bundle import Bundle, read_bundle
from spean.gateway.cli import main
from spean.gateway.demo import data as demo_data
from spean.gateway.demo.federation import Federation
from spean.gateway.demo.ministries import (
    GET_VEHICLE,
    LIST_VEHICLES,
    MOH,
    MPWT,
    VEHICLES,
    build_demo,
    call,
)

OTHER_PLATE = "1B-5678"
AUDITOR = "auditor.kim@audit.example"


@dataclasses.dataclass
class Story:
    federation: Federation
    root: Path
    key: Path
    ids: dict[str, str]  # what was called -> exchange id

    @property
    def consumer(self) -> str:
        return self.federation.consumer_addresses[MOH]

    @property
    def mpwt_config(self) -> Path:
        return self.federation.configs[MPWT]


def configure_mpwt(config: Path) -> None:
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    for service in document["provider"]["services"]:
        service["audit_bodies"] = "encrypted"
    document["audit"]["retention"] = {"max_age_days": 30, "archive_dir": "archive"}
    config.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def traffic(address: str) -> dict[str, str]:
    ids: dict[str, str] = {}
    with grpc.insecure_channel(address) as channel:
        for name, plate, user in (
            ("sample", demo_data.SAMPLE_PLATE, "dr.sokha@hospital.example"),
            ("other", OTHER_PLATE, "dr.sokha@hospital.example"),
            ("sample-again", demo_data.SAMPLE_PLATE, "nurse.chan@hospital.example"),
        ):
            request = vehicles_pb2.GetVehicleRequest(plate=plate)
            _, exchange_id, code, details = call(
                channel, GET_VEHICLE, VEHICLES, request, vehicles_pb2.Vehicle, user=user
            )
            assert code is grpc.StatusCode.OK, details
            ids[name] = exchange_id
        listing = vehicles_pb2.ListVehiclesByOwnerRequest(
            owner_id=demo_data.SAMPLE_OWNER_WITH_VEHICLES
        )
        messages, exchange_id, code, details = call(
            channel, LIST_VEHICLES, VEHICLES, listing, vehicles_pb2.Vehicle, streaming=True
        )
        assert code is grpc.StatusCode.OK, details
        assert len(messages) == len(demo_data.SAMPLE_OWNER_PLATES)
        ids["list"] = exchange_id
    return ids


def export_until(config: Path, out: Path, exchange_ids: set[str]) -> Bundle:
    """Export MPWT's log once a signed checkpoint covers every exchange named.

    The writer checkpoints every second; polling (not sleeping a guess) keeps
    the test independent of the machine's speed.
    """
    deadline = time.monotonic() + 30
    while True:
        assert main(["audit", "export", "--config", str(config), "--out", str(out)]) == 0
        bundle = read_bundle(out)
        found = set()
        for index, _ in bundle.bodies:
            data = bundle.records[index - bundle.start]
            found |= {e for e in exchange_ids if e.encode() in data}
        if exchange_ids <= found:
            return bundle
        assert time.monotonic() < deadline, "no checkpoint covered the exchanges in 30 s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    root = tmp_path_factory.mktemp("replay-federation")
    federation = build_demo(root / "federation")
    configure_mpwt(federation.configs[MPWT])
    with federation.running():
        ids = traffic(federation.consumer_addresses[MOH])
        key = root / "federation" / "auditor" / "auditor.key"
        yield Story(federation, root, key, ids)


def run_json(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, object]:
    capsys.readouterr()
    code = main(args)
    # The servers run in this process and log to stdout too: the document is
    # the JSON that starts on a line of its own.
    text = capsys.readouterr().out
    lines = text.splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if line.rstrip() in ("{", "[", "[]"))
    document, _ = json.JSONDecoder().raw_decode("".join(lines[first:]))
    return code, document


def test_timeline_replay_then_a_changed_row_shows_as_a_differing_exchange(
    story: Story, capsys: pytest.CaptureFixture[str]
) -> None:
    out = story.root / "mpwt.zip"
    export_until(story.mpwt_config, out, set(story.ids.values()))
    base = ["audit", "replay", str(out), "--auditor-key", str(story.key), "--json"]

    # The timeline: decrypted, in receive order, filtered.
    code, timeline = run_json(capsys, base)
    assert code == 0
    assert isinstance(timeline, list)
    ours = [e for e in timeline if e["exchange_id"] in story.ids.values()]
    assert [e["exchange_id"] for e in ours] == list(story.ids.values())
    assert {e["bodies"] for e in ours} == {"decrypted"}
    _, nurse = run_json(capsys, [*base, "--user", "nurse.chan@hospital.example"])
    assert [e["exchange_id"] for e in nurse] == [story.ids["sample-again"]]  # type: ignore[attr-defined]
    _, none = run_json(capsys, [*base, "--since", "2999-01-01T00:00:00Z"])
    assert none == []
    capsys.readouterr()
    assert main(base[:-1]) == 0  # the human table
    table = capsys.readouterr().out
    assert f"{len(timeline)} exchanges" in table
    assert "decrypted" in table

    # Replay against the same federation: every answer is the recorded one.
    against = [*base, "--against", story.consumer, "--client", "KH/GOV/MOH/nhis"]
    code, report = run_json(capsys, against)
    assert isinstance(report, dict)
    assert code == 0, report
    assert report["different"] == 0
    assert report["replayed"] == len(timeline)

    # A row of MPWT's registry changes: the answers that showed it now differ.
    database = story.federation.root / "mpwt" / "mpwt-vehicles.db"
    with sqlite3.connect(database) as conn:
        changed = conn.execute(
            "UPDATE vehicles SET colour = 'green' WHERE plate = ?", (OTHER_PLATE,)
        ).rowcount
    assert changed == 1
    code, report = run_json(capsys, against)
    assert code == 2
    assert isinstance(report, dict)
    differing = {e["exchange_id"] for e in report["exchanges"] if e["outcome"] == "different"}
    assert differing == {story.ids["other"], story.ids["list"]}
    same = {e["exchange_id"] for e in report["exchanges"] if e["outcome"] == "same"}
    assert {story.ids["sample"], story.ids["sample-again"]} <= same


def test_archive_while_serving_then_segment_and_live_export_verify_as_one_log(
    story: Story, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(story.mpwt_config)
    export_until(story.mpwt_config, story.root / "before.zip", set(story.ids.values()))
    # Configured retention (30 days): everything is young, nothing moves.
    code, result = run_json(capsys, ["audit", "archive", "--config", config, "--json"])
    assert (code, result) == (0, {"segments": []})
    # An explicit age of 0 days archives every checkpointed record, server running.
    code, result = run_json(
        capsys, ["audit", "archive", "--config", config, "--older-than", "0", "--json"]
    )
    assert code == 0
    assert isinstance(result, dict)
    (segment,) = result["segments"]
    assert segment["start"] == 0
    assert segment["stop"] >= len(story.ids)
    segment_path = Path(segment["path"])
    assert segment_path.parent.parent == story.federation.root / "mpwt" / "archive"

    fresh = traffic(story.consumer)  # the server writes on after the cut
    live = story.root / "live.zip"
    bundle = export_until(story.mpwt_config, live, set(fresh.values()))
    assert bundle.start == segment["stop"]
    code, report = run_json(
        capsys,
        [
            "audit",
            "verify",
            str(segment_path),
            str(live),
            "--json",
            "--auditor-key",
            str(story.key),
        ],
    )
    assert code == 0, report
    assert isinstance(report, dict)
    assert report["links"] == []
    assert all(b["tokens_verified"] > 0 for b in report["bundles"])
    assert main(["audit", "verify", str(live)]) == 0  # the remainder on its own

    # A segment edited afterwards is caught, at the edited record.
    tampered = story.root / "tampered.zip"
    with zipfile.ZipFile(segment_path) as original, zipfile.ZipFile(tampered, "w") as out:
        for name in original.namelist():
            data = original.read(name)
            if name == "records.bin":
                data = data.replace(b"dr.sokha", b"dr.sokhA", 1)
            out.writestr(name, data)
    code, report = run_json(capsys, ["audit", "verify", str(tampered), str(live), "--json"])
    assert code == 2
    assert isinstance(report, dict)
    first = report["bundles"][0]["first_problem"]
    assert first["check"] == "chain"
    # Bundles that overlap (the same export twice) do not chain either.
    code, report = run_json(capsys, ["audit", "verify", str(live), str(live), "--json"])
    assert code == 2
