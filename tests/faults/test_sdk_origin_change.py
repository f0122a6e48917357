"""An agency holding a checkpoint of the audit log's old origin follows the log to its new origin
(after a lost database, `govshare gateway new-origin`) only with the new verifier key, once the
new origin's link leaf is proved and the checkpoint it records agrees with the one the agency
saved; a link that disagrees is caught, and nothing is saved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agencies.client import AgencyClient
from agencies.errors import VerificationError, WitnessQuorumNotReached
from gateway import config as config_module
from gateway.server import create_server
from govshare.signing import SigningKey
from govshare.transparency import record
from govshare.transparency.cosignature import CosignatureVerifier, WitnessPolicy
from tests.support.commands import new_origin
from tests.support.network import Network
from tests.support.stopped import NEW, Stopped, edit

OLD = "govshare.local/audit"


class Running:
    """The stopped network's gateway started again, and its agency gd-health."""

    def __init__(self, stopped: Stopped):
        server = create_server(config_module.load(stopped.config_path))
        server.start()
        self.network = Network(stopped.network.layout, server)
        self.agency: AgencyClient = self.network.agency("gd-health")

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        self.network.close()


def agency_sees(stopped: Stopped) -> str:
    """gd-health checks the gateway's checkpoint (saving it); the signed checkpoint saved."""
    with Running(stopped) as running:
        running.agency.checkpoint()
        return state_of(running.agency)["checkpoint"]


def state_of(agency: AgencyClient) -> dict:
    return json.loads(agency._audit_state_path().read_text())


def to_new_origin(stopped: Stopped) -> str:
    """Follow the runbook; the new origin's verifier key."""
    edit(stopped.config_path, f'origin = "{OLD}"\n', f'origin = "{NEW}"\n')
    edit(stopped.config_path, "previous_verifier_keys = []",
         f'previous_verifier_keys = ["{stopped.vkey}"]')
    done = new_origin(stopped.config_path)
    assert done.returncode == 0, done.stderr
    return (stopped.config_path.parent / "audit.vkey").read_text().strip()


def state_file(stopped: Stopped) -> Path:
    return stopped.network.layout.certs("gd-health") / "audit-state.json"


def refused(stopped: Stopped, key: str | None, **accept: bool) -> VerificationError:
    """The agency's checkpoint() with `key` refused, and its state file left as it was."""
    before = state_file(stopped).read_bytes()
    with Running(stopped) as running:
        running.agency.audit_verifier_key = key
        with pytest.raises(VerificationError) as caught:
            running.agency.checkpoint(**accept)
    assert state_file(stopped).read_bytes() == before
    return caught.value


def test_agency_follows_the_origin_change_with_the_new_key(stopped, tmp_path):
    backup = stopped.copy(tmp_path / "backup.db")
    stopped.run("test.after_backup")
    seen = agency_sees(stopped)  # the old origin's last checkpoint
    stopped.put_back(backup)
    new_key = to_new_origin(stopped)
    link_index = stopped.checkpoints()[-1][0] - 1

    with Running(stopped) as running:
        running.agency.audit_verifier_key = new_key
        current = running.agency.checkpoint()
        assert (current.origin, current.size) == (NEW, link_index + 1)
        state = state_of(running.agency)
        assert state["verifier_key"] == new_key
        assert state["previous_origins"] == [{
            "origin": OLD, "verifier_key": stopped.vkey, "checkpoint": seen,
            "ended_with": seen, "link_leaf_index": link_index, "unproven": "",
        }]
        # The new origin grows, checked against the checkpoint saved for it as usual.
        running.network.gateway.work.append([record.Event("urn:govshare:test", "test.grown")])
        grown = running.agency.checkpoint()
        assert (grown.origin, grown.size) == (NEW, link_index + 2)
        assert state_of(running.agency)["previous_origins"] == state["previous_origins"]


def test_a_new_origin_is_followed_only_once_its_witness_policy_is_met(stopped, tmp_path):
    agency_sees(stopped)
    backup = stopped.copy(tmp_path / "backup.db")
    stopped.run("test.after_backup")
    stopped.put_back(backup)
    new_key = to_new_origin(stopped)
    before = state_file(stopped).read_bytes()
    witness = CosignatureVerifier("never-asked", SigningKey.generate().verifier())
    with Running(stopped) as running:
        running.agency.audit_verifier_key = new_key
        running.agency.audit_witness_policy = WitnessPolicy([witness.verifier_key], 1)
        with pytest.raises(WitnessQuorumNotReached) as caught:
            running.agency.checkpoint()
    assert caught.value.metadata == {"cosigned": "", "quorum": "1"}
    assert state_file(stopped).read_bytes() == before  # not moved to the new origin


def test_origin_change_without_the_new_key_says_what_to_get(stopped, tmp_path):
    agency_sees(stopped)
    backup = stopped.copy(tmp_path / "backup.db")
    stopped.run("test.after_backup")
    stopped.put_back(backup)
    to_new_origin(stopped)
    for key in (None, stopped.vkey):  # the pinned key, or the old one given explicitly
        caught = refused(stopped, key)
        assert caught.reason == "LOG_ORIGIN_CHANGED"
        assert caught.metadata == {"old": OLD, "new": NEW}
        assert caught.message == (
            f"the audit log changed origin from {OLD!r} to {NEW!r}: get the new origin's"
            f" verifier key (the gateway's audit.vkey, {NEW}+...) from the gateway's operator"
            " and set it as audit_verifier_key to follow the change")


def test_link_recording_a_larger_checkpoint_than_proven_is_unproven(stopped, tmp_path):
    seen = agency_sees(stopped)
    backup = stopped.copy(tmp_path / "backup.db")
    saved_size = stopped.checkpoints()[-1][0]
    stopped.run("test.after_backup", "test.after_backup")  # lost with the database
    stopped.put_back(backup)
    ended = stopped.saved_note().decode()  # the old origin's last checkpoint
    new_key = to_new_origin(stopped)
    caught = refused(stopped, new_key)
    assert caught.reason == "LOG_ORIGIN_UNPROVEN"
    assert caught.metadata == {"origin": NEW, "saved_size": str(saved_size),
                               "recorded_size": str(saved_size + 2)}
    unproven = (f"the old origin {OLD!r} ended at {saved_size + 2} entries, but the gateway"
                f" lost the leaves that would prove it extends the {saved_size} seen here (its"
                f" log keeps {saved_size} of them)")
    assert caught.message == (f"{unproven}; call checkpoint(accept_unproven_origin=True) to"
                              f" continue on {NEW!r} regardless (the state file keeps what was"
                              " unproven)")

    with Running(stopped) as running:  # the agency decides to go on: what is unproven is kept
        running.agency.audit_verifier_key = new_key
        assert running.agency.checkpoint(accept_unproven_origin=True).origin == NEW
        evidence = state_of(running.agency)["previous_origins"][0]
    assert (evidence["checkpoint"], evidence["ended_with"], evidence["unproven"]) == \
        (seen, ended, unproven)


def fork(stopped: Stopped, tmp_path: Path, seen_events: int, other_events: int) -> str:
    """gd-health sees a log grown by `seen_events`; the gateway's database and saved checkpoint
    are then replaced by a history grown by `other_events` from the same point, whose database
    is lost: the new origin's link records that other history. The new verifier key."""
    fork_point = stopped.copy(tmp_path / "fork-point.db")
    saved_then = stopped.checkpoint_file.read_bytes()
    stopped.run(*["test.one_history"] * seen_events)
    agency_sees(stopped)
    stopped.put_back(fork_point)
    stopped.checkpoint_file.write_bytes(saved_then)
    stopped.run(*["test.another_history"] * other_events)
    stopped.put_back(fork_point)
    return to_new_origin(stopped)


def test_link_recording_a_fork_of_the_saved_checkpoint_is_caught(stopped, tmp_path):
    new_key = fork(stopped, tmp_path, 1, 1)
    size = stopped.checkpoints()[-1][0]  # the fork point and one leaf, on either side
    caught = refused(stopped, new_key)
    assert caught.reason == "LOG_FORKED"
    assert caught.message.startswith(
        f"the audit log of {size} entries does not extend the one of {size} seen before")


def test_link_recording_a_smaller_checkpoint_than_saved_is_truncation(stopped, tmp_path):
    new_key = fork(stopped, tmp_path, 2, 1)
    link = stopped.checkpoints()[-1][0] - 1
    caught = refused(stopped, new_key)
    assert caught.reason == "LOG_TRUNCATED"
    assert caught.metadata == {"old_size": str(link + 2), "new_size": str(link + 1)}
    assert caught.message == (
        f"the old origin {OLD!r} signed a checkpoint of {link + 2} entries seen here, but the"
        f" new origin records its last one as {link + 1}: the old log's history was truncated")


def test_backup_differing_from_what_the_agency_saw_is_caught_even_accepting_unproven(
        stopped, tmp_path):
    fork_point = stopped.copy(tmp_path / "fork-point.db")
    saved_then = stopped.checkpoint_file.read_bytes()
    stopped.run("test.one_history")
    agency_sees(stopped)
    stopped.put_back(fork_point)
    stopped.checkpoint_file.write_bytes(saved_then)
    stopped.run("test.another_history")
    other_backup = stopped.copy(tmp_path / "other-backup.db")  # as long as what the agency saw
    stopped.run("test.another_history")
    stopped.put_back(other_backup)
    new_key = to_new_origin(stopped)
    link = stopped.checkpoints()[-1][0] - 1
    caught = refused(stopped, new_key, accept_unproven_origin=True)
    assert caught.reason == "LOG_FORKED"
    assert caught.message.startswith(
        f"the audit log of {link + 1} entries does not extend the one of {link} seen before")
