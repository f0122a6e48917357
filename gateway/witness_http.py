"""The witness's HTTP form: C2SP tlog-witness `POST /add-checkpoint`, on the same
GatewayWitness as WitnessService.AddCheckpoint.

Bound to [network] witness_http_listen, over TLS with the gateway's own certificate. The spec
authenticates a request by its checkpoint's signature, not by the client: no client
certificate is asked for, and the log is found by the checkpoint's origin among the other
members of the network configuration held (its `audit_origin`). Nothing says who posts, so no
refusal is audited in a member's name: each is audited as anonymous within the refusal budget
(gateway/refusals.py), the door's (a body that does not parse, a log of no member, a checkpoint
its log's key did not sign) as the witness's, which keeps a refusal's note only when it is
evidence whoever sends it (gateway/witness.py). Each client address has the rate limit of a
caller ([limits] requests_per_second), answered 429 as the spec allows.

Thin: parse, call the witness, render. Served by uvicorn in a thread of its own that starts and
stops with the gateway's gRPC server; the socket is bound at build time, so a port taken is
the gateway's StartError before anything else starts.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gateway.rpc import Gateway, audit_refusal
from gateway.v1 import network_pb2
from gateway.witness import GatewayWitness
from govshare import errors
from govshare.transparency import note
from govshare.transparency.witness import (
    SIZE_CONTENT_TYPE,
    AddCheckpoint,
    MalformedRequest,
    SizeConflict,
    UnknownLog,
    UnsignedCheckpoint,
    WitnessRefusal,
)

log = logging.getLogger("govshare.witness_http")

ACTION = "witness.add_checkpoint"
"""The audit action, the gRPC form's."""
MAX_BODY = 64 * 1024
"""Bytes a request body may have: a checkpoint and 63 proof lines take a few kilobytes."""
START_SECONDS = 10.0
"""How long the server may take to start serving once its thread runs."""


class WitnessHTTPServer:
    """`POST /add-checkpoint` served by uvicorn on a socket bound at build time."""

    def __init__(self, gateway: Gateway, witness: GatewayWitness, listen: str):
        self._gateway = gateway
        self._witness = witness
        self._socket = _bind(listen)
        self.port: int = self._socket.getsockname()[1]
        app = Starlette(routes=[Route("/add-checkpoint", self._add_checkpoint,
                                      methods=["POST"])])
        tls = gateway.config.tls
        self._server = uvicorn.Server(uvicorn.Config(
            app, ssl_certfile=str(gateway.config.path(tls.certificate)),
            ssl_keyfile=str(gateway.config.path(tls.key)), log_config=None,
            access_log=False, lifespan="off"))
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._socket]},
                                        name="witness-http", daemon=True)

    def start(self) -> None:
        """Serve; return once the server answers (or raise when it could not start)."""
        self._thread.start()
        deadline = time.monotonic() + START_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the witness's HTTP server did not start; see the log")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join()
        self._socket.close()

    async def _add_checkpoint(self, request: Request) -> Response:
        try:
            body = await _read_body(request)
            client = request.client.host if request.client else "unknown"
            cosignature = await run_in_threadpool(self._cosign, client, body)
        except SizeConflict as conflict:
            # Exactly the spec's type: starlette's media_type would add a charset.
            return Response(conflict.body, conflict.http_status,
                            headers={"Content-Type": SIZE_CONTENT_TYPE})
        except errors.GatewayError as refusal:
            return PlainTextResponse(f"{refusal.reason}: {refusal.message}\n",
                                     _http_status(refusal))
        return PlainTextResponse(cosignature)

    def _cosign(self, client: str, body: bytes) -> str:
        """The cosignature line for `body`; the refusal, audited, otherwise."""
        gateway = self._gateway
        try:
            gateway.limiter.admit(f"http:{client}")
            gateway.network.check_current(gateway.now())
            request = AddCheckpoint.parse(body)
            member = gateway.network.log_of(request.origin)
            if member is None:
                raise UnknownLog(f"this witness follows no log of origin {request.origin!r}",
                                 origin=request.origin)
            _check_signed(request, member)
            return self._witness.add_checkpoint(member, request, None)
        except errors.GatewayError as refusal:
            audit_refusal(gateway, ACTION, None, None, refusal, at_door=True)
            raise
        except Exception:
            request_id = uuid.uuid4().hex
            log.exception("unexpected error in POST /add-checkpoint (request id %s)",
                          request_id)
            raise errors.GatewayError(f"internal error; quote request id {request_id} to the"
                                      " operator", reason="INTERNAL") from None


def _check_signed(request: AddCheckpoint, member: network_pb2.MemberGateway) -> None:
    """Refuse at the door a checkpoint its log's key did not sign. Over HTTP no client
    certificate says who posts, so anyone may name a member's origin: such a refusal is audited
    within the door's refusal budget, never as one of the witness's committed decisions, which
    would let anyone write to the audit log at the request rate."""
    try:
        note.open_note(request.checkpoint,
                       [note.NoteVerifier.from_verifier_key(member.audit_verifier_key)])
    except note.NoteError:
        raise UnsignedCheckpoint(f"the checkpoint carries no valid signature of its log's key"
                                 f" {member.audit_origin!r}", origin=member.audit_origin) from None


async def _read_body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise MalformedRequest(f"the body is larger than {MAX_BODY} bytes")
    return bytes(body)


def _http_status(refusal: errors.GatewayError) -> int:
    """The spec's status of a witness refusal; 429 for a client over its rate, 503 while the
    network configuration held has expired, 500 for the unexpected."""
    if isinstance(refusal, WitnessRefusal):
        return refusal.http_status
    if isinstance(refusal, errors.ResourceExhausted):
        return 429
    if isinstance(refusal, errors.FailedPrecondition):
        return 503
    return 500


def _bind(listen: str) -> socket.socket:
    """A listening socket on `listen` (host:port, port 0 picks one); OSError if it cannot."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(128)
    except (OSError, ValueError):
        sock.close()
        raise
    return sock
