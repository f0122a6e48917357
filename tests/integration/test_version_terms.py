"""Sharing terms belong to a version: a grant opens no version published under stricter terms.

The attack: an owner publishes a dataset CONFIDENTIAL and CONDITIONAL, then a version PUBLIC and
UNCONDITIONAL (an anonymised summary, say). Any agency gets a grant at once, under the new
version's terms; it must not see nor fetch the first version, which its owner never decided to
give it. Each case below publishes v1 under terms `older`, v2 under `newer`, has sz-market
obtain a grant (at once for UNCONDITIONAL, by the owner's approval otherwise: under v2's
terms), reads everything (stage "granted"), then publishes v3 under `older` again and reads
everything once more (stage "republished"): both orders of the two terms, on every surface.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner

from agencies import errors
from agencies.sim.roster import AgencySpec
from gateway.cli.agency import agency
from gateway.v1 import catalog_pb2, exchange_pb2
from tests.support.exchange import (
    ask,
    assert_only_refusal,
    counts,
    publish,
    wait_for,
)
from tests.support.network import start_network
from tests.support.visibility import MISSING, answer, assert_tells_nothing

CLASSIFICATIONS = ("PUBLIC", "INTERNAL", "CONFIDENTIAL")
SHARING_TYPES = ("UNCONDITIONAL", "CONDITIONAL")
TERMS = list(itertools.product(CLASSIFICATIONS, SHARING_TYPES))
PAIRS = [(older, newer) for older, newer in itertools.product(TERMS, TERMS) if older != newer]
IDS = [f"{'-'.join(older)}-then-{'-'.join(newer)}" for older, newer in PAIRS]

Terms = tuple[str, str]


def covers(grant: Terms, version: Terms) -> bool:
    """The rule, stated apart from the gateway's code: no stricter on either axis."""
    return (CLASSIFICATIONS.index(version[0]) <= CLASSIFICATIONS.index(grant[0])
            and SHARING_TYPES.index(version[1]) <= SHARING_TYPES.index(grant[1]))


def visible(grant: Terms, version: Terms) -> bool:
    """CONFIDENTIAL metadata shows only under a grant given under CONFIDENTIAL terms."""
    return version[0] != "CONFIDENTIAL" or grant[0] == "CONFIDENTIAL"


def stricter_message(which: str, grant: str, terms: Terms | None = None,
                     granted: Terms | None = None, *, latest: int = 0) -> str:
    """GRANT_TERMS_STRICTER's message; the terms appear only when the caller may see them, the
    way on (a request naming the version, `latest` for "the latest version of") always."""
    ask = "request access to the dataset again"
    said = ""
    if terms and granted:
        said = f" ({terms[0]} and {terms[1]}; it covers {granted[0]} and {granted[1]})"
        number = latest or which.rsplit("/", 1)[1]
        ask = (f"request access to version {number} (govshare agency request --version {number}"
               " / AccessRequestStatement.version)")
    return (f"{which} was published under stricter terms than your grant {grant} covers{said}:"
            " a grant opens only versions whose terms are no stricter than those it was given"
            f" under; {ask} so that its owner decides on its terms")


def outcome(call: Callable[[], Any]) -> Any:
    """What the caller saw: the call's value, or (status, reason, message) of its refusal."""
    try:
        return call()
    except errors.GovshareError as refused:
        return refused.code, refused.reason, refused.message


# -- the scenarios, built once per pair on one gateway -------------------------------------------


class Scenario:
    """One dataset taken through both stages, with what sz-market saw at each."""

    def __init__(self, network: Any, index: int, older: Terms, newer: Terms, folder: Path):
        self.network, self.older, self.newer = network, older, newer
        self.folder = folder / f"fetched-{index:02d}"
        self.folder.mkdir()
        self.health, self.market = network.agency("gd-health"), network.agency("sz-market")
        self.id = f"terms-{index:02d}"
        self.dataset = self._publish(older, b"region,beds\n1,2\n")
        self._publish(newer, b"region,beds\n3,4\n")
        created = ask(self.market, self.dataset)
        self.grant = (created.grant if created.HasField("grant")
                      else self.health.approve(created.access_request.name).grant)
        self.seen: dict[str, dict[str, Any]] = {"granted": self._read(["1", "2", ""])}
        cursor = str(_last_event(network))
        self._publish(older, b"region,beds\n5,6\n")
        sentinel = publish(self.market, f"sentinel-{index}")
        self.seen["republished"] = self._read(["2", "3", ""])
        self.seen["republished"]["watch"] = self._watched(cursor, sentinel)

    def _publish(self, terms: Terms, content: bytes) -> str:
        return publish(self.health, self.id, content, classification=terms[0],
                       sharing_type=terms[1])

    def _read(self, fetched: list[str]) -> dict[str, Any]:
        seen = {
            "get": outcome(lambda: self.market.get(self.dataset).name),
            "versions": outcome(lambda: [v.version for v in self.market.versions(self.dataset)]),
            "search": [d.name for d in self.market.search(self.id)],
        }
        for version in fetched:
            seen[f"fetch {version or 'latest'}"] = self._fetch(version)
        return seen

    def _fetch(self, version: str) -> Any:
        """A fetch's outcome; a refused one must leave only its refusal event and no file."""
        asked = f"{self.dataset}/versions/{version}" if version else self.dataset
        target = self.folder / f"{len(list(self.folder.iterdir()))}.csv"
        before = counts(self.network)
        seen = outcome(lambda: self.market.fetch(asked, target).receipt.dataset_version)
        if isinstance(seen, tuple):
            assert_only_refusal(self.network, before, "exchange.fetch", seen[1])
            assert not target.exists() and not target.with_name(target.name + ".part").exists()
        return seen

    def _watched(self, cursor: str, sentinel: str) -> list[str]:
        """The events about the dataset sz-market's watch delivers, up to its own sentinel."""
        return [event.resource for event in watched(self.market, cursor, sentinel, self.dataset)]


def watched(agency: Any, cursor: str, sentinel: str, dataset: str) -> list[exchange_pb2.Event]:
    """The events about `dataset` that `agency`'s watch from `cursor` delivers, up to the
    publication of its own `sentinel` dataset."""
    stream = agency.watch(cursor=cursor)
    seen = []
    for event in stream:
        if event.dataset == sentinel:
            break
        if event.dataset == dataset:
            seen.append(event)
    stream.close()
    return seen


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Scenario]]:
    root = tmp_path_factory.mktemp("terms")
    network = start_network(root / "net")
    built: dict[tuple[Terms, Terms], Scenario] = {}

    def scenario(older: Terms, newer: Terms) -> Scenario:
        if (older, newer) not in built:
            built[older, newer] = Scenario(network, len(built), older, newer, root)
        return built[older, newer]

    try:
        yield scenario
    finally:
        network.close()


def _last_event(network: Any) -> int:
    return network.gateway.db.reader().execute("SELECT COALESCE(MAX(seq), 0) FROM events"
                                               ).fetchone()[0]


def hidden(case: Scenario) -> tuple[grpc.StatusCode, str, str]:
    return (grpc.StatusCode.PERMISSION_DENIED, "DATASET_NOT_VISIBLE",
            f"{case.dataset} does not exist or is not visible to you: CONFIDENTIAL datasets are"
            " visible only to their publisher and to agencies holding an active grant")


def expected_fetch(case: Scenario, version: int) -> Any:
    """Version `version` (published under `case.older`) delivered, refused as stricter, or, when
    the grant does not reveal it, answered as a version never published."""
    name = f"{case.dataset}/versions/{version}"
    if covers(case.newer, case.older):
        return name
    if not visible(case.newer, case.older):
        return grpc.StatusCode.NOT_FOUND, "VERSION_NOT_FOUND", f"{name} has no such version"
    return (grpc.StatusCode.FAILED_PRECONDITION, "GRANT_TERMS_STRICTER",
            stricter_message(name, case.grant.name, case.older, case.newer))


# -- the grant records its terms -----------------------------------------------------------------


@pytest.mark.parametrize(("older", "newer"), PAIRS, ids=IDS)
def test_a_grant_records_the_terms_of_the_latest_version_it_was_given_under(scenarios, older,
                                                                            newer):
    case = scenarios(older, newer)
    held = list(case.market.grants(dataset=case.dataset))
    assert [g.name for g in held] == [case.grant.name]
    for grant in (case.grant, held[0]):
        assert catalog_pb2.Classification.Name(grant.max_classification) == \
            f"CLASSIFICATION_{newer[0]}"
        assert catalog_pb2.SharingType.Name(grant.max_sharing_type) == f"SHARING_TYPE_{newer[1]}"
    signed = exchange_pb2.GrantStatement.FromString(case.grant.signed_statement.payload)
    assert (signed.max_classification, signed.max_sharing_type) == \
        (case.grant.max_classification, case.grant.max_sharing_type)


# -- the matrix ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("older", "newer"), PAIRS, ids=IDS)
def test_list_dataset_versions_shows_no_version_under_terms_the_grant_does_not_reveal(
        scenarios, older, newer):
    case = scenarios(older, newer)
    shown = visible(newer, older)
    assert case.seen["granted"]["versions"] == ([2, 1] if shown else [2])
    assert case.seen["republished"]["versions"] == ([3, 2, 1] if shown else hidden(case))


@pytest.mark.parametrize(("older", "newer"), PAIRS, ids=IDS)
def test_get_dataset_hides_a_dataset_whose_latest_terms_the_grant_does_not_reveal(
        scenarios, older, newer):
    case = scenarios(older, newer)
    assert case.seen["granted"]["get"] == case.dataset
    assert case.seen["republished"]["get"] == (case.dataset if visible(newer, older)
                                               else hidden(case))


@pytest.mark.parametrize(("older", "newer"), PAIRS, ids=IDS)
def test_search_finds_no_dataset_whose_latest_terms_the_grant_does_not_reveal(
        scenarios, older, newer):
    case = scenarios(older, newer)
    assert case.seen["granted"]["search"] == [case.dataset]
    assert case.seen["republished"]["search"] == ([case.dataset] if visible(newer, older)
                                                  else [])


@pytest.mark.parametrize(("older", "newer"), PAIRS, ids=IDS)
def test_fetch_by_version_refuses_a_version_under_stricter_terms(scenarios, older, newer):
    case = scenarios(older, newer)
    assert case.seen["granted"]["fetch 1"] == expected_fetch(case, 1)
    assert case.seen["granted"]["fetch 2"] == f"{case.dataset}/versions/2"
    assert case.seen["republished"]["fetch 2"] == f"{case.dataset}/versions/2"
    assert case.seen["republished"]["fetch 3"] == expected_fetch(case, 3)


@pytest.mark.parametrize(("older", "newer"), PAIRS, ids=IDS)
def test_fetch_latest_refuses_a_latest_version_under_stricter_terms(scenarios, older, newer):
    case = scenarios(older, newer)
    assert case.seen["granted"]["fetch latest"] == f"{case.dataset}/versions/2"
    latest = expected_fetch(case, 3)
    if not visible(newer, older):  # refused, without the hidden latest version's number
        latest = (grpc.StatusCode.FAILED_PRECONDITION, "GRANT_TERMS_STRICTER",
                  stricter_message(f"the latest version of {case.dataset}", case.grant.name))
    assert case.seen["republished"]["fetch latest"] == latest


@pytest.mark.parametrize(("older", "newer"), PAIRS, ids=IDS)
def test_watch_events_delivers_no_version_the_grant_does_not_reveal(scenarios, older, newer):
    case = scenarios(older, newer)
    published = [f"{case.dataset}/versions/3"] if visible(newer, older) else []
    assert case.seen["republished"]["watch"] == published


# -- the attack as reported, and its variants ----------------------------------------------------


def test_a_public_unconditional_version_does_not_open_an_older_confidential_conditional_one(
        network, tmp_path):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    cases = publish(health, "hiv-cases", b"region,beds\nnamed,patients\n",
                    classification="CONFIDENTIAL", sharing_type="CONDITIONAL")
    publish(health, "hiv-cases", b"region,beds\n1,2\n", classification="PUBLIC")
    assert ask(market, cases).HasField("grant")  # at once: v2 is UNCONDITIONAL
    out = tmp_path / "fetched"
    out.mkdir()

    assert [v.version for v in market.versions(cases)] == [2]
    before = counts(network)
    with pytest.raises(errors.NotFound) as refused:  # as if v1 had never been published
        market.fetch(f"{cases}/versions/1", out / "v1.csv")
    assert refused.value.reason == "VERSION_NOT_FOUND"
    assert refused.value.message == f"{cases}/versions/1 has no such version"
    assert "CONFIDENTIAL" not in str(refused.value) and "CONDITIONAL" not in str(refused.value)
    assert_only_refusal(network, before, "exchange.fetch", "VERSION_NOT_FOUND")
    assert list(out.iterdir()) == []
    assert market.fetch(cases, out / "v2.csv").path.read_bytes() == b"region,beds\n1,2\n"


def test_an_owner_approval_under_confidential_terms_opens_the_older_public_version(
        network, tmp_path):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    cases = publish(health, "cases", b"region,beds\n1,2\n", classification="PUBLIC")
    publish(health, "cases", b"region,beds\n3,4\n", classification="CONFIDENTIAL",
            sharing_type="CONDITIONAL")
    grant = health.approve(ask(market, cases).access_request.name).grant

    assert (grant.max_classification, grant.max_sharing_type) == (
        catalog_pb2.CLASSIFICATION_CONFIDENTIAL, catalog_pb2.SHARING_TYPE_CONDITIONAL)
    assert [v.version for v in market.versions(cases)] == [2, 1]
    for version in (1, 2):
        fetched = market.fetch(f"{cases}/versions/{version}", tmp_path / f"v{version}.csv")
        assert fetched.receipt.grant == grant.name


def test_a_hidden_latest_version_not_shared_stops_the_grant_without_naming_its_terms(
        network, tmp_path):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    beds = publish(health, "beds", b"region,beds\n1,2\n", classification="PUBLIC")
    grant = ask(market, beds).grant
    publish(health, "beds", b"region,beds\n3,4\n", classification="CONFIDENTIAL",
            sharing_type="NOT_SHARED")
    out = tmp_path / "fetched"
    out.mkdir()

    before = counts(network)
    with pytest.raises(errors.FailedPrecondition) as refused:
        market.fetch(f"{beds}/versions/1", out / "v1.csv")
    assert refused.value.reason == "GRANT_TERMS_STRICTER"
    assert refused.value.message == stricter_message(f"the latest version of {beds}",
                                                     grant.name, latest=2)
    assert "NOT_SHARED" not in str(refused.value) and "CONFIDENTIAL" not in str(refused.value)
    assert_only_refusal(network, before, "exchange.fetch", "GRANT_TERMS_STRICTER")
    assert list(out.iterdir()) == []


def test_a_withdrawal_of_a_dataset_now_confidential_does_not_reach_a_public_grantee(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    stats = network.agency("zj-stats")
    summary = publish(health, "summary", b"region,beds\n1,2\n", classification="PUBLIC")
    ask(market, summary)  # granted at once, under PUBLIC and UNCONDITIONAL
    publish(health, "summary", b"region,beds\n3,4\n", classification="CONFIDENTIAL",
            sharing_type="CONDITIONAL")
    health.approve(ask(stats, summary).access_request.name)  # under CONFIDENTIAL terms
    health.withdraw(summary, "merged into hiv-case-files")

    with pytest.raises(errors.PermissionDenied) as refused:
        market.get(summary)
    assert refused.value.reason == "DATASET_NOT_VISIBLE"
    seen = watched(market, "0", publish(market, "sentinel"), summary)
    assert seen == []  # v1 came before the grant, v2 and the withdrawal are hidden from it
    confidential = watched(stats, "0", publish(stats, "sentinel"), summary)
    assert [(e.type, e.summary) for e in confidential][-1] == (
        exchange_pb2.EVENT_TYPE_DATASET_WITHDRAWN, "withdrawn: merged into hiv-case-files")


def test_a_resumed_fetch_under_a_grant_that_does_not_cover_the_version_is_refused(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    # Many chunks, so the stream cannot complete before the cancel reaches the gateway.
    rows = b"region,beds\n" + b"".join(b"%d,%d\n" % (i, i % 97) for i in range(400_000))
    visits = publish(health, "visits", rows, sharing_type="CONDITIONAL")
    first = health.approve(ask(market, visits).access_request.name).grant
    v1 = f"{visits}/versions/1"
    stream = market.exchange.FetchDataset(exchange_pb2.FetchDatasetRequest(dataset=v1))
    exchange = next(stream).start.exchange
    stream.cancel()
    reader = network.gateway.db.reader()
    wait_for(lambda: reader.execute("SELECT state FROM exchanges WHERE name = ?",
                                    (exchange,)).fetchone()[0] == "BROKEN")
    publish(health, "visits", b"region,beds\n3,4\n", classification="PUBLIC")
    health.revoke(first.name, "replaced by the public summary")
    second = ask(market, visits).grant  # at once, under PUBLIC and UNCONDITIONAL

    before = counts(network)
    resumed = market.exchange.FetchDataset(
        exchange_pb2.FetchDatasetRequest(dataset=v1, exchange=exchange))
    with pytest.raises(grpc.RpcError) as refused:
        next(resumed)
    error = errors.from_rpc_error(refused.value)
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION,
                                          "GRANT_TERMS_STRICTER")
    assert error.message == stricter_message(v1, second.name, ("INTERNAL", "CONDITIONAL"),
                                             ("PUBLIC", "UNCONDITIONAL"))
    assert_only_refusal(network, before, "exchange.fetch", "GRANT_TERMS_STRICTER")
    assert reader.execute("SELECT state, grant_name FROM exchanges WHERE name = ?",
                          (exchange,)).fetchone() == ("BROKEN", first.name)


def test_the_grants_listing_shows_the_terms_a_grant_covers(network):
    health = network.agency("gd-health")
    beds = publish(health, "beds", classification="INTERNAL")
    ask(network.agency("sz-market"), beds)
    options = ["--certs", str(network.layout.certs("sz-market")), "--gateway", network.target,
               "--server-name", "localhost"]
    result = CliRunner().invoke(agency, [*options, "grants"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "terms" in result.output and "INTERNAL, UNCONDITIONAL" in result.output



# -- a request names the version whose terms it asks for ----------------------------------------


def test_refused_an_older_stricter_version_an_agency_asks_for_it_and_its_owner_decides(
        network_factory, tmp_path):
    """Terms newest-looser then stricter: v1 CONFIDENTIAL and CONDITIONAL, v2 PUBLIC and
    UNCONDITIONAL, v3 INTERNAL and CONDITIONAL. A grant under the latest terms refuses v1 and
    answers as if v1 had never been published; a request naming version 1 (learned out of
    band), once approved, opens it."""
    network = network_factory("newcomer", [
        AgencySpec("js-civil", "Jiangsu Provincial Department of Civil Affairs", "320000"),
        AgencySpec("gd-miit", "Guangdong Department of Industry and Information Technology",
                   "440000")])
    civil, miit = network.agency("js-civil"), network.agency("gd-miit")
    terms = publish(civil, "r4-terms", b"region,beds\nfull,record\n",
                    classification="CONFIDENTIAL", sharing_type="CONDITIONAL")
    publish(civil, "r4-terms", b"region,beds\n1,2\n", classification="PUBLIC")
    publish(civil, "r4-terms", b"region,beds\n3,4\n", sharing_type="CONDITIONAL")
    civil.approve(ask(miit, terms).access_request.name)
    v1 = f"{terms}/versions/1"

    with pytest.raises(errors.NotFound) as refused:  # v1 is hidden from gd-miit's grant
        miit.fetch(v1, tmp_path / "refused.csv")
    assert refused.value.message == f"{v1} has no such version"

    asked = ask(miit, terms, version=1).access_request
    assert asked.state == exchange_pb2.ACCESS_REQUEST_STATE_PENDING
    assert asked.state_reason.startswith(  # v1 is hidden from gd-miit: the neutral answer
        f"the owner of agencies/js-civil decides whether to share {terms} with you, by ")
    seen = civil.access_request(asked.name)
    assert (seen.statement.version, seen.dataset) == (1, terms)
    assert [r.statement.version for r in civil.access_requests("INCOMING")] == [1, 0]
    grant = civil.approve(asked.name, reason="ok, v1 too").grant

    assert (grant.max_classification, grant.max_sharing_type) == (
        catalog_pb2.CLASSIFICATION_CONFIDENTIAL, catalog_pb2.SHARING_TYPE_CONDITIONAL)
    signed = exchange_pb2.GrantStatement.FromString(grant.signed_statement.payload)
    assert signed.max_classification == catalog_pb2.CLASSIFICATION_CONFIDENTIAL
    fetched = miit.fetch(v1, tmp_path / "v1.csv")
    assert fetched.receipt.grant == grant.name
    assert fetched.path.read_bytes() == b"region,beds\nfull,record\n"


def test_a_visible_older_version_of_a_dataset_whose_latest_is_hidden_waits_for_the_owner(
        network, tmp_path):
    """A grant at once would tell the requester that the hidden latest version is still
    exchanged (a withdrawn or NOT_SHARED one stops it): the owner decides, and its approval
    opens that version only."""
    health, market = network.agency("gd-health"), network.agency("sz-market")
    summary = publish(health, "summary", b"region,beds\n1,2\n", classification="PUBLIC")
    publish(health, "summary", b"region,beds\nnamed,patients\n", classification="CONFIDENTIAL",
            sharing_type="CONDITIONAL")
    v1 = f"{summary}/versions/1"

    created = ask(market, summary, version=1)
    assert created.access_request.state == exchange_pb2.ACCESS_REQUEST_STATE_PENDING
    assert created.access_request.state_reason.startswith(
        f"the owner of agencies/gd-health decides whether to share {summary} with you, by ")
    assert not created.HasField("grant")
    grant = health.approve(created.access_request.name).grant
    assert (grant.max_classification, grant.max_sharing_type) == (
        catalog_pb2.CLASSIFICATION_PUBLIC, catalog_pb2.SHARING_TYPE_UNCONDITIONAL)
    assert market.fetch(v1, tmp_path / "v1.csv").path.read_bytes() == b"region,beds\n1,2\n"
    before = counts(network)
    with pytest.raises(errors.FailedPrecondition) as refused:  # the latest stays the owner's
        market.fetch(summary, tmp_path / "v2.csv")
    assert refused.value.message == stricter_message(f"the latest version of {summary}",
                                                     grant.name)
    assert "CONFIDENTIAL" not in str(refused.value) and "CONDITIONAL" not in str(refused.value)
    assert "versions/2" not in str(refused.value)
    assert_only_refusal(network, before, "exchange.fetch", "GRANT_TERMS_STRICTER")
    assert not (tmp_path / "v2.csv").exists()


HIDDEN_VERSIONS = {
    # name: (terms of v1, terms of v2, whether withdrawn, the version asked for)
    "confidential-version": (("CONFIDENTIAL", "UNCONDITIONAL"), ("PUBLIC", "UNCONDITIONAL"),
                             False, 1),
    "missing-version": (("PUBLIC", "UNCONDITIONAL"), ("INTERNAL", "UNCONDITIONAL"), False, 9),
    "hidden-latest-withdrawn": (("PUBLIC", "UNCONDITIONAL"), ("CONFIDENTIAL", "CONDITIONAL"),
                                True, 1),
    "hidden-latest-not-shared": (("PUBLIC", "UNCONDITIONAL"), ("CONFIDENTIAL", "NOT_SHARED"),
                                 False, 1),
    "hidden-latest-shared": (("PUBLIC", "UNCONDITIONAL"), ("CONFIDENTIAL", "CONDITIONAL"),
                             False, 1),
}


@pytest.mark.parametrize("case", HIDDEN_VERSIONS)
def test_a_request_naming_a_hidden_or_missing_version_answers_as_for_a_hidden_dataset(
        network, case):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    first, second, withdrawn, version = HIDDEN_VERSIONS[case]
    dataset = publish(health, "cases", b"region,beds\n1,2\n", classification=first[0],
                      sharing_type=first[1])
    publish(health, "cases", b"region,beds\n3,4\n", classification=second[0],
            sharing_type=second[1])
    if withdrawn:
        health.withdraw(dataset, "merged into case-files-2")

    dry = {name: ask(market, name, version=version, validate_only=True)
           for name in (dataset, MISSING)}
    before = counts(network)
    real = {name: ask(market, name, version=version) for name in (dataset, MISSING)}

    assert answer(dry[dataset], dataset) == answer(dry[MISSING], MISSING)
    assert answer(real[dataset], dataset) == answer(real[MISSING], MISSING)
    assert answer(dry[dataset], dataset) == answer(real[dataset], dataset)
    request = real[dataset].access_request
    assert request.state == exchange_pb2.ACCESS_REQUEST_STATE_PENDING
    assert request.state_reason.startswith(
        f"the owner of agencies/gd-health decides whether to share {dataset} with you, by ")
    assert_tells_nothing(*(r.access_request.state_reason for r in (*dry.values(), *real.values())))
    after = counts(network)
    assert (after["access_requests"], after["grants"]) == \
        (before["access_requests"] + 2, before["grants"])


def test_an_approval_answers_to_the_named_versions_terms_as_they_are_then(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    visits = publish(health, "visits", b"region,beds\n1,2\n", sharing_type="CONDITIONAL")
    publish(health, "visits", b"region,beds\n3,4\n", classification="PUBLIC")
    asked = ask(market, visits, version=1).access_request
    assert asked.state_reason.startswith(f"{visits}/versions/1 is shared on conditions: ")
    publish(health, "visits", b"region,beds\n5,6\n", sharing_type="NOT_SHARED")
    before = counts(network)

    with pytest.raises(errors.FailedPrecondition) as refused:
        health.approve(asked.name)

    assert (refused.value.code, refused.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                          "DATASET_NOT_SHARED")
    assert refused.value.message == (f"{visits} is not shared: its owner's legal basis forbids"
                                     " exchanging it")
    assert_only_refusal(network, before, "exchange.request.approve", "DATASET_NOT_SHARED")
    assert market.access_request(asked.name).state == exchange_pb2.ACCESS_REQUEST_STATE_PENDING


def test_approving_a_request_for_a_version_never_published_is_refused_to_the_owner(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    beds = publish(health, "beds", sharing_type="CONDITIONAL")
    asked = ask(market, beds, version=5).access_request
    before = counts(network)

    with pytest.raises(errors.NotFound) as refused:
        health.approve(asked.name)

    assert refused.value.reason == "VERSION_NOT_FOUND"
    assert refused.value.message == (f"{beds}/versions/5 does not exist: deny the request, or"
                                     " publish that version first")
    assert refused.value.metadata == {"dataset": beds, "version": f"{beds}/versions/5"}
    assert_only_refusal(network, before, "exchange.request.approve", "VERSION_NOT_FOUND")


def test_a_request_naming_a_visible_not_shared_version_is_refused_naming_it(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    beds = publish(health, "beds", sharing_type="NOT_SHARED")
    publish(health, "beds", b"region,beds\n3,4\n")
    before = counts(network)

    with pytest.raises(errors.FailedPrecondition) as refused:
        ask(market, beds, version=1)

    assert refused.value.reason == "DATASET_NOT_SHARED"
    assert refused.value.message == (f"{beds}/versions/1 is not shared: its owner's legal basis"
                                     " forbids exchanging it")
    assert_only_refusal(network, before, "exchange.request.create", "DATASET_NOT_SHARED")


def test_a_request_naming_a_negative_version_is_invalid(network):
    health, market = network.agency("gd-health"), network.agency("sz-market")
    beds = publish(health, "beds")
    before = counts(network)

    with pytest.raises(errors.InvalidArgument) as refused:
        ask(market, beds, version=-1)

    assert refused.value.message == ("signed_statement.version must be a version number, or 0"
                                     " for the latest version")
    assert refused.value.metadata == {"field": "signed_statement.version"}
    assert_only_refusal(network, before, "exchange.request.create", "INVALID_ARGUMENT")


def test_the_cli_asks_for_a_version_and_shows_it_to_both_sides(network):
    health = network.agency("gd-health")
    visits = publish(health, "visits", sharing_type="CONDITIONAL")
    publish(health, "visits", b"region,beds\n3,4\n", classification="PUBLIC")
    options = ["--gateway", network.target, "--server-name", "localhost"]

    def cli(agency_id: str, *args: str) -> str:
        result = CliRunner().invoke(
            agency, ["--certs", str(network.layout.certs(agency_id)), *options, *args],
            env={"COLUMNS": "250"})
        assert result.exit_code == 0, result.output
        return result.output

    asked = cli("sz-market", "request", visits, "--purpose", "statistics", "--purpose-text",
                "annual report", "--legal-basis", "Statistics Law art. 7", "--version", "1")
    incoming = cli("gd-health", "requests", "--incoming")

    for table in (asked, incoming):
        row = next(line for line in table.splitlines() if "visits" in line)
        assert [cell.strip() for cell in row.split("│")][3:5] == [
            f"{visits}/versions/1", "PENDING"], table
    assert health.access_request(
        next(iter(health.access_requests("INCOMING"))).name).statement.version == 1
