"""AuditService."""

from __future__ import annotations

from typing import Any

from gateway.v1 import audit_pb2_grpc


class AuditService(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, gateway: Any):
        self.gateway = gateway
