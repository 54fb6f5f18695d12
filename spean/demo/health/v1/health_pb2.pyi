import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FacilityLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FACILITY_LEVEL_UNSPECIFIED: _ClassVar[FacilityLevel]
    FACILITY_LEVEL_HEALTH_CENTRE: _ClassVar[FacilityLevel]
    FACILITY_LEVEL_REFERRAL_HOSPITAL: _ClassVar[FacilityLevel]
    FACILITY_LEVEL_PROVINCIAL_HOSPITAL: _ClassVar[FacilityLevel]
    FACILITY_LEVEL_NATIONAL_HOSPITAL: _ClassVar[FacilityLevel]
FACILITY_LEVEL_UNSPECIFIED: FacilityLevel
FACILITY_LEVEL_HEALTH_CENTRE: FacilityLevel
FACILITY_LEVEL_REFERRAL_HOSPITAL: FacilityLevel
FACILITY_LEVEL_PROVINCIAL_HOSPITAL: FacilityLevel
FACILITY_LEVEL_NATIONAL_HOSPITAL: FacilityLevel

class GetMonthlyReportRequest(_message.Message):
    __slots__ = ("facility_id", "year", "month")
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    facility_id: str
    year: int
    month: int
    def __init__(self, facility_id: _Optional[str] = ..., year: _Optional[int] = ..., month: _Optional[int] = ...) -> None: ...

class MonthlyReport(_message.Message):
    __slots__ = ("facility_id", "facility_name", "province", "level", "year", "month", "outpatient_visits", "inpatient_admissions", "births", "deaths", "vaccinations", "referrals_out", "bed_occupancy_rate", "submitted_at")
    FACILITY_ID_FIELD_NUMBER: _ClassVar[int]
    FACILITY_NAME_FIELD_NUMBER: _ClassVar[int]
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    OUTPATIENT_VISITS_FIELD_NUMBER: _ClassVar[int]
    INPATIENT_ADMISSIONS_FIELD_NUMBER: _ClassVar[int]
    BIRTHS_FIELD_NUMBER: _ClassVar[int]
    DEATHS_FIELD_NUMBER: _ClassVar[int]
    VACCINATIONS_FIELD_NUMBER: _ClassVar[int]
    REFERRALS_OUT_FIELD_NUMBER: _ClassVar[int]
    BED_OCCUPANCY_RATE_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    facility_id: str
    facility_name: str
    province: str
    level: FacilityLevel
    year: int
    month: int
    outpatient_visits: int
    inpatient_admissions: int
    births: int
    deaths: int
    vaccinations: int
    referrals_out: int
    bed_occupancy_rate: float
    submitted_at: _timestamp_pb2.Timestamp
    def __init__(self, facility_id: _Optional[str] = ..., facility_name: _Optional[str] = ..., province: _Optional[str] = ..., level: _Optional[_Union[FacilityLevel, str]] = ..., year: _Optional[int] = ..., month: _Optional[int] = ..., outpatient_visits: _Optional[int] = ..., inpatient_admissions: _Optional[int] = ..., births: _Optional[int] = ..., deaths: _Optional[int] = ..., vaccinations: _Optional[int] = ..., referrals_out: _Optional[int] = ..., bed_occupancy_rate: _Optional[float] = ..., submitted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
