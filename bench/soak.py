"""`python -m bench.soak [--minutes 10] [--seed N]` (`make soak`): a bounded soak of the gateway.

The gateway runs as its own process (`govshare gateway serve`, rate limits lifted as in the
benchmarks). Against it, for the whole time and at full speed: the demo's simulated agencies
(watching their events, deciding requests by their rules, publishing a new version every few
seconds and fetching the versions they follow) and a mixed workload of load agencies
publishing, requesting and fetching (bench.workload). The gateway's resident memory and open
file descriptors are sampled from /proc every few seconds.

Pass: no errors, memory and descriptors flat after warm-up, every acknowledged operation stored
exactly once with its audit event, no orphan blob or temp file, and `audit verify` clean.
Prints a JSON summary and exits 1 on failure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agencies.client import AgencyClient
from agencies.sim import behaviour, datasets
from agencies.sim.roster import roster
from bench.gateway_proc import gateway_command, lay_out_network, register, run_server
from bench.workload import Workload, agency_specs, inspect_storage
from gateway.network import NetworkLayout
from gateway.v1 import catalog_pb2

MiB = 1024 * 1024
WARM_UP_SHARE = 0.2
"""The first fifth of the run (at least WARM_UP_MIN seconds) fills caches and pools."""
WARM_UP_MIN = 20.0
MEMORY_SLACK = 16 * MiB
"""Memory growth after warm-up allowed besides MEMORY_SLACK_SHARE of the warm size."""
MEMORY_SLACK_SHARE = 0.05
FD_SLACK = 16
DEMO_LARGE_BYTES = 2 * MiB
"""The size of the demo's large (streamed) dataset, as `govshare demo --large-mib 2`."""
LARGE_SHARE = 0.01
"""Share of two-chunk publishes: enough to cover multi-chunk streams without filling the disk."""


@dataclass
class Sample:
    seconds: float
    rss_bytes: int
    open_fds: int


@dataclass
class Summary:
    minutes: float
    seed: int
    agencies: int
    acknowledged: dict[str, int] = field(default_factory=dict)
    operations_per_second: float = 0.0
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    rss_mib: dict[str, float] = field(default_factory=dict)
    open_fds: dict[str, int] = field(default_factory=dict)
    memory_flat: bool = False
    fds_flat: bool = False
    audit_entries: int = 0
    audit_verified: bool = False
    records_lost: int = 0
    problems: list[str] = field(default_factory=list)
    gateway_exit_code: int | None = None

    @property
    def passed(self) -> bool:
        return (self.errors == 0 and self.memory_flat and self.fds_flat and self.audit_verified
                and not self.problems and self.gateway_exit_code == 0)


def proc_sample(pid: int, started: float) -> Sample:
    """The process's VmRSS and open descriptors, from /proc (Linux)."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
    return Sample(time.monotonic() - started, rss, len(list(Path(f"/proc/{pid}/fd").iterdir())))


class DemoAgencies:
    """The demo's simulated agencies at work, as `govshare demo --serve` runs them."""

    def __init__(self, target: str, layout: NetworkLayout, count: int, seed: int, inbox: Path,
                 publish_every: float):
        self.stop = threading.Event()
        self.publish_every = publish_every
        self.agencies = []
        for spec in roster(count):
            client = AgencyClient(target, layout.certs(spec.id), server_name="localhost")
            follow = tuple(name for name in behaviour.follows_of(spec.id)
                           if _shareable(name))
            agency = behaviour.Agency(client, seed, inbox / spec.id, DEMO_LARGE_BYTES,
                                      policy=behaviour.policy_of(spec.id), follow=follow)
            agency.inbox.mkdir(parents=True, exist_ok=True)
            self.agencies.append(agency)
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        """Publish every dataset, start following, ask for every shareable need."""
        for agency in self.agencies:
            agency.publish_all()
        for agency in self.agencies:
            for work in (lambda a=agency: a.run(self.stop),
                         lambda a=agency: a.publish_on_schedule(self.stop, self.publish_every)):
                thread = threading.Thread(target=work, daemon=True)
                thread.start()
                self.threads.append(thread)
        by_id = {agency.id: agency for agency in self.agencies}
        for need in behaviour.NEEDS:
            if need.requester in by_id and _shareable(need.dataset) and \
                    datasets.dataset(need.dataset).owner in by_id:
                by_id[need.requester].ask(need)

    def figures(self) -> dict[str, int]:
        return {"demo_decisions": sum(len(a.decisions) for a in self.agencies),
                "demo_fetches": sum(len(a.fetched) for a in self.agencies)}

    def finish(self) -> list[str]:
        """Stop them; the failures they met."""
        self.stop.set()
        for agency in self.agencies:
            agency.client.close()
        for thread in self.threads:
            thread.join(10)
        return [f"{agency.id}: {agency.failure}" for agency in self.agencies if agency.failure]


def _shareable(name: str) -> bool:
    return datasets.dataset(name).sharing_type != catalog_pb2.SHARING_TYPE_NOT_SHARED


def flat(samples: list[Sample], warm_up: float) -> tuple[bool, bool, dict, dict]:
    """Whether memory and descriptors stayed flat after warm-up: the median of the last quarter
    of the samples against the median of the first quarter after warm-up."""
    after = [s for s in samples if s.seconds >= warm_up] or samples
    quarter = max(1, len(after) // 4)
    early, late = after[:quarter], after[-quarter:]
    rss_early = statistics.median(s.rss_bytes for s in early)
    rss_late = statistics.median(s.rss_bytes for s in late)
    fds_early = statistics.median(s.open_fds for s in early)
    fds_late = statistics.median(s.open_fds for s in late)
    memory_ok = rss_late - rss_early <= MEMORY_SLACK + MEMORY_SLACK_SHARE * rss_early
    rss = {"start": samples[0].rss_bytes / MiB, "after_warm_up": rss_early / MiB,
           "end": rss_late / MiB, "max": max(s.rss_bytes for s in samples) / MiB}
    fds = {"start": samples[0].open_fds, "after_warm_up": int(fds_early), "end": int(fds_late),
           "max": max(s.open_fds for s in samples)}
    return memory_ok, fds_late - fds_early <= FD_SLACK, \
        {k: round(v, 1) for k, v in rss.items()}, fds


def soak(root: Path, minutes: float, seed: int, load_agencies: int, sample_every: float,
         publish_every: float) -> Summary:
    demo_specs = roster()
    load_specs = agency_specs(load_agencies)
    layout = lay_out_network(root / "net", [*demo_specs, *load_specs])
    summary = Summary(minutes=minutes, seed=seed, agencies=len(demo_specs) + len(load_specs))
    duration = minutes * 60
    samples: list[Sample] = []
    with run_server(gateway_command(layout), root / "gateway.log") as server:
        register(server.target, layout, [*demo_specs, *load_specs])
        demo = DemoAgencies(server.target, layout, len(demo_specs), seed, root / "inbox",
                            publish_every)
        load = Workload(server.target, layout, [s.id for s in load_specs], seed=seed,
                        inbox=root / "inbox", large_share=LARGE_SHARE)
        started = time.monotonic()
        demo.start()
        load.start()
        while time.monotonic() - started < duration:
            samples.append(proc_sample(server.pid, started))
            time.sleep(min(sample_every, max(0.0, duration - (time.monotonic() - started))))
        samples.append(proc_sample(server.pid, started))
        ledger = load.finish()
        failures = demo.finish()
        elapsed = time.monotonic() - started
        process = server.process
    summary.gateway_exit_code = process.returncode
    failed = [*failures, *ledger.failures]
    summary.errors = len(failed) + sum(ledger.expected_failures.values())
    summary.error_examples = [*failed, *(f"{count} calls failed with {code}" for code, count
                                          in ledger.expected_failures.items())][:10]
    summary.acknowledged = {"versions": len(ledger.versions), "requests": len(ledger.requests),
                            "exchanges": len(ledger.exchanges), "checkpoints": ledger.checkpoints,
                            **demo.figures()}
    summary.operations_per_second = round(
        (ledger.acknowledged + ledger.checkpoints) / elapsed, 1)
    warm_up = max(WARM_UP_MIN, WARM_UP_SHARE * duration)
    summary.memory_flat, summary.fds_flat, summary.rss_mib, summary.open_fds = \
        flat(samples, warm_up)
    found = inspect_storage(layout, ledger)
    summary.audit_entries = found.audit_size
    summary.audit_verified = not found.audit_problems
    summary.records_lost = len(found.lost)
    summary.problems = found.problems[:20]
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--load-agencies", type=int, default=8,
                        help="agencies running the publish/request/fetch workload")
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument("--publish-every", type=float, default=2.0,
                        help="seconds between the demo agencies' new versions")
    parser.add_argument("--dir", type=Path, help="keep the network here (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="govshare-soak-") as scratch:
        root = args.dir or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        summary = soak(root, args.minutes, args.seed, args.load_agencies, args.sample_seconds,
                       args.publish_every)
    print(json.dumps({**asdict(summary), "passed": summary.passed}, indent=2,
                     ensure_ascii=False))
    return 0 if summary.passed else 1


if __name__ == "__main__":
    sys.exit(main())
