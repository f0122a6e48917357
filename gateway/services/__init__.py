"""Thin gRPC servicers: proto in, domain call, proto out. Nothing else lives here."""

from __future__ import annotations

from typing import Any

import grpc

from gateway.services.audit import AuditService
from gateway.services.catalog import CatalogService
from gateway.services.directory import DirectoryService
from gateway.services.exchange import ExchangeService
from gateway.services.network import NetworkService
from gateway.services.witness import WitnessService
from gateway.v1 import (
    audit_pb2_grpc,
    catalog_pb2_grpc,
    directory_pb2_grpc,
    exchange_pb2_grpc,
    network_pb2_grpc,
    witness_pb2_grpc,
)


def register_services(server: grpc.Server, gateway: Any) -> None:
    """Add every gateway.v1 service to `server`, serving through the domain objects of
    `gateway` (gateway.server.Gateway, which wires them)."""
    directory_pb2_grpc.add_DirectoryServiceServicer_to_server(DirectoryService(gateway), server)
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(CatalogService(gateway), server)
    exchange_pb2_grpc.add_ExchangeServiceServicer_to_server(ExchangeService(gateway), server)
    audit_pb2_grpc.add_AuditServiceServicer_to_server(AuditService(gateway), server)
    network_pb2_grpc.add_NetworkServiceServicer_to_server(NetworkService(gateway), server)
    witness_pb2_grpc.add_WitnessServiceServicer_to_server(WitnessService(gateway), server)
