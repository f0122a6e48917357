"""What each simulated agency does: its sharing rules, its needs, and the loop that runs it.

An `Agency` is driven only through the SDK (`AgencyClient` over mutual TLS), exactly as an outside
system would be: it publishes its datasets and new versions on a schedule, asks for what it needs
with a stated purpose, decides incoming access requests by its own `Policy`, and follows the
datasets it uses through WatchEvents, fetching (and verifying) each new version it may read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from agencies import errors
from agencies.client import AgencyClient
from agencies.exchange import Fetched, Progress
from agencies.sim import datasets
from gateway.v1 import catalog_pb2
from gateway.v1 import exchange_pb2 as x

PURPOSE_NAMES = {value: name.removeprefix("PURPOSE_").lower().replace("_", " ")
                 for name, value in x.Purpose.items()}


@dataclass(frozen=True)
class Decision:
    """An owner's answer to an access request, with the reason it gives."""

    approve: bool
    reason: str


@dataclass(frozen=True)
class Policy:
    """How an owner decides requests for its CONDITIONAL datasets (and for the hidden ones an
    agency asks for by name: those wait for the owner whatever their sharing type)."""

    purposes: frozenset[int]
    """Purposes it approves."""
    personal_purposes: frozenset[int] = frozenset()
    """Purposes for which it also releases personal fields."""

    def decide(self, request: x.AccessRequest, spec: datasets.DatasetSpec) -> Decision:
        if spec.sharing_type == catalog_pb2.SHARING_TYPE_NOT_SHARED:  # asked for by name
            return Decision(False, f"{spec.id} is not shared: {spec.legal_basis}")
        purpose = request.statement.purpose
        asked = list(request.statement.fields) or spec.field_names
        personal = [name for name in asked if name in spec.personal_fields()]
        if personal and purpose not in self.personal_purposes:
            return Decision(False, (
                f"{spec.id} releases personal fields ({', '.join(personal)}) only for "
                f"{_purposes(self.personal_purposes)}, not for {PURPOSE_NAMES[purpose]}; "
                "ask for the aggregated figures or leave the personal fields out"))
        if purpose not in self.purposes:
            return Decision(False, (
                f"{spec.id} is shared for {_purposes(self.purposes)} only, not for "
                f"{PURPOSE_NAMES[purpose]}"))
        return Decision(True, f"{PURPOSE_NAMES[purpose]} is within the sharing conditions")


def _purposes(values: Iterable[int]) -> str:
    return " or ".join(sorted(PURPOSE_NAMES[value] for value in values)) or "no purpose"


P = x.Purpose
POLICIES: dict[str, Policy] = {
    "gd-health": Policy(frozenset({P.Value("PURPOSE_PUBLIC_SERVICE"),
                                   P.Value("PURPOSE_EMERGENCY_RESPONSE"),
                                   P.Value("PURPOSE_POLICY_MAKING")}),
                        frozenset({P.Value("PURPOSE_EMERGENCY_RESPONSE")})),
    "sc-traffic": Policy(frozenset({P.Value("PURPOSE_REGULATORY_SUPERVISION"),
                                    P.Value("PURPOSE_EMERGENCY_RESPONSE"),
                                    P.Value("PURPOSE_POLICY_MAKING"),
                                    P.Value("PURPOSE_STATISTICS")})),
    "gd-miit": Policy(frozenset({P.Value("PURPOSE_POLICY_MAKING"),
                                 P.Value("PURPOSE_STATISTICS")})),
}
DEFAULT_POLICY = Policy(frozenset({P.Value("PURPOSE_PUBLIC_SERVICE"),
                                   P.Value("PURPOSE_EMERGENCY_RESPONSE")}))


@dataclass(frozen=True)
class Need:
    """A dataset an agency asks for, and why."""

    requester: str
    dataset: str
    purpose: int
    purpose_text: str
    legal_basis: str
    fields: tuple[str, ...] = ()


NEEDS: tuple[Need, ...] = (
    Need("zj-stats", "agencies/sz-market/datasets/enterprise-registrations",
         P.Value("PURPOSE_STATISTICS"),
         "Cross-provincial comparison of new enterprise formation for the statistical bulletin",
         "《中华人民共和国统计法》第七条 (Statistics Law, art. 7)"),
    Need("js-civil", "agencies/gd-health/datasets/hospital-beds",
         P.Value("PURPOSE_PUBLIC_SERVICE"),
         "Plan medical-care integration (医养结合) of elderly care homes near hospital capacity",
         "《养老机构管理办法》第二十五条 (Measures for Elderly Care Institutions, art. 25)"),
    Need("zj-stats", "agencies/gd-health/datasets/inpatient-admissions",
         P.Value("PURPOSE_STATISTICS"),
         "Hospitalisation statistics by age band and diagnosis",
         "《中华人民共和国统计法》第七条 (Statistics Law, art. 7)",
         ("age_band", "sex", "region_code", "diagnosis_icd10", "length_of_stay_days")),
    Need("zj-stats", "agencies/js-civil/datasets/minimum-living-allowance",
         P.Value("PURPOSE_STATISTICS"),
         "Compare social-assistance coverage across provinces",
         "《中华人民共和国统计法》第七条 (Statistics Law, art. 7)"),
    Need("bj-ecology", "agencies/sc-traffic/datasets/traffic-counts",
         P.Value("PURPOSE_POLICY_MAKING"),
         "Calibrate the vehicle-emission model with traffic volumes of a comparable city",
         "《中华人民共和国大气污染防治法》第五十条 (Air Pollution Prevention Law, art. 50)"),
    Need("zj-stats", "agencies/sc-traffic/datasets/traffic-counts",
         P.Value("PURPOSE_STATISTICS"),
         "One-off survey of urban traffic intensity for the transport statistics yearbook",
         "《中华人民共和国统计法》第七条 (Statistics Law, art. 7)"),
    Need("gd-health", "agencies/bj-ecology/datasets/air-quality-hourly",
         P.Value("PURPOSE_PUBLIC_SERVICE"),
         "Respiratory health alerts for travellers between Guangdong and Beijing",
         "《突发公共卫生事件应急条例》 (Regulations on Public Health Emergencies)"),
    Need("gd-miit", "agencies/zj-stats/datasets/regional-gdp",
         P.Value("PURPOSE_POLICY_MAKING"),
         "Benchmark manufacturing digitalisation against county GDP structure",
         "《\"十四五\"信息化和工业化深度融合发展规划》 (MIIT 14th Five-Year Plan)"),
)


def need(requester: str, dataset: str) -> Need:
    """The need of `requester` for `dataset`."""
    for item in NEEDS:
        if item.requester == requester and item.dataset == dataset:
            return item
    raise KeyError((requester, dataset))


@dataclass
class Agency:
    """One simulated agency at work: its client, its rules, what it has seen and fetched."""

    client: AgencyClient
    seed: int
    inbox: Path
    """Where fetched content is written."""
    large_bytes: int = 0
    policy: Policy = DEFAULT_POLICY
    follow: tuple[str, ...] = ()
    """Datasets it follows through WatchEvents besides those it holds grants for."""
    decisions: dict[str, Decision] = field(default_factory=dict)
    events: list[x.Event] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    """Dataset versions fetched and verified."""
    changed: threading.Condition = field(default_factory=threading.Condition)
    failure: errors.GovshareError | None = None
    """What stopped its event loop or schedule, if anything did."""

    @property
    def id(self) -> str:
        return self.client.identity.id

    # -- publishing --------------------------------------------------------------------------

    def publish(self, spec: datasets.DatasetSpec,
                version: int = 1) -> catalog_pb2.PublishDatasetResponse:
        """Publish `version` of one of its datasets with its generated content."""
        manifest = spec.manifest()
        return self.client.publish(
            spec.id, spec.chunks(self.seed, version, self.large_bytes), version=version,
            title=manifest.title, abstract=manifest.abstract, media_type=manifest.media_type,
            schema=manifest.schema, classification=manifest.classification,
            sharing_type=manifest.sharing_type, sharing_conditions=manifest.sharing_conditions,
            legal_basis=manifest.legal_basis, update_cycle=manifest.update_cycle,
            tags=manifest.tags,
        )

    def publish_on_schedule(self, stop: threading.Event, interval: float) -> None:
        """Publish the next version of its first dataset every `interval` seconds until `stop`
        is set (the dataset's update cycle, compressed for the demo)."""
        spec = datasets.owned_by(self.id)[0]
        while not stop.wait(interval):
            self._guarded(lambda: self.publish(spec, self.client.get(spec.id).latest_version + 1),
                          stop)

    def publish_all(self) -> int:
        """Publish version 1 of every dataset it owns; returns how many."""
        owned = datasets.owned_by(self.id)
        for spec in owned:
            self.publish(spec)
        return len(owned)

    # -- asking ------------------------------------------------------------------------------

    def ask(self, item: Need) -> x.CreateAccessRequestResponse:
        """Ask for a dataset with the need's purpose, legal basis and fields."""
        return self.client.request_access(
            item.dataset, purpose=item.purpose, purpose_text=item.purpose_text,
            legal_basis=item.legal_basis, fields=list(item.fields),
        )

    # -- deciding ----------------------------------------------------------------------------

    def decide_pending(self) -> None:
        """Decide every pending request for its datasets by its policy."""
        for request in self.client.access_requests(direction="INCOMING", state="PENDING"):
            decision = self.policy.decide(request, datasets.dataset(request.dataset))
            if decision.approve:
                self.client.approve(request.name, reason=decision.reason)
            else:
                self.client.deny(request.name, reason=decision.reason)
            with self.changed:
                self.decisions[request.name] = decision
                self.changed.notify_all()

    # -- following ---------------------------------------------------------------------------

    def fetch(self, dataset: str, progress: Progress | None = None) -> Fetched:
        """Fetch a dataset (or one version) under its grant, verified end to end by the SDK."""
        target = self.inbox / dataset.replace("/", "_")
        fetched = self.client.fetch(dataset, to=target, progress=progress)
        with self.changed:
            self.fetched.append(fetched.receipt.dataset_version)
            self.changed.notify_all()
        return fetched

    def on_event(self, event: x.Event) -> None:
        """React to one event: decide new requests, fetch new versions it may read."""
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()
        if event.type == x.EVENT_TYPE_ACCESS_REQUEST_CREATED:
            self.decide_pending()
        elif event.type == x.EVENT_TYPE_DATASET_VERSION_PUBLISHED and self._may_read(event):
            self.fetch(event.resource)

    def _may_read(self, event: x.Event) -> bool:
        return not event.dataset.startswith(f"{self.client.name}/") and any(
            True for _ in self.client.grants(direction="OUTGOING", state="ACTIVE",
                                             dataset=event.dataset))

    def run(self, stop: threading.Event) -> None:
        """Follow its events until `stop` is set (the client's channel closing ends the wait)."""

        def follow() -> None:
            self.decide_pending()
            for event in self.client.watch(follow=list(self.follow)):
                if stop.is_set():
                    return
                self.on_event(event)

        self._guarded(follow, stop)

    def _guarded(self, work: Callable[[], object], stop: threading.Event) -> None:
        """Run `work`; a failure is kept for `wait_for` to report (unless stopping)."""
        try:
            work()
        except errors.GovshareError as exc:
            if stop.is_set():
                return
            with self.changed:
                self.failure = exc
                self.changed.notify_all()

    def wait_for(self, condition: Callable[[], bool], timeout: float = 20.0) -> None:
        """Block until `condition()` holds; raises if the agency failed or after `timeout`."""
        with self.changed:
            if not self.changed.wait_for(lambda: condition() or self.failure, timeout):
                raise TimeoutError(f"{self.id}: gave up waiting after {timeout:.0f} s")
            if self.failure is not None and not condition():
                raise RuntimeError(f"{self.id} failed: {self.failure}")


def policy_of(agency_id: str) -> Policy:
    return POLICIES.get(agency_id, DEFAULT_POLICY)


def follows_of(agency_id: str) -> tuple[str, ...]:
    return tuple(item.dataset for item in NEEDS if item.requester == agency_id)
