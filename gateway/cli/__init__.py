"""The `govshare` command line: a thin layer over the library.

Library errors are turned into one-line messages in exactly one place (`main`).
"""

from __future__ import annotations

import sys

import click

from gateway.cli.agency import agency
from gateway.cli.audit import audit
from gateway.cli.certs import certs as certs_group
from gateway.cli.demo import demo
from gateway.cli.serve import gateway_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="govshare")
def cli() -> None:
    """govshare: signed, audited data sharing between government agencies over gRPC."""


cli.add_command(certs_group)
cli.add_command(gateway_group)
cli.add_command(agency)
cli.add_command(audit)
cli.add_command(demo)


def main() -> None:
    """Entry point of the `govshare` console script."""
    try:
        cli.main(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
