"""`govshare demo`: a national network in one command, every capability shown, in under a minute.

By default it lays out a national network under DIR (the national CA, the network authority,
four member gateways each in a folder of its own with its agencies' certificates, the signed
network configuration), starts each gateway as a `govshare gateway serve` process, and runs the
scenario over it (agencies.sim.national). With `--single` it lays out one gateway serving every
agency instead, runs it in this process, and runs the single gateway's scenario. Either prints
each step as it completes, then a summary read back from the gateways and the commands to
explore further (text read from the network shown as text, as `govshare agency` shows it).
`--keep-running` leaves the network up until Ctrl-C. Every gateway process it started is
stopped when it ends, fails, or is interrupted (Ctrl-C, SIGTERM, SIGHUP).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from agencies import errors
from gateway.cli.output import add_row, console, folding_table, say
from gateway.text import shown

DONE, SKIPPED, FAILED = "done", "skipped", "failed"
NETWORK_LARGE_MIB = 16.0
"""The large dataset's default size on the national network: enough for a fetch to be cut
mid-stream, small enough to leave the two cores to four gateways."""
NETWORK_MIN_LARGE_MIB = 12.0
"""The smallest large dataset the national network takes: the revoked fetch is relayed, and the
owner's gateway runs ahead of its slow reader by up to a peer call's window (4 MiB,
gateway.peers.STREAM_WINDOW_BYTES) and a 1 MiB chunk at each hop, some 7 MiB in all; a smaller
one could be sent whole before the revocation lands."""
SINGLE_LARGE_MIB = 64.0


@click.command("demo")
@click.option("--single", is_flag=True,
              help="One gateway serving every agency, in this process, instead of a national"
              " network of gateway processes.")
@click.option("--dir", "root", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the network (must not hold one yet); default: a new"
              " ./govshare-demo-<time> folder.")
@click.option("--agencies", "agency_count", type=click.IntRange(6, 7), default=7,
              show_default=True, help="How many simulated agencies to run (6 leaves out"
              " gd-miit and its automatic grant; every step still runs).")
@click.option("--large-mib", type=click.FloatRange(min=2),
              help="Size of the large streamed dataset, MiB (so that the revoked fetch is still"
              f" running when the revocation lands, at least {NETWORK_MIN_LARGE_MIB:.0f}, or 2"
              f" with --single); default: {NETWORK_LARGE_MIB:.0f}, {SINGLE_LARGE_MIB:.0f} with"
              " --single.")
@click.option("--seed", type=int, default=2025, show_default=True,
              help="Seed of the synthetic data (same seed, same bytes).")
@click.option("--keep-running", is_flag=True,
              help="Leave the network up (agencies publishing on a schedule) until Ctrl-C.")
@click.option("--publish-every", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="With --keep-running: seconds between each agency's new versions.")
def demo(single: bool, root: Path | None, agency_count: int, large_mib: float | None, seed: int,
         keep_running: bool, publish_every: float) -> None:
    """Run the demo: a national network searched, witnessed and caught rolling back; with
    --single, one gateway: publish, grant, approve, deny, refuse, revoke, verify."""
    from agencies.sim.scenario import MiB, StepFailed, StepSkipped
    from gateway.demo import NationalDemo, SingleGatewayDemo

    root = (root or Path(f"govshare-demo-{datetime.now():%Y%m%d-%H%M%S}")).absolute()
    if root.exists() and any(root.iterdir()):
        raise click.UsageError(f"{root} is not empty: choose a new --dir, or restart its"
                               " gateways with: govshare gateway serve --config"
                               f" {root}/[GATEWAY/]gateway.toml")
    if not single and large_mib is not None and large_mib < NETWORK_MIN_LARGE_MIB:
        raise click.BadParameter(
            f"the national network needs at least {NETWORK_MIN_LARGE_MIB:.0f} MiB, so that the"
            " revoked fetch, relayed across regions, is still running when the revocation"
            " lands (2 will do with --single)", param_hint="--large-mib")
    large_bytes = int((large_mib or (SINGLE_LARGE_MIB if single else NETWORK_LARGE_MIB)) * MiB)
    kind = SingleGatewayDemo if single else NationalDemo
    network = kind.create(root, agency_count, large_bytes, seed)
    started = time.monotonic()
    with _interrupted_by_signals():
        try:
            results = []
            for step in network.steps():
                results.append((step.title, _run(step, StepFailed, StepSkipped)))
                if results[-1][1] == FAILED:
                    sys.exit(1)
            seconds = time.monotonic() - started
            if single:
                console.print(_summary_table(network.scenario.summary(), seconds))
                _explore(network)
            else:
                console.print(_members_table(network.scenario.figures(), seconds))
                console.print(_results_table(results))
                _explore_network(network)
            if keep_running:
                _keep_running(network, publish_every)
        finally:
            network.close()


@contextmanager
def _interrupted_by_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP (a closed terminal) stop the demo as Ctrl-C does, through its
    `finally`, so that no gateway process it started outlives it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, interrupt)
                for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(step: Any, failed: type[Exception], skipped: type[Exception]) -> str:
    """Run one step under a spinner; print ✓ with what it showed, – with why it was skipped, or
    ✗ with why it failed (each may quote a gateway). DONE, SKIPPED or FAILED."""
    started = time.monotonic()
    try:
        with console.status(step.title):
            outcome = step.run()
    except skipped as exc:
        console.print(Text.assemble(("–", "yellow"), f" {step.title} ", ("(skipped)", "dim"),
                                    "\n    ", shown(str(exc))), soft_wrap=True)
        return SKIPPED
    except (failed, errors.GovshareError, RuntimeError, TimeoutError, OSError) as exc:
        console.print(Text.assemble(("✗", "red"), f" {step.title}\n    ",
                                    (shown(str(exc)), "red")), soft_wrap=True)
        return FAILED
    console.print(Text.assemble(("✓", "green"), f" {step.title} ",
                                (f"({time.monotonic() - started:.1f} s)", "dim")))
    say(f"    {outcome}")
    return DONE


def _summary_table(summary: Any, seconds: float) -> Table:
    table = folding_table("figure", "value", title=f"govshare demo: done in {seconds:.1f} s")
    rows = (
        ("agencies", f"{summary.agencies} in {summary.provinces} provinces"),
        ("datasets", f"{summary.datasets} ({summary.versions} versions)"),
        ("grants", str(summary.grants)),
        ("exchanges completed", str(summary.exchanges)),
        ("requests denied", str(summary.denials)),
        ("refusals (audited)", str(summary.refusals)),
        ("audit log size", str(summary.audit_size)),
        ("audit root", summary.audit_root),
    )
    for name, value in rows:
        add_row(table, name, value)
    return table


def _members_table(figures: list[Any], seconds: float) -> Table:
    table = folding_table("gateway", "agencies", "checkpoint", "cosigned by",
                          title=f"govshare demo: a national network, done in {seconds:.1f} s")
    for figure in figures:
        checkpoint = str(figure.checkpoint)
        if figure.witnessed != figure.checkpoint:
            checkpoint += f" (last witnessed: {figure.witnessed or 'none'})"
        add_row(table, figure.member, ", ".join(figure.agencies), checkpoint,
                ", ".join(figure.cosigners) or "none")
    return table


def _results_table(results: list[tuple[str, str]]) -> Table:
    table = folding_table("step", "result", title="the scenario")
    for title, result in results:
        add_row(table, title, result)
    return table


def _explore(network: Any) -> None:
    root, port = network.root, network.port
    config = root / "gateway.toml"
    certs = root / "certs"
    console.print("\nExplore further:", style="bold")
    for line in (
        f"govshare gateway serve --config {config}",
        f"govshare audit list --config {config}",
        f"govshare audit verify --config {config}",
        f"govshare agency --certs {certs / 'zj-stats'} --gateway 127.0.0.1:{port}"
        " --server-name localhost directory",
        f"govshare admin --certs {certs / 'admin'} --gateway 127.0.0.1:{port}"
        " --server-name localhost agencies",
        f"buf curl --protocol grpc --cacert {certs / 'ca' / 'ca.pem'}"
        f" --cert {certs / 'gd-health' / 'tls.pem'} --key {certs / 'gd-health' / 'tls.key'}"
        f" https://localhost:{port}/gateway.v1.DirectoryService/ListAgencies",
    ):
        say(f"  {line}")


def _explore_network(network: Any) -> None:
    from gateway.demo import BEFORE_RESTORE, ROLLED_BACK

    layout = network.layout
    homes = network.scenario.homes
    beijing = homes[0]
    configs = {home.member: layout.gateway(home.member).config_path for home in homes}
    console.print("\nExplore further (`govshare` is in .venv/bin: `. .venv/bin/activate`"
                  " first):", style="bold")
    say("  The gateways have stopped; these read their files:")
    for line in (
        f"govshare network show {layout.configuration_path}",
        f"govshare network status --config {configs[beijing.member]}",
        f"govshare audit list --config {configs[beijing.member]} --action witness.refused",
        f"govshare audit verify --config {configs[beijing.member]}",
        f"govshare audit verify --config {configs[ROLLED_BACK]} --against"
        f" {configs[ROLLED_BACK].parent / BEFORE_RESTORE}",
    ):
        say(f"    {line}")
    say("  Start the gateways first (each in a terminal of its own), then call one as an"
        " agency:")
    for line in (
        *(f"govshare gateway serve --config {config}" for config in configs.values()),
        f"govshare agency --certs {beijing.certs / beijing.agencies[0].id} --gateway"
        f" {beijing.target} --server-name localhost datasets",
    ):
        say(f"    {line}")


def _keep_running(network: Any, publish_every: float) -> None:
    """Leave the network up, agencies publishing on a schedule, until SIGINT or SIGTERM."""
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    network.scenario.keep_publishing(publish_every)
    targets = ", ".join(home.target for home in network.scenario.homes)
    console.print(f"\nThe network is up on {targets}; Ctrl-C stops it.")
    stopping.wait()
