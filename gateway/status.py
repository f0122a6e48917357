"""Typed errors (govshare.errors) to gRPC status: the one place that maps them, with a
`google.rpc.ErrorInfo` detail that clients read with `grpc_status.rpc_status.from_call` (the
SDK's reading is agencies.errors.from_rpc_error).
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from govshare import errors


def to_rpc_status(error: errors.GatewayError) -> grpc.Status:
    """The gRPC status for `error`, carrying a google.rpc.ErrorInfo detail."""
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=errors.DOMAIN,
                                   metadata=error.metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(
        code=getattr(code_pb2, error.code), message=error.message, details=[detail]
    )
    return rpc_status.to_status(status)

