import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_ALLOWED: _ClassVar[Outcome]
    OUTCOME_REFUSED: _ClassVar[Outcome]
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_ALLOWED: Outcome
OUTCOME_REFUSED: Outcome

class AuditEvent(_message.Message):
    __slots__ = ("name", "leaf_index", "record", "create_time", "actor", "action", "resources", "outcome", "reason", "request_digest", "envelope_ids", "agencies", "via")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_IDS_FIELD_NUMBER: _ClassVar[int]
    AGENCIES_FIELD_NUMBER: _ClassVar[int]
    VIA_FIELD_NUMBER: _ClassVar[int]
    name: str
    leaf_index: int
    record: bytes
    create_time: _timestamp_pb2.Timestamp
    actor: str
    action: str
    resources: _containers.RepeatedScalarFieldContainer[str]
    outcome: Outcome
    reason: str
    request_digest: str
    envelope_ids: _containers.RepeatedScalarFieldContainer[str]
    agencies: _containers.RepeatedScalarFieldContainer[str]
    via: str
    def __init__(self, name: _Optional[str] = ..., leaf_index: _Optional[int] = ..., record: _Optional[bytes] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., resources: _Optional[_Iterable[str]] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., reason: _Optional[str] = ..., request_digest: _Optional[str] = ..., envelope_ids: _Optional[_Iterable[str]] = ..., agencies: _Optional[_Iterable[str]] = ..., via: _Optional[str] = ...) -> None: ...

class ListAuditEventsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "actor", "agency", "dataset", "action", "outcome", "start_time", "end_time")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    actor: str
    agency: str
    dataset: str
    action: str
    outcome: Outcome
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., actor: _Optional[str] = ..., agency: _Optional[str] = ..., dataset: _Optional[str] = ..., action: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAuditEventsResponse(_message.Message):
    __slots__ = ("audit_events", "next_page_token")
    AUDIT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    audit_events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    next_page_token: str
    def __init__(self, audit_events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetAuditEventRequest(_message.Message):
    __slots__ = ("name", "log_origin")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LOG_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    name: str
    log_origin: str
    def __init__(self, name: _Optional[str] = ..., log_origin: _Optional[str] = ...) -> None: ...

class GetAuditEventResponse(_message.Message):
    __slots__ = ("audit_event",)
    AUDIT_EVENT_FIELD_NUMBER: _ClassVar[int]
    audit_event: AuditEvent
    def __init__(self, audit_event: _Optional[_Union[AuditEvent, _Mapping]] = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ("witnessed", "log_origin")
    WITNESSED_FIELD_NUMBER: _ClassVar[int]
    LOG_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    witnessed: bool
    log_origin: str
    def __init__(self, witnessed: _Optional[bool] = ..., log_origin: _Optional[str] = ...) -> None: ...

class GetCheckpointResponse(_message.Message):
    __slots__ = ("signed_checkpoint", "verifier_key", "tree_size", "root_hash", "origin", "create_time", "origin_link")
    SIGNED_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    VERIFIER_KEY_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_LINK_FIELD_NUMBER: _ClassVar[int]
    signed_checkpoint: str
    verifier_key: str
    tree_size: int
    root_hash: bytes
    origin: str
    create_time: _timestamp_pb2.Timestamp
    origin_link: AuditEvent
    def __init__(self, signed_checkpoint: _Optional[str] = ..., verifier_key: _Optional[str] = ..., tree_size: _Optional[int] = ..., root_hash: _Optional[bytes] = ..., origin: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., origin_link: _Optional[_Union[AuditEvent, _Mapping]] = ...) -> None: ...

class GetInclusionProofRequest(_message.Message):
    __slots__ = ("leaf_index", "tree_size", "log_origin")
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    LOG_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    leaf_index: int
    tree_size: int
    log_origin: str
    def __init__(self, leaf_index: _Optional[int] = ..., tree_size: _Optional[int] = ..., log_origin: _Optional[str] = ...) -> None: ...

class GetInclusionProofResponse(_message.Message):
    __slots__ = ("leaf_index", "tree_size", "leaf_hash", "hashes")
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    LEAF_HASH_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, leaf_index: _Optional[int] = ..., tree_size: _Optional[int] = ..., leaf_hash: _Optional[bytes] = ..., hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class GetConsistencyProofRequest(_message.Message):
    __slots__ = ("first_size", "second_size", "log_origin")
    FIRST_SIZE_FIELD_NUMBER: _ClassVar[int]
    SECOND_SIZE_FIELD_NUMBER: _ClassVar[int]
    LOG_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    first_size: int
    second_size: int
    log_origin: str
    def __init__(self, first_size: _Optional[int] = ..., second_size: _Optional[int] = ..., log_origin: _Optional[str] = ...) -> None: ...

class GetConsistencyProofResponse(_message.Message):
    __slots__ = ("first_size", "second_size", "hashes")
    FIRST_SIZE_FIELD_NUMBER: _ClassVar[int]
    SECOND_SIZE_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    first_size: int
    second_size: int
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, first_size: _Optional[int] = ..., second_size: _Optional[int] = ..., hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...
