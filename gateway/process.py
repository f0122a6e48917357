"""A gateway run as a child process, as an operator runs it: `govshare gateway serve --config
FILE`, its output (the listening line and the log) appended to a file, started and then waited
for until its health check answers SERVING, and stopped with SIGTERM (killed when it does not
stop in time). The demo runs each gateway of its network so, and the tests that kill one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agencies.client import BaseClient

LOG_FILE = "gateway.log"
"""Where a gateway run so writes, in its folder."""
START_TIMEOUT = 60.0
"""How long a gateway may take to answer SERVING (it verifies its whole audit log first)."""
STOP_TIMEOUT = 15.0
"""How long a gateway may take to stop once asked: [server] grace_seconds (10 by default) for
the calls running, and the rest of its shutdown."""
_POLL = 0.5
"""How long one health check waits, between checks that the process still runs."""


_RECONNECT = (("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 500))
"""A gateway starting is tried again often: gRPC's default waits grow past a second at once."""


def govshare_command(*args: str) -> list[str]:
    """The command line of `govshare *args` run by this Python. `-P`: a certs/ folder in the
    current one (a network's) must not stand in for the certs package."""
    return [sys.executable, "-P", "-c", "from gateway.cli import main; main()", *args]


class GatewayNotStarted(RuntimeError):
    """The gateway exited, or did not answer SERVING in time; the message ends with its log."""


class GatewayProcess:
    """`govshare gateway serve --config config_path` listening at `target`, its health checked
    with the client certificates in `health_certs`, its output appended to `log`."""

    def __init__(self, config_path: Path, target: str, health_certs: Path, log: Path, *,
                 log_level: str = "INFO"):
        self.config_path = config_path
        self.target = target
        self.health_certs = health_certs
        self.log = log
        self.log_level = log_level
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.process is not None, "the gateway is not running"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """`spawn`, then `wait_serving`."""
        self.spawn()
        self.wait_serving(timeout)

    def spawn(self) -> None:
        """Start the process, without waiting for it to serve: several gateways spawned first
        and waited for after start together."""
        command = govshare_command("gateway", "serve", "--config", str(self.config_path),
                                   "--log-level", self.log_level)
        with self.log.open("a") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.starts += 1

    def wait_serving(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the gateway answers SERVING; GatewayNotStarted (the gateway stopped) when
        it exits first or takes longer than `timeout` seconds."""
        deadline = time.monotonic() + timeout
        try:
            with BaseClient(self.target, self.health_certs, server_name="localhost",
                            channel_options=_RECONNECT) as client:
                health = health_pb2_grpc.HealthStub(client.channel)
                while not self._serving(health):
                    if time.monotonic() > deadline:
                        raise self._not_started("did not answer SERVING in time")
        except GatewayNotStarted:
            self.stop()
            raise

    def _serving(self, health: health_pb2_grpc.HealthStub) -> bool:
        """One health check, waiting at most _POLL seconds for the gateway to listen."""
        if not self.running:
            raise self._not_started("exited")
        try:
            answer = health.Check(health_pb2.HealthCheckRequest(), timeout=_POLL,
                                  wait_for_ready=True)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise self._not_started(f"answered {exc.code().name}") from None
            return False
        return answer.status == health_pb2.HealthCheckResponse.SERVING

    def _not_started(self, what: str) -> GatewayNotStarted:
        tail = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
        return GatewayNotStarted(f"the gateway of {self.config_path} {what}; its log"
                                 f" ({self.log}) ends:\n{tail}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """`terminate`, then `wait_stopped`."""
        self.terminate()
        return self.wait_stopped(timeout)

    def terminate(self) -> None:
        """Ask the gateway to stop (SIGTERM): running calls finish, the log is closed. Several
        gateways asked first and waited for after stop together."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Wait until the gateway stopped, killing it after `timeout` seconds: its exit code,
        None when it had to be killed or was not started."""
        process = self.process
        if process is None:
            return None
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return None
        finally:
            self.process = None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a power cut or an OOM kill."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait()
