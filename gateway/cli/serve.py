"""`govshare gateway ...`: run the gateway."""

from __future__ import annotations

import ctypes
import logging
import platform
from pathlib import Path

import click

from gateway import config as config_module
from gateway.text import LogFormatter

M_ARENA_MAX = -8
"""glibc's mallopt parameter for the number of malloc arenas (malloc.h)."""


@click.group("gateway")
def gateway_group() -> None:
    """Run and inspect a gateway."""


@gateway_group.command("serve")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), required=True, help="The gateway.toml to run with.")
@click.option("--listen", help="host:port to bind, overriding [server] listen.")
@click.option("--database", type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite file, overriding [storage] database (relative to the current"
              " folder).")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), help="Log verbosity.")
@click.option("--checkpoint-from-database", is_flag=True,
              help="When [audit] checkpoint_file is missing, save the database's latest"
              " checkpoint there instead of refusing: for the first start after upgrading"
              " govshare, or when you know this database is the newest. Such a start is"
              " logged at WARNING and recorded in the audit log (audit.checkpoint_vouched).")
def serve(config_path: Path, listen: str | None, database: Path | None, log_level: str,
          checkpoint_from_database: bool) -> None:
    """Serve the gateway.v1 API over mutual TLS until SIGTERM or Ctrl-C."""
    from gateway.audit.log import CheckpointKeyMismatch, LogIntegrityError
    from gateway.server import StartError, create_server, serve_forever
    from gateway.storage.database import StorageError

    log_to_stderr(log_level)
    one_malloc_arena()
    try:
        config = _configured(config_path, listen, database)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"refusing to serve: {exc}") from exc
    try:
        server = create_server(config, checkpoint_from_database=checkpoint_from_database)
    except (CheckpointKeyMismatch, LogIntegrityError, StartError, StorageError, OSError) as exc:
        raise click.ClickException(f"refusing to serve: {exc}") from exc
    click.echo(f"govshare gateway listening on {_address(config.server.listen, server.port)}")
    serve_forever(server)


@gateway_group.command("new-origin")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), required=True,
              help="The gateway.toml, its [audit] origin set to the new name.")
def new_origin(config_path: Path) -> None:
    """Continue the audit log under a new origin after its database was lost.

    For a gateway that refuses to start because its database does not extend the checkpoint
    it saved (and no newer database exists): the first leaf under the new [audit] origin
    records that checkpoint, and no checkpoint of the old origin is ever signed again. Run it
    with the gateway stopped; docs/RELIABILITY.md has the steps."""
    from gateway.audit.log import CheckpointKeyMismatch, LogIntegrityError
    from gateway.server import Gateway, StartError
    from gateway.storage.database import StorageError

    try:
        config = _configured(config_path, None, None)
        gateway = Gateway(config)
        try:
            committed = gateway.open_new_origin()
        finally:
            gateway.close()
    except (CheckpointKeyMismatch, LogIntegrityError, StartError, StorageError, OSError,
            ValueError) as exc:
        raise click.ClickException(f"no new origin: {exc}") from exc
    leaf = committed.leaf_indices[0]
    click.echo(f"the log continues as {config.audit.origin}: leaf {leaf} records the previous"
               f" origin's last checkpoint, and checkpoint {committed.tree_size} is saved in"
               f" {config.path(config.audit.checkpoint_file)}")


def log_to_stderr(level: str) -> None:
    """One line per log record on stderr, network text in it escaped (gateway.text.LogFormatter),
    tracebacks indented below it."""
    handler = logging.StreamHandler()
    handler.setFormatter(LogFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


def _configured(config_path: Path, listen: str | None,
                database: Path | None) -> config_module.Config:
    """The config file with the flags applied; ValueError naming what is wrong."""
    config = config_module.load(config_path)
    # A path given on the command line means what it means in the shell: relative to the
    # current folder (paths in the file stay relative to the file).
    config = config.replace(
        server={"listen": listen} if listen else {},
        storage={"database": database.resolve()} if database else {},
    )
    found = config_module.problems(config)  # the file's own values were checked by load
    if found:
        raise ValueError(f"with the flags given, {'; '.join(found)}")
    return config


def one_malloc_arena() -> bool:
    """Have glibc's malloc keep one arena for the whole process (True when it took).

    By default glibc gives threads that allocate at once arenas of their own (up to 8 per
    core) and hands little of them back: the megabyte chunks of a 1 GiB publish, received on
    one thread and freed on others, left the gateway 26-36 MiB bigger each time (up to 59 in a
    benchmark round); with one arena 4-11 MiB, at the same publish and unary throughput (the
    interpreter lock serialises most allocations anyway). Called before the server starts
    its threads."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    return ctypes.CDLL(None).mallopt(M_ARENA_MAX, 1) == 1


def _address(listen: str, port: int) -> str:
    """Where the gateway listens: host and the port bound (a port of 0 picks one), or the
    Unix socket named."""
    if listen.partition(":")[0] in config_module.UNIX_SCHEMES:
        return listen
    return f"{listen.rsplit(':', 1)[0]}:{port}"
