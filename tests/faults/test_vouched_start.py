"""A start on the operator's word leaves a trace: `serve --checkpoint-from-database` with the
checkpoint file missing logs a WARNING naming the size and root vouched for, and records an
audit.checkpoint_vouched event, so a restored backup started that way is visible to auditors."""

from __future__ import annotations

import json
import logging

from gateway import config as config_module
from gateway.audit.log import CHECKPOINT_VOUCHED
from gateway.server import create_server
from tests.support.commands import audit
from tests.support.stopped import b64, restore_older


def test_a_restored_backup_started_on_the_operators_word_is_logged_and_audited(
        stopped, tmp_path, caplog):
    size, root = restore_older(stopped, tmp_path)
    stopped.checkpoint_file.unlink()
    reason = (f"{stopped.checkpoint_file} was missing; the operator vouched that the database"
              f" is the newest (--checkpoint-from-database), so its checkpoint of size {size},"
              f" root {b64(root)}, was saved there")
    with caplog.at_level(logging.WARNING, logger="gateway.audit.log"):
        server = create_server(config_module.load(stopped.config_path),
                               checkpoint_from_database=True)
        identity = server.gateway.identity.uri
        server.stop(grace=1)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"audit checkpoint vouched for: {reason}"]

    listed = audit(stopped.network, "list", "--action", CHECKPOINT_VOUCHED, "--json")
    assert listed.returncode == 0, listed.stderr
    events = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(e["leaf_index"], e["actor"], e["outcome"], e["reason"]) for e in events] == [
        (size, identity, "ALLOWED", reason)]
    assert stopped.saved().size == size + 1  # the event is in the saved checkpoint's tree

    stopped.run("test.next")  # a start with the file in place vouches for nothing
    listed = audit(stopped.network, "list", "--action", CHECKPOINT_VOUCHED, "--json")
    assert len(listed.stdout.splitlines()) == 1
