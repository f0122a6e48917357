from gateway.v1 import catalog_pb2 as _catalog_pb2
from gateway.v1 import directory_pb2 as _directory_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListNetworkChangesRequest(_message.Message):
    __slots__ = ("since_position", "epoch", "page_size")
    SINCE_POSITION_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    since_position: int
    epoch: str
    page_size: int
    def __init__(self, since_position: _Optional[int] = ..., epoch: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListNetworkChangesResponse(_message.Message):
    __slots__ = ("changes", "next_position", "more", "epoch")
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_POSITION_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[NetworkChange]
    next_position: int
    more: bool
    epoch: str
    def __init__(self, changes: _Optional[_Iterable[_Union[NetworkChange, _Mapping]]] = ..., next_position: _Optional[int] = ..., more: _Optional[bool] = ..., epoch: _Optional[str] = ...) -> None: ...

class NetworkChange(_message.Message):
    __slots__ = ("position", "replication_id", "agency", "dataset", "dataset_removed")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    DATASET_REMOVED_FIELD_NUMBER: _ClassVar[int]
    position: int
    replication_id: str
    agency: _directory_pb2.Agency
    dataset: _catalog_pb2.Dataset
    dataset_removed: _empty_pb2.Empty
    def __init__(self, position: _Optional[int] = ..., replication_id: _Optional[str] = ..., agency: _Optional[_Union[_directory_pb2.Agency, _Mapping]] = ..., dataset: _Optional[_Union[_catalog_pb2.Dataset, _Mapping]] = ..., dataset_removed: _Optional[_Union[_empty_pb2.Empty, _Mapping]] = ...) -> None: ...
