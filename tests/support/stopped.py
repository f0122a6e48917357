"""A network's files with its gateway stopped: run it again, restore an older database, edit
its configuration."""

from __future__ import annotations

import base64
import shutil
import sqlite3
from pathlib import Path

from gateway import config as config_module
from gateway.audit.saved import CheckpointFile
from gateway.server import create_server
from govshare.transparency import note, record
from tests.support.network import start_network

NEW = "govshare.local/audit/2"
"""The origin a test continues a lost database's log under."""


class Stopped:
    """A network's files with its gateway stopped, and ways to run it again."""

    def __init__(self, root: Path):
        self.network = start_network(root)
        self.network.close()
        self.config_path = self.network.layout.config_path
        config = config_module.load(self.config_path)
        self.database = config.path(config.storage.database)
        self.checkpoint_file = config.path(config.audit.checkpoint_file)
        self.vkey = config.path(config.audit.verifier_key_file).read_text().strip()

    def run(self, *events: str, **start) -> None:
        """Start the gateway, append events named `events`, stop it."""
        server = create_server(config_module.load(self.config_path), **start)
        try:
            server.gateway.work.append([record.Event("urn:govshare:test", action)
                                       for action in events])
        finally:
            server.stop(grace=1)

    def copy(self, to: Path) -> Path:
        shutil.copyfile(self.database, to)
        return to

    def put_back(self, copy: Path) -> None:
        for journal in ("-wal", "-shm"):
            Path(f"{self.database}{journal}").unlink(missing_ok=True)
        shutil.copyfile(copy, self.database)

    def saved_note(self) -> bytes:
        """The latest signed checkpoint in the checkpoint file."""
        return CheckpointFile(self.checkpoint_file).read()[0]

    def saved(self) -> note.Checkpoint:
        return self.open(self.saved_note())

    def open(self, signed: bytes) -> note.Checkpoint:
        verifiers = [note.NoteVerifier.from_verifier_key(self.vkey)]
        return note.Checkpoint.parse(note.open_note(signed, verifiers))

    def checkpoints(self) -> list[tuple[int, bytes, bytes]]:
        """(tree_size, root_hash, note) of every stored checkpoint."""
        conn = sqlite3.connect(self.database)
        try:
            return conn.execute("SELECT tree_size, root_hash, note FROM checkpoints"
                                " ORDER BY tree_size").fetchall()
        finally:
            conn.close()


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def restore_older(stopped: Stopped, tmp_path: Path) -> tuple[int, bytes]:
    """Publish more after a backup, then put the backup back; its (size, root)."""
    backup = stopped.copy(tmp_path / "backup.db")
    size, root, _ = stopped.checkpoints()[-1]
    stopped.run("test.after_backup", "test.after_backup")
    stopped.put_back(backup)
    return size, root


def set_origin(stopped: Stopped, origin: str, previous: list[str]) -> None:
    """Point [audit] origin and previous_verifier_keys of the stopped gateway elsewhere."""
    text = stopped.config_path.read_text()
    start = text.index("origin = ")
    text = text[:start] + f'origin = "{origin}"' + text[text.index("\n", start):]
    start = text.index("previous_verifier_keys = ")
    keys = ", ".join(f'"{key}"' for key in previous)
    text = (text[:start] + f"previous_verifier_keys = [{keys}]"
            + text[text.index("\n", start):])
    stopped.config_path.write_text(text)


def edit(config_path: Path, old: str, new: str) -> None:
    text = config_path.read_text()
    assert old in text
    config_path.write_text(text.replace(old, new, 1))
