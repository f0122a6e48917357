"""A gateway listening on a Unix socket serves mutual TLS as on a port."""

from __future__ import annotations

from click.testing import CliRunner

from agencies.client import AdminClient, AgencyClient
from gateway import config as config_module
from gateway.cli.agency import agency
from gateway.network import lay_out
from gateway.server import create_server
from tests.support.network import AGENCIES


def test_a_gateway_on_a_unix_socket_serves_agencies(tmp_path):
    layout = lay_out(tmp_path / "net", AGENCIES)
    target = f"unix:{tmp_path / 'gateway.sock'}"
    text = layout.config_path.read_text()
    assert 'listen = "127.0.0.1:0"' in text
    layout.config_path.write_text(text.replace('listen = "127.0.0.1:0"', f'listen = "{target}"'))
    server = create_server(config_module.load(layout.config_path))
    server.start()
    try:
        with AdminClient(target, layout.certs("admin"), server_name="localhost") as admin:
            spec = AGENCIES[0]
            admin.register_agency(spec.id, spec.display_name, spec.region_code,
                                  (layout.certs(spec.id) / "signing.pem").read_text())
        with AgencyClient(target, layout.certs(spec.id), server_name="localhost") as client:
            assert client.agency(spec.id).name == f"agencies/{spec.id}"
        listed = CliRunner().invoke(agency, ["--certs", str(layout.certs(spec.id)), "--gateway",
                                             target, "--server-name", "localhost", "--json",
                                             "directory"])
        assert listed.exit_code == 0, listed.output
        assert f'"agencies/{spec.id}"' in listed.output
    finally:
        server.stop(grace=1)
