"""The benchmark's arithmetic and report generation (the benchmark itself runs in `make bench`)."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import measure, network, report


def test_percentile_interpolates_between_ranks():
    values = [4.0, 1.0, 3.0, 2.0]
    assert measure.percentile(values, 0) == 1.0
    assert measure.percentile(values, 50) == 2.5
    assert measure.percentile(values, 100) == 4.0
    assert measure.percentile([7.0], 99) == 7.0
    assert math.isnan(measure.percentile([], 50))


def test_spread_and_paired_ratio():
    assert measure.spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0}
    assert measure.paired_ratio([1.0, 4.0, 9.0], [2.0, 8.0, 10.0]) == 0.5


def test_alternate_runs_abba_and_keeps_round_order():
    calls: list[str] = []
    counter = iter(range(100))

    def side(name: str):
        def run() -> float:
            calls.append(name)
            return float(next(counter))
        return run

    a, b = measure.alternate(3, side("a"), side("b"))
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert a == [0.0, 3.0, 4.0]
    assert b == [1.0, 2.0, 5.0]


def test_alternate_reverses_the_order_of_three_each_round():
    calls: list[str] = []
    sides = [lambda name=name: calls.append(name) or float(len(calls)) for name in "abc"]
    a, b, c = measure.alternate(2, *sides)
    assert calls == ["a", "b", "c", "c", "b", "a"]
    assert (a, b, c) == ([1.0, 6.0], [2.0, 5.0], [3.0, 4.0])


def test_run_load_paces_each_worker_within_its_time():
    """The next call is due after the time is up: one call each, not the budget."""
    result = measure.run_load([lambda: None, lambda: None], max_calls=100, max_seconds=0.2,
                              pace=60.0)
    assert result.per_worker == [1, 1]


def test_quorum_times_of_a_checkpoint_and_of_what_covers_it():
    at = lambda ms: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)  # noqa: E731
    signed = {1: at(0), 2: at(100), 3: at(200), 4: at(300), 5: at(5000)}
    cosigned = {2: [at(700), at(400), at(900)],  # its quorum of 2: the second, at 700
                3: [at(350)],  # one witness only: no quorum of its own
                4: [at(320), at(330)],
                5: [at(5010), at(5020)]}
    found = network.quorum_times(signed, cosigned, 2, at(50), at(400))
    assert (found.signed, found.cosigned) == (3, 3)
    assert found.own == [0.6, 0.03]
    # 2 and 3 were covered once 4 reached its quorum at 330, before 2's own at 700
    assert found.covered == [0.23, 0.13, 0.03]


def test_run_load_stops_at_the_call_budget_and_counts_errors():
    def fails() -> None:
        raise ValueError("boom")

    def succeeds() -> None:
        time.sleep(0.002)

    result = measure.run_load([succeeds, succeeds, fails], max_calls=30, max_seconds=30.0)
    assert result.calls + result.errors == 30
    assert result.errors >= 1
    assert result.first_error == "ValueError: boom"
    assert sum(result.per_worker) == result.calls == len(result.latencies)


def test_replace_between_keeps_the_written_text():
    text = "# Benchmarks\n\nintro\n\n<!-- a -->\nold\n<!-- b -->\n\n## Analysis\nkept\n"
    updated = report.replace_between(text, ("<!-- a -->", "<!-- b -->"), "new")
    assert updated == "# Benchmarks\n\nintro\n\n<!-- a -->\nnew\n<!-- b -->\n\n## Analysis\nkept\n"
    assert report.replace_between("# T\n", ("<a>", "<b>"), "x") == "# T\n\n<a>\nx\n<b>\n"


def _spread(value: float) -> dict[str, float]:
    return {"median": value, "min": value * 0.9, "max": value * 1.1}


def _details() -> dict:
    unary = {
        f"{method}/c{c}": {
            side: {"rps": _spread(rps), "p50_ms": _spread(1.0 * c), "p99_ms": _spread(2.0 * c),
                   "server_cpu_cores": _spread(0.8), "client_cpu_cores": _spread(0.3)}
            for side, rps in (("gateway", 500.0), ("baseline", 1000.0))
        } | {"ratio": 0.5}
        for method in ("CreateAccessRequest", "GetDataset") for c in (1, 16, 64)
    }
    run = {name: _spread(10.0) for name in (
        "mbps", "server_peak_rss_mib", "server_rss_growth_mib", "client_peak_rss_mib",
        "client_rss_growth_mib", "server_cpu_cores", "client_cpu_cores",
        "cpu_seconds_per_gb")}
    keys = ("publish/gateway", "publish/baseline", "fetch/gateway/c1", "fetch/baseline/c1",
            "fetch/gateway/c2", "fetch/baseline/c2")
    bulk = {"bytes": 1, "chunk_bytes": 1, "runs": {key: run for key in keys},
            "ratios": {"publish": 0.7, "fetch/c1": 0.8, "fetch/c2": 0.9}}
    audit = {key: 1.0 for key in report.AUDIT_KEYS} | {"audit_proof_entries": 10_000,
                                                      "raw": {"x": 1}}
    mixed = {"agencies": 7, "fetchers": 6, "publishers": 7, "seconds": 1.0, "exchanges": 10,
             "publishes": 5, "exchanges_rps": 10.0, "errors": 0}
    return {"settings": {"bulk_bytes": 2**20, "bulk_rounds": 2, "unary_seconds": 1.0,
                         "rounds": 2},
            "failures": {}, "unary": unary, "bulk": bulk, "audit": audit, "mixed": mixed,
            "network": _network()}


def _network(skipped: str | None = None) -> dict:
    latency = {"p50": 100.0, "p99": 900.0, "max": 1000.0, "count": 60}
    witness = {"gateways": 4, "quorum": 2, "witness_push_seconds": 1.0,
               "requests_per_second_per_gateway": 5.0, "seconds": 15.0, "requests": 300,
               "checkpoints": {"gd-gateway": {"signed": 75, "cosigned": 16,
                                              "reached_quorum": 15}},
               "quorum_ms": latency, "covered_ms": latency,
               "memory_mib": {"all_peak": 365.0, "all_start": 360.0,
                              "peak": {"gd-gateway": 91.0}}}
    paths = ("same_region", "relay") if skipped else ("same_region", "relay", "cross_region")
    runs = {key: {"mbps": _spread(100.0 * (n + 1)), "cpu_cores": _spread(1.0),
                  "cpu_seconds_per_gb": _spread(3.0),
                  "process_cpu_seconds_per_gb": {"client": _spread(1.0),
                                                 "gd-gateway": _spread(2.0)}}
            for n, key in enumerate(paths)}
    ratios = {"relay/same_region": 0.7} | ({} if skipped else {
        "cross_region/relay": 0.85, "cross_region/same_region": 0.6})
    create = None if skipped else {side: {"p50": 2.0, "p99": 9.0, "max": 9.5, "count": 80}
                                   for side in ("same_region", "cross_region")}
    return {"witness": witness, "create_request": create, "cross_region_skipped": skipped,
            "fetch": {"bytes": 1, "dataset": "d", "rounds": 2, "runs": runs, "ratios": ratios,
                      "cross_region_skipped": skipped}}


def test_network_keys_and_a_cross_region_part_skipped_with_its_reason(tmp_path: Path):
    keys = report.network_keys(_network())
    assert keys["cross_region_fetch_relay_ratio"] == 0.85
    assert keys["cross_region_create_request_p99_ms"] == 9.0
    assert keys["network_memory_mib"] == 365.0
    details = _details() | {"network": _network("bj-gateway refused it: NOT_FOUND `x`")}
    results = report.write_results(tmp_path / "results.json", details, quick=True)
    assert results["cross_region_fetch_relay_ratio"] is None
    assert results["cross_region_create_request_p50_ms"] is None
    assert results["witness_quorum_p99_ms"] == 900.0
    text = report.generated_section(results, "bench.png")
    assert "skipped: `bj-gateway refused it: NOT_FOUND 'x'`" in text
    assert "| `cross_region_fetch_relay_ratio` | — | >= 0.8 | not measured |" in text


def test_results_have_every_key_the_issue_names(tmp_path: Path):
    results = report.write_results(tmp_path / "results.json", _details(), quick=True)
    named = (
        "unary_create_request_rps_c16", "unary_baseline_rps_c16", "unary_ratio_c16",
        "unary_get_dataset_rps_c16", "unary_get_ratio_c16", "fetch_mbps", "fetch_baseline_mbps",
        "fetch_ratio", "fetch_gateway_peak_rss_mib", "publish_mbps", "publish_baseline_mbps",
        "publish_ratio", "publish_gateway_peak_rss_mib", "audit_append_rps_c1",
        "audit_append_rps_c64", "audit_commit_p99_ms_c64", "audit_inclusion_proof_p99_ms_1e6",
        "audit_consistency_proof_p99_ms_1e6", "audit_verify_s_per_1e6", "mixed_exchanges_rps",
        "mixed_errors", "cross_region_fetch_relay_ratio", "cross_region_fetch_ratio",
        "cross_region_create_request_p50_ms", "cross_region_create_request_p99_ms",
        "witness_quorum_p50_ms", "witness_quorum_p99_ms", "network_memory_mib",
    )
    stored = json.loads((tmp_path / "results.json").read_text())
    for key in named:
        assert isinstance(stored[key], int | float), key
    assert stored["unary_ratio_c16"] == 0.5
    assert stored["fetch_ratio"] == 0.8
    assert {"cores", "cpu_model", "python", "grpcio"} <= set(stored["machine"])
    assert stored["created"] == results["created"]


def test_documents_are_generated_around_the_written_analysis(tmp_path: Path):
    results = report.write_results(tmp_path / "results.json", _details(), quick=False)
    document = tmp_path / "BENCHMARKS.md"
    document.write_text("# Benchmarks\n\n## Analysis\n\nwritten by hand\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{report.SUMMARY[0]}\nold\n{report.SUMMARY[1]}\nrest\n")
    report.write_text(results, document, "bench.png", readme)  # the plot needs matplotlib
    text = document.read_text()
    assert "written by hand" in text
    assert "| CreateAccessRequest / baseline, 16 agencies | `unary_ratio_c16` | 0.5 | >= 0.4" \
           " | met |" in text
    assert "![fetch throughput and unary latency against concurrency](bench.png)" in text
    assert "| CPU-seconds per GB, both ends |" in text and "| 10 (9–11) |" in text
    assert "old" not in readme.read_text() and "rest" in readme.read_text()
