"""Hostile input: arbitrary messages and raw bytes to every RPC of a running gateway.

Every answer must be in strategies.ALLOWED_CODES (STREAM_CODES for server streams): never
INTERNAL, UNKNOWN, or a hang. Afterwards the gateway still serves, no upload is left behind,
and the audit log verifies. GOVSHARE_FUZZ_EXAMPLES sets the examples per test (`make fuzz`
runs 2000).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agencies.client import BaseClient
from agencies.errors import from_rpc_error
from agencies.sim.roster import AgencySpec
from gateway.audit.verify import verify_log
from gateway.v1 import audit_pb2, catalog_pb2, directory_pb2, exchange_pb2
from govshare import envelopes, errors
from tests.support.exchange import SCHEMA, ask, last_leaf, publish, wait_for
from tests.support.network import AGENCIES as SPECS
from tests.support.network import Network, start_network
from tests.support.strategies import (
    ALLOWED_CODES,
    STREAM_CODES,
    Code,
    Strategies,
    Vocabulary,
)

FUZZ = settings(
    max_examples=int(os.environ.get("GOVSHARE_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example, HealthCheck.filter_too_much],
)
UNARY_TIMEOUT = 20.0
"""A unary call still running after this has hung: DEADLINE_EXCEEDED is not allowed for it."""
FETCH_TIMEOUT = 20.0
WATCH_TIMEOUT = 0.3
"""A watch runs until the caller's deadline; this one is short so the run stays quick."""

AGENCIES = ("gd-health", "sz-market", "zj-stats")
EXPENDABLE = AgencySpec("hz-water", "Hangzhou Water Resources Bureau", "330100")
"""The agency the admin's fuzzed SuspendAgency calls hit instead of the callers, which must stay
active for later examples to reach past the directory check."""
CALLERS = (*AGENCIES, "admin", "auditor")
SERVICES = [module.DESCRIPTOR.services_by_name[name] for module, name in (
    (directory_pb2, "DirectoryService"), (catalog_pb2, "CatalogService"),
    (exchange_pb2, "ExchangeService"), (audit_pb2, "AuditService"))]
METHODS = [method for service in SERVICES for method in service.methods]


def unary_methods(service_name: str) -> list:
    return [m for m in METHODS if m.containing_service.name == service_name
            and not m.client_streaming and not m.server_streaming]


def path(method) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


@dataclass
class Fuzz:
    """The fuzzed network, its callers and the strategies that know its names."""

    network: Network
    channels: dict[str, grpc.Channel]
    strategies: Strategies
    vocabulary: Vocabulary

    def unary(self, caller: str, method, payload: bytes) -> tuple[Code, str]:
        call = self.channels[caller].unary_unary(path(method))
        return _outcome(lambda: call(payload, timeout=UNARY_TIMEOUT))

    def client_stream(self, caller: str, method, payloads: Iterable[bytes]) -> tuple[Code, str]:
        call = self.channels[caller].stream_unary(path(method))
        return _outcome(lambda: call(iter(payloads), timeout=UNARY_TIMEOUT))

    def server_stream(self, caller: str, method, payload: bytes,
                      timeout: float) -> tuple[Code, str]:
        call = self.channels[caller].unary_stream(path(method))
        return _outcome(lambda: sum(1 for _ in call(payload, timeout=timeout)))


def _outcome(invoke) -> tuple[Code, str]:
    try:
        invoke()
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return Code.OK, ""


def assert_allowed(code: Code, details: str, method, allowed=ALLOWED_CODES) -> None:
    event(f"{method.name} {code.name}")  # pytest --hypothesis-show-statistics shows the spread
    assert code in allowed, f"{path(method)} answered {code.name}: {details}"
    assert "metadata size" not in details, f"{path(method)}: the status did not arrive: {details}"


# -- the network ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    root = tmp_path_factory.mktemp("fuzz")
    network = start_network(root / "net", [*SPECS, EXPENDABLE],
                            limits={"requests_per_second": 1e6, "burst": 10**6})
    try:
        samples = _populate(network, root)
        vocabulary = Vocabulary(names=_names(network), keys=tuple(
            network.agency(agency).signing_key for agency in AGENCIES), samples=samples)
        clients: dict[str, BaseClient] = {agency: network.agency(agency) for agency in AGENCIES}
        clients["admin"], clients["auditor"] = network.admin(), network.auditor()
        yield Fuzz(network, {name: c.channel for name, c in clients.items()},
                   Strategies(vocabulary), vocabulary)
    finally:
        network.close()


def _populate(network: Network, root: Path) -> dict[str, tuple]:
    """Datasets, requests, grants and an exchange to aim at; valid samples to mutate."""
    health, market, stats = (network.agency(agency) for agency in AGENCIES)
    beds = publish(health, "beds")
    cases = publish(health, "cases", classification="CONFIDENTIAL", sharing_type="CONDITIONAL")
    publish(market, "prices", sharing_type="CONDITIONAL")
    ask(market, beds)
    approved = ask(market, cases).access_request.name
    health.approve(approved)
    pending = ask(stats, cases).access_request.name
    market.fetch(beds, to=root / "beds.csv")
    statement = stats.access_request_statement(beds, purpose="STATISTICS", purpose_text="report",
                                               legal_basis="Statistics Law art. 7")
    manifest = catalog_pb2.Manifest(
        dataset=health.dataset_name("fuzzed"), version=1, title="fuzzed",
        media_type=catalog_pb2.MEDIA_TYPE_CSV, schema=SCHEMA,
        classification=catalog_pb2.CLASSIFICATION_INTERNAL,
        sharing_type=catalog_pb2.SHARING_TYPE_UNCONDITIONAL,
        update_cycle=catalog_pb2.UPDATE_CYCLE_IRREGULAR,
        content_sha256=hashlib.sha256(b"x").digest(), content_size=1)
    return {
        "gateway.v1.Manifest": (manifest,),
        "gateway.v1.AccessRequestStatement": (statement,),
        "gateway.v1.CreateAccessRequestRequest": (exchange_pb2.CreateAccessRequestRequest(
            parent=stats.name, validate_only=True, signed_statement=envelopes.seal(
                stats.signing_key, envelopes.ACCESS_REQUEST, statement)),),
        "gateway.v1.DecisionStatement": (exchange_pb2.DecisionStatement.FromString(
            health.decision(pending, exchange_pb2.DECISION_OUTCOME_APPROVE).payload),),
        "gateway.v1.FetchDatasetRequest": (exchange_pb2.FetchDatasetRequest(dataset=cases),),
        "gateway.v1.WatchEventsRequest": (exchange_pb2.WatchEventsRequest(
            parent="agencies/sz-market", follow=[beds]),),
    }


def _names(network: Network) -> tuple[str, ...]:
    """Every resource name the network holds, and the other strings its fields take."""
    conn = network.gateway.db.reader()
    stored = [row[0] for table in ("datasets", "dataset_versions", "access_requests", "grants",
                                   "exchanges")
              for row in conn.execute(f"SELECT name FROM {table}")]
    size = conn.execute("SELECT COUNT(*) FROM audit_leaves").fetchone()[0]
    return (
        *stored, *(f"agencies/{agency}" for agency in (*AGENCIES, EXPENDABLE.id)), "agencies/-",
        "agencies/ghost",
        *AGENCIES, "auditEvents/0", f"auditEvents/{size - 1}", f"auditEvents/{size + 10}",
        "0", "1", str(size), "440000", "440300", "330000", "health", "beds",
        *envelopes.PAYLOAD_TYPES,
    )


# -- structured messages to unary RPCs ------------------------------------------------------------


def fuzz_unary(fuzz: Fuzz, data: st.DataObject, service_name: str) -> None:
    method = data.draw(st.sampled_from(unary_methods(service_name)), label="method")
    caller = data.draw(st.sampled_from(CALLERS), label="caller")
    request = data.draw(fuzz.strategies.messages(method.input_type), label="request")
    if method.name == "SuspendAgency" and request.name.removeprefix("agencies/") in AGENCIES:
        request.name = f"agencies/{EXPENDABLE.id}"
    code, details = fuzz.unary(caller, method, request.SerializeToString())
    assert_allowed(code, details, method)


@FUZZ
@given(data=st.data())
def test_fuzz_directory(fuzz: Fuzz, data: st.DataObject) -> None:
    fuzz_unary(fuzz, data, "DirectoryService")


@FUZZ
@given(data=st.data())
def test_fuzz_catalog(fuzz: Fuzz, data: st.DataObject) -> None:
    fuzz_unary(fuzz, data, "CatalogService")


@FUZZ
@given(data=st.data())
def test_fuzz_exchange(fuzz: Fuzz, data: st.DataObject) -> None:
    fuzz_unary(fuzz, data, "ExchangeService")


@FUZZ
@given(data=st.data())
def test_fuzz_audit(fuzz: Fuzz, data: st.DataObject) -> None:
    fuzz_unary(fuzz, data, "AuditService")


# -- bytes that are not a valid message -----------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_fuzz_raw_bytes(fuzz: Fuzz, data: st.DataObject) -> None:
    method = data.draw(st.sampled_from(METHODS), label="method")
    caller = data.draw(st.sampled_from(CALLERS), label="caller")
    payload = data.draw(fuzz.strategies.raw_requests(method.input_type), label="payload")
    if method.client_streaming:
        code, details = fuzz.client_stream(caller, method, [payload])
    elif method.server_streaming:
        code, details = fuzz.server_stream(caller, method, payload, WATCH_TIMEOUT)
    else:
        code, details = fuzz.unary(caller, method, payload)
    assert_allowed(code, details, method, STREAM_CODES if method.server_streaming
                   else ALLOWED_CODES)


# -- streams --------------------------------------------------------------------------------------

PUBLISH = catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].methods_by_name[
    "PublishDataset"]
EXCHANGE = exchange_pb2.DESCRIPTOR.services_by_name["ExchangeService"]
FETCH, WATCH = EXCHANGE.methods_by_name["FetchDataset"], EXCHANGE.methods_by_name["WatchEvents"]


@FUZZ
@given(data=st.data())
def test_fuzz_publish_stream(fuzz: Fuzz, data: st.DataObject) -> None:
    caller = data.draw(st.sampled_from(AGENCIES), label="caller")
    signer = data.draw(st.sampled_from(range(len(AGENCIES))), label="signer")
    dataset = data.draw(st.sampled_from(("fuzzed", "beds")), label="dataset")
    stream = data.draw(fuzz.strategies.publish_streams(
        f"agencies/gd-health/datasets/{dataset}", fuzz.vocabulary.keys[signer]), label="stream")
    code, details = fuzz.client_stream(caller, PUBLISH,
                                       (m.SerializeToString() for m in stream))
    assert_allowed(code, details, PUBLISH)


@FUZZ
@given(data=st.data())
def test_fuzz_fetch_and_watch(fuzz: Fuzz, data: st.DataObject) -> None:
    method = data.draw(st.sampled_from((FETCH, WATCH)), label="method")
    caller = data.draw(st.sampled_from(CALLERS), label="caller")
    request = data.draw(fuzz.strategies.messages(method.input_type), label="request")
    timeout = FETCH_TIMEOUT if method is FETCH else WATCH_TIMEOUT
    code, details = fuzz.server_stream(caller, method, request.SerializeToString(), timeout)
    assert_allowed(code, details, method, ALLOWED_CODES if method is FETCH else STREAM_CODES)


# -- regressions: what fuzzing found ---------------------------------------------------------------


def rpc_error(invoke) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        invoke()
    return caught.value


def test_invalid_utf8_in_a_string_is_refused_and_audited(fuzz: Fuzz) -> None:
    # grpcio answered INTERNAL "Exception deserializing request!", unaudited.
    payload = b"\x0a\x04\xff\xfeab"  # GetAgencyRequest.name = 4 bytes that are not UTF-8
    get_agency = fuzz.channels["sz-market"].unary_unary("/gateway.v1.DirectoryService/GetAgency")

    error = rpc_error(lambda: get_agency(payload, timeout=UNARY_TIMEOUT))

    assert error.code() == Code.INVALID_ARGUMENT
    assert from_rpc_error(error).reason == "MALFORMED_REQUEST"
    leaf = last_leaf(fuzz.network)
    assert (leaf["actor"], leaf["action"], leaf["outcome"]) == \
        ("urn:govshare:agency:sz-market", "directory.get", "REFUSED")
    assert hashlib.sha256(payload).hexdigest() in leaf["record"]


def test_an_undecodable_message_in_a_publish_stream_is_refused(fuzz: Fuzz) -> None:
    manifest = catalog_pb2.Manifest()
    manifest.CopyFrom(fuzz.vocabulary.samples["gateway.v1.Manifest"][0])
    manifest.dataset = "agencies/gd-health/datasets/undecodable"
    manifest.create_time.GetCurrentTime()
    first = catalog_pb2.PublishDatasetRequest(manifest=envelopes.seal(
        fuzz.vocabulary.keys[AGENCIES.index("gd-health")], envelopes.MANIFEST, manifest))
    chunk = b"\x12\x05ab"  # a chunk of 5 bytes that holds 2

    code, details = fuzz.client_stream("gd-health", PUBLISH, [first.SerializeToString(), chunk])

    assert (code, "not a valid message" in details) == (Code.INVALID_ARGUMENT, True), details
    assert wait_for(lambda: not any(fuzz.network.gateway.blobs.tmp.iterdir()))


def test_a_timestamp_out_of_range_is_invalid_argument_naming_the_field(fuzz: Fuzz) -> None:
    # Timestamp.ToDatetime raised ValueError: INTERNAL.
    auditor = fuzz.network.auditor()
    request = audit_pb2.ListAuditEventsRequest()
    request.start_time.seconds = -(2**63)

    error = rpc_error(lambda: auditor.audit.ListAuditEvents(request, timeout=UNARY_TIMEOUT))

    assert error.code() == Code.INVALID_ARGUMENT
    assert from_rpc_error(error).metadata["field"] == "start_time"


def test_a_duration_out_of_range_is_invalid_argument_naming_the_field(fuzz: Fuzz) -> None:
    # Duration.ToTimedelta raised OverflowError: INTERNAL.
    stats = fuzz.network.agency("zj-stats")
    statement = exchange_pb2.AccessRequestStatement()
    statement.CopyFrom(fuzz.vocabulary.samples["gateway.v1.AccessRequestStatement"][0])
    statement.duration.seconds = 2**63 - 1
    statement.create_time.GetCurrentTime()
    request = exchange_pb2.CreateAccessRequestRequest(
        parent=stats.name, signed_statement=envelopes.seal(
            stats.signing_key, envelopes.ACCESS_REQUEST, statement))

    error = rpc_error(lambda: stats.exchange.CreateAccessRequest(request, timeout=UNARY_TIMEOUT))

    assert error.code() == Code.INVALID_ARGUMENT
    assert from_rpc_error(error).metadata["field"] == "signed_statement.duration"


def test_an_error_quoting_a_huge_input_still_reaches_the_caller(fuzz: Fuzz) -> None:
    # The message quoted the whole name: its trailers passed gRPC's metadata limit and the
    # caller got RESOURCE_EXHAUSTED "Stream removed" instead of the error.
    auditor = fuzz.network.auditor()
    request = audit_pb2.GetAuditEventRequest(name="\U0001f600" * 100_000)

    error = rpc_error(lambda: auditor.audit.GetAuditEvent(request, timeout=UNARY_TIMEOUT))

    assert error.code() == Code.INVALID_ARGUMENT
    assert len(error.details().encode()) <= errors.MAX_MESSAGE_BYTES


@pytest.mark.parametrize("control", ["\0", "\n"])
def test_a_refused_name_with_a_control_character_keeps_the_log_verifiable(
        fuzz: Fuzz, control: str) -> None:
    # Such a name must not become an audit subject: SQLite's JSON functions cut it at a NUL,
    # and subjects are stored newline-separated, so `audit verify` would report a mismatch.
    market = fuzz.network.agency("sz-market")
    request = catalog_pb2.GetDatasetRequest(name=f"agencies/gd-health/datasets/beds{control}"
                                            "agencies/other")

    assert rpc_error(lambda: market.catalog.GetDataset(request, timeout=UNARY_TIMEOUT)).code() \
        == Code.INVALID_ARGUMENT
    gateway = fuzz.network.gateway
    assert verify_log(gateway.db.reader(), gateway.note_signer.verifier()).ok


# -- afterwards -----------------------------------------------------------------------------------


def test_fuzz_leaves_the_gateway_serving_and_the_log_intact(fuzz: Fuzz) -> None:
    network = fuzz.network
    for agency in AGENCIES:
        assert network.agency(agency).get("agencies/gd-health/datasets/beds").name
    gateway = network.gateway
    assert wait_for(lambda: not any(gateway.blobs.tmp.iterdir()))
    report = verify_log(gateway.db.reader(), gateway.note_signer.verifier())
    assert report.ok, report.problems
    assert report.tree_size == int(gateway.log.checkpoint().tree_size)
