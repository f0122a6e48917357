"""`govshare gateway ...`: run the gateway."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from gateway import config as config_module


@click.group("gateway")
def gateway_group() -> None:
    """Run and inspect a gateway."""


@gateway_group.command("serve")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), required=True, help="The gateway.toml to run with.")
@click.option("--listen", help="host:port to bind, overriding [server] listen.")
@click.option("--database", type=click.Path(path_type=Path),
              help="SQLite file, overriding [storage] database.")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), help="Log verbosity.")
def serve(config_path: Path, listen: str | None, database: Path | None, log_level: str) -> None:
    """Serve the gateway.v1 API over mutual TLS until SIGTERM or Ctrl-C."""
    from gateway.audit.log import LogIntegrityError
    from gateway.server import create_server, serve_forever

    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        config = config_module.load(config_path)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    config = config.replace(
        server={"listen": listen} if listen else {},
        storage={"database": database} if database else {},
    )
    try:
        server = create_server(config)
    except LogIntegrityError as exc:
        raise click.ClickException(f"refusing to serve: {exc}") from exc
    except OSError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"govshare gateway listening on {_host(config.server.listen)}:{server.port}")
    serve_forever(server)


def _host(listen: str) -> str:
    return listen.rsplit(":", 1)[0]
