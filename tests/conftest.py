"""Shared fixtures: a real network on disk and a real gateway on 127.0.0.1:0."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from agencies.sim.roster import AgencySpec
from tests.support.domain import Domain
from tests.support.network import AGENCIES, Network, start_network
from tests.support.stopped import Stopped

# The machines are shared and noisy: a property test is judged on its examples, never on time.
settings.register_profile("govshare", deadline=None)
settings.load_profile("govshare")


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    net = start_network(tmp_path / "net")
    try:
        yield net
    finally:
        net.close()


@pytest.fixture
def domain(tmp_path: Path) -> Iterator[Domain]:
    """The gateway opened in-process, without a gRPC server, its agencies registered."""
    opened = Domain(tmp_path / "net")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def network_factory(tmp_path: Path) -> Iterator[Callable[..., Network]]:
    """Start networks with custom agencies or config sections: factory(name, agencies, **cfg)."""
    started: list[Network] = []

    def make(name: str = "net", agencies: list[AgencySpec] = AGENCIES, **sections: dict) -> Network:
        net = start_network(tmp_path / name, agencies, **sections)
        started.append(net)
        return net

    yield make
    for net in started:
        net.close()


@pytest.fixture
def stopped(tmp_path: Path) -> Stopped:
    """A network whose gateway ran once and stopped, for tests that start it again."""
    return Stopped(tmp_path / "net")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`govshare demo --single` run once per session (small large dataset): its folder and
    output."""
    from click.testing import CliRunner

    from gateway.cli import cli

    root = tmp_path_factory.mktemp("demo") / "net"
    result = CliRunner().invoke(cli, ["demo", "--single", "--dir", str(root), "--large-mib", "2"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return root, result.output
