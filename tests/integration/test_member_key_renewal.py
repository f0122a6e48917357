"""A member gateway's signing certificate renewed: version 2 of the configuration names the new
one and lists the one before with its retire time, so that the grants (and receipts) the
member signed before still verify, at the requester's gateway and in the SDK, and a
revocation of such a grant still reaches its grantee. The review's reproduction
(test_xr_key_renewal): every round refused such grants MEMBER_ANSWER_INVALID."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agencies.errors import VerificationError
from certs import SIGNING_CERT, SIGNING_KEY
from gateway.v1 import exchange_pb2
from govshare import envelopes, errors, times
from govshare.signing import SigningKey, VerifyKey
from tests.support.exchange import ask, publish
from tests.support.federation import two_regions

GD, BJ = "gd-gateway", "bj-gateway"


@pytest.fixture
def renewed(tmp_path):
    """gd-health holds a grant bj signed; then bj's signing certificate is renewed in version
    2 of the configuration, which gd and gd-health's SDK take (bj keeps its running key)."""
    regions = two_regions(tmp_path / "net")
    bj, gd = regions.clients["bj-stats"], regions.clients["gd-health"]
    publish(bj, "open", sharing_type="UNCONDITIONAL")
    regions.members.pull()
    regions.grant = ask(gd, "agencies/bj-stats/datasets/open").grant
    federation = regions.members.federation
    federation.ca.issue_gateway(tmp_path / "renewed", BJ)
    members = regions.members.members()
    member = next(m for m in members if m.id == BJ)
    old = member.signing_certificate_pem
    regions.retired = times.utcnow()
    member.previous_signing_certificates.add(
        certificate_pem=old, key_id=VerifyKey.from_certificate(old).key_id,
        retire_time=times.to_timestamp(regions.retired))
    member.signing_certificate_pem = (tmp_path / "renewed" / SIGNING_CERT).read_text()
    regions.members.configuration_file.write_bytes(
        federation.sign(federation.unsigned(members, 1), 2).SerializeToString())
    assert regions.members.gateway(GD).network.refresh()
    assert gd.network_configuration(refresh=True).version == 2
    yield regions
    regions.close()


def test_xr_key_renewal_a_grant_signed_before_still_verifies_and_its_revocation_arrives(
        renewed):
    gd, bj = renewed.clients["gd-health"], renewed.clients["bj-stats"]
    grant = renewed.grant
    assert gd.verify_grant(next(g for g in gd.grants() if g.name == grant.name))
    bj.revoke(grant.name, "under review")
    assert renewed.members.gateway(GD).carrier.poll()[BJ] == "1 learned"
    assert next(g for g in gd.grants() if g.name == grant.name).state == \
        exchange_pb2.GRANT_STATE_REVOKED


def test_xr_key_renewal_the_retired_key_signs_nothing_new(renewed):
    """A grant signed with bj's retired key but saying it was made after the retirement (a
    key stolen since, say) is refused by the SDK and by the requester's gateway."""
    old_key = SigningKey.load(renewed.members.federation.folder(BJ) / SIGNING_KEY)
    later = renewed.retired + timedelta(seconds=1)
    forged = exchange_pb2.Grant()
    forged.CopyFrom(next(g for g in renewed.clients["gd-health"].grants()
                         if g.name == renewed.grant.name))
    statement = exchange_pb2.GrantStatement.FromString(forged.signed_statement.payload)
    statement.create_time.CopyFrom(times.to_timestamp(later))
    forged.signed_statement.CopyFrom(envelopes.seal(old_key, envelopes.GRANT, statement))
    with pytest.raises(VerificationError, match="retired at"):
        renewed.clients["gd-health"].verify_grant(forged)
    forwarding = renewed.members.gateway(GD).forwarding
    request = renewed.clients["gd-health"].access_request(forged.access_request)
    with pytest.raises(errors.DataLoss, match="retired at"):
        forwarding.learned(BJ, request, forged)
