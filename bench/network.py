"""The national network's numbers (issue 19 §5): four member gateways, each a real process
(`govshare gateway serve`) with its own folder and agencies, named by one signed network
configuration and witnessing each other's logs under a quorum of 2 of the other 3.

- Witness quorum: each gateway's agency sends access requests at a steady rate (each one audit
  commit, so one new signed checkpoint), and each gateway asks the other three to cosign its
  latest checkpoint every `witness_push_seconds`. Then each log's own database says when each
  checkpoint was signed (`checkpoints.create_time`) and when each cosignature of it was received
  and stored (`cosignatures.create_time`), both by the clock of the log's gateway.
- Memory: the resident size of the four gateway processes, sampled during that load.
- Fetch: one large dataset of the Guangdong owner fetched with the SDK's verified `fetch`, in
  alternating rounds: by a Guangdong agency from its gateway (same region), by the same agency
  through a bare relay process in front of that gateway (bench/relay.py: the work of one more
  hop, the cross-region fetch's baseline), and by the Beijing agency from its own gateway
  (cross region).
- Cross-region CreateAccessRequest: the Beijing agency asking its own gateway for that dataset,
  in rounds alternating with the Guangdong agency asking its gateway.

The cross-region measurements use the SDK exactly as a same-region call does. While the home
gateway refuses a cross-region request (a gateway that does not forward them yet), they are
skipped and the refusal is recorded as the reason.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agencies.client import AgencyClient
from agencies.errors import GovshareError
from agencies.network import member_at
from bench import gateway_proc
from bench.measure import (
    CPUCores,
    MiB,
    PeakRSS,
    alternate,
    paired_ratio,
    percentile,
    profiled,
    progress,
    run_load,
    spread,
)
from bench.phases import CALL_TIMEOUT, MB, Settings
from gateway import config as config_module
from gateway.storage import audit as audit_sql
from gateway.storage import witness as witness_sql
from govshare import times
from tests.support.federation import Federation, Members, join_agency, member_admin, origin

GD, BJ = "gd-gateway", "bj-gateway"
"""The owner's gateway, and the cross-region requester's home gateway."""
MEMBER_IDS = (GD, BJ, "sh-gateway", "xj-gateway")
QUORUM = 2
REPLICATE_SECONDS = 2.0
"""[network] replicate_seconds (shipped: 30), so the home gateway lists the dataset soon."""
OPEN_DATASET = "open-data"
BULK_DATASET = "bulk-data"
PURPOSE = {"purpose": "STATISTICS", "purpose_text": "Benchmark of the national network",
           "legal_basis": "Statistics Law art. 7"}


# -- the network ---------------------------------------------------------------------------------


class NationalNetwork:
    """The four member gateways' processes, and an owner and a user agency at each."""

    def __init__(self, root: Path, settings: Settings, stack: ExitStack,
                 overrides: dict[str, dict[str, Any]] | None = None):
        self.root = root
        self.stack = stack
        self.push_seconds = settings.witness_push_seconds
        federation = Federation(root)
        federation.add_gateway(MEMBER_IDS[-1])
        sections = gateway_proc.bench_config(
            {"network": {"witness_push_seconds": settings.witness_push_seconds,
                         "replicate_seconds": REPLICATE_SECONDS}}, overrides)
        self.members = Members(federation, MEMBER_IDS, QUORUM, overrides=sections)
        self.servers = {gateway_id: stack.enter_context(gateway_proc.run_server(
            gateway_proc.serve_command(self.members.config_path(gateway_id)),
            root / f"{gateway_id}.log")) for gateway_id in MEMBER_IDS}
        self.owners: dict[str, AgencyClient] = {}
        self.users: dict[str, AgencyClient] = {}
        for gateway_id in MEMBER_IDS:
            self._join_agencies(gateway_id, federation.member(gateway_id).region_codes[0])

    def _join_agencies(self, gateway_id: str, region: str) -> None:
        admin = member_admin(self.members, gateway_id)
        self.stack.callback(admin.close)
        prefix = gateway_id.split("-")[0]
        for role, agencies in (("owner", self.owners), ("user", self.users)):
            client = join_agency(self.members, admin, f"{prefix}-{role}", region,
                                 timeout=CALL_TIMEOUT)
            self.stack.callback(client.close)
            gateway_proc.wait_ready(client.channel)
            agencies[gateway_id] = client

    @property
    def pids(self) -> list[int]:
        return list(self.pids_by_id.values())

    @property
    def pids_by_id(self) -> dict[str, int]:
        """Each member gateway's process id, by gateway id."""
        return {gateway_id: self.servers[gateway_id].pid for gateway_id in MEMBER_IDS}

    def log(self, gateway_id: str) -> WitnessedLog:
        config = config_module.load(self.members.config_path(gateway_id))
        return WitnessedLog(config.path(config.storage.database), origin(gateway_id))

    def wait_witnessed(self) -> None:
        """Until each log's latest checkpoint has gathered its quorum. A gateway that met the
        others still starting asks them again after up to 32 rounds (gateway/peers.py)."""
        logs = [self.log(gateway_id) for gateway_id in MEMBER_IDS]
        _until(lambda: all(log.latest_has_quorum() for log in logs),
               30.0 + 40 * self.push_seconds,
               "every member's latest checkpoint cosigned by a quorum of the others")


@dataclass(frozen=True)
class WitnessedLog:
    """A member's audit log as its database holds it: checkpoints and their cosignatures."""

    database: Path
    origin: str

    def read(self) -> tuple[dict[int, datetime], dict[int, list[datetime]]]:
        """When each checkpoint was signed, and when each of its cosignatures was stored, by
        tree size."""
        with self._reading() as conn:
            signed = {checkpoint.tree_size: times.from_text(checkpoint.create_time)
                      for checkpoint in audit_sql.checkpoints(conn)}
            cosigned = {size: [times.from_text(cosignature.create_time) for cosignature
                               in witness_sql.cosignatures(conn, self.origin, size)]
                        for size in signed}
        return signed, cosigned

    def latest_has_quorum(self) -> bool:
        with self._reading() as conn:
            latest = audit_sql.latest_checkpoint(conn)
            return latest is not None and len(
                witness_sql.cosignatures(conn, self.origin, latest.tree_size)) >= QUORUM

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection to the running gateway's database, on one snapshot."""
        conn = audit_sql.connect_readonly(self.database)
        try:
            with audit_sql.snapshot(conn):
                yield conn
        finally:
            conn.close()


class RelayedClient(AgencyClient):
    """An agency's SDK client connected to a relay in front of its gateway. The network
    configuration names the gateway at the gateway's own address, which the relay forwards to:
    that member signs the receipts the SDK checks."""

    def __init__(self, relay: str, certs: Path, gateway: str):
        super().__init__(relay, certs, server_name="localhost", timeout=CALL_TIMEOUT)
        self._gateway = gateway

    def network_member(self) -> Any:
        configuration = self.network_configuration()
        return None if configuration is None else member_at(configuration, self._gateway)


# -- witness quorum and memory ---------------------------------------------------------------------


@dataclass
class QuorumTimes:
    """What the checkpoints a log signed in a window came to."""

    signed: int
    cosigned: int
    """Of those, the checkpoints at least one witness cosigned."""
    own: list[float]
    """Seconds from a checkpoint's signing to its own quorum-th cosignature, for each one that
    gathered its quorum (a later checkpoint may be cosigned instead)."""
    covered: list[float]
    """Seconds from a checkpoint's signing until it or a later one had gathered its quorum:
    how long its events waited to be witnessed."""


def quorum_times(signed: dict[int, datetime], cosigned: dict[int, list[datetime]],
                 quorum: int, since: datetime, until: datetime) -> QuorumTimes:
    """The quorum times of the checkpoints signed between `since` and `until` (`read`'s maps)."""
    reached = {size: sorted(moments)[quorum - 1] for size, moments in cosigned.items()
               if len(moments) >= quorum}
    window = sorted(size for size, moment in signed.items() if since <= moment <= until)
    first_cover: dict[int, datetime | None] = {}
    earliest: datetime | None = None
    for size in sorted(signed, reverse=True):  # the earliest quorum of any checkpoint as large
        if size in reached and (earliest is None or reached[size] < earliest):
            earliest = reached[size]
        first_cover[size] = earliest
    return QuorumTimes(
        signed=len(window), cosigned=sum(1 for size in window if cosigned.get(size)),
        own=[(reached[size] - signed[size]).total_seconds() for size in window
             if size in reached],
        covered=[(cover - signed[size]).total_seconds() for size in window
                 if (cover := first_cover[size]) is not None])


def witness_load(net: NationalNetwork, settings: Settings) -> dict[str, Any]:
    """Every member's agency asking for its region's open dataset at a steady rate, while the
    gateways' memory is sampled; then the time each checkpoint took to its quorum."""
    datasets = {gateway_id: _publish_open(owner) for gateway_id, owner in net.owners.items()}
    net.wait_witnessed()
    calls = [lambda user=user, dataset=datasets[gateway_id]: _granted(user, dataset)
             for gateway_id, user in net.users.items()]
    began = datetime.now(UTC)
    budget = int(settings.network_seconds * settings.network_rate + 1) * len(calls)
    with PeakRSS(*net.pids, interval=0.1) as rss:
        load = run_load(calls, max_calls=budget, max_seconds=settings.network_seconds,
                        pace=1 / settings.network_rate)
    if load.errors:
        raise RuntimeError(f"witness load: {load.errors} errors, first: {load.first_error}")
    # Only checkpoints the steady load went on after for two rounds: the last ones signed
    # wait, unsuperseded, for the first round after the load.
    until = datetime.now(UTC) - timedelta(seconds=2 * settings.witness_push_seconds)
    net.wait_witnessed()
    logs = {gateway_id: quorum_times(*net.log(gateway_id).read(), QUORUM, began, until)
            for gateway_id in MEMBER_IDS}
    own = [value for found in logs.values() for value in found.own]
    covered = [value for found in logs.values() for value in found.covered]
    progress(f"witness quorum p50/p99: {percentile(own, 50) * 1000:.0f}/"
             f"{percentile(own, 99) * 1000:.0f} ms ({len(own)} checkpoints), covered"
             f" {percentile(covered, 50) * 1000:.0f}/{percentile(covered, 99) * 1000:.0f} ms"
             f" ({len(covered)}); memory {rss.peak_mib:.0f} MiB for {len(net.pids)} gateways")
    return {
        "gateways": len(MEMBER_IDS), "quorum": QUORUM,
        "witness_push_seconds": settings.witness_push_seconds,
        "requests_per_second_per_gateway": settings.network_rate, "seconds": load.seconds,
        "requests": load.calls,
        "checkpoints": {gateway_id: {"signed": found.signed, "cosigned": found.cosigned,
                                     "reached_quorum": len(found.own)}
                        for gateway_id, found in logs.items()},
        "quorum_ms": _percentiles(own), "covered_ms": _percentiles(covered),
        "memory_mib": {"all_peak": rss.peak_mib, "all_start": rss.start_bytes / MiB,
                       "peak": dict(zip(MEMBER_IDS, rss.peaks_mib, strict=True))},
    }


def _percentiles(seconds: list[float]) -> dict[str, float]:
    return {"p50": percentile(seconds, 50) * 1000, "p99": percentile(seconds, 99) * 1000,
            "max": max(seconds, default=float("nan")) * 1000, "count": len(seconds)}


def _publish_open(owner: AgencyClient) -> str:
    """A small PUBLIC, UNCONDITIONAL dataset of `owner`: every request for it is granted."""
    owner.publish(OPEN_DATASET, os.urandom(4096), title="Open benchmark data",
                  classification="PUBLIC", sharing_type="UNCONDITIONAL")
    return owner.dataset_name(OPEN_DATASET)


def _granted(client: AgencyClient, dataset: str) -> None:
    """Ask for `dataset` as the SDK does; it must be granted at once."""
    created = client.request_access(dataset, **PURPOSE)
    if not created.grant.name:
        raise RuntimeError(f"{dataset} was not granted at once to {client.name}: {created}")


# -- cross region: fetch and CreateAccessRequest ---------------------------------------------------


def cross_region_refusal(net: NationalNetwork, dataset: str) -> str | None:
    """Why the Beijing agency's home gateway does not grant it the Guangdong `dataset` (None
    when it does), once the home gateway lists the dataset (replicated)."""
    remote = net.users[BJ]
    _until(lambda: _listed(remote, dataset), 20 * REPLICATE_SECONDS,
           f"{dataset} replicated to {BJ}")
    try:
        _granted(remote, dataset)
    except (GovshareError, RuntimeError) as exc:
        return f"{BJ} refused {remote.name}'s request for {dataset}: {exc}"
    return None


def _listed(client: AgencyClient, dataset: str) -> bool:
    try:
        client.get(dataset)
    except GovshareError:
        return False
    return True


class Fetches:
    """The same dataset fetched over each path, with the CPU time of every process involved
    (in all, and each process's, per GB), and py-spy profiles of the gateways carrying a path
    in its first round once `profile` is set."""

    def __init__(self, net: NationalNetwork, dataset: str, size: int, pids: dict[str, int]):
        self.dataset = dataset
        self.size = size
        self.pids = pids
        self.profile: Path | None = None
        self.outbox = net.root / "fetched"
        self.outbox.mkdir()
        self.runs: dict[str, list[dict[str, Any]]] = {}

    def measurement(self, key: str, client: AgencyClient) -> Callable[[], float]:
        return lambda: self._timed(key, client)

    def _timed(self, key: str, client: AgencyClient) -> float:
        target = self.outbox / key
        cpus = {name: CPUCores(pid) for name, pid in self.pids.items()}
        with ExitStack() as stack:
            for cpu in cpus.values():
                stack.enter_context(cpu)
            for name, spy in self._profiles(key):
                stack.enter_context(profiled(self.pids[name], spy))
            began = time.perf_counter()
            client.fetch(self.dataset, to=target)
            seconds = time.perf_counter() - began
        target.unlink()  # not part of the fetch
        mbps = self.size / seconds / MB
        cores = sum(cpu.cores for cpu in cpus.values())
        self.runs.setdefault(key, []).append({
            "mbps": mbps, "cpu_cores": cores, "cpu_seconds_per_gb": cores * 1000 / mbps,
            "process_cpu_seconds_per_gb": {name: cpu.cores * 1000 / mbps
                                           for name, cpu in cpus.items()}})
        return mbps

    def _profiles(self, key: str) -> list[tuple[str, Path]]:
        """The gateways carrying `key`'s path and their profiles' files, in its first round
        once `profile` is set."""
        if self.profile is None or key in self.runs:
            return []
        carriers = (GD, BJ) if key == "cross_region" else (GD,)
        return [(name, self.profile / f"network-{key}-{name}.txt") for name in carriers]

    def summary(self) -> dict[str, Any]:
        """Each path's runs: median, min and max of each figure, per process too."""
        def figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
            found: dict[str, Any] = {name: spread([run[name] for run in runs])
                                     for name in ("mbps", "cpu_cores", "cpu_seconds_per_gb")}
            found["process_cpu_seconds_per_gb"] = {
                name: spread([run["process_cpu_seconds_per_gb"][name] for run in runs])
                for name in self.pids}
            return found
        return {key: figures(runs) for key, runs in self.runs.items()}


def fetch_rounds(net: NationalNetwork, settings: Settings, data: Path,
                 profile: Path | None = None) -> dict[str, Any]:
    """The Guangdong dataset fetched in alternating rounds: same region, through the relay,
    and cross region (unless the home gateway refuses it); the gateways carrying each path
    profiled into `profile` in its first timed round."""
    owner, user = net.owners[GD], net.users[GD]
    owner.publish(BULK_DATASET, data, title="Bulk benchmark data", classification="PUBLIC",
                  sharing_type="UNCONDITIONAL")
    dataset = owner.dataset_name(BULK_DATASET)
    _granted(user, dataset)
    certs = net.root / "relay"
    net.members.federation.ca.issue_gateway(certs, "relay")
    relay = net.stack.enter_context(gateway_proc.run_server(
        gateway_proc.relay_command(certs, user.certs, net.members.target(GD)),
        net.root / "relay.log"))
    relayed = RelayedClient(relay.target, user.certs, net.members.target(GD))
    net.stack.callback(relayed.close)
    fetches = Fetches(net, dataset, data.stat().st_size,
                      {"client": os.getpid(), **net.pids_by_id, "relay": relay.pid})
    paths = {"same_region": fetches.measurement("same_region", user),
             "relay": fetches.measurement("relay", relayed)}
    refused = cross_region_refusal(net, dataset)
    if refused is None:
        paths["cross_region"] = fetches.measurement("cross_region", net.users[BJ])
    for measure in paths.values():  # warm-up: connections, the SDK's configuration
        measure()
    fetches.runs.clear()
    fetches.profile = profile
    rounds = alternate(settings.network_fetch_rounds, *paths.values())
    series = dict(zip(paths, rounds, strict=True))
    ratios = {"relay/same_region": paired_ratio(series["relay"], series["same_region"])}
    if refused is None:
        ratios |= {"cross_region/relay": paired_ratio(series["cross_region"], series["relay"]),
                   "cross_region/same_region": paired_ratio(series["cross_region"],
                                                            series["same_region"])}
    progress("fetch: " + ", ".join(f"{key} {spread(values)['median']:.0f} MB/s"
                                   for key, values in series.items())
             + (f"; cross region skipped: {refused}" if refused else ""))
    return {"bytes": fetches.size, "dataset": dataset, "rounds": settings.network_fetch_rounds,
            "runs": fetches.summary(),
            "ratios": ratios, "cross_region_skipped": refused}


def create_rounds(net: NationalNetwork, settings: Settings, dataset: str) -> dict[str, Any]:
    """CreateAccessRequest latency: the Beijing agency asking its home gateway for the
    Guangdong `dataset`, alternating with the Guangdong agency asking its own."""
    latencies: dict[str, list[float]] = {"same_region": [], "cross_region": []}

    def side(key: str, client: AgencyClient) -> Callable[[], float]:
        def measure() -> float:
            result = run_load([lambda: _granted(client, dataset)],
                              max_calls=settings.network_create_calls,
                              max_seconds=settings.network_create_calls * 1.0)
            if result.errors:
                raise RuntimeError(f"CreateAccessRequest ({key}): {result.errors} errors,"
                                   f" first: {result.first_error}")
            latencies[key] += result.latencies
            return result.p50_ms
        return measure

    alternate(settings.rounds, side("same_region", net.users[GD]),
              side("cross_region", net.users[BJ]))
    found = {key: _percentiles(values) for key, values in latencies.items()}
    progress(f"CreateAccessRequest p50/p99: same region {found['same_region']['p50']:.1f}/"
             f"{found['same_region']['p99']:.1f} ms, cross region"
             f" {found['cross_region']['p50']:.1f}/{found['cross_region']['p99']:.1f} ms")
    return found


# -- the phase ---------------------------------------------------------------------------------


def network_phase(root: Path, settings: Settings, data: Path,
                  overrides: dict[str, dict[str, Any]] | None = None,
                  profile: Path | None = None) -> dict[str, Any]:
    """Witness quorum and memory under a steady load, then the fetch rounds (profiled into
    `profile`), then the CreateAccessRequest rounds (both cross-region parts skipped while
    refused)."""
    with ExitStack() as stack:
        net = NationalNetwork(root, settings, stack, overrides)
        witnessing = witness_load(net, settings)
        fetch = fetch_rounds(net, settings, data, profile)
        skipped = fetch["cross_region_skipped"]
        create = None if skipped else create_rounds(net, settings, fetch["dataset"])
    return {"witness": witnessing, "fetch": fetch, "create_request": create,
            "cross_region_skipped": skipped}


def _until(ready: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {seconds:.0f} s: {what}")
        time.sleep(0.1)
