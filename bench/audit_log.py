"""Benchmark of the audit log: append throughput, proof latency and full verification.

    .venv/bin/python -m bench.audit_log [--quick] [--dir DIR]

Prints one JSON dict on stdout (progress goes to stderr). The synthetic log is built through the
real API in batches (`UnitOfWork.append` of many events: one transaction and one signed
checkpoint per batch), on a database with synchronous=OFF to build quickly; appends are timed on
a fresh database with the gateway's default synchronous=FULL.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from gateway.audit import verify
from gateway.audit.log import AuditLog
from gateway.storage import Database
from gateway.unit_of_work import UnitOfWork
from govshare.signing import SigningKey
from govshare.transparency import note
from govshare.transparency.record import Event

ORIGIN = "bench.local/audit"
SIGNER = note.NoteSigner(ORIGIN, SigningKey.from_seed(bytes(range(32))))
BUILD_BATCH = 512


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def event(n: int) -> Event:
    return Event(actor=f"urn:govshare:agency:a{n % 50}", action="exchange.fetch.complete",
                 resources=(f"agencies/a{n % 50}/datasets/d{n % 997}",),
                 request_digest=f"{n:064x}")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def open_log(path: Path, synchronous: str) -> tuple[AuditLog, UnitOfWork]:
    log = AuditLog(Database(path, synchronous=synchronous), SIGNER, ORIGIN,
                   checkpoint_file=path.with_suffix(".checkpoint"))
    work = UnitOfWork(log.db, log)
    log.open(work)
    return log, work


def appends(folder: Path, threads: int, per_thread: int, rounds: int) -> dict[str, Any]:
    """Single-event appends from `threads` producers, `rounds` times on a fresh log each: the
    median round (events/s and commit latency) and every round's events/s."""
    runs = sorted((_appends_round(folder / f"appends-{threads}-{n}.db", threads, per_thread)
                   for n in range(rounds)), key=lambda run: run["events_per_s"])
    return {**runs[len(runs) // 2], "rounds": [run["events_per_s"] for run in runs]}


def _appends_round(path: Path, threads: int, per_thread: int) -> dict[str, float]:
    log, work = open_log(path, "FULL")
    latencies: list[float] = []
    lock = threading.Lock()

    def produce(worker: int) -> None:
        mine = []
        for n in range(per_thread):
            started = time.perf_counter()
            work.append([event(worker * per_thread + n)])
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    workers = [threading.Thread(target=produce, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    work.close()
    log.close()
    log.db.close()
    return {"events_per_s": round(threads * per_thread / elapsed),
            "p50_commit_ms": round(statistics.median(latencies) * 1000, 3),
            "p99_commit_ms": round(percentile(latencies, 0.99) * 1000, 3)}


def grow(log: AuditLog, work: UnitOfWork, size: int) -> None:
    """Append synthetic events in batches until the log holds `size`."""
    current = log.checkpoint().tree_size
    started = time.perf_counter()
    while current < size:
        count = min(BUILD_BATCH, size - current)
        work.append([event(current + i) for i in range(count)])
        current += count
        if current % 100_000 < BUILD_BATCH:
            rate = current / max(time.perf_counter() - started, 1e-9)
            say(f"  built {current} entries ({rate:.0f}/s)")


def proofs(log: AuditLog, size: int, samples: int) -> dict[str, float]:
    """Latency of inclusion and consistency proofs at `size`, from storage."""
    rng = random.Random(size)
    inclusion, consistency = [], []
    for _ in range(samples):
        leaf = rng.randrange(size)
        started = time.perf_counter()
        log.inclusion_proof(leaf, size)
        inclusion.append(time.perf_counter() - started)
        first = rng.randrange(1, size + 1)
        started = time.perf_counter()
        log.consistency_proof(first, size)
        consistency.append(time.perf_counter() - started)
    return {"inclusion_p50_ms": round(statistics.median(inclusion) * 1000, 4),
            "inclusion_p99_ms": round(percentile(inclusion, 0.99) * 1000, 4),
            "consistency_p99_ms": round(percentile(consistency, 0.99) * 1000, 4)}


def run(folder: Path, quick: bool) -> dict[str, Any]:
    per_thread_1, per_thread_64, rounds = (500, 20, 1) if quick else (3000, 400, 3)
    say("appends: 1 producer")
    result: dict[str, Any] = {"appends_1_thread": appends(folder, 1, per_thread_1, rounds)}
    say("appends: 64 producers")
    result["appends_64_threads"] = appends(folder, 64, per_thread_64, rounds)
    sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    log, work = open_log(folder / "big.db", "OFF")
    build_started = time.perf_counter()
    for size in sizes:
        say(f"building the log to {size} entries")
        grow(log, work, size)
        say(f"proofs at {size}")
        result[f"proofs_at_{size}"] = proofs(log, size, 500 if quick else 2000)
    result["build_entries_per_s"] = round(sizes[-1] / (time.perf_counter() - build_started))
    work.close()
    log.close()
    say(f"verifying {sizes[-1]} entries")
    started = time.perf_counter()
    report = verify.verify_log(log.db, SIGNER.verifier())
    seconds = time.perf_counter() - started
    if not report.ok:
        raise SystemExit(f"the synthetic log does not verify: {report.first}")
    result["verify"] = {"entries": report.tree_size, "checkpoints": report.checkpoints,
                        "seconds": round(seconds, 2),
                        "seconds_per_million": round(seconds * 1_000_000 / report.tree_size, 2)}
    log.db.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="Small sizes (up to 10^5 entries) for a run of a few seconds.")
    parser.add_argument("--dir", type=Path, default=None,
                        help="Where to build the databases (default: a temporary folder).")
    args = parser.parse_args()
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
        print(json.dumps(run(args.dir, args.quick), indent=2))
        return
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as folder:
        print(json.dumps(run(Path(folder), args.quick), indent=2))


if __name__ == "__main__":
    main()
