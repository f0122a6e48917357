"""The demo scenario on a national network: the simulated agencies, each at its own region's
gateway, and what only a network shows: the other regions' catalogs searched from home, access
requests and fetches across regions, witnesses cosigning every member's log, and a member
restarted on an older copy of its database caught by its witnesses.

Like `Scenario`, it talks to the gateways through the SDK only. What an operator does (starting
gateways, backing one up and restoring it) is the composer's part (`gateway.demo`): it runs
these steps between its own.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from agencies import errors
from agencies.audit import check_witnessed, cosigned_by, witness_policy
from agencies.client import AuditorClient
from agencies.sim import behaviour, datasets
from agencies.sim.scenario import SUMMARY_FILE, Home, Scenario, Step, StepFailed, until
from gateway.v1 import audit_pb2, catalog_pb2, network_pb2
from govshare.transparency.cosignature import WitnessPolicy

SEARCHER, PUBLISHER = "bj-ecology", "gd-health"
"""The cross-region search: an agency in Beijing finds datasets published in Guangdong."""
QUERY = "医院床位"
REFUSED = "witness.refused"
INCONSISTENT = "WITNESS_CONSISTENCY_UNPROVED"
SHARED = ({catalog_pb2.CLASSIFICATION_PUBLIC, catalog_pb2.CLASSIFICATION_INTERNAL},
          catalog_pb2.SHARING_TYPE_NOT_SHARED)
"""The datasets a member shares with the network: PUBLIC or INTERNAL, and not NOT_SHARED."""


@dataclass(frozen=True)
class MemberFigures:
    """What the demo ends with for one member gateway, as the gateway reports it."""

    member: str
    agencies: list[str]
    checkpoint: int
    """The size of its latest signed checkpoint."""
    witnessed: int
    """The size of its latest checkpoint a witness cosigned (0: none)."""
    cosigners: list[str]
    """The witnesses (by key name) that cosigned that one."""


@dataclass
class NationalScenario(Scenario):
    """The scenario on a network whose members are `homes`."""

    cosigned: dict[str, int] = field(default_factory=dict)
    """The size of each member's checkpoint its witnesses' quorum cosigned, by member id."""
    auditors: dict[str, AuditorClient] = field(default_factory=dict)
    """An auditor's client of each member, by member id."""
    configuration: network_pb2.NetworkConfiguration | None = None
    """The network configuration, as the SDK verified it."""

    def setup_steps(self) -> list[Step]:
        return [
            Step("Register each agency at its own region's gateway", self.register),
            Step("Publish signed datasets", self.publish),
            Step("Agencies follow their events", self.start_agencies),
        ]

    def exchange_steps(self) -> list[Step]:
        """Across regions: a search, and exchanges carried by the requester's gateway."""
        return [
            Step("Cross-region search: Beijing finds Guangdong's datasets", self.search),
            Step("Cross-region request approved and fetched", self.large_fetch),
            Step("Cross-region request denied", self.conditional_denied),
            Step("Revocation stops a cross-region fetch", self.revocation),
        ]

    def witness_steps(self) -> list[Step]:
        """Something new in every log, then every log's checkpoint cosigned."""
        return [
            Step("A new version published in every region", self.new_versions),
            Step("Witnesses cosign every gateway's checkpoints", self.witnessed),
        ]

    # -- across regions ----------------------------------------------------------------------

    def search(self) -> str:
        """bj-ecology, at Beijing's gateway, lists Guangdong's shared datasets (replicated from
        its member) and finds one by a word of its title."""
        member = self.home(PUBLISHER).member
        published = {dataset.name for dataset in self.agency(PUBLISHER).client.datasets()
                     if not dataset.network_member and _shared(dataset)}
        searcher = self.agency(SEARCHER).client

        def replicated() -> list[catalog_pb2.Dataset] | None:
            listed = [dataset for dataset in searcher.datasets()
                      if dataset.network_member == member]
            return listed if published <= {dataset.name for dataset in listed} else None

        listed = until(replicated, f"{SEARCHER} never saw every dataset {member} shares")
        found = [f"{_short(hit.name)} ({hit.network_member})" for hit in searcher.search(QUERY)]
        if not found:
            raise StepFailed(f"searching {QUERY!r} at {self.home(SEARCHER).member} found nothing")
        return (f"{SEARCHER} at {self.home(SEARCHER).member} lists the {len(listed)} datasets"
                f" {member} shares, each with network_member {member}; search \"{QUERY}\""
                " finds " + ", ".join(found))

    def new_versions(self) -> str:
        """The first agency of each region publishes a new version of a small dataset, so
        that every member's log holds something its witnesses have not cosigned yet."""
        shown = []
        for home in self.homes:
            agency = self.agency(home.agencies[0].id)
            spec = _small_dataset(agency.id)
            version = agency.client.get(spec.id).latest_version + 1
            agency.publish(spec, version=version)
            shown.append(f"{_short(spec.name)} v{version} ({home.member})")
        return "; ".join(shown)

    # -- witnesses ---------------------------------------------------------------------------

    def witnessed(self) -> str:
        """Each member's checkpoint, as it stands now, cosigned by its witnesses' quorum: the
        SDK holding the network configuration checks the member's witness policy by itself,
        and takes no checkpoint short of it."""
        shown = []
        for home in self.homes:
            auditor = self._auditor(home)
            size = auditor.signed_checkpoint().tree_size

            def cosigned(auditor: AuditorClient = auditor, size: int = size) -> int | None:
                try:
                    checkpoint = auditor.checkpoint()
                except errors.WitnessQuorumNotReached:
                    return None
                return checkpoint.size if checkpoint.size >= size else None

            self.cosigned[home.member] = until(
                cosigned, f"{home.member}'s checkpoint {size} never reached its witness quorum")
            names = _names(self._cosigners(auditor, home))
            shown.append(f"{home.member} {self.cosigned[home.member]} by {names}")
        quorum = self._configuration().witness_policy.quorum
        return (f"{quorum} of the {len(self.homes) - 1} other members needed, checked by the SDK"
                " with the network configuration: " + "; ".join(shown))

    def caught(self, member: str) -> Step:
        """The step that shows `member`, restarted on an older copy of its database, caught."""
        return Step(f"{member}'s witnesses refuse its checkpoints",
                    lambda: self.rolled_back_caught(member))

    def rolled_back_caught(self, member: str) -> str:
        """`member` was restarted on an older copy of its database: it grows past the size its
        witnesses cosigned (a publication of its agency), so that it shows them a checkpoint
        of another history; each witness refuses it (`witness.refused`, in its own log), no
        quorum cosigns what it signs now, and an auditor holding its earlier checkpoint finds
        the log forked."""
        home = next(home for home in self.homes if home.member == member)
        # New channels to the restarted gateway: the old ones wait out gRPC's reconnect backoff.
        self.auditors.pop(member, None)
        auditor = self._auditor(home)
        publisher = behaviour.Agency(self.client(home.agencies[0].id), self.seed,
                                     self.root / "inbox" / home.agencies[0].id)
        spec = _small_dataset(publisher.id)

        def grown() -> int | None:
            size = auditor.signed_checkpoint().tree_size
            if size > self.cosigned[member]:
                return size
            publisher.publish(spec, publisher.client.get(spec.id).latest_version + 1)
            return None

        until(grown, f"{member}'s log never grew past the size its witnesses cosigned")
        witnesses = [other for other in self.homes if other.member != member]
        refusals = {other.member: until(lambda other=other: self._refusal(other, member),
                                         f"{other.member} never refused {member}'s checkpoint")
                    for other in witnesses}
        latest = auditor.signed_checkpoint()
        policy = self._policy(home)
        try:
            check_witnessed(latest.signed_checkpoint, policy)
        except errors.WitnessQuorumNotReached as exc:
            cosigners = [key for key in exc.metadata["cosigned"].split(",") if key]
            unwitnessed = (f"cosigned by {len(cosigners)} of its {len(policy.witnesses)}"
                           f" witnesses, {policy.quorum} needed")
        else:
            raise StepFailed(f"{member}'s checkpoint {latest.tree_size} reached its quorum")
        try:
            auditor.checkpoint()
        except errors.VerificationError as exc:
            forked = exc.reason
        else:
            raise StepFailed(f"the auditor's checkpoint {self.cosigned[member]} of {member}"
                             " was taken as extended")
        reasons = {event.reason.partition(":")[0] for event in refusals.values()}
        return (f"{', '.join(refusals)} refused {member}'s checkpoint ({', '.join(reasons)},"
                f" each in its own audit log); its latest checkpoint {latest.tree_size} is"
                f" {unwitnessed} (WITNESS_QUORUM_NOT_REACHED for the SDK); an auditor holding"
                f" checkpoint {self.cosigned[member]}: {forked}")

    # -- figures -----------------------------------------------------------------------------

    def figures(self) -> list[MemberFigures]:
        """Each member's figures, read back from it; also written to DIR/demo-summary.json."""
        figures = []
        for home in self.homes:
            auditor = self._auditor(home)
            try:
                witnessed = auditor.signed_checkpoint(witnessed=True)
            except errors.GovshareError as exc:
                if exc.reason != "NO_WITNESSED_CHECKPOINT":
                    raise
                witnessed = None
            cosigners = (self._cosigners(auditor, home, witnessed.signed_checkpoint)
                         if witnessed else [])
            figures.append(MemberFigures(
                home.member, [spec.id for spec in home.agencies],
                auditor.signed_checkpoint().tree_size,
                witnessed.tree_size if witnessed else 0, cosigners))
        (self.root / SUMMARY_FILE).write_text(json.dumps(
            {"members": [asdict(figure) for figure in figures]}, indent=2) + "\n")
        return figures

    # -- helpers -----------------------------------------------------------------------------

    def _auditor(self, home: Home) -> AuditorClient:
        if home.member not in self.auditors:
            self.auditors[home.member] = self.auditor(home)
        return self.auditors[home.member]

    def _configuration(self) -> network_pb2.NetworkConfiguration:
        if self.configuration is None:
            verified = self._auditor(self.homes[0]).network_configuration()
            self.configuration = verified.configuration
        return self.configuration

    def _policy(self, home: Home) -> WitnessPolicy:
        """`home`'s witness policy in the network configuration."""
        configuration = self._configuration()
        member = next(m for m in configuration.members if m.id == home.member)
        policy = witness_policy(configuration, member.audit_origin)
        if policy is None:
            raise StepFailed("the network configuration asks for no cosignatures (quorum 0)")
        return policy

    def _cosigners(self, auditor: AuditorClient, home: Home, signed: str | None = None
                   ) -> list[str]:
        """The witnesses of `home`'s policy that cosigned its latest witnessed checkpoint (or
        `signed`), by key name."""
        signed = signed or auditor.signed_checkpoint(witnessed=True).signed_checkpoint
        return [key.partition("+")[0] for key in cosigned_by(signed, self._policy(home))]

    def _refusal(self, witness: Home, member: str) -> audit_pb2.AuditEvent | None:
        """The first refusal `witness` audited of `member`'s checkpoint as inconsistent with
        what it cosigned before, if any."""
        events = self._auditor(witness).audit_events(
            action=REFUSED, actor=f"urn:govshare:gateway:{member}", outcome="REFUSED")
        return next((event for event in events if event.reason.startswith(INCONSISTENT)), None)


def _shared(dataset: catalog_pb2.Dataset) -> bool:
    classifications, not_shared = SHARED
    manifest = dataset.manifest
    return manifest.classification in classifications and manifest.sharing_type != not_shared


def _small_dataset(agency_id: str) -> datasets.DatasetSpec:
    return next(spec for spec in datasets.owned_by(agency_id) if not spec.large)


def _names(keys: list[str]) -> str:
    return ", ".join(keys) or "none"


def _short(dataset: str) -> str:
    return dataset.rsplit("/", 1)[-1]
