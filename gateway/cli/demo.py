"""`govshare demo`: a whole network in one folder, every capability shown, in under a minute.

Creates the CA and every certificate under DIR, writes DIR/gateway.toml, starts the gateway,
registers and starts the simulated agencies (agencies.sim) and runs the scenario, printing each
step as it completes, then a summary read back from the gateway and the commands to explore
further (text read from the network shown as text, as `govshare agency` shows it).
`--keep-running` leaves the network up until Ctrl-C; `govshare gateway serve --config
DIR/gateway.toml` restarts it later from the same state.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from agencies import errors
from gateway.cli.output import add_row, console, folding_table, say
from gateway.text import shown


@click.command("demo")
@click.option("--dir", "root", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the network (must not hold one yet); default: a new"
              " ./govshare-demo-<time> folder.")
@click.option("--agencies", "agency_count", type=click.IntRange(6, 7), default=7,
              show_default=True, help="How many simulated agencies to run (6 leaves out"
              " gd-miit and its automatic grant; every step still runs).")
@click.option("--large-mib", type=click.FloatRange(min=2), default=64.0, show_default=True,
              help="Size of the large streamed dataset, MiB (at least 2, so that the revoked"
              " fetch is still running when the revocation lands).")
@click.option("--seed", type=int, default=2025, show_default=True,
              help="Seed of the synthetic data (same seed, same bytes).")
@click.option("--keep-running", is_flag=True,
              help="Leave the network up (agencies publishing on a schedule) until Ctrl-C.")
@click.option("--publish-every", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="With --keep-running: seconds between each agency's new versions.")
def demo(root: Path | None, agency_count: int, large_mib: float, seed: int,
         keep_running: bool, publish_every: float) -> None:
    """Run the demo network: publish, grant, approve, deny, refuse, revoke, verify."""
    from agencies.sim.scenario import MiB, StepFailed
    from gateway.demo import DemoNetwork

    root = (root or Path(f"govshare-demo-{datetime.now():%Y%m%d-%H%M%S}")).absolute()
    if root.exists() and any(root.iterdir()):
        raise click.UsageError(f"{root} is not empty: choose a new --dir, or restart the"
                               f" network in it with: govshare gateway serve --config"
                               f" {root / 'gateway.toml'}")
    network = DemoNetwork.create(root, agency_count, int(large_mib * MiB), seed)
    started = time.monotonic()
    try:
        if not all(_run(step, StepFailed) for step in network.steps()):
            sys.exit(1)
        summary = network.scenario.summary()
        console.print(_summary_table(summary, time.monotonic() - started))
        _explore(network)
        if keep_running:
            _keep_running(network, publish_every)
    finally:
        network.close()


def _run(step: Any, failed: type[Exception]) -> bool:
    """Run one step under a spinner; print ✓ with what it showed, or ✗ with why (both may quote
    the gateway)."""
    started = time.monotonic()
    try:
        with console.status(step.title):
            outcome = step.run()
    except (failed, errors.GovshareError, RuntimeError, TimeoutError, OSError) as exc:
        console.print(Text.assemble(("✗", "red"), f" {step.title}\n    ",
                                    (shown(str(exc)), "red")), soft_wrap=True)
        return False
    console.print(Text.assemble(("✓", "green"), f" {step.title} ",
                                (f"({time.monotonic() - started:.1f} s)", "dim")))
    say(f"    {outcome}")
    return True


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


def _keep_running(network: Any, publish_every: float) -> None:
    """Leave the network up, agencies publishing on a schedule, until SIGINT or SIGTERM."""
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    network.scenario.keep_publishing(publish_every)
    console.print(f"\nThe network is up on 127.0.0.1:{network.port}; Ctrl-C stops it.")
    stopping.wait()
