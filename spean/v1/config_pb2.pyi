import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CatalogueDataClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CATALOGUE_DATA_CLASS_UNSPECIFIED: _ClassVar[CatalogueDataClass]
    CATALOGUE_DATA_CLASS_PUBLIC: _ClassVar[CatalogueDataClass]
    CATALOGUE_DATA_CLASS_INTERNAL: _ClassVar[CatalogueDataClass]
    CATALOGUE_DATA_CLASS_PERSONAL: _ClassVar[CatalogueDataClass]
CATALOGUE_DATA_CLASS_UNSPECIFIED: CatalogueDataClass
CATALOGUE_DATA_CLASS_PUBLIC: CatalogueDataClass
CATALOGUE_DATA_CLASS_INTERNAL: CatalogueDataClass
CATALOGUE_DATA_CLASS_PERSONAL: CatalogueDataClass

class GlobalConfiguration(_message.Message):
    __slots__ = ("instance", "version", "issued_at", "expires_at", "ca_certificates", "members", "subsystems", "servers", "revoked_serials", "auditor_public_key")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    SUBSYSTEMS_FIELD_NUMBER: _ClassVar[int]
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    REVOKED_SERIALS_FIELD_NUMBER: _ClassVar[int]
    AUDITOR_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    instance: str
    version: int
    issued_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    ca_certificates: _containers.RepeatedScalarFieldContainer[bytes]
    members: _containers.RepeatedCompositeFieldContainer[Member]
    subsystems: _containers.RepeatedCompositeFieldContainer[Subsystem]
    servers: _containers.RepeatedCompositeFieldContainer[SecurityServer]
    revoked_serials: _containers.RepeatedScalarFieldContainer[str]
    auditor_public_key: bytes
    def __init__(self, instance: _Optional[str] = ..., version: _Optional[int] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ca_certificates: _Optional[_Iterable[bytes]] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., subsystems: _Optional[_Iterable[_Union[Subsystem, _Mapping]]] = ..., servers: _Optional[_Iterable[_Union[SecurityServer, _Mapping]]] = ..., revoked_serials: _Optional[_Iterable[str]] = ..., auditor_public_key: _Optional[bytes] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ("id", "name", "signing_certificates")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIGNING_CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    signing_certificates: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., signing_certificates: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Subsystem(_message.Message):
    __slots__ = ("id", "name", "servers", "methods", "file_descriptor_set", "topics", "catalogue")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    FILE_DESCRIPTOR_SET_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    CATALOGUE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    servers: _containers.RepeatedScalarFieldContainer[str]
    methods: _containers.RepeatedCompositeFieldContainer[Method]
    file_descriptor_set: bytes
    topics: _containers.RepeatedCompositeFieldContainer[Topic]
    catalogue: CatalogueEntry
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., servers: _Optional[_Iterable[str]] = ..., methods: _Optional[_Iterable[_Union[Method, _Mapping]]] = ..., file_descriptor_set: _Optional[bytes] = ..., topics: _Optional[_Iterable[_Union[Topic, _Mapping]]] = ..., catalogue: _Optional[_Union[CatalogueEntry, _Mapping]] = ...) -> None: ...

class Topic(_message.Message):
    __slots__ = ("name", "event_type", "file_descriptor_set")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILE_DESCRIPTOR_SET_FIELD_NUMBER: _ClassVar[int]
    name: str
    event_type: str
    file_descriptor_set: bytes
    def __init__(self, name: _Optional[str] = ..., event_type: _Optional[str] = ..., file_descriptor_set: _Optional[bytes] = ...) -> None: ...

class Method(_message.Message):
    __slots__ = ("path", "server_streaming")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SERVER_STREAMING_FIELD_NUMBER: _ClassVar[int]
    path: str
    server_streaming: bool
    def __init__(self, path: _Optional[str] = ..., server_streaming: _Optional[bool] = ...) -> None: ...

class SecurityServer(_message.Message):
    __slots__ = ("id", "address", "tls_certificate_sha256", "tls_certificate", "additional_tls_certificates")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TLS_CERTIFICATE_SHA256_FIELD_NUMBER: _ClassVar[int]
    TLS_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    ADDITIONAL_TLS_CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    tls_certificate_sha256: str
    tls_certificate: bytes
    additional_tls_certificates: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., tls_certificate_sha256: _Optional[str] = ..., tls_certificate: _Optional[bytes] = ..., additional_tls_certificates: _Optional[_Iterable[bytes]] = ...) -> None: ...

class LocalizedText(_message.Message):
    __slots__ = ("en", "km")
    EN_FIELD_NUMBER: _ClassVar[int]
    KM_FIELD_NUMBER: _ClassVar[int]
    en: str
    km: str
    def __init__(self, en: _Optional[str] = ..., km: _Optional[str] = ...) -> None: ...

class CatalogueContact(_message.Message):
    __slots__ = ("name", "email", "telephone", "role")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    TELEPHONE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    email: str
    telephone: str
    role: str
    def __init__(self, name: _Optional[str] = ..., email: _Optional[str] = ..., telephone: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class CatalogueAccess(_message.Message):
    __slots__ = ("client", "methods")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    client: str
    methods: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, client: _Optional[str] = ..., methods: _Optional[_Iterable[str]] = ...) -> None: ...

class CatalogueMethodText(_message.Message):
    __slots__ = ("path", "summary")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    path: str
    summary: LocalizedText
    def __init__(self, path: _Optional[str] = ..., summary: _Optional[_Union[LocalizedText, _Mapping]] = ...) -> None: ...

class CatalogueEntry(_message.Message):
    __slots__ = ("title", "description", "topics", "data_class", "contacts", "terms_of_use", "licence", "legal_basis", "access", "methods", "updated_at", "open_data")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    DATA_CLASS_FIELD_NUMBER: _ClassVar[int]
    CONTACTS_FIELD_NUMBER: _ClassVar[int]
    TERMS_OF_USE_FIELD_NUMBER: _ClassVar[int]
    LICENCE_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    ACCESS_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    OPEN_DATA_FIELD_NUMBER: _ClassVar[int]
    title: LocalizedText
    description: LocalizedText
    topics: _containers.RepeatedScalarFieldContainer[str]
    data_class: CatalogueDataClass
    contacts: _containers.RepeatedCompositeFieldContainer[CatalogueContact]
    terms_of_use: LocalizedText
    licence: str
    legal_basis: LocalizedText
    access: _containers.RepeatedCompositeFieldContainer[CatalogueAccess]
    methods: _containers.RepeatedCompositeFieldContainer[CatalogueMethodText]
    updated_at: _timestamp_pb2.Timestamp
    open_data: _containers.RepeatedCompositeFieldContainer[CatalogueOpenDataset]
    def __init__(self, title: _Optional[_Union[LocalizedText, _Mapping]] = ..., description: _Optional[_Union[LocalizedText, _Mapping]] = ..., topics: _Optional[_Iterable[str]] = ..., data_class: _Optional[_Union[CatalogueDataClass, str]] = ..., contacts: _Optional[_Iterable[_Union[CatalogueContact, _Mapping]]] = ..., terms_of_use: _Optional[_Union[LocalizedText, _Mapping]] = ..., licence: _Optional[str] = ..., legal_basis: _Optional[_Union[LocalizedText, _Mapping]] = ..., access: _Optional[_Iterable[_Union[CatalogueAccess, _Mapping]]] = ..., methods: _Optional[_Iterable[_Union[CatalogueMethodText, _Mapping]]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., open_data: _Optional[_Iterable[_Union[CatalogueOpenDataset, _Mapping]]] = ...) -> None: ...

class CatalogueOpenDataset(_message.Message):
    __slots__ = ("id", "title", "description", "method", "requests", "licence", "frequency", "dropped_fields", "pseudonymised_fields")
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    LICENCE_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    PSEUDONYMISED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: LocalizedText
    description: LocalizedText
    method: str
    requests: _containers.RepeatedScalarFieldContainer[str]
    licence: str
    frequency: str
    dropped_fields: _containers.RepeatedScalarFieldContainer[str]
    pseudonymised_fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., title: _Optional[_Union[LocalizedText, _Mapping]] = ..., description: _Optional[_Union[LocalizedText, _Mapping]] = ..., method: _Optional[str] = ..., requests: _Optional[_Iterable[str]] = ..., licence: _Optional[str] = ..., frequency: _Optional[str] = ..., dropped_fields: _Optional[_Iterable[str]] = ..., pseudonymised_fields: _Optional[_Iterable[str]] = ...) -> None: ...

class SignedGlobalConfiguration(_message.Message):
    __slots__ = ("configuration", "algorithm", "signature", "signer_sha256")
    CONFIGURATION_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SIGNER_SHA256_FIELD_NUMBER: _ClassVar[int]
    configuration: bytes
    algorithm: str
    signature: bytes
    signer_sha256: str
    def __init__(self, configuration: _Optional[bytes] = ..., algorithm: _Optional[str] = ..., signature: _Optional[bytes] = ..., signer_sha256: _Optional[str] = ...) -> None: ...
