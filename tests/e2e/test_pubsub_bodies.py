"""Encrypted event bodies: MoI (the publisher) and MoH (a subscriber) keep each event's bytes
sealed to the federation's auditors beside its publish and delivery records
(`pubsub.audit_bodies: encrypted`); MPWT keeps digests only. The auditor decrypts them
and finds the events the signed records digest; verify checks them; replay lists them
as events, never re-sends them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from spean.gateway.audit.bodies import BodiesError, check_bodies, open_for
from spean.gateway.audit.bundle import read_bundle
from spean.gateway.audit.record import AuditRecord, Kind, Side
from spean.gateway.audit.resend import EVENT_NOT_RESENT, TimelineFilter, build_timeline
from spean.gateway.audit.resend import replay as replay_timeline
from spean.gateway.cli import main
from spean.gateway.demo.ministries import MOH, MOI, MPWT, NHIS, VEHICLES
from spean.gateway.files.keyfiles import load_auditor_key
from tests.support.events import (
    Subscriber,
    address_changed,
    consumer_channel,
    event_federation,
    publish,
)
from tests.support.world import running

EVENTS = 3


@dataclasses.dataclass
class Story:
    bundles: dict[str, Path]
    auditor_key: Path


def _encrypt_events(config: Path) -> None:
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    document["pubsub"]["audit_bodies"] = "encrypted"
    config.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    root = tmp_path_factory.mktemp("event-bodies")
    federation = event_federation(root / "federation")
    for member in (MOI, MOH):
        _encrypt_events(federation.configs[member])
    with running(federation) as world:
        moi = consumer_channel(world.federation, MOI)
        for n in range(1, EVENTS + 1):
            publish(moi, n)
        for member, client in ((MOH, NHIS), (MPWT, VEHICLES)):
            subscriber = Subscriber(world.federation.consumer_addresses[member], client)
            assert len(subscriber.take(EVENTS)) == EVENTS
            subscriber.close()
    out = root / "bundles"
    out.mkdir()
    bundles = {}
    for member in (MOI, MOH, MPWT):
        path = out / f"{member.rsplit('/', 1)[-1]}.zip"
        config = str(federation.configs[member])
        assert main(["audit", "export", "--config", config, "--out", str(path)]) == 0
        bundles[member] = path
    return Story(bundles, root / "federation" / "auditor" / "auditor.key")


def _sealed(story: Story, member: str, kind: Kind, side: Side) -> list[tuple[AuditRecord, bytes]]:
    bundle = read_bundle(story.bundles[member])
    sealed = dict(bundle.bodies)
    out = []
    for offset, data in enumerate(bundle.records):
        record = AuditRecord.from_bytes(data)
        if record.kind is kind and record.side is side and record.status == "OK":
            out.append((record, sealed.get(bundle.start + offset, b"")))
    return out


def test_the_publishers_records_hold_each_event_sealed(story: Story) -> None:
    key = load_auditor_key(story.auditor_key)
    published = _sealed(story, MOI, Kind.EVENT_PUBLISH, Side.PROVIDER)
    assert len(published) == EVENTS
    payloads = []
    for record, blob in published:
        assert blob, record.event_id
        bodies = open_for(record, blob, key)
        assert check_bodies(record, bodies) == ""
        payloads.append(bodies.request)
    assert payloads == [address_changed(n) for n in range(1, EVENTS + 1)]


def test_the_subscribers_delivery_records_hold_the_event_it_received(story: Story) -> None:
    key = load_auditor_key(story.auditor_key)
    received = _sealed(story, MOH, Kind.EVENT_DELIVERY, Side.CONSUMER)
    assert len(received) >= EVENTS
    for record, blob in received:
        bodies = open_for(record, blob, key)
        assert check_bodies(record, bodies) == ""
        assert bodies.request in {address_changed(n) for n in range(1, EVENTS + 1)}


def test_a_server_keeping_digests_only_seals_nothing(story: Story) -> None:
    received = _sealed(story, MPWT, Kind.EVENT_DELIVERY, Side.CONSUMER)
    assert len(received) >= EVENTS
    assert all(blob == b"" for _, blob in received)


def test_a_sealed_event_moved_onto_another_record_does_not_open(story: Story) -> None:
    key = load_auditor_key(story.auditor_key)
    (first, blob), (second, _) = _sealed(story, MOI, Kind.EVENT_PUBLISH, Side.PROVIDER)[:2]
    with pytest.raises(BodiesError):
        open_for(second, blob, key)
    assert open_for(first, blob, key).request == address_changed(1)


def test_verify_checks_the_sealed_events_and_replay_does_not_resend_them(story: Story) -> None:
    for member in (MOI, MOH):
        code = main(
            ["audit", "verify", str(story.bundles[member]), "--auditor-key", str(story.auditor_key)]
        )
        assert code == 0, member
    key = load_auditor_key(story.auditor_key)
    timeline = build_timeline(read_bundle(story.bundles[MOI]), key, TimelineFilter())
    events = [e for e in timeline if e.record.kind is Kind.EVENT_PUBLISH and e.bodies is not None]
    assert len(events) == EVENTS
    assert all(e.to_dict()["bodies"] == "decrypted" for e in events)
    results = replay_timeline(None, events, None)  # type: ignore[arg-type]
    assert {r.detail for r in results} == {EVENT_NOT_RESENT}
