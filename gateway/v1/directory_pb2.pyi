import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgencyState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENCY_STATE_UNSPECIFIED: _ClassVar[AgencyState]
    AGENCY_STATE_ACTIVE: _ClassVar[AgencyState]
    AGENCY_STATE_SUSPENDED: _ClassVar[AgencyState]
AGENCY_STATE_UNSPECIFIED: AgencyState
AGENCY_STATE_ACTIVE: AgencyState
AGENCY_STATE_SUSPENDED: AgencyState

class Agency(_message.Message):
    __slots__ = ("name", "display_name", "region_code", "signing_certificate_pem", "signing_key_id", "state", "suspend_reason", "create_time", "update_time", "previous_signing_certificates", "network_member")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNING_CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    SIGNING_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUSPEND_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SIGNING_CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    NETWORK_MEMBER_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    region_code: str
    signing_certificate_pem: str
    signing_key_id: str
    state: AgencyState
    suspend_reason: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    previous_signing_certificates: _containers.RepeatedCompositeFieldContainer[RetiredSigningCertificate]
    network_member: str
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., region_code: _Optional[str] = ..., signing_certificate_pem: _Optional[str] = ..., signing_key_id: _Optional[str] = ..., state: _Optional[_Union[AgencyState, str]] = ..., suspend_reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., previous_signing_certificates: _Optional[_Iterable[_Union[RetiredSigningCertificate, _Mapping]]] = ..., network_member: _Optional[str] = ...) -> None: ...

class RetiredSigningCertificate(_message.Message):
    __slots__ = ("certificate_pem", "key_id", "retire_time")
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    RETIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    certificate_pem: str
    key_id: str
    retire_time: _timestamp_pb2.Timestamp
    def __init__(self, certificate_pem: _Optional[str] = ..., key_id: _Optional[str] = ..., retire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetAgencyRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetAgencyResponse(_message.Message):
    __slots__ = ("agency",)
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    agency: Agency
    def __init__(self, agency: _Optional[_Union[Agency, _Mapping]] = ...) -> None: ...

class ListAgenciesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "region_code")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    region_code: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., region_code: _Optional[str] = ...) -> None: ...

class ListAgenciesResponse(_message.Message):
    __slots__ = ("agencies", "next_page_token", "stale_members")
    AGENCIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STALE_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    agencies: _containers.RepeatedCompositeFieldContainer[Agency]
    next_page_token: str
    stale_members: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, agencies: _Optional[_Iterable[_Union[Agency, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., stale_members: _Optional[_Iterable[str]] = ...) -> None: ...

class RegisterAgencyRequest(_message.Message):
    __slots__ = ("agency_id", "agency")
    AGENCY_ID_FIELD_NUMBER: _ClassVar[int]
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    agency_id: str
    agency: Agency
    def __init__(self, agency_id: _Optional[str] = ..., agency: _Optional[_Union[Agency, _Mapping]] = ...) -> None: ...

class RegisterAgencyResponse(_message.Message):
    __slots__ = ("agency",)
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    agency: Agency
    def __init__(self, agency: _Optional[_Union[Agency, _Mapping]] = ...) -> None: ...

class SuspendAgencyRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SuspendAgencyResponse(_message.Message):
    __slots__ = ("agency",)
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    agency: Agency
    def __init__(self, agency: _Optional[_Union[Agency, _Mapping]] = ...) -> None: ...

class ReinstateAgencyRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReinstateAgencyResponse(_message.Message):
    __slots__ = ("agency",)
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    agency: Agency
    def __init__(self, agency: _Optional[_Union[Agency, _Mapping]] = ...) -> None: ...

class ReplaceSigningCertificateRequest(_message.Message):
    __slots__ = ("name", "signing_certificate_pem", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIGNING_CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    signing_certificate_pem: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., signing_certificate_pem: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReplaceSigningCertificateResponse(_message.Message):
    __slots__ = ("agency",)
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    agency: Agency
    def __init__(self, agency: _Optional[_Union[Agency, _Mapping]] = ...) -> None: ...
