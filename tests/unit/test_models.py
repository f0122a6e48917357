"""Storage maps each domain model to its row and back: a model written is read back equal."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.models import (
    AccessRequest,
    Agency,
    AuditLeaf,
    Checkpoint,
    Dataset,
    Event,
    Exchange,
    Grant,
    Version,
)
from gateway.storage import Database
from gateway.storage import audit as audit_sql
from gateway.storage import catalog as catalog_sql
from gateway.storage import directory as directory_sql
from gateway.storage import events as events_sql
from gateway.storage import exchange as exchange_sql

NOW = "2026-03-02T08:00:00.000000Z"
LATER = "2026-04-01T08:00:00.000000Z"
BEDS = "agencies/gd-health/datasets/beds"

HEALTH = Agency(id="gd-health", display_name="广东省卫生健康委员会", region_code="440000",
                signing_certificate_pem="-----BEGIN CERTIFICATE-----\n...",
                signing_key_id="key-1", state="ACTIVE", suspend_reason="", create_time=NOW,
                update_time=NOW, previous_signing_certificates=json.dumps(
                    [{"certificate_pem": "old", "key_id": "key-0", "retire_time": NOW}]))
MARKET = dataclasses.replace(HEALTH, id="sz-market", display_name="深圳市市场监督管理局",
                             region_code="440300", signing_key_id="key-2",
                             previous_signing_certificates="[]")
DATASET = Dataset(name=BEDS, publisher="gd-health", region_code="440000", latest_version=1,
                  state="ACTIVE", withdraw_reason="", classification="INTERNAL",
                  sharing_type="CONDITIONAL", title="医院床位", abstract="beds by hospital",
                  tags="health beds", field_names="region beds", create_time=NOW,
                  update_time=NOW)
VERSION = Version(name=f"{BEDS}/versions/1", dataset=BEDS, version=1,
                  signed_manifest=b"\x0a\x02signed", content_sha256="ab" * 32,
                  content_size=42, create_time=NOW, audit_leaf_index=7,
                  classification="INTERNAL", sharing_type="CONDITIONAL")
REQUEST = AccessRequest(name="agencies/sz-market/accessRequests/r1", requester="sz-market",
                        owner="gd-health", dataset=BEDS, request_id="retry-1",
                        statement_digest="cd" * 32, signed_statement=b"statement",
                        state="APPROVED", state_reason="approved by the owner",
                        decide_deadline=LATER, signed_decision=b"decision",
                        grant_name="agencies/sz-market/grants/g1", create_time=NOW,
                        decide_time=NOW)
GRANT = Grant(name="agencies/sz-market/grants/g1", grantee="sz-market", owner="gd-health",
              dataset=BEDS, access_request=REQUEST.name, fields='["region"]', state="ACTIVE",
              signed_statement=b"grant", create_time=NOW, expire_time=LATER, revoke_time=None,
              revoke_reason="", max_classification="INTERNAL", max_sharing_type="CONDITIONAL")


@pytest.fixture
def conn(tmp_path: Path) -> Iterator:
    db = Database(tmp_path / "govshare.db")
    yield db.writer
    db.close()


def _published(conn) -> None:
    directory_sql.insert_agency(conn, HEALTH)
    directory_sql.insert_agency(conn, MARKET)
    catalog_sql.upsert_dataset(conn, DATASET, ["health", "beds"])
    catalog_sql.insert_version(conn, VERSION)


def test_an_agency_round_trips(conn):
    _published(conn)
    assert directory_sql.get_agency(conn, "gd-health") == HEALTH
    assert directory_sql.get_agency_by_key_id(conn, "key-2") == MARKET


def test_a_dataset_round_trips_with_its_latest_signed_manifest(conn):
    _published(conn)
    read = catalog_sql.get_dataset(conn, BEDS)
    assert read == dataclasses.replace(DATASET, seq=read.seq,
                                       signed_manifest=VERSION.signed_manifest)
    assert read.seq > 0 and read.terms == ("ACTIVE", 1, "CONDITIONAL", "INTERNAL")


def test_a_version_round_trips(conn):
    _published(conn)
    assert catalog_sql.get_version(conn, VERSION.name) == VERSION
    assert catalog_sql.latest_version(conn, BEDS) == VERSION


def test_an_access_request_and_its_grant_round_trip(conn):
    _published(conn)
    exchange_sql.insert_access_request(conn, REQUEST)
    exchange_sql.insert_grant(conn, GRANT)
    request = exchange_sql.get_access_request(conn, REQUEST.name, NOW)
    grant = exchange_sql.get_grant(conn, GRANT.name, NOW)
    assert request == dataclasses.replace(REQUEST, seq=request.seq, effective_state="APPROVED")
    assert grant == dataclasses.replace(GRANT, seq=grant.seq, effective_state="ACTIVE")
    # Read after the grant's expiry, both read as EXPIRED; what was written stays.
    expired = exchange_sql.get_access_request(conn, REQUEST.name, LATER)
    assert (expired.state, expired.current_state) == ("APPROVED", "EXPIRED")
    assert exchange_sql.get_grant(conn, GRANT.name, LATER).current_state == "EXPIRED"


def test_a_request_is_overdue_by_the_same_rule_the_overdue_filter_applies(conn):
    _published(conn)
    pending = dataclasses.replace(REQUEST, name="agencies/sz-market/accessRequests/r2",
                                  request_id="retry-2", state="PENDING", signed_decision=None,
                                  grant_name=None, decide_time=None)
    undated = dataclasses.replace(pending, name="agencies/sz-market/accessRequests/r3",
                                  request_id="retry-3", decide_deadline=None)
    for written in (REQUEST, pending, undated):
        exchange_sql.insert_access_request(conn, written)
    for now in (NOW, LATER, "2026-05-01T08:00:00.000000Z"):
        read = exchange_sql.list_access_requests(
            conn, agency="gd-health", incoming=True, state="", overdue_only=False, dataset="",
            now=now, before=None, limit=10)
        filtered = exchange_sql.list_access_requests(
            conn, agency="gd-health", incoming=True, state="", overdue_only=True, dataset="",
            now=now, before=None, limit=10)
        assert [r.name for r in read if r.overdue_at(now)] == [r.name for r in filtered]
        # only the pending request with a deadline, once the deadline has passed
        assert [r.name for r in filtered] == ([pending.name] if now > LATER else [])


def test_an_exchange_round_trips(conn):
    _published(conn)
    exchange_sql.insert_access_request(conn, REQUEST)
    exchange_sql.insert_grant(conn, GRANT)
    started = Exchange(name="agencies/sz-market/exchanges/x1", requester="sz-market",
                       owner="gd-health", dataset_version=VERSION.name, grant_name=GRANT.name,
                       state="STARTED", create_time=NOW)
    exchange_sql.insert_exchange(conn, started)
    assert exchange_sql.get_exchange(conn, started.name) == started
    assert exchange_sql.end_exchange(conn, started.name, "COMPLETED", when=LATER,
                                     receipt=b"receipt")
    assert exchange_sql.get_exchange(conn, started.name) == dataclasses.replace(
        started, state="COMPLETED", complete_time=LATER, receipt=b"receipt")


def test_an_event_round_trips(conn):
    _published(conn)
    approved = Event(recipient="sz-market", type="ACCESS_REQUEST_APPROVED",
                     resource=REQUEST.name, dataset=BEDS, actor="urn:govshare:agency:x",
                     summary="approved", create_time=NOW)
    events_sql.insert_event(conn, approved)
    [event] = events_sql.events_for(conn, "sz-market", [], after=0, limit=10, now=NOW)
    assert event.seq > 0
    assert event == dataclasses.replace(approved, seq=event.seq)


def test_an_audit_leaf_and_a_checkpoint_round_trip(conn):
    leaf = AuditLeaf(leaf_index=0, record=b'{"action":"test"}', create_time=NOW,
                     actor="urn:govshare:agency:gd-health", action="test", outcome="ALLOWED",
                     subjects=audit_sql.frame(["agencies/gd-health"]))
    audit_sql.insert_leaves(conn, [leaf])
    assert audit_sql.get_leaf(conn, 0) == leaf
    assert audit_sql.list_leaves(conn, after=-1, limit=10) == [leaf]
    checkpoint = Checkpoint(tree_size=1, root_hash=b"\x01" * 32, note=b"origin\n1\n...\n",
                            create_time=NOW)
    audit_sql.insert_checkpoint(conn, checkpoint)
    assert audit_sql.latest_checkpoint(conn) == checkpoint
    assert audit_sql.checkpoints(conn) == [checkpoint]
