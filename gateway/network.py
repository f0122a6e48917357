"""Lay out a govshare gateway in one folder: CA, gateway, staff and agency certificates, config.

The demo and the tests build their networks with this, so they exercise exactly the files an
operator would deploy:

    DIR/gateway.toml
    DIR/certs/ca/            the national CA (ca.pem, ca.key, crl.pem, index.json), or, for a
                             member of a national network laid out from a CA of its own
                             elsewhere, a copy of its ca.pem and crl.pem only
    DIR/certs/gateway/       the gateway's TLS and signing certificates
    DIR/certs/admin/         an administrator's client certificate
    DIR/certs/auditor/       an auditor's client certificate
    DIR/certs/<agency-id>/   each agency's TLS and signing certificates
    DIR/govshare.db, DIR/blobs/, DIR/audit.checkpoint, DIR/audit.vkey   created by the gateway
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.serialization import Encoding

from certs import CA_CERT, CRL_FILE
from certs.ca import CertificateAuthority
from gateway import config as config_module


class Agency(Protocol):
    """What laying out needs of an agency (the simulator's `AgencySpec` is one): its id."""

    @property
    def id(self) -> str: ...


@dataclass(frozen=True)
class NetworkLayout:
    """Where a laid-out gateway's files are."""

    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / "gateway.toml"

    @property
    def ca_folder(self) -> Path:
        return self.root / "certs" / "ca"

    @property
    def certs_folder(self) -> Path:
        """The folder of every certificate folder."""
        return self.root / "certs"

    def certs(self, name: str) -> Path:
        """The certificate folder of an agency id, or of "admin", "auditor", "gateway"."""
        return self.certs_folder / name


def lay_out(
    root: Path,
    agencies: Iterable[Agency],
    *,
    listen: str = "127.0.0.1:0",
    ca: CertificateAuthority | None = None,
    gateway_id: str = "gateway",
    **sections: dict,
) -> NetworkLayout:
    """Create every certificate and gateway.toml under `root`, and the CA too unless `ca` is
    given (a national CA shared by several gateways: its certificate and CRL are copied into
    certs/ca, where gateway.toml looks for them). `gateway_id` is the name the gateway's
    certificates are issued for, a network member's id. `sections` override config values,
    e.g. limits={"burst": 10}."""
    layout = NetworkLayout(Path(root))
    if ca is None:
        ca = CertificateAuthority.init(layout.ca_folder)
    else:
        layout.ca_folder.mkdir(parents=True)
        (layout.ca_folder / CA_CERT).write_bytes(ca.certificate_pem)
        (layout.ca_folder / CRL_FILE).write_bytes(ca.crl().public_bytes(Encoding.PEM))
    ca.issue_gateway(layout.certs("gateway"), gateway_id)
    ca.issue_staff("admin", "admin", layout.certs("admin"))
    ca.issue_staff("auditor", "auditor", layout.certs("auditor"))
    for spec in agencies:
        ca.issue_agency(spec.id, layout.certs(spec.id))
    config = config_module.Config().replace(
        server={"listen": listen, **sections.pop("server", {})},
        tls={
            "ca": Path("certs/ca/ca.pem"),
            "crl": Path("certs/ca/crl.pem"),
            "certificate": Path("certs/gateway/tls.pem"),
            "key": Path("certs/gateway/tls.key"),
            "signing_certificate": Path("certs/gateway/signing.pem"),
            "signing_key": Path("certs/gateway/signing.key"),
        },
        **sections,
    )
    layout.config_path.write_text(config_module.render(config))
    return layout


def add_agency(layout: NetworkLayout, spec: Agency) -> Path:
    """Issue certificates for one more agency; returns its folder."""
    CertificateAuthority.open(layout.ca_folder).issue_agency(spec.id, layout.certs(spec.id))
    return layout.certs(spec.id)


def free_port() -> int:
    """A port free on 127.0.0.1 now. A gateway's address goes into gateway.toml (and a network
    configuration) before the gateway binds it, and a restart binds it again, so it cannot be
    port 0."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
