"""A second `govshare gateway serve` over the files of a running gateway (its database named
directly or through a symlink), or over its blob folder with another database,
refuses to start before touching anything, and the first keeps working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agencies.sim.roster import AgencySpec
from gateway import config as config_module
from gateway.storage.audit import connect_readonly
from tests.support.gateway_process import client_process, running_gateway

SPECS = [AgencySpec("gd-health", "Guangdong Provincial Health Commission", "440000"),
         AgencySpec("sz-market", "Shenzhen Market Regulation Bureau", "440300")]


def serve(config: Path, *flags: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "from gateway.cli import main; main()", "gateway", "serve",
               "--config", str(config), "--log-level", "WARNING", *flags]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60,
                          check=False)


def leaves(config: config_module.Config) -> list[tuple[str, str]]:
    conn = connect_readonly(config.path(config.storage.database))
    try:
        return conn.execute("SELECT action, outcome FROM audit_leaves").fetchall()
    finally:
        conn.close()


def _through_a_symlink(config_path: Path) -> Path:
    """A config naming the same database through a symlink, with a blob folder of its own (an
    absolute path: relative ones are resolved, symlinks and all, when the config loads)."""
    alias = config_path.with_name("alias.db")
    alias.symlink_to("govshare.db")
    text = config_path.read_text().replace('database = "govshare.db"', f'database = "{alias}"')
    second = config_path.with_name("second.toml")
    second.write_text(text.replace('blobs = "blobs"', 'blobs = "blobs-second"'))
    return second


def _own_checkpoint_file(config_path: Path) -> Path:
    """A config saving its log's checkpoint in a file of its own, so that a database given
    with --database shares only the blob folder (a database whose log does not extend the
    first one's saved checkpoint is refused for that first)."""
    text = config_path.read_text()
    assert 'checkpoint_file = "audit.checkpoint"' in text
    own = config_path.with_name("own-checkpoint.toml")
    own.write_text(text.replace('checkpoint_file = "audit.checkpoint"',
                                'checkpoint_file = "own.checkpoint"'))
    return own


def test_second_gateway_on_the_same_files_refuses_and_the_first_keeps_working(tmp_path):
    owner, reader = (spec.id for spec in SPECS)
    with running_gateway(tmp_path / "net", SPECS) as gateway:
        config = config_module.load(gateway.layout.config_path)
        with gateway.agency(owner) as client:
            client.publish("survey", bytes(3 * 1024 * 1024), title="Survey", media_type="CSV",
                           sharing_type="UNCONDITIONAL")
            dataset = client.dataset_name("survey")
        with gateway.agency(reader) as client:
            client.request_access(dataset, purpose="STATISTICS", purpose_text="survey",
                                  legal_basis="Statistics Law of the PRC, article 7")
        fetching = client_process("fetch", gateway.target, gateway.layout.certs(reader), dataset,
                                  tmp_path / "survey.csv")
        try:
            same = serve(gateway.layout.config_path, cwd=tmp_path)
            other_db = serve(gateway.layout.config_path, "--database", "other.db", cwd=tmp_path)
            through_link = serve(_through_a_symlink(gateway.layout.config_path), cwd=tmp_path)
        finally:
            fetching.kill()
            fetching.wait()
        for second in (same, other_db, through_link):
            assert second.returncode != 0
            assert "another gateway is using the" in second.stderr
            assert "Traceback" not in second.stderr and "listening" not in second.stdout
        assert "database" in same.stderr and "blob folder" in other_db.stderr
        database = config.path(config.storage.database)
        assert (f"another gateway is using the database {database} (named"
                f" {database.with_name('alias.db')} here)") in through_link.stderr
        assert ("exchange.fetch.break", "ALLOWED") not in leaves(config)
        with gateway.agency(owner) as client:  # the first gateway still writes its log
            assert client.publish("survey", b"a,b\n", title="Survey", media_type="CSV",
                                  sharing_type="UNCONDITIONAL").dataset_version.version == 2
        assert gateway.stop_gracefully(timeout=30) == 0

    blobs = sorted(config.path(config.storage.blobs).glob("agencies/*/sha256/*/*/*"))
    fresh = serve(_own_checkpoint_file(gateway.layout.config_path), "--database", "fresh.db",
                  cwd=tmp_path)
    assert fresh.returncode != 0 and "Traceback" not in fresh.stderr
    assert f"belongs to the database {config.path(config.storage.database)}" in fresh.stderr
    assert f"not {tmp_path / 'fresh.db'}" in fresh.stderr  # a flag's path is the shell's
    assert sorted(config.path(config.storage.blobs).glob("agencies/*/sha256/*/*/*")) == blobs
    assert len(blobs) == 2
