"""Resource names (govshare.names): parse and format round trips, navigation, and every
malformed form refused naming the field."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govshare import errors
from govshare.names import (
    ID_PATTERN,
    MAX_LEAF_INDEX,
    MAX_VERSION,
    AccessRequestName,
    AgencyName,
    AuditEventName,
    DatasetName,
    ExchangeName,
    GrantName,
    VersionName,
)

HEX = "0123456789abcdef" * 2

WELL_FORMED = [
    (AgencyName, "agencies/gd-health"),
    (DatasetName, "agencies/gd-health/datasets/hospital-beds"),
    (VersionName, "agencies/gd-health/datasets/hospital-beds/versions/1"),
    (VersionName, f"agencies/gd-health/datasets/hospital-beds/versions/{MAX_VERSION}"),
    (AccessRequestName, f"agencies/sz-market/accessRequests/{HEX}"),
    (GrantName, f"agencies/sz-market/grants/{HEX}"),
    (ExchangeName, f"agencies/sz-market/exchanges/{HEX}"),
    (AuditEventName, "auditEvents/0"),
    (AuditEventName, f"auditEvents/{MAX_LEAF_INDEX}"),
]


@pytest.mark.parametrize(("kind", "text"), WELL_FORMED)
def test_parse_and_format_round_trip(kind, text):
    name = kind.parse(text)
    assert str(name) == text and kind.match(text) == name


MALFORMED = [
    (AgencyName, ["", "agencies/", "agencies/GD", "agencies/gd", "agencies/-", "agencies/gd-",
                  "agencies/1gd", "agencies/gd-health/", "agencies/gd-health\n", "gd-health",
                  "agencies/gd health", f"agencies/a{'b' * 64}", "agencies/gd-health/datasets/x"]),
    (DatasetName, ["agencies/gd-health", "agencies/gd-health/datasets/",
                   "agencies/gd-health/datasets/Beds", "agencies//datasets/beds",
                   "agencies/gd-health/datasets/a/b", "agencies/gd-health/datasets/beds\n",
                   "agencies/gd-health/datasets/../x", "agencies/x/datasets/beds",
                   "agencies/gd-health/datasets/beds/versions/1"]),
    (VersionName, ["agencies/gd-health/datasets/beds",
                   "agencies/gd-health/datasets/beds/versions/0",
                   "agencies/gd-health/datasets/beds/versions/01",
                   "agencies/gd-health/datasets/beds/versions/-1",
                   "agencies/gd-health/datasets/beds/versions/+1",
                   f"agencies/gd-health/datasets/beds/versions/{MAX_VERSION + 1}",
                   "agencies/gd-health/datasets/beds/versions/١",
                   "agencies/GD/datasets/beds/versions/1"]),
    (AccessRequestName, [f"agencies/sz-market/accessRequests/{HEX[:-1]}",
                         f"agencies/sz-market/accessRequests/{HEX.upper()}",
                         f"agencies/sz-market/accessRequests/{HEX}0",
                         f"agencies/SZ/accessRequests/{HEX}", f"agencies/sz-market/grants/{HEX}"]),
    (GrantName, [f"agencies/sz-market/grants/{HEX[:-1]}g", f"agencies/x/grants/{HEX}",
                 f"agencies/sz-market/accessRequests/{HEX}"]),
    (ExchangeName, [f"agencies/sz-market/exchanges/{HEX}\n", f"agencies/sz-market/grants/{HEX}",
                    f"agencies/sz-market/exchanges/{HEX[:-2]}"]),
    (AuditEventName, ["auditEvents/", "auditEvents/01", "auditEvents/-1", "auditEvents/ 1",
                      f"auditEvents/{MAX_LEAF_INDEX + 1}", "auditEvents/9999999999999999999",
                      "auditEvents/1_0", "auditevents/1", "1"]),
]


@pytest.mark.parametrize(("kind", "text"),
                         [(kind, text) for kind, texts in MALFORMED for text in texts])
def test_malformed_names_are_refused_naming_the_field(kind, text):
    assert kind.match(text) is None
    with pytest.raises(errors.InvalidArgument) as refused:
        kind.parse(text, "signed_statement.dataset")
    assert refused.value.metadata == {"field": "signed_statement.dataset"}
    assert refused.value.message.startswith(f"signed_statement.dataset must be {kind.FORM}")


def test_the_field_defaults_to_name():
    with pytest.raises(errors.InvalidArgument) as refused:
        DatasetName.parse("beds")
    assert refused.value.metadata == {"field": "name"}
    assert ID_PATTERN.pattern in refused.value.message


def test_navigation():
    agency = AgencyName("gd-health")
    dataset = agency.dataset("beds")
    version = dataset.version(3)
    assert dataset.owner == agency and version.dataset == dataset
    assert str(version) == "agencies/gd-health/datasets/beds/versions/3"
    assert str(agency.access_request(HEX)) == f"agencies/gd-health/accessRequests/{HEX}"
    assert str(agency.grant(HEX)) == f"agencies/gd-health/grants/{HEX}"
    assert agency.exchange(HEX).parent == agency


IDS = st.from_regex(ID_PATTERN, fullmatch=True)
HEX_IDS = st.from_regex(r"[0-9a-f]{32}", fullmatch=True)


@given(agency=IDS, dataset=IDS, version=st.integers(1, MAX_VERSION), request_id=HEX_IDS,
       leaf=st.integers(0, MAX_LEAF_INDEX))
def test_every_name_round_trips(agency, dataset, version, request_id, leaf):
    owner = AgencyName(agency)
    for name in (owner, owner.dataset(dataset), owner.dataset(dataset).version(version),
                 owner.access_request(request_id), owner.grant(request_id),
                 owner.exchange(request_id), AuditEventName(leaf)):
        assert type(name).parse(str(name)) == name
