"""Schema migrations carry existing data forward."""

from __future__ import annotations

import json
from pathlib import Path

import sqlite_utils

from gateway.audit import merkle
from gateway.storage import Database
from gateway.storage import audit as sql
from gateway.storage.schema import MIGRATIONS


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
    assert sql.list_leaves(conn, after=-1, limit=10, any_subject=["agencies/b/datasets/d"])[0][
        "leaf_index"] == 0
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
