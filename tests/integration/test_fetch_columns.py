"""FetchDataset under a grant naming fewer fields than the schema: the gateway delivers a
projection of those fields, which the SDK verifies against the publisher's column digests (row
counts on a boundary of the digests' batches included)."""

from __future__ import annotations

import hashlib
import json

import pytest
from google.protobuf import timestamp_pb2

from agencies import errors
from gateway.v1 import catalog_pb2
from govshare import columns, envelopes
from tests.support.exchange import SCHEMA, ask, counts, publish
from tests.support.fetching import break_off, exchange_row, fetch_events
from tests.support.publishing import rows_csv

GRANTED = ["region", "doctors"]
TABLE = ('region,beds,doctors\n'
         '"广州, 越秀",120,"张三\n李四"\n'
         '深圳,,\n'
         '佛山,7\n').encode()
LINES = ('{"region":"广州","beds":120,"doctors":[{"name":"张三","years":3}]}\n'
         '{"beds":5,"region":{"city":"深圳","district":null}}\n').encode()


def granted_fields(network, content: bytes, media_type: str = "CSV", dataset_id: str = "beds"):
    """gd-health publishes `content` (the SDK adds column digests) and approves sz-market's
    request for the GRANTED fields only; returns (market, dataset)."""
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, dataset_id, content, sharing_type="CONDITIONAL",
                      media_type=media_type)
    health.approve(ask(market, dataset).access_request.name, fields=["doctors", "region"])
    return market, dataset


def projection(content: bytes, media_type: int) -> bytes:
    return b"".join(columns.Projection([content], media_type, GRANTED))


@pytest.mark.parametrize(("content", "media_type", "kind"), [
    (TABLE, "CSV", catalog_pb2.MEDIA_TYPE_CSV),
    (LINES, "JSON_LINES", catalog_pb2.MEDIA_TYPE_JSON_LINES),
], ids=["csv", "json-lines"])
def test_a_grant_naming_some_fields_delivers_them_verified(network, tmp_path, content,
                                                           media_type, kind):
    market, dataset = granted_fields(network, content, media_type)
    fetched = market.fetch(dataset, tmp_path / "beds")

    delivered = (tmp_path / "beds").read_bytes()
    assert delivered == projection(content, kind)
    assert fetched.fields == GRANTED  # in schema order, whatever order the owner named them
    receipt = fetched.receipt
    assert list(receipt.fields) == GRANTED
    assert receipt.delivered_sha256 == hashlib.sha256(delivered).digest()
    assert receipt.delivered_size == len(delivered)
    assert receipt.content_sha256 == hashlib.sha256(content).digest()
    assert all(len(field.values_sha256) == 32 for field in fetched.manifest.schema)
    assert fetched.manifest.row_count == (3 if kind == catalog_pb2.MEDIA_TYPE_CSV else 2)
    start, complete = fetch_events(network)
    assert start[0] == "exchange.fetch.start" and "fields region,doctors" in start[2]
    assert complete[0] == "exchange.fetch.complete" and "fields region,doctors" in complete[2]


def test_csv_cells_keep_their_quoting_and_json_values_their_structure(network, tmp_path):
    market, dataset = granted_fields(network, TABLE)
    market.fetch(dataset, tmp_path / "beds.csv")
    assert (tmp_path / "beds.csv").read_text() == \
        'region,doctors\n"广州, 越秀","张三\n李四"\n深圳,\n佛山,\n'

    market, dataset = granted_fields(network, LINES, "JSON_LINES", "beds-lines")
    market.fetch(dataset, tmp_path / "beds.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "beds.jsonl").read_text().splitlines()]
    assert rows == [{"region": "广州", "doctors": [{"name": "张三", "years": 3}]},
                    {"region": {"city": "深圳", "district": None}, "doctors": None}]


def publish_forged(client, dataset_id: str, content: bytes) -> str:
    """Publish `content` with a manifest whose region digest is wrong (signed by the owner)."""
    names = [field.name for field in SCHEMA]
    found = columns.scan([content], catalog_pb2.MEDIA_TYPE_CSV, names)
    digests = dict(found.digests, region=hashlib.sha256(b"forged").digest())
    created = timestamp_pb2.Timestamp()
    created.GetCurrentTime()
    manifest = catalog_pb2.Manifest(
        dataset=client.dataset_name(dataset_id), version=1, title="Forged digests",
        media_type=catalog_pb2.MEDIA_TYPE_CSV, schema=[
            catalog_pb2.SchemaField(name=f.name, type=f.type, sensitivity=f.sensitivity,
                                    values_sha256=digests[f.name]) for f in SCHEMA],
        classification=catalog_pb2.CLASSIFICATION_INTERNAL,
        sharing_type=catalog_pb2.SHARING_TYPE_CONDITIONAL,
        update_cycle=catalog_pb2.UPDATE_CYCLE_IRREGULAR,
        content_sha256=hashlib.sha256(content).digest(), content_size=len(content),
        row_count=found.row_count, create_time=created)
    client.upload(envelopes.seal(client.signing_key, envelopes.MANIFEST, manifest),
                  [content], len(content))
    return client.dataset_name(dataset_id)


def test_the_gateway_refuses_a_projection_whose_columns_differ_from_the_signed_ones(network,
                                                                                    tmp_path):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish_forged(health, "forged", TABLE)
    health.approve(ask(market, dataset).access_request.name, fields=GRANTED)
    before = counts(network)

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(errors.DataLoss) as refused:
        market.fetch(dataset, out / "forged.csv")

    assert refused.value.reason == "COLUMNS_MISMATCH"
    assert "region" in refused.value.message and "republish" in refused.value.message
    assert not list(out.iterdir())  # no file, no leftovers
    name, state, receipt = network.gateway.db.reader().execute(
        "SELECT name, state, receipt FROM exchanges").fetchone()
    assert (state, receipt) == ("BROKEN", None)
    assert counts(network)["exchanges"] == before["exchanges"] + 1
    action, outcome, record = fetch_events(network)[-1]
    assert (action, outcome) == ("exchange.fetch.break", "REFUSED")
    assert "COLUMNS_MISMATCH" in record and name in record


def big_table(rows: int) -> bytes:
    """A CSV larger than gRPC buffers in flight even once projected, so a fetch breaks off."""
    row = '"广东省, 第{0}区",{0},"医生 {0}\n值班"\n'
    return ("region,beds,doctors\n" + "".join(row.format(i) for i in range(rows))).encode()


def test_a_projected_fetch_resumes_and_a_changed_projection_starts_anew(network, tmp_path):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    content = big_table(420_000)
    dataset = publish(health, "big", content, sharing_type="CONDITIONAL")
    narrow = health.approve(ask(market, dataset).access_request.name, fields=GRANTED).grant
    expected = projection(content, catalog_pb2.MEDIA_TYPE_CSV)
    target = tmp_path / "big.csv"

    name = break_off(network, market, dataset, target)
    kept = (tmp_path / "big.csv.part").stat().st_size
    assert 0 < kept < len(expected)
    fetched = market.fetch(dataset, target)  # regenerated, sent from the offset
    assert fetched.receipt.exchange == name and fetched.fields == GRANTED
    assert target.read_bytes() == expected
    assert fetched.receipt.delivered_size == len(expected)
    assert "offset 0" not in fetch_events(network)[-2][2]  # the resumed start

    # Broken off under the narrow grant, resumed under one for the whole dataset: the bytes
    # kept are a projection, so the gateway refuses to continue them and the SDK starts anew.
    broken = break_off(network, market, dataset, tmp_path / "again.csv")
    health.revoke(narrow.name, "widened")
    health.approve(ask(market, dataset).access_request.name)
    again = market.fetch(dataset, tmp_path / "again.csv")
    assert again.receipt.exchange != broken and again.fields == []
    assert (tmp_path / "again.csv").read_bytes() == content
    assert exchange_row(network, broken)["state"] == "BROKEN"
    assert any("EXCHANGE_FIELDS_CHANGED" in record for _, _, record in fetch_events(network))


def test_columns_beyond_the_schema_never_reach_a_grant_naming_fields(network, tmp_path):
    """The content holds a column its schema does not declare: a grant naming every declared
    field still gets a projection, without it."""
    health, market = network.agency("gd-health"), network.agency("sz-market")
    dataset = publish(health, "beds-extra", b"region,beds,doctors,id_number\n1,2,3,440101\n",
                      sharing_type="CONDITIONAL")
    health.approve(ask(market, dataset, fields=["region", "beds", "doctors"])
                   .access_request.name)
    fetched = market.fetch(dataset, tmp_path / "beds.csv")
    assert (tmp_path / "beds.csv").read_bytes() == b"region,beds,doctors\r\n1,2,3\r\n"
    assert fetched.fields == ["region", "beds", "doctors"]


def test_a_grant_naming_fields_gets_nothing_of_a_version_holding_none_of_them(network, tmp_path):
    """v2 renamed the columns: a grant on v2's field cannot fetch v1, whole or projected."""
    health, market = network.agency("gd-health"), network.agency("sz-market")

    def schema(*names):
        return [catalog_pb2.SchemaField(name=name, type=catalog_pb2.FIELD_TYPE_STRING,
                                        sensitivity=catalog_pb2.SENSITIVITY_NONE)
                for name in names]

    health.publish("people", b"region,idcard\nGZ,440101199001011234\n", title="People",
                   media_type="CSV", schema=schema("region", "idcard"),
                   sharing_type="CONDITIONAL")
    health.publish("people", b"city,count\nGZ,1\n", title="People", media_type="CSV",
                   schema=schema("city", "count"), sharing_type="CONDITIONAL")
    dataset = health.dataset_name("people")
    health.approve(ask(market, dataset, fields=["city"]).access_request.name)
    before = counts(network)

    with pytest.raises(errors.FailedPrecondition) as refused:
        market.fetch(f"{dataset}/versions/1", tmp_path / "people.csv")
    assert refused.value.reason == "GRANT_FIELDS_ABSENT"
    assert not (tmp_path / "people.csv").exists()
    assert counts(network) == {**before, "audit_leaves": before["audit_leaves"] + 1}  # refusal
    market.fetch(dataset, tmp_path / "people.csv")
    assert (tmp_path / "people.csv").read_bytes() == b"city\r\nGZ\r\n"


@pytest.mark.parametrize("rows", [0, 1024, 2048])
def test_csv_on_a_batch_boundary_publishes_and_projects(network, tmp_path, rows):
    """Column digests are hashed 1024 rows at a time: a row count that is a multiple of that
    (0 included, a header-only CSV) publishes, and a field-limited fetch of it verifies."""
    health, market = network.agency("gd-health"), network.agency("sz-market")
    content = rows_csv(rows)
    dataset = publish(health, f"rows-{rows}", content, sharing_type="CONDITIONAL")
    health.approve(ask(market, dataset).access_request.name, fields=["beds"])

    fetched = market.fetch(dataset, tmp_path / "beds.csv")

    delivered = (tmp_path / "beds.csv").read_bytes()
    assert delivered == b"".join(columns.Projection([content], catalog_pb2.MEDIA_TYPE_CSV,
                                                    ["beds"]))
    assert fetched.fields == ["beds"] and fetched.manifest.row_count == rows
    assert fetched.receipt.delivered_sha256 == hashlib.sha256(delivered).digest()
