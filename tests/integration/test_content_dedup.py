"""Content deduplication is no oracle: an agency publishing the exact bytes another agency stores
(in a CONFIDENTIAL dataset, even a NOT_SHARED one) gets the answer, the CLI output, the audit
events and the listings that new bytes get; only its own earlier content is reported as such.
Its upload becomes a file of its own: the holder's file is never replaced, freed or looked at
(so no publish takes longer for bytes someone else holds), and every dataset naming the bytes
is served intact."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner, Result

from agencies import errors
from gateway.cli.agency import agency
from tests.support.exchange import ask, publish
from tests.support.publishing import failing_batch, publish_in_batch_with

SECRET = b"patient,diagnosis\n" + b"".join(b"%06d,condition-%d\n" % (n, n * 7) for n in range(300))
"""What gd-health keeps in a CONFIDENTIAL dataset; the others guess it exactly."""
FRESH = SECRET.replace(b"condition", b"situation")
"""Bytes no one stores, of the same length."""
OWNER_DATASET = "agencies/gd-health/datasets/patient-records"
SAME_AGAIN = " (the same content as a version you published before)"
GUESSERS = ("sz-market", "zj-stats")


def cli(network: Any, agency_id: str, *args: str | Path) -> Result:
    options = ["--certs", str(network.layout.certs(agency_id)), "--gateway", network.target,
               "--server-name", "localhost"]
    result = CliRunner().invoke(agency, [*options, *map(str, args)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result


def cli_publish(network: Any, agency_id: str, path: Path, dataset: str, *flags: str) -> Result:
    return cli(network, agency_id, *flags, "publish", path, "-d", dataset, "--title",
               "Patient records?", "--classification", "PUBLIC", "--sharing-type",
               "UNCONDITIONAL")


def file_of(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / f"{name}.bin"
    path.write_bytes(content)
    return path


def printed(result: Result, version: Any) -> str:
    """What the CLI printed for publishing `version`, with what names it replaced."""
    return (result.output.replace(version.name, "VERSION")
            .replace(version.manifest.content_sha256.hex(), "SHA256")
            .replace(f"audit leaf {version.audit_leaf_index}", "audit leaf LEAF"))


def publish_events(network: Any, agency_id: str) -> list[dict[str, Any]]:
    """The agency's own audit events, as its SDK lists them, in order."""
    client = network.agency(agency_id)
    return [json.loads(event.record)
            for event in client.audit_events(actor=f"urn:govshare:agency:{agency_id}")]


def without_identity(record: dict[str, Any], dataset: str) -> dict[str, Any]:
    """An audit record with what necessarily differs between two publishes left out: the time,
    the request and envelope digests, request ids, and the dataset's own id."""
    kept = {key: value for key, value in record.items()
            if key not in ("time", "request_digest", "envelopes")}
    return json.loads(without_ids(json.dumps(kept).replace(dataset, "X")))


def without_ids(text: str) -> str:
    """`text` with the request ids of INTERNAL and STORAGE_ERROR messages replaced."""
    return re.sub("[0-9a-f]{32}", "ID", text)


def listed(network: Any, agency_id: str, dataset: str) -> dict[str, Any]:
    """How the catalog shows one of the agency's datasets, its id and times left out."""
    client = network.agency(agency_id)
    shown = client.get(dataset)
    version = next(client.versions(dataset))
    return {"state": shown.state, "latest_version": shown.latest_version,
            "publisher": shown.publisher, "version": version.version,
            "classification": shown.manifest.classification}


def watch_rows(network: Any, dataset: str) -> list[tuple[str, str]]:
    return network.gateway.db.reader().execute(
        "SELECT type, summary FROM events WHERE dataset = ?", (dataset,)).fetchall()


@pytest.mark.parametrize("sharing_type", ["NOT_SHARED", "CONDITIONAL"])
def test_publishing_bytes_another_agency_keeps_confidential_answers_as_new_bytes(
        network: Any, tmp_path: Path, sharing_type: str) -> None:
    owner = network.agency("gd-health")
    publish(owner, "patient-records", SECRET, media_type="OCTET_STREAM",
            classification="CONFIDENTIAL", sharing_type=sharing_type)

    # sz-market guesses with the CLI: the exact bytes, and bytes no one holds.
    guessed = cli_publish(network, "sz-market", file_of(tmp_path, "guess", SECRET), "guess")
    fresh = cli_publish(network, "sz-market", file_of(tmp_path, "fresh", FRESH), "fresh")
    market = network.agency("sz-market")
    shown = [printed(result, next(market.versions(dataset)))
             for dataset, result in (("guess", guessed), ("fresh", fresh))]
    assert shown[0] == shown[1]
    assert f"published VERSION\nsha256 SHA256  {len(SECRET)} bytes  audit leaf LEAF\n" in shown[0]

    # zj-stats guesses with --json: the answer carries no content_deduplicated at all.
    answers = [json.loads(cli_publish(network, "zj-stats", file_of(tmp_path, name, content),
                                      name, "--json").output)
               for name, content in (("guess", SECRET), ("fresh", FRESH))]
    assert [set(answer) for answer in answers] == [{"dataset_version"}] * 2

    # Their audit events, listings and watch events are those of any new content, and none
    # is a refusal.
    for agency_id in GUESSERS:
        records = publish_events(network, agency_id)
        assert [(r["action"], r["outcome"]) for r in records] == \
            [("catalog.publish", "ALLOWED")] * 2
        guess_name = f"agencies/{agency_id}/datasets/guess"
        fresh_name = f"agencies/{agency_id}/datasets/fresh"
        assert without_identity(records[0], guess_name) == \
            without_identity(records[1], fresh_name)
        assert listed(network, agency_id, guess_name) == listed(network, agency_id, fresh_name)
        assert watch_rows(network, guess_name) == watch_rows(network, fresh_name)

    # Each agency's bytes are stored in its own namespace, intact, and every dataset naming
    # them is served.
    blobs = network.gateway.blobs
    digest, fresh_digest = hashlib.sha256(SECRET).hexdigest(), hashlib.sha256(FRESH).hexdigest()
    assert set(blobs.stored()) == {("gd-health", digest),
                                   *((agency_id, content) for agency_id in GUESSERS
                                     for content in (digest, fresh_digest))}
    assert blobs.verify("gd-health", digest)
    reader = network.agency("zj-stats")
    ask(reader, "agencies/sz-market/datasets/guess")
    assert reader.fetch("agencies/sz-market/datasets/guess", to=tmp_path / "got").receipt
    assert (tmp_path / "got").read_bytes() == SECRET
    assert owner.verify_manifest(next(owner.versions("patient-records"))).content_sha256 == \
        hashlib.sha256(SECRET).digest()
    if sharing_type == "CONDITIONAL":
        request = ask(reader, OWNER_DATASET).access_request
        owner.approve(request.name)
        reader.fetch(OWNER_DATASET, to=tmp_path / "owner")
        assert (tmp_path / "owner").read_bytes() == SECRET


def test_republishing_your_own_content_is_reported(network: Any, tmp_path: Path) -> None:
    # Once sz-market has published the bytes (whoever else holds them), they are its own too.
    publish(network.agency("gd-health"), "patient-records", SECRET, media_type="OCTET_STREAM",
            classification="CONFIDENTIAL", sharing_type="NOT_SHARED")
    secret = file_of(tmp_path, "secret", SECRET)
    first = cli_publish(network, "sz-market", secret, "guess")
    assert SAME_AGAIN not in first.output
    again = cli_publish(network, "sz-market", secret, "guess")
    copy = cli_publish(network, "sz-market", secret, "copy")
    assert f"published agencies/sz-market/datasets/guess/versions/2{SAME_AGAIN}\n" in again.output
    assert f"published agencies/sz-market/datasets/copy/versions/1{SAME_AGAIN}\n" in copy.output
    answer = json.loads(cli_publish(network, "sz-market", secret, "copy", "--json").output)
    assert answer["content_deduplicated"] is True


def test_failed_publish_of_bytes_another_agency_holds_keeps_them_and_answers_as_new_bytes(
        network: Any, tmp_path: Path) -> None:
    owner = network.agency("gd-health")
    publish(owner, "patient-records", SECRET, media_type="OCTET_STREAM",
            classification="CONFIDENTIAL", sharing_type="CONDITIONAL")
    market = network.agency("sz-market")
    failures = [publish_in_batch_with(network, failing_batch, market, name, content)
                for name, content in (("guess", SECRET), ("fresh", FRESH))]
    for error in failures:
        assert isinstance(error, errors.GovshareError)
    assert len({(e.code, e.reason, without_ids(e.message)) for e in failures}) == 1
    assert (failures[0].code, failures[0].reason) == (grpc.StatusCode.UNAVAILABLE,
                                                      "STORAGE_ERROR")
    refusals = publish_events(network, "sz-market")
    assert [(r["action"], r["outcome"]) for r in refusals] == [("catalog.publish", "REFUSED")] * 2
    assert without_identity(refusals[0], "guess") == without_identity(refusals[1], "fresh")

    # gd-health's content stays, intact and served; the new bytes left nothing.
    blobs = network.gateway.blobs
    assert blobs.verify("gd-health", hashlib.sha256(SECRET).hexdigest())
    assert list(blobs.stored()) == [("gd-health", hashlib.sha256(SECRET).hexdigest())]
    assert list(blobs.tmp.iterdir()) == []
    reader = network.agency("zj-stats")
    owner.approve(ask(reader, OWNER_DATASET).access_request.name)
    reader.fetch(OWNER_DATASET, to=tmp_path / "owner")
    assert (tmp_path / "owner").read_bytes() == SECRET


def test_publishing_bytes_another_agency_holds_leaves_its_blob_file_untouched(
        network: Any) -> None:
    # Replacing or unlinking the holder's file would free its blocks inside the publish, in
    # time proportional to its size: a guess confirmed by a stopwatch. Nothing may touch it.
    owner = network.agency("gd-health")
    publish(owner, "patient-records", SECRET, media_type="OCTET_STREAM",
            classification="CONFIDENTIAL", sharing_type="NOT_SHARED")
    blobs = network.gateway.blobs
    digest = hashlib.sha256(SECRET).hexdigest()
    held = file_status(blobs.path("gd-health", digest))

    guessed = network.agency("zj-stats").publish(
        "guess", SECRET, title="Guess", media_type="OCTET_STREAM")
    assert not guessed.content_deduplicated
    assert file_status(blobs.path("gd-health", digest)) == held
    assert file_status(blobs.path("zj-stats", digest))[0] != held[0]  # a file of its own
    assert blobs.verify("gd-health", digest) and blobs.verify("zj-stats", digest)


def file_status(path: Path) -> tuple[int, ...]:
    """What replacing, unlinking or writing a file changes: inode, links, size, mtime, ctime."""
    status = path.stat()
    return (status.st_ino, status.st_nlink, status.st_size, status.st_mtime_ns,
            status.st_ctime_ns)
