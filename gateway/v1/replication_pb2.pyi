from gateway.v1 import catalog_pb2 as _catalog_pb2
from gateway.v1 import directory_pb2 as _directory_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListNetworkChangesRequest(_message.Message):
    __slots__ = ("since_position", "page_size")
    SINCE_POSITION_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    since_position: int
    page_size: int
    def __init__(self, since_position: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListNetworkChangesResponse(_message.Message):
    __slots__ = ("changes", "next_position", "more")
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_POSITION_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[NetworkChange]
    next_position: int
    more: bool
    def __init__(self, changes: _Optional[_Iterable[_Union[NetworkChange, _Mapping]]] = ..., next_position: _Optional[int] = ..., more: _Optional[bool] = ...) -> None: ...

class NetworkChange(_message.Message):
    __slots__ = ("position", "agency", "dataset", "dataset_removed_sha256")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    DATASET_REMOVED_SHA256_FIELD_NUMBER: _ClassVar[int]
    position: int
    agency: _directory_pb2.Agency
    dataset: _catalog_pb2.Dataset
    dataset_removed_sha256: bytes
    def __init__(self, position: _Optional[int] = ..., agency: _Optional[_Union[_directory_pb2.Agency, _Mapping]] = ..., dataset: _Optional[_Union[_catalog_pb2.Dataset, _Mapping]] = ..., dataset_removed_sha256: _Optional[bytes] = ...) -> None: ...
