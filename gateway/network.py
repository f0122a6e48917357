"""Lay out a govshare network in one folder: CA, gateway, staff and agency certificates, config.

The demo and the tests build their networks with this, so they exercise exactly the files an
operator would deploy:

    DIR/gateway.toml
    DIR/certs/ca/            the national CA (ca.pem, ca.key, crl.pem, index.json)
    DIR/certs/gateway/       the gateway's TLS and signing certificates
    DIR/certs/admin/         an administrator's client certificate
    DIR/certs/auditor/       an auditor's client certificate
    DIR/certs/<agency-id>/   each agency's TLS and signing certificates
    DIR/govshare.db, DIR/blobs/, DIR/audit.checkpoint, DIR/audit.vkey   created by the gateway
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from certs.ca import CertificateAuthority
from gateway import config as config_module


class Agency(Protocol):
    """What laying out needs of an agency (the simulator's `AgencySpec` is one): its id."""

    @property
    def id(self) -> str: ...


@dataclass(frozen=True)
class NetworkLayout:
    """Where a laid-out network's files are."""

    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / "gateway.toml"

    @property
    def ca_folder(self) -> Path:
        return self.root / "certs" / "ca"

    def certs(self, name: str) -> Path:
        """The certificate folder of an agency id, or of "admin", "auditor", "gateway"."""
        return self.root / "certs" / name


def lay_out(
    root: Path,
    agencies: Iterable[Agency],
    *,
    listen: str = "127.0.0.1:0",
    **sections: dict,
) -> NetworkLayout:
    """Create the CA, every certificate and gateway.toml under `root` (which must be new or
    empty of a CA). `sections` override config values, e.g. limits={"burst": 10}."""
    layout = NetworkLayout(Path(root))
    ca = CertificateAuthority.init(layout.ca_folder)
    ca.issue_gateway(layout.certs("gateway"))
    ca.issue_staff("admin", "admin", layout.certs("admin"))
    ca.issue_staff("auditor", "auditor", layout.certs("auditor"))
    for spec in agencies:
        ca.issue_agency(spec.id, layout.certs(spec.id))
    config = config_module.Config().replace(
        server={"listen": listen},
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
