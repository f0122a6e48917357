"""`govshare agency ...`: every SDK operation from the terminal.

The group and `directory`; the catalog's commands (agency_catalog.py) and the exchange's
(agency_exchange.py) join it in gateway/cli/__init__.py. Connection options, output and exit
codes: options.py, output.py, exits.py.
"""

from __future__ import annotations

from typing import Any

import click

from gateway.cli.exits import handles_errors
from gateway.cli.options import client_from, connect, connection_options
from gateway.cli.output import print_items, say_stale
from gateway.v1 import directory_pb2
from govshare.enums import enum_name


@click.group("agency")
@connection_options
@click.pass_context
def agency(ctx: click.Context, **connection: Any) -> None:
    """Act as an agency: publish, search, request, decide, fetch, watch."""
    connect(ctx, **connection)


@agency.command("directory")
@click.option("--region", default="", help="Only agencies in this GB/T 2260 region code.")
@click.pass_context
@handles_errors
def directory(ctx: click.Context, region: str) -> None:
    """List the agencies on the network."""
    with client_from(ctx) as client:
        listing = client.agencies(region)
        found = list(listing)
    print_items(ctx, found, ("agency", "name", "region", "state"), lambda item: (
        item.name, item.display_name, item.region_code,
        enum_name(directory_pb2.AgencyState, item.state)))
    say_stale(listing.stale_members)
