"""`govshare admin ...`: the directory as an administrator (a staff certificate with the
`admin` role) manages it: register, suspend, reinstate, replace signing certificates.

Connection options, output and exit codes as for `govshare agency` (options.py, output.py,
exits.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from agencies.client import AdminClient
from gateway.cli.exits import LocalMistake, handles_errors
from gateway.cli.options import client_from, connect, connection_options
from gateway.cli.output import print_items
from gateway.v1 import directory_pb2
from govshare.enums import enum_name

SIGNING_CERT = click.option(
    "--signing-cert", "signing_cert", required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The agency's signing.pem, as the national CA issued it (govshare certs issue-agency).")
REASON = click.option("--reason", required=True,
                      help="Why (1 to 500 characters); recorded in the audit log.")


@click.group("admin")
@connection_options
@click.pass_context
def admin(ctx: click.Context, **connection: Any) -> None:
    """Manage the directory of agencies, as an administrator."""
    connect(ctx, **connection)


@admin.command("agencies")
@click.option("--region", default="", help="Only agencies in this GB/T 2260 region code.")
@click.pass_context
@handles_errors
def agencies(ctx: click.Context, region: str) -> None:
    """List the agencies on the network, with their state and signing keys."""
    with client_from(ctx, AdminClient) as client:
        _show(ctx, *client.agencies(region))


@admin.command("register")
@click.argument("agency_id")
@click.option("--name", "display_name", required=True,
              help="The agency's name, for example \"Guangdong Provincial Health Commission\".")
@click.option("--region", "region_code", required=True,
              help="Its GB/T 2260 region code, for example 440000.")
@SIGNING_CERT
@click.pass_context
@handles_errors
def register(ctx: click.Context, agency_id: str, display_name: str, region_code: str,
             signing_cert: Path) -> None:
    """Register agency AGENCY_ID with its signing certificate."""
    pem = _read(signing_cert)
    with client_from(ctx, AdminClient) as client:
        _show(ctx, client.register_agency(agency_id, display_name, region_code, pem))


@admin.command("suspend")
@click.argument("agency")
@REASON
@click.pass_context
@handles_errors
def suspend(ctx: click.Context, agency: str, reason: str) -> None:
    """Suspend AGENCY: every call it makes is refused until it is reinstated."""
    with client_from(ctx, AdminClient) as client:
        _show(ctx, client.suspend_agency(agency, reason))


@admin.command("reinstate")
@click.argument("agency")
@REASON
@click.pass_context
@handles_errors
def reinstate(ctx: click.Context, agency: str, reason: str) -> None:
    """Reinstate a suspended AGENCY."""
    with client_from(ctx, AdminClient) as client:
        _show(ctx, client.reinstate_agency(agency, reason))


@admin.command("replace-certificate")
@click.argument("agency")
@SIGNING_CERT
@REASON
@click.pass_context
@handles_errors
def replace_certificate(ctx: click.Context, agency: str, signing_cert: Path,
                        reason: str) -> None:
    """Give AGENCY a new signing certificate (a renewal, a lost or compromised key)."""
    pem = _read(signing_cert)
    with client_from(ctx, AdminClient) as client:
        _show(ctx, client.replace_signing_certificate(agency, pem, reason))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise LocalMistake(f"cannot read the signing certificate {path}: {exc}") from None


def _show(ctx: click.Context, *found: directory_pb2.Agency) -> None:
    print_items(ctx, found, ("agency", "name", "region", "state", "signing key", "previous keys"),
                lambda agency: (agency.name, agency.display_name, agency.region_code,
                                enum_name(directory_pb2.AgencyState, agency.state),
                                agency.signing_key_id,
                                str(len(agency.previous_signing_certificates))))
