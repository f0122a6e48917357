"""The gateway over mutual TLS: who gets in, who is refused, and how."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from agencies import errors
from agencies.client import AgencyClient, BaseClient
from agencies.sim.roster import AgencySpec
from certs.ca import CertificateAuthority
from gateway.network import add_agency
from gateway.server import SERVICE_NAMES
from gateway.storage import audit as audit_sql
from gateway.v1 import (
    directory_pb2,
    directory_pb2_grpc,
    replication_pb2_grpc,
    witness_pb2_grpc,
)


def _records(network):
    return [json.loads(r) for _, r in audit_sql.iter_records(network.gateway.db.reader())]


def _channel(network, folder, *, with_client_cert=True):
    root = (network.layout.ca_folder / "ca.pem").read_bytes()
    if with_client_cert:
        creds = grpc.ssl_channel_credentials(root, (folder / "tls.key").read_bytes(),
                                             (folder / "tls.pem").read_bytes())
    else:
        creds = grpc.ssl_channel_credentials(root)
    return grpc.secure_channel(network.target, creds,
                               options=[("grpc.ssl_target_name_override", "localhost")])


def _list_agencies(channel):
    stub = directory_pb2_grpc.DirectoryServiceStub(channel)
    return stub.ListAgencies(directory_pb2.ListAgenciesRequest(), timeout=5)


def test_handshake_refused_without_client_certificate(network):
    with _channel(network, None, with_client_cert=False) as channel, \
            pytest.raises(grpc.RpcError) as refused:
        _list_agencies(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_handshake_refused_for_certificate_of_another_ca(network, tmp_path):
    foreign = CertificateAuthority.init(tmp_path / "foreign-ca")
    foreign.issue_agency("gd-health", tmp_path / "impostor")
    with _channel(network, tmp_path / "impostor") as channel, \
            pytest.raises(grpc.RpcError) as refused:
        _list_agencies(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_handshake_refused_for_expired_certificate(network, tmp_path):
    ca = CertificateAuthority.open(network.layout.ca_folder)
    ca.issue_agency("old-agency", tmp_path / "old", validity_days=1,
                    now=datetime.now(UTC) - timedelta(days=30))
    with _channel(network, tmp_path / "old") as channel, pytest.raises(grpc.RpcError) as refused:
        _list_agencies(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_revoked_certificate_is_unauthenticated_and_audited(network):
    client = network.agency("sz-market")
    assert list(client.agencies())
    CertificateAuthority.open(network.layout.ca_folder).revoke("urn:govshare:agency:sz-market",
                                                               reason="keyCompromise")
    with pytest.raises(errors.Unauthenticated) as refused:
        list(client.agencies())
    assert refused.value.reason == "CERTIFICATE_REVOKED"
    last = _records(network)[-1]
    assert last["outcome"] == "REFUSED"
    assert last["actor"] == "urn:govshare:agency:sz-market"
    assert last["reason"].startswith("CERTIFICATE_REVOKED")


def test_unregistered_agency_is_permission_denied(network):
    folder = add_agency(network.layout, AgencySpec("hn-water", "Hunan Water Resources", "430000"))
    client = AgencyClient(network.target, folder, server_name="localhost")
    try:
        with pytest.raises(errors.PermissionDenied) as refused:
            client.agency("gd-health")
        assert refused.value.reason == "AGENCY_NOT_REGISTERED"
    finally:
        client.close()


def test_suspended_agency_is_permission_denied_at_once(network):
    client = network.agency("zj-stats")
    assert list(client.agencies())  # the gateway now knows (and caches) zj-stats as active
    network.admin().suspend_agency("zj-stats", "audit finding 2026-17")
    with pytest.raises(errors.PermissionDenied) as refused:
        list(client.agencies())
    assert refused.value.reason == "AGENCY_SUSPENDED"
    assert "audit finding 2026-17" in refused.value.message


def test_admin_only_rpc_refused_to_agency_and_audited(network):
    client = network.agency("gd-health")
    pem = (network.layout.certs("gd-health") / "signing.pem").read_text()
    before = len(_records(network))
    request = directory_pb2.RegisterAgencyRequest(
        agency_id="gd-health2",
        agency=directory_pb2.Agency(display_name="x", region_code="440000",
                                    signing_certificate_pem=pem))
    with pytest.raises(errors.PermissionDenied) as refused:
        client._call(client.directory.RegisterAgency, request)
    assert refused.value.reason == "ROLE_NOT_ALLOWED"
    records = _records(network)
    assert len(records) == before + 1
    assert records[-1]["action"] == "directory.register"
    assert records[-1]["outcome"] == "REFUSED"
    assert records[-1]["request_digest"] == hashlib.sha256(request.SerializeToString()).hexdigest()
    assert [a.name for a in client.agencies()] == [
        "agencies/gd-health", "agencies/sz-market", "agencies/zj-stats"]


def test_register_refuses_bad_input_with_the_field_named(network):
    admin = network.admin()
    pem = (network.layout.certs("gd-health") / "signing.pem").read_text()
    cases = [
        ("Bad_Id", "Some agency", "440000", pem, "agency_id"),
        ("gd-health-2", "Some agency", "44", pem, "agency.region_code"),
        ("gd-health-2", "", "440000", pem, "agency.display_name"),
        ("gd-health-2", "Some agency", "440000", "not a pem", "agency.signing_certificate_pem"),
        ("gd-health-2", "Some agency", "440000", pem, "agency.signing_certificate_pem"),
    ]
    for agency_id, display, region, cert, field in cases:
        with pytest.raises(errors.InvalidArgument) as refused:
            admin.register_agency(agency_id, display, region, cert)
        assert refused.value.metadata["field"] == field, refused.value
    with pytest.raises(errors.AlreadyExists):
        admin.register_agency("gd-health", "Again", "440000", pem)
    assert len(list(admin.agencies())) == 3


def test_health_reports_serving(network):
    with _channel(network, network.layout.certs("admin")) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", *SERVICE_NAMES):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_every_gateway_service(network):
    with _channel(network, network.layout.certs("auditor")) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        reply = next(stub.ServerReflectionInfo(iter([request]), timeout=5))
    names = {s.name for s in reply.list_services_response.service}
    assert set(SERVICE_NAMES) <= names
    assert {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


def test_graceful_shutdown_lets_an_in_flight_call_finish(network):
    gateway = network.gateway
    release = threading.Event()

    def slow_change(tx):
        release.wait(5)
        return None, []

    blocker = threading.Thread(target=gateway.work.commit, args=(slow_change,))
    blocker.start()
    time.sleep(0.1)
    folder = add_agency(network.layout, AgencySpec("hb-health", "Hubei Health", "420000"))
    pem = (folder / "signing.pem").read_text()
    result = {}

    def register():
        try:
            result["agency"] = network.admin().register_agency("hb-health", "Hubei Health",
                                                               "420000", pem)
        except errors.GovshareError as exc:
            result["error"] = exc

    caller = threading.Thread(target=register)
    caller.start()
    time.sleep(0.3)
    stopper = threading.Thread(target=network.server.server.stop, args=(10,))
    stopper.start()
    time.sleep(0.2)
    release.set()
    caller.join(10)
    stopper.join(10)
    blocker.join(10)
    assert "error" not in result, result.get("error")
    assert result["agency"].name == "agencies/hb-health"


def test_every_rpc_is_implemented(network):
    """The contract is served in full: no RPC answers UNIMPLEMENTED."""
    client: BaseClient = network.agency("gd-health")
    unimplemented = []
    stubs = {"DirectoryService": client.directory, "CatalogService": client.catalog,
             "ExchangeService": client.exchange, "AuditService": client.audit,
             "NetworkService": client.network,
             "WitnessService": witness_pb2_grpc.WitnessServiceStub(client.channel),
             "ReplicationService": replication_pb2_grpc.ReplicationServiceStub(client.channel)}
    for full_name in SERVICE_NAMES:
        short = full_name.rsplit(".", 1)[1]
        descriptor = _service_descriptor(full_name)
        for method in descriptor.methods:
            stub_method = getattr(stubs[short], method.name)
            request = _message_class(method.input_type)()
            try:
                if method.client_streaming:
                    stub_method(iter([]), timeout=3)
                elif method.server_streaming:
                    for _ in stub_method(request, timeout=3):
                        break
                else:
                    stub_method(request, timeout=3)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    unimplemented.append(f"{short}.{method.name}")
    assert unimplemented == []


def _service_descriptor(full_name):
    from google.protobuf import descriptor_pool

    return descriptor_pool.Default().FindServiceByName(full_name)


def _message_class(descriptor):
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)


def test_region_filter_follows_gb_t_2260_levels(network_factory):
    net = network_factory(agencies=[
        AgencySpec("cq-health", "Chongqing Health Commission", "500000"),
        AgencySpec("sc-health", "Sichuan Health Commission", "510000"),
        AgencySpec("cd-traffic", "Chengdu Traffic Police", "510100"),
    ])
    client = net.agency("cq-health")
    assert [a.name for a in client.agencies("500000")] == ["agencies/cq-health"]
    assert [a.name for a in client.agencies("510000")] == ["agencies/cd-traffic",
                                                           "agencies/sc-health"]
    assert [a.name for a in client.agencies("510100")] == ["agencies/cd-traffic"]
    with pytest.raises(errors.InvalidArgument) as refused:
        list(client.agencies("51"))
    assert refused.value.metadata["field"] == "region_code"


def test_oversized_message_is_resource_exhausted(network):
    client = network.agency("gd-health")
    with pytest.raises(errors.ResourceExhausted):
        client.agency("agencies/" + "x" * (2 * 1024 * 1024))


def test_paging_walks_every_agency_once(network_factory):
    specs = [AgencySpec(f"agency-{n:02d}", f"Bureau {n}", "110000") for n in range(7)]
    net = network_factory(agencies=specs)
    client = net.agency("agency-00")
    request = directory_pb2.ListAgenciesRequest(page_size=3)
    seen, pages = [], 0
    while True:
        reply = client._call(client.directory.ListAgencies, request)
        seen += [a.name for a in reply.agencies]
        pages += 1
        if not reply.next_page_token:
            break
        request.page_token = reply.next_page_token
    assert seen == [f"agencies/{s.id}" for s in specs]
    assert pages == 3


def test_role_refusal_names_the_caller_and_its_agency(network):
    client = network.agency("gd-health")
    with pytest.raises(errors.PermissionDenied):
        client._call(client.directory.SuspendAgency,
                     directory_pb2.SuspendAgencyRequest(name="agencies/sz-market", reason="x"))
    last = _records(network)[-1]
    assert last["actor"] == "urn:govshare:agency:gd-health"
    assert "agencies/gd-health" in last["subjects"]
    assert "agencies/sz-market" in last["subjects"]
