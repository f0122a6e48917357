"""`python -m bench [--quick] [--out results.json]`: run every benchmark phase and write
results.json, docs/BENCHMARKS.md (generated part), docs/bench.png and the README summary.

Only a complete full run with the shipped configuration writes bench/results.json and the
documents; a quick run writes under bench/out/quick/, other partial or experimental runs
(--only, --set, --out) beside their results file. Every phase is bounded in count and time; a
phase that fails is reported (in the output and the exit status) and the others still run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import network, phases, report
from gateway.cli.serve import one_malloc_arena

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = ROOT / "bench" / "out"
PHASES = ("unary", "bulk", "mixed", "network", "audit")


def main() -> int:
    parser = argparse.ArgumentParser(description="govshare benchmarks against bare grpcio")
    parser.add_argument("--quick", action="store_true",
                        help="reduced sizes and repetitions (under 3 minutes)")
    parser.add_argument("--out", type=Path, help="results file (default bench/results.json;"
                        " bench/out/quick/results.json with --quick)")
    parser.add_argument("--only", nargs="+", choices=PHASES,
                        help="run only these phases")
    parser.add_argument("--profile", type=Path,
                        help="write py-spy profiles (collapsed stacks) of the gateway, and of the"
                        " member gateways carrying each network fetch, here")
    parser.add_argument("--report-only", action="store_true",
                        help="only regenerate the documents from the results file")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE",
                        help="an experiment: override a gateway.toml value, e.g."
                        " storage.synchronous=NORMAL (repeatable)")
    args = parser.parse_args()
    # The clients of both sides live in this process: give it the allocator setting the gateway
    # and the baseline server have, or the unary phase's threads leave it with many malloc
    # arenas and the bare fetch client receives at half its speed in the bulk phase.
    one_malloc_arena()
    settings = phases.QUICK if args.quick else phases.FULL
    wanted = set(args.only or PHASES)
    # Only a complete full run with the shipped configuration replaces the committed results.
    official = not (args.quick or args.only or args.overrides or args.out)
    out = ROOT / "bench" / "results.json" if official else (
        args.out or SCRATCH / ("quick" if args.quick else "experiment") / "results.json")
    docs = ROOT / "docs" if official else out.parent
    readme = ROOT / "README.md" if official else None
    if args.report_only:
        report.write_docs(json.loads(out.read_text()), docs / "BENCHMARKS.md",
                          docs / "bench.png", readme)
        return 0
    began = time.monotonic()
    details = run(settings, wanted, args.profile, _overrides(args.overrides))
    details["overrides"] = args.overrides
    results = report.write_results(out, details, quick=args.quick)
    report.write_docs(results, docs / "BENCHMARKS.md", docs / "bench.png", readme)
    print(report.summary(results))
    print(f"results: {out}; report: {docs / 'BENCHMARKS.md'};"
          f" {time.monotonic() - began:.0f} s", file=sys.stderr)
    return 1 if details["failures"] else 0


def run(settings: phases.Settings, wanted: set[str], profile: Path | None = None,
        overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every wanted phase, in a scratch folder under bench/out removed afterwards."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    details: dict[str, Any] = {"settings": dataclasses.asdict(settings), "failures": {}}
    work = Path(tempfile.mkdtemp(prefix="run-", dir=SCRATCH))
    try:
        if wanted & {"unary", "bulk"}:
            with ExitStack() as stack:
                bench = _phase(details, "setup",
                               lambda: phases.Bench(work / "main", settings, stack, profile,
                                                    overrides))
                if bench is not None:
                    if "unary" in wanted:
                        details["unary"] = _phase(details, "unary",
                                                  lambda: phases.unary_phase(bench))
                    if "bulk" in wanted:
                        data = phases.data_file(SCRATCH, settings.bulk_bytes)
                        details["bulk"] = _phase(details, "bulk",
                                                 lambda: phases.bulk_phase(bench, data))
        if "mixed" in wanted:
            details["mixed"] = _phase(details, "mixed",
                                      lambda: phases.mixed_phase(work / "mixed", settings,
                                                                 overrides))
        if "network" in wanted:
            data = phases.data_file(SCRATCH, settings.bulk_bytes)
            details["network"] = _phase(details, "network",
                                        lambda: network.network_phase(
                                            work / "network", settings, data, overrides,
                                            profile))
        if "audit" in wanted:
            details["audit"] = _phase(details, "audit", lambda: phases.audit_phase(settings))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return details


def _overrides(assignments: list[str]) -> dict[str, dict[str, Any]]:
    """{"section": {"key": value}} from SECTION.KEY=VALUE strings (numbers stay numbers)."""
    sections: dict[str, dict[str, Any]] = {}
    for assignment in assignments:
        name, _, text = assignment.partition("=")
        section, _, key = name.partition(".")
        try:
            value: Any = json.loads(text)
        except json.JSONDecodeError:
            value = text
        sections.setdefault(section, {})[key] = value
    return sections


def _phase(details: dict[str, Any], name: str, body: Callable[[], Any]) -> Any:
    print(f"{name} ...", file=sys.stderr, flush=True)
    began = time.monotonic()
    try:
        return body()
    except Exception as exc:  # reported with the results; the remaining phases still run
        traceback.print_exc()
        details["failures"][name] = f"{type(exc).__name__}: {exc}"
        return None
    finally:
        # The machine is shared: what else ran shows in the load average (this run's own
        # processes keep up to its two cores busy).
        details.setdefault("load_average", {})[name] = round(os.getloadavg()[0], 1)
        print(f"{name}: {time.monotonic() - began:.1f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
