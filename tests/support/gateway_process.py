"""The gateway as a child process (`govshare gateway serve`), so a test can SIGKILL or SIGTERM it
and read its memory and open files; and client roles run as child processes that a test kills
mid-call:

    python tests/support/gateway_process.py upload TARGET CERTS DATASET SIZE
    python tests/support/gateway_process.py fetch TARGET CERTS DATASET TO
    python tests/support/gateway_process.py watch TARGET CERTS

Each role prints one line once it is in the middle of its call, then hangs until killed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agencies import errors
from agencies.client import AdminClient, AgencyClient
from agencies.sim.roster import AgencySpec
from gateway import process
from gateway.network import NetworkLayout, free_port, lay_out

MIDWAY = "MIDWAY"
"""The line a client role prints once it is in the middle of its call."""


class GatewayProcess(process.GatewayProcess):
    """`govshare gateway serve` for a laid-out network, started and stopped at will, logging
    warnings and errors to gateway.log in its folder."""

    def __init__(self, layout: NetworkLayout, port: int):
        super().__init__(layout.config_path, f"127.0.0.1:{port}", layout.certs("admin"),
                         layout.root / process.LOG_FILE, log_level="WARNING")
        self.layout = layout
        self.port = port

    def stop_gracefully(self, timeout: float) -> int:
        """SIGTERM and wait at most `timeout` seconds: the exit code; fails the test with what
        each of the gateway's threads was doing when it has not stopped by then."""
        assert self.process is not None
        self.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"the gateway did not stop within {timeout} s; its threads:\n"
                                 f"{_thread_stacks(self.process.pid)}") from exc
        finally:
            self.wait_stopped(0)  # killed if it is still running

    def rss_bytes(self) -> int:
        """The gateway's resident memory, from /proc (Linux)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS in /proc status")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def agency(self, agency_id: str, **options: Any) -> AgencyClient:
        return AgencyClient(self.target, self.layout.certs(agency_id), server_name="localhost",
                            **options)

    def register(self, specs: list[AgencySpec]) -> None:
        with AdminClient(self.target, self.layout.certs("admin"),
                         server_name="localhost") as admin:
            for spec in specs:
                pem = (self.layout.certs(spec.id) / "signing.pem").read_text()
                admin.register_agency(spec.id, spec.display_name, spec.region_code, pem)


@contextmanager
def running_gateway(root: Path, specs: list[AgencySpec], **sections: dict) -> \
        Iterator[GatewayProcess]:
    """A new network under `root` with its gateway running in a child process and `specs`
    registered; the gateway is killed on exit if a test left it running."""
    port = free_port()
    layout = lay_out(root, specs, listen=f"127.0.0.1:{port}", **sections)
    gateway = GatewayProcess(layout, port)
    try:
        gateway.start()
        gateway.register(specs)
        yield gateway
    finally:
        gateway.kill()


# -- client roles run as child processes ---------------------------------------------------------


def client_process(role: str, *args: object) -> subprocess.Popen:
    """Start a client role (see the module docstring) and wait until it is midway."""
    child = subprocess.Popen([sys.executable, __file__, role, *map(str, args)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    if line.strip() != MIDWAY:
        child.kill()
        raise RuntimeError(f"the {role} client failed: {line}{child.stderr.read()}")
    return child


def _hang() -> None:
    print(MIDWAY, flush=True)
    threading.Event().wait()


def _upload(target: str, certs: str, dataset: str, size: str) -> None:
    """Send a signed manifest for `size` zero bytes and one chunk of them, then hang."""
    from google.protobuf import timestamp_pb2

    from gateway.v1 import catalog_pb2
    from govshare import envelopes, signing
    from govshare.enums import enum_value

    content_size = int(size)
    client = AgencyClient(target, certs, server_name="localhost")
    created = timestamp_pb2.Timestamp()
    created.GetCurrentTime()
    manifest = catalog_pb2.Manifest(
        dataset=dataset, version=1, title="An upload that never ends",
        media_type=enum_value(catalog_pb2.MediaType, "CSV"),
        classification=enum_value(catalog_pb2.Classification, "INTERNAL"),
        sharing_type=enum_value(catalog_pb2.SharingType, "UNCONDITIONAL"),
        update_cycle=enum_value(catalog_pb2.UpdateCycle, "IRREGULAR"),
        content_sha256=signing.sha256(bytes(content_size)), content_size=content_size,
        create_time=created)
    envelope = envelopes.seal(client.signing_key, envelopes.MANIFEST, manifest)

    def chunks() -> Iterator[bytes]:
        yield bytes(64 * 1024)
        _hang()

    client.upload(envelope, chunks(), content_size)


def _fetch(target: str, certs: str, dataset: str, to: str) -> None:
    """Fetch `dataset` and stop reading after the first chunk, hanging."""
    client = AgencyClient(target, certs, server_name="localhost")
    client.fetch(dataset, to=to, progress=lambda done, total: _hang())


def _watch(target: str, certs: str) -> None:
    """Watch the agency's events from the first and hang once one arrived (the stream is open)."""
    client = AgencyClient(target, certs, server_name="localhost")
    for _event in client.watch(cursor="0"):
        _hang()


if __name__ == "__main__":
    roles = {"upload": _upload, "fetch": _fetch, "watch": _watch}
    try:
        roles[sys.argv[1]](*sys.argv[2:])
    except errors.GovshareError as exc:
        print(f"FAILED {exc}", flush=True)
        sys.exit(1)


def _thread_stacks(pid: int) -> str:
    """What every thread of a live process is doing (py-spy, from the bench extra), so that a
    gateway that hangs on its way out says where."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        return "(py-spy is not installed)"
    dumped = subprocess.run([str(spy), "dump", "--pid", str(pid)], capture_output=True,
                            text=True, timeout=30, check=False)
    return dumped.stdout or dumped.stderr
