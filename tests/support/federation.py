"""A national network on disk for the network configuration's tests: a real national CA, its
network authority, and member gateways with real certificates, audit and witness keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from certs import CRL_FILE, SIGNING_CERT, SIGNING_KEY, TLS_CERT, CertificateAuthority
from certs import network_configuration as netconf
from gateway.v1 import network_pb2
from govshare.signing import SigningKey, write_private_pem
from govshare.transparency.cosignature import CosignatureVerifier
from govshare.transparency.note import NoteVerifier

NETWORK_ID = "cn-national"
REGIONS = {"gd-gateway": ["440000", "440100"], "bj-gateway": ["110000"],
           "sh-gateway": ["310000"]}
AUDIT_KEY_FILE = "audit.vkey"
WITNESS_KEY_FILE = "witness.vkey"
WITNESS_PRIVATE_KEY = "witness.key"


def origin(gateway_id: str) -> str:
    return f"{gateway_id}.govshare.example/audit"


@dataclass
class Federation:
    """The CA folder, the authority folder and one folder per member gateway under `root`."""

    root: Path
    ca: CertificateAuthority = field(init=False)

    def __post_init__(self) -> None:
        self.ca = CertificateAuthority.init(self.root / "ca")
        self.ca.issue_network_authority(NETWORK_ID, self.authority)
        for gateway_id in REGIONS:
            self.add_gateway(gateway_id)

    @property
    def authority(self) -> Path:
        return self.root / "authority"

    def folder(self, gateway_id: str) -> Path:
        return self.root / "gateways" / gateway_id

    def add_gateway(self, gateway_id: str, *, name: str | None = None) -> Path:
        """Issue gateway `name` (default: `gateway_id`) into `gateway_id`'s folder, with its
        audit verifier key (of its signing key) and a witness key beside the certificates."""
        out = self.folder(gateway_id)
        self.ca.issue_gateway(out, name or gateway_id)
        signing_key = SigningKey.load(out / SIGNING_KEY)
        (out / AUDIT_KEY_FILE).write_text(
            NoteVerifier(origin(gateway_id), signing_key.verifier()).verifier_key + "\n")
        witness = SigningKey.generate()
        write_private_pem(out / WITNESS_PRIVATE_KEY, witness)
        (out / WITNESS_KEY_FILE).write_text(
            CosignatureVerifier(f"{gateway_id}-witness", witness.verifier()).verifier_key + "\n")
        return out

    def member(self, gateway_id: str) -> network_pb2.MemberGateway:
        out = self.folder(gateway_id)
        return network_pb2.MemberGateway(
            id=gateway_id, region_codes=REGIONS.get(gateway_id, ["650000"]),
            address=f"{gateway_id}.example.gov:8443",
            tls_certificate_pem=(out / TLS_CERT).read_text(),
            signing_certificate_pem=(out / SIGNING_CERT).read_text(),
            audit_origin=origin(gateway_id),
            audit_verifier_key=(out / AUDIT_KEY_FILE).read_text().strip(),
            witness_verifier_key=(out / WITNESS_KEY_FILE).read_text().strip())

    def crl_der(self) -> bytes:
        return self.ca.crl().public_bytes(Encoding.DER)

    def unsigned(self, members: list[network_pb2.MemberGateway] | None = None, quorum: int = 1,
                 now: datetime | None = None) -> network_pb2.NetworkConfiguration:
        """A configuration the checks pass: every member, built by certs.network_configuration."""
        if members is None:
            members = [self.member(gateway_id) for gateway_id in REGIONS]
        return netconf.build(NETWORK_ID, members, quorum, self.crl_der(), self.ca.certificate,
                             now or datetime.now(UTC))

    def sign(self, configuration: network_pb2.NetworkConfiguration, version: int = 1, *,
             validity: timedelta = timedelta(days=1), now: datetime | None = None,
             authority: Path | None = None) -> network_pb2.SignedNetworkConfiguration:
        """`configuration` sealed by the authority in `authority` (default: the network's),
        WITHOUT the checks `sign` makes, so tests can sign what an attacker would."""
        folder = authority or self.authority
        return netconf.seal(configuration, SigningKey.load(folder / SIGNING_KEY),
                            (folder / SIGNING_CERT).read_text(), version=version,
                            validity=validity, now=now or datetime.now(UTC))

    def signed(self, version: int = 1, **options) -> network_pb2.SignedNetworkConfiguration:
        return self.sign(self.unsigned(), version, **options)

    @property
    def crl_path(self) -> Path:
        return self.root / "ca" / CRL_FILE
