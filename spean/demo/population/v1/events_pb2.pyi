from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CitizenAddressChanged(_message.Message):
    __slots__ = ("id_card_number", "new_address", "province", "effective_date")
    ID_CARD_NUMBER_FIELD_NUMBER: _ClassVar[int]
    NEW_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_DATE_FIELD_NUMBER: _ClassVar[int]
    id_card_number: str
    new_address: str
    province: str
    effective_date: str
    def __init__(self, id_card_number: _Optional[str] = ..., new_address: _Optional[str] = ..., province: _Optional[str] = ..., effective_date: _Optional[str] = ...) -> None: ...
