"""The README's "Start a gateway and call it" commands work as printed: the CLI lays out a CA
and certificates, the gateway serves, and buf curl registers an agency and lists the directory
through server reflection."""

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from gateway.network import free_port

REPO = Path(__file__).resolve().parents[2]
BUF = REPO / "node_modules" / ".bin" / "buf"


def _shell_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Start a gateway and call it"):text.index("## Architecture")]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def test_quickstart_commands(tmp_path):
    assert BUF.exists() or shutil.which("buf"), "buf is installed by `make test` (npm)"
    setup, calls = _shell_blocks()
    port = str(free_port())
    setup_lines = [line for line in setup.splitlines()
                   if not line.startswith(("make ", ". .venv", "govshare gateway serve"))]
    env = {**os.environ, "PATH": os.pathsep.join(
        [str(Path(sys.executable).parent), str(BUF.parent), os.environ["PATH"]])}
    subprocess.run(["bash", "-euc", "\n".join(setup_lines).replace("8443", port)], cwd=tmp_path,
                   env=env, check=True, capture_output=True, timeout=60)
    server = subprocess.Popen(
        [sys.executable, "-c", "from gateway.cli import main; main()", "gateway", "serve",
         "--config", "net/gateway.toml"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True)
    try:
        assert "listening on 127.0.0.1:" + port in server.stdout.readline()
        done = subprocess.run(["bash", "-euc", calls.replace("8443", port)], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert '"name": "agencies/gd-health"' in done.stdout
        assert '"regionCode": "440000"' in done.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
