"""The baseline: a bare grpcio server with the gateway's TLS setup, options and message framing,
doing nothing but moving the bytes, so gateway/baseline ratios price what govshare adds.

    python -m bench.baseline --config NET/gateway.toml --replies DIR

serves, on the config's listen address with the gateway's certificate and mutual TLS:
- CreateAccessRequest, GetDataset: parse the request message, return the reply the real gateway
  gave (read from DIR/<method>.bin), so both sides move the same bytes;
- FetchDataset: stream the file named by `dataset` in FetchDatasetResponse chunks of
  limits.max_chunk_bytes, as the gateway does;
- PublishDataset: receive PublishDatasetRequest messages and drop their chunks.
It prints "listening on PORT" once serving and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from agencies.client import BaseClient
from gateway import config as config_module
from gateway.v1 import catalog_pb2, exchange_pb2

SERVICE = "bench.v1.Baseline"
UNARY = {
    "CreateAccessRequest": exchange_pb2.CreateAccessRequestRequest,
    "GetDataset": catalog_pb2.GetDatasetRequest,
}


def _handlers(replies: Path, chunk_bytes: int) -> grpc.GenericRpcHandler:
    def unary(method: str) -> grpc.RpcMethodHandler:
        reply = (replies / f"{method}.bin").read_bytes()
        return grpc.unary_unary_rpc_method_handler(
            lambda _request, _context: reply,
            request_deserializer=UNARY[method].FromString,
            response_serializer=None,
        )

    def fetch(request: exchange_pb2.FetchDatasetRequest,
              _context: Any) -> Iterator[exchange_pb2.FetchDatasetResponse]:
        with open(request.dataset, "rb") as handle:
            while chunk := handle.read(chunk_bytes):
                yield exchange_pb2.FetchDatasetResponse(chunk=chunk)

    def publish(requests: Iterator[catalog_pb2.PublishDatasetRequest],
                _context: Any) -> catalog_pb2.PublishDatasetResponse:
        for _request in requests:
            pass
        return catalog_pb2.PublishDatasetResponse()

    return grpc.method_handlers_generic_handler(SERVICE, {
        **{method: unary(method) for method in UNARY},
        "FetchDataset": grpc.unary_stream_rpc_method_handler(
            fetch, request_deserializer=exchange_pb2.FetchDatasetRequest.FromString,
            response_serializer=exchange_pb2.FetchDatasetResponse.SerializeToString),
        "PublishDataset": grpc.stream_unary_rpc_method_handler(
            publish, request_deserializer=catalog_pb2.PublishDatasetRequest.FromString,
            response_serializer=catalog_pb2.PublishDatasetResponse.SerializeToString),
    })


def serve(config: config_module.Config, replies: Path) -> None:
    """Serve the baseline with the gateway's listen address, thread pool, message limits and
    mutual-TLS credentials until SIGTERM."""
    from gateway.cli.serve import one_malloc_arena
    from gateway.server import server_credentials

    one_malloc_arena()  # as `govshare gateway serve` does: the same allocator for both
    limits = config.limits
    workers = config.server.max_workers
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=[
            ("grpc.max_receive_message_length", limits.max_message_bytes),
            ("grpc.max_send_message_length", limits.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=workers * 4,
    )
    server.add_generic_rpc_handlers((_handlers(replies, limits.max_chunk_bytes),))
    serve_until_terminated(server, server.add_secure_port(config.server.listen,
                                                          server_credentials(config)))


def serve_until_terminated(server: grpc.Server, port: int) -> None:
    """Start `server`, say its port on stdout (the parent reads it) and serve until SIGTERM."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    server.start()
    print(f"listening on {port}", flush=True)
    stopping.wait()
    server.stop(1).wait()


class BaselineClient(BaseClient):
    """The SDK's channel (same credentials and options) calling the baseline's methods."""

    def __init__(self, target: str, certs: Path):
        super().__init__(target, certs, server_name="localhost")
        self.unary = {
            method: self.channel.unary_unary(f"/{SERVICE}/{method}",
                                             request_serializer=kind.SerializeToString,
                                             response_deserializer=None)
            for method, kind in UNARY.items()
        }
        self._fetch = self.channel.unary_stream(
            f"/{SERVICE}/FetchDataset",
            request_serializer=exchange_pb2.FetchDatasetRequest.SerializeToString,
            response_deserializer=exchange_pb2.FetchDatasetResponse.FromString)
        self._publish = self.channel.stream_unary(
            f"/{SERVICE}/PublishDataset",
            request_serializer=catalog_pb2.PublishDatasetRequest.SerializeToString,
            response_deserializer=catalog_pb2.PublishDatasetResponse.FromString)

    def fetch(self, path: Path) -> int:
        """Stream the server-side file `path`; the number of content bytes received."""
        request = exchange_pb2.FetchDatasetRequest(dataset=str(path))
        return sum(len(message.chunk) for message in self._fetch(request))

    def publish(self, first: catalog_pb2.PublishDatasetRequest, chunks: Iterator[bytes]) -> None:
        """Client-stream `first`, then every chunk, as PublishDataset does."""

        def requests() -> Iterator[catalog_pb2.PublishDatasetRequest]:
            yield first
            for chunk in chunks:
                yield catalog_pb2.PublishDatasetRequest(chunk=chunk)

        self._publish(requests())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--replies", type=Path, required=True)
    args = parser.parse_args()
    serve(config_module.load(args.config), args.replies)


if __name__ == "__main__":
    main()
