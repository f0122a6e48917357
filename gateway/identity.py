"""Who is calling: the identity in the verified peer certificate, checked against the CRL.

This is the only place a caller's identity is established. The TLS handshake has already
verified the certificate chain to the national CA; here the govshare identity URI is read from
the certificate's SAN and the certificate is checked against the CA's revocation list, which is
re-read whenever its file changes. Nothing in a request body can change the result.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509

from certs import ca as certs_ca
from certs.identity import Identity, identity_from_certificate
from gateway import errors


@dataclass(frozen=True)
class Caller:
    """An authenticated caller."""

    identity: Identity
    serial: int

    @property
    def uri(self) -> str:
        return self.identity.uri

    @property
    def kind(self) -> str:
        return self.identity.kind

    @property
    def agency_name(self) -> str:
        """"agencies/{id}" for an agency caller, empty otherwise."""
        return f"agencies/{self.identity.id}" if self.identity.kind == "agency" else ""


class Authenticator:
    """Turns a call's TLS peer certificate into a Caller, refusing revoked certificates.

    Parsed certificates are cached by their PEM bytes (a gateway sees the same few thousand
    certificates again and again); revocation is checked on every call against the current CRL.
    """

    def __init__(self, ca_certificate: x509.Certificate, crl_path: Path):
        self._ca = ca_certificate
        self._crl_path = Path(crl_path)
        self._revoked_serials: frozenset[int] = frozenset()
        self._crl_mtime = -1.0
        self._lock = threading.Lock()

    def authenticate(self, context: grpc.ServicerContext) -> Caller:
        """The caller of this RPC; raises errors.Unauthenticated when it has no usable identity."""
        pem = context.auth_context().get("x509_pem_cert")
        if not pem:
            raise errors.Unauthenticated(
                "a client certificate issued by the national CA is required",
                reason="CERTIFICATE_REQUIRED",
            )
        serial, identity = _read_certificate(pem[0])
        if isinstance(identity, ValueError):
            raise errors.Unauthenticated(
                f"the client certificate carries no govshare identity: {identity}",
                reason="IDENTITY_MISSING",
            )
        if self.revoked_serial(serial):
            raise errors.Unauthenticated(
                "the client certificate has been revoked; ask the national CA for a new one",
                reason="CERTIFICATE_REVOKED",
                serial=format(serial, "x"),
                identity=identity.uri,
            )
        return Caller(identity, serial)

    def revoked(self, certificate: x509.Certificate) -> bool:
        """Whether the CA has revoked `certificate` (by serial, per the current CRL)."""
        return self.revoked_serial(certificate.serial_number)

    def revoked_serial(self, serial: int) -> bool:
        return serial in self._current_revocations()

    def _current_revocations(self) -> frozenset[int]:
        try:
            mtime = self._crl_path.stat().st_mtime
        except FileNotFoundError:
            return frozenset()
        with self._lock:
            if mtime != self._crl_mtime:
                crl = certs_ca.load_crl(self._crl_path)
                if not crl.is_signature_valid(self._ca.public_key()):  # type: ignore[arg-type]
                    raise errors.Unavailable("the CRL is not signed by the national CA")
                self._revoked_serials = frozenset(entry.serial_number for entry in crl)
                self._crl_mtime = mtime
            return self._revoked_serials


@functools.lru_cache(maxsize=4096)
def _read_certificate(pem: bytes) -> tuple[int, Identity | ValueError]:
    """(serial, identity) of a PEM certificate, or (serial, the reason it carries none)."""
    certificate = x509.load_pem_x509_certificate(pem)
    try:
        return certificate.serial_number, identity_from_certificate(certificate)
    except ValueError as exc:
        return certificate.serial_number, exc
