"""`govshare agency ...`: every SDK operation from the terminal.

Connection options come from flags or from a profile file (`--profile FILE`, TOML with `certs`
and `gateway` keys). Tables by default, `--json` for scripts. Text from the network is printed as
text: never read as Rich markup, control and format characters escaped (gateway.text.shown; in
JSON, `\\u` escapes). Exit codes: 0 success, 1 refused by the gateway or failed verification, 2
usage error, 3 gateway unreachable or no answer (deadline passed, call cancelled).
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Callable, Iterable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from google.protobuf import json_format
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Column, Table
from rich.text import Text

from agencies import errors
from agencies.client import AgencyClient, BaseClient
from gateway.config import UNIX_SCHEMES
from gateway.text import json_text, shown
from gateway.v1 import directory_pb2
from govshare.columns import ColumnError

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
CERT_FILES = "ca.pem, tls.pem, tls.key, signing.pem and signing.key"
C = TypeVar("C", bound=BaseClient)

console = Console(markup=False, emoji=False, highlight=False)
"""Prints text as it is: no markup, no `:emoji:` codes, no colouring of what looks like numbers
or URLs (what it prints goes through `cell` or `say` as well)."""


def connection_options(group: Callable) -> Callable:
    """The options of a command group that calls the gateway: where, as whom, how to print.
    The group receives them as `connection` (see `connect`)."""
    options = [
        click.option("--certs", "certs_dir", type=click.Path(file_okay=False, path_type=Path),
                     envvar="GOVSHARE_CERTS", help="The caller's certificate folder."),
        click.option("--gateway", "target", envvar="GOVSHARE_GATEWAY",
                     help="Gateway address host:port."),
        click.option("--profile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="TOML file with `certs` and `gateway` keys."),
        click.option("--server-name", default=None,
                     help="TLS name to expect (default: the host)."),
        click.option("--json", "as_json", is_flag=True,
                     help="Print JSON lines instead of tables."),
    ]
    for option in reversed(options):
        group = option(group)
    return group


def connect(ctx: click.Context, certs_dir: Path | None, target: str | None,
            profile: Path | None, server_name: str | None, as_json: bool) -> None:
    """Keep the connection options (a profile fills what flags leave out) for client_from."""
    if profile:
        values = _profile(profile)
        certs_dir = certs_dir or (profile.parent / values["certs"])
        target = target or values.get("gateway")
        server_name = server_name or values.get("server_name")
    ctx.obj = {"certs": certs_dir, "target": target, "server_name": server_name,
               "json": as_json}


@click.group("agency")
@connection_options
@click.pass_context
def agency(ctx: click.Context, **connection: Any) -> None:
    """Act as an agency: publish, search, request, decide, fetch, watch."""
    connect(ctx, **connection)


class LocalMistake(click.ClickException):
    """A mistake on this side (a missing file, a wrong certificate folder, a bad profile): one
    line saying what to fix, exit 2 (usage error)."""

    exit_code = EXIT_USAGE


def _profile(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            values = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LocalMistake(f"cannot read the profile {path}: {exc}") from None
    if not isinstance(values.get("certs"), str):
        raise LocalMistake(f"the profile {path} needs certs = \"<the agency's certificate"
                           " folder>\" (relative to the profile)")
    for key, example in (("gateway", "host:port"), ("server_name", "localhost")):
        if not isinstance(values.get(key, ""), str):
            raise LocalMistake(f"{key} in the profile {path} must be text in quotes:"
                               f" {key} = \"{example}\"")
    return values


def _target(value: str) -> str:
    """The --gateway address, which must be host:port (grpc would take port 99999 as another
    port, and connect there)."""
    scheme, _, path = value.partition(":")
    if scheme in UNIX_SCHEMES and path:
        return value
    host, _, port = value.rpartition(":")
    if not (host and _encodes(host) and re.fullmatch(r"[0-9]{1,5}", port)
            and 1 <= int(port) <= 65535):
        raise LocalMistake(f"the gateway address {value!r} is not host:port with a port from 1"
                           " to 65535, or unix:PATH: check --gateway (or the profile's"
                           " gateway)")
    return value


def client_from(ctx: click.Context, kind: type[C] = AgencyClient) -> C:
    """The client (an AgencyClient unless `kind` says otherwise) the group options describe."""
    obj = ctx.find_root().find_object(dict) or ctx.obj
    if not obj.get("certs") or not obj.get("target"):
        raise click.UsageError("give --certs and --gateway (or --profile)")
    certs = Path(obj["certs"])
    try:
        return kind(_target(obj["target"]), certs, server_name=obj.get("server_name"))
    except OSError as exc:
        missing = Path(exc.filename).name if exc.filename else "its files"
        folder = ("an agency's folder, with " + CERT_FILES if kind is AgencyClient
                  else "a staff folder, with ca.pem, tls.pem and tls.key")
        raise LocalMistake(
            f"cannot read {missing} in the certificate folder {certs} ({exc.strerror}): give"
            f" --certs {folder}") from None
    except ValueError as exc:
        raise LocalMistake(f"unusable certificate or key in {certs}: {exc}") from None


def folding_table(*headers: str, **options: Any) -> Table:
    """A table whose long cells fold onto more lines instead of being cut (as rich cuts them to
    fit 80 columns, or a pipe), so every resource name can be copied into the next command;
    `options` are Table's (a title, say). Every table the CLI prints is one of these."""
    return Table(*(Column(header, overflow="fold") for header in headers), **options)


def folding_grid(columns: int) -> Table:
    """A folding_table of `columns` columns with no header and no borders: label and value."""
    return Table.grid(*(Column(overflow="fold") for _ in range(columns)), padding=(0, 2))


def cell(value: str | Text) -> Text:
    """A table cell: text as `shown` writes it; a Text built from shown parts as it is."""
    return value if isinstance(value, Text) else Text(shown(value))


def add_row(table: Table, *values: str | Text) -> None:
    table.add_row(*map(cell, values))


def say(line: str, **options: Any) -> None:
    """Print one line that may quote network text (Console.print `options`), left for the
    terminal to wrap so that it reads and copies as it was sent."""
    console.print(cell(line), soft_wrap=True, **options)


def transfer_progress(**options: Any) -> Progress:
    """A progress bar of bytes sent or received (Progress `options`), whose task descriptions
    are shown as text (give them through `shown`)."""
    return Progress(TextColumn("{task.description}", markup=False, style="progress.description"),
                    BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console,
                    **options)


def wants_json(ctx: click.Context) -> bool:
    return bool(ctx.obj and ctx.obj.get("json"))


def print_items(ctx: click.Context, found: Iterable[Any], headers: Sequence[str],
                row: Callable[[Any], Sequence[str]]) -> None:
    """Items as JSON lines (--json), or as a folding table with `headers` and a `row` each."""
    if wants_json(ctx):
        for item in found:
            emit_json(item)
        return
    table = folding_table(*headers)
    for item in found:
        add_row(table, *row(item))
    console.print(table)


def emit_json(message: Any) -> None:
    """One protobuf message (or dict) as one JSON line."""
    if hasattr(message, "DESCRIPTOR"):
        message = json_format.MessageToDict(message, preserving_proto_field_name=True)
    click.echo(json_text(message))


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
    """Turn SDK errors and local mistakes into one line on stderr and a reliable exit code."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        _check_utf8_arguments(click.get_current_context())
        try:
            return command(*args, **kwargs)
        except errors.Unavailable as exc:
            click.echo(f"Error: {shown(_unreachable(exc.message))}", err=True)
            sys.exit(EXIT_UNREACHABLE)
        except (errors.DeadlineExceeded, errors.Cancelled) as exc:  # no answer: retry later
            click.echo(f"Error: {shown(str(exc))}", err=True)
            sys.exit(EXIT_UNREACHABLE)
        except errors.GovshareError as exc:
            click.echo(f"Error: {shown(str(exc))}", err=True)
            sys.exit(EXIT_REFUSED)
        except ColumnError as exc:  # content to publish that is not what its media type says
            raise LocalMistake(f"the content does not read as its media type: {exc}") from None
        except OSError as exc:  # a local file: the content to publish, the --to of a fetch
            where = f" {exc.filename}" if exc.filename else ""
            raise LocalMistake(f"cannot use{where}: {exc.strerror or exc}; check the path and"
                               " its permissions") from None

    return run


def _check_utf8_arguments(ctx: click.Context | None) -> None:
    """Every text argument of the command and its groups encodes as UTF-8: one that does not
    (bytes the terminal's encoding cannot decode reach Python as lone surrogates) could not go
    into a request."""
    while ctx is not None:
        for param in ctx.command.params:
            value = ctx.params.get(param.name or "")
            texts = value if isinstance(value, tuple) else (value,)
            if any(isinstance(text, str) and not _encodes(text) for text in texts):
                name = param.opts[0] if isinstance(param, click.Option) else \
                    param.human_readable_name
                raise LocalMistake(f"{name} is not valid UTF-8 text: give it in UTF-8 (check"
                                   " the terminal's encoding, or convert with iconv)")
        ctx = ctx.parent


def _encodes(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


_HANDSHAKE_REFUSED = "Socket closed"
"""What grpc reports when the gateway closes the connection in the TLS handshake, as it does
for a client certificate it does not trust."""
_GATEWAY_UNTRUSTED = "Tls handshake failed"
"""What grpc reports when this side does not trust the gateway's certificate."""


def _unreachable(message: str) -> str:
    """The one-line cause of an UNAVAILABLE call; TLS handshake refusals say which side."""
    if message.startswith("failed to connect to all addresses"):
        if message.endswith(_HANDSHAKE_REFUSED):
            return ("the gateway closed the connection during the TLS handshake: the"
                    " certificate may not be trusted by this gateway (issued by another CA, or"
                    f" expired); check --certs ({message})")
        if _GATEWAY_UNTRUSTED in message and "CERTIFICATE_VERIFY_FAILED" in message:
            return ("the gateway's TLS certificate is not trusted by the ca.pem of --certs:"
                    f" use a certificate folder of this gateway's network ({message})")
    return f"gateway unreachable or unavailable: {message}"


@agency.command("directory")
@click.option("--region", default="", help="Only agencies in this GB/T 2260 region code.")
@click.pass_context
@handles_errors
def directory(ctx: click.Context, region: str) -> None:
    """List the agencies on the network."""
    with client_from(ctx) as client:
        found = list(client.agencies(region))
    print_items(ctx, found, ("agency", "name", "region", "state"), lambda item: (
        item.name, item.display_name, item.region_code,
        enum_short(directory_pb2.AgencyState, item.state)))


from gateway.cli import agency_catalog, agency_exchange  # noqa: E402,F401  (registers commands)
