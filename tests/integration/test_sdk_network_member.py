"""The SDK trusts its gateway as the network configuration names it: the member at the address the
client connects to. Real member gateways on 127.0.0.1 witnessing each other, real mutual TLS, a
real stand-in (another member's gateway answering at the first one's address)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agencies import errors
from agencies.client import AdminClient, AgencyClient, AuditorClient
from gateway import config as config_module
from gateway.server import create_server
from gateway.v1 import exchange_pb2, network_pb2
from govshare.transparency.cosignature import WitnessPolicy
from tests.support.exchange import ask, publish
from tests.support.federation import CONFIGURATION_FILE, Members, origin, start_members
from tests.support.network import AGENCIES

LOG, WITNESS, THIRD = "gd-gateway", "bj-gateway", "sh-gateway"


@pytest.fixture
def members(tmp_path: Path) -> Iterator[Members]:
    running = start_members(tmp_path / "net")
    yield running
    running.close()


def auditor(members: Members, target: str, **options) -> AuditorClient:
    """The auditor's client of the gateway at `target`, its audit state of its own."""
    client = AuditorClient(target, members.auditor_folder, server_name="localhost", **options)
    client.audit_state_file = members.federation.root / f"audit-state-{id(client)}.json"
    return client


def held(members: Members) -> network_pb2.SignedNetworkConfiguration:
    """The configuration the members hold, as a client saved it."""
    return network_pb2.SignedNetworkConfiguration.FromString(
        (members.federation.root / CONFIGURATION_FILE).read_bytes())


def witness_key(members: Members, gateway_id: str) -> str:
    return members.federation.member(gateway_id).witness_verifier_key


def stand_in(members: Members, gateway_id: str, at: str) -> None:
    """Stop `at` and `gateway_id`, then start `gateway_id`'s own gateway (its certificates, keys
    and database) listening on `at`'s address: a stand-in at that address."""
    members.stop(at)
    members.stop(gateway_id)
    config = config_module.load(members.config_path(gateway_id)).replace(
        server={"listen": members.target(at)})
    path = members.config_path(gateway_id).with_name("stand-in.toml")
    path.write_text(config_module.render(config))
    members.servers[gateway_id] = create_server(config_module.load(path))
    members.servers[gateway_id].start()


def test_the_sdk_applies_the_members_witness_policy_by_itself(members: Members) -> None:
    with auditor(members, members.target(LOG)) as client:
        assert client.audit_witness_policy is None  # nothing set by the application
        with pytest.raises(errors.WitnessQuorumNotReached) as none:
            client.checkpoint()  # no witness has cosigned yet
        assert none.value.metadata == {"cosigned": "", "quorum": "1"}

        assert members.push(LOG) == {WITNESS: "cosigned"}
        assert client.network_member().id == LOG
        assert client.checkpoint().origin == origin(LOG)


def test_a_checkpoint_below_the_quorum_is_refused_by_default(tmp_path: Path) -> None:
    members = start_members(tmp_path / "net", (LOG, WITNESS, THIRD), quorum=2)
    try:
        members.stop(THIRD)
        assert members.push(LOG)[WITNESS] == "cosigned"
        with auditor(members, members.target(LOG)) as client, \
                pytest.raises(errors.WitnessQuorumNotReached) as short:
            client.checkpoint()
        assert short.value.metadata == {"cosigned": witness_key(members, WITNESS),
                                        "quorum": "2"}

        # A policy the application sets still wins over the configuration's.
        with auditor(members, members.target(LOG)) as client:
            client.audit_witness_policy = WitnessPolicy([witness_key(members, WITNESS)], 1)
            assert client.checkpoint().origin == origin(LOG)
    finally:
        members.close()


def test_another_members_gateway_answering_for_the_first_is_refused(members: Members,
                                                                    tmp_path: Path) -> None:
    ca = members.federation.ca
    ca.issue_staff("admin", "admin", tmp_path / "admin")
    for spec in AGENCIES[:2]:
        ca.issue_agency(spec.id, tmp_path / spec.id)

    def agency(spec_index: int, target: str) -> AgencyClient:
        return AgencyClient(target, tmp_path / AGENCIES[spec_index].id, server_name="localhost")

    # The agencies are registered at bj-gateway and fetch from it at its own address.
    with AdminClient(members.target(WITNESS), tmp_path / "admin",
                     server_name="localhost") as admin:
        for spec in AGENCIES[:2]:
            admin.register_agency(spec.id, spec.display_name, "110000",
                                  (tmp_path / spec.id / "signing.pem").read_text())
    with agency(0, members.target(WITNESS)) as owner, \
            agency(1, members.target(WITNESS)) as requester:
        dataset = publish(owner, "beds")
        ask(requester, dataset)
        assert requester.fetch(dataset, tmp_path / "honest.csv").path.exists()
        assert requester.network_member().id == WITNESS

    # bj-gateway now answers at gd-gateway's address: its certificates are the national CA's,
    # its configuration is the genuine one, but it is not the member named there.
    assert members.push(WITNESS) == {LOG: "cosigned"}  # its log is witnessed, as a member's
    gd_address = members.target(LOG)
    stand_in(members, WITNESS, at=LOG)
    with agency(1, gd_address) as requester:
        with pytest.raises(errors.GatewayNotMember) as receipt:
            requester.fetch(dataset, tmp_path / "stand-in.csv")
        assert receipt.value.reason == "GATEWAY_NOT_THE_MEMBER"
        assert receipt.value.metadata == {"address": gd_address, "member": LOG}
        assert "receipt is signed by another certificate" in receipt.value.message
        assert not (tmp_path / "stand-in.csv").exists()
    with auditor(members, gd_address) as client, \
            pytest.raises(errors.GatewayNotMember) as log:
        client.checkpoint()
    assert f"its audit log is {origin(WITNESS)!r}" in log.value.message

    # A client built with the configuration held trusts only gd-gateway's TLS certificate
    # there: the stand-in fails the handshake (which any certificate of the CA passes).
    with auditor(members, gd_address) as client:
        assert [a.name for a in client.agencies()] == [f"agencies/{s.id}" for s in AGENCIES[:2]]
    with auditor(members, gd_address, network_configuration=held(members)) as client, \
            pytest.raises(errors.Unavailable):
        list(client.agencies())


def test_a_client_holding_the_configuration_connects_pinned_to_its_member(
        members: Members) -> None:
    assert members.push(LOG) == {WITNESS: "cosigned"}
    with auditor(members, members.target(LOG), network_configuration=held(members)) as client:
        assert client.checkpoint().origin == origin(LOG)
        assert client.network_member().id == LOG


def test_a_gateway_at_an_address_of_no_member_is_refused(members: Members) -> None:
    assert members.push(LOG) == {WITNESS: "cosigned"}
    elsewhere = members.target(LOG).replace("127.0.0.1", "localhost")
    with auditor(members, elsewhere) as client, \
            pytest.raises(errors.GatewayNotMember) as refused:
        client.checkpoint()
    assert refused.value.reason == "GATEWAY_NOT_A_MEMBER"
    assert f"{LOG} at {members.target(LOG)}" in refused.value.message


def test_a_standalone_gateway_is_verified_as_before(network) -> None:
    with AuditorClient(network.target, network.layout.certs("auditor"),
                       server_name="localhost") as client:
        assert client.network_member() is None
        assert client.checkpoint().size > 0


def test_a_client_at_another_address_of_its_member_is_refused_before_it_acts(
        members: Members, tmp_path: Path) -> None:
    """`localhost:PORT` where the configuration names 127.0.0.1:PORT: the SDK refuses before it
    sends the approval or the fetch, so the request stays pending and nothing is transferred."""
    ca = members.federation.ca
    ca.issue_staff("admin", "admin", tmp_path / "admin")
    with AdminClient(members.target(LOG), tmp_path / "admin", server_name="localhost") as admin:
        for spec in AGENCIES[:2]:
            ca.issue_agency(spec.id, tmp_path / spec.id)
            admin.register_agency(spec.id, spec.display_name, spec.region_code,
                                  (tmp_path / spec.id / "signing.pem").read_text())
    exact, elsewhere = members.target(LOG), members.target(LOG).replace("127.0.0.1", "localhost")

    def agency(index: int, target: str) -> AgencyClient:
        return AgencyClient(target, tmp_path / AGENCIES[index].id, server_name="localhost")

    with agency(0, exact) as owner, agency(1, exact) as requester:
        dataset = publish(owner, "beds", sharing_type="CONDITIONAL")
        request = ask(requester, dataset).access_request.name
    with agency(0, elsewhere) as owner, pytest.raises(errors.GatewayNotMember) as refused:
        owner.approve(request)
    assert refused.value.reason == "GATEWAY_NOT_A_MEMBER"
    with agency(0, exact) as owner:  # still pending: the approval was never sent
        assert owner.approve(request).access_request.state == \
            exchange_pb2.ACCESS_REQUEST_STATE_APPROVED
    with agency(1, elsewhere) as requester, pytest.raises(errors.GatewayNotMember):
        requester.fetch(dataset, tmp_path / "beds.csv")
    assert not list(tmp_path.glob("beds.csv*"))
    with agency(1, exact) as requester:
        assert requester.fetch(dataset, tmp_path / "beds.csv").path.exists()
