"""Call: what the domain sees of a request, and the audit events it builds from it."""

from __future__ import annotations

import hashlib

import grpc

from certs.identity import Identity
from gateway.context import MAX_RECORDED_NAME, Call, Transport
from gateway.identity import Caller
from gateway.v1 import catalog_pb2
from govshare import errors, times
from govshare.transparency import record


class Ended:
    """A transport whose call has ended: the domain must not wait on it."""

    def send_initial_metadata(self, initial_metadata) -> None:
        raise AssertionError("the call has ended")

    def add_callback(self, callback) -> bool:
        return False

    def is_active(self) -> bool:
        return False


def call_of(kind: str, ident: str, request=None, resources=()) -> Call:
    return Call(caller=Caller(Identity(kind, ident), 1), action="catalog.get",
                transport=Ended(), time=times.utcnow(), resources=list(resources), request=request)


def test_grpc_servicer_contexts_are_transports():
    # The gRPC wrapper hands its ServicerContext to the domain as the call's Transport.
    hooks = {name for name in vars(Transport) if not name.startswith("_")}
    assert hooks == {"send_initial_metadata", "add_callback", "is_active"}
    assert all(callable(getattr(grpc.ServicerContext, hook, None)) for hook in hooks)


def test_an_event_names_the_caller_its_own_agency_and_the_request():
    request = catalog_pb2.GetDatasetRequest(name="agencies/gd-health/datasets/beds")
    call = call_of("agency", "sz-market", request, [request.name])
    event = call.event(agencies=("agencies/gd-health",))
    assert (event.actor, event.action, event.outcome) == \
        ("urn:govshare:agency:sz-market", "catalog.get", record.ALLOWED)
    assert event.resources == ("agencies/gd-health/datasets/beds",)
    assert event.agencies == ("agencies/sz-market", "agencies/gd-health")
    assert event.request_digest == hashlib.sha256(request.SerializeToString()).hexdigest()
    assert call.event("catalog.other", resources=()).action == "catalog.other"


def test_staff_and_client_streams_add_no_agency_and_no_digest():
    event = call_of("auditor", "carol").event()
    assert (event.agencies, event.request_digest) == ((), "")


def test_a_refusal_records_each_name_once_clipped_and_the_reason():
    huge = "agencies/gd-health/datasets/" + "a" * 1000
    call = call_of("agency", "sz-market", resources=[huge, "", huge])
    event = call.refusal(errors.PermissionDenied("not yours", reason="NOT_GRANTED"))
    assert event.outcome == record.REFUSED and event.reason == "NOT_GRANTED: not yours"
    [name] = event.resources
    assert len(name.encode()) <= MAX_RECORDED_NAME and name.endswith("…")
    assert event.agencies == ("agencies/sz-market",)
