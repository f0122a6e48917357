"""FetchDataset end to end: verification, resume, what stops a fetch (revocation, suspension,
sharing terms, grant fields, a second stream, failures), what the SDK does with leftovers, and
the mode of the files it writes."""

from __future__ import annotations

import hashlib
import sqlite3

import grpc
import pytest

from agencies import errors
from gateway.v1 import exchange_pb2 as pb
from govshare import spool
from tests.support.exchange import (
    ask,
    assert_only_refusal,
    counts,
    publish,
    wait_for,
)
from tests.support.fetching import BIG, Interrupt, MiB, break_off, exchange_row, fetch_events


def exchange_rows(network) -> list[tuple[str, str]]:
    conn = network.gateway.db.reader()
    return conn.execute("SELECT name, state FROM exchanges ORDER BY create_time").fetchall()


def blob_path(network, content: bytes):
    return network.gateway.blobs.path("gd-health", hashlib.sha256(content).hexdigest())


@pytest.fixture
def granted(network):
    """gd-health publishes a 24 MiB dataset; sz-market holds a grant on it."""
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "big-table", BIG, media_type="OCTET_STREAM")
    grant = ask(market, dataset).grant
    return health, market, dataset, grant


def test_fetch_verifies_and_reports_progress(network, granted, tmp_path, monkeypatch):
    _, market, dataset, grant = granted
    # The gateway drops the pages behind its reader every 3 MiB, as it would every 8 in a large
    # transfer (the SDK writes around the page cache).
    monkeypatch.setattr(spool, "RECYCLE_EVERY", 3 * MiB)
    seen = []

    fetched = market.fetch(f"{dataset}/versions/1", tmp_path / "big.bin",
                           progress=lambda done, total: seen.append((done, total)))

    assert (tmp_path / "big.bin").read_bytes() == BIG
    assert not (tmp_path / "big.bin.part").exists()
    assert seen[-1] == (len(BIG), len(BIG)) and len(seen) == 24
    assert fetched.receipt.grant == grant.name
    assert fetched.receipt.content_sha256 == hashlib.sha256(BIG).digest()
    assert fetched.manifest.dataset == dataset
    assert exchange_rows(network)[0][1] == "COMPLETED"


def test_resume_after_a_broken_fetch(network, granted, tmp_path):
    _, market, dataset, _ = granted
    target = tmp_path / "big.bin"

    def stop_early(done: int, total: int) -> None:
        raise Interrupt

    with pytest.raises(Interrupt):
        market.fetch(dataset, target, progress=stop_early)
    wait_for(lambda: exchange_rows(network)[0][1] == "BROKEN")
    kept = (tmp_path / "big.bin.part").stat().st_size
    assert 0 < kept < len(BIG)

    fetched = market.fetch(dataset, target)

    assert target.read_bytes() == BIG
    assert [name for name, _ in exchange_rows(network)] == [fetched.receipt.exchange]
    actions = [(action, outcome) for action, outcome, _ in fetch_events(network)]
    assert actions == [("exchange.fetch.start", "ALLOWED"), ("exchange.fetch.break", "ALLOWED"),
                       ("exchange.fetch.start", "ALLOWED"),
                       ("exchange.fetch.complete", "ALLOWED")]
    assert f"offset {kept}" in fetch_events(network)[2][2]


def test_revocation_stops_a_running_fetch(network, granted, tmp_path):
    health, market, dataset, grant = granted
    revoked = []

    def revoke_once(done: int, total: int) -> None:
        if not revoked:
            revoked.append(health.revoke(grant.name, "suspected misuse"))

    with pytest.raises(errors.PermissionDenied) as refused:
        market.fetch(dataset, tmp_path / "big.bin", progress=revoke_once)

    assert refused.value.reason == "GRANT_REVOKED"
    assert not (tmp_path / "big.bin").exists()
    assert exchange_rows(network)[0][1] == "BROKEN"
    action, outcome, record = fetch_events(network)[-1]
    assert (action, outcome) == ("exchange.fetch.break", "REFUSED")
    assert "GRANT_REVOKED" in record
    with pytest.raises(errors.PermissionDenied) as again:
        market.fetch(dataset, tmp_path / "again.bin")
    assert again.value.reason == "NO_ACTIVE_GRANT"


def test_tampered_blob_is_refused_by_the_gateway(network, granted, tmp_path):
    _, market, dataset, _ = granted
    path = blob_path(network, BIG)
    path.chmod(0o644)
    with path.open("r+b") as blob:
        blob.seek(len(BIG) // 2)
        blob.write(bytes([BIG[len(BIG) // 2] ^ 1]))

    with pytest.raises(errors.DataLoss) as lost:
        market.fetch(dataset, tmp_path / "big.bin")

    assert lost.value.reason == "CONTENT_MISMATCH"
    assert not (tmp_path / "big.bin").exists() and not (tmp_path / "big.bin.part").exists()
    assert exchange_rows(network)[0][1] == "BROKEN"
    assert fetch_events(network)[-1][:2] == ("exchange.fetch.break", "REFUSED")


def test_truncated_blob_is_refused_before_streaming(network, granted, tmp_path):
    _, market, dataset, _ = granted
    path = blob_path(network, BIG)
    path.chmod(0o644)
    with path.open("r+b") as blob:
        blob.truncate(MiB)

    with pytest.raises(errors.DataLoss):
        market.fetch(dataset, tmp_path / "big.bin")
    assert exchange_rows(network) == []


def test_sdk_refuses_a_manifest_the_publisher_did_not_sign(network, tmp_path):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "hospital-beds", b"region,beds\n1,2\n")
    ask(market, dataset)
    with sqlite3.connect(network.gateway.db.path) as conn:
        signed = conn.execute("SELECT signed_manifest FROM dataset_versions").fetchone()[0]
        altered = signed.replace(b"hospital-beds title", b"hospital-beds TITLE")
        assert altered != signed
        conn.execute("UPDATE dataset_versions SET signed_manifest = ?", (altered,))

    with pytest.raises(errors.VerificationError):
        market.fetch(dataset, tmp_path / "beds.csv")
    assert not (tmp_path / "beds.csv").exists() and not (tmp_path / "beds.csv.part").exists()


def test_blob_altered_after_a_clean_fetch_is_still_refused(network, granted, tmp_path):
    """Fetches skip re-hashing a blob only while its file is untouched since it was hashed."""
    _, market, dataset, _ = granted
    market.fetch(dataset, tmp_path / "first.bin")
    path = blob_path(network, BIG)
    path.chmod(0o644)
    with path.open("r+b") as blob:
        blob.seek(0)
        blob.write(bytes([BIG[0] ^ 1]))
    with pytest.raises(errors.DataLoss) as lost:
        market.fetch(dataset, tmp_path / "second.bin")
    assert lost.value.reason == "CONTENT_MISMATCH"
    assert (tmp_path / "first.bin").read_bytes() == BIG


def test_fetches_a_stop_interrupted_are_broken_at_start_up(network_factory, tmp_path):
    """An exchange still STARTED when the gateway stopped is marked BROKEN, audited, at start."""
    from gateway import config as config_module
    from gateway.server import create_server

    net = network_factory()
    owner, market = net.agency("gd-health"), net.agency("sz-market")
    dataset = publish(owner, "beds")
    ask(market, dataset)
    market.fetch(dataset, tmp_path / "beds.csv")
    name = exchange_rows(net)[0][0]

    def interrupted(tx):  # as if the gateway had been killed in the middle of this fetch
        tx.conn.execute("UPDATE exchanges SET state = 'STARTED' WHERE name = ?", (name,))
        return None, []

    net.gateway.work.commit(interrupted)
    net.close()
    server = create_server(config_module.load(net.layout.config_path))
    try:
        conn = server.gateway.db.reader()
        assert conn.execute("SELECT state FROM exchanges WHERE name = ?",
                            (name,)).fetchone()[0] == "BROKEN"
        last = conn.execute("SELECT record FROM audit_leaves ORDER BY leaf_index DESC"
                            " LIMIT 1").fetchone()[0]
        assert b'"exchange.fetch.break"' in last and name.encode() in last
        assert b'"urn:govshare:gateway:gateway"' in last
    finally:
        server.gateway.close()


def raw_fetch(client, **fields) -> errors.GovshareError:
    """The error a FetchDataset call without the SDK ends with."""
    try:
        for _ in client.exchange.FetchDataset(pb.FetchDatasetRequest(**fields)):
            pass
    except grpc.RpcError as exc:
        return errors.from_rpc_error(exc)
    raise AssertionError("the fetch did not fail")


def test_a_second_stream_of_a_running_exchange_is_refused(network, granted, tmp_path):
    _, market, dataset, _ = granted
    target = tmp_path / "big.bin"
    seen = {}

    def second_stream(done: int, total: int) -> None:
        if seen:
            return
        seen["name"] = target.with_name("big.bin.part.exchange").read_text().split()[0]
        seen["before"] = counts(network)
        seen["error"] = raw_fetch(market, dataset=dataset, exchange=seen["name"], offset=0)
        seen["after"] = counts(network)

    fetched = market.fetch(dataset, target, progress=second_stream)

    assert seen["error"].code == grpc.StatusCode.FAILED_PRECONDITION
    assert seen["error"].reason == "EXCHANGE_IN_PROGRESS"
    assert "wait" in seen["error"].message and "cancel" in seen["error"].message
    assert seen["after"]["audit_leaves"] == seen["before"]["audit_leaves"] + 1
    assert {k: v for k, v in seen["after"].items() if k != "audit_leaves"} == \
        {k: v for k, v in seen["before"].items() if k != "audit_leaves"}
    refusal = [r for r in fetch_events(network) if "EXCHANGE_IN_PROGRESS" in r[2]]
    assert len(refusal) == 1 and refusal[0][:2] == ("exchange.fetch", "REFUSED")
    # The running stream went on undisturbed and completed, its receipt kept.
    assert target.read_bytes() == BIG and fetched.receipt.exchange == seen["name"]
    row = exchange_row(network, seen["name"])
    assert row["state"] == "COMPLETED" and row["receipt"]


def test_an_exchange_left_started_without_a_stream_resumes(network, granted, tmp_path):
    """A STARTED exchange nobody streams (its stream's ending was never recorded) resumes."""
    _, market, dataset, _ = granted
    name = break_off(network, market, dataset, tmp_path / "big.bin")

    def left_started(tx):
        tx.conn.execute("UPDATE exchanges SET state = 'STARTED' WHERE name = ?", (name,))
        return None, []

    network.gateway.work.commit(left_started)
    fetched = market.fetch(dataset, tmp_path / "big.bin")
    assert fetched.receipt.exchange == name and exchange_row(network, name)["state"] == "COMPLETED"


def test_a_resumed_exchange_runs_under_the_grant_held_now(network, granted, tmp_path):
    health, market, dataset, grant = granted
    name = break_off(network, market, dataset, tmp_path / "big.bin")
    health.revoke(grant.name, "renewed below")
    renewed = ask(market, dataset).grant

    fetched = market.fetch(dataset, tmp_path / "big.bin")

    assert fetched.receipt.exchange == name and fetched.receipt.grant == renewed.name
    assert exchange_row(network, name)["grant_name"] == renewed.name


def test_a_grant_naming_fewer_fields_of_a_version_without_column_digests_delivers_nothing(
        network, tmp_path):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "visits", BIG, sharing_type="CONDITIONAL",
                      media_type="OCTET_STREAM")
    whole = health.approve(ask(market, dataset).access_request.name).grant
    name = break_off(network, market, dataset, tmp_path / "visits.bin")
    health.revoke(whole.name, "narrowed below")
    request = ask(market, dataset, fields=["region", "beds"]).access_request
    narrow = health.approve(request.name).grant
    assert list(narrow.fields) == ["region", "beds"]

    for target in ("visits.bin", "fresh.bin"):  # resuming the exchange, and a new fetch
        before = counts(network)
        with pytest.raises(errors.FailedPrecondition) as refused:
            market.fetch(dataset, tmp_path / target)
        assert refused.value.reason == "GRANT_FIELDS_NARROWER"
        assert "doctors" in refused.value.message and "publish" in refused.value.message
        assert_only_refusal(network, before, "exchange.fetch", "GRANT_FIELDS_NARROWER")
    assert exchange_row(network, name)["state"] == "BROKEN"

    health.revoke(narrow.name, "widened below")
    health.approve(ask(market, dataset).access_request.name)  # the whole dataset again
    assert market.fetch(dataset, tmp_path / "visits.bin").receipt.exchange == name


def test_nothing_is_delivered_once_the_owner_stops_sharing(network, tmp_path):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "beds")
    ask(market, dataset)
    publish(health, "beds", b"region,beds\n1,9\n", sharing_type="NOT_SHARED")

    for asked in (dataset, f"{dataset}/versions/2", f"{dataset}/versions/1"):
        before = counts(network)
        with pytest.raises(errors.FailedPrecondition) as refused:
            market.fetch(asked, tmp_path / "beds.csv")
        assert refused.value.reason == "DATASET_NOT_SHARED"
        assert_only_refusal(network, before, "exchange.fetch", "DATASET_NOT_SHARED")


def test_suspension_stops_a_running_fetch(network, granted, tmp_path):
    _, market, dataset, _ = granted
    admin = network.admin()
    suspended = []

    def suspend_once(done: int, total: int) -> None:
        if not suspended:
            suspended.append(admin.suspend_agency("sz-market", "certificate compromised"))

    with pytest.raises(errors.PermissionDenied) as refused:
        market.fetch(dataset, tmp_path / "big.bin", progress=suspend_once)

    assert refused.value.reason == "AGENCY_SUSPENDED"
    assert not (tmp_path / "big.bin").exists()
    assert exchange_rows(network)[0][1] == "BROKEN"
    action, outcome, record = fetch_events(network)[-1]
    assert (action, outcome) == ("exchange.fetch.break", "REFUSED")
    assert "AGENCY_SUSPENDED" in record


def test_the_sdk_starts_afresh_when_its_leftovers_cannot_be_resumed(network, granted, tmp_path):
    health, market, dataset, _ = granted
    small = publish(health, "small", b"a,b\n1,2\n")
    ask(market, small)
    target = tmp_path / "out.bin"
    part, marker = tmp_path / "out.bin.part", tmp_path / "out.bin.part.exchange"
    first = break_off(network, market, dataset, target)

    # Another dataset to the same file: the leftovers are dropped without asking the gateway.
    before = counts(network)
    assert market.fetch(small, target).manifest.dataset == small
    assert target.read_bytes() == b"a,b\n1,2\n" and not part.exists() and not marker.exists()
    assert counts(network)["audit_leaves"] == before["audit_leaves"] + 2  # start, complete

    # More bytes than the content (the gateway refuses the offset), then an unknown exchange:
    # each time one refused resume, then a fresh exchange that completes.
    unknown = f"agencies/sz-market/exchanges/{'0' * 32}"
    for leftover in (lambda: part.write_bytes(BIG + b"more"),
                     lambda: marker.write_text(f"{unknown}\n{dataset}\n")):
        break_off(network, market, dataset, target)
        leftover()
        fetched = market.fetch(dataset, target)
        assert target.read_bytes() == BIG and not part.exists() and not marker.exists()
        assert fetched.receipt.exchange != first
        assert fetch_events(network)[-3][:2] == ("exchange.fetch", "REFUSED")


def test_fetched_content_is_readable_by_its_owner_only(network, tmp_path):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "admissions", classification="CONFIDENTIAL")
    health.approve(ask(market, dataset).access_request.name)  # hidden: its owner decides
    seen = []
    part = tmp_path / "admissions.csv.part"
    fetched = market.fetch(dataset, tmp_path / "admissions.csv",
                           progress=lambda *_: seen.append(part.stat().st_mode & 0o777))
    assert seen and set(seen) == {0o600}
    assert fetched.path.stat().st_mode & 0o777 == 0o600
