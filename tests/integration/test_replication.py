"""One network for all: an agency connected to its own region's gateway sees the other
regions' agencies and shared datasets, replicated from the other members; only what every
agency may see leaves its gateway, and a member's forged or out-of-region changes are refused
and audited."""

from __future__ import annotations

import hashlib

import grpc
import pytest
from click.testing import CliRunner

from agencies.catalog import signer_certificate, verify_signed_manifest
from agencies.client import AdminClient
from agencies.errors import AlreadyExists, FailedPrecondition, NotFound, from_rpc_error
from gateway.cli.agency import agency
from gateway.v1 import directory_pb2, replication_pb2, replication_pb2_grpc
from govshare import times
from tests.support.federation import Members, two_regions

GD, BJ, SH = "gd-gateway", "bj-gateway", "sh-gateway"
OPEN = "agencies/bj-stats/datasets/open"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """gd and bj running (sh named by the configuration, never started); gd-health at gd,
    bj-stats at bj, which publishes one PUBLIC, one CONFIDENTIAL and one NOT_SHARED dataset."""
    regions = two_regions(tmp_path_factory.mktemp("replication"))
    members, clients = regions.members, regions.clients
    bj = clients["bj-stats"]
    bj.publish("open", b"a,b\n1,2\n", title="Beijing population", classification="PUBLIC",
               tags=["people"])
    bj.publish("secret", b"x", title="Beijing secret", classification="CONFIDENTIAL")
    bj.publish("closed", b"y", title="Beijing closed", classification="PUBLIC",
               sharing_type="NOT_SHARED", legal_basis="a law forbids it")
    yield members, clients
    regions.close()


def pull(members: Members) -> dict[str, str]:
    return members.gateway(GD).replicator.pull()


def test_an_agency_sees_another_regions_agency_and_public_dataset_after_a_pull(net):
    members, clients = net
    gd = clients["gd-health"]
    outcome = pull(members)
    assert outcome[BJ].endswith("0 refused")
    agencies = {agency.name: agency for agency in gd.agencies()}
    assert agencies["agencies/bj-stats"].network_member == BJ
    assert agencies["agencies/gd-health"].network_member == ""
    found = {dataset.name: dataset for dataset in gd.datasets()}
    assert found[OPEN].network_member == BJ
    assert found[OPEN].manifest.title == "Beijing population"
    assert [d.name for d in gd.search("population")] == [OPEN]
    assert [d.name for d in gd.datasets(tag="people")] == [OPEN]


def test_confidential_and_not_shared_datasets_never_leave_their_gateway(net):
    members, clients = net
    pull(members)
    names = {dataset.name for dataset in clients["gd-health"].datasets(show_withdrawn=True)}
    assert "agencies/bj-stats/datasets/secret" not in names
    assert "agencies/bj-stats/datasets/closed" not in names
    served, *_ = members.gateway(BJ).replicas.list_changes(0, "", 100)
    kept = members.gateway(GD).db.reader().execute("SELECT name FROM replica_datasets")
    assert {row[0] for row in kept} == {OPEN}
    assert all(change.dataset is None or change.dataset.name == OPEN for change in served)


def test_a_peer_that_is_down_leaves_local_results_marked_stale(net):
    members, clients = net
    outcome = pull(members)
    assert "UNAVAILABLE" in outcome[SH]
    gd = clients["gd-health"]
    response = gd._call(gd.directory.ListAgencies, directory_pb2.ListAgenciesRequest())
    assert list(response.stale_members) == [SH]
    assert "agencies/gd-health" in {agency.name for agency in response.agencies}
    # The SDK's listings say it too, before any item is read and across pages.
    agencies = gd.agencies()
    assert agencies.stale_members == (SH,)
    assert "agencies/gd-health" in {agency.name for agency in agencies}
    datasets = gd.datasets(page_size=1)
    assert OPEN in {dataset.name for dataset in datasets}
    assert datasets.stale_members == (SH,)


def test_the_cli_says_a_listing_is_partial(net):
    """`govshare agency directory` and `datasets` name the stale members on stderr, so that
    their JSON lines stay clean."""
    members, clients = net
    folder = clients["gd-health"].certs
    for command in ("directory", "datasets"):
        result = CliRunner().invoke(agency, [
            "--certs", str(folder), "--gateway", members.target(GD), "--server-name",
            "localhost", "--json", command])
        assert result.exit_code == 0, result.output
        assert f"Partial: members {SH} were not reached lately" in result.stderr
        assert all(line.startswith("{") for line in result.stdout.splitlines())


def test_get_agency_of_a_replicated_agency(net):
    """GetAgency answers another member's agency as ListAgencies lists it, so that a client
    checks a replicated dataset's manifest with its publisher's certificate."""
    members, clients = net
    pull(members)
    gd = clients["gd-health"]
    agency = gd.agency("bj-stats")
    assert (agency.name, agency.network_member) == ("agencies/bj-stats", BJ)
    listed = {a.name: a for a in gd.agencies()}["agencies/bj-stats"]
    assert agency == listed
    dataset = gd.get(OPEN)
    manifest = verify_signed_manifest(
        dataset.signed_manifest, signer_certificate(agency, dataset.signed_manifest),
        (gd.certs / "ca.pem").read_bytes())
    assert manifest.title == "Beijing population"
    with pytest.raises(NotFound):
        gd.agency("sh-nobody")


def test_paging_runs_across_local_and_replicated_datasets_with_one_token(net):
    members, clients = net
    gd = clients["gd-health"]
    gd.publish("beds", b"1", title="Guangdong beds", classification="PUBLIC")
    gd.publish("doctors", b"2", title="Guangdong doctors", classification="INTERNAL")
    pull(members)
    whole = [dataset.name for dataset in gd.datasets()]
    paged = [dataset.name for dataset in gd.datasets(page_size=1)]
    assert paged == whole
    assert set(whole) >= {OPEN, "agencies/gd-health/datasets/beds",
                          "agencies/gd-health/datasets/doctors"}
    assert len(set(whole)) == len(whole)


def test_a_peer_claiming_an_agency_of_another_members_region_is_refused_and_audited(net):
    members, clients = net
    gd_gateway = members.gateway(GD)
    bj_member = gd_gateway.network.current.member(BJ)
    claimed = clients["gd-health"].agency("agencies/gd-health")
    forged = directory_pb2.Agency()
    forged.CopyFrom(claimed)
    forged.name = "agencies/gz-fake"
    epoch, taken = gd_gateway.replicas.position(BJ)
    refused = gd_gateway.replicas.apply(
        bj_member, [replication_pb2.NetworkChange(position=taken + 1, agency=forged)],
        taken, epoch, times.utcnow())
    assert refused == 1
    assert "agencies/gz-fake" not in {a.name for a in clients["gd-health"].agencies()}
    assert _refusals(gd_gateway, "REPLICATION_REGION_NOT_SERVED")


def test_a_tampered_manifest_is_refused_and_audited(net):
    members, clients = net
    gd_gateway = members.gateway(GD)
    bj_member = gd_gateway.network.current.member(BJ)
    pull(members)
    dataset = next(d for d in clients["gd-health"].datasets() if d.name == OPEN)
    assert dataset.network_member == BJ
    tampered = type(dataset)()
    tampered.CopyFrom(dataset)
    tampered.network_member = ""
    tampered.signed_manifest.payload = dataset.signed_manifest.payload.replace(
        b"Beijing population", b"Beijing populatiom")
    epoch, taken = gd_gateway.replicas.position(BJ)
    refused = gd_gateway.replicas.apply(
        bj_member, [replication_pb2.NetworkChange(position=taken + 1, dataset=tampered)],
        taken, epoch, times.utcnow())
    assert refused == 1
    assert _refusals(gd_gateway, "REPLICATION_SIGNATURE_INVALID")
    titles = {d.manifest.title for d in clients["gd-health"].datasets()}
    assert "Beijing populatiom" not in titles


def test_a_withdrawal_replicates(net):
    members, clients = net
    pull(members)
    clients["bj-stats"].withdraw("open", "superseded")
    pull(members)
    gd = clients["gd-health"]
    assert OPEN not in {dataset.name for dataset in gd.datasets()}
    withdrawn = {d.name: d for d in gd.datasets(show_withdrawn=True)}
    assert withdrawn[OPEN].withdraw_reason == "superseded"


def test_a_dataset_that_stops_being_shared_is_dropped_by_its_replication_id(net):
    members, clients = net
    bj = clients["bj-stats"]
    bj.publish("turning", b"t", title="Turning", classification="PUBLIC")
    pull(members)
    gd = clients["gd-health"]
    assert "agencies/bj-stats/datasets/turning" in {d.name for d in gd.datasets()}
    sent = members.gateway(GD).db.reader().execute(
        "SELECT replication_id FROM replica_datasets WHERE name = ?",
        ("agencies/bj-stats/datasets/turning",)).fetchone()[0]
    bj.publish("turning", b"u", title="Turning", classification="CONFIDENTIAL", version=2)
    served, *_ = members.gateway(BJ).replicas.list_changes(0, "", 1000)
    removals = [c.replication_id for c in served if c.dataset is None and c.agency is None]
    assert removals == [sent]
    digest = hashlib.sha256(b"agencies/bj-stats/datasets/turning").hexdigest()
    assert sent != digest
    pull(members)
    assert "agencies/bj-stats/datasets/turning" not in {d.name for d in gd.datasets()}


def test_hidden_dataset_names_recovered_with_a_word_list(net):
    """A dataset hidden from its first version leaves no change at all: no digest of its name
    to try words against, no position that moves when it changes."""
    members, clients = net
    holder = members.gateway(BJ).replicas
    before, *_ = holder.list_changes(0, "", 1000)
    clients["bj-stats"].publish("secret", b"x2", title="Beijing secret",
                                classification="CONFIDENTIAL", version=2)
    after, *_ = holder.list_changes(0, "", 1000)
    assert after == before
    hidden = {"agencies/bj-stats/datasets/secret", "agencies/bj-stats/datasets/closed"}
    guesses = {hashlib.sha256(name.encode()).hexdigest() for name in hidden}
    assert not guesses & {change.replication_id for change in after}
    assert not hidden & {change.dataset.name for change in after if change.dataset}


def test_a_tag_filter_matching_part_of_a_replicated_tag(net):
    members, clients = net
    clients["bj-stats"].publish("clinics", b"1", title="Clinics", classification="PUBLIC",
                                tags=["public health"])
    pull(members)
    gd = clients["gd-health"]
    assert [d.name for d in gd.datasets(tag="health")] == []
    assert [d.name for d in gd.datasets(tag="public health")] == [
        "agencies/bj-stats/datasets/clinics"]


def test_a_holder_restored_from_an_older_copy_is_taken_anew(net):
    """A holder whose database is an older copy (or empty) numbers its changes again from a
    lower position: its new epoch makes each receiver replace all it held of that member."""
    members, clients = net
    pull(members)
    gd_gateway = members.gateway(GD)
    bj_member = gd_gateway.network.current.member(BJ)
    epoch, taken = gd_gateway.replicas.position(BJ)
    assert taken > 0 and epoch
    # What a receiver does with another history: here one with no changes at all.
    gd_gateway.replicas.apply(bj_member, [], 0, "0" * 32, times.utcnow())
    assert gd_gateway.replicas.position(BJ) == ("0" * 32, 0)
    held = {d.name for d in clients["gd-health"].datasets(show_withdrawn=True)}
    assert not {name for name in held if name.startswith("agencies/bj-stats/")}
    # The holder's history is not that one: it lists from the start, whatever the position.
    served, _, _, current = members.gateway(BJ).replicas.list_changes(taken, "0" * 32, 1000)
    assert current == epoch and served[0].position <= taken
    pull(members)
    assert gd_gateway.replicas.position(BJ) == (epoch, taken)
    assert OPEN in {d.name for d in clients["gd-health"].datasets(show_withdrawn=True)}


def test_registering_locally_an_agency_id_a_member_holds(net, tmp_path):
    members, clients = net
    pull(members)
    admin_folder = tmp_path / "admin"
    members.federation.ca.issue_staff("admin-gd-2", "admin", admin_folder)
    impostor = tmp_path / "bj-stats"
    members.federation.ca.issue_agency("bj-stats", impostor)
    with (AdminClient(members.target(GD), admin_folder, server_name="localhost") as admin,
          pytest.raises(AlreadyExists) as refused):
        admin.register_agency("bj-stats", "impostor", "440000",
                              (impostor / "signing.pem").read_text())
    assert refused.value.reason == "AGENCY_HELD_BY_MEMBER"
    assert refused.value.metadata["member"] == BJ
    names = [agency.name for agency in clients["gd-health"].agencies()]
    assert names.count("agencies/bj-stats") == 1



@pytest.mark.parametrize(("region", "serving"), [("110000", BJ), ("650000", "")])
def test_registering_an_agency_of_a_region_this_member_does_not_serve(net, tmp_path, region,
                                                                      serving):
    """Beijing is bj's and Xinjiang no member's: gd refuses both, audited, naming who serves."""
    members, _ = net
    admin_folder, folder = tmp_path / "admin", tmp_path / "elsewhere"
    members.federation.ca.issue_staff("admin-gd-3", "admin", admin_folder)
    members.federation.ca.issue_agency("elsewhere", folder)
    with (AdminClient(members.target(GD), admin_folder, server_name="localhost") as admin,
          pytest.raises(FailedPrecondition) as refused):
        admin.register_agency("elsewhere", "an agency elsewhere", region,
                              (folder / "signing.pem").read_text())
    assert refused.value.reason == "REGION_NOT_SERVED"
    assert refused.value.metadata["member"] == serving
    assert (f"member {BJ} at {members.target(BJ)} serves it" if serving
            else "no member serves it") in refused.value.message
    reader = members.gateway(GD).db.reader()
    assert reader.execute("SELECT 1 FROM agencies WHERE id = 'elsewhere'").fetchone() is None
    rows = reader.execute(
        "SELECT record FROM audit_leaves WHERE action = 'directory.register'"
        " AND outcome = 'REFUSED'").fetchall()
    assert any(b"REGION_NOT_SERVED" in row[0] and region.encode() in row[0] for row in rows)

def test_only_peers_pull_changes(net):
    _, clients = net
    gd = clients["gd-health"]
    stub = replication_pb2_grpc.ReplicationServiceStub(gd.channel)
    with pytest.raises(grpc.RpcError) as refused:
        stub.ListNetworkChanges(replication_pb2.ListNetworkChangesRequest(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert from_rpc_error(refused.value).reason == "ROLE_NOT_ALLOWED"


def _refusals(gateway, reason: str) -> list[bytes]:
    """The refusal events of `reason` in `gateway`'s audit log, each of the member bj."""
    rows = gateway.db.reader().execute(
        "SELECT actor, record FROM audit_leaves WHERE action = 'replication.refused'"
        " AND outcome = 'REFUSED'").fetchall()
    assert all(actor == "urn:govshare:gateway:bj-gateway" for actor, _ in rows)
    return [record for _, record in rows if reason.encode() in record]


@pytest.mark.parametrize("taken", ["at-a-refresh", "at-a-start"])
def test_a_member_removed_from_the_network_is_listed_no_more_and_its_agencies_move_home(
        tmp_path, taken: str):
    """The authority removes bj from the network and gives Beijing to gd: once gd takes that
    configuration (at a refresh, or at a start after it was stopped), it drops what it took
    from bj (audited), lists none of it (nor bj as stale), and bj-stats registers at gd."""
    regions = two_regions(tmp_path)
    members, admin = regions.members, regions.admins[GD]
    try:
        regions.clients["bj-stats"].publish("open", b"a,b\n1,2\n", title="Beijing population",
                                            classification="PUBLIC")
        pull(members)
        assert OPEN in {d.name for d in regions.clients["gd-health"].datasets()}
        moved = members.members((GD, SH))
        moved[0].region_codes.append("110000")
        members.configuration_file.write_bytes(members.federation.sign(
            members.federation.unsigned(moved), 2).SerializeToString())
        members.stop(BJ)
        if taken == "at-a-refresh":
            assert members.gateway(GD).network.refresh()
        else:
            members.stop(GD)
            members.start(GD)
        listing = admin.agencies()
        assert [a.name for a in listing] == ["agencies/gd-health"]
        assert BJ not in listing.stale_members  # (sh, never started, is)
        assert OPEN not in {d.name for d in regions.clients["gd-health"].datasets()}
        with pytest.raises(NotFound):
            admin.agency("agencies/bj-stats")
        folder = members.federation.root / "agencies" / "bj-stats"
        admin.register_agency("bj-stats", "Beijing statistics", "110000",
                              (folder / "signing.pem").read_text())
        assert sorted((a.name, a.network_member) for a in admin.agencies()) == [
            ("agencies/bj-stats", ""), ("agencies/gd-health", "")]
        assert members.actions(GD).count("replication.member_removed") == 1
    finally:
        regions.close()
