"""The payload check of a topic's event type, and the webhook signature, on real descriptors."""

from __future__ import annotations

import pytest

from spean.demo.population.v1 import events_pb2
from spean.gateway.errors import FailedPrecondition, InvalidArgument
from spean.gateway.events import TopicId
from spean.gateway.globalconf import TopicInfo
from spean.gateway.server.pubsub_push import signature, signature_valid
from spean.gateway.server.pubsub_types import EventTypes
from spean.gateway.server.reflection import file_descriptor_set

TYPE = "population.v1.CitizenAddressChanged"
TOPIC = TopicInfo(
    TopicId.parse("KH/GOV/MOI/population:citizen-address-changed"),
    TYPE,
    file_descriptor_set(events_pb2.DESCRIPTOR),
)
EVENT = events_pb2.CitizenAddressChanged(id_card_number="KH-000001", province="Phnom Penh")


def test_a_message_of_the_type_passes_and_round_trips_through_json() -> None:
    types = EventTypes()
    types.check(TOPIC, EVENT.SerializeToString())
    text = types.to_json(TOPIC, EVENT.SerializeToString())
    assert b'"idCardNumber":"KH-000001"' in text.replace(b" ", b"")
    assert types.from_json(TOPIC, text) == EVENT.SerializeToString(deterministic=True)
    assert types.message_class(TOPIC) is types.message_class(TOPIC)  # cached


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"\xff\xff", "do not parse"),
        (b"\x4a\x03abc", "fields that type does not define"),  # field 9 is not in the type
    ],
)
def test_bytes_of_another_shape_are_refused_naming_topic_and_type(
    payload: bytes, words: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        EventTypes().check(TOPIC, payload)
    assert f"not a {TYPE}, the event type of topic {TOPIC.id}" in caught.value.message
    assert words in caught.value.message


def test_json_of_another_shape_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        EventTypes().from_json(TOPIC, b'{"colour": "red"}')
    assert "colour" in caught.value.message


def test_a_topic_without_descriptors_is_not_checked_and_has_no_json() -> None:
    bare = TopicInfo(TOPIC.id, TYPE)
    EventTypes().check(bare, b"\xff\xff")
    with pytest.raises(FailedPrecondition):
        EventTypes().from_json(bare, b"{}")


def test_descriptors_that_do_not_define_the_type_are_a_precondition_failure() -> None:
    wrong = TopicInfo(TOPIC.id, "population.v1.NoSuchEvent", TOPIC.file_descriptor_set)
    with pytest.raises(FailedPrecondition) as caught:
        EventTypes().check(wrong, EVENT.SerializeToString())
    assert "do not define population.v1.NoSuchEvent" in caught.value.message


def test_the_signature_is_an_hmac_sha256_of_the_body() -> None:
    secret = b"0123456789abcdef0123"
    header = signature(secret, b"event")
    assert header.startswith("sha256=")
    assert len(header) == len("sha256=") + 64
    assert signature_valid(secret, b"event", header)
    assert not signature_valid(secret, b"event!", header)
    assert not signature_valid(b"another secret 0123", b"event", header)
