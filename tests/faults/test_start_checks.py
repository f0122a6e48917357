"""`govshare gateway serve` over files it cannot serve with: one line "refusing to serve: ..."
naming what to fix, exit code 1, no traceback, and nothing written."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from gateway import config as config_module
from gateway.network import lay_out
from gateway.server import StartError, create_server
from gateway.storage import Database
from tests.support.commands import refusal, serve
from tests.support.network import AGENCIES, start_network
from tests.support.stopped import edit

GARBAGE = b"-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n"


@pytest.fixture
def layout(tmp_path):
    return lay_out(tmp_path / "net", AGENCIES)


# -- the config and the [tls] files --------------------------------------------------------------


@pytest.mark.parametrize("key", ["ca", "certificate", "key", "signing_key"])
def test_a_garbage_tls_file_is_named_by_its_key_and_path(layout, key):
    garbage = layout.root / "garbage.pem"
    garbage.write_bytes(GARBAGE)
    edit(layout.config_path, f'\n{key} = "', f'\n{key} = "garbage.pem"\n# was "')
    line = refusal(serve(layout.config_path))
    assert line.startswith(f"[tls] {key}: {garbage} is not what it should be")
    assert not (layout.root / "govshare.db").exists()


@pytest.mark.parametrize("key", ["key", "signing_key"])
def test_an_encrypted_key_is_named_with_what_to_do(layout, key):
    name = "tls.key" if key == "key" else "signing.key"
    plain = layout.certs("gateway") / name
    loaded = serialization.load_pem_private_key(plain.read_bytes(), None)
    plain.write_bytes(loaded.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"a passphrase")))
    line = refusal(serve(layout.config_path))
    assert line == (f"[tls] {key}: {layout.config_path.parent / 'certs/gateway' / name} is"
                    " encrypted, and the gateway has no passphrase to give: store it"
                    " unencrypted, mode 0600")


def test_a_tls_key_of_another_certificate_is_named_not_taken_for_a_busy_port(layout):
    other_key = layout.certs("gd-health") / "tls.key"
    edit(layout.config_path, 'key = "certs/gateway/tls.key"', f'key = "{other_key}"')
    line = refusal(serve(layout.config_path))
    assert line.startswith(f"[tls] key {other_key} is not the key of [tls] certificate"
                           " certs/gateway/tls.pem")
    assert "in use" not in line


def test_a_toml_syntax_error_names_the_file(layout):
    edit(layout.config_path, "[server]", "[server\n")
    assert refusal(serve(layout.config_path)).startswith(
        f"{layout.config_path} is not valid TOML: ")


def test_values_that_would_misbehave_are_refused_naming_their_key(layout):
    edit(layout.config_path, "grace_seconds = 10.0", "grace_seconds = inf")
    assert refusal(serve(layout.config_path)) == (
        f"{layout.config_path}: [server] grace_seconds must be a finite number, got inf")
    edit(layout.config_path, "grace_seconds = inf", "grace_seconds = 10.0")
    assert refusal(serve(layout.config_path, "--listen", "127.0.0.1:99999")).startswith(
        "with the flags given, [server] listen must be host:port with a host and a port from 0"
        " to 65535")


# -- the database --------------------------------------------------------------------------------


def test_a_hard_linked_database_refuses_to_start(layout):
    config = config_module.load(layout.config_path)
    database = config.path(config.storage.database)
    Database(database).close()
    os.link(database, layout.root / "copy.db")
    before = database.read_bytes()
    with pytest.raises(StartError, match=f"the database {database} has 2 names \\(hard links\\)"):
        create_server(config)
    assert database.read_bytes() == before


def _damage(database: Path, table: str) -> None:
    """Overwrite the pages holding `table` and its indexes, as a bad disk would."""
    conn = sqlite3.connect(database)
    pages = [row[0] for row in conn.execute(
        "SELECT rootpage FROM sqlite_schema WHERE tbl_name = ? AND rootpage > 0", (table,))]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with database.open("r+b") as handle:
        for page in pages:
            handle.seek((page - 1) * size)
            handle.write(b"\xff" * size)


@pytest.fixture
def stopped(tmp_path):
    """A network whose gateway ran once and stopped: its database holds a signed log."""
    network = start_network(tmp_path / "net")
    network.close()
    config = config_module.load(network.layout.config_path)
    return network.layout, config.path(config.storage.database)


def test_a_database_damaged_where_start_up_reads_refuses_to_start(stopped):
    layout, database = stopped
    _damage(database, "checkpoints")
    line = refusal(serve(layout.config_path))
    assert line == (f"the database {database} cannot be used: database disk image is malformed;"
                    " if it is damaged, restore it from a backup")


def test_a_database_damaged_where_start_up_writes_refuses_to_start(stopped):
    layout, database = stopped
    _damage(database, "exchanges")  # read by the first commit, which marks stopped fetches
    served = serve(layout.config_path)
    line = refusal(served)
    assert line.startswith(f"cannot write to the database {database}: the error logged with"
                           " request id ")
    request_id = line.split("request id ")[1].split()[0]
    logged = [entry for entry in served.stderr.splitlines() if request_id in entry]
    assert "database disk image is malformed" in logged[0]


def test_a_database_from_a_newer_govshare_refuses_to_start(stopped):
    layout, database = stopped
    conn = sqlite3.connect(database)
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
                 " VALUES ('govshare', '0099_from_a_newer_gateway', '2030-01-01')")
    conn.commit()
    conn.close()
    line = refusal(serve(layout.config_path))
    assert line.startswith(f"cannot open database {database}: it was written by a newer govshare"
                           " (schema migrations 0099_from_a_newer_gateway are unknown")


def test_a_new_blob_folder_for_a_database_with_content_refuses_to_start(tmp_path):
    network = start_network(tmp_path / "net")
    try:
        with network.agency("gd-health") as owner:
            owner.publish("survey", b"a,b\n1,2\n", title="Survey", media_type="CSV",
                          sharing_type="UNCONDITIONAL")
    finally:
        network.close()
    config_path = network.layout.config_path
    edit(config_path, 'blobs = "blobs"', 'blobs = "blobs-new"')
    line = refusal(serve(config_path))
    assert line.startswith(f"the database {network.layout.root / 'govshare.db'} names 1 stored"
                           f" contents and the blob folder {network.layout.root / 'blobs-new'}"
                           " holds none and names no database: the database's content is"
                           " elsewhere; set [storage] blobs to the folder holding it")
    assert not (network.layout.root / "blobs-new" / "database").exists()
