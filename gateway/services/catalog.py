"""CatalogService."""

from __future__ import annotations

from typing import Any

from gateway.v1 import catalog_pb2_grpc


class CatalogService(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, gateway: Any):
        self.gateway = gateway
