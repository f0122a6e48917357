"""The gateway's error hierarchy: each class carries its gRPC status code and ErrorInfo reason.

Services raise these; `to_rpc_status` is the only place that turns them into a gRPC status, with
a `google.rpc.ErrorInfo` detail (reason, domain, metadata) that clients read with
`grpc_status.rpc_status.from_call`.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "govshare.gateway.v1"
MAX_MESSAGE_BYTES = 1024
MAX_METADATA_BYTES = 256
"""Messages and metadata may quote a caller's input: clipped, so the status trailers stay under
gRPC's 8 KiB metadata limit (past it the caller gets "Stream removed" instead of the error)
and a refusal's audit event stays small."""


class GatewayError(Exception):
    """Base of every error the gateway reports to a caller."""

    code = grpc.StatusCode.INTERNAL
    reason = "INTERNAL"
    audited = False
    """True once the refusal this error causes has been written to the audit log."""

    def __init__(self, message: str, *, reason: str | None = None, **metadata: object):
        message = clip(message, MAX_MESSAGE_BYTES)
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason
        self.metadata = {key: clip(str(value), MAX_METADATA_BYTES)
                         for key, value in metadata.items()}


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, marked with "…" when cut."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode(errors="ignore") + "…"


class InvalidArgument(GatewayError):
    """The request is malformed: a field is missing, too long, or not in its pattern."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"


class Unauthenticated(GatewayError):
    """The caller's certificate is not acceptable (revoked, or carries no govshare identity)."""

    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "CERTIFICATE_REJECTED"


class PermissionDenied(GatewayError):
    """The caller is known but may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class NotFound(GatewayError):
    """The named resource does not exist."""

    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(GatewayError):
    """The resource to create exists already."""

    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class FailedPrecondition(GatewayError):
    """The resource is not in a state that allows this."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class OutOfRange(GatewayError):
    """A position or size lies beyond what exists now (a leaf past the latest tree size)."""

    code = grpc.StatusCode.OUT_OF_RANGE
    reason = "OUT_OF_RANGE"


class ResourceExhausted(GatewayError):
    """A size, rate or concurrency limit was exceeded."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "LIMIT_EXCEEDED"


class DataLoss(GatewayError):
    """Bytes were lost or altered: streamed content or stored content does not match its hash."""

    code = grpc.StatusCode.DATA_LOSS
    reason = "CONTENT_MISMATCH"


class Cancelled(GatewayError):
    """The caller cancelled the call before it ended; nothing was kept."""

    code = grpc.StatusCode.CANCELLED
    reason = "CANCELLED"


class Unavailable(GatewayError):
    """The gateway cannot serve now (shutting down, storage unwritable); retry later."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"


class Unimplemented(GatewayError):
    """The RPC is part of the contract but not served by this gateway yet."""

    code = grpc.StatusCode.UNIMPLEMENTED
    reason = "UNIMPLEMENTED"


def to_rpc_status(error: GatewayError) -> grpc.Status:
    """The gRPC status for `error`, carrying a google.rpc.ErrorInfo detail."""
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(
        code=getattr(code_pb2, error.code.name), message=error.message, details=[detail]
    )
    return rpc_status.to_status(status)


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo detail of a failed call, if the gateway attached one."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None
