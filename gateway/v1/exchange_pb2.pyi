import datetime

from gateway.v1 import catalog_pb2 as _catalog_pb2
from gateway.v1 import envelope_pb2 as _envelope_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Purpose(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PURPOSE_UNSPECIFIED: _ClassVar[Purpose]
    PURPOSE_PUBLIC_SERVICE: _ClassVar[Purpose]
    PURPOSE_ADMINISTRATIVE_LICENSING: _ClassVar[Purpose]
    PURPOSE_REGULATORY_SUPERVISION: _ClassVar[Purpose]
    PURPOSE_EMERGENCY_RESPONSE: _ClassVar[Purpose]
    PURPOSE_STATISTICS: _ClassVar[Purpose]
    PURPOSE_POLICY_MAKING: _ClassVar[Purpose]
    PURPOSE_LAW_ENFORCEMENT: _ClassVar[Purpose]
    PURPOSE_OTHER: _ClassVar[Purpose]

class DecisionOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_OUTCOME_UNSPECIFIED: _ClassVar[DecisionOutcome]
    DECISION_OUTCOME_APPROVE: _ClassVar[DecisionOutcome]
    DECISION_OUTCOME_DENY: _ClassVar[DecisionOutcome]

class AccessRequestState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCESS_REQUEST_STATE_UNSPECIFIED: _ClassVar[AccessRequestState]
    ACCESS_REQUEST_STATE_PENDING: _ClassVar[AccessRequestState]
    ACCESS_REQUEST_STATE_APPROVED: _ClassVar[AccessRequestState]
    ACCESS_REQUEST_STATE_DENIED: _ClassVar[AccessRequestState]
    ACCESS_REQUEST_STATE_WITHDRAWN: _ClassVar[AccessRequestState]
    ACCESS_REQUEST_STATE_EXPIRED: _ClassVar[AccessRequestState]

class GrantBasis(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRANT_BASIS_UNSPECIFIED: _ClassVar[GrantBasis]
    GRANT_BASIS_UNCONDITIONAL_SHARING: _ClassVar[GrantBasis]
    GRANT_BASIS_OWNER_APPROVAL: _ClassVar[GrantBasis]

class GrantState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRANT_STATE_UNSPECIFIED: _ClassVar[GrantState]
    GRANT_STATE_ACTIVE: _ClassVar[GrantState]
    GRANT_STATE_REVOKED: _ClassVar[GrantState]
    GRANT_STATE_EXPIRED: _ClassVar[GrantState]

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_OUTGOING: _ClassVar[Direction]
    DIRECTION_INCOMING: _ClassVar[Direction]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_DATASET_VERSION_PUBLISHED: _ClassVar[EventType]
    EVENT_TYPE_DATASET_WITHDRAWN: _ClassVar[EventType]
    EVENT_TYPE_ACCESS_REQUEST_CREATED: _ClassVar[EventType]
    EVENT_TYPE_ACCESS_REQUEST_APPROVED: _ClassVar[EventType]
    EVENT_TYPE_ACCESS_REQUEST_DENIED: _ClassVar[EventType]
    EVENT_TYPE_GRANT_REVOKED: _ClassVar[EventType]
    EVENT_TYPE_ACCESS_REQUEST_WITHDRAWN: _ClassVar[EventType]
    EVENT_TYPE_ACCESS_REQUEST_WITHDRAWN_BY_REQUESTER: _ClassVar[EventType]
PURPOSE_UNSPECIFIED: Purpose
PURPOSE_PUBLIC_SERVICE: Purpose
PURPOSE_ADMINISTRATIVE_LICENSING: Purpose
PURPOSE_REGULATORY_SUPERVISION: Purpose
PURPOSE_EMERGENCY_RESPONSE: Purpose
PURPOSE_STATISTICS: Purpose
PURPOSE_POLICY_MAKING: Purpose
PURPOSE_LAW_ENFORCEMENT: Purpose
PURPOSE_OTHER: Purpose
DECISION_OUTCOME_UNSPECIFIED: DecisionOutcome
DECISION_OUTCOME_APPROVE: DecisionOutcome
DECISION_OUTCOME_DENY: DecisionOutcome
ACCESS_REQUEST_STATE_UNSPECIFIED: AccessRequestState
ACCESS_REQUEST_STATE_PENDING: AccessRequestState
ACCESS_REQUEST_STATE_APPROVED: AccessRequestState
ACCESS_REQUEST_STATE_DENIED: AccessRequestState
ACCESS_REQUEST_STATE_WITHDRAWN: AccessRequestState
ACCESS_REQUEST_STATE_EXPIRED: AccessRequestState
GRANT_BASIS_UNSPECIFIED: GrantBasis
GRANT_BASIS_UNCONDITIONAL_SHARING: GrantBasis
GRANT_BASIS_OWNER_APPROVAL: GrantBasis
GRANT_STATE_UNSPECIFIED: GrantState
GRANT_STATE_ACTIVE: GrantState
GRANT_STATE_REVOKED: GrantState
GRANT_STATE_EXPIRED: GrantState
DIRECTION_UNSPECIFIED: Direction
DIRECTION_OUTGOING: Direction
DIRECTION_INCOMING: Direction
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_DATASET_VERSION_PUBLISHED: EventType
EVENT_TYPE_DATASET_WITHDRAWN: EventType
EVENT_TYPE_ACCESS_REQUEST_CREATED: EventType
EVENT_TYPE_ACCESS_REQUEST_APPROVED: EventType
EVENT_TYPE_ACCESS_REQUEST_DENIED: EventType
EVENT_TYPE_GRANT_REVOKED: EventType
EVENT_TYPE_ACCESS_REQUEST_WITHDRAWN: EventType
EVENT_TYPE_ACCESS_REQUEST_WITHDRAWN_BY_REQUESTER: EventType

class AccessRequestStatement(_message.Message):
    __slots__ = ("requester", "dataset", "purpose", "purpose_text", "legal_basis", "duration", "fields", "request_id", "nonce", "create_time", "version")
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_TEXT_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    requester: str
    dataset: str
    purpose: Purpose
    purpose_text: str
    legal_basis: str
    duration: _duration_pb2.Duration
    fields: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    nonce: bytes
    create_time: _timestamp_pb2.Timestamp
    version: int
    def __init__(self, requester: _Optional[str] = ..., dataset: _Optional[str] = ..., purpose: _Optional[_Union[Purpose, str]] = ..., purpose_text: _Optional[str] = ..., legal_basis: _Optional[str] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., fields: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ..., nonce: _Optional[bytes] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class DecisionStatement(_message.Message):
    __slots__ = ("access_request", "outcome", "duration", "fields", "reason", "create_time", "nonce")
    ACCESS_REQUEST_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    access_request: str
    outcome: DecisionOutcome
    duration: _duration_pb2.Duration
    fields: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    create_time: _timestamp_pb2.Timestamp
    nonce: bytes
    def __init__(self, access_request: _Optional[str] = ..., outcome: _Optional[_Union[DecisionOutcome, str]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., fields: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., nonce: _Optional[bytes] = ...) -> None: ...

class AccessRequest(_message.Message):
    __slots__ = ("name", "requester", "owner", "dataset", "statement", "signed_statement", "state", "state_reason", "decide_deadline", "overdue", "signed_decision", "grant", "create_time", "decide_time", "network_member")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    STATEMENT_FIELD_NUMBER: _ClassVar[int]
    SIGNED_STATEMENT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    DECIDE_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    SIGNED_DECISION_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DECIDE_TIME_FIELD_NUMBER: _ClassVar[int]
    NETWORK_MEMBER_FIELD_NUMBER: _ClassVar[int]
    name: str
    requester: str
    owner: str
    dataset: str
    statement: AccessRequestStatement
    signed_statement: _envelope_pb2.Envelope
    state: AccessRequestState
    state_reason: str
    decide_deadline: _timestamp_pb2.Timestamp
    overdue: bool
    signed_decision: _envelope_pb2.Envelope
    grant: str
    create_time: _timestamp_pb2.Timestamp
    decide_time: _timestamp_pb2.Timestamp
    network_member: str
    def __init__(self, name: _Optional[str] = ..., requester: _Optional[str] = ..., owner: _Optional[str] = ..., dataset: _Optional[str] = ..., statement: _Optional[_Union[AccessRequestStatement, _Mapping]] = ..., signed_statement: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., state: _Optional[_Union[AccessRequestState, str]] = ..., state_reason: _Optional[str] = ..., decide_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., overdue: _Optional[bool] = ..., signed_decision: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., grant: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decide_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., network_member: _Optional[str] = ...) -> None: ...

class GrantStatement(_message.Message):
    __slots__ = ("grant", "grantee", "owner", "dataset", "fields", "access_request", "basis", "create_time", "expire_time", "max_classification", "max_sharing_type")
    GRANT_FIELD_NUMBER: _ClassVar[int]
    GRANTEE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    ACCESS_REQUEST_FIELD_NUMBER: _ClassVar[int]
    BASIS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    MAX_CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    MAX_SHARING_TYPE_FIELD_NUMBER: _ClassVar[int]
    grant: str
    grantee: str
    owner: str
    dataset: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    access_request: str
    basis: GrantBasis
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    max_classification: _catalog_pb2.Classification
    max_sharing_type: _catalog_pb2.SharingType
    def __init__(self, grant: _Optional[str] = ..., grantee: _Optional[str] = ..., owner: _Optional[str] = ..., dataset: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., access_request: _Optional[str] = ..., basis: _Optional[_Union[GrantBasis, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_classification: _Optional[_Union[_catalog_pb2.Classification, str]] = ..., max_sharing_type: _Optional[_Union[_catalog_pb2.SharingType, str]] = ...) -> None: ...

class Grant(_message.Message):
    __slots__ = ("name", "grantee", "owner", "dataset", "access_request", "fields", "state", "signed_statement", "create_time", "expire_time", "revoke_time", "revoke_reason", "max_classification", "max_sharing_type", "network_member")
    NAME_FIELD_NUMBER: _ClassVar[int]
    GRANTEE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    ACCESS_REQUEST_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SIGNED_STATEMENT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    REVOKE_REASON_FIELD_NUMBER: _ClassVar[int]
    MAX_CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    MAX_SHARING_TYPE_FIELD_NUMBER: _ClassVar[int]
    NETWORK_MEMBER_FIELD_NUMBER: _ClassVar[int]
    name: str
    grantee: str
    owner: str
    dataset: str
    access_request: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    state: GrantState
    signed_statement: _envelope_pb2.Envelope
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    revoke_time: _timestamp_pb2.Timestamp
    revoke_reason: str
    max_classification: _catalog_pb2.Classification
    max_sharing_type: _catalog_pb2.SharingType
    network_member: str
    def __init__(self, name: _Optional[str] = ..., grantee: _Optional[str] = ..., owner: _Optional[str] = ..., dataset: _Optional[str] = ..., access_request: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., state: _Optional[_Union[GrantState, str]] = ..., signed_statement: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoke_reason: _Optional[str] = ..., max_classification: _Optional[_Union[_catalog_pb2.Classification, str]] = ..., max_sharing_type: _Optional[_Union[_catalog_pb2.SharingType, str]] = ..., network_member: _Optional[str] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("exchange", "requester", "owner", "dataset_version", "content_sha256", "content_size", "grant", "complete_time", "audit_leaf_index", "audit_log_origin", "fields", "delivered_sha256", "delivered_size", "carriers")
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SIZE_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    AUDIT_LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    AUDIT_LOG_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_SHA256_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_SIZE_FIELD_NUMBER: _ClassVar[int]
    CARRIERS_FIELD_NUMBER: _ClassVar[int]
    exchange: str
    requester: str
    owner: str
    dataset_version: str
    content_sha256: bytes
    content_size: int
    grant: str
    complete_time: _timestamp_pb2.Timestamp
    audit_leaf_index: int
    audit_log_origin: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    delivered_sha256: bytes
    delivered_size: int
    carriers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, exchange: _Optional[str] = ..., requester: _Optional[str] = ..., owner: _Optional[str] = ..., dataset_version: _Optional[str] = ..., content_sha256: _Optional[bytes] = ..., content_size: _Optional[int] = ..., grant: _Optional[str] = ..., complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., audit_leaf_index: _Optional[int] = ..., audit_log_origin: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., delivered_sha256: _Optional[bytes] = ..., delivered_size: _Optional[int] = ..., carriers: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateAccessRequestRequest(_message.Message):
    __slots__ = ("parent", "signed_statement", "validate_only")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    SIGNED_STATEMENT_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    parent: str
    signed_statement: _envelope_pb2.Envelope
    validate_only: bool
    def __init__(self, parent: _Optional[str] = ..., signed_statement: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class CreateAccessRequestResponse(_message.Message):
    __slots__ = ("access_request", "grant")
    ACCESS_REQUEST_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    access_request: AccessRequest
    grant: Grant
    def __init__(self, access_request: _Optional[_Union[AccessRequest, _Mapping]] = ..., grant: _Optional[_Union[Grant, _Mapping]] = ...) -> None: ...

class GetAccessRequestRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetAccessRequestResponse(_message.Message):
    __slots__ = ("access_request",)
    ACCESS_REQUEST_FIELD_NUMBER: _ClassVar[int]
    access_request: AccessRequest
    def __init__(self, access_request: _Optional[_Union[AccessRequest, _Mapping]] = ...) -> None: ...

class ListAccessRequestsRequest(_message.Message):
    __slots__ = ("parent", "direction", "state", "overdue_only", "dataset", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_ONLY_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    direction: Direction
    state: AccessRequestState
    overdue_only: bool
    dataset: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., direction: _Optional[_Union[Direction, str]] = ..., state: _Optional[_Union[AccessRequestState, str]] = ..., overdue_only: _Optional[bool] = ..., dataset: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAccessRequestsResponse(_message.Message):
    __slots__ = ("access_requests", "next_page_token", "stale_members")
    ACCESS_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STALE_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    access_requests: _containers.RepeatedCompositeFieldContainer[AccessRequest]
    next_page_token: str
    stale_members: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, access_requests: _Optional[_Iterable[_Union[AccessRequest, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., stale_members: _Optional[_Iterable[str]] = ...) -> None: ...

class ApproveAccessRequestRequest(_message.Message):
    __slots__ = ("name", "signed_decision")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIGNED_DECISION_FIELD_NUMBER: _ClassVar[int]
    name: str
    signed_decision: _envelope_pb2.Envelope
    def __init__(self, name: _Optional[str] = ..., signed_decision: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ...) -> None: ...

class ApproveAccessRequestResponse(_message.Message):
    __slots__ = ("access_request", "grant")
    ACCESS_REQUEST_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    access_request: AccessRequest
    grant: Grant
    def __init__(self, access_request: _Optional[_Union[AccessRequest, _Mapping]] = ..., grant: _Optional[_Union[Grant, _Mapping]] = ...) -> None: ...

class DenyAccessRequestRequest(_message.Message):
    __slots__ = ("name", "signed_decision")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIGNED_DECISION_FIELD_NUMBER: _ClassVar[int]
    name: str
    signed_decision: _envelope_pb2.Envelope
    def __init__(self, name: _Optional[str] = ..., signed_decision: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ...) -> None: ...

class DenyAccessRequestResponse(_message.Message):
    __slots__ = ("access_request",)
    ACCESS_REQUEST_FIELD_NUMBER: _ClassVar[int]
    access_request: AccessRequest
    def __init__(self, access_request: _Optional[_Union[AccessRequest, _Mapping]] = ...) -> None: ...

class WithdrawAccessRequestRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class WithdrawAccessRequestResponse(_message.Message):
    __slots__ = ("access_request",)
    ACCESS_REQUEST_FIELD_NUMBER: _ClassVar[int]
    access_request: AccessRequest
    def __init__(self, access_request: _Optional[_Union[AccessRequest, _Mapping]] = ...) -> None: ...

class ListGrantsRequest(_message.Message):
    __slots__ = ("parent", "direction", "state", "dataset", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    direction: Direction
    state: GrantState
    dataset: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., direction: _Optional[_Union[Direction, str]] = ..., state: _Optional[_Union[GrantState, str]] = ..., dataset: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListGrantsResponse(_message.Message):
    __slots__ = ("grants", "next_page_token", "stale_members")
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STALE_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    grants: _containers.RepeatedCompositeFieldContainer[Grant]
    next_page_token: str
    stale_members: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, grants: _Optional[_Iterable[_Union[Grant, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., stale_members: _Optional[_Iterable[str]] = ...) -> None: ...

class RevokeGrantRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeGrantResponse(_message.Message):
    __slots__ = ("grant",)
    GRANT_FIELD_NUMBER: _ClassVar[int]
    grant: Grant
    def __init__(self, grant: _Optional[_Union[Grant, _Mapping]] = ...) -> None: ...

class FetchDatasetRequest(_message.Message):
    __slots__ = ("dataset", "offset", "exchange")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    offset: int
    exchange: str
    def __init__(self, dataset: _Optional[str] = ..., offset: _Optional[int] = ..., exchange: _Optional[str] = ...) -> None: ...

class FetchStart(_message.Message):
    __slots__ = ("exchange", "dataset_version", "signed_manifest", "grant", "offset", "fields")
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    SIGNED_MANIFEST_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    exchange: str
    dataset_version: str
    signed_manifest: _envelope_pb2.Envelope
    grant: str
    offset: int
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, exchange: _Optional[str] = ..., dataset_version: _Optional[str] = ..., signed_manifest: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., grant: _Optional[str] = ..., offset: _Optional[int] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class FetchDatasetResponse(_message.Message):
    __slots__ = ("start", "chunk", "receipt")
    START_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    start: FetchStart
    chunk: bytes
    receipt: _envelope_pb2.Envelope
    def __init__(self, start: _Optional[_Union[FetchStart, _Mapping]] = ..., chunk: _Optional[bytes] = ..., receipt: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("cursor", "type", "resource", "dataset", "actor", "summary", "create_time")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    type: EventType
    resource: str
    dataset: str
    actor: str
    summary: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, cursor: _Optional[str] = ..., type: _Optional[_Union[EventType, str]] = ..., resource: _Optional[str] = ..., dataset: _Optional[str] = ..., actor: _Optional[str] = ..., summary: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("parent", "cursor", "follow")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    parent: str
    cursor: str
    follow: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, parent: _Optional[str] = ..., cursor: _Optional[str] = ..., follow: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchEventsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: Event
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ...) -> None: ...
