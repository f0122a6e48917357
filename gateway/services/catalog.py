"""CatalogService: publish, find and withdraw datasets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from gateway.catalog import Catalog
from gateway.context import Call, Transport
from gateway.identity import ADMIN, AGENCY, AUDITOR
from gateway.limits import Limiter
from gateway.models import Dataset, Version
from gateway.replication import Replicas
from gateway.rpc import Gateway, rpc
from gateway.v1 import catalog_pb2, catalog_pb2_grpc, envelope_pb2
from govshare import errors, times
from govshare.names import AgencyName

EVERYONE = (AGENCY, ADMIN, AUDITOR)


def signed_manifest(data: bytes) -> tuple[envelope_pb2.Envelope, catalog_pb2.Manifest]:
    """A stored signed manifest and the manifest decoded from it."""
    envelope = envelope_pb2.Envelope.FromString(data)
    return envelope, catalog_pb2.Manifest.FromString(envelope.payload)


def dataset_proto(row: Dataset) -> catalog_pb2.Dataset:
    envelope, manifest = signed_manifest(row.signed_manifest)
    return catalog_pb2.Dataset(
        name=row.name,
        publisher=str(AgencyName(row.publisher)),
        region_code=row.region_code,
        latest_version=row.latest_version,
        manifest=manifest,
        signed_manifest=envelope,
        state=catalog_pb2.DatasetState.Value(f"DATASET_STATE_{row.state}"),
        withdraw_reason=row.withdraw_reason,
        create_time=times.to_timestamp(row.create_time),
        update_time=times.to_timestamp(row.update_time),
        network_member=row.network_member,
    )


def version_proto(row: Version) -> catalog_pb2.DatasetVersion:
    envelope, manifest = signed_manifest(row.signed_manifest)
    return catalog_pb2.DatasetVersion(
        name=row.name,
        version=row.version,
        manifest=manifest,
        signed_manifest=envelope,
        create_time=times.to_timestamp(row.create_time),
        audit_leaf_index=row.audit_leaf_index,
    )


class CatalogService(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, gateway: Gateway, catalog: Catalog, limiter: Limiter,
                 replicas: Replicas):
        self.gateway = gateway
        self._catalog = catalog
        self._limiter = limiter
        self._replicas = replicas

    @rpc("catalog.publish")
    def PublishDataset(self, requests: Iterator[catalog_pb2.PublishDatasetRequest],
                       call: Call) -> Any:
        with self._limiter.stream(call.caller.uri):
            messages = _until_cancelled(requests, call.transport)
            row, republished = self._catalog.publish(call, _manifest(messages),
                                                     _chunks(messages))
        return catalog_pb2.PublishDatasetResponse(dataset_version=version_proto(row),
                                                  content_deduplicated=republished)

    @rpc("catalog.get", allow=EVERYONE)
    def GetDataset(self, request: catalog_pb2.GetDatasetRequest, call: Call) -> Any:
        call.resources = [request.name]
        row = self._catalog.get(call, request.name)
        return catalog_pb2.GetDatasetResponse(dataset=dataset_proto(row))

    @rpc("catalog.list", allow=EVERYONE)
    def ListDatasets(self, request: catalog_pb2.ListDatasetsRequest, call: Call) -> Any:
        page = self._catalog.list_datasets(call, request)
        return catalog_pb2.ListDatasetsResponse(datasets=map(dataset_proto, page.items),
                                                next_page_token=page.next_page_token,
                                                stale_members=self._replicas.stale_members())

    @rpc("catalog.versions", allow=EVERYONE)
    def ListDatasetVersions(self, request: catalog_pb2.ListDatasetVersionsRequest,
                            call: Call) -> Any:
        page = self._catalog.list_versions(call, request)
        return catalog_pb2.ListDatasetVersionsResponse(
            dataset_versions=map(version_proto, page.items), next_page_token=page.next_page_token)

    @rpc("catalog.withdraw")
    def WithdrawDataset(self, request: catalog_pb2.WithdrawDatasetRequest, call: Call) -> Any:
        row = self._catalog.withdraw(call, request.name, request.reason)
        return catalog_pb2.WithdrawDatasetResponse(dataset=dataset_proto(row))


def _until_cancelled(requests: Iterator[Any], transport: Transport) -> Iterator[Any]:
    """The request stream; a client that cancels mid-stream surfaces as errors.Cancelled (grpc
    either raises or ends the stream early, depending on when the cancellation lands)."""
    try:
        yield from requests
    except grpc.RpcError as exc:
        raise errors.Cancelled("the publisher cancelled the upload; nothing was kept",
                               reason="UPLOAD_CANCELLED") \
            from exc
    if not transport.is_active():
        raise errors.Cancelled("the publisher cancelled the upload; nothing was kept",
                               reason="UPLOAD_CANCELLED")


def _manifest(messages: Iterator[Any]) -> envelope_pb2.Envelope:
    first = next(messages, None)
    if first is None or first.WhichOneof("part") != "manifest":
        raise errors.InvalidArgument("the first message must carry the signed manifest",
                                     field="manifest")
    return first.manifest


def _chunks(messages: Iterator[Any]) -> Iterator[bytes]:
    for message in messages:
        if message.WhichOneof("part") != "chunk":
            raise errors.InvalidArgument("every message after the first must carry a chunk",
                                         field="chunk")
        yield message.chunk
