"""The govshare identity scheme, in one place: who a certificate speaks for.

Every principal is named by a URN, ``urn:govshare:<kind>:<id>``, carried as the one
``urn:govshare:`` URI in its certificate's subjectAltName. The gateway trusts this URN, never the
subject CN, so it is parsed strictly here and nowhere else.

Kinds, and the duties they separate (after GB/T 39477, separation of duties):

- ``agency``: publishes datasets and fetches those it was granted; signs its requests.
- ``gateway``: the exchange itself; signs receipts and audit checkpoints.
- ``admin``: manages the agency directory and revocation.
- ``auditor``: reads the whole audit log.
- ``network``: the network authority of one national network (the id is the network id); signs
  the network configuration and nothing else.

Staff (``admin``, ``auditor``) can never fetch dataset content nor act as an agency: an
administrator who could read data, or an auditor who could act, would defeat the audit. Staff get
a TLS client certificate only, no signing key.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from govshare.names import ID_PATTERN

URN_PREFIX = "urn:govshare:"
KINDS = ("agency", "admin", "auditor", "gateway", "network")
STAFF_ROLES = ("admin", "auditor")


@dataclass(frozen=True)
class Identity:
    """A principal of the exchange; invalid kinds or ids cannot be constructed."""

    kind: str
    id: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown identity kind {self.kind!r}, expected one of {KINDS}")
        if ID_PATTERN.fullmatch(self.id) is None:
            raise ValueError(f"invalid {self.kind} id {self.id!r}: must match {ID_PATTERN.pattern}")

    @property
    def uri(self) -> str:
        return f"{URN_PREFIX}{self.kind}:{self.id}"

    @classmethod
    def parse_uri(cls, uri: str) -> Identity:
        """Parse ``urn:govshare:<kind>:<id>`` exactly: no case folding, no extra parts."""
        if not uri.startswith(URN_PREFIX):
            raise ValueError(f"not a govshare identity URI: {uri!r}")
        kind, separator, ident = uri.removeprefix(URN_PREFIX).partition(":")
        if not separator:
            raise ValueError(f"identity URI has no id: {uri!r}")
        return cls(kind, ident)


def identity_from_certificate(cert: x509.Certificate) -> Identity:
    """The one govshare URN of ``cert``; none or several would make the identity ambiguous."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise ValueError("certificate has no subjectAltName") from None
    uris = [
        uri
        for uri in san.get_values_for_type(x509.UniformResourceIdentifier)
        if uri.lower().startswith(URN_PREFIX)
    ]
    if len(uris) != 1:
        raise ValueError(f"certificate must carry exactly one {URN_PREFIX} URI, found {len(uris)}")
    return Identity.parse_uri(uris[0])
