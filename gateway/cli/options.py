"""What a command that calls the gateway takes: the connection options of its group (from flags
or from a profile file: `--profile FILE`, TOML with `certs` and `gateway` keys), enum choices, and
the client they describe.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from agencies.client import AgencyClient, BaseClient
from gateway.cli.exits import LocalMistake, encodes
from gateway.config import UNIX_SCHEMES
from govshare.enums import enum_names

CERT_FILES = "ca.pem, tls.pem, tls.key, signing.pem and signing.key"
C = TypeVar("C", bound=BaseClient)


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
    if not (host and encodes(host) and re.fullmatch(r"[0-9]{1,5}", port)
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


def enum_choice(enum: Any) -> click.Choice:
    """A case-insensitive choice of an enum's short names ("CSV" for MEDIA_TYPE_CSV)."""
    return click.Choice(enum_names(enum), case_sensitive=False)
