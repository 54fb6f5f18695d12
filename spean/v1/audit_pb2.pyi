from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuditRecord(_message.Message):
    __slots__ = ("exchange_id", "side", "origin", "client", "service", "method", "user", "purpose", "received_at_ns", "forwarded_at_ns", "answered_at_ns", "status", "message", "request_sha256", "request_size", "response_sha256", "response_size", "response_messages", "request_token", "response_token", "peer_certificate_sha256", "latency_us", "witnessed_checkpoint", "kind", "topic", "event_id", "sequence", "event_token", "ack_token", "subject_pseudonym")
    class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SIDE_UNSPECIFIED: _ClassVar[AuditRecord.Side]
        CONSUMER: _ClassVar[AuditRecord.Side]
        PROVIDER: _ClassVar[AuditRecord.Side]
    SIDE_UNSPECIFIED: AuditRecord.Side
    CONSUMER: AuditRecord.Side
    PROVIDER: AuditRecord.Side
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        EXCHANGE: _ClassVar[AuditRecord.Kind]
        EVENT_PUBLISH: _ClassVar[AuditRecord.Kind]
        EVENT_DELIVERY: _ClassVar[AuditRecord.Kind]
        EVENT_ACK: _ClassVar[AuditRecord.Kind]
    EXCHANGE: AuditRecord.Kind
    EVENT_PUBLISH: AuditRecord.Kind
    EVENT_DELIVERY: AuditRecord.Kind
    EVENT_ACK: AuditRecord.Kind
    EXCHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    FORWARDED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_SHA256_FIELD_NUMBER: _ClassVar[int]
    REQUEST_SIZE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_SHA256_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_SIZE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PEER_CERTIFICATE_SHA256_FIELD_NUMBER: _ClassVar[int]
    LATENCY_US_FIELD_NUMBER: _ClassVar[int]
    WITNESSED_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_PSEUDONYM_FIELD_NUMBER: _ClassVar[int]
    exchange_id: str
    side: AuditRecord.Side
    origin: str
    client: str
    service: str
    method: str
    user: str
    purpose: str
    received_at_ns: int
    forwarded_at_ns: int
    answered_at_ns: int
    status: str
    message: str
    request_sha256: bytes
    request_size: int
    response_sha256: bytes
    response_size: int
    response_messages: int
    request_token: str
    response_token: str
    peer_certificate_sha256: str
    latency_us: int
    witnessed_checkpoint: bytes
    kind: AuditRecord.Kind
    topic: str
    event_id: str
    sequence: int
    event_token: str
    ack_token: str
    subject_pseudonym: bytes
    def __init__(self, exchange_id: _Optional[str] = ..., side: _Optional[_Union[AuditRecord.Side, str]] = ..., origin: _Optional[str] = ..., client: _Optional[str] = ..., service: _Optional[str] = ..., method: _Optional[str] = ..., user: _Optional[str] = ..., purpose: _Optional[str] = ..., received_at_ns: _Optional[int] = ..., forwarded_at_ns: _Optional[int] = ..., answered_at_ns: _Optional[int] = ..., status: _Optional[str] = ..., message: _Optional[str] = ..., request_sha256: _Optional[bytes] = ..., request_size: _Optional[int] = ..., response_sha256: _Optional[bytes] = ..., response_size: _Optional[int] = ..., response_messages: _Optional[int] = ..., request_token: _Optional[str] = ..., response_token: _Optional[str] = ..., peer_certificate_sha256: _Optional[str] = ..., latency_us: _Optional[int] = ..., witnessed_checkpoint: _Optional[bytes] = ..., kind: _Optional[_Union[AuditRecord.Kind, str]] = ..., topic: _Optional[str] = ..., event_id: _Optional[str] = ..., sequence: _Optional[int] = ..., event_token: _Optional[str] = ..., ack_token: _Optional[str] = ..., subject_pseudonym: _Optional[bytes] = ...) -> None: ...
