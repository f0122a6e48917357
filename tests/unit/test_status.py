"""gateway.status: a typed error becomes a gRPC status carrying its ErrorInfo."""

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gateway import status
from govshare import errors


def test_errors_map_to_status_with_error_info():
    error = errors.NotFound("agencies/x is not registered", reason="AGENCY_UNKNOWN", agency="x")
    mapped = status.to_rpc_status(error)
    assert mapped.code == grpc.StatusCode.NOT_FOUND
    assert mapped.details == "agencies/x is not registered"
    proto = rpc_status.status_pb2.Status.FromString(mapped.trailing_metadata[0][1])
    info = error_details_pb2.ErrorInfo()
    proto.details[0].Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "AGENCY_UNKNOWN", errors.DOMAIN, {"agency": "x"})
