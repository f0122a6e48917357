"""Finding datasets through a real gateway: get, list, search, versions, withdraw, visibility
and page tokens."""

from __future__ import annotations

import base64
import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlite_utils

from agencies import errors
from gateway import catalog as gateway_catalog
from gateway.storage import Database
from gateway.storage.schema import MIGRATIONS
from gateway.v1 import catalog_pb2
from govshare import times

CONTENT = b"id,value\n1,2\n"
BEDS = "agencies/gd-health/datasets/hospital-beds"
SECRET = "agencies/gd-health/datasets/patient-records"


def publish(client: Any, dataset: str, **fields: Any) -> catalog_pb2.DatasetVersion:
    fields.setdefault("title", dataset.replace("-", " "))
    return client.publish(dataset, CONTENT, **fields).dataset_version


def names(datasets: Any) -> list[str]:
    return [d.name for d in datasets]


@pytest.fixture
def catalog(network: Any) -> Any:
    health, market = network.agency("gd-health"), network.agency("sz-market")
    publish(health, "hospital-beds", abstract="Hospital beds per city", tags=["health", "beds"],
            classification="PUBLIC", sharing_type="UNCONDITIONAL",
            schema=[catalog_pb2.SchemaField(name="bed_count",
                                            type=catalog_pb2.FIELD_TYPE_INTEGER,
                                            sensitivity=catalog_pb2.SENSITIVITY_NONE)])
    publish(health, "patient-records", abstract="Discharge summaries", tags=["health"],
            classification="CONFIDENTIAL", sharing_type="CONDITIONAL")
    publish(market, "company-registry", abstract="Registered companies in Shenzhen",
            tags=["business"], classification="INTERNAL", sharing_type="CONDITIONAL")
    return network


def test_round_trip_get_list_search_versions_withdraw(catalog: Any) -> None:
    health, stats = catalog.agency("gd-health"), catalog.agency("zj-stats")
    publish(health, "hospital-beds", abstract="Hospital beds per city, corrected",
            tags=["health"], classification="PUBLIC", sharing_type="UNCONDITIONAL")
    dataset = stats.get(BEDS)
    assert dataset.latest_version == 2
    assert dataset.manifest.abstract == "Hospital beds per city, corrected"
    assert names(stats.datasets()) == ["agencies/sz-market/datasets/company-registry", BEDS]
    assert names(stats.search("corr hosp")) == [BEDS]
    versions = list(stats.versions(BEDS))
    assert [v.version for v in versions] == [2, 1]
    for version in versions:
        assert stats.verify_manifest(version).version == version.version

    withdrawn = health.withdraw("hospital-beds", "superseded by national data")
    assert withdrawn.state == catalog_pb2.DATASET_STATE_WITHDRAWN
    assert withdrawn.withdraw_reason == "superseded by national data"
    assert BEDS not in names(stats.datasets())
    assert BEDS in names(stats.datasets(show_withdrawn=True))
    assert stats.get(BEDS).state == catalog_pb2.DATASET_STATE_WITHDRAWN
    assert len(list(stats.versions(BEDS))) == 2
    events = catalog.gateway.db.reader().execute(
        "SELECT type FROM events WHERE dataset = ? ORDER BY seq", (BEDS,)).fetchall()
    assert events[-1] == ("DATASET_WITHDRAWN",)
    leaf = catalog.gateway.db.reader().execute(
        "SELECT actor, outcome FROM audit_leaves WHERE action = 'catalog.withdraw'").fetchall()
    assert leaf == [("urn:govshare:agency:gd-health", "ALLOWED")]
    with pytest.raises(errors.FailedPrecondition) as caught:
        publish(health, "hospital-beds")
    assert caught.value.reason == "DATASET_WITHDRAWN"


def test_filters(catalog: Any) -> None:
    stats = catalog.agency("zj-stats")
    registry = "agencies/sz-market/datasets/company-registry"
    assert names(stats.datasets(publisher="sz-market")) == [registry]
    assert names(stats.datasets(region_code="440000")) == [registry, BEDS]
    assert names(stats.datasets(region_code="440300")) == [registry]
    assert names(stats.datasets(region_code="330000")) == []
    assert names(stats.datasets(tag="beds")) == [BEDS]
    assert names(stats.datasets(classification="INTERNAL")) == [registry]
    assert names(stats.datasets(sharing_type="UNCONDITIONAL")) == [BEDS]
    assert names(stats.search("bed_count")) == [BEDS]
    assert names(stats.search('shenzhen" OR "hospital*')) == []
    with pytest.raises(errors.InvalidArgument) as caught:
        list(stats.datasets(region_code="44"))
    assert caught.value.metadata["field"] == "region_code"
    with pytest.raises(errors.InvalidArgument):
        list(stats.datasets(classification=9))
    with pytest.raises(errors.InvalidArgument):
        list(stats.datasets(publisher="../x"))


def _grant(network: Any, grantee: str, dataset: str, expire: timedelta,
           classification: str = "CONFIDENTIAL") -> None:
    """An ACTIVE grant row, as the exchange records one after an approval given while the
    dataset's latest version was `classification` and CONDITIONAL."""
    owner = dataset.split("/")[1]
    now = network.gateway.now()
    request = f"agencies/{grantee}/accessRequests/r-{classification.lower()}"

    def change(tx: Any) -> tuple[None, list]:
        tx.conn.execute(
            "INSERT INTO access_requests (name, requester, owner, dataset, request_id,"
            " statement_digest, signed_statement, state, state_reason, create_time)"
            " VALUES (?, ?, ?, ?, ?, '', x'', 'APPROVED', '', ?)",
            (request, grantee, owner, dataset, request, times.to_text(now)))
        tx.conn.execute(
            "INSERT INTO grants (name, grantee, owner, dataset, access_request, fields, state,"
            " signed_statement, create_time, expire_time, max_classification,"
            " max_sharing_type) VALUES (?, ?, ?, ?, ?, '', 'ACTIVE', x'', ?, ?, ?,"
            " 'CONDITIONAL')",
            (f"agencies/{grantee}/grants/g-{classification.lower()}", grantee, owner, dataset,
             request, times.to_text(now), times.to_text(now + expire), classification))
        return None, []

    network.gateway.work.commit(change)


def test_confidential_metadata_visibility(catalog: Any) -> None:
    health, stats, market = (catalog.agency(a) for a in ("gd-health", "zj-stats", "sz-market"))
    assert health.get(SECRET).manifest.classification == catalog_pb2.CLASSIFICATION_CONFIDENTIAL
    assert SECRET in names(health.datasets())
    assert SECRET not in names(stats.datasets())
    assert names(stats.search("discharge")) == []
    for name in (SECRET, "agencies/gd-health/datasets/no-such-thing"):
        with pytest.raises(errors.PermissionDenied) as caught:
            stats.get(name)
        assert caught.value.reason == "DATASET_NOT_VISIBLE"
        with pytest.raises(errors.PermissionDenied):
            list(stats.versions(name))
    with pytest.raises(errors.NotFound):
        health.get("no-such-thing")

    _grant(catalog, "zj-stats", SECRET, timedelta(days=30))
    _grant(catalog, "sz-market", SECRET, timedelta(seconds=-1))
    assert stats.get(SECRET).name == SECRET
    assert SECRET in names(stats.datasets())
    with pytest.raises(errors.PermissionDenied):
        market.get(SECRET)  # its grant has expired

    auditor = catalog.auditor()
    request = catalog_pb2.GetDatasetRequest(name=SECRET)
    assert auditor._call(auditor.catalog.GetDataset, request).dataset.name == SECRET
    refused = catalog.gateway.db.reader().execute(
        "SELECT COUNT(*) FROM audit_leaves WHERE action = 'catalog.get' AND outcome = 'REFUSED'"
    ).fetchone()[0]
    assert refused >= 3


def test_withdraw_refusals(catalog: Any) -> None:
    health, market = catalog.agency("gd-health"), catalog.agency("sz-market")
    with pytest.raises(errors.PermissionDenied) as caught:
        market.withdraw(BEDS, "not mine")
    assert caught.value.reason == "NOT_OWNER"
    with pytest.raises(errors.InvalidArgument):
        health.withdraw("hospital-beds", "")
    with pytest.raises(errors.NotFound):
        health.withdraw("no-such-thing", "gone")
    health.withdraw("hospital-beds", "obsolete")
    with pytest.raises(errors.FailedPrecondition):
        health.withdraw("hospital-beds", "again")
    admin = catalog.admin()
    with pytest.raises(errors.PermissionDenied) as caught:
        admin._call(admin.catalog.WithdrawDataset,
                    catalog_pb2.WithdrawDatasetRequest(name=BEDS, reason="x"))
    assert caught.value.reason == "ROLE_NOT_ALLOWED"


def test_withdraw_closes_pending_access_requests_and_tells_their_requesters(
        catalog: Any) -> None:
    conn = catalog.gateway.db.reader()
    pending = {"zj-stats": "agencies/zj-stats/accessRequests/p1",
               "sz-market": "agencies/sz-market/accessRequests/p2"}

    def change(tx: Any) -> tuple[None, list]:
        for requester, name in pending.items():
            tx.conn.execute(
                "INSERT INTO access_requests (name, requester, owner, dataset, request_id,"
                " statement_digest, signed_statement, state, state_reason, create_time)"
                " VALUES (?, ?, 'gd-health', ?, ?, '', x'', 'PENDING', '', ?)",
                (name, requester, BEDS, name[-2:], times.to_text(catalog.gateway.now())))
        return None, []

    catalog.gateway.work.commit(change)
    catalog.agency("gd-health").withdraw("hospital-beds", "obsolete")
    assert conn.execute("SELECT state FROM access_requests").fetchall() == [("WITHDRAWN",)] * 2
    record = json.loads(conn.execute(
        "SELECT record FROM audit_leaves WHERE action = 'catalog.withdraw'").fetchone()[0])
    assert record["resources"] == [BEDS, *pending.values()]
    assert {"agencies/zj-stats", "agencies/sz-market"} <= set(record["subjects"])
    told = conn.execute("SELECT recipient, type, resource FROM events WHERE recipient IS NOT NULL"
                        " ORDER BY seq").fetchall()
    assert told == [(requester, "ACCESS_REQUEST_WITHDRAWN", name)
                    for requester, name in pending.items()]


def test_page_tokens(catalog: Any) -> None:
    stats = catalog.agency("zj-stats")
    request = catalog_pb2.ListDatasetsRequest(parent="agencies/-", page_size=1)
    first = stats._call(stats.catalog.ListDatasets, request)
    assert len(first.datasets) == 1 and first.next_page_token
    tampered = first.next_page_token[:-2] + ("AA" if first.next_page_token[-2:] != "AA" else "BB")
    foreign = catalog_pb2.ListDatasetsRequest(parent="agencies/-", page_size=1, tag="health",
                                              page_token=first.next_page_token)
    for bad in (catalog_pb2.ListDatasetsRequest(parent="agencies/-", page_token=tampered),
                foreign,
                catalog_pb2.ListDatasetsRequest(parent="agencies/-", page_token="not-a-token")):
        with pytest.raises(errors.InvalidArgument) as caught:
            stats._call(stats.catalog.ListDatasets, bad)
        assert caught.value.reason == "INVALID_PAGE_TOKEN"
    versions = catalog_pb2.ListDatasetVersionsRequest(parent=BEDS,
                                                      page_token=first.next_page_token)
    with pytest.raises(errors.InvalidArgument):
        stats._call(stats.catalog.ListDatasetVersions, versions)
    with pytest.raises(errors.InvalidArgument) as caught:
        stats._call(stats.catalog.ListDatasets,
                    catalog_pb2.ListDatasetsRequest(parent="agencies/-", page_size=-1))
    assert caught.value.metadata["field"] == "page_size"


def test_paging_while_inserting_returns_every_dataset_once(network: Any) -> None:
    health, stats = network.agency("gd-health"), network.agency("zj-stats")
    for index in range(12):
        publish(health, f"early-{index:02d}", classification="PUBLIC")
    stop = threading.Event()
    inserted: list[str] = []

    def insert_more() -> None:
        index = 0
        while not stop.is_set() and index < 20:
            publish(health, f"late-{index:02d}", classification="PUBLIC")
            inserted.append(f"late-{index:02d}")
            index += 1

    writer = threading.Thread(target=insert_more)
    writer.start()
    try:
        seen = names(stats.datasets(page_size=2))
    finally:
        stop.set()
        writer.join()
    assert len(seen) == len(set(seen))
    early = {f"agencies/gd-health/datasets/early-{i:02d}" for i in range(12)}
    assert early <= set(seen)
    assert set(seen) - early <= {f"agencies/gd-health/datasets/{n}" for n in inserted}


def test_versions_paging(network: Any) -> None:
    health = network.agency("gd-health")
    for _ in range(5):
        publish(health, "monthly")
    assert [v.version for v in health.versions("monthly", page_size=2)] == [5, 4, 3, 2, 1]


def test_malformed_names_are_invalid(network: Any) -> None:
    stats = network.agency("zj-stats")
    for name in ("agencies/gd-health/datasets/../x", "agencies/gd-health/datasets/a\0b",
                 "agencies/gd-health/datasets/" + "a" * 300, "agencies/gd-health"):
        with pytest.raises(errors.InvalidArgument) as caught:
            stats.get(name)
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.metadata["field"] == "name"


def test_reads_see_each_new_version_and_withdrawal_at_once(catalog: Any) -> None:
    # Dataset rows are cached between changes: publishing and withdrawing must invalidate them.
    health, market = catalog.agency("gd-health"), catalog.agency("sz-market")
    assert market.get(BEDS).latest_version == 1
    publish(health, "hospital-beds", classification="PUBLIC", sharing_type="UNCONDITIONAL")
    assert market.get(BEDS).latest_version == 2
    health.withdraw(BEDS, "superseded by the national bed register")
    assert market.get(BEDS).state == catalog_pb2.DATASET_STATE_WITHDRAWN
    with pytest.raises(errors.FailedPrecondition):
        market.request_access(BEDS, purpose="STATISTICS", purpose_text="beds report",
                              legal_basis="Statistics Law art. 7")


def test_chinese_search_matches_words_inside_a_run_of_characters(network: Any) -> None:
    health, stats = network.agency("gd-health"), network.agency("zj-stats")
    publish(health, "beds", title="广东省医院床位统计", abstract="全省各市医院床位数",
            tags=["卫生健康"], classification="PUBLIC",
            schema=[catalog_pb2.SchemaField(name="床位数", type=catalog_pb2.FIELD_TYPE_INTEGER,
                                            sensitivity=catalog_pb2.SENSITIVITY_NONE)])
    publish(health, "clinics", title="Clinics 2023年社区诊所名录", abstract="Community clinics",
            classification="PUBLIC")
    publish(health, "schools", title="学校名录", abstract="院校 listing", classification="PUBLIC")
    beds, clinics, schools = (f"agencies/gd-health/datasets/{n}"
                              for n in ("beds", "clinics", "schools"))
    for query, found in [
        ("医", [beds]),                       # one character, inside the title
        ("医院", [beds]),                     # two, in the middle of a run
        ("院", [schools, beds]),              # in 院校 and in 医院
        ("院医", []),                         # characters must be adjacent and in order
        ("床位统计", [beds]),                 # four
        ("健康", [beds]),                     # a tag
        ("位数", [beds]),                     # a field name (and the abstract)
        ("诊所 clinics", [clinics]),          # mixed, as two words
        ("2023年社区", [clinics]),            # mixed, as one word
        ("clin", [clinics]),                  # Latin prefixes as before
        ("名录 学", [schools]),
    ]:
        assert names(stats.search(query)) == found, query
    assert names(stats.search('医院" OR "学校')) == []  # still no FTS5 syntax


def test_chinese_search_covers_datasets_indexed_before_the_migration(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    MIGRATIONS.apply(old, stop_before="0008_search_text_by_han_character")
    old.execute("INSERT INTO agencies VALUES ('gd-health', 'GD', '440000', '', 'k', 'ACTIVE',"
                " '', 't', 't')")
    old.execute("INSERT INTO datasets (name, publisher, region_code, latest_version, state,"
                " classification, sharing_type, title, abstract, tags, field_names,"
                " create_time, update_time) VALUES (?, 'gd-health', '440000', 1, 'ACTIVE',"
                " 'PUBLIC', 'UNCONDITIONAL', '广东省医院床位统计', '', '', '', 't', 't')",
                [BEDS])
    old.conn.commit()
    old.close()
    conn = Database(path).writer
    assert conn.execute("SELECT rowid FROM datasets_fts WHERE datasets_fts MATCH ?",
                        (gateway_catalog.fts_query("医院"),)).fetchall() == [(1,)]


def test_an_older_confidential_version_stays_hidden_after_a_public_one(network: Any) -> None:
    health, stats = network.agency("gd-health"), network.agency("zj-stats")
    publish(health, "cases", title="HIV cases by district", abstract="named patients",
            classification="CONFIDENTIAL")
    publish(health, "cases", title="Case counts", classification="PUBLIC")
    publish(health, "cases", title="Case counts, again", classification="PUBLIC")
    cases = "agencies/gd-health/datasets/cases"
    assert [v.version for v in stats.versions(cases, page_size=1)] == [3, 2]
    assert [v.version for v in health.versions(cases)] == [3, 2, 1]
    _grant(network, "zj-stats", cases, timedelta(days=1), classification="PUBLIC")
    assert [v.version for v in stats.versions(cases)] == [3, 2]  # given under PUBLIC terms
    _grant(network, "zj-stats", cases, timedelta(days=1))
    assert [v.version for v in stats.versions(cases)] == [3, 2, 1]


def test_pages_stop_before_the_reply_outgrows_the_message_limit(network: Any) -> None:
    health, stats = network.agency("gd-health"), network.agency("zj-stats")
    for index in range(50):  # ~24 KiB each in a reply: 50 make more than the 1.06 MiB limit
        publish(health, f"beds-{index:02d}", title="医院床位" * 10,
                abstract="广东省医院床位统计数据" * 363, classification="PUBLIC")
    request = catalog_pb2.ListDatasetsRequest(parent="agencies/-")
    first = stats._call(stats.catalog.ListDatasets, request)
    assert 0 < len(first.datasets) < 50 and first.next_page_token
    assert first.ByteSize() <= network.gateway.config.limits.max_message_bytes
    seen = names(stats.datasets(page_size=1000))
    assert seen == [f"agencies/gd-health/datasets/beds-{i:02d}" for i in reversed(range(50))]


def test_version_int64_max_is_listed(network: Any) -> None:
    health = network.agency("gd-health")
    publish(health, "monthly", version=1)
    publish(health, "monthly", version=2**63 - 1)
    assert [v.version for v in health.versions("monthly")] == [2**63 - 1, 1]
    assert [v.version for v in health.versions("monthly", page_size=1)] == [2**63 - 1, 1]


def test_page_tokens_reveal_nothing(catalog: Any) -> None:
    stats = catalog.agency("zj-stats")
    request = catalog_pb2.ListDatasetsRequest(parent="agencies/-", page_size=1)
    tokens = [stats._call(stats.catalog.ListDatasets, request).next_page_token for _ in "ab"]
    assert tokens[0] != tokens[1]  # the same position, sealed afresh each time
    for token in tokens:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        with pytest.raises(ValueError):
            json.loads(raw[32:])  # the old layout: a MAC, then the position in plain JSON
        request.page_token = token
        assert len(stats._call(stats.catalog.ListDatasets, request).datasets) == 1
