"""Who is calling: the identity in the verified peer certificate, checked against the CRL.

This is the only place a caller's identity is established. The TLS handshake has already
verified the certificate chain to the national CA; here the govshare identity URI is read from
the certificate's SAN and the certificate is checked against the CA's revocation list. Nothing in
a request body can change the result.

The CRL is read and verified when the gateway starts (a gateway without one does not start) and
re-read whenever its file changes. A new file is taken only when it is a CRL the CA signed with a
CRL number at least the loaded one's; anything else (a missing, half-copied or foreign file, an
older CRL put back) is logged once and the last good CRL stays in force. Once the CRL in force
is past its nextUpdate, every check fails closed with UNAVAILABLE CRL_EXPIRED until the CA
re-signs it.

A gateway that is a member of a network also holds the CRL its signed network configuration
carries (gateway/federation.py offers it with `Authenticator.offer`): of that one and the file's,
the one with the higher CRL number is in force, so a revocation the network authority publishes
reaches the gateway without an operator copying the CRL.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from certs import ca as certs_ca
from certs.identity import Identity, identity_from_certificate
from govshare import errors
from govshare.names import AgencyName

log = logging.getLogger("govshare.identity")

# The kinds of caller an RPC may allow (certs.identity defines every kind).
AGENCY = "agency"
ADMIN = "admin"
AUDITOR = "auditor"
PEER = "gateway"
"""A peer gateway: a gateway certificate, admitted only when the network configuration this
gateway holds names its id as a member with that very TLS certificate (gateway/federation.py,
`NetworkMembership.peer`); any other gateway certificate is refused PEER_NOT_IN_NETWORK."""
ON_BEHALF_KEY = "govshare-on-behalf-of"
"""The call metadata with which a peer speaks for one of its own agencies ("agencies/{id}"):
the call then acts as that agency (gateway/rpc.py, docs/FEDERATION.md)."""


@dataclass(frozen=True)
class Caller:
    """An authenticated caller."""

    identity: Identity
    serial: int
    certificate_pem: bytes = b""
    """The verified certificate as presented: a peer's is compared with the one the network
    configuration names."""

    @property
    def uri(self) -> str:
        return self.identity.uri

    @property
    def kind(self) -> str:
        return self.identity.kind

    @classmethod
    def agency(cls, agency_id: str) -> Caller:
        """An agency known by its directory entry, not by a certificate of its own: one homed
        at another member, for whom that member's gateway calls."""
        return cls(Identity(AGENCY, agency_id), serial=0)

    @property
    def agency_name(self) -> str:
        """"agencies/{id}" for an agency caller, empty otherwise."""
        return str(AgencyName(self.identity.id)) if self.identity.kind == AGENCY else ""


@dataclass(frozen=True)
class Revocations:
    """What the gateway keeps of a verified CRL."""

    number: int
    next_update: datetime
    serials: frozenset[int]
    crl: x509.CertificateRevocationList
    """The CRL itself, as the CA signed it: what a network configuration is checked with."""


def read_crl(path: Path, ca_certificate: x509.Certificate) -> Revocations:
    """The CRL at `path`; certs.ca.CAError saying what is wrong unless the CA issued and signed
    it with a CRL number and a nextUpdate."""
    try:
        crl = certs_ca.load_crl(path)
    except OSError as exc:  # load_crl turns only a missing file into a CAError
        raise certs_ca.InvalidCRL(f"cannot read {path}: {exc.strerror}") from None
    return revocations(crl, ca_certificate, str(path))


def revocations(crl: x509.CertificateRevocationList, ca_certificate: x509.Certificate,
                where: str) -> Revocations:
    """What the gateway keeps of `crl` (found in `where`); certs.ca.CAError saying what is wrong
    unless the CA signed it with a CRL number and a nextUpdate."""
    try:
        certs_ca.verify_crl(crl, ca_certificate)
        number = certs_ca.crl_number(crl)
    except certs_ca.InvalidCRL as exc:
        raise certs_ca.InvalidCRL(f"{where}: {exc}") from None
    if crl.next_update_utc is None:
        raise certs_ca.InvalidCRL(f"{where} carries no nextUpdate")
    try:  # entries are parsed lazily
        serials = frozenset(entry.serial_number for entry in crl)
    except ValueError as exc:
        raise certs_ca.InvalidCRL(f"{where} holds a malformed entry: {exc}") from None
    return Revocations(number, crl.next_update_utc, serials, crl)


FileState = tuple[int, int, int] | None
"""(inode, size, mtime in ns) of the CRL file, None when it cannot be seen: a change in any of
them (an atomic replace, a `cp` over it, a touch) makes the file be read again."""


def _file_state(path: Path) -> FileState:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns


class Authenticator:
    """Turns a call's TLS peer certificate into a Caller, refusing revoked certificates.

    Parsed certificates are cached by their PEM bytes (a gateway sees the same few thousand
    certificates again and again); revocation is checked on every call against the CRL in force.
    Raises certs.ca.CAError when `crl_path` holds no usable CRL now (see the module docstring).
    """

    def __init__(self, ca_certificate: x509.Certificate, crl_path: Path,
                 clock: Callable[[], datetime]):
        self._ca = ca_certificate
        self._crl_path = Path(crl_path)
        self._clock = clock
        self._lock = threading.Lock()
        self._file = _file_state(self._crl_path)
        self._crl = read_crl(self._crl_path, ca_certificate)
        self._offered: Revocations | None = None
        if self._clock() > self._crl.next_update:
            raise certs_ca.InvalidCRL(f"{self._crl_path}: {_expired(self._crl)}")

    def authenticate(self, pem: bytes | None) -> Caller:
        """The caller presenting the verified peer certificate `pem` (None: the peer presented
        none); raises errors.Unauthenticated when it has no usable identity."""
        if not pem:
            raise errors.Unauthenticated(
                "a client certificate issued by the national CA is required",
                reason="CERTIFICATE_REQUIRED",
            )
        serial, identity = _read_certificate(pem)
        if isinstance(identity, ValueError):
            raise errors.Unauthenticated(
                f"the client certificate carries no govshare identity: {identity}",
                reason="IDENTITY_MISSING",
            )
        caller = Caller(identity, serial, pem)
        self.recheck(caller)
        return caller

    def recheck(self, caller: Caller) -> None:
        """Raise errors.Unauthenticated once the CA has revoked the caller's certificate (a
        stream checks again while it runs)."""
        if self.revoked_serial(caller.serial, identity=caller.uri):
            raise errors.Unauthenticated(
                "the client certificate has been revoked; ask the national CA for a new one",
                reason="CERTIFICATE_REVOKED",
                serial=format(caller.serial, "x"),
                identity=caller.uri,
            )

    def revoked(self, certificate: x509.Certificate) -> bool:
        """Whether the CA has revoked `certificate` (by serial, per the CRL in force)."""
        return self.revoked_serial(certificate.serial_number)

    def revoked_serial(self, serial: int, **metadata: str) -> bool:
        """Whether `serial` is revoked; errors.Unavailable CRL_EXPIRED when the CRL in force is
        past its nextUpdate (`metadata` goes with that error: the caller's identity)."""
        crl = self._current()
        if self._clock() > crl.next_update:
            raise errors.Unavailable(_expired(crl) + "; retry once it has",
                                     reason="CRL_EXPIRED",
                                     next_update=crl.next_update.isoformat(), **metadata)
        return serial in crl.serials

    def offer(self, crl: x509.CertificateRevocationList, where: str) -> None:
        """Hold `crl` (from `where`: the network configuration) beside the file's; the one with
        the higher CRL number is in force. certs.ca.CAError unless it is the CA's."""
        offered = revocations(crl, self._ca, where)
        with self._lock:
            if self._offered is None or offered.number > self._offered.number:
                self._offered = offered

    def crl_in_force(self) -> x509.CertificateRevocationList:
        """The CRL in force (the newer of `[tls] crl` and the one offered)."""
        return self._current().crl

    def _current(self) -> Revocations:
        """The CRL in force: the newer of the file's and the one offered."""
        offered = self._offered
        from_file = self._from_file()
        return offered if offered is not None and offered.number > from_file.number else from_file

    def _from_file(self) -> Revocations:
        state = _file_state(self._crl_path)
        if state == self._file:  # the usual case: one stat, no lock
            return self._crl
        with self._lock:
            if state != self._file:
                self._reload()
                self._file = state  # after: lock-free readers see the new CRL from now on
            return self._crl

    def _reload(self) -> None:
        """Take the file's CRL if it is the CA's and not older than the one in force; otherwise
        keep that one and log why (once: the file is not read again until it changes)."""
        try:
            crl = read_crl(self._crl_path, self._ca)
            if crl.number < self._crl.number:
                raise certs_ca.InvalidCRL(
                    f"{self._crl_path} holds CRL number {crl.number}, older than the one in force"
                    " (an old CRL put back would un-revoke certificates)")
        except certs_ca.CAError as exc:
            log.error("[tls] crl: %s; keeping CRL number %d in force until a valid CRL replaces"
                      " it", exc, self._crl.number)
            return
        log.info("[tls] crl: CRL number %d in force, %d certificates revoked", crl.number,
                 len(crl.serials))
        self._crl = crl


def _expired(crl: Revocations) -> str:
    return (f"the national CA's revocation list (CRL number {crl.number}) expired at"
            f" {crl.next_update:%Y-%m-%d %H:%M:%S} UTC, so no certificate can be checked: the CA"
            " must re-sign it (govshare certs crl) and the operator copy it to [tls] crl")


@functools.lru_cache(maxsize=4096)
def _read_certificate(pem: bytes) -> tuple[int, Identity | ValueError]:
    """(serial, identity) of a PEM certificate, or (serial, the reason it carries none)."""
    certificate = x509.load_pem_x509_certificate(pem)
    try:
        return certificate.serial_number, identity_from_certificate(certificate)
    except ValueError as exc:
        return certificate.serial_number, exc
