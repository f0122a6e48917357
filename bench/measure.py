"""Measuring: bounded load loops, percentiles, medians over rounds, peak-RSS sampling.

The CPU speed of the benchmark machine drifts by up to 4x within minutes, so every comparison
runs the gateway and its baseline in alternating rounds and reports medians (with min and max);
a ratio is the median of the per-round ratios, each taken between two adjacent measurements.
"""

from __future__ import annotations

import itertools
import math
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1024 * 1024


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, interpolating linearly between ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of repeated measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """Median of round-by-round ratios: each pair was measured back to back."""
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


@dataclass
class LoadResult:
    """What one bounded load run did."""

    calls: int
    errors: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    first_error: str = ""
    per_worker: list[int] = field(default_factory=list)
    """Successful calls of each worker, in the order the workers were given."""

    @property
    def rps(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000


def run_load(workers: Sequence[Callable[[], object]], *, max_calls: int,
             max_seconds: float, pace: float = 0.0) -> LoadResult:
    """Call each worker function from its own thread, over and over (each call starting at
    least `pace` seconds after the worker's previous one: a steady rate), until `max_calls`
    calls were started in total or `max_seconds` passed. Errors are counted, not raised."""
    budget = itertools.count()
    deadline_box: list[float] = []
    start = threading.Barrier(len(workers) + 1)
    latencies: list[list[float]] = [[] for _ in workers]
    failures: list[str] = []

    def loop(work: Callable[[], object], record: list[float]) -> None:
        start.wait()
        deadline = deadline_box[0]
        while next(budget) < max_calls and time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                work()
            except Exception as exc:  # counted and reported: a benchmark must not hide errors
                failures.append(f"{type(exc).__name__}: {exc}")
            else:
                record.append(time.perf_counter() - began)
            if pace:
                time.sleep(max(0.0, min(began + pace, deadline) - time.perf_counter()))

    threads = [threading.Thread(target=loop, args=(work, record), daemon=True)
               for work, record in zip(workers, latencies, strict=True)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline_box.append(began + max_seconds)
    start.wait()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    merged = [value for record in latencies for value in record]
    return LoadResult(len(merged), len(failures), seconds, merged,
                      failures[0] if failures else "", [len(record) for record in latencies])


def alternate(rounds: int, *measurements: Callable[[], float]) -> tuple[list[float], ...]:
    """Run the measurements in `rounds` rounds, each round in the reverse order of the round
    before (ABBA for two, ABCCBA for three), returning each one's series in round order."""
    series: tuple[list[float], ...] = tuple([] for _ in measurements)
    order = list(range(len(measurements)))
    for index in range(rounds):
        for position in order if index % 2 == 0 else reversed(order):
            series[position].append(measurements[position]())
    return series


class PeakRSS:
    """Samples the resident set size of processes every `interval` seconds while active: the
    peak of their sum, and of each.

        with PeakRSS(pid) as rss:
            transfer()
        rss.peak_mib, rss.growth_mib, rss.peaks_mib
    """

    def __init__(self, *pids: int, interval: float = 0.02):
        import psutil

        self.processes = [psutil.Process(pid) for pid in pids]
        self.interval = interval
        self.start_bytes = 0
        self.peak_bytes = 0
        """The largest sum of the processes' sizes sampled at one moment."""
        self.peaks = [0 for _ in pids]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _measure(self) -> int:
        sizes = [process.memory_info().rss for process in self.processes]
        self.peaks = [max(peak, size) for peak, size in zip(self.peaks, sizes, strict=True)]
        self.peak_bytes = max(self.peak_bytes, sum(sizes))
        return sum(sizes)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._measure()

    def __enter__(self) -> PeakRSS:
        self.start_bytes = self._measure()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._measure()

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / MiB

    @property
    def growth_mib(self) -> float:
        return (self.peak_bytes - self.start_bytes) / MiB

    @property
    def peaks_mib(self) -> list[float]:
        """The peak of each process, in the order given."""
        return [peak / MiB for peak in self.peaks]


class CPUCores:
    """CPU time a process used during the block, in cores (1.0 = one core busy throughout)."""

    def __init__(self, pid: int):
        import psutil

        self.process = psutil.Process(pid)
        self.cores = 0.0

    def _cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system

    def __enter__(self) -> CPUCores:
        self._cpu = self._cpu_seconds()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cores = (self._cpu_seconds() - self._cpu) / (time.perf_counter() - self._wall)


@contextmanager
def profiled(pid: int, output: Path | None) -> Iterator[None]:
    """Sample `pid` with py-spy (GIL holder only: where the interpreter's time goes) while the
    block runs, writing collapsed stacks to `output`; does nothing when `output` is None."""
    beside = Path(sys.executable).with_name("py-spy")
    spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if output is None or spy is None:
        yield
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([spy, "record", "--pid", str(pid), "--gil", "--nonblocking",
                                "--format", "raw", "--output", str(output)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # py-spy attaches
        yield
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def progress(message: str) -> None:
    """A line of progress on stderr (stdout is the results')."""
    print(f"  {message}", file=sys.stderr, flush=True)
