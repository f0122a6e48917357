"""A log never takes back a name: `govshare gateway new-origin` refuses an origin the log
already had, so no size of it is ever signed again with another root."""

from __future__ import annotations

import pytest

from tests.faults.test_log_rollback import NEW, Stopped, new_origin


@pytest.fixture
def stopped(tmp_path) -> Stopped:
    return Stopped(tmp_path / "net")


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

