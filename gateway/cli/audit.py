"""`govshare audit ...`: read, verify, export and prove the audit log, offline.

Every command but `check-proof` reads the gateway's database directly and read-only
(`--config gateway.toml`); no gateway needs to run. The checkpoints they hand out (`proof`,
`export --proofs`, `verify --save-checkpoint`) are the one the gateway saved in [audit]
checkpoint_file, never a later one stored in the database: that one may never be saved (a
failed save, a crash between commit and save), and a restored backup could then sign its
size again with another root. Exit codes: 0 success (log intact, proof
valid), 1 verification failed (the log is not intact, the proof does not prove its record), 2
usage error or bad input (a key, file or configuration that cannot be used): a cron job that
sees 1 has found tampering, never a typo.
"""

from __future__ import annotations

import csv
import os
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from cryptography import x509
from google.protobuf.message import DecodeError
from rich.console import Console
from rich.text import Text

from agencies.audit import check_witnessed, witness_policy
from agencies.errors import VerificationError
from certs import network_configuration as netconf
from gateway import config as config_module
from gateway.audit import export, verify
from gateway.audit.log import origin_links
from gateway.audit.saved import CheckpointFile
from gateway.cli.output import add_row, console, folding_table
from gateway.storage import audit as sql
from gateway.storage import witness as witness_sql
from gateway.text import shown
from gateway.v1 import network_pb2
from govshare import errors, times
from govshare.names import ID_PATTERN, MAX_LEAF_INDEX, AgencyName, AuditEventName, DatasetName
from govshare.signing import SigningKey
from govshare.transparency import merkle, note, record
from govshare.transparency.cosignature import WitnessPolicy

EXIT_FAILED = 1
EXIT_USAGE = 2



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
    if key is not None:
        if not key.strip():
            raise BadInput("--key is empty: give the log's note verifier key (name+id+key,"
                           " the line audit.vkey holds)")
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


def _log_verifiers(ctx: click.Context) -> list[note.NoteVerifier]:
    """The log's keys as the configuration names them: its own, then the previous ones."""
    return [_verifier(ctx, None), *_config(ctx).audit.previous_verifiers()]


def _saved(ctx: click.Context, verifiers: list[note.NoteVerifier]) -> tuple[bytes, int]:
    """The latest checkpoint the gateway saved in [audit] checkpoint_file that a key of
    `verifiers` signed, and its size: the only checkpoint the log has shown anyone."""
    config = _config(ctx)
    path = config.path(config.audit.checkpoint_file)
    try:
        slots = CheckpointFile(path).read()
    except OSError as exc:
        raise BadInput(f"cannot read the saved checkpoint [audit] checkpoint_file {path}:"
                       f" {exc.strerror or exc}; the tools hand out only the checkpoint the"
                       " gateway saved there") from None
    problem = "it holds none"
    for signed in slots:
        try:
            return signed, verify.open_checkpoint(signed, verifiers).size
        except note.NoteError as exc:
            problem = str(exc)
    raise BadInput(f"no checkpoint saved in {path} verifies with the log's keys ({problem})")


def _leaf_index(event: str) -> int:
    name = AuditEventName.match(event)
    if name is not None:
        return name.leaf_index
    try:
        return note.parse_decimal(event, MAX_LEAF_INDEX)
    except ValueError:
        raise click.BadParameter(f"expected a leaf index (0 to {MAX_LEAF_INDEX}) or"
                                 f" auditEvents/N, got {event!r}") from None


def _agency_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """agencies/{id} for a bare id, so `--agency gd-health` filters as it reads."""
    if not value:
        return value
    name = AgencyName.match(value) or (AgencyName(value) if ID_PATTERN.fullmatch(value) else None)
    if name is None:
        raise click.BadParameter(f"expected agencies/{{id}} or an agency id, got {value!r}")
    return str(name)


def _dataset_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if value and DatasetName.match(value) is None:
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
            click.echo(export.json_line({"leaf_index": row.leaf_index,
                                         **record.decode(row.record)}))
        return
    table = folding_table("leaf", "time", "actor", "action", "outcome", "resources")
    for row in found:
        fields = record.decode(row.record)
        add_row(table, str(row.leaf_index), fields["time"], fields["actor"], fields["action"],
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
    data = bytes(row.record)
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
              help="Write the checkpoint the gateway saved in [audit] checkpoint_file here,"
              " once the log is verified to extend it.")
@click.option("--network-configuration", type=click.Path(exists=True, dir_okay=False,
                                                        path_type=Path),
              help="A signed network configuration (verified with [tls] ca) whose witness"
              " policy the log's latest cosigned checkpoint must meet. Default: [network]"
              " configuration_file when the gateway is a network member; none otherwise.")
@click.pass_context
def verify_command(ctx: click.Context, keys: tuple[str, ...], against: Path | None,
                   save_checkpoint: Path | None, network_configuration: Path | None) -> None:
    """Rebuild the tree from the records and check every checkpoint, node and index; on a
    network member's log, check its witness policy too."""
    from rich.progress import Progress

    if save_checkpoint:
        _check_writable(save_checkpoint)  # before the long verification, not after it
    # Keys an auditor gives are all it trusts: the configuration lies in the folder whose log
    # is being checked, so its previous keys count only when no key is given.
    verifier, *previous = [_verifier(ctx, key) for key in keys] or _log_verifiers(ctx)
    policy = _witness_policy(ctx, network_configuration)  # bad input before the long part
    conn = _connect(ctx)
    saved = _against(against) if against else None
    published = (_saved(ctx, [verifier, *previous])[0] if save_checkpoint
                 else _shown(ctx, [verifier, *previous]))
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("verifying", total=None)
        try:
            report = verify.verify_log(
                conn, verifier, against=saved, previous=previous, published=published,
                progress=lambda done, total: bar.update(task, completed=done, total=total))
        except verify.UnusableInput as exc:
            raise BadInput(str(exc)) from None
        except sqlite3.DatabaseError as exc:
            raise BadInput(f"the database {_database(ctx)} is not a govshare database SQLite"
                           f" can read ({exc}): check [storage] database, or restore the file"
                           " from a backup") from None
    if not report.ok:
        first = report.first
        click.echo(f"FAILED: {first}", err=True)
        click.echo(f"{len(report.problems)} problem(s); first bad position {first.position}",
                   err=True)
        sys.exit(EXIT_FAILED)
    if save_checkpoint:
        _write(save_checkpoint, report.published)
    click.echo(f"OK: {report.tree_size} entries, {report.checkpoints} checkpoints; "
               + _published_words(report.published, [verifier, *previous]))
    for leaf, continued in origin_links(conn, [verifier, *previous]):
        click.echo(f"leaf {leaf} begins a new origin, continuing {continued}")
    if policy is not None:
        _check_witness_policy(conn, _config(ctx).audit.origin, policy)
    if report.unverified:
        keys_named = ", ".join(f"{key} (up to size {size})"
                               for key, size in report.unverified.items())
        click.echo(f"NOT VERIFIED: the earliest checkpoints are signed by {keys_named}, a key"
                   " not given: the leaves they cover verify against the later checkpoints,"
                   " but their signatures were not checked; add that key with --key (the"
                   " log's previous key, as [audit] previous_verifier_keys lists it)", err=True)
        sys.exit(EXIT_USAGE)


def _witness_policy(ctx: click.Context, path: Path | None) -> WitnessPolicy | None:
    """The witness policy of the log's origin in `path`, else in [network] configuration_file;
    None without a configuration, or when it asks for no cosignature."""
    config = _config(ctx)
    if path is None:
        if not config.network.configuration_file:
            return None
        path = config.path(Path(config.network.configuration_file))
    try:
        signed = network_pb2.SignedNetworkConfiguration.FromString(path.read_bytes())
        ca = x509.load_pem_x509_certificate(config.path(config.tls.ca).read_bytes())
        verified = netconf.verify(signed, ca, times.utcnow())
    except OSError as exc:
        raise BadInput(f"cannot read {exc.filename}: {exc.strerror}") from None
    except (DecodeError, ValueError) as exc:
        raise BadInput(f"{path} is no signed network configuration, or [tls] ca no"
                       f" certificate: {exc}") from None
    except errors.NetworkConfigurationRejected as exc:
        raise BadInput(f"the network configuration {path} is refused ({exc.reason}):"
                       f" {exc.message}") from None
    return witness_policy(verified.configuration, config.audit.origin)


def _check_witness_policy(conn: sqlite3.Connection, origin: str,
                          policy: WitnessPolicy) -> None:
    """Exit 1 unless the latest checkpoint of `origin` a witness cosigned (the one
    GetCheckpoint's `witnessed` answers) carries the policy's quorum of cosignatures."""
    size = witness_sql.latest_cosigned_size(conn, origin)
    stored = sql.checkpoint_at(conn, size) if size is not None else None
    if stored is None:
        click.echo(f"NOT WITNESSED: no witness has cosigned a checkpoint of {origin}; the"
                   f" policy asks for {policy.quorum} of {len(policy.witnesses)}", err=True)
        sys.exit(EXIT_FAILED)
    signed = bytes(stored.note) + "".join(
        c.line for c in witness_sql.cosignatures(conn, origin, size)).encode()
    try:
        check_witnessed(signed.decode(), policy)  # its message names who did cosign
    except VerificationError as exc:
        click.echo(f"NOT WITNESSED: checkpoint of size {size}: {exc.message}", err=True)
        sys.exit(EXIT_FAILED)
    cosigned = policy.check(signed)
    names = ", ".join(c.witness.partition("+")[0] for c in cosigned)
    click.echo(f"witnessed: checkpoint of size {size} cosigned by {names} (quorum"
               f" {policy.quorum})")


def _shown(ctx: click.Context, verifiers: list[note.NoteVerifier]) -> bytes | None:
    """The saved checkpoint to check and name, if the configuration's folder holds one a key
    given verifies (without one, verify names none)."""
    try:
        return _saved(ctx, verifiers)[0]
    except BadInput:
        return None


def _published_words(published: bytes, verifiers: list[note.NoteVerifier]) -> str:
    if not published:
        return "no checkpoint saved in [audit] checkpoint_file that a key given verifies"
    checkpoint = verify.open_checkpoint(published, verifiers)
    return (f"saved checkpoint of size {checkpoint.size}, root"
            f" {checkpoint.root_hash.hex()}")


def _database(ctx: click.Context) -> Path:
    config = _config(ctx)
    return config.path(config.storage.database)


def _check_writable(path: Path) -> None:
    """BadInput unless `path` can be written (its folder exists and takes files)."""
    folder = path.parent
    if path.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK) or (
            path.exists() and not os.access(path, os.W_OK)):
        raise BadInput(f"--save-checkpoint {path}: cannot write there (is its folder there and"
                       " writable?); give a writable path")


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise BadInput(f"--save-checkpoint {path}: cannot write it: {exc.strerror or exc}"
                       ) from None


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
              help="Add each event's inclusion proof in the tree of the checkpoint the gateway"
              " saved ([audit] checkpoint_file).")
@click.option("--output", "-o", type=click.File("w"), default="-", help="Output file.")
@click.pass_context
def export_command(ctx: click.Context, fmt: str, proofs: bool, output: Any,
                   **filters: Any) -> None:
    """Export events with leaf index and exact record bytes (base64) for outside auditors."""
    conn = _connect(ctx)
    signed, size = _saved(ctx, _log_verifiers(ctx)) if proofs else (b"", 0)
    with sql.snapshot(conn):
        _check_holds(conn, size)
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
    if proofs:
        click.echo(f"proofs are for this checkpoint:\n{signed.decode()}", err=True)


@audit.command("proof")
@config_option
@click.argument("event")
@click.option("--output", "-o", type=click.File("w"), default="-", help="Output file.")
@click.pass_context
def proof(ctx: click.Context, event: str, output: Any) -> None:
    """Print a c2sp.org/tlog-proof of one event, checkable offline with `check-proof`."""
    index = _leaf_index(event)
    conn = _connect(ctx)
    signed, size = _saved(ctx, _log_verifiers(ctx))
    with sql.snapshot(conn):
        _check_holds(conn, size)
        try:
            text = export.proof_text(conn, index, size, signed)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    output.write(text)


def _check_holds(conn: sqlite3.Connection, size: int) -> None:
    """ClickException unless the database holds the tree of the saved checkpoint."""
    held = sql.tree_size(conn)
    if held < size:
        raise click.ClickException(
            f"the database holds {held} leaves, fewer than the {size} of the checkpoint the"
            " gateway saved: it is older than the log published (a restored backup?); run"
            " govshare audit verify")


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
