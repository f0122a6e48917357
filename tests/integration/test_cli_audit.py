"""`govshare audit ...` over a real gateway's database: list, show, verify, export, proofs."""

from __future__ import annotations

import base64
import csv
import io
import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner, Result

from gateway.cli import cli
from gateway.cli.audit import audit
from govshare.transparency import merkle, note


def run(network, *args: str | Path) -> Result:
    config = network.layout.config_path
    return CliRunner().invoke(cli, ["audit", "--config", str(config), *map(str, args)],
                              env={"COLUMNS": "200"})


def ok(network, *args: str | Path) -> Result:
    result = run(network, *args)
    assert result.exit_code == 0, result.output
    return result


def database(network) -> Path:
    return network.layout.root / "govshare.db"


def edit(network, sql: str, *params: object) -> None:
    with sqlite3.connect(database(network)) as conn:
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute(sql, params)
    conn.close()


def test_every_command_has_help_text() -> None:
    assert audit.help
    for name, command in audit.commands.items():
        assert command.help, name


def test_list_and_show(network):
    table = ok(network, "list").output
    assert "directory.register" in table and "agencies/sz-market" in table
    lines = ok(network, "list", "--json", "--agency", "agencies/sz-market").output.splitlines()
    assert [json.loads(line)["leaf_index"] for line in lines] == [1]
    assert ok(network, "list", "--json", "--outcome", "REFUSED").output == ""
    shown = json.loads(ok(network, "show", "auditEvents/2").output)
    assert shown["resources"] == ["agencies/zj-stats"]
    assert bytes.fromhex(shown["leaf_hash"]) == merkle.leaf_hash(shown["record"].encode())
    assert run(network, "show", "99").exit_code == 1
    assert run(network, "show", "x").exit_code == 2


def test_verify_intact_then_a_modified_record(network, tmp_path):
    saved = tmp_path / "checkpoint.txt"
    result = ok(network, "verify", "--save-checkpoint", saved)
    assert result.stdout.startswith("OK: 3 entries")
    vkey = (network.layout.root / "audit.vkey").read_text().strip()
    checkpoint = note.Checkpoint.parse(note.open_note(
        saved.read_bytes(), [note.NoteVerifier.from_verifier_key(vkey)]))
    assert checkpoint.size == 3
    edit(network, "UPDATE audit_leaves SET record = replace(record, 'zj-stats', 'zj-stat5')"
         " WHERE leaf_index = 2")
    result = run(network, "verify", "--key", vkey)
    assert result.exit_code == 1
    assert "modified record at position 2" in result.output


def test_verify_against_a_saved_checkpoint_catches_truncation(network, tmp_path):
    saved = tmp_path / "checkpoint.txt"
    ok(network, "verify", "--save-checkpoint", saved)
    network.server.stop(grace=1)
    for sql in ("DELETE FROM audit_leaves WHERE leaf_index = 2",
                "DELETE FROM tree_nodes WHERE id >= 3",  # leaf 2's hash: stored_index(0, 2)
                "DELETE FROM checkpoints WHERE tree_size = 3",
                "DELETE FROM audit_subject_index WHERE leaf_index >= 2",
                "UPDATE audit_subject_index_state SET upto = min(upto, 2)"):
        edit(network, sql)
    # The checkpoint the gateway saved beside the database tells already; without it, the log
    # is consistent by itself, and only the checkpoint saved earlier tells.
    assert "truncation or fork at position 0" in run(network, "verify").output
    network.gateway.log.saved.path.unlink()
    ok(network, "verify")
    result = run(network, "verify", "--against", saved)
    assert result.exit_code == 1
    # A signed root alone cannot tell a truncation from a shorter fork.
    assert "truncation or fork at position 0" in result.output


def test_export_with_proofs_lets_an_outsider_rebuild_and_prove(network, tmp_path):
    lines = ok(network, "export", "--proofs").stdout.splitlines()
    items = [json.loads(line) for line in lines]
    assert [item["leaf_index"] for item in items] == [0, 1, 2]
    leaves = [merkle.leaf_hash(base64.b64decode(item["record"])) for item in items]
    root = merkle.root_from_leaf_hashes(leaves)
    for item, leaf in zip(items, leaves, strict=True):
        proof = [base64.b64decode(h) for h in item["inclusion_proof"]]
        merkle.verify_inclusion(leaf, item["leaf_index"], item["tree_size"], proof, root)
    rows = list(csv.DictReader(io.StringIO(ok(network, "export", "--format", "csv",
                                                 "--action", "directory.register").output)))
    assert [row["leaf_index"] for row in rows] == ["0", "1", "2"]
    assert rows[0]["resources"] == "agencies/gd-health"


def test_proof_file_checks_offline_and_tampering_fails(network, tmp_path):
    proof_file = tmp_path / "event.tlog-proof"
    ok(network, "proof", "1", "--output", proof_file)
    text = proof_file.read_text()
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ")
    assert "\nindex 1\n" in text
    vkey = (network.layout.root / "audit.vkey").read_text().strip()
    checked = CliRunner().invoke(cli, ["audit", "check-proof", str(proof_file), "--key", vkey])
    assert checked.exit_code == 0, checked.output
    assert "leaf 1 (directory.register" in checked.output
    lines = text.split("\n")
    lines[2] = "index 0"
    proof_file.write_text("\n".join(lines))
    failed = CliRunner().invoke(cli, ["audit", "check-proof", str(proof_file), "--key", vkey])
    assert failed.exit_code == 1
    assert "inclusion proof fails" in failed.output
    assert run(network, "proof", "7").exit_code == 1


def test_config_may_follow_the_command(network):
    config = str(network.layout.config_path)
    after = CliRunner().invoke(cli, ["audit", "verify", "--config", config])
    assert after.exit_code == 0, after.output
    missing = CliRunner().invoke(cli, ["audit", "list"])
    assert missing.exit_code == 2
    assert "--config" in missing.output


def test_agency_filter_takes_a_bare_id_and_refuses_malformed_names(network):
    named = ok(network, "list", "--json", "--agency", "agencies/sz-market").output
    assert named and ok(network, "list", "--json", "--agency", "sz-market").output == named
    for option, value in (("--agency", "agencies/sz-market/datasets/x"),
                          ("--dataset", "beds")):
        refused = run(network, "list", option, value)
        assert refused.exit_code == 2 and value in refused.output


def test_show_refuses_an_index_beyond_int64_without_a_traceback(network):
    for event in ("auditEvents/9999999999999999999", "9223372036854775808"):
        refused = run(network, "show", event)
        assert refused.exit_code == 2, refused.output
        assert "0 to 9223372036854775807" in refused.output
        assert refused.exception is None or isinstance(refused.exception, SystemExit)
    assert run(network, "show", "9223372036854775807").exit_code == 1  # does not exist


def test_tables_fold_resource_names_instead_of_cutting_them(network):
    narrow = CliRunner().invoke(cli, ["audit", "--config", str(network.layout.config_path),
                                      "list"], env={"COLUMNS": "60"})
    assert narrow.exit_code == 0, narrow.output
    assert "…" not in narrow.output
    assert "urn:govshare:admin:admin" in "".join(
        cell.strip() for line in narrow.output.splitlines() for cell in line.split("│")[3:4])


def test_cli_list_refuses_a_limit_below_one(network):
    for option, value in (("--limit", "0"), ("--limit", "-1"), ("--after", "-2")):
        result = run(network, "list", option, value)
        assert result.exit_code == 2 and option in result.output
