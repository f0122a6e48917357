"""A log never signs two histories: a gateway refuses a database whose audit log does not extend
the checkpoint it saved outside it (a restored backup, a fork), signs nothing then, and a lost
database continues under a new origin that records the old log's last checkpoint."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from agencies.client import AgencyClient
from gateway import config as config_module
from gateway.audit.log import AuditLog
from gateway.server import create_server
from gateway.storage import Database
from gateway.storage.schema import MIGRATIONS
from gateway.unit_of_work import UnitOfWork
from govshare.signing import SigningKey
from govshare.transparency import note, record
from tests.support.commands import new_origin, refusal, serve, verify
from tests.support.stopped import NEW, Stopped, b64, edit, restore_older


def expected_refusal(stopped: Stopped, size: int, root: bytes, saved: note.Checkpoint) -> str:
    return (f"the database {stopped.database} holds an audit log of {size} leaves with root"
            f" {b64(root)}, which does not extend the checkpoint this log signed and saved in"
            f" {stopped.checkpoint_file} (size {saved.size}, root {b64(saved.root_hash)}): the"
            " database is older than the log already published (a restored backup?) or a copy"
            " that went its own way; put back the newest database or, if it is lost, continue"
            " the log under a new origin (govshare gateway new-origin, see"
            " docs/RELIABILITY.md)")


def assert_refused_unchanged(stopped: Stopped, line: str) -> None:
    """The start was refused with `line`, and neither the database nor the saved checkpoint
    changed: nothing was signed."""
    before = (stopped.database.read_bytes(), stopped.checkpoint_file.read_bytes())
    assert refusal(serve(stopped.config_path)) == line
    assert (stopped.database.read_bytes(), stopped.checkpoint_file.read_bytes()) == before


def test_a_restored_older_database_is_refused_and_signs_nothing(stopped, tmp_path):
    size, root = restore_older(stopped, tmp_path)
    saved = stopped.saved()
    assert saved.size == size + 2
    assert_refused_unchanged(stopped, expected_refusal(stopped, size, root, saved))
    assert stopped.checkpoints()[-1][0] == size  # no checkpoint of a size already signed


def test_a_forked_database_of_the_same_size_is_refused(stopped, tmp_path):
    fork_point = stopped.copy(tmp_path / "fork-point.db")
    saved_then = stopped.checkpoint_file.read_bytes()
    stopped.run("test.one_history")
    published = stopped.checkpoint_file.read_bytes()
    stopped.put_back(fork_point)  # the other history grows from the same point
    stopped.checkpoint_file.write_bytes(saved_then)
    stopped.run("test.another_history")
    stopped.checkpoint_file.write_bytes(published)
    size, root, _ = stopped.checkpoints()[-1]
    saved = stopped.saved()
    assert saved.size == size and saved.root_hash != root
    assert_refused_unchanged(stopped, expected_refusal(stopped, size, root, saved))


def test_a_deleted_checkpoint_file_is_no_bypass(stopped, tmp_path):
    restore_older(stopped, tmp_path)
    stopped.checkpoint_file.unlink()
    size = stopped.checkpoints()[-1][0]
    line = refusal(serve(stopped.config_path))
    assert line == (f"the database {stopped.database} holds an audit log of {size} leaves, but"
                    f" its saved checkpoint {stopped.checkpoint_file} is missing, so nothing"
                    " shows the database is the newest: put the file back; on the first start"
                    " after upgrading govshare, or if you know this database is the newest,"
                    " start once with --checkpoint-from-database")
    assert not stopped.checkpoint_file.exists()
    # The operator vouches for the database: its latest checkpoint is saved, the start is
    # audited (audit.checkpoint_vouched), and the log grows.
    stopped.run("test.vouched", checkpoint_from_database=True)
    assert stopped.saved().size == size + 2


def test_a_database_that_extends_the_saved_checkpoint_starts(stopped):
    """A crash after a commit but before its checkpoint was saved leaves the file behind the
    database: start-up accepts it and catches the file up."""
    behind = stopped.checkpoint_file.read_bytes()
    stopped.run("test.committed")
    stopped.checkpoint_file.write_bytes(behind)
    stopped.run("test.next")
    assert stopped.saved().size == stopped.checkpoints()[-1][0]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` and its content."""
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@contextlib.contextmanager
def serving(stopped: Stopped, agency: str) -> Iterator[AgencyClient]:
    """The gateway started on the stopped network's files, and a client of `agency`; the
    gateway stops after the block."""
    server = create_server(config_module.load(stopped.config_path))
    server.start()
    try:
        with AgencyClient(f"127.0.0.1:{server.port}", stopped.network.layout.certs(agency),
                          server_name="localhost") as client:
            yield client
    finally:
        server.stop(grace=1)


AFTER_BACKUP = "agencies/gd-health/datasets/after-backup"


def test_a_restored_backup_refused_at_start_deletes_no_newer_content(stopped, tmp_path):
    backup = stopped.copy(tmp_path / "backup.db")
    with serving(stopped, "gd-health") as owner:  # only the newest database names its blob
        owner.publish("after-backup", b"a,b\n1,2\n", title="after", media_type="CSV",
                      classification="PUBLIC", sharing_type="UNCONDITIONAL")
    newest = stopped.copy(tmp_path / "newest.db")
    config = config_module.load(stopped.config_path)
    blobs = config.path(config.storage.blobs)
    content = folder_bytes(blobs)
    assert any(name.startswith("agencies/gd-health/sha256/") for name in content)

    stopped.put_back(backup)  # by mistake: the start is refused and changes nothing
    size, root, _ = stopped.checkpoints()[-1]
    assert_refused_unchanged(stopped, expected_refusal(stopped, size, root, stopped.saved()))
    assert folder_bytes(blobs) == content

    stopped.put_back(newest)  # the newest database serves its content again
    with serving(stopped, "zj-stats") as reader:
        reader.request_access(AFTER_BACKUP, purpose="STATISTICS", purpose_text="statistics",
                              legal_basis="Statistics Law of the PRC, article 7")
        reader.fetch(AFTER_BACKUP, to=tmp_path / "got.csv")
    assert (tmp_path / "got.csv").read_bytes() == b"a,b\n1,2\n"


PREVIOUS_RELEASE_ENDS_BEFORE = "0012_sharing_terms_of_versions_and_grants"
"""The first schema migration the previous release of govshare does not know."""


def previous_release_database(stopped: Stopped) -> None:
    """Replace the network's database with one as the previous release leaves it: its schema
    (no migration from PREVIOUS_RELEASE_ENDS_BEFORE on) and an audit log signed by the
    gateway's key, but no checkpoint file (that release wrote none)."""
    config = config_module.load(stopped.config_path)
    for name in ("", "-wal", "-shm"):
        Path(f"{stopped.database}{name}").unlink(missing_ok=True)
    stopped.checkpoint_file.unlink()
    old = sqlite_utils.Database(stopped.database)
    MIGRATIONS.apply(old, stop_before=PREVIOUS_RELEASE_ENDS_BEFORE)
    old.close()
    signer = note.NoteSigner(config.audit.origin,
                             SigningKey.load(config.path(config.tls.signing_key)))
    log = AuditLog(Database(stopped.database, migrated=False), signer, config.audit.origin,
                   checkpoint_file=stopped.checkpoint_file)
    work = UnitOfWork(log.db, log)
    log.open(work)
    work.append([record.Event("urn:govshare:test", "test.previous_release")])
    work.close()
    log.close()
    log.db.close()
    stopped.checkpoint_file.unlink()  # the file the log wrote, which that release would not


def test_an_upgrade_refused_for_a_missing_checkpoint_file_leaves_the_old_database(stopped):
    previous_release_database(stopped)
    before = stopped.database.read_bytes()
    assert refusal(serve(stopped.config_path)) == (
        f"the database {stopped.database} holds an audit log of 1 leaves, but its saved"
        f" checkpoint {stopped.checkpoint_file} is missing, so nothing shows the database is"
        " the newest: put the file back; on the first start after upgrading govshare, or if"
        " you know this database is the newest, start once with --checkpoint-from-database")
    assert stopped.database.read_bytes() == before  # no migration of the new release applied
    assert not stopped.checkpoint_file.exists()
    # the operator vouches for it: the new release migrates it and serves
    stopped.run("test.upgraded", checkpoint_from_database=True)
    applied = {m.name for m in MIGRATIONS.applied(sqlite_utils.Database(stopped.database))}
    assert PREVIOUS_RELEASE_ENDS_BEFORE in applied


def test_a_lost_database_continues_under_a_new_origin(stopped, tmp_path):
    size, _ = restore_older(stopped, tmp_path)
    ended_signed = stopped.saved_note()
    ended = stopped.saved()
    old_vkey = stopped.vkey

    refused = new_origin(stopped.config_path)  # the origin must change first
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        "Error: no new origin: the saved checkpoint is of origin govshare.local/audit, which"
        " [audit] origin still names: set [audit] origin to a name this log never had, and add"
        " the line audit.vkey holds to [audit] previous_verifier_keys")

    edit(stopped.config_path, 'origin = "govshare.local/audit"\n', f'origin = "{NEW}"\n')
    edit(stopped.config_path, "previous_verifier_keys = []",
         f'previous_verifier_keys = ["{old_vkey}"]')
    epoch = _replication_epoch(stopped.database)
    done = new_origin(stopped.config_path)
    assert done.returncode == 0, done.stderr
    # The backup numbers its changes again: the other members must take them anew.
    assert _replication_epoch(stopped.database) != epoch
    assert done.stdout.strip() == (
        f"the log continues as {NEW}: leaf {size} records the previous origin's last"
        f" checkpoint, and checkpoint {size + 1} is saved in {stopped.checkpoint_file}")

    stopped.run("test.after_recovery")  # the gateway starts again
    conn = sqlite3.connect(stopped.database)
    link = conn.execute("SELECT record FROM audit_leaves WHERE leaf_index = ?",
                        (size,)).fetchone()[0]
    conn.close()
    fields = record.decode(link)
    assert (fields["action"], fields["reason"]) == (record.NEW_ORIGIN, ended_signed.decode())
    for tree_size, _, signed in stopped.checkpoints():
        origin = bytes(signed).decode().splitlines()[0]
        assert origin == ("govshare.local/audit" if tree_size <= size else NEW)
    assert stopped.checkpoints()[-1][0] == size + 2

    verified = verify(stopped)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.splitlines()[-1] == (
        f"leaf {size} begins a new origin, continuing govshare.local/audit after its"
        f" checkpoint of size {ended.size}, root {b64(ended.root_hash)}")



def _replication_epoch(database: Path) -> str:
    with contextlib.closing(sqlite3.connect(database)) as conn:
        return conn.execute("SELECT epoch FROM network_epoch").fetchone()[0]
