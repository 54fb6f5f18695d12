"""The protobuf type of a topic's events, from the descriptors in the global configuration.

A topic is published with its event type (a fully qualified message name)
and the FileDescriptorSet that defines it (`spean authority add-topic`), as a
service is published with its methods. `EventTypes` turns those descriptors
into a message class once per (topic, descriptor bytes) and answers:

- `check`: whether a payload parses as the topic's type, with no field the
  type does not define (a message of another type usually parses as any type,
  with unknown fields; so unknown fields are refused too, at any depth);
- `from_json`: the binary event of a JSON body (protobuf's JSON mapping,
  `google.protobuf.json_format`), for publishers that post JSON;
- `to_json`: the JSON form of a stored event (webhook delivery).

Refusals are `InvalidArgument` naming the topic and the type; a topic
published without descriptors cannot be checked (its payload is accepted as
bytes, and JSON is refused with `FailedPrecondition`).
"""

from __future__ import annotations

import hashlib
import threading

from google.protobuf import json_format, message_factory
from google.protobuf.message import DecodeError, Message

from spean.gateway.errors import FailedPrecondition, InvalidArgument
from spean.gateway.globalconf import TopicInfo
from spean.gateway.server.reflection import build_pool

_CACHE_SIZE = 256


class EventTypes:
    """Message classes of published topics, cached by their descriptors' digest."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._classes: dict[tuple[str, bytes], type[Message]] = {}

    def message_class(self, topic: TopicInfo) -> type[Message] | None:
        """The class of `topic`'s event type; None when it was published without descriptors."""
        if not topic.file_descriptor_set:
            return None
        key = (str(topic.id), hashlib.sha256(topic.file_descriptor_set).digest())
        with self._lock:
            known = self._classes.get(key)
        if known is not None:
            return known
        pool, _ = build_pool(topic.file_descriptor_set, f"topic {topic.id}")
        try:
            descriptor = pool.FindMessageTypeByName(topic.event_type)
        except KeyError:
            raise FailedPrecondition(
                f"topic {topic.id}: the published descriptors do not define {topic.event_type}"
            ) from None
        cls = message_factory.GetMessageClass(descriptor)
        with self._lock:
            if len(self._classes) >= _CACHE_SIZE:
                self._classes.clear()
            self._classes[key] = cls
        return cls

    def check(self, topic: TopicInfo, payload: bytes) -> None:
        """Refuse a payload that is not a message of the topic's event type."""
        cls = self.message_class(topic)
        if cls is None:
            return
        event = cls()
        try:
            event.ParseFromString(payload)
        except DecodeError as exc:
            raise InvalidArgument(
                f"the payload is not a {topic.event_type}, the event type of topic"
                f" {topic.id}: the bytes do not parse as that type ({exc or 'DecodeError'})"
            ) from None
        known = cls()
        known.CopyFrom(event)
        known.DiscardUnknownFields()
        if known.ByteSize() != event.ByteSize():
            raise InvalidArgument(
                f"the payload is not a {topic.event_type}, the event type of topic"
                f" {topic.id}: it holds fields that type does not define (a message of another"
                " type, or of a newer version than the one published in the global"
                " configuration)"
            )

    def from_json(self, topic: TopicInfo, body: bytes) -> bytes:
        """The binary event of a JSON body (protobuf's JSON mapping of the topic's type)."""
        cls = self._required(topic)
        try:
            event = json_format.Parse(body, cls())
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            raise InvalidArgument(
                f"the JSON body is not a {topic.event_type}, the event type of topic"
                f" {topic.id}: {exc}"
            ) from None
        return event.SerializeToString(deterministic=True)

    def to_json(self, topic: TopicInfo, payload: bytes) -> bytes:
        """The JSON form of a stored event of `topic` (protobuf's JSON mapping)."""
        cls = self._required(topic)
        event = cls()
        try:
            event.ParseFromString(payload)
        except DecodeError as exc:
            raise InvalidArgument(
                f"a stored event of topic {topic.id} is not a {topic.event_type}: {exc}"
            ) from None
        return json_format.MessageToJson(event, indent=None, sort_keys=True).encode()

    def _required(self, topic: TopicInfo) -> type[Message]:
        cls = self.message_class(topic)
        if cls is None:
            raise FailedPrecondition(
                f"topic {topic.id} is published without descriptors, so its events have no JSON"
                " form here; send application/x-protobuf, or have the authority publish the"
                " topic with its descriptors"
            )
        return cls
