"""The `govshare` command line: a thin layer over the library.

The one place that assembles the command groups: each command module defines its commands
and imports only the shared options.py, output.py and exits.py, never another command module.
Errors become one-line messages and exit codes in `exits.handles_errors` (SDK errors and local
mistakes) and here (Ctrl-C: exit 130, as shells report an interrupt).
"""

from __future__ import annotations

from typing import Any

import click

from gateway.cli import agency_catalog, agency_exchange
from gateway.cli.admin import admin
from gateway.cli.agency import agency
from gateway.cli.audit import audit
from gateway.cli.certs import certs as certs_group
from gateway.cli.demo import demo
from gateway.cli.network import network
from gateway.cli.serve import gateway_group

EXIT_INTERRUPTED = 130


class _Interruptible(click.Group):
    """Ctrl-C exits 130 with a short message, not click's "Aborted!" and exit 1 (which
    exits.py documents as "refused by the gateway")."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("\nInterrupted.", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None


@click.group(cls=_Interruptible, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="govshare")
def cli() -> None:
    """govshare: signed, audited data sharing between government agencies over gRPC."""


for command in (*agency_catalog.COMMANDS, *agency_exchange.COMMANDS):
    agency.add_command(command)

cli.add_command(certs_group)
cli.add_command(gateway_group)
cli.add_command(agency)
cli.add_command(admin)
cli.add_command(audit)
cli.add_command(demo)
cli.add_command(network)


def main() -> None:
    """Entry point of the `govshare` console script."""
    cli.main(standalone_mode=True)
