"""`govshare agency ...`: every SDK operation from the terminal.

Connection options come from flags or from a profile file (`--profile FILE`, TOML with `certs`
and `gateway` keys). Tables by default, `--json` for scripts. Exit codes: 0 success, 1 refused
by the gateway or failed verification, 2 usage error, 3 gateway unreachable.
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click
from google.protobuf import json_format
from rich.console import Console

from agencies import errors
from agencies.client import AgencyClient
from gateway.v1 import directory_pb2

EXIT_REFUSED = 1
EXIT_UNREACHABLE = 3

console = Console()


@click.group("agency")
@click.option("--certs", "certs_dir", type=click.Path(file_okay=False, path_type=Path),
              envvar="GOVSHARE_CERTS", help="The agency's certificate folder.")
@click.option("--gateway", "target", envvar="GOVSHARE_GATEWAY",
              help="Gateway address host:port.")
@click.option("--profile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML file with `certs` and `gateway` keys.")
@click.option("--server-name", default=None, help="TLS name to expect (default: the host).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of tables.")
@click.pass_context
def agency(ctx: click.Context, certs_dir: Path | None, target: str | None,
           profile: Path | None, server_name: str | None, as_json: bool) -> None:
    """Act as an agency: publish, search, request, decide, fetch, watch."""
    if profile:
        with profile.open("rb") as handle:
            values = tomllib.load(handle)
        certs_dir = certs_dir or (profile.parent / values["certs"])
        target = target or values.get("gateway")
        server_name = server_name or values.get("server_name")
    ctx.obj = {"certs": certs_dir, "target": target, "server_name": server_name,
               "json": as_json}


def client_from(ctx: click.Context) -> AgencyClient:
    """The AgencyClient the group options describe."""
    obj = ctx.find_root().find_object(dict) or ctx.obj
    if not obj.get("certs") or not obj.get("target"):
        raise click.UsageError("give --certs and --gateway (or --profile)")
    return AgencyClient(obj["target"], obj["certs"], server_name=obj.get("server_name"))


def wants_json(ctx: click.Context) -> bool:
    return bool(ctx.obj and ctx.obj.get("json"))


def emit_json(message: Any) -> None:
    """One protobuf message (or dict) as one JSON line."""
    if hasattr(message, "DESCRIPTOR"):
        message = json_format.MessageToDict(message, preserving_proto_field_name=True)
    click.echo(json.dumps(message, ensure_ascii=False, sort_keys=True))


def enum_choice(enum: Any) -> click.Choice:
    """A case-insensitive choice of an enum's short names ("CSV" for MEDIA_TYPE_CSV)."""
    prefix = enum.DESCRIPTOR.values[0].name.removesuffix("UNSPECIFIED")
    return click.Choice([v.name.removeprefix(prefix) for v in enum.DESCRIPTOR.values[1:]],
                        case_sensitive=False)


def enum_short(enum: Any, value: int) -> str:
    """The short name of an enum value, as `enum_choice` offers it."""
    prefix = enum.DESCRIPTOR.values[0].name.removesuffix("UNSPECIFIED")
    return enum.Name(value).removeprefix(prefix)


def handles_errors(command: Callable) -> Callable:
    """Turn SDK errors into one line on stderr and a reliable exit code."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except errors.Unavailable as exc:
            click.echo(f"Error: gateway unreachable or unavailable: {exc.message}", err=True)
            sys.exit(EXIT_UNREACHABLE)
        except errors.GovshareError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(EXIT_REFUSED)

    return run


@agency.command("directory")
@click.option("--region", default="", help="Only agencies in this GB/T 2260 region code.")
@click.pass_context
@handles_errors
def directory(ctx: click.Context, region: str) -> None:
    """List the agencies on the network."""
    from rich.table import Table

    with client_from(ctx) as client:
        found = list(client.agencies(region))
    if wants_json(ctx):
        for item in found:
            emit_json(item)
        return
    table = Table("agency", "name", "region", "state")
    for item in found:
        table.add_row(item.name, item.display_name, item.region_code,
                      enum_short(directory_pb2.AgencyState, item.state))
    console.print(table)


from gateway.cli import agency_catalog, agency_exchange  # noqa: E402,F401  (registers commands)
