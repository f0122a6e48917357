"""The servers under test, each in its own process: the real gateway (`govshare gateway serve`,
mutual TLS, a real SQLite database and blob store in the network folder), the bare baseline and
the bare relay.

Separate processes keep the benchmark client's threads off the servers' GIL and let the
servers' resident memory be sampled on its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from agencies.client import AdminClient, AgencyClient
from agencies.sim.roster import AgencySpec
from gateway.network import NetworkLayout, lay_out

BENCH_LIMITS = {
    "requests_per_second": 1_000_000.0,
    "burst": 1_000_000,
    "max_streams_per_agency": 64,
}
"""The per-agency rate and stream limits are raised so they measure the gateway, not its
throttle; everything else is the shipped configuration (synchronous=FULL included)."""

START_TIMEOUT = 60.0


def agency_specs(count: int) -> list[AgencySpec]:
    """`count` benchmark agencies with distinct ids and a shared region."""
    return [AgencySpec(f"bench-{index:02d}", f"Benchmark agency {index}", "440000")
            for index in range(count)]


@dataclass
class Server:
    """A server process and the port it announced."""

    process: subprocess.Popen
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextmanager
def run_server(command: list[str], log: Path) -> Iterator[Server]:
    """Start `command`, wait for its "listening on ...:PORT" line, stop it with SIGTERM."""
    with log.open("w") as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            yield Server(process, _announced_port(process, log))
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _announced_port(process: subprocess.Popen, log: Path) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if "listening on" in line:
            return int(line.strip().rsplit(":", 1)[-1].rsplit(" ", 1)[-1])
        if not line and process.poll() is not None:
            break
    raise RuntimeError(f"server did not start: {' '.join(process.args)}\n{log.read_text()}")


def gateway_command(layout: NetworkLayout) -> list[str]:
    return serve_command(layout.config_path)


def serve_command(config_path: Path) -> list[str]:
    """`govshare gateway serve` of the gateway.toml at `config_path`."""
    return [sys.executable, "-c", "from gateway.cli import main; main()", "gateway", "serve",
            "--config", str(config_path), "--log-level", "WARNING"]


def baseline_command(layout: NetworkLayout, replies: Path) -> list[str]:
    return [sys.executable, "-m", "bench.baseline", "--config", str(layout.config_path),
            "--replies", str(replies)]


def relay_command(certs: Path, client_certs: Path, upstream: str) -> list[str]:
    """bench.relay with the server certificate in `certs`, presenting the client certificate
    in `client_certs` to the gateway at `upstream`."""
    return [sys.executable, "-m", "bench.relay", "--certs", str(certs),
            "--client-certs", str(client_certs), "--upstream", upstream]


def lay_out_network(root: Path, specs: list[AgencySpec],
                    overrides: dict[str, dict[str, Any]] | None = None) -> NetworkLayout:
    """The network folder with the benchmark limits, plus any experiment's config overrides
    (e.g. {"storage": {"synchronous": "NORMAL"}})."""
    return lay_out(root, specs, **bench_config({}, overrides))


def bench_config(sections: dict[str, dict[str, Any]],
                 overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Config values by section: BENCH_LIMITS, then `sections`, then an experiment's
    `overrides` (--set)."""
    merged: dict[str, dict[str, Any]] = {"limits": dict(BENCH_LIMITS)}
    for section, values in (*sections.items(), *(overrides or {}).items()):
        merged[section] = {**merged.get(section, {}), **values}
    return merged


def register(target: str, layout: NetworkLayout, specs: list[AgencySpec]) -> None:
    """Register every agency through the admin API, as an operator would."""
    with AdminClient(target, layout.certs("admin"), server_name="localhost") as admin:
        for spec in specs:
            pem = (layout.certs(spec.id) / "signing.pem").read_text()
            admin.register_agency(spec.id, spec.display_name, spec.region_code, pem)


def agency_client(target: str, layout: NetworkLayout, agency_id: str) -> AgencyClient:
    """A connected client: the mTLS handshake happens here, before any timing."""
    client = AgencyClient(target, layout.certs(agency_id), server_name="localhost",
                          timeout=120.0)
    wait_ready(client.channel)
    return client


def wait_ready(channel: grpc.Channel) -> None:
    """Connect now (TCP and the mutual-TLS handshake), so no timed call pays for it."""
    grpc.channel_ready_future(channel).result(timeout=30)
