"""A checkpoint the gateway could not save in [audit] checkpoint_file is shown to no one: the
offline tools (`audit proof`, `export --proofs`, `verify --save-checkpoint`) hand out the saved
one, and no change commits until the unsaved one is saved (UNAVAILABLE, nothing written), so a
restored backup can never stand in for more than the one batch acknowledged before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agencies import errors
from agencies.sim.roster import AgencySpec
from gateway.audit.saved import CheckpointFile
from gateway.network import add_agency
from gateway.storage import audit as audit_sql
from govshare.transparency import note
from tests.support.commands import audit


def broken_save(self, signed):
    raise OSError(5, "Input/output error")


def register(network, agency_id: str):
    """Register `agency_id`, issuing its certificates the first time."""
    spec = AgencySpec(agency_id, f"Bureau {agency_id}", "110000")
    folder = network.layout.certs(agency_id)
    if not (folder / "signing.pem").exists():
        add_agency(network.layout, spec)
    pem = (folder / "signing.pem").read_text()
    return network.admin().register_agency(spec.id, spec.display_name, spec.region_code, pem)


def stored(network) -> tuple[int, int]:
    """(leaves, checkpoints) the database holds."""
    reader = network.gateway.db.reader()
    return audit_sql.tree_size(reader), len(audit_sql.checkpoints(reader))


@pytest.fixture
def unsaved(network, monkeypatch) -> bytes:
    """A change committed whose checkpoint could not be saved; the checkpoint saved before."""
    saved = CheckpointFile(network.gateway.log.saved.path).read()[0]
    monkeypatch.setattr(CheckpointFile, "save", broken_save)
    register(network, "unsaved-1")  # committed and acknowledged: durable in the database
    latest = audit_sql.latest_checkpoint(network.gateway.db.reader())
    assert bytes(latest.note) != saved
    return saved


def test_offline_tools_never_hand_out_a_checkpoint_the_gateway_could_not_save(network, unsaved,
                                                                              tmp_path):
    size = note.Checkpoint.parse(unsaved.split(b"\n\n")[0].decode() + "\n").size
    proof = audit(network, "proof", "0")
    assert proof.returncode == 0, proof.stderr
    assert proof.stdout.split("\n\n", 1)[1] == unsaved.decode()

    exported = audit(network, "export", "--proofs")
    assert exported.returncode == 0, exported.stderr
    assert exported.stderr == f"proofs are for this checkpoint:\n{unsaved.decode()}\n"
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [row["leaf_index"] for row in rows] == list(range(size))  # none beyond it
    assert {row["tree_size"] for row in rows} == {size}

    out = tmp_path / "verified.checkpoint"
    verified = audit(network, "verify", "--save-checkpoint", str(out))
    assert verified.returncode == 0, verified.stderr
    assert out.read_bytes() == unsaved
    assert f"saved checkpoint of size {size}, root" in verified.stdout
    assert network.gateway.log.checkpoint().note == unsaved  # GetCheckpoint agrees


def test_no_change_commits_while_its_checkpoint_cannot_be_saved(network, unsaved,
                                                                monkeypatch):
    before = stored(network)
    with pytest.raises(errors.Unavailable) as caught:
        register(network, "unsaved-2")
    assert caught.value.reason == "STORAGE_ERROR"
    request_id = caught.value.metadata["request_id"]
    assert caught.value.message == ("storage is not writable; retry later, or quote request id"
                                    f" {request_id} to the operator")
    assert stored(network) == before  # nothing written, not even a refusal
    names = {agency.name for agency in network.admin().agencies()}
    assert "agencies/unsaved-2" not in names

    monkeypatch.undo()  # the disk is back: the unsaved checkpoint is saved, then the change
    assert register(network, "unsaved-2").name == "agencies/unsaved-2"
    latest = audit_sql.latest_checkpoint(network.gateway.db.reader())
    assert CheckpointFile(Path(network.gateway.log.saved.path)).read()[0] == bytes(latest.note)
    assert network.gateway.log.checkpoint().tree_size == latest.tree_size
