"""ExchangeService."""

from __future__ import annotations

from typing import Any

from gateway.v1 import exchange_pb2_grpc


class ExchangeService(exchange_pb2_grpc.ExchangeServiceServicer):
    def __init__(self, gateway: Any):
        self.gateway = gateway
