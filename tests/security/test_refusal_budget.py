"""Door refusals (before a call is admitted) are audited one by one within a budget per caller,
counted and summarised beyond it, so a flood cannot grow the audit log without bound."""

from __future__ import annotations

import re
import sqlite3

import grpc
import pytest

from agencies.errors import from_rpc_error
from certs.ca import CertificateAuthority
from gateway.v1 import audit_pb2, catalog_pb2, directory_pb2
from tests.support.exchange import wait_for
from tests.support.refusals import SUMMARY, leaf_count, reason, refused_leaves, summarised


def test_a_flood_over_the_rate_limit_is_summarised(network_factory):
    # No token comes back during the test: ten admitted calls, three refusals audited singly.
    network = network_factory(limits={
        "requests_per_second": 0.001, "burst": 10, "audited_refusals_per_second": 0.001,
        "audited_refusals_burst": 3, "refusal_summary_seconds": 0.2})
    market = network.agency("sz-market")
    request = directory_pb2.GetAgencyRequest(name="agencies/gd-health")
    for _ in range(10):
        market.directory.GetAgency(request, timeout=10)
    conn = network.gateway.db.reader()
    first = leaf_count(conn)

    for _ in range(40):
        with pytest.raises(grpc.RpcError) as caught:
            market.directory.GetAgency(request, timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # each still told
        assert from_rpc_error(caught.value).reason == "RATE_LIMITED"

    assert wait_for(lambda: summarised(refused_leaves(conn, "directory.get", first))
                    == {"RATE_LIMITED": 37})
    records = refused_leaves(conn, "directory.get", first)
    singles = [r for r in records if not SUMMARY.search(reason(r))]
    assert len(singles) == 3
    assert all(reason(r).startswith("RATE_LIMITED: request rate above") for r in singles)
    summary = next(r for r in records if SUMMARY.search(reason(r)))
    assert '"actor":"urn:govshare:agency:sz-market"' in summary
    assert "agencies/sz-market" in summary  # the caller sees its own summary in its view
    assert leaf_count(conn) - first == len(records)  # nothing else was written


def test_a_revoked_certificate_cannot_grow_the_log(network_factory):
    network = network_factory(limits={
        "audited_refusals_per_second": 0.001, "audited_refusals_burst": 2,
        "refusal_summary_seconds": 3600})
    market = network.agency("sz-market")
    assert list(market.agencies())
    CertificateAuthority.open(network.layout.ca_folder).revoke("urn:govshare:agency:sz-market",
                                                               reason="keyCompromise")
    conn = network.gateway.db.reader()
    first = leaf_count(conn)
    for _ in range(25):
        with pytest.raises(grpc.RpcError) as caught:
            market.directory.ListAgencies(directory_pb2.ListAgenciesRequest(), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert len(refused_leaves(conn, "directory.list", first)) == 2

    database = network.gateway.db.path
    network.close()  # stopping writes what was counted

    with sqlite3.connect(database) as stopped:
        records = refused_leaves(stopped, "directory.list", first)
    assert summarised(records) == {"CERTIFICATE_REVOKED": 23}
    assert len(records) == 3


def test_callers_have_budgets_of_their_own(network_factory):
    network = network_factory(limits={
        "requests_per_second": 0.001, "burst": 10, "audited_refusals_per_second": 0.001,
        "audited_refusals_burst": 2, "refusal_summary_seconds": 3600})
    conn = network.gateway.db.reader()
    first = leaf_count(conn)
    for agency in ("sz-market", "zj-stats"):
        client = network.agency(agency)
        for _ in range(14):  # ten admitted, four refused
            try:
                client.directory.GetAgency(
                    directory_pb2.GetAgencyRequest(name="agencies/gd-health"), timeout=10)
            except grpc.RpcError as refused:
                assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    actors = [re.search(r'"actor":"([^"]+)"', r).group(1)
              for r in refused_leaves(conn, "directory.get", first)]
    assert actors == ["urn:govshare:agency:sz-market"] * 2 + ["urn:govshare:agency:zj-stats"] * 2


def test_a_summary_keeps_the_names_its_refusals_carried(network_factory):
    network = network_factory(limits={
        "audited_refusals_per_second": 0.001, "audited_refusals_burst": 1,
        "refusal_summary_seconds": 0.2})
    health, stats = network.agency("gd-health"), network.agency("zj-stats")
    network.admin().suspend_agency("zj-stats", "under investigation")
    conn = network.gateway.db.reader()
    first = leaf_count(conn)
    for _ in range(5):
        with pytest.raises(grpc.RpcError) as caught:
            stats.catalog.GetDataset(
                catalog_pb2.GetDatasetRequest(name="agencies/gd-health/datasets/beds"), timeout=10)
        assert from_rpc_error(caught.value).reason == "AGENCY_SUSPENDED"

    assert wait_for(lambda: summarised(refused_leaves(conn, "catalog.get", first))
                    == {"AGENCY_SUSPENDED": 4})
    seen = [e for e in health.audit_events(action="catalog.get")
            if e.outcome == audit_pb2.OUTCOME_REFUSED]
    assert len(seen) == 2  # the one audited singly and the summary: the owner sees both
    assert all(list(e.resources) == ["agencies/gd-health/datasets/beds"] for e in seen)
