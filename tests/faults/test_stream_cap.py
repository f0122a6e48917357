"""Streams hold a server thread each for their whole life: a gateway-wide cap keeps threads for
unary calls however many agencies hold idle watches."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from agencies.client import AdminClient, AgencyClient
from agencies.errors import from_rpc_error
from agencies.sim.roster import AgencySpec
from gateway import config as config_module
from gateway.network import NetworkLayout, lay_out
from gateway.server import GatewayServer, create_server
from gateway.v1 import exchange_pb2

SPECS = [AgencySpec(f"region-{n}", f"Region {n} Statistics Bureau", "440000") for n in range(3)]


@pytest.fixture
def small_pool(tmp_path) -> Iterator[tuple[GatewayServer, NetworkLayout]]:
    """A gateway with 6 server threads (so at most 6 * 3 // 4 = 4 streams), agencies registered."""
    layout = lay_out(tmp_path / "net", SPECS)
    config = config_module.load(layout.config_path).replace(server={"max_workers": 6})
    layout.config_path.write_text(config_module.render(config))
    server = create_server(config_module.load(layout.config_path))
    server.start()
    try:
        with AdminClient(f"127.0.0.1:{server.port}", layout.certs("admin"),
                         server_name="localhost") as admin:
            for spec in SPECS:
                admin.register_agency(spec.id, spec.display_name, spec.region_code,
                                      (layout.certs(spec.id) / "signing.pem").read_text())
        yield server, layout
    finally:
        server.stop(grace=1)


def leaf_count(server: GatewayServer) -> int:
    reader = server.gateway.db.reader()
    return reader.execute("SELECT COUNT(*) FROM audit_leaves").fetchone()[0]


def test_streams_beyond_the_gateway_cap_are_refused_and_unary_calls_still_run(small_pool):
    net, layout = small_pool
    clients = [AgencyClient(f"127.0.0.1:{net.port}", layout.certs(spec.id),
                            server_name="localhost") for spec in SPECS]
    for client in clients:
        client.publish("beds", b"region,beds\n1,2\n", title="Beds", media_type="CSV")
    held = []
    for n in range(4):  # two agencies, each below its own cap of 8
        client = clients[n % 2]
        stream = client.exchange.WatchEvents(
            exchange_pb2.WatchEventsRequest(parent=client.name, cursor="0"), timeout=30)
        next(stream)  # its first event: the stream holds its slot
        held.append(stream)
    try:
        before = leaf_count(net)
        refused = clients[2].exchange.WatchEvents(
            exchange_pb2.WatchEventsRequest(parent=clients[2].name, cursor="0"), timeout=10)
        with pytest.raises(grpc.RpcError) as caught:
            next(refused)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert from_rpc_error(caught.value).reason == "GATEWAY_STREAMS_EXHAUSTED"
        assert "retry later" in caught.value.details()
        assert leaf_count(net) == before + 1
        last = net.gateway.db.reader().execute(
            "SELECT action, outcome, record FROM audit_leaves ORDER BY leaf_index DESC LIMIT 1"
        ).fetchone()
        assert last[:2] == ("exchange.watch", "REFUSED")
        assert b"GATEWAY_STREAMS_EXHAUSTED" in last[2]
        for _ in range(10):  # unary calls find a thread
            assert len(list(clients[2].agencies())) == 3
    finally:
        for stream in held:
            stream.cancel()
        for client in clients:
            client.close()
