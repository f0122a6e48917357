"""Results: the flat results.json, the generated part of docs/BENCHMARKS.md, the plot, and the
README summary.

Generated text goes between `<!-- bench:generated:start -->` and `<!-- bench:generated:end -->`
(in the README: `<!-- bench:summary:start -->` / `<!-- bench:summary:end -->`); anything outside
the markers (the written analysis) is kept as it is.
"""

from __future__ import annotations

import json
import operator
import os
import platform
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

GENERATED = ("<!-- bench:generated:start -->", "<!-- bench:generated:end -->")
SUMMARY = ("<!-- bench:summary:start -->", "<!-- bench:summary:end -->")


@dataclass(frozen=True)
class Target:
    """A goal from the issue: `key` compared with `limit`."""

    label: str
    key: str
    compare: Callable[[float, float], bool]
    limit: float

    @property
    def wording(self) -> str:
        sign = {operator.ge: ">=", operator.lt: "<", operator.eq: "=="}[self.compare]
        return f"{sign} {self.limit:g}"

    def met(self, results: dict[str, Any]) -> bool | None:
        value = results.get(self.key)
        return None if value is None else self.compare(value, self.limit)


TARGETS = (
    Target("CreateAccessRequest / baseline, 16 agencies", "unary_ratio_c16", operator.ge, 0.40),
    Target("GetDataset / baseline, 16 agencies", "unary_get_ratio_c16", operator.ge, 0.70),
    Target("fetch MB/s / baseline", "fetch_ratio", operator.ge, 0.70),
    Target("publish MB/s / baseline", "publish_ratio", operator.ge, 0.60),
    Target("gateway RSS growth during a fetch (MiB)", "fetch_gateway_rss_growth_mib",
           operator.lt, 64),
    Target("gateway RSS growth during a publish (MiB)", "publish_gateway_rss_growth_mib",
           operator.lt, 64),
    Target("audit appends/s, 64 producers", "audit_append_rps_c64", operator.ge, 20_000),
    Target("audit commit p99 (ms), 64 producers", "audit_commit_p99_ms_c64", operator.lt, 50),
    Target("inclusion proof p99 (ms) at 10^6", "audit_inclusion_proof_p99_ms_1e6",
           operator.lt, 1),
    Target("consistency proof p99 (ms) at 10^6", "audit_consistency_proof_p99_ms_1e6",
           operator.lt, 1),
    Target("audit verify (s) per 10^6 entries", "audit_verify_s_per_1e6", operator.lt, 15),
    Target("mixed load errors", "mixed_errors", operator.eq, 0),
    Target("cross-region fetch MB/s / same-region fetch through a bare relay",
           "cross_region_fetch_relay_ratio", operator.ge, 0.8),
)

AUDIT_KEYS = (
    "audit_append_rps_c1", "audit_append_rps_c64", "audit_commit_p99_ms_c64",
    "audit_inclusion_proof_p99_ms_1e6", "audit_consistency_proof_p99_ms_1e6",
    "audit_verify_s_per_1e6",
)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(), "cpu_model": model or platform.processor(),
        "python": platform.python_version(), "grpcio": metadata.version("grpcio"),
        "protobuf": metadata.version("protobuf"),
        "cryptography": metadata.version("cryptography"), "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


def flatten(details: dict[str, Any]) -> dict[str, Any]:
    """The results.json keys the issue names (ratios are gateway / baseline), from the
    phases' detailed results. A phase that did not run leaves its keys null."""
    flat: dict[str, Any] = {}
    unary = details.get("unary") or {}
    if unary:
        create, get = unary["CreateAccessRequest/c16"], unary["GetDataset/c16"]
        flat |= {
            "unary_create_request_rps_c16": create["gateway"]["rps"]["median"],
            "unary_baseline_rps_c16": create["baseline"]["rps"]["median"],
            "unary_ratio_c16": create["ratio"],
            "unary_get_dataset_rps_c16": get["gateway"]["rps"]["median"],
            "unary_get_baseline_rps_c16": get["baseline"]["rps"]["median"],
            "unary_get_ratio_c16": get["ratio"],
        }
    bulk = details.get("bulk") or {}
    if bulk:
        runs = bulk["runs"]
        flat |= {
            "fetch_mbps": runs["fetch/gateway/c1"]["mbps"]["median"],
            "fetch_baseline_mbps": runs["fetch/baseline/c1"]["mbps"]["median"],
            "fetch_ratio": bulk["ratios"]["fetch/c1"],
            "fetch_gateway_peak_rss_mib": runs["fetch/gateway/c1"]["server_peak_rss_mib"]["max"],
            "fetch_gateway_rss_growth_mib":
                runs["fetch/gateway/c1"]["server_rss_growth_mib"]["max"],
            "fetch_client_peak_rss_mib": runs["fetch/gateway/c1"]["client_peak_rss_mib"]["max"],
            "publish_mbps": runs["publish/gateway"]["mbps"]["median"],
            "publish_baseline_mbps": runs["publish/baseline"]["mbps"]["median"],
            "publish_ratio": bulk["ratios"]["publish"],
            "publish_gateway_peak_rss_mib": runs["publish/gateway"]["server_peak_rss_mib"]["max"],
            "publish_gateway_rss_growth_mib":
                runs["publish/gateway"]["server_rss_growth_mib"]["max"],
        }
    audit = details.get("audit") or {}
    flat |= {key: audit.get(key) for key in AUDIT_KEYS}
    mixed = details.get("mixed") or {}
    flat |= {"mixed_exchanges_rps": mixed.get("exchanges_rps"),
             "mixed_errors": mixed.get("errors")}
    return flat | network_keys(details.get("network") or {})


def network_keys(network: dict[str, Any]) -> dict[str, Any]:
    """The national network's keys; the cross-region ones stay null while skipped."""
    if not network:
        return {}
    witness, fetch = network["witness"], network["fetch"]
    runs, ratios = fetch["runs"], fetch["ratios"]
    create = network.get("create_request") or {}
    cross = create.get("cross_region", {})
    return {
        "cross_region_fetch_relay_ratio": ratios.get("cross_region/relay"),
        "cross_region_fetch_ratio": ratios.get("cross_region/same_region"),
        "cross_region_fetch_mbps": runs.get("cross_region", {}).get("mbps", {}).get("median"),
        "same_region_fetch_mbps": runs["same_region"]["mbps"]["median"],
        "relay_fetch_mbps": runs["relay"]["mbps"]["median"],
        "relay_fetch_ratio": ratios["relay/same_region"],
        "cross_region_create_request_p50_ms": cross.get("p50"),
        "cross_region_create_request_p99_ms": cross.get("p99"),
        "witness_quorum_p50_ms": witness["quorum_ms"]["p50"],
        "witness_quorum_p99_ms": witness["quorum_ms"]["p99"],
        "witness_covered_p50_ms": witness["covered_ms"]["p50"],
        "witness_covered_p99_ms": witness["covered_ms"]["p99"],
        "network_memory_mib": witness["memory_mib"]["all_peak"],
    }


def write_results(path: Path, details: dict[str, Any], *, quick: bool) -> dict[str, Any]:
    results = {
        **flatten(details), "quick": quick, "machine": machine(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "details": details,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    return results


# -- text ------------------------------------------------------------------------------------


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[met]


def targets_table(results: dict[str, Any]) -> list[str]:
    lines = ["| Target | Key | Measured | Goal | |", "|---|---|---|---|---|"]
    for target in TARGETS:
        lines.append(f"| {target.label} | `{target.key}` | {_number(results.get(target.key))}"
                     f" | {target.wording} | {_verdict(target.met(results))} |")
    return lines


def unary_table(unary: dict[str, Any]) -> list[str]:
    lines = ["| Call | Agencies | Gateway req/s | p50 ms | p99 ms | CPU cores | Baseline req/s"
             " | p50 ms | p99 ms | CPU cores | Ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, row in unary.items():
        method, concurrency = label.split("/c")
        cells = [method, concurrency]
        for side in (row["gateway"], row["baseline"]):
            cells += [_spread(side["rps"]), _number(side["p50_ms"]["median"]),
                      _number(side["p99_ms"]["median"]),
                      _number(side["server_cpu_cores"]["median"])]
        lines.append("| " + " | ".join([*cells, f"{row['ratio']:.2f}"]) + " |")
    return lines


def bulk_table(bulk: dict[str, Any]) -> list[str]:
    lines = ["| Transfer | MB/s median (min–max) | Server peak RSS MiB | Server RSS growth MiB"
             " | Client peak RSS MiB | Server CPU cores | Client CPU cores"
             " | CPU-seconds per GB, both ends |",
             "|---|---|---|---|---|---|---|---|"]
    for key, run in bulk["runs"].items():
        lines.append(f"| {key} | {_spread(run['mbps'])}"
                     f" | {_number(run['server_peak_rss_mib']['max'])}"
                     f" | {_number(run['server_rss_growth_mib']['max'])}"
                     f" | {_number(run['client_peak_rss_mib']['max'])}"
                     f" | {_number(run['server_cpu_cores']['median'])}"
                     f" | {_number(run['client_cpu_cores']['median'])}"
                     f" | {_spread(run['cpu_seconds_per_gb'])} |")
    return lines


def network_section(network: dict[str, Any]) -> list[str]:
    """Witness quorum, memory, the fetch paths and the cross-region calls."""
    witness, fetch = network["witness"], network["fetch"]
    checkpoints = witness["checkpoints"].values()
    memory = witness["memory_mib"]
    lines = [
        f"{witness['gateways']} member gateways (witness quorum {witness['quorum']} of the other"
        f" {witness['gateways'] - 1}, `witness_push_seconds` {witness['witness_push_seconds']:g}),"
        f" each one's agency sending {witness['requests_per_second_per_gateway']:g} access"
        f" requests/s for {witness['seconds']:.0f} s: {sum(c['signed'] for c in checkpoints)}"
        f" checkpoints signed in the window, {sum(c['cosigned'] for c in checkpoints)}"
        f" cosigned, {sum(c['reached_quorum'] for c in checkpoints)} reaching their quorum.",
        "",
        "| From a checkpoint's signing to | p50 ms | p99 ms | max ms | checkpoints |",
        "|---|---|---|---|---|",
    ]
    for label, key in (("its own quorum-th cosignature", "quorum_ms"),
                       ("a quorum on it or a later checkpoint", "covered_ms")):
        row = witness[key]
        lines.append(f"| {label} | {_number(row['p50'])} | {_number(row['p99'])}"
                     f" | {_number(row['max'])} | {row['count']} |")
    peaks = ", ".join(f"{gateway} {_number(mib)}" for gateway, mib in memory["peak"].items())
    lines += ["", f"Gateway memory under that load: {_number(memory['all_peak'])} MiB in all"
              f" (peak of the sum; at its start {_number(memory['all_start'])}); peak per"
              f" process, MiB: {peaks}.", "",
              f"The fetch paths, {_number(fetch['bytes'] / 2**20)} MiB each, in"
              f" {fetch['rounds']} alternating rounds:", "",
              *fetch_table(fetch["runs"])]
    ratios = ", ".join(f"{key.replace('_', ' ')} {value:.2f}"
                       for key, value in fetch["ratios"].items())
    lines += ["", f"Ratios (median of per-round ratios): {ratios}."]
    if network.get("cross_region_skipped"):
        why = " ".join(network["cross_region_skipped"].replace("`", "'").split())
        lines += ["", f"Cross-region fetch and CreateAccessRequest skipped: `{why}`"]
    elif network.get("create_request"):
        lines += ["", "| CreateAccessRequest | p50 ms | p99 ms | calls |", "|---|---|---|---|"]
        for key, row in network["create_request"].items():
            lines.append(f"| {key.replace('_', ' ')} | {_number(row['p50'])}"
                         f" | {_number(row['p99'])} | {row['count']} |")
    return lines


def fetch_table(runs: dict[str, Any]) -> list[str]:
    """MB/s of each network fetch path, and the CPU-seconds per GB of all processes and of
    each (medians)."""
    processes = list(next(iter(runs.values()))["process_cpu_seconds_per_gb"])
    lines = ["| Fetch path | MB/s median (min–max) | CPU-seconds per GB, all processes"
             + "".join(f" | {name}" for name in processes) + " |",
             "|---|---|---" + "|---" * len(processes) + "|"]
    for key, run in runs.items():
        each = run["process_cpu_seconds_per_gb"]
        lines.append(f"| {key.replace('_', ' ')} | {_spread(run['mbps'])}"
                     f" | {_spread(run['cpu_seconds_per_gb'])}"
                     + "".join(f" | {_number(each[name]['median'])}" for name in processes)
                     + " |")
    return lines


def _spread(value: dict[str, float]) -> str:
    return f"{_number(value['median'])} ({_number(value['min'])}–{_number(value['max'])})"


def load_line(details: dict[str, Any]) -> list[str]:
    """The 1-minute load average at the end of each phase, when the run recorded it."""
    loads = details.get("load_average")
    if not loads:
        return []
    each = ", ".join(f"{phase} {load:g}" for phase, load in loads.items())
    return [f"**Load:** 1-minute load average at the end of each phase (the machine is shared;"
            f" this run keeps up to its 2 cores busy): {each}.", ""]


def generated_section(results: dict[str, Any], plot_name: str) -> str:
    details = results["details"]
    box = results["machine"]
    settings = details.get("settings", {})
    lines = [
        f"Generated by `make bench{' QUICK=1' if results['quick'] else ''}` on"
        f" {results['created']}.",
        "",
        f"**Machine:** {box['cores']} cores, {box['cpu_model']}; Python {box['python']},"
        f" grpcio {box['grpcio']}, protobuf {box['protobuf']}, cryptography"
        f" {box['cryptography']}, SQLite {box['sqlite']}.",
        "",
        *load_line(details),
        f"**Sizes:** bulk transfers of {_number(settings.get('bulk_bytes', 0) / 2**20)} MiB in"
        f" 1 MiB chunks, {settings.get('bulk_rounds')} rounds each; unary runs of at most"
        f" {settings.get('unary_seconds')} s, {settings.get('rounds')} rounds each.",
        "",
        "### Targets",
        "",
        *targets_table(results),
        "",
    ]
    if details.get("unary"):
        lines += ["### Unary calls", "", *unary_table(details["unary"]), ""]
    if details.get("bulk"):
        lines += ["### Bulk transfers", "", *bulk_table(details["bulk"]), ""]
    if details.get("mixed"):
        mixed = details["mixed"]
        lines += ["### Mixed load", "",
                  f"{mixed['agencies']} demo agencies, {mixed['fetchers']} granted needs fetching"
                  f" and {mixed['publishers']} owners publishing for {mixed['seconds']:.1f} s:"
                  f" {mixed['exchanges']} verified exchanges ({mixed['exchanges_rps']:.1f}/s),"
                  f" {mixed['publishes']} new versions, {mixed['errors']} errors.", ""]
    if details.get("network"):
        lines += ["### National network (bench/network.py)", "",
                  *network_section(details["network"]), ""]
    if details.get("audit"):
        audit = details["audit"]
        lines += ["### Audit log (bench/audit_log.py)", "",
                  f"Proof latencies at {audit['audit_proof_entries']:,} entries.", "", "```json",
                  json.dumps(audit["raw"], indent=2), "```", ""]
    if details.get("failures"):
        lines += ["### Phases that failed", ""]
        lines += [f"- {phase}: {message}" for phase, message in details["failures"].items()]
        lines.append("")
    lines += [f"![fetch throughput and unary latency against concurrency]({plot_name})", ""]
    return "\n".join(lines)


def summary(results: dict[str, Any]) -> str:
    met = [target.met(results) for target in TARGETS]
    loads = results["details"].get("load_average", {}).values()
    shared = (f" shared with other work (load average {min(loads):g}–{max(loads):g})"
              if loads else "")
    return (
        f"`make bench` (details in [docs/BENCHMARKS.md](docs/BENCHMARKS.md)), last run"
        f" {results['created'][:10]} on {results['machine']['cores']} cores{shared}:"
        f" CreateAccessRequest"
        f" {_number(results.get('unary_create_request_rps_c16'))} req/s at 16 agencies"
        f" ({_number(results.get('unary_ratio_c16'))}x a bare gRPC echo), fetch"
        f" {_number(results.get('fetch_mbps'))} MB/s verified"
        f" ({_number(results.get('fetch_ratio'))}x bare streaming), publish"
        f" {_number(results.get('publish_mbps'))} MB/s, audit"
        f" {_number(results.get('audit_append_rps_c64'))} appends/s, cross-region fetch"
        f" {_number(results.get('cross_region_fetch_relay_ratio'))}x a same-region fetch through"
        f" a bare relay; {met.count(True)} of {len(TARGETS)} targets met."
    )


def replace_between(text: str, markers: tuple[str, str], body: str) -> str:
    """`text` with what lies between the markers replaced by `body` (markers appended at the
    end when absent)."""
    start, end = markers
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        return text[:text.index(start)] + block + text[text.index(end) + len(end):]
    return f"{text.rstrip()}\n\n{block}\n" if text.strip() else block + "\n"


def write_docs(results: dict[str, Any], document: Path, plot: Path,
               readme: Path | None = None) -> None:
    """Regenerate the plot, the generated part of `document`, and the README summary."""
    write_plot(results, plot)
    write_text(results, document, plot.name, readme)


def write_text(results: dict[str, Any], document: Path, plot_name: str,
               readme: Path | None = None) -> None:
    """The generated part of `document` and the README summary (only where the README carries
    the summary markers); the analysis written around them is kept."""
    text = document.read_text() if document.exists() else "# Benchmarks\n"
    document.write_text(replace_between(text, GENERATED, generated_section(results, plot_name)))
    if readme is not None and readme.exists() and SUMMARY[0] in readme.read_text():
        readme.write_text(replace_between(readme.read_text(), SUMMARY, summary(results)))


def write_plot(results: dict[str, Any], path: Path) -> None:
    """Fetch throughput and unary latency against concurrency, gateway beside baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    details = results["details"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    runs = (details.get("bulk") or {}).get("runs", {})
    for side, style in (("gateway", "o-"), ("baseline", "s--")):
        points = sorted((int(key.rsplit("/c", 1)[1]), run["mbps"]) for key, run in runs.items()
                        if key.startswith(f"fetch/{side}/"))
        if points:
            _errorbar(left, points, style, f"{side} fetch")
    left.set(title="Fetch throughput", xlabel="concurrent fetches", ylabel="MB/s (total)")
    unary = details.get("unary") or {}
    for method, colour in (("CreateAccessRequest", "C0"), ("GetDataset", "C1")):
        for side, style in (("gateway", "o-"), ("baseline", "s--")):
            points = sorted((int(label.split("/c")[1]), row[side]["p50_ms"])
                            for label, row in unary.items() if label.startswith(method + "/"))
            if points:
                _errorbar(right, points, style, f"{method} {side} p50", colour)
    right.set(title="Unary latency", xlabel="concurrent agencies", ylabel="p50 latency (ms)")
    right.set_xscale("log", base=2)
    right.set_yscale("log")
    for axes in (left, right):
        axes.grid(True, alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _errorbar(axes: Any, points: list[tuple[int, dict[str, float]]], style: str, label: str,
              colour: str | None = None) -> None:
    xs = [x for x, _ in points]
    medians = [value["median"] for _, value in points]
    below = [value["median"] - value["min"] for _, value in points]
    above = [value["max"] - value["median"] for _, value in points]
    axes.errorbar(xs, medians, yerr=[below, above], fmt=style, capsize=3, label=label,
                  color=colour)
    axes.set_xticks(xs, [str(x) for x in xs])
