import datetime

from gateway.v1 import directory_pb2 as _directory_pb2
from gateway.v1 import envelope_pb2 as _envelope_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SignedNetworkConfiguration(_message.Message):
    __slots__ = ("envelope", "authority_certificate_pem")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    AUTHORITY_CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    envelope: _envelope_pb2.Envelope
    authority_certificate_pem: str
    def __init__(self, envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., authority_certificate_pem: _Optional[str] = ...) -> None: ...

class NetworkConfiguration(_message.Message):
    __slots__ = ("network_id", "version", "issue_time", "expire_time", "members", "witness_policy", "crl_der")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ISSUE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    WITNESS_POLICY_FIELD_NUMBER: _ClassVar[int]
    CRL_DER_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    version: int
    issue_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    members: _containers.RepeatedCompositeFieldContainer[MemberGateway]
    witness_policy: WitnessPolicy
    crl_der: bytes
    def __init__(self, network_id: _Optional[str] = ..., version: _Optional[int] = ..., issue_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., members: _Optional[_Iterable[_Union[MemberGateway, _Mapping]]] = ..., witness_policy: _Optional[_Union[WitnessPolicy, _Mapping]] = ..., crl_der: _Optional[bytes] = ...) -> None: ...

class MemberGateway(_message.Message):
    __slots__ = ("id", "region_codes", "address", "tls_certificate_pem", "signing_certificate_pem", "audit_origin", "audit_verifier_key", "witness_verifier_key", "previous_signing_certificates")
    ID_FIELD_NUMBER: _ClassVar[int]
    REGION_CODES_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TLS_CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    SIGNING_CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    AUDIT_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    AUDIT_VERIFIER_KEY_FIELD_NUMBER: _ClassVar[int]
    WITNESS_VERIFIER_KEY_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SIGNING_CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    id: str
    region_codes: _containers.RepeatedScalarFieldContainer[str]
    address: str
    tls_certificate_pem: str
    signing_certificate_pem: str
    audit_origin: str
    audit_verifier_key: str
    witness_verifier_key: str
    previous_signing_certificates: _containers.RepeatedCompositeFieldContainer[_directory_pb2.RetiredSigningCertificate]
    def __init__(self, id: _Optional[str] = ..., region_codes: _Optional[_Iterable[str]] = ..., address: _Optional[str] = ..., tls_certificate_pem: _Optional[str] = ..., signing_certificate_pem: _Optional[str] = ..., audit_origin: _Optional[str] = ..., audit_verifier_key: _Optional[str] = ..., witness_verifier_key: _Optional[str] = ..., previous_signing_certificates: _Optional[_Iterable[_Union[_directory_pb2.RetiredSigningCertificate, _Mapping]]] = ...) -> None: ...

class WitnessPolicy(_message.Message):
    __slots__ = ("quorum",)
    QUORUM_FIELD_NUMBER: _ClassVar[int]
    quorum: int
    def __init__(self, quorum: _Optional[int] = ...) -> None: ...

class GetNetworkConfigurationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetNetworkConfigurationResponse(_message.Message):
    __slots__ = ("network_configuration",)
    NETWORK_CONFIGURATION_FIELD_NUMBER: _ClassVar[int]
    network_configuration: SignedNetworkConfiguration
    def __init__(self, network_configuration: _Optional[_Union[SignedNetworkConfiguration, _Mapping]] = ...) -> None: ...
