import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VehicleType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VEHICLE_TYPE_UNSPECIFIED: _ClassVar[VehicleType]
    VEHICLE_TYPE_MOTORCYCLE: _ClassVar[VehicleType]
    VEHICLE_TYPE_CAR: _ClassVar[VehicleType]
    VEHICLE_TYPE_PICKUP: _ClassVar[VehicleType]
    VEHICLE_TYPE_TRUCK: _ClassVar[VehicleType]
    VEHICLE_TYPE_BUS: _ClassVar[VehicleType]
    VEHICLE_TYPE_TUK_TUK: _ClassVar[VehicleType]

class TaxStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TAX_STATUS_UNSPECIFIED: _ClassVar[TaxStatus]
    TAX_STATUS_PAID: _ClassVar[TaxStatus]
    TAX_STATUS_DUE: _ClassVar[TaxStatus]
    TAX_STATUS_OVERDUE: _ClassVar[TaxStatus]
    TAX_STATUS_EXEMPT: _ClassVar[TaxStatus]
VEHICLE_TYPE_UNSPECIFIED: VehicleType
VEHICLE_TYPE_MOTORCYCLE: VehicleType
VEHICLE_TYPE_CAR: VehicleType
VEHICLE_TYPE_PICKUP: VehicleType
VEHICLE_TYPE_TRUCK: VehicleType
VEHICLE_TYPE_BUS: VehicleType
VEHICLE_TYPE_TUK_TUK: VehicleType
TAX_STATUS_UNSPECIFIED: TaxStatus
TAX_STATUS_PAID: TaxStatus
TAX_STATUS_DUE: TaxStatus
TAX_STATUS_OVERDUE: TaxStatus
TAX_STATUS_EXEMPT: TaxStatus

class GetVehicleRequest(_message.Message):
    __slots__ = ("plate",)
    PLATE_FIELD_NUMBER: _ClassVar[int]
    plate: str
    def __init__(self, plate: _Optional[str] = ...) -> None: ...

class ListVehiclesByOwnerRequest(_message.Message):
    __slots__ = ("owner_id",)
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    owner_id: str
    def __init__(self, owner_id: _Optional[str] = ...) -> None: ...

class Vehicle(_message.Message):
    __slots__ = ("plate", "type", "make", "model", "year", "colour", "engine_cc", "registration_date", "last_inspection", "owner_id", "tax_status")
    PLATE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MAKE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    COLOUR_FIELD_NUMBER: _ClassVar[int]
    ENGINE_CC_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_DATE_FIELD_NUMBER: _ClassVar[int]
    LAST_INSPECTION_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    TAX_STATUS_FIELD_NUMBER: _ClassVar[int]
    plate: str
    type: VehicleType
    make: str
    model: str
    year: int
    colour: str
    engine_cc: int
    registration_date: _timestamp_pb2.Timestamp
    last_inspection: _timestamp_pb2.Timestamp
    owner_id: str
    tax_status: TaxStatus
    def __init__(self, plate: _Optional[str] = ..., type: _Optional[_Union[VehicleType, str]] = ..., make: _Optional[str] = ..., model: _Optional[str] = ..., year: _Optional[int] = ..., colour: _Optional[str] = ..., engine_cc: _Optional[int] = ..., registration_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_inspection: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., owner_id: _Optional[str] = ..., tax_status: _Optional[_Union[TaxStatus, str]] = ...) -> None: ...
