"""A bare gRPC pass-through relay: the work of one more hop, without any of govshare's, as the
baseline of a cross-region fetch (docs/BENCHMARKS.md, "National network").

    python -m bench.relay --certs DIR --client-certs DIR --upstream HOST:PORT

listens on 127.0.0.1 (a port of its choice) with the TLS certificate in --certs (tls.pem,
tls.key), asking every caller for a certificate of the CA in its ca.pem, and forwards each call
of the agencies' unary and server-streaming methods to the gateway at --upstream over mutual
TLS with the client certificate in --client-certs: messages pass as raw bytes (nothing is
parsed), the metadata both ways, the status and its details back, and a caller that goes away
cancels the upstream call. The gateway authorizes the relay's client certificate, not the
caller's (a pass-through cannot present another's), so a relay carries the calls of the one
agency whose certificate it holds. It prints "listening on PORT" once serving and stops on
SIGTERM.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from bench.baseline import serve_until_terminated
from gateway.v1 import audit_pb2, catalog_pb2, directory_pb2, exchange_pb2, network_pb2

SERVICES = (audit_pb2, catalog_pb2, directory_pb2, exchange_pb2, network_pb2)
"""The modules of the services an agency calls."""
MESSAGE_BYTES = 8 * 1024 * 1024
"""Above the gateway's largest message (a 1 MiB chunk and its framing)."""
WORKERS = 16
NO_DEADLINE = 365 * 24 * 3600.0
"""Seconds left beyond which a call has no deadline."""


def method_kinds() -> dict[str, tuple[bool, bool]]:
    """(client streaming, server streaming) of every method path of SERVICES."""
    return {f"/{service.full_name}/{method.name}": (method.client_streaming,
                                                    method.server_streaming)
            for module in SERVICES for service in module.DESCRIPTOR.services_by_name.values()
            for method in service.methods}


class Relay(grpc.GenericRpcHandler):
    """Forwards unary and server-streaming calls to `upstream`, unparsed."""

    def __init__(self, upstream: grpc.Channel):
        self._upstream = upstream
        self._kinds = method_kinds()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = details.method
        kind = self._kinds.get(method)
        if kind == (False, False):
            return grpc.unary_unary_rpc_method_handler(
                lambda request, context: self._unary(method, request, context))
        if kind == (False, True):
            return grpc.unary_stream_rpc_method_handler(
                lambda request, context: self._stream(method, request, context))
        return None  # UNIMPLEMENTED: no agency fetch uses a client stream

    def _unary(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            response, call = self._upstream.unary_unary(method).with_call(
                request, metadata=_forwarded(context), timeout=_timeout(context))
        except grpc.RpcError as error:
            _fail(context, error)
        context.send_initial_metadata(call.initial_metadata())
        context.set_trailing_metadata(call.trailing_metadata())
        return response

    def _stream(self, method: str, request: bytes,
                context: grpc.ServicerContext) -> Iterator[bytes]:
        responses = self._upstream.unary_stream(method)(
            request, metadata=_forwarded(context), timeout=_timeout(context))
        context.add_callback(responses.cancel)
        try:
            context.send_initial_metadata(responses.initial_metadata())
            yield from responses
        except grpc.RpcError as error:
            _fail(context, error)
        context.set_trailing_metadata(responses.trailing_metadata())


def _forwarded(context: grpc.ServicerContext) -> list[tuple[str, Any]]:
    """The caller's metadata, less what gRPC sets on each call itself."""
    return [(key, value) for key, value in context.invocation_metadata()
            if key != "user-agent" and not key.startswith("grpc-")]


def _timeout(context: grpc.ServicerContext) -> float | None:
    """The caller's deadline for the upstream call; None when it set none (gRPC then reports
    some 292 billion years left, which no deadline can take)."""
    remaining = context.time_remaining()
    return remaining if remaining < NO_DEADLINE else None


def _fail(context: grpc.ServicerContext, error: grpc.RpcError) -> None:
    """End the call with the upstream's status, details and trailers (its rich status)."""
    context.set_trailing_metadata(error.trailing_metadata() or ())
    context.abort(error.code(), error.details() or "")


def serve(certs: Path, client_certs: Path, upstream: str) -> None:
    """Relay until SIGTERM."""
    from gateway.cli.serve import one_malloc_arena

    one_malloc_arena()  # as the gateway and the baseline: the same allocator for all
    sizes = [("grpc.max_receive_message_length", MESSAGE_BYTES),
             ("grpc.max_send_message_length", MESSAGE_BYTES)]
    channel = grpc.secure_channel(upstream, grpc.ssl_channel_credentials(
        root_certificates=(client_certs / "ca.pem").read_bytes(),
        private_key=(client_certs / "tls.key").read_bytes(),
        certificate_chain=(client_certs / "tls.pem").read_bytes()), options=sizes)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS),
                         handlers=(Relay(channel),), options=[*sizes, ("grpc.so_reuseport", 0)])
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials(
        [((certs / "tls.key").read_bytes(), (certs / "tls.pem").read_bytes())],
        root_certificates=(certs / "ca.pem").read_bytes(), require_client_auth=True))
    serve_until_terminated(server, port)
    channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certs", type=Path, required=True,
                        help="the relay's server certificate folder (tls.pem, tls.key, ca.pem)")
    parser.add_argument("--client-certs", type=Path, required=True,
                        help="the certificate folder it presents to the gateway")
    parser.add_argument("--upstream", required=True, help="the gateway's host:port")
    args = parser.parse_args()
    serve(args.certs, args.client_certs, args.upstream)


if __name__ == "__main__":
    main()
