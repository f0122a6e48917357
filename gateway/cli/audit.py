"""`govshare audit ...`: read, verify, export and prove the audit log, offline.

Every command but `check-proof` reads the gateway's database directly and read-only
(`--config gateway.toml`); no gateway needs to run. Exit codes: 0 success (log intact, proof
valid), 1 verification failed (the log is not intact, the proof does not prove its record), 2
usage error or bad input (a key, file or configuration that cannot be used): a cron job that
sees 1 has found tampering, never a typo.
"""

from __future__ import annotations

import csv
import re
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from agencies.catalog import agency_name
from gateway import config as config_module
from gateway import times
from gateway.audit import export, merkle, note, record, verify
from gateway.audit.log import origin_links
from gateway.cli.agency import add_row, console, folding_table
from gateway.services.audit import MAX_LEAF_INDEX
from gateway.signing import SigningKey
from gateway.storage import audit as sql
from gateway.text import shown

EXIT_FAILED = 1
EXIT_USAGE = 2

_AGENCY = re.compile(r"agencies/[^/]+")
_DATASET = re.compile(r"agencies/[^/]+/datasets/[^/]+")


class BadInput(click.ClickException):
    """A key, file or configuration the command cannot use: exit 2, so that exit 1 always
    means a failed verification."""

    exit_code = EXIT_USAGE


def _remember_config(ctx: click.Context, _param: click.Parameter, path: Path | None) -> None:
    if path is not None:
        ctx.obj = path


def config_option(command: Any) -> Any:
    """--config, accepted before the command (`audit --config F list`) or after it."""
    return click.option(
        "--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
        expose_value=False, callback=_remember_config,
        help="The gateway.toml whose log to read.")(command)


@click.group("audit")
@config_option
def audit() -> None:
    """Inspect, verify, export and prove the audit log (reads the database, read-only)."""


def _config(ctx: click.Context) -> config_module.Config:
    path = ctx.find_object(Path)
    if path is None:
        raise click.UsageError("give --config gateway.toml")
    try:
        return config_module.load(path)
    except (OSError, ValueError) as exc:
        raise BadInput(str(exc)) from exc


def _connect(ctx: click.Context) -> sqlite3.Connection:
    config = _config(ctx)
    try:
        conn = sql.connect_readonly(config.path(config.storage.database))
    except (OSError, sqlite3.Error) as exc:
        raise BadInput(f"cannot open the database: {exc}") from exc
    ctx.call_on_close(conn.close)
    return conn


def _verifier(ctx: click.Context, key: str | None) -> note.NoteVerifier:
    """--key, else the published verifier key file, else the gateway's own signing key."""
    if key:
        try:
            return note.NoteVerifier.from_verifier_key(key.strip())
        except ValueError as exc:
            raise click.BadParameter(f"unusable verifier key: {exc}") from exc
    config = _config(ctx)
    key_file = config.path(config.audit.verifier_key_file)
    signing = config.path(config.tls.signing_key)
    try:
        if key_file.is_file():
            return note.NoteVerifier.from_verifier_key(key_file.read_text().strip())
        if signing.is_file():
            return note.NoteSigner(config.audit.origin, SigningKey.load(signing)).verifier()
    except (OSError, ValueError) as exc:
        raise BadInput(f"unusable verifier key: {exc}") from exc
    raise BadInput(
        f"no verifier key: give --key, or make {key_file} or {signing} readable"
    )


def _leaf_index(event: str) -> int:
    try:
        return note.parse_decimal(event.removeprefix("auditEvents/"), MAX_LEAF_INDEX)
    except ValueError:
        raise click.BadParameter(f"expected a leaf index (0 to {MAX_LEAF_INDEX}) or"
                                 f" auditEvents/N, got {event!r}") from None


def _agency_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """agencies/{id} for a bare id, so `--agency gd-health` filters as it reads."""
    name = agency_name(value) if value else value
    if name and not _AGENCY.fullmatch(name):
        raise click.BadParameter(f"expected agencies/{{id}} or an agency id, got {value!r}")
    return name


def _dataset_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if value and not _DATASET.fullmatch(value):
        raise click.BadParameter(f"expected agencies/{{id}}/datasets/{{dataset}}, got {value!r}")
    return value


def filter_options(command: Any) -> Any:
    """The filters of ListAuditEvents, as options."""
    options = [
        click.option("--actor", default="", help="Only events by this identity URI."),
        click.option("--agency", default="", callback=_agency_name,
                     help="Only events concerning this agency (agencies/{id} or its id)."),
        click.option("--dataset", default="", callback=_dataset_name,
                     help="Only events concerning this dataset"
                     " (agencies/{id}/datasets/{dataset})."),
        click.option("--action", default="", help="Only events with this action."),
        click.option("--outcome", type=click.Choice(["ALLOWED", "REFUSED"]), default=None,
                     help="Only allowed or refused events."),
        click.option("--since", type=click.DateTime(), default=None,
                     help="Only events at or after this UTC time."),
        click.option("--until", type=click.DateTime(), default=None,
                     help="Only events before this UTC time."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _filters(actor: str, agency: str, dataset: str, action: str, outcome: str | None,
             since: datetime | None, until: datetime | None) -> dict[str, Any]:
    def text(moment: datetime | None) -> str:
        return times.to_text(moment.replace(tzinfo=UTC)) if moment else ""

    return {"actor": actor, "action": action, "outcome": outcome or "",
            "subjects": [name for name in (agency, dataset) if name],
            "start_time": text(since), "end_time": text(until)}


@audit.command("list")
@config_option
@filter_options
@click.option("--after", type=click.IntRange(min=-1), default=-1, show_default=True,
              help="Only leaves after this index.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="At most this many events.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.pass_context
def list_events(ctx: click.Context, after: int, limit: int, as_json: bool,
                **filters: Any) -> None:
    """List audit events, oldest first."""
    found = sql.list_leaves(_connect(ctx), after=after, limit=limit, **_filters(**filters))
    if as_json:
        for row in found:
            click.echo(export.json_line({"leaf_index": row["leaf_index"],
                                         **record.decode(row["record"])}))
        return
    table = folding_table("leaf", "time", "actor", "action", "outcome", "resources")
    for row in found:
        fields = record.decode(row["record"])
        add_row(table, str(row["leaf_index"]), fields["time"], fields["actor"], fields["action"],
                fields["outcome"], Text("\n".join(map(shown, fields["resources"]))))
    console.print(table)


@audit.command("show")
@config_option
@click.argument("event")
@click.pass_context
def show(ctx: click.Context, event: str) -> None:
    """Show one event (a leaf index or auditEvents/N) with its record and leaf hash."""
    index = _leaf_index(event)
    row = sql.get_leaf(_connect(ctx), index)
    if row is None:
        raise click.ClickException(f"auditEvents/{index} does not exist")
    data = bytes(row["record"])
    click.echo(export.json_line({"name": f"auditEvents/{index}", "leaf_index": index,
                                 "leaf_hash": merkle.leaf_hash(data).hex(),
                                 "record": data.decode(), **record.decode(data)}))


@audit.command("verify")
@config_option
@click.option("--key", "keys", multiple=True,
              help="The log's note verifier key (name+id+key); repeat it to accept checkpoints"
              " signed by previous keys too. Only the keys given are trusted then. Default:"
              " the gateway's, and [audit] previous_verifier_keys.")
@click.option("--against", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A signed checkpoint saved earlier (by --save-checkpoint, or the gateway's"
              " [audit] checkpoint_file), or an earlier copy of the database: the log must"
              " extend it (a copy also lets a fork name the first leaf that differs).")
@click.option("--save-checkpoint", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the latest verified signed checkpoint here.")
@click.pass_context
def verify_command(ctx: click.Context, keys: tuple[str, ...], against: Path | None,
                   save_checkpoint: Path | None) -> None:
    """Rebuild the tree from the records and check every checkpoint, node and index."""
    from rich.progress import Progress

    # Keys an auditor gives are all it trusts: the configuration lies in the folder whose log
    # is being checked, so its previous keys count only when no key is given.
    verifier, *previous = [_verifier(ctx, key) for key in keys] or [
        _verifier(ctx, None), *_config(ctx).audit.previous_verifiers()]
    conn = _connect(ctx)
    saved = _against(against) if against else None
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("verifying", total=None)
        try:
            report = verify.verify_log(
                conn, verifier, against=saved, previous=previous,
                progress=lambda done, total: bar.update(task, completed=done, total=total))
        except verify.UnusableInput as exc:
            raise BadInput(str(exc)) from None
    if not report.ok:
        first = report.first
        click.echo(f"FAILED: {first}", err=True)
        click.echo(f"{len(report.problems)} problem(s); first bad position {first.position}",
                   err=True)
        sys.exit(EXIT_FAILED)
    if save_checkpoint:
        save_checkpoint.write_bytes(report.latest_checkpoint)
    click.echo(f"OK: {report.tree_size} entries, {report.checkpoints} checkpoints, root"
               f" {report.root_hash.hex()}")
    for leaf, continued in origin_links(conn, [verifier, *previous]):
        click.echo(f"leaf {leaf} begins a new origin, continuing {continued}")


def _against(path: Path) -> bytes | Path:
    """An earlier copy of the database as its path, a saved checkpoint (a signed note or the
    gateway's checkpoint file) as its bytes."""
    try:
        with path.open("rb") as file:
            if file.read(len(verify.SQLITE_HEADER)) == verify.SQLITE_HEADER:
                return path
            file.seek(0)
            return file.read()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {what} {path}: {exc.strerror or exc}") from None


@audit.command("export")
@config_option
@filter_options
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True, help="Output format.")
@click.option("--proofs", is_flag=True,
              help="Add each event's inclusion proof in the latest checkpoint's tree.")
@click.option("--output", "-o", type=click.File("w"), default="-", help="Output file.")
@click.pass_context
def export_command(ctx: click.Context, fmt: str, proofs: bool, output: Any,
                   **filters: Any) -> None:
    """Export events with leaf index and exact record bytes (base64) for outside auditors."""
    conn = _connect(ctx)
    with sql.snapshot(conn):  # the proofs are for the checkpoint read here
        latest = sql.latest_checkpoint(conn)
        size = latest["tree_size"] if proofs and latest else 0
        rows = export.export_rows(conn, _filters(**filters), proof_size=size)
        if fmt == "csv":
            writer = csv.DictWriter(output, fieldnames=export.CSV_FIELDS)
            writer.writeheader()
            for item in rows:  # the record column keeps the exact bytes (base64)
                writer.writerow({key: shown(value) if isinstance(value, str) else value
                                 for key, value in export.csv_row(item).items()})
        else:
            for item in rows:
                output.write(export.json_line(item) + "\n")
    if proofs and latest:
        click.echo(f"proofs are for this checkpoint:\n{bytes(latest['note']).decode()}",
                   err=True)


@audit.command("proof")
@config_option
@click.argument("event")
@click.option("--output", "-o", type=click.File("w"), default="-", help="Output file.")
@click.pass_context
def proof(ctx: click.Context, event: str, output: Any) -> None:
    """Print a c2sp.org/tlog-proof of one event, checkable offline with `check-proof`."""
    conn = _connect(ctx)
    with sql.snapshot(conn):
        latest = sql.latest_checkpoint(conn)
        if latest is None:
            raise click.ClickException("the log has no checkpoint")
        try:
            text = export.proof_text(conn, _leaf_index(event), latest)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    output.write(text)


@audit.command("check-proof")
@click.argument("proof_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", required=True, help="The log's note verifier key (name+id+key).")
@click.pass_context
def check_proof(ctx: click.Context, proof_file: Path, key: str) -> None:
    """Check a tlog-proof file offline against the log's verifier key (no --config needed)."""
    verifier = _verifier(ctx, key)
    try:
        checked = export.check_proof(_read(proof_file, "the proof"), verifier)
    except export.ProofFileError as exc:
        click.echo(f"FAILED: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    fields = record.decode(checked.record)
    click.echo(f"OK: leaf {checked.leaf_index} ({fields['action']} by {fields['actor']}) is in"
               f" {checked.checkpoint.origin} at size {checked.checkpoint.size}")
