"""What a receiving gateway does with a member's changes that are wrong: each is refused and
audited (within a budget a round), never raised; a bad member never stops replication from the
others; a dataset is never rolled back nor signed by a key its publisher does not hold; a
dataset met before its publisher on a first sync is held, not lost; and GetDataset answers a
replicated dataset from its copy."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from cryptography import x509

from agencies.client import AdminClient
from agencies.errors import NotFound
from certs import SIGNING_CERT, SIGNING_KEY, TLS_CERT, TLS_KEY
from gateway import replication, replicator
from gateway.services.catalog import dataset_proto
from gateway.services.directory import agency_proto
from gateway.storage import catalog, directory
from gateway.v1 import catalog_pb2, directory_pb2, replication_pb2, replication_pb2_grpc
from govshare import envelopes, signing, times
from govshare.signing import SigningKey
from tests.support.federation import Federation, Members, two_regions

GD, BJ, SH = "gd-gateway", "bj-gateway", "sh-gateway"
OPEN = "agencies/bj-stats/datasets/open"
ROLL = "agencies/bj-stats/datasets/roll"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """gd and bj running (sh named by the configuration, started by one test); gd-health at
    gd, bj-stats at bj, which publishes "open", "roll" in two versions and a CONFIDENTIAL
    "budget"; gd has pulled once."""
    regions = two_regions(tmp_path_factory.mktemp("replication-receiver"))
    members, clients, admins = regions.members, regions.clients, regions.admins
    bj = clients["bj-stats"]
    bj.publish("open", b"a,b\n1,2\n", title="Beijing population", classification="PUBLIC")
    bj.publish("roll", b"1", title="Roll v1", classification="PUBLIC")
    bj.publish("roll", b"2", title="Roll v2", classification="PUBLIC", version=2)
    bj.publish("budget", b"x", title="Beijing budget", classification="CONFIDENTIAL")
    members.gateway(GD).replicator.pull()
    yield members, clients, admins
    regions.close()


def _apply(members, **change):
    """Apply one change as if member bj sent it next (a dataset with the replication id bj gave
    it); how many were refused."""
    if "dataset" in change:
        row = members.gateway(BJ).db.reader().execute(
            "SELECT replication_id FROM network_datasets WHERE name = ?",
            (change["dataset"].name,)).fetchone()
        change.setdefault("replication_id", row[0] if row else "ab" * 16)
    gd = members.gateway(GD)
    epoch, taken = gd.replicas.position(BJ)
    return gd.replicas.apply(
        gd.network.current.member(BJ),
        [replication_pb2.NetworkChange(position=taken + 1, **change)], taken, epoch,
        times.utcnow())


def _holder_agency(members) -> directory_pb2.Agency:
    """bj-stats as its own gateway serves it."""
    return agency_proto(directory.get_agency(members.gateway(BJ).db.reader(), "bj-stats"))


def _holder_dataset(members, name) -> catalog_pb2.Dataset:
    return dataset_proto(catalog.get_dataset(members.gateway(BJ).db.reader(), name))


def _replica_dataset(clients, name) -> catalog_pb2.Dataset:
    return next(d for d in clients["gd-health"].datasets() if d.name == name)


def _refusals(gateway, text: str) -> int:
    """How many replication refusals in `gateway`'s audit log say `text`."""
    rows = gateway.db.reader().execute(
        "SELECT record FROM audit_leaves WHERE action = ? AND outcome = 'REFUSED'",
        (replication.REFUSED,))
    return sum(text.encode() in record for record, in rows)


def test_agency_with_epoch_create_time(net):
    """The epoch encodes as an unset Timestamp: taken, it broke every ListAgencies."""
    members, clients, _ = net
    agency = _holder_agency(members)
    agency.ClearField("create_time")
    before = _refusals(members.gateway(GD), "create_time is not set")
    assert _apply(members, agency=agency) == 1
    assert _refusals(members.gateway(GD), "create_time is not set") == before + 1
    assert "agencies/bj-stats" in {a.name for a in clients["gd-health"].agencies()}


@pytest.mark.parametrize("poison", ["state", "time_past_9999"])
def test_malformed_agency_change(net, poison):
    members, *_ = net
    agency = _holder_agency(members)
    if poison == "state":
        agency.state = 99
    else:
        agency.update_time.seconds = 2**40
    assert _apply(members, agency=agency) == 1
    assert _refusals(members.gateway(GD), "REPLICATION_CHANGE_MALFORMED")


def test_forged_previous_signing_certificate(net):
    """A peer adds a key of its own to an agency's previous certificates, then signs a
    dataset in the agency's name with it."""
    members, clients, _ = net
    folder = members.federation.folder(BJ)
    rogue_pem = (folder / SIGNING_CERT).read_text()
    rogue_key = SigningKey.load(folder / SIGNING_KEY)
    rogue_id = signing.VerifyKey.from_certificate(
        x509.load_pem_x509_certificate(rogue_pem.encode())).key_id
    agency = _holder_agency(members)
    agency.previous_signing_certificates.add(certificate_pem=rogue_pem, key_id=rogue_id,
                                             retire_time=times.to_timestamp(times.utcnow()))
    gd = members.gateway(GD)
    before = _refusals(gd, "previous signing certificate")
    assert _apply(members, agency=agency) == 1
    assert _refusals(gd, "previous signing certificate") == before + 1
    manifest = catalog_pb2.Manifest.FromString(
        _replica_dataset(clients, OPEN).signed_manifest.payload)
    manifest.dataset = "agencies/bj-stats/datasets/invented"
    forged = _holder_dataset(members, OPEN)
    forged.name = manifest.dataset
    forged.signed_manifest.CopyFrom(envelopes.seal(rogue_key, envelopes.MANIFEST, manifest))
    assert _apply(members, dataset=forged) == 1
    assert manifest.dataset not in {d.name for d in clients["gd-health"].datasets()}


def test_replayed_older_manifest(net):
    members, clients, _ = net
    old = _holder_dataset(members, ROLL)
    old.latest_version = 1
    old.signed_manifest.ParseFromString(members.gateway(BJ).db.reader().execute(
        "SELECT signed_manifest FROM dataset_versions WHERE dataset = ? AND version = 1",
        (ROLL,)).fetchone()[0])
    assert _apply(members, dataset=old) == 1
    assert _refusals(members.gateway(GD), "REPLICATION_VERSION_ROLLBACK")
    assert _replica_dataset(clients, ROLL).latest_version == 2
    assert _apply(members, dataset=_holder_dataset(members, ROLL)) == 0  # the same: taken


def test_refusal_flood(net):
    """2,000 junk changes in one round: the first refusals audited, the rest in a summary."""
    members, *_ = net
    gd = members.gateway(GD)
    count = lambda: _refusals(gd, "REPLICATION_REGION_NOT_SERVED")  # noqa: E731
    before = count()
    epoch, taken = gd.replicas.position(BJ)
    junk = [replication_pb2.NetworkChange(position=taken + i + 1, agency=directory_pb2.Agency(
        name="agencies/gd-junk", region_code="440000")) for i in range(2000)]
    refused = gd.replicas.apply(gd.network.current.member(BJ), junk, taken, epoch,
                                times.utcnow())
    assert refused == 2000
    assert count() - before == replication.MAX_AUDITED_REFUSALS + 1
    assert _refusals(gd, f"{2000 - replication.MAX_AUDITED_REFUSALS} more refusals") == 1


def test_get_dataset_of_a_replicated_dataset(net):
    """Listed, yet GetDataset said PERMISSION_DENIED about CONFIDENTIAL datasets: now it
    answers from the copy; its versions are at its member's gateway (NOT_FOUND naming it)."""
    _, clients, _ = net
    gd = clients["gd-health"]
    reply = gd._call(gd.catalog.GetDataset, catalog_pb2.GetDatasetRequest(name=OPEN))
    assert reply.dataset.network_member == BJ
    assert reply.dataset.manifest.title == "Beijing population"
    with pytest.raises(NotFound) as caught:
        gd._call(gd.catalog.ListDatasetVersions,
                 catalog_pb2.ListDatasetVersionsRequest(parent=OPEN))
    assert caught.value.reason == "DATASET_HELD_BY_MEMBER"
    assert caught.value.metadata["network_member"] == BJ


def test_dataset_before_its_publisher_on_a_first_sync(net, monkeypatch):
    """A new receiver takes a window of changes a round; a dataset met rounds before its
    publisher's latest change is held until the publisher arrives, not refused and skipped."""
    members, _, admins = net
    admins[BJ].suspend_agency("agencies/bj-stats", "audit")
    admins[BJ].reinstate_agency("agencies/bj-stats", "done")  # the agency's change is now last
    monkeypatch.setattr(replicator, "PAGE_SIZE", 2)
    monkeypatch.setattr(replicator, "MAX_PAGES", 1)
    sh = members.start(SH).gateway
    try:
        for _ in range(10):
            sh.replicator.pull()
        held = {row[0] for row in sh.db.reader().execute("SELECT name FROM replica_datasets")}
        assert {OPEN, ROLL} <= held
        assert _refusals(sh, replication.PUBLISHER_UNKNOWN) == 0
        _, position, _, epoch = members.gateway(BJ).replicas.list_changes(0, "", 1000)
        assert sh.replicas.position(BJ) == (epoch, position)
    finally:
        members.stop(SH)


def test_manifest_signed_after_its_key_was_retired(net, tmp_path):
    """A key stolen from an agency signs a new version after the agency replaced it: the
    manifest says it was signed after the key's retire_time. Run after the tests using
    bj-stats' first key."""
    members, clients, admins = net
    old_key = SigningKey.load(members.federation.root / "agencies" / "bj-stats" / SIGNING_KEY)
    members.federation.ca.issue_agency("bj-stats", tmp_path)
    admins[BJ].replace_signing_certificate("agencies/bj-stats",
                                           (tmp_path / SIGNING_CERT).read_text(), "renewal")
    members.gateway(GD).replicator.pull()
    stolen = _holder_dataset(members, ROLL)
    manifest = catalog_pb2.Manifest.FromString(stolen.signed_manifest.payload)
    manifest.version = stolen.latest_version = 3
    manifest.title = "Signed with a retired key"
    manifest.create_time.CopyFrom(times.to_timestamp(times.utcnow()))
    stolen.signed_manifest.CopyFrom(envelopes.seal(old_key, envelopes.MANIFEST, manifest))
    assert _apply(members, dataset=stolen) == 1
    assert _refusals(members.gateway(GD), "REPLICATION_KEY_RETIRED")
    assert _replica_dataset(clients, ROLL).latest_version == 2


class _Scripted(replication_pb2_grpc.ReplicationServiceServicer):
    """A member gone bad: serves the changes it is given."""

    def __init__(self, changes):
        self.changes = changes

    def ListNetworkChanges(self, request, context):
        return replication_pb2.ListNetworkChangesResponse(
            changes=self.changes, next_position=len(self.changes), more=False)


def test_malformed_change_from_one_member_during_a_pull(tmp_path):
    """bj's server sends an agency of state 99; sh's agency is still taken in that pull."""
    members = Members(Federation(tmp_path), (GD, BJ, SH))
    members.start(GD)
    members.start(SH)
    ca = members.federation.ca
    ca.issue_agency("bj-x", tmp_path / "bj-x")
    ca.issue_agency("sh-fin", tmp_path / "sh-fin")
    ca.issue_staff("admin-sh", "admin", tmp_path / "admin-sh")
    with AdminClient(members.target(SH), tmp_path / "admin-sh", server_name="localhost") as a:
        a.register_agency("sh-fin", "Shanghai finance", "310000",
                          (tmp_path / "sh-fin" / "signing.pem").read_text())
    pem = (tmp_path / "bj-x" / "signing.pem").read_text()
    now = times.to_timestamp(times.utcnow())
    bad = directory_pb2.Agency(
        name="agencies/bj-x", display_name="x", region_code="110000",
        signing_certificate_pem=pem, signing_key_id=signing.VerifyKey.from_certificate(pem).key_id,
        state=99, create_time=now, update_time=now)
    folder = members.federation.folder(BJ)
    evil = grpc.server(futures.ThreadPoolExecutor(2))
    replication_pb2_grpc.add_ReplicationServiceServicer_to_server(
        _Scripted([replication_pb2.NetworkChange(position=1, agency=bad)]), evil)
    evil.add_secure_port(members.target(BJ), grpc.ssl_server_credentials(
        [((folder / TLS_KEY).read_bytes(), (folder / TLS_CERT).read_bytes())]))
    evil.start()
    try:
        gd = members.gateway(GD)
        outcome = gd.replicator.pull()
        assert outcome[BJ] == "1 changes, 1 refused"
        held = {row[0] for row in gd.db.reader().execute("SELECT id FROM replica_agencies")}
        assert held == {"sh-fin"}
        assert gd.replicas.position(BJ)[1] == 1
    finally:
        evil.stop(0)
        members.close()
