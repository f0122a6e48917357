"""A log never takes back a name: `govshare gateway new-origin` refuses an origin the log
already had, so no size of it is ever signed again with another root."""

from __future__ import annotations

from tests.support.commands import new_origin
from tests.support.stopped import NEW, set_origin


def test_new_origin_refuses_a_name_the_log_already_had(stopped, tmp_path):
    backup = stopped.copy(tmp_path / "backup.db")
    for _ in range(3):  # a checkpoint per batch: sizes the old origin signed
        stopped.run("test.first_history")
    first_key = stopped.vkey
    stopped.put_back(backup)
    set_origin(stopped, NEW, [first_key])
    assert new_origin(stopped.config_path).returncode == 0  # the first recovery
    second_key = (stopped.config_path.parent / "audit.vkey").read_text().strip()
    stopped.put_back(backup)  # lost again: the same backup, and the first origin's name back
    set_origin(stopped, "govshare.local/audit", [first_key, second_key])
    before = (stopped.database.read_bytes(), stopped.checkpoint_file.read_bytes())

    again = new_origin(stopped.config_path)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1] == (
        "Error: no new origin: the log already had origin govshare.local/audit (named in the"
        " database's checkpoints): checkpoints signed under it could be signed again with"
        " other roots; set [audit] origin to a new name, one this log never had")
    assert (stopped.database.read_bytes(), stopped.checkpoint_file.read_bytes()) == before

