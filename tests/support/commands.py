"""govshare commands run as child processes, as an operator runs them on a network's files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any


def govshare(config_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `govshare *args` from the folder above the network's, with -P as the installed
    command runs: a folder named certs/ in the working directory would shadow the certs
    package."""
    command = [sys.executable, "-P", "-c", "from gateway.cli import main; main()", *args]
    return subprocess.run(command, cwd=config_path.parent.parent, capture_output=True,
                          text=True, timeout=60, check=False)


def serve(config_path: Path, *flags: str) -> subprocess.CompletedProcess:
    return govshare(config_path, "gateway", "serve", "--config", str(config_path),
                    "--log-level", "WARNING", *flags)


def refusal(served: subprocess.CompletedProcess) -> str:
    """The one line a refused start printed, without its "Error: refusing to serve: "."""
    assert served.returncode == 1, served.stderr
    assert "Traceback" not in served.stderr and "listening" not in served.stdout
    lines = [line for line in served.stderr.splitlines() if "refusing to serve" in line]
    assert len(lines) == 1 and served.stderr.splitlines()[-1] == lines[0], served.stderr
    prefix = "Error: refusing to serve: "
    assert lines[0].startswith(prefix)
    return lines[0].removeprefix(prefix)


def new_origin(config_path: Path) -> subprocess.CompletedProcess:
    return govshare(config_path, "gateway", "new-origin", "--config", str(config_path))


def audit(network: Any, *args: str) -> subprocess.CompletedProcess:
    config = network.layout.config_path
    return govshare(config, "audit", "--config", str(config), *args)


def verify(stopped: Any, *args: str) -> subprocess.CompletedProcess:
    """`govshare audit verify` on a stopped network's files."""
    return govshare(stopped.config_path, "audit", "--config", str(stopped.config_path), "verify",
                    *args)
