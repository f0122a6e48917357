"""Schema migrations carry existing data forward; a database from a newer schema is refused."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import sqlite_utils

from gateway.audit import verify
from gateway.audit.log import AuditLog
from gateway.models import Cosignature
from gateway.storage import Database, StorageError, schema
from gateway.storage import audit as sql
from gateway.storage import witness as witness_sql
from gateway.storage.schema import MIGRATIONS
from gateway.unit_of_work import UnitOfWork
from govshare.signing import SigningKey
from govshare.transparency import merkle, note
from govshare.transparency.record import Event

ORIGIN = "test.local/audit"
SIGNER = note.NoteSigner(ORIGIN, SigningKey.from_seed(bytes(range(32))))


def test_audit_subjects_move_from_rows_into_their_leaves(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    MIGRATIONS.apply(old, stop_before="0005_audit_subjects_inline")
    subjects = ["agencies/a", "agencies/b/datasets/d"]
    for index, names in enumerate([subjects, []]):
        record = json.dumps({"actor": "urn:x", "subjects": names}).encode()
        old.execute("INSERT INTO audit_leaves VALUES (?, ?, 't', 'urn:x', 'act', 'ALLOWED')",
                    [index, record])
        for name in names:
            old.execute("INSERT INTO audit_subjects VALUES (?, ?)", [name, index])
    old.conn.commit()
    old.close()

    conn = Database(path).writer
    stored = conn.execute("SELECT subjects FROM audit_leaves ORDER BY leaf_index").fetchall()
    assert [row[0] for row in stored] == [sql.frame(subjects), ""]
    assert sql.list_leaves(conn, after=-1, limit=10,
                           any_subject=["agencies/b/datasets/d"])[0].leaf_index == 0
    assert sql.list_leaves(conn, after=-1, limit=10, any_subject=["agencies/b"]) == []
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema")}
    assert "audit_subjects" not in tables and "audit_leaves_actor" not in tables


def test_tree_nodes_are_rekeyed_by_their_append_order(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    MIGRATIONS.apply(old, stop_before="0006_tree_nodes_in_append_order")
    frontier = merkle.Frontier()
    completed = [node for n in range(21) for node in frontier.append(bytes([n]) * 32)]
    old["tree_nodes"].insert_all(
        [{"level": level, "idx": idx, "hash": digest} for level, idx, digest in completed])
    old.close()

    conn = Database(path).writer
    stored = conn.execute("SELECT id, hash FROM tree_nodes ORDER BY id").fetchall()
    assert stored == [(merkle.stored_index(level, idx), digest)
                      for level, idx, digest in completed]
    assert merkle.root_at(21, lambda coords: sql.fetch_nodes(conn, coords)) == frontier.root()


def test_a_log_written_before_both_migrations_opens_and_verifies(tmp_path: Path) -> None:
    # A gateway upgraded in place recomputes its root at start-up and refuses to serve if it
    # differs from the last signed checkpoint: the migrations must keep the log intact.
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    MIGRATIONS.apply(old, stop_before="0005_audit_subjects_inline")
    frontier = merkle.Frontier()
    for index in range(37):
        event = Event(actor=f"urn:govshare:agency:a{index % 3}", action="catalog.get",
                      resources=(f"agencies/a{index % 3}/datasets/d{index}",),
                      agencies=(f"agencies/a{index % 3}",))
        old.execute("INSERT INTO audit_leaves VALUES (?, ?, ?, ?, ?, ?)",
                    [index, event.record, event.time, event.actor, event.action, event.outcome])
        for subject in event.subjects:
            old.execute("INSERT INTO audit_subjects VALUES (?, ?)", [subject, index])
        for level, idx, digest in frontier.append(event.leaf_hash):
            old.execute("INSERT INTO tree_nodes VALUES (?, ?, ?)", [level, idx, digest])
    text = note.Checkpoint(ORIGIN, frontier.size, frontier.root()).to_text()
    old.execute("INSERT INTO checkpoints VALUES (?, ?, ?, 't')",
                [frontier.size, frontier.root(), note.sign_note(text, [SIGNER])])
    old.conn.commit()
    old.close()

    log = AuditLog(Database(path), SIGNER, ORIGIN, checkpoint_file=path.with_suffix(".checkpoint"))
    # A database from before the saved checkpoint file; LogIntegrityError if the stored tree
    # no longer matches.
    work = UnitOfWork(log.db, log)
    log.open(work, checkpoint_from_database=True)
    try:
        assert log.inclusion_proof(5, 37) == merkle.inclusion_proof(
            5, 37, lambda coords: sql.fetch_nodes(log.db.reader(), coords))
        report = verify.verify_log(log.db.reader(), SIGNER.verifier())
        assert report.ok, report.problems
        visible = sql.list_leaves(log.db.reader(), after=-1, limit=100,
                                  any_subject=["agencies/a1"])
        assert [row.leaf_index for row in visible] == list(range(1, 37, 3))
    finally:
        work.close()
        log.close()


def test_a_database_from_a_newer_govshare_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    newer = sqlite_utils.Database(path)
    MIGRATIONS.apply(newer, stop_before="0010_pending_access_requests")
    newer["_sqlite_migrations"].insert({"migration_set": "govshare", "name": "0099_future",
                                        "applied_at": "2030-01-01"})
    before = [m.name for m in MIGRATIONS.applied(newer)], newer.schema
    newer.close()
    with pytest.raises(StorageError, match=(
            f"cannot open database {path}: it was written by a newer govshare \\(schema"
            " migrations 0099_future are unknown to this one\\)")):
        Database(path)
    after = sqlite_utils.Database(path)
    assert ([m.name for m in MIGRATIONS.applied(after)], after.schema) == before  # no 0010


def _signed_manifest(classification: int, sharing_type: int) -> bytes:
    from gateway.v1 import catalog_pb2, envelope_pb2

    manifest = catalog_pb2.Manifest(dataset="agencies/gd-health/datasets/d", version=1,
                                    classification=classification, sharing_type=sharing_type)
    return envelope_pb2.Envelope(payload_type="application/vnd.govshare.manifest.v1+proto",
                                 payload=manifest.SerializeToString()).SerializeToString()


def test_existing_grants_get_the_terms_of_the_latest_version_when_they_were_given(
        tmp_path: Path) -> None:
    """v1 CONFIDENTIAL and CONDITIONAL at t1, v2 PUBLIC and UNCONDITIONAL at t3: a grant given
    at t2 covers v1's terms, one given at t4 only v2's, one older than every version (none
    can be) the narrowest terms; a version whose manifest cannot be read counts as
    NOT_SHARED."""
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    MIGRATIONS.apply(old, stop_before="0012_sharing_terms_of_versions_and_grants")
    dataset = "agencies/gd-health/datasets/d"
    for agency in ("gd-health", "sz-market"):
        old.execute("INSERT INTO agencies VALUES (?, '', '440000', '', ?, 'ACTIVE', '', 't',"
                    " 't', '[]')", [agency, agency])
    old.execute("INSERT INTO datasets (name, publisher, region_code, latest_version, state,"
                " classification, sharing_type, title, abstract, tags, field_names,"
                " create_time, update_time) VALUES (?, 'gd-health', '440000', 3, 'ACTIVE',"
                " 'INTERNAL', 'NOT_SHARED', '', '', '', '', 't1', 't5')", [dataset])
    old.execute("INSERT INTO access_requests (name, requester, owner, dataset, request_id,"
                " statement_digest, signed_statement, state, state_reason, create_time)"
                " VALUES ('r', 'sz-market', 'gd-health', ?, 'r', '', x'', 'APPROVED', '',"
                " 't0')", [dataset])
    versions = [(1, "CONFIDENTIAL", _signed_manifest(3, 2), "t1"),
                (2, "PUBLIC", _signed_manifest(1, 1), "t3"),
                (3, "INTERNAL", b"\xff not a manifest", "t5")]
    for version, classification, signed, when in versions:
        old["dataset_versions"].insert({
            "name": f"{dataset}/versions/{version}", "dataset": dataset, "version": version,
            "signed_manifest": signed, "content_sha256": "", "content_size": 0,
            "create_time": when, "audit_leaf_index": version, "classification": classification})
    for grant, when in (("before", "t0"), ("under-v1", "t2"), ("under-v2", "t4")):
        old["grants"].insert({
            "name": f"agencies/sz-market/grants/{grant}", "grantee": "sz-market",
            "owner": "gd-health", "dataset": dataset, "access_request": "r", "fields": "[]",
            "state": "ACTIVE", "signed_statement": b"", "create_time": when,
            "expire_time": "t9"})
    old.close()

    conn = Database(path).writer
    assert conn.execute("SELECT version, sharing_type FROM dataset_versions ORDER BY version"
                        ).fetchall() == [(1, "CONDITIONAL"), (2, "UNCONDITIONAL"),
                                         (3, "NOT_SHARED")]
    assert conn.execute("SELECT name, max_classification, max_sharing_type FROM grants"
                        " ORDER BY seq").fetchall() == [
        ("agencies/sz-market/grants/before", "PUBLIC", "UNCONDITIONAL"),
        ("agencies/sz-market/grants/under-v1", "CONFIDENTIAL", "CONDITIONAL"),
        ("agencies/sz-market/grants/under-v2", "PUBLIC", "UNCONDITIONAL"),
    ]


def _signed_request(fields: list[str]) -> bytes:
    from gateway.v1 import envelope_pb2, exchange_pb2

    statement = exchange_pb2.AccessRequestStatement(
        requester="agencies/sz-market", dataset="agencies/gd-health/datasets/d", fields=fields)
    return envelope_pb2.Envelope(payload_type="application/vnd.govshare.access-request.v1+proto",
                                 payload=statement.SerializeToString()).SerializeToString()


def test_a_grant_wider_than_its_request_from_an_earlier_release_is_revoked(
        tmp_path: Path) -> None:
    """An earlier release granted every field at once to requests naming a few: after the
    upgrade such a grant in force is revoked (its signed statement kept as given), so its
    grantee fetches no column it did not ask for; a grant its request's fields match, one for
    a request naming none, and one no longer in force are left as they were."""
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    MIGRATIONS.apply(old, stop_before="0014_grants_wider_than_their_requests")
    dataset = "agencies/gd-health/datasets/d"
    for agency in ("gd-health", "sz-market"):
        old.execute("INSERT INTO agencies VALUES (?, '', '440000', '', ?, 'ACTIVE', '', 't',"
                    " 't', '[]')", [agency, agency])
    cases = {  # grant: (fields its request named, the grant's fields, state, expire_time)
        "wide": (["region"], "[]", "ACTIVE", "9999-01-01T00:00:00.000000Z"),
        "wide-two": (["region", "beds"], "[]", "ACTIVE", "9999-01-01T00:00:00.000000Z"),
        "narrow": (["region"], '["region"]', "ACTIVE", "9999-01-01T00:00:00.000000Z"),
        "whole": ([], "[]", "ACTIVE", "9999-01-01T00:00:00.000000Z"),
        "expired": (["region"], "[]", "ACTIVE", "2020-01-01T00:00:00.000000Z"),
        "revoked": (["region"], "[]", "REVOKED", "9999-01-01T00:00:00.000000Z"),
    }
    for grant, (asked, fields, state, expire) in cases.items():
        old["access_requests"].insert({
            "name": f"r-{grant}", "requester": "sz-market", "owner": "gd-health",
            "dataset": dataset, "request_id": grant, "statement_digest": "",
            "signed_statement": _signed_request(asked), "state": "APPROVED",
            "state_reason": "", "create_time": "2024-01-01T00:00:00.000000Z"})
        old["grants"].insert({
            "name": f"agencies/sz-market/grants/{grant}", "grantee": "sz-market",
            "owner": "gd-health", "dataset": dataset, "access_request": f"r-{grant}",
            "fields": fields, "state": state, "signed_statement": grant.encode(),
            "create_time": "2024-01-01T00:00:00.000000Z", "expire_time": expire,
            "revoke_reason": "merged" if state == "REVOKED" else ""})
    old.close()

    conn = Database(path).writer
    found = {row[0].rsplit("/", 1)[1]: row[1:] for row in conn.execute(
        "SELECT name, state, revoke_reason, fields, signed_statement, revoke_time IS NULL"
        " FROM grants")}
    assert found == {
        "wide": ("REVOKED", "it covered every field, but its request asked only for region:"
                 " request access again", "[]", b"wide", False),
        "wide-two": ("REVOKED", "it covered every field, but its request asked only for"
                     " region, beds: request access again", "[]", b"wide-two", False),
        "narrow": ("ACTIVE", "", '["region"]', b"narrow", True),
        "whole": ("ACTIVE", "", "[]", b"whole", True),
        "expired": ("ACTIVE", "", "[]", b"expired", True),
        "revoked": ("REVOKED", "merged", "[]", b"revoked", True),
    }


def test_migrations_call_no_live_code() -> None:
    """A migration runs once, on whatever database it meets, possibly years later: code of the
    gateway it called could have changed by then, and a fresh database would get a different
    history than an upgraded one. So the schema module imports nothing of govshare's own."""
    tree = ast.parse(Path(schema.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    own = sorted(name for name in imported
                 if name and name.split(".")[0] in ("gateway", "govshare", "agencies", "certs"))
    assert own == []


def test_cosignatures_are_keyed_by_origin_and_size(tmp_path: Path) -> None:
    """Cosignatures kept before the origin was part of their key take the origin of the
    checkpoint stored at their size; after that, a checkpoint of another origin at the same
    size gets none of them, and each origin's latest sizes are its own."""
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    MIGRATIONS.apply(old, stop_before="0016_cosignatures_by_origin")
    old.execute("INSERT INTO checkpoints VALUES (5, x'00', ?, 't')",
                [f"{ORIGIN}\n5\nroot\n\n".encode()])
    old.execute("INSERT INTO cosignatures VALUES (5, 'bj-gateway', 'line5', 't')")
    old.execute("INSERT INTO cosignatures VALUES (7, 'bj-gateway', 'line7', 't')")
    old.close()

    conn = Database(path).writer
    assert [(c.origin, c.tree_size) for c in witness_sql.cosignatures(conn, ORIGIN, 5)] == [
        (ORIGIN, 5)]
    assert witness_sql.cosignatures(conn, "", 7)[0].line == "line7"  # no origin known: none
    witness_sql.insert_cosignature(conn, Cosignature("new.local/audit", 5, "bj-gateway",
                                                     "new5", "t"))
    assert [c.line for c in witness_sql.cosignatures(conn, "new.local/audit", 5)] == ["new5"]
    assert [c.line for c in witness_sql.cosignatures(conn, ORIGIN, 5)] == ["line5"]
    assert witness_sql.latest_cosigned_sizes(conn, ORIGIN) == {"bj-gateway": 5}
    assert witness_sql.latest_cosigned_size(conn, "other.local/audit") is None
