from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class PublishRequest(_message.Message):
    __slots__ = ("topic", "event_id", "payload")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    topic: str
    event_id: str
    payload: bytes
    def __init__(self, topic: _Optional[str] = ..., event_id: _Optional[str] = ..., payload: _Optional[bytes] = ...) -> None: ...

class PublishResponse(_message.Message):
    __slots__ = ("event_id", "sequence", "duplicate")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    sequence: int
    duplicate: bool
    def __init__(self, event_id: _Optional[str] = ..., sequence: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class DeliverRequest(_message.Message):
    __slots__ = ("event_token", "payload")
    EVENT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    event_token: str
    payload: bytes
    def __init__(self, event_token: _Optional[str] = ..., payload: _Optional[bytes] = ...) -> None: ...

class DeliverResponse(_message.Message):
    __slots__ = ("ack_token", "duplicate")
    ACK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    ack_token: str
    duplicate: bool
    def __init__(self, ack_token: _Optional[str] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("topic",)
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    topic: str
    def __init__(self, topic: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("position", "event_id", "topic", "sequence", "published_at_ns", "event_type", "payload", "event_sha256")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    EVENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    position: int
    event_id: str
    topic: str
    sequence: int
    published_at_ns: int
    event_type: str
    payload: bytes
    event_sha256: bytes
    def __init__(self, position: _Optional[int] = ..., event_id: _Optional[str] = ..., topic: _Optional[str] = ..., sequence: _Optional[int] = ..., published_at_ns: _Optional[int] = ..., event_type: _Optional[str] = ..., payload: _Optional[bytes] = ..., event_sha256: _Optional[bytes] = ...) -> None: ...

class AckRequest(_message.Message):
    __slots__ = ("topic", "position")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    topic: str
    position: int
    def __init__(self, topic: _Optional[str] = ..., position: _Optional[int] = ...) -> None: ...

class AckResponse(_message.Message):
    __slots__ = ("acked_position",)
    ACKED_POSITION_FIELD_NUMBER: _ClassVar[int]
    acked_position: int
    def __init__(self, acked_position: _Optional[int] = ...) -> None: ...
