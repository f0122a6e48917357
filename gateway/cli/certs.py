"""``govshare certs``: the national CA on the command line, a thin layer over :mod:`certs`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from certs import (
    CRL_DAYS,
    CRL_FILE,
    DEFAULT_CA_NAME,
    LEAF_DAYS,
    REVOCATION_REASONS,
    ROOT_DAYS,
    STAFF_DAYS,
    STAFF_ROLES,
    CAError,
    CertificateAuthority,
    IssuedBundle,
    IssuedCertificate,
    crl_number,
    valid_until,
)
from gateway.cli.exits import LocalMistake
from gateway.cli.output import folding_table
from govshare.names import ID_PATTERN

_COMMON_NAME_MAX = 64
"""ub-common-name in RFC 5280."""
_DNS_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_DNS_NAME_MAX = 253


class _CertsGroup(click.Group):
    """The one place that turns errors into one ``Error:`` line on stderr: a CA refusal exits 1,
    a malformed argument or an unusable folder exits 2 (usage), like ``govshare agency``."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CAError as exc:
            raise click.ClickException(str(exc)) from exc
        except click.BadParameter as exc:
            raise LocalMistake(exc.format_message()) from None
        except OSError as exc:
            where = f" {exc.filename}" if exc.filename else ""
            raise LocalMistake(
                f"cannot use{where}: {exc.strerror or exc}; check the path and its permissions"
            ) from None


# Click types that check arguments before the CA runs: a typo is a usage error, not a traceback.
def _identifier(value: str) -> str:
    if ID_PATTERN.fullmatch(value) is None:
        raise ValueError(f"{value!r} must match {ID_PATTERN.pattern}")
    return value


def _ip(value: str) -> str:
    return str(ip_address(value))


def _common_name(value: str) -> str:
    if not value.strip() or len(value) > _COMMON_NAME_MAX or not value.isprintable():
        raise ValueError(
            f"{value!r} must be 1 to {_COMMON_NAME_MAX} printable characters, not all blank"
        )
    return value


def _dns(value: str) -> str:
    """An A-label DNS name, as X.509 holds only ASCII: ``中国.gov`` becomes ``xn--fiqs8s.gov``
    (IDNA 2003, Python's ``idna`` codec). A leading ``*.`` is a wildcard."""
    try:
        name = value.encode("idna").decode("ascii").lower().removesuffix(".")
    except UnicodeError:
        name = ""
    labels = name.removeprefix("*.").split(".")
    if len(name) > _DNS_NAME_MAX or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            f"{value!r} is not a DNS name: give dot-separated labels of 1 to 63 letters, digits"
            " or inner hyphens"
        )
    return name


def _days(ctx: click.Context, param: click.Parameter, days: int) -> int:
    """Refuse a validity whose end X.509 cannot hold, before anything is written."""
    try:
        valid_until(days)
    except CAError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
    return days


_DIR = click.Path(file_okay=False, path_type=Path)
_ca_option = click.option(
    "--ca",
    "ca_dir",
    required=True,
    type=_DIR,
    help="CA folder (ca.pem, ca.key, crl.pem, index.json).",
)
_out_option = click.option(
    "--out",
    "out_dir",
    required=True,
    type=_DIR,
    help="Folder to write the certificates and keys to.",
)


def _days_option(
    default: int, help_text: str = "Validity in days."
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--days",
        default=default,
        show_default=True,
        type=click.IntRange(min=1),
        callback=_days,
        help=help_text,
    )


@click.group("certs", cls=_CertsGroup)
def certs() -> None:
    """Run the national certificate authority: issue, revoke and list certificates."""


@certs.command()
@_ca_option
@click.option(
    "--name",
    default=DEFAULT_CA_NAME,
    show_default=True,
    type=_common_name,
    metavar="TEXT",
    help="Root certificate CN.",
)
@_days_option(ROOT_DAYS)
def init(ca_dir: Path, name: str, days: int) -> None:
    """Create a new root CA in --ca; refuses to overwrite an existing one."""
    ca = CertificateAuthority.init(ca_dir, name=name, validity_days=days)
    click.echo(f"Created root CA {ca.certificate.subject.rfc4514_string()} in {ca_dir}")


@certs.command("issue-agency")
@click.argument("agency_id", type=_identifier)
@_ca_option
@_out_option
@_days_option(LEAF_DAYS)
def issue_agency(agency_id: str, ca_dir: Path, out_dir: Path, days: int) -> None:
    """Issue an agency's TLS client certificate and its separate Ed25519 signing certificate."""
    _echo_bundle(CertificateAuthority.open(ca_dir).issue_agency(agency_id, out_dir, days))


@certs.command("issue-gateway")
@_ca_option
@_out_option
@click.option(
    "--dns",
    "dns_names",
    multiple=True,
    type=_dns,
    metavar="NAME",
    default=("localhost",),
    show_default=True,
    help="DNS name of the gateway (non-ASCII names are IDNA-encoded); repeat for several.",
)
@click.option(
    "--ip",
    "ip_addresses",
    multiple=True,
    type=_ip,
    metavar="ADDR",
    default=("127.0.0.1",),
    show_default=True,
    help="IP address of the gateway; repeat for several.",
)
@click.option(
    "--name",
    default="gateway",
    show_default=True,
    type=_identifier,
    metavar="ID",
    help="Gateway id.",
)
@_days_option(LEAF_DAYS)
def issue_gateway(
    ca_dir: Path,
    out_dir: Path,
    dns_names: tuple[str, ...],
    ip_addresses: tuple[str, ...],
    name: str,
    days: int,
) -> None:
    """Issue the gateway's TLS server certificate and its receipt-signing certificate."""
    ca = CertificateAuthority.open(ca_dir)
    _echo_bundle(ca.issue_gateway(out_dir, name, dns_names, ip_addresses, days))


@certs.command("issue-network-authority")
@click.argument("network_id", type=_identifier)
@_ca_option
@_out_option
@_days_option(LEAF_DAYS)
def issue_network_authority(network_id: str, ca_dir: Path, out_dir: Path, days: int) -> None:
    """Issue the signing certificate of the authority that signs NETWORK_ID's configuration."""
    ca = CertificateAuthority.open(ca_dir)
    _echo_bundle(ca.issue_network_authority(network_id, out_dir, days))


@certs.command("issue-staff")
@click.argument("name", type=_identifier)
@click.option("--role", required=True, type=click.Choice(STAFF_ROLES), help="Duty of the person.")
@_ca_option
@_out_option
@_days_option(STAFF_DAYS)
def issue_staff(name: str, role: str, ca_dir: Path, out_dir: Path, days: int) -> None:
    """Issue an admin or auditor TLS client certificate; staff get no signing key."""
    _echo_bundle(CertificateAuthority.open(ca_dir).issue_staff(name, role, out_dir, days))


@certs.command()
@click.argument("serial_or_uri")
@_ca_option
@click.option(
    "--reason",
    type=click.Choice(REVOCATION_REASONS),
    default="unspecified",
    show_default=True,
    help="RFC 5280 revocation reason.",
)
def revoke(serial_or_uri: str, ca_dir: Path, reason: str) -> None:
    """Revoke a certificate by hex serial, or all of an identity's by URN, and re-sign the CRL."""
    for row in CertificateAuthority.open(ca_dir).revoke(serial_or_uri, reason):
        click.echo(f"Revoked {row.serial} ({row.identity} {row.purpose}, {row.reason})")


@certs.command("crl")
@_ca_option
@_days_option(CRL_DAYS, help_text="Days until the CRL's nextUpdate.")
def renew_crl(ca_dir: Path, days: int) -> None:
    """Re-sign the CRL with the same revocations and the next CRL number, before it expires."""
    crl = CertificateAuthority.open(ca_dir).renew_crl(days)
    click.echo(
        f"Re-signed {ca_dir / CRL_FILE} (CRL number {crl_number(crl)}, {len(crl)} revoked);"
        f" next update {crl.next_update_utc} - copy it to the gateway before then"
    )


@certs.command("list")
@_ca_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_certificates(ca_dir: Path, as_json: bool) -> None:
    """List issued certificates with their expiry and revocation state."""
    rows = CertificateAuthority.open(ca_dir).list()
    if as_json:
        click.echo(
            json.dumps([{**row.to_json(), "status": row.status()} for row in rows], indent=2)
        )
        return
    # Fold rather than elide: the serial and URN are what an operator copies to revoke.
    table = folding_table("Purpose", "Expires (UTC)", "Status", "Serial", "Identity")
    for row in rows:
        table.add_row(
            row.purpose, f"{row.not_after:%Y-%m-%d}", _status(row), row.serial, row.identity
        )
    Console().print(table)


def _status(row: IssuedCertificate) -> str:
    if row.revoked_at is None:
        return row.status()
    return f"revoked {row.revoked_at:%Y-%m-%d} ({row.reason})"


def _echo_bundle(bundle: IssuedBundle) -> None:
    click.echo(f"Issued {bundle.identity.uri} into {bundle.folder}")
    for issued in (bundle.tls, bundle.signing):
        if issued is not None:
            click.echo(f"  {issued.purpose:<8} serial {issued.serial}  expires {issued.not_after}")
    click.echo(f"  files: {', '.join(path.name for path in bundle.files)}")
