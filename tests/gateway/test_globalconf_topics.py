"""Topics in the signed global configuration: looked up by id, validated when parsed."""

from __future__ import annotations

import pytest

from spean.gateway.errors import InvalidArgument
from spean.gateway.events import TopicId
from spean.gateway.globalconf import GlobalConfiguration
from spean.v1 import config_pb2
from tests.support.conf import NHIS, VEHICLES, PureFederation


@pytest.fixture(scope="module")
def federation() -> PureFederation:
    return PureFederation()


def test_a_published_topic_is_found_with_its_event_type(federation: PureFederation) -> None:
    conf = federation.with_topics("ownership-transferred", "plate-changed")
    info = conf.topic(TopicId(VEHICLES, "ownership-transferred"))
    assert info is not None
    assert info.event_type == "vehicles.v1.OwnershipTransferred"
    assert conf.topic(TopicId(NHIS, "ownership-transferred")) is None
    subsystem = conf.subsystem(VEHICLES)
    assert subsystem is not None
    assert [t.id.name for t in subsystem.topics] == ["ownership-transferred", "plate-changed"]
    # A configuration without topics has none (and a verifier predating them sees none).
    assert federation.conf.topic(TopicId(VEHICLES, "ownership-transferred")) is None


@pytest.mark.parametrize(
    ("name", "event_type", "words"),
    [
        ("Bad Name", "a.B", "topic name 'Bad Name'"),
        ("ok", "NoPackage", "fully qualified protobuf message name"),
    ],
)
def test_a_malformed_topic_is_refused_naming_the_subsystem(
    federation: PureFederation, name: str, event_type: str, words: str
) -> None:
    msg = config_pb2.GlobalConfiguration()
    msg.CopyFrom(federation._msg)
    msg.subsystems[1].topics.add(name=name, event_type=event_type)
    with pytest.raises(InvalidArgument, match=words) as caught:
        GlobalConfiguration.from_proto(msg)
    assert f"subsystem {VEHICLES}" in caught.value.message


def test_a_topic_listed_twice_is_refused(federation: PureFederation) -> None:
    msg = config_pb2.GlobalConfiguration()
    msg.CopyFrom(federation._msg)
    for _ in range(2):
        msg.subsystems[1].topics.add(name="t", event_type="a.B")
    with pytest.raises(InvalidArgument, match="topic t is listed twice"):
        GlobalConfiguration.from_proto(msg)
