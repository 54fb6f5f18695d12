from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Sex(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEX_UNSPECIFIED: _ClassVar[Sex]
    SEX_FEMALE: _ClassVar[Sex]
    SEX_MALE: _ClassVar[Sex]
SEX_UNSPECIFIED: Sex
SEX_FEMALE: Sex
SEX_MALE: Sex

class VerifyCitizenRequest(_message.Message):
    __slots__ = ("id_number", "full_name", "birth_date")
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    FULL_NAME_FIELD_NUMBER: _ClassVar[int]
    BIRTH_DATE_FIELD_NUMBER: _ClassVar[int]
    id_number: str
    full_name: str
    birth_date: str
    def __init__(self, id_number: _Optional[str] = ..., full_name: _Optional[str] = ..., birth_date: _Optional[str] = ...) -> None: ...

class VerifyCitizenResponse(_message.Message):
    __slots__ = ("match",)
    MATCH_FIELD_NUMBER: _ClassVar[int]
    match: bool
    def __init__(self, match: _Optional[bool] = ...) -> None: ...

class GetCitizenRequest(_message.Message):
    __slots__ = ("id_number",)
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    id_number: str
    def __init__(self, id_number: _Optional[str] = ...) -> None: ...

class Citizen(_message.Message):
    __slots__ = ("id_number", "full_name", "sex", "birth_date", "birth_province", "province", "card_issued_on", "card_expires_on")
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    FULL_NAME_FIELD_NUMBER: _ClassVar[int]
    SEX_FIELD_NUMBER: _ClassVar[int]
    BIRTH_DATE_FIELD_NUMBER: _ClassVar[int]
    BIRTH_PROVINCE_FIELD_NUMBER: _ClassVar[int]
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    CARD_ISSUED_ON_FIELD_NUMBER: _ClassVar[int]
    CARD_EXPIRES_ON_FIELD_NUMBER: _ClassVar[int]
    id_number: str
    full_name: str
    sex: Sex
    birth_date: str
    birth_province: str
    province: str
    card_issued_on: str
    card_expires_on: str
    def __init__(self, id_number: _Optional[str] = ..., full_name: _Optional[str] = ..., sex: _Optional[_Union[Sex, str]] = ..., birth_date: _Optional[str] = ..., birth_province: _Optional[str] = ..., province: _Optional[str] = ..., card_issued_on: _Optional[str] = ..., card_expires_on: _Optional[str] = ...) -> None: ...
