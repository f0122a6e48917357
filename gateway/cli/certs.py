"""``govshare certs``: the national CA on the command line, a thin layer over :mod:`certs`."""

from __future__ import annotations

import json
from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from certs import (
    DEFAULT_CA_NAME,
    ID_PATTERN,
    LEAF_DAYS,
    REVOCATION_REASONS,
    ROOT_DAYS,
    STAFF_DAYS,
    STAFF_ROLES,
    CAError,
    CertificateAuthority,
    IssuedBundle,
    IssuedCertificate,
)


class _CertsGroup(click.Group):
    """The one place that catches CAError: one ``Error:`` line on stderr, exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CAError as exc:
            raise click.ClickException(str(exc)) from exc


# Click types that check arguments before the CA runs: a typo is a usage error, not a traceback.
def _identifier(value: str) -> str:
    if ID_PATTERN.fullmatch(value) is None:
        raise ValueError(f"{value!r} must match {ID_PATTERN.pattern}")
    return value


def _ip(value: str) -> str:
    return str(ip_address(value))


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


def _days_option(default: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--days",
        default=default,
        show_default=True,
        type=click.IntRange(min=1),
        help="Validity in days.",
    )


@click.group("certs", cls=_CertsGroup)
def certs() -> None:
    """Run the national certificate authority: issue, revoke and list certificates."""


@certs.command()
@_ca_option
@click.option("--name", default=DEFAULT_CA_NAME, show_default=True, help="Root certificate CN.")
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
    default=("localhost",),
    show_default=True,
    help="DNS name of the gateway; repeat for several.",
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
    table = Table("Purpose", "Expires (UTC)", "Status")
    table.add_column("Serial", overflow="fold")
    table.add_column("Identity", overflow="fold")
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
