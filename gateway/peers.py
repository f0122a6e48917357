"""The gateway as a witnessed log: it asks the other members of its network to cosign its
latest checkpoint, and keeps the cosignatures they give.

Every [network] witness_push_seconds a thread asks each other member (at its configuration
`address`, over mutual TLS with the gateway's own TLS certificate, the member's server
certificate pinned to its configuration `tls_certificate_pem`) to cosign the latest
checkpoint, with a consistency proof from the size that witness last cosigned: one checkpoint
per round, the latest when the round starts, the same for every witness. The gateway
learns that size as the spec intends: from the witness's 409 answer (ABORTED
WITNESS_SIZE_CONFLICT, metadata `witness_size`), and then from each cosignature it receives.
An answer is stored only as what it must be, one signature line of the member's
`witness_verifier_key` that verifies as its cosignature of the checkpoint (no
audit event: it changes nothing of the log's content, and an event would make a new checkpoint
the witness has not seen). A witness that does not answer is asked again later, each failure
doubling the wait up to 32 intervals, and never holds up the log or the other witnesses; one
that refuses the log's checkpoint as inconsistent is logged as an error, since it says this
gateway's log does not extend what it showed before (a restored backup, a fork).

`push` asks every witness now, whatever their wait (the thread's round, and tests).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import grpc

from agencies.errors import from_rpc_error
from gateway import federation
from gateway.audit.log import AuditLog
from gateway.federation import NetworkMembership
from gateway.models import Checkpoint, Cosignature
from gateway.periodic import Periodic
from gateway.storage import witness as sql
from gateway.unit_of_work import UnitOfWork
from gateway.v1 import network_pb2, witness_pb2, witness_pb2_grpc
from govshare import times
from govshare.transparency.cosignature import Cosignature as CosignatureLine
from govshare.transparency.cosignature import CosignatureVerifier, WitnessPolicy
from govshare.transparency.note import NoteError
from govshare.transparency.witness import SizeConflict

log = logging.getLogger("govshare.peers")

CALL_SECONDS = 10.0
"""How long one witness may take to answer."""
MAX_BACKOFF = 32
"""A failing witness is asked again after at most this many intervals."""
STREAM_WINDOW_BYTES = 4 * 1024 * 1024
"""The HTTP/2 window of each call to a peer, fixed (gRPC's BDP probing off). With probing, the
window of a relayed fetch's stream grew past 8 MiB on loopback, each MiB held at the relay
while its agency reads slowly, and sent by the owner's gateway before a revocation there could
stop it; fixed, the owner's gateway runs ahead of the relay by at most this. It still lets a
stream carry 4 MiB per round trip: some 140 MB/s at 30 ms, above a relay's rate here."""


class WitnessUnusable(Exception):
    """A witness's answer cannot be used (the message says why)."""


class PeerChannels:
    """The gRPC channels to the other members of the network, over mutual TLS with this
    gateway's own TLS certificate; shared by everything that calls peers (witnessing,
    replication, carried calls and relayed fetches), one channel per member, each call's
    window STREAM_WINDOW_BYTES."""

    def __init__(self, tls_pair: tuple[bytes, bytes]):
        """`tls_pair`: the gateway's TLS private key and certificate (PEM), as a client's."""
        self._tls_pair = tls_pair
        self._channels: dict[tuple[str, str], grpc.Channel] = {}
        self._lock = threading.Lock()

    def channel(self, member: network_pb2.MemberGateway) -> grpc.Channel:
        """A channel to `member` that trusts only its configuration TLS certificate: any
        other certificate of the national CA (a stand-in server that would hide a witness)
        fails the handshake. The configuration was checked to name a certificate of the CA
        for that member; a newer one naming another certificate gets a new channel."""
        key = _channel_key(member)
        with self._lock:
            channel = self._channels.get(key)
            if channel is None:
                private_key, certificate = self._tls_pair
                credentials = grpc.ssl_channel_credentials(
                    root_certificates=member.tls_certificate_pem.encode(),
                    private_key=private_key, certificate_chain=certificate)
                channel = grpc.secure_channel(member.address, credentials, options=(
                    ("grpc.http2.bdp_probe", 0),
                    ("grpc.http2.lookahead_bytes", STREAM_WINDOW_BYTES)))
                self._channels[key] = channel
            return channel

    def failed(self, member: network_pb2.MemberGateway, error: grpc.RpcError) -> None:
        """After a call to `member` failed: an UNAVAILABLE one gets a new channel next time,
        since gRPC's own reconnect backoff would answer UNAVAILABLE without trying, for a while
        after the member is back."""
        if error.code() == grpc.StatusCode.UNAVAILABLE:
            with self._lock:
                channel = self._channels.pop(_channel_key(member), None)
            if channel is not None:
                channel.close()

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()


@dataclass
class _Witness:
    """What the log knows of one witness."""

    size: int | None = None
    """The size it last cosigned, as far as the log knows (None: not known yet)."""
    failures: int = 0
    next_try: float = 0.0


class CosignatureCollector:
    """Collects the other members' cosignatures of this gateway's checkpoints."""

    def __init__(self, log: AuditLog, work: UnitOfWork, network: NetworkMembership,
                 channels: PeerChannels, interval: float):
        self._log = log
        self._work = work
        self._network = network
        self._channels = channels
        self._interval = interval
        self._witnesses: dict[str, _Witness] = {}
        self._lock = threading.Lock()
        self._rounds = Periodic("cosignatures", interval, lambda: self.push(due_only=True))

    def start(self) -> None:
        known = sql.latest_cosigned_sizes(self._work.db.reader(), self._log.origin)
        self._witnesses = {member: _Witness(size) for member, size in known.items()}
        self._rounds.start()

    def stop(self) -> None:
        self._rounds.stop()

    def push(self, *, due_only: bool = False) -> dict[str, str]:
        """Ask each other member (only those due, with `due_only`) to cosign the latest
        checkpoint; what came of it per member id: "cosigned", "up to date" or the failure.
        A round asks every witness for the same checkpoint, the latest when it starts: one
        read anew for each would, under a steady load, have witnesses cosign different
        checkpoints, some of which would never reach their quorum."""
        outcomes = {}
        with self._lock:
            latest = self._log.checkpoint()
            for member in self._network.others():
                state = self._witnesses.setdefault(member.id, _Witness())
                if due_only and time.monotonic() < state.next_try:
                    continue
                outcomes[member.id] = self._push_one(member, state, latest)
        return outcomes

    def _push_one(self, member: network_pb2.MemberGateway, state: _Witness,
                  latest: Checkpoint) -> str:
        try:
            outcome = self._ask(member, state, latest)
        except (grpc.RpcError, WitnessUnusable) as exc:
            if isinstance(exc, grpc.RpcError):
                self._channels.failed(member, exc)
            state.failures += 1
            wait = self._interval * min(2 ** state.failures, MAX_BACKOFF)
            state.next_try = time.monotonic() + wait
            why = _failure(exc)
            inconsistent = "WITNESS_CONSISTENCY_UNPROVED" in why  # this log forked or went back
            log.log(logging.ERROR if inconsistent else logging.WARNING,
                    "[network] witness %s (%s) did not cosign: %s; asking again in %.0f s",
                        member.id, member.address, why, wait)
            return why
        state.failures, state.next_try = 0, 0.0
        return outcome

    def _ask(self, member: network_pb2.MemberGateway, state: _Witness,
             latest: Checkpoint) -> str:
        if state.size == latest.tree_size:
            return "up to date"
        stub = witness_pb2_grpc.WitnessServiceStub(self._channels.channel(member))
        size = state.size or 0
        for _ in range(2):  # the first answer may be the witness's size: then once more
            try:
                response = stub.AddCheckpoint(self._request(size, latest.tree_size,
                                                            bytes(latest.note)),
                                              timeout=CALL_SECONDS)
            except grpc.RpcError as exc:
                learned = _witness_size(exc)
                if learned is None or learned == size:
                    raise
                size = state.size = learned
                continue
            self._keep(member, latest.tree_size, bytes(latest.note), response.cosignature)
            state.size = latest.tree_size
            return "cosigned"
        raise WitnessUnusable(f"it still asks for a proof from size {size}")

    def _request(self, size: int, tree_size: int, note: bytes) -> witness_pb2.AddCheckpointRequest:
        if size > tree_size:
            raise WitnessUnusable(f"it cosigned size {size}, and this log's latest checkpoint"
                                  f" has size {tree_size}: this log lost what it showed before"
                                  " (a restored backup?)")
        proof = self._log.consistency_proof(size, tree_size) if 0 < size < tree_size else []
        return witness_pb2.AddCheckpointRequest(old_size=size, consistency_proof=proof,
                                                checkpoint=note)

    def _keep(self, member: network_pb2.MemberGateway, tree_size: int, note: bytes,
              line: str) -> None:
        """Store `line` once it verifies as `member`'s cosignature of `note`, and is nothing
        else."""
        own = _cosignature_line(line, federation.witness_verifier(member), note)
        cosignature = Cosignature(self._log.origin, tree_size, member.id, own,
                                  times.to_text(times.utcnow()))
        self._work.commit(lambda tx: (sql.insert_cosignature(tx.conn, cosignature), []))

def _channel_key(member: network_pb2.MemberGateway) -> tuple[str, str]:
    return member.address, member.tls_certificate_pem


def _cosignature_line(answer: str, witness: CosignatureVerifier, note: bytes) -> str:
    """`answer` as exactly one signature line of `witness`'s key that verifies as its
    cosignature of `note`; WitnessUnusable otherwise. The line is served appended to the note:
    anything more in an answer (a line under the log's own key name, lines naming other
    witnesses, more lines than a note may hold) would make the checkpoint unverifiable for
    every client, so one witness could spoil it for all."""
    line = answer.removesuffix("\n")
    try:
        if "\n" in line:
            raise ValueError("it holds more than one line")
        name, cosignature = CosignatureLine.from_line(line)
        if (name, cosignature.key_id) != (witness.name, witness.key_id):
            raise ValueError(f"it is signed as {name!r} (key id {cosignature.key_id.hex()}),"
                             f" not with the witness key {witness.name!r} (key id"
                             f" {witness.key_id.hex()}) its network configuration names")
        WitnessPolicy([witness.verifier_key], 1).check(note + f"{line}\n".encode())
    except (ValueError, NoteError) as exc:
        raise WitnessUnusable(f"its answer is not its cosignature of the checkpoint ({exc})"
                              ) from None
    return f"{line}\n"


def _witness_size(error: grpc.RpcError) -> int | None:
    """The witness's size a 409 answer carries, None for any other answer."""
    answer = from_rpc_error(error)
    if answer.reason != SizeConflict.reason:
        return None
    try:
        return int(answer.metadata["witness_size"])
    except (KeyError, ValueError):
        return None


def _failure(exc: Exception) -> str:
    if isinstance(exc, grpc.RpcError):
        reason = from_rpc_error(exc).reason
        return f"{exc.code().name}{' ' + reason if reason else ''}: {exc.details()}"
    return str(exc)
