import datetime

from gateway.v1 import envelope_pb2 as _envelope_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MediaType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEDIA_TYPE_UNSPECIFIED: _ClassVar[MediaType]
    MEDIA_TYPE_CSV: _ClassVar[MediaType]
    MEDIA_TYPE_JSON_LINES: _ClassVar[MediaType]
    MEDIA_TYPE_PARQUET: _ClassVar[MediaType]
    MEDIA_TYPE_OCTET_STREAM: _ClassVar[MediaType]

class FieldType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FIELD_TYPE_UNSPECIFIED: _ClassVar[FieldType]
    FIELD_TYPE_STRING: _ClassVar[FieldType]
    FIELD_TYPE_INTEGER: _ClassVar[FieldType]
    FIELD_TYPE_DECIMAL: _ClassVar[FieldType]
    FIELD_TYPE_BOOLEAN: _ClassVar[FieldType]
    FIELD_TYPE_DATE: _ClassVar[FieldType]
    FIELD_TYPE_TIMESTAMP: _ClassVar[FieldType]

class Sensitivity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SENSITIVITY_UNSPECIFIED: _ClassVar[Sensitivity]
    SENSITIVITY_NONE: _ClassVar[Sensitivity]
    SENSITIVITY_PERSONAL: _ClassVar[Sensitivity]
    SENSITIVITY_SENSITIVE_PERSONAL: _ClassVar[Sensitivity]

class Classification(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLASSIFICATION_UNSPECIFIED: _ClassVar[Classification]
    CLASSIFICATION_PUBLIC: _ClassVar[Classification]
    CLASSIFICATION_INTERNAL: _ClassVar[Classification]
    CLASSIFICATION_CONFIDENTIAL: _ClassVar[Classification]

class SharingType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SHARING_TYPE_UNSPECIFIED: _ClassVar[SharingType]
    SHARING_TYPE_UNCONDITIONAL: _ClassVar[SharingType]
    SHARING_TYPE_CONDITIONAL: _ClassVar[SharingType]
    SHARING_TYPE_NOT_SHARED: _ClassVar[SharingType]

class UpdateCycle(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPDATE_CYCLE_UNSPECIFIED: _ClassVar[UpdateCycle]
    UPDATE_CYCLE_REAL_TIME: _ClassVar[UpdateCycle]
    UPDATE_CYCLE_HOURLY: _ClassVar[UpdateCycle]
    UPDATE_CYCLE_DAILY: _ClassVar[UpdateCycle]
    UPDATE_CYCLE_WEEKLY: _ClassVar[UpdateCycle]
    UPDATE_CYCLE_MONTHLY: _ClassVar[UpdateCycle]
    UPDATE_CYCLE_QUARTERLY: _ClassVar[UpdateCycle]
    UPDATE_CYCLE_YEARLY: _ClassVar[UpdateCycle]
    UPDATE_CYCLE_IRREGULAR: _ClassVar[UpdateCycle]

class DatasetState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATASET_STATE_UNSPECIFIED: _ClassVar[DatasetState]
    DATASET_STATE_ACTIVE: _ClassVar[DatasetState]
    DATASET_STATE_WITHDRAWN: _ClassVar[DatasetState]
MEDIA_TYPE_UNSPECIFIED: MediaType
MEDIA_TYPE_CSV: MediaType
MEDIA_TYPE_JSON_LINES: MediaType
MEDIA_TYPE_PARQUET: MediaType
MEDIA_TYPE_OCTET_STREAM: MediaType
FIELD_TYPE_UNSPECIFIED: FieldType
FIELD_TYPE_STRING: FieldType
FIELD_TYPE_INTEGER: FieldType
FIELD_TYPE_DECIMAL: FieldType
FIELD_TYPE_BOOLEAN: FieldType
FIELD_TYPE_DATE: FieldType
FIELD_TYPE_TIMESTAMP: FieldType
SENSITIVITY_UNSPECIFIED: Sensitivity
SENSITIVITY_NONE: Sensitivity
SENSITIVITY_PERSONAL: Sensitivity
SENSITIVITY_SENSITIVE_PERSONAL: Sensitivity
CLASSIFICATION_UNSPECIFIED: Classification
CLASSIFICATION_PUBLIC: Classification
CLASSIFICATION_INTERNAL: Classification
CLASSIFICATION_CONFIDENTIAL: Classification
SHARING_TYPE_UNSPECIFIED: SharingType
SHARING_TYPE_UNCONDITIONAL: SharingType
SHARING_TYPE_CONDITIONAL: SharingType
SHARING_TYPE_NOT_SHARED: SharingType
UPDATE_CYCLE_UNSPECIFIED: UpdateCycle
UPDATE_CYCLE_REAL_TIME: UpdateCycle
UPDATE_CYCLE_HOURLY: UpdateCycle
UPDATE_CYCLE_DAILY: UpdateCycle
UPDATE_CYCLE_WEEKLY: UpdateCycle
UPDATE_CYCLE_MONTHLY: UpdateCycle
UPDATE_CYCLE_QUARTERLY: UpdateCycle
UPDATE_CYCLE_YEARLY: UpdateCycle
UPDATE_CYCLE_IRREGULAR: UpdateCycle
DATASET_STATE_UNSPECIFIED: DatasetState
DATASET_STATE_ACTIVE: DatasetState
DATASET_STATE_WITHDRAWN: DatasetState

class Manifest(_message.Message):
    __slots__ = ("dataset", "version", "title", "abstract", "media_type", "schema", "classification", "sharing_type", "sharing_conditions", "legal_basis", "update_cycle", "tags", "content_sha256", "content_size", "create_time", "row_count")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ABSTRACT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    SHARING_TYPE_FIELD_NUMBER: _ClassVar[int]
    SHARING_CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_CYCLE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SIZE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    version: int
    title: str
    abstract: str
    media_type: MediaType
    schema: _containers.RepeatedCompositeFieldContainer[SchemaField]
    classification: Classification
    sharing_type: SharingType
    sharing_conditions: str
    legal_basis: str
    update_cycle: UpdateCycle
    tags: _containers.RepeatedScalarFieldContainer[str]
    content_sha256: bytes
    content_size: int
    create_time: _timestamp_pb2.Timestamp
    row_count: int
    def __init__(self, dataset: _Optional[str] = ..., version: _Optional[int] = ..., title: _Optional[str] = ..., abstract: _Optional[str] = ..., media_type: _Optional[_Union[MediaType, str]] = ..., schema: _Optional[_Iterable[_Union[SchemaField, _Mapping]]] = ..., classification: _Optional[_Union[Classification, str]] = ..., sharing_type: _Optional[_Union[SharingType, str]] = ..., sharing_conditions: _Optional[str] = ..., legal_basis: _Optional[str] = ..., update_cycle: _Optional[_Union[UpdateCycle, str]] = ..., tags: _Optional[_Iterable[str]] = ..., content_sha256: _Optional[bytes] = ..., content_size: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., row_count: _Optional[int] = ...) -> None: ...

class SchemaField(_message.Message):
    __slots__ = ("name", "type", "description", "sensitivity", "values_sha256")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SENSITIVITY_FIELD_NUMBER: _ClassVar[int]
    VALUES_SHA256_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: FieldType
    description: str
    sensitivity: Sensitivity
    values_sha256: bytes
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[FieldType, str]] = ..., description: _Optional[str] = ..., sensitivity: _Optional[_Union[Sensitivity, str]] = ..., values_sha256: _Optional[bytes] = ...) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("name", "publisher", "region_code", "latest_version", "manifest", "signed_manifest", "state", "withdraw_reason", "create_time", "update_time", "network_member")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    SIGNED_MANIFEST_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    WITHDRAW_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    NETWORK_MEMBER_FIELD_NUMBER: _ClassVar[int]
    name: str
    publisher: str
    region_code: str
    latest_version: int
    manifest: Manifest
    signed_manifest: _envelope_pb2.Envelope
    state: DatasetState
    withdraw_reason: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    network_member: str
    def __init__(self, name: _Optional[str] = ..., publisher: _Optional[str] = ..., region_code: _Optional[str] = ..., latest_version: _Optional[int] = ..., manifest: _Optional[_Union[Manifest, _Mapping]] = ..., signed_manifest: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., state: _Optional[_Union[DatasetState, str]] = ..., withdraw_reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., network_member: _Optional[str] = ...) -> None: ...

class DatasetVersion(_message.Message):
    __slots__ = ("name", "version", "manifest", "signed_manifest", "create_time", "audit_leaf_index")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    SIGNED_MANIFEST_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    AUDIT_LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    manifest: Manifest
    signed_manifest: _envelope_pb2.Envelope
    create_time: _timestamp_pb2.Timestamp
    audit_leaf_index: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., manifest: _Optional[_Union[Manifest, _Mapping]] = ..., signed_manifest: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., audit_leaf_index: _Optional[int] = ...) -> None: ...

class PublishDatasetRequest(_message.Message):
    __slots__ = ("manifest", "chunk")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    manifest: _envelope_pb2.Envelope
    chunk: bytes
    def __init__(self, manifest: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class PublishDatasetResponse(_message.Message):
    __slots__ = ("dataset_version", "content_deduplicated")
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTENT_DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    dataset_version: DatasetVersion
    content_deduplicated: bool
    def __init__(self, dataset_version: _Optional[_Union[DatasetVersion, _Mapping]] = ..., content_deduplicated: _Optional[bool] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetDatasetResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "query", "region_code", "tag", "classification", "sharing_type", "show_withdrawn", "dataset_id")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    SHARING_TYPE_FIELD_NUMBER: _ClassVar[int]
    SHOW_WITHDRAWN_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    query: str
    region_code: str
    tag: str
    classification: Classification
    sharing_type: SharingType
    show_withdrawn: bool
    dataset_id: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., query: _Optional[str] = ..., region_code: _Optional[str] = ..., tag: _Optional[str] = ..., classification: _Optional[_Union[Classification, str]] = ..., sharing_type: _Optional[_Union[SharingType, str]] = ..., show_withdrawn: _Optional[bool] = ..., dataset_id: _Optional[str] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets", "next_page_token", "stale_members")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STALE_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    next_page_token: str
    stale_members: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., stale_members: _Optional[_Iterable[str]] = ...) -> None: ...

class ListDatasetVersionsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDatasetVersionsResponse(_message.Message):
    __slots__ = ("dataset_versions", "next_page_token")
    DATASET_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dataset_versions: _containers.RepeatedCompositeFieldContainer[DatasetVersion]
    next_page_token: str
    def __init__(self, dataset_versions: _Optional[_Iterable[_Union[DatasetVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WithdrawDatasetRequest(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class WithdrawDatasetResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...
