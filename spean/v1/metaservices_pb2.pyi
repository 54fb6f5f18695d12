from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListClientsRequest(_message.Message):
    __slots__ = ("member",)
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    member: str
    def __init__(self, member: _Optional[str] = ...) -> None: ...

class ListClientsResponse(_message.Message):
    __slots__ = ("members", "configuration_version")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    CONFIGURATION_VERSION_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[ClientEntry]
    configuration_version: int
    def __init__(self, members: _Optional[_Iterable[_Union[ClientEntry, _Mapping]]] = ..., configuration_version: _Optional[int] = ...) -> None: ...

class ClientEntry(_message.Message):
    __slots__ = ("id", "name", "subsystems")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SUBSYSTEMS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    subsystems: _containers.RepeatedCompositeFieldContainer[SubsystemEntry]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., subsystems: _Optional[_Iterable[_Union[SubsystemEntry, _Mapping]]] = ...) -> None: ...

class SubsystemEntry(_message.Message):
    __slots__ = ("id", "name", "method_count")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    METHOD_COUNT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    method_count: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., method_count: _Optional[int] = ...) -> None: ...

class ListMethodsRequest(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: str
    def __init__(self, service: _Optional[str] = ...) -> None: ...

class ListMethodsResponse(_message.Message):
    __slots__ = ("service", "methods", "configuration_version")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    CONFIGURATION_VERSION_FIELD_NUMBER: _ClassVar[int]
    service: str
    methods: _containers.RepeatedCompositeFieldContainer[MethodEntry]
    configuration_version: int
    def __init__(self, service: _Optional[str] = ..., methods: _Optional[_Iterable[_Union[MethodEntry, _Mapping]]] = ..., configuration_version: _Optional[int] = ...) -> None: ...

class MethodEntry(_message.Message):
    __slots__ = ("path", "server_streaming")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SERVER_STREAMING_FIELD_NUMBER: _ClassVar[int]
    path: str
    server_streaming: bool
    def __init__(self, path: _Optional[str] = ..., server_streaming: _Optional[bool] = ...) -> None: ...

class AllowedMethodsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AllowedMethodsResponse(_message.Message):
    __slots__ = ("service", "client", "methods")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    service: str
    client: str
    methods: _containers.RepeatedCompositeFieldContainer[MethodEntry]
    def __init__(self, service: _Optional[str] = ..., client: _Optional[str] = ..., methods: _Optional[_Iterable[_Union[MethodEntry, _Mapping]]] = ...) -> None: ...

class GetServiceDescriptorsRequest(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: str
    def __init__(self, service: _Optional[str] = ...) -> None: ...

class GetServiceDescriptorsResponse(_message.Message):
    __slots__ = ("service", "file_descriptor_set", "configuration_version")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    FILE_DESCRIPTOR_SET_FIELD_NUMBER: _ClassVar[int]
    CONFIGURATION_VERSION_FIELD_NUMBER: _ClassVar[int]
    service: str
    file_descriptor_set: bytes
    configuration_version: int
    def __init__(self, service: _Optional[str] = ..., file_descriptor_set: _Optional[bytes] = ..., configuration_version: _Optional[int] = ...) -> None: ...
