"""A security server's publish/subscribe on reload: access rules swap, the store does not."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import pytest
import yaml

from spean.gateway.demo.ministries import MOH, MOI, MPWT, NHIS, VEHICLES
from spean.gateway.errors import ConfigError
from spean.gateway.metadata import CLIENT
from spean.v1 import pubsub_pb2 as pb
from spean.v1 import pubsub_pb2_grpc as pb_grpc
from tests.support.events import TOPIC, Subscriber, consumer_channel, event_federation, publish
from tests.support.world import running


def _edit(path: Path, change: object) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(document)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def test_withdrawing_a_grant_on_reload_stops_delivery_to_that_subscriber(
    tmp_path: Path,
) -> None:
    federation = event_federation(tmp_path / "federation")
    with running(federation) as world:
        moi = world.server(MOI)
        assert moi.pubsub is not None
        channel = consumer_channel(federation, MOI)
        publish(channel, 1)
        Subscriber(federation.consumer_addresses[MOH], NHIS).take(1)
        Subscriber(federation.consumer_addresses[MPWT], VEHICLES).take(1)
        deadline = time.monotonic() + 20
        while min(c.acked for c in moi.pubsub.store.cursors()) < 1:
            assert time.monotonic() < deadline, "event 1 was not acknowledged by both"
            time.sleep(0.05)

        def only_nhis(document: dict) -> None:  # type: ignore[type-arg]
            document["pubsub"]["access"] = [
                rule for rule in document["pubsub"]["access"] if rule["client"] == NHIS
            ]

        _edit(federation.configs[MOI], only_nhis)
        moi.reload()
        second = publish(channel, 2)
        assert Subscriber(federation.consumer_addresses[MOH], NHIS).take(1)[0].event_id == (
            second.event_id
        )
        time.sleep(0.5)  # several delivery rounds
        cursors = {str(c.subscriber): c for c in moi.pubsub.store.cursors()}
        assert cursors[NHIS].acked == 2
        assert cursors[VEHICLES].acked == 1  # kept where it stood, not advanced

        _edit(federation.configs[MOI], lambda d: d["pubsub"].update(store="state/other.db"))
        with pytest.raises(ConfigError, match=r"pubsub\.store changed"):
            moi.reload()


def test_stopping_ends_open_subscribe_streams_instead_of_waiting_out_the_grace(
    tmp_path: Path,
) -> None:
    federation = event_federation(tmp_path / "federation")
    with running(federation) as world:
        channel = grpc.insecure_channel(federation.consumer_addresses[MOH])
        stream = pb_grpc.SubscriberStub(channel).Subscribe(
            pb.SubscribeRequest(topic=TOPIC), metadata=((CLIENT, NHIS),), timeout=60
        )
        ended: list[grpc.StatusCode] = []

        def read() -> None:
            try:
                for _ in stream:
                    pass
            except grpc.RpcError as error:
                ended.append(error.code())  # type: ignore[attr-defined]

        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(0.5)  # the stream is open and waiting for events
        started = time.monotonic()
        world.server(MOH).stop(grace=30)
        federation.servers.pop(MOH)
        reader.join(10)
        assert time.monotonic() - started < 15
        assert ended == [grpc.StatusCode.UNAVAILABLE]
        channel.close()
