"""List pages: the page size bounds, and page tokens bound to their request and gateway."""

import pytest

from gateway.paging import PageTokens, page_size
from gateway.v1 import catalog_pb2
from govshare import errors


def test_page_tokens_round_trip_and_refuse_tampering():
    tokens = PageTokens()
    request = catalog_pb2.ListDatasetsRequest(parent="agencies/-", tag="health")
    token = tokens.encode([42, "x"], request)
    assert tokens.decode(token, request) == [42, "x"]
    assert tokens.decode("", request) is None
    other_filters = catalog_pb2.ListDatasetsRequest(parent="agencies/-", tag="roads")
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad_token, bad_request in [(token, other_filters), (tampered, request),
                                   ("garbage!", request)]:
        with pytest.raises(errors.InvalidArgument) as refused:
            tokens.decode(bad_token, bad_request)
        assert refused.value.reason == "INVALID_PAGE_TOKEN"
    with pytest.raises(errors.InvalidArgument):
        PageTokens().decode(token, request)  # another gateway's token


def test_page_size_bounds():
    assert page_size(0) == 50
    assert page_size(5000) == 1000
    with pytest.raises(errors.InvalidArgument):
        page_size(-1)
