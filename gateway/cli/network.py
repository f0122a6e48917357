"""``govshare network``: the signed network configuration on the command line, a thin layer over
:mod:`certs.network_configuration`.

Exit codes, as the other groups: 0 success (``verify``: valid), 1 refused (an invalid, expired,
badly signed or not newer configuration; ``status``: evidence of a fork or of a configuration
signed twice), 2 usage (a missing or unreadable file, a malformed description).
"""

from __future__ import annotations

import base64
import re
import sqlite3
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from google.protobuf.message import DecodeError

from certs import CA_CERT, SIGNING_CERT, SIGNING_KEY, TLS_CERT, CAError, CertificateAuthority
from certs import network_configuration as netconf
from gateway import config as config_module
from gateway.cli.exits import LocalMistake
from gateway.cli.output import add_row, console, emit_json, folding_grid, folding_table
from gateway.models import Evidence, WitnessedLog
from gateway.storage import audit as audit_sql
from gateway.storage import witness as witness_sql
from gateway.text import shown
from gateway.v1 import directory_pb2, network_pb2
from gateway.witness import REFUSED as WITNESS_REFUSED
from govshare import errors, times
from govshare.signing import SigningKey, VerifyKey
from govshare.transparency import record
from govshare.transparency.note import NoteVerifier

DEFAULT_HOURS = 24
"""Default validity of a signed configuration; it must also end by the CRL's nextUpdate."""
MAX_HOURS = 366 * 24
"""The longest validity `sign` takes: a year, far beyond any CRL's nextUpdate (a week by
default), which the rules hold a configuration to anyway."""
MAX_VERSION = 2**64 - 1
"""The highest version a configuration can carry (NetworkConfiguration.version, a uint64)."""


class _NetworkGroup(click.Group):
    """The one place that turns errors into one ``Error:`` line: a refused configuration exits
    1, a local mistake (a file, the description) exits 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except errors.NetworkConfigurationRejected as exc:
            raise click.ClickException(shown(f"{exc.reason}: {exc.message}")) from None
        except CAError as exc:
            raise LocalMistake(shown(str(exc))) from None
        except OSError as exc:
            where = f" {exc.filename}" if exc.filename else ""
            raise LocalMistake(
                f"cannot use{where}: {exc.strerror or exc}; check the path and its permissions"
            ) from None


_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_NEW_FILE = click.Path(dir_okay=False, path_type=Path)
_current_option = click.option(
    "--current", type=_FILE,
    help="The signed configuration held now: the new one must be the same or a higher version.")


@click.group("network", cls=_NetworkGroup)
def network() -> None:
    """Build, sign, show and verify the signed configuration of the national network; show
what a member gateway found of the network."""


@network.command()
@click.argument("description", type=_FILE)
@click.option("--ca", "ca_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="CA folder: its ca.pem checks the members, its crl.pem goes in.")
@click.option("--out", required=True, type=_NEW_FILE, help="File to write (never overwritten).")
def create(description: Path, ca_dir: Path, out: Path) -> None:
    """Build an unsigned configuration from a TOML DESCRIPTION (network_id, quorum and
    [[members]] with id, region_codes, address, certificates folder and verifier key files,
    and after a renewal previous_signing_certificates)."""
    values = _toml(description)
    network_id = _text(values, "network_id", description)
    quorum = _integer(values, "quorum", description, netconf.MAX_MEMBERS - 1)
    members = [_member(description.parent, entry, f"members[{index}]")
               for index, entry in enumerate(_list(values, "members", description))]
    ca = CertificateAuthority.open(ca_dir)
    configuration = netconf.build(network_id, members, quorum,
                                  ca.crl().public_bytes(Encoding.DER), ca.certificate,
                                  times.utcnow())
    _write_new(out, configuration.SerializeToString(deterministic=True))
    click.echo(shown(f"Wrote the unsigned configuration of {configuration.network_id} with"
                     f" {len(members)} members to {out}"))


@network.command()
@click.argument("unsigned", type=_FILE)
@click.option("--authority", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The network authority's folder (ca.pem, signing.pem, signing.key).")
@click.option("--version", "version", required=True, type=click.IntRange(min=1, max=MAX_VERSION),
              help="Version of this configuration, higher than every one signed before.")
@click.option("--hours", default=DEFAULT_HOURS, show_default=True,
              type=click.IntRange(min=1, max=MAX_HOURS),
              help="Hours the configuration stays valid (no later than the CRL's nextUpdate).")
@_current_option
@click.option("--out", required=True, type=_NEW_FILE, help="File to write (never overwritten).")
def sign(unsigned: Path, authority: Path, version: int, hours: int, current: Path | None,
         out: Path) -> None:
    """Sign an UNSIGNED configuration as the network authority, checked as receivers will;
    a version above 1 needs --current, so it is checked newer than the one held and consistent
    with it."""
    if version > 1 and current is None:
        # Two configurations of one version are what receivers keep as evidence of
        # equivocation: only the one held says which versions are taken.
        raise LocalMistake(f"--version {version} needs --current, the signed configuration"
                           " the network holds now: the new one is checked newer than it and"
                           " consistent with it (two configurations signed with one version"
                           " are evidence of equivocation)")
    try:
        configuration = network_pb2.NetworkConfiguration.FromString(unsigned.read_bytes())
    except DecodeError:
        raise LocalMistake(f"{unsigned} is not an unsigned configuration: make one with"
                           " `govshare network create`") from None
    now = times.utcnow()
    ca_certificate = _certificate(authority / CA_CERT)
    verified = netconf.sign(
        configuration, SigningKey.load(authority / SIGNING_KEY),
        (authority / SIGNING_CERT).read_text(), ca_certificate, version=version,
        validity=timedelta(hours=hours), now=now,
        current=_current(current, ca_certificate, now))
    _write_new(out, verified.signed.SerializeToString(deterministic=True))
    click.echo(shown(f"Signed {verified.network_id} version {verified.version}, valid until"
                     f" {times.to_text(verified.expire_time)}, into {out}"))


@network.command()
@click.argument("signed", type=_FILE)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def show(signed: Path, as_json: bool) -> None:
    """Show what a SIGNED configuration holds, WITHOUT checking it (use `verify` for that)."""
    configuration = netconf.unverified(_signed(signed))
    if as_json:
        emit_json(configuration)
        return
    console.print("Not verified: `govshare network verify` checks it.")
    summary = folding_grid(2)
    add_row(summary, "network", configuration.network_id)
    add_row(summary, "version", str(configuration.version))
    for name in ("issue_time", "expire_time"):
        stamp = getattr(configuration, name)
        add_row(summary, name, times.to_text(stamp.ToDatetime(tzinfo=UTC)) if stamp.seconds else "")
    add_row(summary, "witness quorum", str(configuration.witness_policy.quorum))
    console.print(summary)
    table = folding_table("Gateway", "Regions", "Address", "Audit origin")
    for member in configuration.members:
        add_row(table, member.id, " ".join(member.region_codes), member.address,
                member.audit_origin)
    console.print(table)


@network.command()
@click.argument("signed", type=_FILE)
@click.option("--ca-certificate", required=True, type=_FILE,
              help="The national CA's root certificate (ca.pem), the trust anchor.")
@_current_option
def verify(signed: Path, ca_certificate: Path, current: Path | None) -> None:
    """Verify a SIGNED configuration: exit 0 valid, 1 refused (the reason printed), 2 bad
    input."""
    now = times.utcnow()
    anchor = _certificate(ca_certificate)
    verified = netconf.verify(_signed(signed), anchor, now, _current(current, anchor, now))
    click.echo(shown(f"Valid: {verified.network_id} version {verified.version},"
                     f" {len(verified.configuration.members)} members, until"
                     f" {times.to_text(verified.expire_time)}"))


@network.command("witness-key")
@click.argument("out", type=_NEW_FILE)
@click.option("--name", required=True,
              help="The witness's key name, for example gd-gateway-witness.")
def witness_key(out: Path, name: str) -> None:
    """Write a new witness key to OUT (mode 0600, for [network] witness_key) and print its
    cosignature/v1 verifier key, the member's witness_verifier_key in the configuration."""
    try:
        verifier = netconf.new_witness_key(out, name)
    except ValueError as exc:
        raise LocalMistake(f"--name: {exc}") from None
    click.echo(verifier.verifier_key)


@network.command()
@click.option("--config", "config_path", required=True, type=_FILE,
              help="The gateway.toml of a member gateway, whose database is read.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def status(ctx: click.Context, config_path: Path, as_json: bool) -> None:
    """What a member gateway's database says of the network, read-only (no gateway needs to
    run): the logs it witnesses, the cosignatures its own log got, the checkpoints it refused
    to cosign in the last 24 hours (counted per log and reason, from its audit log), and the
    evidence of forks and of configurations signed twice that it found. Exit 1 when there is
    evidence, 0 otherwise: refusals alone do not change it (a log behind or a proof lost is
    refused too, without any fork)."""
    config = _gateway_config(config_path)
    database = config.path(config.storage.database)
    conn = audit_sql.connect_readonly(database)
    try:
        witnessed = witness_sql.witnessed_logs(conn, "", MAX_STATUS_ROWS)
        cosigned = witness_sql.latest_cosigned_sizes(conn, config.audit.origin)
        found = witness_sql.evidence(conn)
        refused = _witness_refusals(conn)
    except sqlite3.Error as exc:
        raise LocalMistake(f"cannot read the database {database}: {exc}; a database of an"
                           " older release is brought up to date by starting its gateway"
                           " once") from None
    finally:
        conn.close()
    if as_json:
        emit_json({"witnessed": [{"origin": log.origin, "tree_size": log.tree_size,
                                  "update_time": log.update_time} for log in witnessed],
                   "cosigned": cosigned, "refused": refused,
                   "evidence": [_evidence_json(e) for e in found]})
    else:
        _print_status(witnessed, cosigned, refused, found)
    if found:
        ctx.exit(1)


MAX_STATUS_ROWS = 1000
"""Logs shown: a network has at most 100 members, with a former origin or two each."""
REFUSALS_SHOWN = timedelta(hours=24)
MAX_REFUSAL_EVENTS = 10_000
"""Refusal events counted, the latest: the refusal budget summarises a flood beyond it."""
_SUMMARISED = re.compile(r"^(\d+) more refusals like this")


def _witness_refusals(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """The checkpoints this gateway refused to cosign within REFUSALS_SHOWN, counted per log
    and reason code (a summary event of the refusal budget counts the refusals it stands
    for), most first."""
    since = times.to_text(times.utcnow() - REFUSALS_SHOWN)
    counts: dict[tuple[str, str], int] = {}
    for data in witness_sql.refusal_records(conn, WITNESS_REFUSED, since, MAX_REFUSAL_EVENTS):
        event = record.decode(data)
        code, _, text = event["reason"].partition(": ")
        summarised = _SUMMARISED.match(text)
        key = (next(iter(event["resources"]), ""), code)
        counts[key] = counts.get(key, 0) + (int(summarised.group(1)) if summarised else 1)
    return [{"origin": origin, "reason": code, "refusals": count}
            for (origin, code), count in sorted(counts.items(), key=lambda i: -i[1])]


def _gateway_config(path: Path) -> config_module.Config:
    try:
        return config_module.load(path)
    except ValueError as exc:
        raise LocalMistake(shown(f"{path}: {exc}")) from None


def _print_status(witnessed: list[WitnessedLog], cosigned: dict[str, int],
                  refused: list[dict[str, Any]], found: list[Evidence]) -> None:
    table = folding_table("Log witnessed", "Size", "Cosigned at")
    for log in witnessed:
        add_row(table, log.origin, str(log.tree_size), log.update_time)
    console.print(table)
    table = folding_table("This log cosigned by", "Up to size")
    for witness, size in sorted(cosigned.items()):
        add_row(table, witness, str(size))
    console.print(table)
    if refused:
        table = folding_table("Log refused (last 24 hours)", "Reason", "Refusals")
        for row in refused:
            add_row(table, row["origin"], row["reason"], str(row["refusals"]))
        console.print(table)
    if not found:
        console.print("No evidence of a fork or of a configuration signed twice.")
        return
    table = folding_table("Evidence", "Subject", "Shown to", "Found at", "What")
    for item in found:
        add_row(table, item.kind, item.subject, f"{item.first_from}, {item.second_from}",
                item.create_time, item.reason)
    console.print(table)


def _evidence_json(item: Evidence) -> dict[str, Any]:
    """Evidence with its two statements in base64, byte for byte, for anyone to check."""
    return {"kind": item.kind, "subject": item.subject, "member": item.member,
            "first": base64.b64encode(item.first).decode(), "first_from": item.first_from,
            "second": base64.b64encode(item.second).decode(), "second_from": item.second_from,
            "reason": item.reason, "create_time": item.create_time}


def _current(path: Path | None, anchor: x509.Certificate, now: datetime
             ) -> netconf.VerifiedConfiguration | None:
    """The configuration held now, itself verified (an expired one still counts: it is what a
    newer one must replace, so only its expiry is forgiven, by checking it at its issue time)."""
    if path is None:
        return None
    held = _signed(path)
    issued = netconf.unverified(held).issue_time.ToDatetime(tzinfo=UTC)
    try:
        return netconf.verify(held, anchor, min(now, issued))
    except errors.NetworkConfigurationRejected as exc:
        raise LocalMistake(shown(f"--current {path} is not a valid configuration:"
                                 f" {exc.message}")) from None


def _signed(path: Path) -> network_pb2.SignedNetworkConfiguration:
    try:
        signed = network_pb2.SignedNetworkConfiguration.FromString(path.read_bytes())
    except DecodeError:
        signed = None
    if signed is None or not signed.HasField("envelope"):
        raise LocalMistake(f"{path} is not a signed network configuration: make one with"
                           " `govshare network sign`")
    return signed


def _certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        raise LocalMistake(f"{path} is not a PEM certificate") from None


def _write_new(path: Path, data: bytes) -> None:
    try:
        with path.open("xb") as out:
            out.write(data)
    except FileExistsError:
        raise LocalMistake(f"{path} already exists; refusing to overwrite it") from None


# The description file: TOML read with tomllib, as gateway.toml is; paths relative to it.

def _toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise LocalMistake(f"cannot read the description {path}: {exc}") from None


def _text(values: dict[str, Any], key: str, where: object) -> str:
    value = values.get(key)
    if not isinstance(value, str):
        raise LocalMistake(f"{where}: {key} must be text in quotes")
    return value


def _integer(values: dict[str, Any], key: str, where: object, maximum: int) -> int:
    value = values.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise LocalMistake(f"{where}: {key} must be a whole number from 0 to {maximum}")
    return value


def _list(values: dict[str, Any], key: str, where: object) -> list[Any]:
    value = values.get(key)
    if not isinstance(value, list):
        raise LocalMistake(f"{where}: {key} must be a list ([[{key}]] tables or [\"...\"])")
    return value


def _member(base: Path, entry: Any, where: str) -> network_pb2.MemberGateway:
    """One [[members]] table: its certificates folder holds tls.pem and signing.pem (as `certs
    issue-gateway` writes it); its audit log is named by `audit_origin` or by the file
    `audit_verifier_key` (see `_audit_key`)."""
    if not isinstance(entry, dict):
        raise LocalMistake(f"{where} must be a [[members]] table")
    regions = _list(entry, "region_codes", where)
    if not all(isinstance(code, str) for code in regions):
        raise LocalMistake(f"{where}: region_codes must be codes in quotes, such as \"440000\"")
    folder = base / _text(entry, "certificates", where)
    signing_certificate = (folder / SIGNING_CERT).read_text()
    audit_key = _audit_key(base, entry, signing_certificate, where)
    return network_pb2.MemberGateway(
        id=_text(entry, "id", where), region_codes=regions,
        address=_text(entry, "address", where),
        tls_certificate_pem=(folder / TLS_CERT).read_text(),
        signing_certificate_pem=signing_certificate,
        audit_origin=audit_key.name, audit_verifier_key=audit_key.verifier_key,
        witness_verifier_key=(base / _text(entry, "witness_verifier_key", where)
                              ).read_text().strip(),
        previous_signing_certificates=_previous(base, entry, where))


def _previous(base: Path, entry: dict[str, Any], where: str
              ) -> list[directory_pb2.RetiredSigningCertificate]:
    """A member's `previous_signing_certificates`, oldest first: each a table naming a signing
    certificate it had before (`certificate`, a file) and when the next one replaced it
    (`retire_time`, a TOML date-time with its offset), so that what it signed before a renewal
    still verifies."""
    entries = entry.get("previous_signing_certificates", [])
    if not isinstance(entries, list):
        raise LocalMistake(f"{where}: previous_signing_certificates must be a list of tables")
    previous = []
    for index, item in enumerate(entries):
        here = f"{where}.previous_signing_certificates[{index}]"
        retired = item.get("retire_time") if isinstance(item, dict) else None
        if not isinstance(retired, datetime) or retired.tzinfo is None:
            raise LocalMistake(f"{here} must be a table such as {{ certificate ="
                               ' "gd/old/signing.pem", retire_time = 2026-05-01T08:00:00Z }:'
                               " retire_time a date-time with its offset")
        pem = (base / _text(item, "certificate", here)).read_text()
        try:
            key_id = VerifyKey.from_certificate(pem).key_id
        except ValueError as exc:
            raise LocalMistake(f"{here}: not a signing certificate: {exc}") from None
        previous.append(directory_pb2.RetiredSigningCertificate(
            certificate_pem=pem, key_id=key_id, retire_time=times.to_timestamp(retired)))
    return previous


def _audit_key(base: Path, entry: dict[str, Any], signing_certificate: str,
               where: str) -> NoteVerifier:
    """The member's audit verifier key. A gateway signs its checkpoints with its signing key
    under its `[audit] origin`, so `audit_origin` alone gives the key (with the signing
    certificate), before the gateway ever started; `audit_verifier_key`, a file holding the
    audit.vkey line a started gateway wrote, gives it too."""
    if ("audit_origin" in entry) == ("audit_verifier_key" in entry):
        raise LocalMistake(f"{where}: give audit_origin (the member's [audit] origin in its"
                           " gateway.toml, its own in the network) or audit_verifier_key (a"
                           " file holding its audit.vkey line), one of them")
    try:
        if "audit_origin" in entry:
            return NoteVerifier(_text(entry, "audit_origin", where),
                                VerifyKey.from_certificate(signing_certificate))
        return NoteVerifier.from_verifier_key(
            (base / _text(entry, "audit_verifier_key", where)).read_text().strip())
    except ValueError as exc:
        raise LocalMistake(f"{where}: cannot make its audit verifier key: {exc}") from None
