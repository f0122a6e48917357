"""The demo scenario: the simulated agencies on a running gateway, every capability shown.

Whoever starts the gateways hands the scenario each one as a `Home`: its address, the folder of
certificate folders of its staff and agencies, and which agencies it serves (`gateway.demo`
composes the demo this way; a gateway alone is one home of every agency). `Scenario.steps()`
returns named steps; each runs against the gateways through the SDK only (mutual TLS, signed
statements, verified fetches), every agency calling its own home, and returns one line saying
what it showed. A step that does not see what it should raises `StepFailed`, one that cannot
run yet `StepSkipped`. `summary()` reads the figures back from the gateway: directory, catalog,
grants, the audit log and its verified checkpoint.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from agencies import errors
from agencies.client import AdminClient, AgencyClient, AuditorClient, BaseClient
from agencies.exchange import FETCH_COMPLETE, Fetched
from agencies.sim import behaviour, datasets
from agencies.sim.roster import AgencySpec
from gateway.v1 import catalog_pb2
from gateway.v1 import exchange_pb2 as x
from govshare import envelopes

T = TypeVar("T")

MiB = 1024 * 1024
SERVER_NAME = "localhost"
SUMMARY_FILE = "demo-summary.json"
WAIT_SECONDS = 30.0
"""How long a step waits for something the gateways do in rounds (replication, witnessing)
before it fails."""
POLL_SECONDS = 0.2
CUT_SECONDS = 0.5
"""How long the revoked fetch's reader waits after the revocation before it reads on: longer
than the owner's gateway takes to see it (it checks the grant every 0.1 s of streaming), so
that the stream stops where the reader paused, not after the bytes in flight."""

UNCONDITIONAL_NEEDS = (
    ("zj-stats", "agencies/sz-market/datasets/enterprise-registrations"),
    ("gd-health", "agencies/bj-ecology/datasets/air-quality-hourly"),
    ("gd-miit", "agencies/zj-stats/datasets/regional-gdp"),
)
BEDS = "agencies/gd-health/datasets/hospital-beds"
ADMISSIONS = "agencies/gd-health/datasets/inpatient-admissions"
TRAFFIC = "agencies/sc-traffic/datasets/traffic-counts"
VIOLATIONS = "agencies/sc-traffic/datasets/traffic-violations"
ALLOWANCE = "agencies/js-civil/datasets/minimum-living-allowance"
REGISTRATIONS = "agencies/sz-market/datasets/enterprise-registrations"


class StepFailed(Exception):
    """A step did not see what it should have."""


class StepSkipped(Exception):
    """A step cannot run on these gateways (the message says why): not a failure."""


@dataclass(frozen=True)
class Step:
    """One named step of the scenario; `run` returns what it showed."""

    title: str
    run: Callable[[], str]


@dataclass(frozen=True)
class Summary:
    """The figures the demo ends with, as the gateway reports them."""

    agencies: int
    provinces: int
    datasets: int
    versions: int
    grants: int
    exchanges: int
    denials: int
    refusals: int
    audit_size: int
    audit_root: str


@dataclass(frozen=True)
class Home:
    """A gateway as the simulated agencies see it."""

    member: str
    """Its id in the network configuration; empty for a gateway alone."""
    target: str
    """Its address (host:port)."""
    certs: Path
    """The folder holding a certificate folder for "admin", "auditor" and each of `agencies`."""
    agencies: tuple[AgencySpec, ...]
    """The agencies it serves: their home gateway."""


@dataclass
class Scenario:
    """The simulated agencies on their home gateways and the steps that exercise them; their
    inboxes and the summary go under `root`."""

    root: Path
    homes: tuple[Home, ...]
    large_bytes: int = 64 * MiB
    seed: int = 2025
    agencies: dict[str, behaviour.Agency] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    clients: list[BaseClient] = field(default_factory=list)

    def steps(self) -> list[Step]:
        return [
            Step("Register the agencies", self.register),
            Step("Publish signed datasets", self.publish),
            Step("Agencies follow their events", self.start_agencies),
            Step("Automatic grants for UNCONDITIONAL datasets", self.automatic_grants),
            Step("Conditional request approved by its owner", self.conditional_approved),
            Step("Conditional request denied with a reason", self.conditional_denied),
            Step("NOT_SHARED datasets refused", self.not_shared),
            Step("New version followed through WatchEvents", self.new_version_followed),
            Step("Large dataset fetched and verified end to end", self.large_fetch),
            Step("Revocation stops a running fetch", self.revocation),
            Step("Forged manifests refused", self.forged_manifest),
        ]

    # -- the agencies ------------------------------------------------------------------------

    def register(self) -> str:
        """Each home's administrator registers its agencies; the listing shows each home's
        own (a network member lists the other members' agencies too, once replicated)."""
        listed = []
        for home in self.homes:
            admin = self._track(AdminClient(home.target, home.certs / "admin",
                                            server_name=SERVER_NAME))
            for spec in home.agencies:
                pem = (home.certs / spec.id / "signing.pem").read_text()
                admin.register_agency(spec.id, spec.display_name, spec.region_code, pem)
            listed += [agency for agency in admin.agencies() if not agency.network_member]
        listed.sort(key=lambda agency: agency.name)
        provinces = {agency.region_code[:2] for agency in listed}
        return f"{len(listed)} agencies in {len(provinces)} provinces: " + ", ".join(
            agency.name.removeprefix("agencies/") for agency in listed)

    def publish(self) -> str:
        inbox = self.root / "inbox"
        for spec in self.specs():
            client = self.client(spec.id)
            self.agencies[spec.id] = behaviour.Agency(
                client, self.seed, inbox / spec.id, self.large_bytes,
                policy=behaviour.policy_of(spec.id), follow=self._follows(spec.id))
            (inbox / spec.id).mkdir(parents=True, exist_ok=True)
        published = sum(agency.publish_all() for agency in self.agencies.values())
        large = self.agency("sc-traffic").client.get(TRAFFIC).manifest.content_size
        return (f"{published} datasets, each manifest signed by its publisher; "
                f"traffic-counts streamed in chunks ({large / MiB:.1f} MiB)")

    def start_agencies(self) -> str:
        for agency in self.agencies.values():
            thread = threading.Thread(target=agency.run, args=(self.stop,),
                                      name=f"agency-{agency.id}", daemon=True)
            thread.start()
            self.threads.append(thread)
        following = sum(len(agency.follow) for agency in self.agencies.values())
        return (f"{len(self.agencies)} agencies watching their events, following "
                f"{following} datasets they need; owners decide requests by their own rules")

    # -- exchanges ---------------------------------------------------------------------------

    def automatic_grants(self) -> str:
        shown = []
        for requester, dataset in self._present(UNCONDITIONAL_NEEDS):
            agency = self.agency(requester)
            created = agency.ask(behaviour.need(requester, dataset))
            if created.grant.state != x.GRANT_STATE_ACTIVE:
                raise StepFailed(f"{dataset}: no grant at once ({created.access_request.state})")
            fetched = agency.fetch(dataset)
            shown.append(f"{requester} ← {_short(dataset)} ({_size(fetched.receipt)})")
        return "granted at once and fetched, verified: " + "; ".join(shown)

    def conditional_approved(self) -> str:
        request = self._decided("js-civil", BEDS, x.ACCESS_REQUEST_STATE_APPROVED)
        fetched = self.agency("js-civil").fetch(BEDS)
        return (f"gd-health approved js-civil's {_purpose(request)} request "
                f"(\"{self._reason('gd-health', request)}\"); "
                f"js-civil fetched {_short(BEDS)} ({_size(fetched.receipt)}), verified")

    def conditional_denied(self) -> str:
        request = self._decided("zj-stats", ADMISSIONS, x.ACCESS_REQUEST_STATE_DENIED)
        return f"gd-health denied zj-stats: \"{self._reason('gd-health', request)}\""

    def not_shared(self) -> str:
        """A NOT_SHARED dataset the requester may see is refused with its terms; a CONFIDENTIAL
        one it may not see is answered as a name never published would be: a request its owner
        decides (and denies), so the answer tells nothing of the dataset."""
        agency = self.agency("zj-stats")
        try:
            agency.ask(_for_statistics(VIOLATIONS))
        except errors.GovshareError as exc:
            refused = f"{_short(VIOLATIONS)}: {exc.code.name} {exc.reason}"
        else:
            raise StepFailed(f"the request for {VIOLATIONS} was accepted")
        created = agency.ask(_for_statistics(ALLOWANCE)).access_request
        owner = self.agency(datasets.dataset(ALLOWANCE).owner)
        owner.wait_for(lambda: created.name in owner.decisions)
        decided = agency.client.access_request(created.name)
        if decided.state != x.ACCESS_REQUEST_STATE_DENIED:
            raise StepFailed(f"{created.name} is {x.AccessRequestState.Name(decided.state)}")
        return (f"{refused}; {_short(ALLOWANCE)} (CONFIDENTIAL, hidden from zj-stats): PENDING"
                " like any name it cannot see, then denied by its owner")

    def new_version_followed(self) -> str:
        self.agency("gd-health").publish(datasets.dataset(BEDS), version=2)
        version = f"{BEDS}/versions/2"
        follower = self.agency("js-civil")
        follower.wait_for(lambda: version in follower.fetched)
        return (f"gd-health published {_short(BEDS)} v2; js-civil received the WatchEvent "
                "and fetched v2 under its grant, verified")

    def large_fetch(self) -> str:
        """bj-ecology fetches sc-traffic's large dataset once approved, and proves its receipt
        in the log that signed it (the owner's gateway's, across regions), as soon as a
        checkpoint its witnesses cosigned holds the leaf."""
        self._decided("bj-ecology", TRAFFIC, x.ACCESS_REQUEST_STATE_APPROVED)
        agency = self.agency("bj-ecology")
        started = time.monotonic()
        fetched = agency.fetch(TRAFFIC)
        seconds = time.monotonic() - started
        receipt = fetched.receipt
        event = until(lambda: _proved(agency.client, fetched),
                      f"the receipt of {receipt.exchange} was never proved in its log")
        carried = f", carried by {' → '.join(receipt.carriers)}" if receipt.carriers else ""
        return (f"{receipt.content_size / MiB:.1f} MiB in {seconds:.1f} s{carried}, SHA-256 "
                f"{receipt.content_sha256.hex()[:16]}… matches sc-traffic's signed manifest; "
                f"receipt leaf {event.leaf_index} is this fetch's completion, proved in the"
                f" audit log {receipt.audit_log_origin}")

    def revocation(self) -> str:
        """zj-stats reads slowly, on a channel without BDP window growth so its gateway cannot
        run ahead of it by more than a message (across regions the owner's gateway runs ahead
        of the relay by a peer call's fixed window besides); sc-traffic revokes after the first
        chunk, and zj-stats reads on once the owner's gateway has had time to see it
        (CUT_SECONDS): the stream stops mid-way, the bytes received a part of the whole."""
        request = self._decided("zj-stats", TRAFFIC, x.ACCESS_REQUEST_STATE_APPROVED)
        slow = self.client("zj-stats", channel_options=[("grpc.http2.bdp_probe", 0)])
        first_chunk, revoked = threading.Event(), threading.Event()
        outcome: list[errors.GovshareError | None] = []
        received = [0, 0]

        def slow_reader(done: int, total: int) -> None:
            received[:] = done, total
            first_chunk.set()
            revoked.wait(20)

        def fetch() -> None:
            try:
                slow.fetch(TRAFFIC, to=self.agency("zj-stats").inbox / "revoked-traffic-counts",
                           progress=slow_reader)
                outcome.append(None)
            except errors.GovshareError as exc:
                outcome.append(exc)

        reader = threading.Thread(target=fetch, name="revoked-fetch", daemon=True)
        reader.start()
        if not first_chunk.wait(20):
            raise StepFailed("the fetch to be revoked never started")
        self.agency("sc-traffic").client.revoke(
            request.grant, "the one-off traffic survey is closed; access is no longer needed")
        time.sleep(CUT_SECONDS)
        revoked.set()
        reader.join(30)
        if not outcome or outcome[0] is None:
            raise StepFailed("the fetch completed although its grant was revoked")
        done, total = received
        return (f"sc-traffic revoked zj-stats's grant mid-fetch; the fetch stopped after"
                f" {done / MiB:.1f} of {total / MiB:.1f} MiB: {outcome[0]}")

    def forged_manifest(self) -> str:
        forger = self.agency("sz-market")
        spec = datasets.dataset(REGISTRATIONS)
        content = b"".join(spec.chunks(self.seed, 2))
        honest = self._manifest(spec, content, version=2)
        sealed = envelopes.seal(forger.client.signing_key, envelopes.MANIFEST, honest)
        altered = catalog_pb2.Manifest()
        altered.CopyFrom(honest)
        altered.title = "深圳市商事主体登记信息 (altered after signing)"
        sealed.payload = altered.SerializeToString(deterministic=True)
        borrowed = envelopes.seal(self.agency("gd-health").client.signing_key,
                                   envelopes.MANIFEST, honest)
        shown = []
        for what, envelope in (("altered after signing", sealed),
                               ("signed with gd-health's key", borrowed)):
            try:
                forger.client.upload(envelope, [content], len(content))
            except errors.GovshareError as exc:
                shown.append(f"{what}: {exc.code.name} {exc.reason}")
                continue
            raise StepFailed(f"the gateway accepted a manifest {what}")
        return "; ".join(shown)

    # -- figures -----------------------------------------------------------------------------

    def summary(self) -> Summary:
        """The figures, read back from the gateway; also written to DIR/demo-summary.json."""
        auditor = self.auditor()
        checkpoint = auditor.checkpoint()
        owned = [dataset for agency in self.agencies.values()
                 for dataset in agency.client.datasets(publisher=agency.id, show_withdrawn=True)]
        summary = Summary(
            agencies=len(self.agencies),
            provinces=len({agency.region_code[:2] for agency in self.specs()}),
            datasets=len(owned), versions=sum(dataset.latest_version for dataset in owned),
            grants=sum(_count(agency.client.grants("INCOMING"))
                       for agency in self.agencies.values()),
            exchanges=_count(auditor.audit_events(action=FETCH_COMPLETE)),
            denials=sum(_count(agency.client.access_requests("INCOMING", state="DENIED"))
                        for agency in self.agencies.values()),
            refusals=_count(auditor.audit_events(outcome="REFUSED")),
            audit_size=checkpoint.size, audit_root=checkpoint.root_hash.hex(),
        )
        (self.root / SUMMARY_FILE).write_text(json.dumps(asdict(summary), indent=2) + "\n")
        return summary

    # -- keeping it running ------------------------------------------------------------------

    def keep_publishing(self, interval: float) -> None:
        """Each agency publishes a new version of its first dataset every `interval` seconds,
        until `stop` is set (grantees following it fetch each one)."""
        for agency in self.agencies.values():
            thread = threading.Thread(target=agency.publish_on_schedule,
                                      args=(self.stop, interval), daemon=True,
                                      name=f"schedule-{agency.id}")
            thread.start()
            self.threads.append(thread)

    def close(self) -> None:
        """Stop the agencies and close every channel."""
        self.stop.set()
        for client in self.clients:
            client.close()
        for thread in self.threads:
            thread.join(5)

    # -- helpers -----------------------------------------------------------------------------

    def specs(self) -> list[AgencySpec]:
        """Every agency, home by home."""
        return [spec for home in self.homes for spec in home.agencies]

    def home(self, agency_id: str) -> Home:
        """The home gateway of `agency_id`."""
        return next(home for home in self.homes if agency_id in {a.id for a in home.agencies})

    def agency(self, agency_id: str) -> behaviour.Agency:
        return self.agencies[agency_id]

    def client(self, agency_id: str, **options: Any) -> AgencyClient:
        """A new client of `agency_id` at its home gateway, closed with the scenario."""
        home = self.home(agency_id)
        return self._track(AgencyClient(home.target, home.certs / agency_id,
                                        server_name=SERVER_NAME, **options))

    def auditor(self, home: Home | None = None) -> AuditorClient:
        """An auditor of `home` (default: the first)."""
        home = home or self.homes[0]
        return self._track(AuditorClient(home.target, home.certs / "auditor",
                                         server_name=SERVER_NAME))

    def _track(self, client: BaseClient) -> BaseClient:
        self.clients.append(client)
        return client

    def _present(self, needs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """The (requester, dataset) needs between agencies of this run (a smaller roster leaves
        out the last ones)."""
        return [(requester, dataset) for requester, dataset in needs
                if {requester, datasets.dataset(dataset).owner} <= self.agencies.keys()]

    def _follows(self, agency_id: str) -> tuple[str, ...]:
        """The shareable datasets an agency needs (those it may see and follow) published at
        its home: a dataset's events are at its publisher's gateway only."""
        home = {spec.id for spec in self.home(agency_id).agencies}
        return tuple(name for name in behaviour.follows_of(agency_id)
                     if datasets.dataset(name).sharing_type != catalog_pb2.SHARING_TYPE_NOT_SHARED
                     and datasets.dataset(name).owner in home)

    def _decided(self, requester: str, dataset: str, expected: int) -> x.AccessRequest:
        """Ask for a CONDITIONAL dataset and wait for its owner's decision, which must be
        `expected`."""
        asker = self.agency(requester)
        created = asker.ask(behaviour.need(requester, dataset)).access_request
        if created.state != x.ACCESS_REQUEST_STATE_PENDING:
            raise StepFailed(f"{dataset}: expected a pending request, got {created.state}")
        owner = self.agency(datasets.dataset(dataset).owner)
        owner.wait_for(lambda: created.name in owner.decisions)
        decided = asker.client.access_request(created.name)
        if decided.state != expected:
            raise StepFailed(f"{created.name} is {x.AccessRequestState.Name(decided.state)}: "
                             f"{decided.state_reason}")
        return decided

    def _reason(self, owner: str, request: x.AccessRequest) -> str:
        return self.agency(owner).decisions[request.name].reason

    def _manifest(self, spec: datasets.DatasetSpec, content: bytes,
                  version: int) -> catalog_pb2.Manifest:
        from govshare.signing import sha256

        manifest = spec.manifest()
        manifest.version = version
        manifest.content_sha256 = sha256(content)
        manifest.content_size = len(content)
        manifest.create_time.GetCurrentTime()
        return manifest


def until(probe: Callable[[], T | None], failure: str, seconds: float = WAIT_SECONDS) -> T:
    """The first answer of `probe` that is not None, asked every POLL_SECONDS; StepFailed with
    `failure` after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        answer = probe()
        if answer is not None:
            return answer
        if time.monotonic() > deadline:
            raise StepFailed(f"{failure} within {seconds:.0f} s")
        time.sleep(POLL_SECONDS)


def _proved(client: AgencyClient, fetched: Fetched) -> Any:
    """The event proving `fetched`'s receipt; None while no checkpoint of its log that the
    witness policy takes holds it yet (a gateway alone has no policy: proved at once)."""
    try:
        return client.prove_receipt(fetched.signed_receipt)
    except errors.WitnessQuorumNotReached:
        return None


def _count(items: Iterable[object]) -> int:
    return sum(1 for _ in items)


def _for_statistics(dataset: str) -> behaviour.Need:
    """zj-stats's need of `dataset` for a statistical comparison."""
    return behaviour.Need("zj-stats", dataset, x.Purpose.Value("PURPOSE_STATISTICS"),
                          "Cross-provincial comparison", "《中华人民共和国统计法》第七条")


def _short(dataset: str) -> str:
    return dataset.rsplit("/", 1)[-1]


def _size(receipt: x.Receipt) -> str:
    size = receipt.content_size
    return f"{size / MiB:.1f} MiB" if size >= MiB else f"{size / 1024:.1f} KiB"


def _purpose(request: x.AccessRequest) -> str:
    return behaviour.PURPOSE_NAMES[request.statement.purpose]
