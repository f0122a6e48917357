"""Typed SDK exceptions, one per gRPC status the gateway answers with.

Each carries the status code, the ErrorInfo reason and metadata the gateway attached, and its
message, so callers can branch on `reason` ("SIGNATURE_INVALID", "NO_ACTIVE_GRANT", ...).
"""

from __future__ import annotations

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2
from grpc_status import rpc_status

__all__ = ["AlreadyExists", "Cancelled", "CertificateRevoked", "DataLoss", "DeadlineExceeded",
           "FailedPrecondition", "GatewayNotMember", "GovshareError", "InvalidArgument",
           "NetworkConfigurationRefused", "NotFound", "PermissionDenied", "ResourceExhausted",
           "Unauthenticated", "Unavailable", "VerificationError", "from_rpc_error"]


class GovshareError(Exception):
    """A call to the gateway failed, or a response failed end-to-end verification."""

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None, reason: str = "",
                 metadata: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.metadata = metadata or {}

    def __str__(self) -> str:
        if self.code is None:  # raised here, not by the gateway: the message says it all
            return self.message
        reason = f" [{self.reason}]" if self.reason else ""
        return f"{self.code.name}{reason}: {self.message}"


class InvalidArgument(GovshareError):
    """The request was malformed; the message names the field."""


class Unauthenticated(GovshareError):
    """The gateway did not accept this certificate (revoked, or no govshare identity)."""


class PermissionDenied(GovshareError):
    """The caller may not do this."""


class NotFound(GovshareError):
    """The named resource does not exist."""


class AlreadyExists(GovshareError):
    """The resource exists already."""


class FailedPrecondition(GovshareError):
    """The resource is not in a state that allows this."""


class ResourceExhausted(GovshareError):
    """A size, rate or concurrency limit was exceeded."""


class DataLoss(GovshareError):
    """Content did not match its hash."""


class Unavailable(GovshareError):
    """The gateway cannot be reached or cannot serve now; retry later."""


class DeadlineExceeded(GovshareError):
    """The gateway did not answer within the call's timeout; retry later, or allow longer."""


class Cancelled(GovshareError):
    """The call was cancelled before it completed (by this side, or the gateway stopping)."""


class VerificationError(GovshareError):
    """A response failed end-to-end verification: a signature, hash or checkpoint was wrong.
    The SDK refuses to return the data."""


class WitnessQuorumNotReached(VerificationError):
    """Fewer witnesses of the policy cosigned the gateway's checkpoint than its quorum asks;
    metadata `cosigned` lists those that did (their verifier keys), `quorum` the number
    needed. Reason LEAF_NOT_YET_WITNESSED: the leaf to prove is beyond the latest checkpoint
    the quorum cosigned (metadata `leaf_index`, `tree_size`); ask again after their next
    round."""


class NetworkConfigurationRefused(VerificationError):
    """The network configuration the gateway served does not verify against the national CA,
    or is older than the one this client holds (a replay); `reason` names the rule broken
    (NETWORK_CONFIGURATION_NOT_NEWER, ..._SIGNATURE_INVALID, ..._EXPIRED, ..._INVALID)."""


class GatewayNotMember(VerificationError):
    """With a network configuration held, the gateway answering is not the member the
    configuration names at the address this client connects to: no member is at that address
    (reason GATEWAY_NOT_A_MEMBER), or the receipt's signer or the checkpoint's log is not that
    member's (GATEWAY_NOT_THE_MEMBER); metadata `address` and `member` name them."""


class CertificateRevoked(VerificationError):
    """What the SDK verified was signed with a certificate that the CRL of the network
    configuration it holds revokes (a gateway's receipt, a publisher's manifest)."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.DATA_LOSS: DataLoss,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
}


def from_rpc_error(error: grpc.RpcError) -> GovshareError:
    """The typed exception for a failed call, with its ErrorInfo when the gateway sent one."""
    code = error.code()  # type: ignore[attr-defined]
    reason, metadata = _error_info(error)
    cls = _BY_CODE.get(code, GovshareError)
    return cls(error.details() or code.name, code=code, reason=reason,  # type: ignore[attr-defined]
               metadata=metadata)


def _error_info(error: grpc.RpcError) -> tuple[str, dict[str, str]]:
    """The reason and metadata of the call's ErrorInfo; none when it sent none, or details
    that do not decode or contradict the status (the code alone is then what is known)."""
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
        for detail in status.details if status is not None else ():
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                return info.reason, dict(info.metadata)
    except (ValueError, DecodeError):
        pass
    return "", {}
