"""The benchmark phases: unary calls, bulk fetch and publish, the mixed demo load, the audit log.

Each gateway measurement is paired with its baseline measurement in alternating rounds
(see bench.measure). Clients are connected (mutual-TLS handshake done) before any timing, and
every concurrent agency is a distinct registered agency with its own channel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import timestamp_pb2

from agencies.client import AgencyClient
from agencies.errors import GovshareError
from bench import gateway_proc
from bench.baseline import BaselineClient
from bench.measure import (
    CPUCores,
    MiB,
    PeakRSS,
    alternate,
    paired_ratio,
    profiled,
    progress,
    run_load,
    spread,
)
from gateway.v1 import catalog_pb2, exchange_pb2
from govshare import envelopes, signing

GiB = 1024 * MiB
MB = 1_000_000
CHUNK = 1 * MiB
"""The gateway's default max_chunk_bytes, used by the SDK and the baseline alike."""
OPEN_DATASET = "open-data"
BULK_DATASET = "bulk-data"
CALL_TIMEOUT = 60.0


@dataclass(frozen=True)
class Settings:
    """How much to measure: the full run, or the reduced `--quick` one."""

    quick: bool
    rounds: int
    """Alternating gateway/baseline rounds of every unary measurement."""
    unary_seconds: float
    unary_max_calls: int
    concurrencies: tuple[int, ...]
    bulk_bytes: int
    bulk_rounds: int
    fetch_concurrencies: tuple[int, ...]
    mixed_seconds: float
    mixed_max_calls: int
    mixed_large_bytes: int
    audit_timeout: float
    network_seconds: float
    """How long the national network's four gateways take the steady load (witness quorum,
    memory)."""
    network_rate: float
    """Access requests per second each member gateway's agency sends in that load."""
    witness_push_seconds: float
    """The member gateways' [network] witness_push_seconds (shipped: 10)."""
    network_create_calls: int
    """Access requests per round and side in the cross-region CreateAccessRequest rounds."""
    network_fetch_rounds: int
    """Alternating rounds of the national network's three fetch paths: more than the bulk
    phase's, since a ratio of two relayed paths moves more from round to round."""


FULL = Settings(quick=False, rounds=5, unary_seconds=5.0, unary_max_calls=60_000,
                concurrencies=(1, 16, 64), bulk_bytes=1 * GiB, bulk_rounds=3,
                fetch_concurrencies=(1, 2, 4), mixed_seconds=30.0, mixed_max_calls=200_000,
                mixed_large_bytes=8 * MiB, audit_timeout=1800.0, network_seconds=60.0,
                network_rate=5.0, witness_push_seconds=1.0, network_create_calls=200,
                network_fetch_rounds=6)
QUICK = Settings(quick=True, rounds=2, unary_seconds=1.5, unary_max_calls=10_000,
                 concurrencies=(1, 16, 64), bulk_bytes=256 * MiB, bulk_rounds=2,
                 fetch_concurrencies=(1, 2), mixed_seconds=8.0, mixed_max_calls=20_000,
                 mixed_large_bytes=1 * MiB, audit_timeout=90.0, network_seconds=15.0,
                 network_rate=5.0, witness_push_seconds=1.0, network_create_calls=40,
                 network_fetch_rounds=4)


# -- the network under test ------------------------------------------------------------------


class Bench:
    """The gateway and baseline processes of one run, the network they serve and its clients."""

    def __init__(self, root: Path, settings: Settings, stack: ExitStack,
                 profile: Path | None = None,
                 overrides: dict[str, dict[str, Any]] | None = None):
        self.root = root
        self.settings = settings
        self.profile = profile
        """Where py-spy profiles of the gateway go (first gateway round of each measurement at
        16 agencies and of each bulk transfer); None profiles nothing."""
        self.stack = stack
        requesters = max(max(settings.concurrencies), max(settings.fetch_concurrencies))
        self.specs = gateway_proc.agency_specs(requesters + 1)
        self.layout = gateway_proc.lay_out_network(root / "net", self.specs, overrides)
        self.gateway = stack.enter_context(gateway_proc.run_server(
            gateway_proc.gateway_command(self.layout), root / "gateway.log"))
        gateway_proc.register(self.gateway.target, self.layout, self.specs)
        self.owner = self.client(self.specs[0].id)
        self.requesters = [self.client(spec.id) for spec in self.specs[1:]]
        self.open_dataset = self._publish_open_dataset()
        self.baseline = stack.enter_context(gateway_proc.run_server(
            gateway_proc.baseline_command(self.layout, self._capture_replies()),
            root / "baseline.log"))
        self.baseline_clients = [self._baseline_client() for _ in self.requesters]

    def client(self, agency_id: str) -> AgencyClient:
        client = gateway_proc.agency_client(self.gateway.target, self.layout, agency_id)
        self.stack.callback(client.close)
        return client

    def _baseline_client(self) -> BaselineClient:
        client = BaselineClient(self.baseline.target, self.layout.certs(self.specs[1].id))
        self.stack.callback(client.close)
        gateway_proc.wait_ready(client.channel)
        return client

    def _publish_open_dataset(self) -> str:
        self.owner.publish(OPEN_DATASET, os.urandom(64 * 1024), title="Open benchmark data",
                           classification="PUBLIC", sharing_type="UNCONDITIONAL")
        return self.owner.dataset_name(OPEN_DATASET)

    def _capture_replies(self) -> Path:
        """One real reply of each unary method, for the baseline to send back."""
        folder = self.root / "replies"
        folder.mkdir()
        created = self.requesters[0].exchange.CreateAccessRequest(
            access_request(self.requesters[0], self.open_dataset), timeout=CALL_TIMEOUT)
        if not created.grant.name:
            raise RuntimeError(f"{self.open_dataset} was not granted at once: {created}")
        got = self.requesters[0].catalog.GetDataset(get_dataset(self.open_dataset),
                                                    timeout=CALL_TIMEOUT)
        (folder / "CreateAccessRequest.bin").write_bytes(created.SerializeToString())
        (folder / "GetDataset.bin").write_bytes(got.SerializeToString())
        return folder


def access_request(client: AgencyClient,
                   dataset: str) -> exchange_pb2.CreateAccessRequestRequest:
    """A freshly signed access request, as the SDK's request_access builds it."""
    statement = client.access_request_statement(
        dataset, purpose="STATISTICS", purpose_text="Benchmark of the access request path",
        legal_basis="Statistics Law art. 7")
    envelope = envelopes.seal(client.signing_key, envelopes.ACCESS_REQUEST, statement)
    return exchange_pb2.CreateAccessRequestRequest(parent=client.name, signed_statement=envelope)


def get_dataset(dataset: str) -> catalog_pb2.GetDatasetRequest:
    return catalog_pb2.GetDatasetRequest(name=dataset)


# -- unary -----------------------------------------------------------------------------------


def unary_phase(bench: Bench) -> dict[str, Any]:
    """CreateAccessRequest and GetDataset against their baselines at each concurrency."""
    results: dict[str, Any] = {}
    for method in ("CreateAccessRequest", "GetDataset"):
        for concurrency in bench.settings.concurrencies:
            requesters = bench.requesters[:concurrency]
            gateway_calls = [_gateway_unary(method, client, bench.open_dataset)
                             for client in requesters]
            baseline_calls = [_baseline_unary(method, requester, base, bench.open_dataset)
                              for requester, base in zip(requesters, bench.baseline_clients,
                                                         strict=False)]
            label = f"{method}/c{concurrency}"
            profile = (bench.profile / f"{method}-c{concurrency}.txt"
                       if bench.profile and concurrency == 16 else None)
            results[label] = _compare_unary(bench, label, gateway_calls, baseline_calls,
                                            profile)
    return results


def _compare_unary(bench: Bench, label: str, gateway_calls: list[Callable[[], object]],
                   baseline_calls: list[Callable[[], object]],
                   profile: Path | None) -> dict[str, Any]:
    """Alternating rounds of the gateway's and the baseline's calls: rps, p50, p99, and the
    CPU (in cores) the server and the client used."""
    settings = bench.settings
    runs: dict[str, list[dict[str, float]]] = {"gateway": [], "baseline": []}
    servers = {"gateway": bench.gateway.pid, "baseline": bench.baseline.pid}

    def measure(side: str, calls: list[Callable[[], object]]) -> float:
        spy = profile if side == "gateway" and not runs[side] else None
        with (profiled(servers[side], spy), CPUCores(servers[side]) as server,
              CPUCores(os.getpid()) as client):
            result = run_load(calls, max_calls=settings.unary_max_calls,
                              max_seconds=settings.unary_seconds)
        if result.errors:
            raise RuntimeError(f"{label} ({side}): {result.errors} errors, first:"
                               f" {result.first_error}")
        runs[side].append({"rps": result.rps, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms,
                           "calls": result.calls, "server_cpu_cores": server.cores,
                           "client_cpu_cores": client.cores})
        return result.rps

    for calls in (gateway_calls, baseline_calls):  # warm both up before timing
        run_load(calls, max_calls=2 * len(calls), max_seconds=5.0)
    gateway_rps, baseline_rps = alternate(settings.rounds,
                                          lambda: measure("gateway", gateway_calls),
                                          lambda: measure("baseline", baseline_calls))
    progress(f"{label}: gateway {spread(gateway_rps)['median']:.0f} rps,"
             f" baseline {spread(baseline_rps)['median']:.0f} rps")
    return {
        side: {name: spread([run[name] for run in side_runs]) for name in side_runs[0]}
        for side, side_runs in runs.items()
    } | {"ratio": paired_ratio(gateway_rps, baseline_rps)}


def _gateway_unary(method: str, client: AgencyClient, dataset: str) -> Callable[[], object]:
    if method == "CreateAccessRequest":
        return lambda: client.exchange.CreateAccessRequest(access_request(client, dataset),
                                                           timeout=CALL_TIMEOUT)
    request = get_dataset(dataset)
    return lambda: client.catalog.GetDataset(request, timeout=CALL_TIMEOUT)


def _baseline_unary(method: str, requester: AgencyClient, base: BaselineClient,
                    dataset: str) -> Callable[[], object]:
    """The same request, built the same way (signed, for CreateAccessRequest), sent to the
    baseline, so both sides carry the same client-side work."""
    send = base.unary[method]
    if method == "CreateAccessRequest":
        return lambda: send(access_request(requester, dataset), timeout=CALL_TIMEOUT)
    request = get_dataset(dataset)
    return lambda: send(request, timeout=CALL_TIMEOUT)


# -- bulk: publish and fetch -------------------------------------------------------------------


def data_file(folder: Path, size: int) -> Path:
    """Incompressible content of `size` bytes, generated once and kept in bench/out."""
    path = folder / f"data-{size // MiB}MiB.bin"
    if not path.exists() or path.stat().st_size != size:
        partial = path.with_suffix(".part")
        with partial.open("wb") as out:
            for _ in range(size // CHUNK):
                out.write(os.urandom(CHUNK))
        partial.replace(path)
    return path


def marked_chunks(path: Path, mark: bytes) -> Iterator[bytes]:
    """The file's chunks with its first bytes replaced by `mark`, so each round publishes new
    content (the gateway deduplicates identical content)."""
    with path.open("rb") as handle:
        first = handle.read(CHUNK)
        yield mark + first[len(mark):]
        while chunk := handle.read(CHUNK):
            yield chunk


class Bulk:
    """Publishing and fetching one large dataset through the gateway and the baseline."""

    def __init__(self, bench: Bench, data: Path):
        self.bench = bench
        self.data = data
        self.size = data.stat().st_size
        self.version = 0
        self.runs: dict[str, list[dict[str, float]]] = {}
        self.outbox = bench.root / "fetched"
        self.outbox.mkdir()

    # publish

    def signed_manifest(self, mark: bytes) -> Any:
        hasher = signing.StreamHasher()
        for chunk in marked_chunks(self.data, mark):
            hasher.update(chunk)
        self.version += 1
        created = timestamp_pb2.Timestamp()
        created.GetCurrentTime()
        manifest = catalog_pb2.Manifest(
            dataset=self.bench.owner.dataset_name(BULK_DATASET), version=self.version,
            title="Bulk benchmark data", media_type=catalog_pb2.MEDIA_TYPE_OCTET_STREAM,
            classification=catalog_pb2.CLASSIFICATION_INTERNAL,
            sharing_type=catalog_pb2.SHARING_TYPE_UNCONDITIONAL,
            update_cycle=catalog_pb2.UPDATE_CYCLE_IRREGULAR,
            content_sha256=hasher.digest(), content_size=hasher.size, create_time=created)
        return envelopes.seal(self.bench.owner.signing_key, envelopes.MANIFEST, manifest)

    def publish_gateway(self) -> float:
        """Upload through the SDK (`upload`: the manifest is hashed and signed beforehand)."""
        mark = os.urandom(16)
        envelope = self.signed_manifest(mark)
        return self._timed("publish/gateway", self.bench.gateway.pid, lambda: (
            self.bench.owner.upload(envelope, marked_chunks(self.data, mark), self.size)))

    def publish_baseline(self) -> float:
        mark = os.urandom(16)
        first = catalog_pb2.PublishDatasetRequest(manifest=self.signed_manifest(mark))
        self.version -= 1  # the baseline stores nothing
        return self._timed("publish/baseline", self.bench.baseline.pid, lambda: (
            self.bench.baseline_clients[0].publish(first, marked_chunks(self.data, mark))))

    # fetch

    def grant_fetchers(self, count: int) -> None:
        dataset = self.bench.owner.dataset_name(BULK_DATASET)
        for client in self.bench.requesters[:count]:
            created = client.send_access_request(access_request(client, dataset).signed_statement)
            if not created.grant.name:
                raise RuntimeError(f"{dataset} was not granted at once to {client.name}")

    def fetch_gateway(self, concurrency: int) -> float:
        dataset = self.bench.owner.dataset_name(BULK_DATASET)
        clients = self.bench.requesters[:concurrency]
        targets = [self.outbox / client.identity.id for client in clients]
        calls = [lambda client=client, target=target: client.fetch(dataset, to=target)
                 for client, target in zip(clients, targets, strict=True)]
        try:
            return self._timed(f"fetch/gateway/c{concurrency}", self.bench.gateway.pid,
                               lambda: _together(calls), concurrency)
        finally:  # deleting a fetched GiB takes a while: not part of the fetch
            for target in targets:
                target.unlink(missing_ok=True)

    def fetch_baseline(self, concurrency: int) -> float:
        def fetch(client: BaselineClient) -> Callable[[], object]:
            def call() -> None:
                received = client.fetch(self.data)
                if received != self.size:
                    raise RuntimeError(f"baseline fetch: {received} of {self.size} bytes")
            return call

        calls = [fetch(client) for client in self.bench.baseline_clients[:concurrency]]
        return self._timed(f"fetch/baseline/c{concurrency}", self.bench.baseline.pid,
                           lambda: _together(calls), concurrency)

    def _timed(self, key: str, server_pid: int, transfer: Callable[[], object],
               streams: int = 1) -> float:
        """MB/s of `transfer` (of `streams` contents), with server and client peak RSS."""
        profile = self.bench.profile
        spy = (profile / f"{key.replace('/', '-')}.txt"
               if profile and "gateway" in key and key not in self.runs else None)
        with (profiled(server_pid, spy), PeakRSS(server_pid) as server,
              PeakRSS(os.getpid()) as client, CPUCores(server_pid) as server_cpu,
              CPUCores(os.getpid()) as client_cpu):
            began = time.perf_counter()
            transfer()
            seconds = time.perf_counter() - began
        mbps = streams * self.size / seconds / MB
        self.runs.setdefault(key, []).append({
            "mbps": mbps, "server_peak_rss_mib": server.peak_mib,
            "server_rss_growth_mib": server.growth_mib, "client_peak_rss_mib": client.peak_mib,
            "client_rss_growth_mib": client.growth_mib, "server_cpu_cores": server_cpu.cores,
            "client_cpu_cores": client_cpu.cores,
            # Both pairs keep the two cores about equally busy, so this, not MB/s, is what
            # a ratio of gateway to baseline comes down to.
            "cpu_seconds_per_gb": (server_cpu.cores + client_cpu.cores) * 1000 / mbps})
        return mbps


def _together(calls: list[Callable[[], object]]) -> None:
    """Run every call at once, each in its own thread; raise if any failed."""
    result = run_load(calls, max_calls=len(calls), max_seconds=3600.0)
    if result.errors or result.calls != len(calls):
        raise RuntimeError(f"{result.errors} of {len(calls)} transfers failed:"
                           f" {result.first_error}")


def bulk_phase(bench: Bench, data: Path) -> dict[str, Any]:
    """Publish rounds first (they create the versions), then fetch rounds at each
    concurrency, each against its baseline."""
    settings = bench.settings
    bulk = Bulk(bench, data)
    bulk.publish_gateway()  # the version the fetchers' grants name; also a warm-up
    bulk.runs.clear()
    publish = alternate(settings.bulk_rounds, bulk.publish_gateway, bulk.publish_baseline)
    progress(f"publish: gateway {spread(publish[0])['median']:.0f} MB/s,"
             f" baseline {spread(publish[1])['median']:.0f} MB/s")
    bulk.grant_fetchers(max(settings.fetch_concurrencies))
    ratios = {"publish": paired_ratio(*publish)}
    for concurrency in settings.fetch_concurrencies:
        fetch = alternate(settings.bulk_rounds, lambda c=concurrency: bulk.fetch_gateway(c),
                          lambda c=concurrency: bulk.fetch_baseline(c))
        ratios[f"fetch/c{concurrency}"] = paired_ratio(*fetch)
        progress(f"fetch c={concurrency}: gateway {spread(fetch[0])['median']:.0f} MB/s,"
                 f" baseline {spread(fetch[1])['median']:.0f} MB/s")
    summary = {key: {name: spread([run[name] for run in runs]) for name in runs[0]}
               for key, runs in bulk.runs.items()}
    return {"bytes": bulk.size, "chunk_bytes": CHUNK, "runs": summary, "ratios": ratios}


# -- mixed: the demo's agencies at full speed -----------------------------------------------------


def mixed_phase(root: Path, settings: Settings,
                overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The simulated demo agencies on their own gateway: every agency publishes its datasets,
    asks for what it needs, owners decide by their policies; then, for a bounded time, each
    granted need fetches (verified) over and over while each owner publishes new versions."""
    from agencies.sim import behaviour, roster

    specs = roster.roster()
    layout = gateway_proc.lay_out_network(root / "net", specs, overrides)
    with ExitStack() as stack:
        gateway = stack.enter_context(gateway_proc.run_server(
            gateway_proc.gateway_command(layout), root / "gateway.log"))
        gateway_proc.register(gateway.target, layout, specs)
        agencies = {}
        for spec in specs:
            client = gateway_proc.agency_client(gateway.target, layout, spec.id)
            stack.callback(client.close)
            agencies[spec.id] = behaviour.Agency(
                client, seed=1, inbox=root / "inbox" / spec.id,
                large_bytes=settings.mixed_large_bytes, policy=behaviour.policy_of(spec.id))
            agencies[spec.id].inbox.mkdir(parents=True)
        for agency in agencies.values():
            agency.publish_all()
        refused = [need.dataset for need in behaviour.NEEDS
                   if not _asked(agencies[need.requester], need)]
        for agency in agencies.values():
            agency.decide_pending()
        granted = [need for need in behaviour.NEEDS if any(
            True for _ in agencies[need.requester].client.grants(
                state="ACTIVE", dataset=need.dataset))]
        fetchers = [_fetcher(agencies[need.requester], need.dataset) for need in granted]
        publishers = [_publisher(agency) for agency in agencies.values()
                      if behaviour.datasets.owned_by(agency.id)]
        result = run_load(fetchers + publishers, max_calls=settings.mixed_max_calls,
                          max_seconds=settings.mixed_seconds)
    exchanges = sum(result.per_worker[:len(fetchers)])
    progress(f"mixed: {exchanges / result.seconds:.1f} exchanges/s, {result.errors} errors")
    return {"agencies": len(specs), "granted_needs": len(granted), "refused_needs": refused,
            "fetchers": len(fetchers),
            "publishers": len(publishers), "seconds": result.seconds, "exchanges": exchanges,
            "publishes": sum(result.per_worker[len(fetchers):]),
            "exchanges_rps": exchanges / result.seconds, "errors": result.errors,
            "first_error": result.first_error}


def _asked(agency: Any, need: Any) -> bool:
    """Ask for a need; False when the gateway refuses it (as the demo shows some refusals)."""
    try:
        agency.ask(need)
    except GovshareError:
        return False
    return True


def _fetcher(agency: Any, dataset: str) -> Callable[[], object]:
    return lambda: agency.fetch(dataset)


def _publisher(agency: Any) -> Callable[[], object]:
    """Publishes the next version of each of the agency's datasets in turn."""
    from agencies.sim import datasets

    owned = datasets.owned_by(agency.id)
    versions = dict.fromkeys((spec.id for spec in owned), 1)
    turn = iter(range(sys.maxsize))
    lock = threading.Lock()

    def publish() -> None:
        with lock:
            spec = owned[next(turn) % len(owned)]
            versions[spec.id] += 1
            agency.publish(spec, versions[spec.id])

    return publish


# -- audit: the audit engineer's benchmark --------------------------------------------------------


def audit_phase(settings: Settings) -> dict[str, Any]:
    """Run `python -m bench.audit_log` (the audit log's own benchmark) and read its JSON."""
    command = [sys.executable, "-m", "bench.audit_log", *(["--quick"] if settings.quick else [])]
    completed = subprocess.run(command, capture_output=True, text=True,
                               timeout=settings.audit_timeout, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-2000:]}")
    return audit_keys(_last_json(completed.stdout))


def audit_keys(raw: dict[str, Any]) -> dict[str, Any]:
    """Our results keys from bench.audit_log's output. Proof latencies come from its largest
    log (10^6 entries in a full run, fewer with --quick: `audit_proof_entries` says)."""
    largest = max(int(key.rsplit("_", 1)[1]) for key in raw if key.startswith("proofs_at_"))
    proofs = raw[f"proofs_at_{largest}"]
    return {
        "audit_append_rps_c1": raw["appends_1_thread"]["events_per_s"],
        "audit_append_rps_c64": raw["appends_64_threads"]["events_per_s"],
        "audit_commit_p99_ms_c64": raw["appends_64_threads"]["p99_commit_ms"],
        "audit_inclusion_proof_p99_ms_1e6": proofs["inclusion_p99_ms"],
        "audit_consistency_proof_p99_ms_1e6": proofs["consistency_p99_ms"],
        "audit_proof_entries": largest,
        "audit_verify_s_per_1e6": raw["verify"]["seconds_per_million"],
        "raw": raw,
    }


def _last_json(output: str) -> dict[str, Any]:
    """The JSON object a benchmark printed: the whole output, or its last JSON line."""
    try:
        return json.loads(output)
    except json.JSONDecodeError:
        for line in reversed(output.splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        raise
