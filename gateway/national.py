"""Lay out a national network on one machine: the national CA, its network authority, one folder
per member gateway and the signed network configuration naming them all, the steps of
docs/FEDERATION.md "Setting up a network" done in one call (the demo and the tests build their
networks with this):

    DIR/certs/ca/            the national CA (ca.pem, ca.key, crl.pem, index.json)
    DIR/certs/authority/     the network authority: its Ed25519 signing certificate and key
    DIR/network.pb           the signed network configuration (version 1)
    DIR/<gateway-id>/        a member gateway, laid out by `gateway.network.lay_out` from the
                             national CA (certificates of its staff and of the agencies of its
                             regions; gateway.toml with its own [audit] origin and a [network]
                             section naming ../network.pb) and its witness key in
                             certs/gateway/witness.key

Each member listens on a loopback port free when laid out, the address the configuration names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.serialization import Encoding

from certs import SIGNING_CERT, SIGNING_KEY
from certs import network_configuration as netconf
from certs.ca import CertificateAuthority
from gateway.directory import region_prefix
from gateway.network import NetworkLayout, free_port, lay_out
from govshare import times
from govshare.signing import SigningKey

NETWORK_ID = "cn-national"
CONFIGURATION_FILE = "network.pb"
WITNESS_KEY = "certs/gateway/witness.key"
"""A member's witness key, beside its other keys in the private folder of its certificates."""


class RegionalAgency(Protocol):
    """What laying out needs of an agency (the simulator's `AgencySpec` is one)."""

    @property
    def id(self) -> str: ...

    @property
    def region_code(self) -> str: ...


@dataclass(frozen=True)
class Region:
    """A member gateway to lay out: its id (that of its certificates), the name of the
    province it serves and its GB/T 2260 region codes."""

    gateway_id: str
    name: str
    region_codes: tuple[str, ...]

    def serves(self, region_code: str) -> bool:
        """Whether an agency of `region_code` lies within one of the region's codes (440300,
        Shenzhen, within 440000, Guangdong), as replication checks it."""
        return any(region_code.startswith(region_prefix(code)) for code in self.region_codes)


REGIONS = (
    Region("bj-gateway", "Beijing", ("110000",)),
    Region("gd-gateway", "Guangdong", ("440000",)),
    # Jiangsu's agency joins Zhejiang's gateway: four gateways serve the demo's seven agencies.
    Region("zj-gateway", "Zhejiang", ("330000", "320000")),
    Region("sc-gateway", "Sichuan", ("510000",)),
)
"""The demo's national network."""


def audit_origin(gateway_id: str) -> str:
    """The [audit] origin of a member's log: a name of its own in the network."""
    return f"{gateway_id}.govshare.example/audit"


@dataclass(frozen=True)
class NationalLayout:
    """Where a laid-out national network's files are."""

    root: Path
    regions: tuple[Region, ...]
    addresses: dict[str, str] = field(default_factory=dict)
    """Each member's address (host:port) by gateway id, as the configuration names it."""
    agencies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """The ids of each member's agencies, by gateway id."""

    @property
    def ca_folder(self) -> Path:
        return self.root / "certs" / "ca"

    @property
    def authority(self) -> Path:
        return self.root / "certs" / "authority"

    @property
    def configuration_path(self) -> Path:
        return self.root / CONFIGURATION_FILE

    def gateway(self, gateway_id: str) -> NetworkLayout:
        """The folder of member `gateway_id`, laid out as a gateway of its own."""
        return NetworkLayout(self.root / gateway_id)


def lay_out_national(root: Path, regions: Iterable[Region],
                     agencies: Iterable[RegionalAgency], *, quorum: int,
                     addresses: Mapping[str, str] | None = None,
                     validity: timedelta = timedelta(hours=24),
                     **sections: dict) -> NationalLayout:
    """Lay out a national network under `root` (new or empty): each of `agencies` goes to the
    member whose region it lies within (`served_by`), and the configuration asks `quorum` of
    the other members to cosign each log. `addresses` (host:port by gateway id) are where the
    members listen, by default loopback ports free now. `sections` are given to every member's
    gateway.toml (its [network] ones added to those set here)."""
    regions = tuple(regions)
    layout = NationalLayout(Path(root), regions)  # its paths; the addresses come below
    homes = served_by(regions, agencies)
    addresses = dict(addresses or {region.gateway_id: f"127.0.0.1:{free_port()}"
                                   for region in regions})
    ca = CertificateAuthority.init(layout.ca_folder)
    ca.issue_network_authority(NETWORK_ID, layout.authority)
    network = {"configuration_file": f"../{CONFIGURATION_FILE}", "witness_key": WITNESS_KEY,
               **sections.pop("network", {})}
    members = []
    for region in regions:
        gateway_id = region.gateway_id
        address = addresses[gateway_id]
        member = lay_out(layout.root / gateway_id, homes[gateway_id], listen=address, ca=ca,
                         gateway_id=gateway_id, audit={"origin": audit_origin(gateway_id)},
                         network=network, **sections)
        witness = netconf.new_witness_key(member.root / WITNESS_KEY, f"{gateway_id}-witness")
        members.append(netconf.member(
            member.certs("gateway"), gateway_id=gateway_id, region_codes=region.region_codes,
            address=address, audit_origin=audit_origin(gateway_id),
            witness_verifier_key=witness.verifier_key))
    now = times.utcnow()
    configuration = netconf.build(NETWORK_ID, members, quorum,
                                  ca.crl().public_bytes(Encoding.DER), ca.certificate, now)
    signed = netconf.sign(configuration, SigningKey.load(layout.authority / SIGNING_KEY),
                          (layout.authority / SIGNING_CERT).read_text(), ca.certificate,
                          version=1, validity=validity, now=now)
    layout.configuration_path.write_bytes(signed.signed.SerializeToString(deterministic=True))
    return replace(layout, addresses=addresses, agencies={
        gateway_id: tuple(agency.id for agency in served) for gateway_id, served in homes.items()})


def served_by(regions: Iterable[Region],
              agencies: Iterable[RegionalAgency]) -> dict[str, list[RegionalAgency]]:
    """The agencies each region's gateway serves, by gateway id: those of region codes within
    its own (ValueError for an agency no region serves)."""
    regions = tuple(regions)
    homes: dict[str, list[RegionalAgency]] = {region.gateway_id: [] for region in regions}
    for agency in agencies:
        region = next((r for r in regions if r.serves(agency.region_code)), None)
        if region is None:
            raise ValueError(f"no region of the network serves {agency.id}, of region"
                             f" {agency.region_code}")
        homes[region.gateway_id].append(agency)
    return homes
