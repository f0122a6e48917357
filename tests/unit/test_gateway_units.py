"""Config, page tokens, limits, error mapping and process set-up."""

import platform
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gateway import config as config_module
from gateway import status
from gateway.cli import serve
from gateway.limits import Limiter
from gateway.paging import PageTokens, page_size
from gateway.v1 import catalog_pb2
from govshare import errors


def test_config_round_trips_and_resolves_paths(tmp_path):
    original = config_module.Config().replace(server={"listen": "127.0.0.1:9999"},
                                              limits={"burst": 7})
    path = tmp_path / "gateway.toml"
    path.write_text(config_module.render(original))
    loaded = config_module.load(path)
    assert loaded.server.listen == "127.0.0.1:9999"
    assert loaded.limits.burst == 7
    assert loaded.path(loaded.storage.database) == tmp_path / "govshare.db"
    assert loaded.path(Path("/abs/x")) == Path("/abs/x")


@pytest.mark.parametrize("text", ["[serverr]\nlisten='x'\n", "[server]\nlisen='x'\n"])
def test_config_rejects_unknown_names(tmp_path, text):
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match="unknown"):
        config_module.load(path)


@pytest.mark.parametrize(("text", "problem"), [
    ('[limits]\nmax_chunk_bytes = "1MiB"\n', "[limits] max_chunk_bytes must be an integer"),
    ("[limits]\nmax_chunk_bytes = 2097152\n",
     "[limits] max_message_bytes must be at least [limits] max_chunk_bytes"),
    ("[limits]\nmax_chunk_bytes = 8388608\nmax_message_bytes = 9000000\n",
     "[limits] max_chunk_bytes must be at most"),
    ("[exchange]\nclock_skew_seconds = 0\n", "[exchange] clock_skew_seconds must be positive"),
    ("[exchange]\ndecision_working_days = -1\n",
     "[exchange] decision_working_days must be positive"),
    ("[exchange]\nmax_grant_days = 0\n", "[exchange] max_grant_days must be positive"),
    ("[server]\nmax_workers = true\n", "[server] max_workers must be an integer"),
    ("[server]\nmax_workers = 1\n", "[server] max_workers must be at least 2"),
    ("[exchange]\ndecision_working_days = 3000000\n",
     "[exchange] decision_working_days must be at most 366"),
    ("[exchange]\nmax_grant_days = 10000000\n", "[exchange] max_grant_days must be at most"),
    ("[limits]\nmax_message_bytes = 8388608\n", "[limits] max_message_bytes must be at most"),
    ("[server]\nmax_workers = 8\n[limits]\nmax_streams = 8\n",
     "[limits] max_streams must be 0 (the default) or below [server] max_workers"),
    ('[storage]\nsynchronous = "SOMETIMES"\n', "[storage] synchronous must be one of"),
    ("[storage]\ndatabase = 5\n", "[storage] database must be a path string"),
    ("limits = 5\n", "[limits] must be a table"),
])
def test_config_refuses_wrong_types_and_inconsistent_sizes(tmp_path, text, problem):
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as refused:
        config_module.load(path)
    assert str(refused.value).startswith(f"{path}: ")
    assert problem in str(refused.value)


def test_config_stream_cap_defaults_below_the_thread_pool(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text("[server]\nmax_workers = 8\n[limits]\nrequests_per_second = 5\n")
    loaded = config_module.load(path)
    assert loaded.max_streams == 6
    assert loaded.limits.requests_per_second == 5.0
    assert config_module.Config().max_streams == 48


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


def test_token_bucket_refuses_above_rate_and_refills():
    now = [0.0]
    limiter = Limiter(rate=2, burst=3, max_streams=1, max_total_streams=1, clock=lambda: now[0])
    for _ in range(3):
        limiter.admit("a")
    with pytest.raises(errors.ResourceExhausted) as refused:
        limiter.admit("a")
    assert refused.value.reason == "RATE_LIMITED"
    limiter.admit("b")  # buckets are per caller
    now[0] += 0.5
    limiter.admit("a")


def test_stream_slots_are_per_caller_and_released():
    limiter = Limiter(rate=1, burst=1, max_streams=1, max_total_streams=2)
    with limiter.stream("a"):
        with pytest.raises(errors.ResourceExhausted), limiter.stream("a"):
            pass
        with limiter.stream("b"):
            pass
    with limiter.stream("a"):
        pass


def test_stream_slots_are_capped_gateway_wide_and_released():
    limiter = Limiter(rate=1, burst=1, max_streams=1, max_total_streams=2)
    with limiter.stream("a"), limiter.stream("b"):
        with pytest.raises(errors.ResourceExhausted) as refused, limiter.stream("c"):
            pass
        assert refused.value.reason == "GATEWAY_STREAMS_EXHAUSTED"
    with limiter.stream("c"):
        pass


def test_errors_map_to_status_with_error_info():
    error = errors.NotFound("agencies/x is not registered", reason="AGENCY_UNKNOWN", agency="x")
    mapped = status.to_rpc_status(error)
    assert mapped.code == grpc.StatusCode.NOT_FOUND
    assert mapped.details == "agencies/x is not registered"
    proto = rpc_status.status_pb2.Status.FromString(mapped.trailing_metadata[0][1])
    info = error_details_pb2.ErrorInfo()
    proto.details[0].Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "AGENCY_UNKNOWN", errors.DOMAIN, {"agency": "x"})


def test_the_gateway_process_keeps_one_malloc_arena():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        assert serve.one_malloc_arena() is False
        pytest.skip("malloc arenas are glibc's: elsewhere the gateway leaves malloc as it is")
    assert serve.one_malloc_arena() is True
