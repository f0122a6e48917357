"""`govshare agency request|requests|withdraw-request|approve|deny|grants|revoke|fetch|fetches|
watch`: the exchange.

`COMMANDS` join the `agency` group in gateway/cli/__init__.py.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from gateway.cli.exits import LocalMistake, handles_errors
from gateway.cli.options import client_from, enum_choice
from gateway.cli.output import (
    add_row,
    console,
    emit_json,
    folding_table,
    print_items,
    say,
    transfer_progress,
    wants_json,
)
from gateway.text import shown
from gateway.v1 import catalog_pb2, exchange_pb2
from govshare.enums import enum_name


def _when(stamp: Any) -> str:
    return stamp.ToDatetime().strftime("%Y-%m-%d %H:%M") if stamp.seconds else ""


def _direction(incoming: bool) -> str:
    return "INCOMING" if incoming else "OUTGOING"


def _days(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(days=value)


def show_requests(ctx: click.Context, found: list[exchange_pb2.AccessRequest]) -> None:
    def row(item: exchange_pb2.AccessRequest) -> tuple[str, ...]:
        state = enum_name(exchange_pb2.AccessRequestState, item.state)
        return (item.name, item.requester, _asked(item),
                f"{state} (overdue)" if item.overdue else state, _when(item.decide_deadline),
                item.state_reason)

    print_items(ctx, found, ("access request", "requester", "dataset", "state", "deadline",
                             "reason"), row)


def _asked(item: exchange_pb2.AccessRequest) -> str:
    """The dataset a request asks for, or the version whose terms it names."""
    version = item.statement.version
    return f"{item.dataset}/versions/{version}" if version else item.dataset


def show_grants(ctx: click.Context, found: list[exchange_pb2.Grant]) -> None:
    print_items(ctx, found, ("grant", "grantee", "dataset", "state", "fields", "terms",
                             "expires"),
                lambda item: (item.name, item.grantee, item.dataset,
                              enum_name(exchange_pb2.GrantState, item.state),
                              ", ".join(item.fields) or "all", _terms(item),
                              _when(item.expire_time)))


def _terms(grant: exchange_pb2.Grant) -> str:
    """The strictest terms of a version the grant delivers ("INTERNAL, CONDITIONAL")."""
    return (f"{enum_name(catalog_pb2.Classification, grant.max_classification)},"
            f" {enum_name(catalog_pb2.SharingType, grant.max_sharing_type)}")


@click.command("request")
@click.argument("dataset")
@click.option("--purpose", type=enum_choice(exchange_pb2.Purpose), required=True,
              help="Why the data is needed.")
@click.option("--purpose-text", required=True, help="The purpose in your words.")
@click.option("--legal-basis", required=True, help="The law or duty the request rests on.")
@click.option("--days", type=click.IntRange(min=1), default=90, show_default=True,
              help="For how long access is asked.")
@click.option("--field", "fields", multiple=True, help="A field asked for (default: all).")
@click.option("--version", type=click.IntRange(min=1), default=None,
              help="The version whose terms you ask for (default: the latest).")
@click.option("--request-id", default=None, help="Idempotency key, to retry safely.")
@click.option("--validate-only", is_flag=True, help="Only say what would happen and why.")
@click.pass_context
@handles_errors
def request(ctx: click.Context, dataset: str, purpose: str, purpose_text: str,
            legal_basis: str, days: int, fields: tuple[str, ...], version: int | None,
            request_id: str | None, validate_only: bool) -> None:
    """Ask for access to another agency's DATASET with a signed request; with --version, to
    that version and every one published under terms no stricter."""
    with client_from(ctx) as client:
        created = client.request_access(
            dataset, purpose=purpose, purpose_text=purpose_text, legal_basis=legal_basis,
            duration=timedelta(days=days), fields=fields, version=version or 0,
            request_id=request_id, validate_only=validate_only)
    if wants_json(ctx):
        emit_json(created)
        return
    show_requests(ctx, [created.access_request])
    if created.HasField("grant"):
        show_grants(ctx, [created.grant])


@click.command("requests")
@click.option("--incoming", is_flag=True, help="Requests for your datasets (default: yours).")
@click.option("--state", type=enum_choice(exchange_pb2.AccessRequestState), default=None,
              help="Only requests in this state.")
@click.option("--overdue", is_flag=True, help="Only requests past their decision deadline.")
@click.option("--dataset", default="",
              help="Only requests for this dataset (full name, or an id of your own).")
@click.pass_context
@handles_errors
def requests(ctx: click.Context, incoming: bool, state: str | None, overdue: bool,
             dataset: str) -> None:
    """List your outgoing (or --incoming) access requests."""
    with client_from(ctx) as client:
        found = list(client.access_requests(_direction(incoming), state=state or 0,
                                            overdue_only=overdue, dataset=dataset))
    show_requests(ctx, found)


@click.command("withdraw-request")
@click.argument("name")
@click.option("--reason", required=True, help="Why the request is withdrawn (the owner sees it).")
@click.pass_context
@handles_errors
def withdraw_request(ctx: click.Context, name: str, reason: str) -> None:
    """Withdraw your PENDING access request NAME; you may then ask again."""
    with client_from(ctx) as client:
        show_requests(ctx, [client.withdraw_request(name, reason)])


@click.command("approve")
@click.argument("name")
@click.option("--days", type=click.IntRange(min=1), default=None,
              help="Grant fewer days than asked.")
@click.option("--field", "fields", multiple=True, help="Grant only these fields.")
@click.option("--reason", default="", help="A note for the requester.")
@click.pass_context
@handles_errors
def approve(ctx: click.Context, name: str, days: int | None, fields: tuple[str, ...],
            reason: str) -> None:
    """Approve access request NAME to one of your datasets (signed by you)."""
    with client_from(ctx) as client:
        approved = client.approve(name, duration=_days(days), fields=fields, reason=reason)
    if wants_json(ctx):
        emit_json(approved)
        return
    show_grants(ctx, [approved.grant])


@click.command("deny")
@click.argument("name")
@click.option("--reason", required=True, help="Why access is refused.")
@click.pass_context
@handles_errors
def deny(ctx: click.Context, name: str, reason: str) -> None:
    """Deny access request NAME to one of your datasets (signed by you)."""
    with client_from(ctx) as client:
        show_requests(ctx, [client.deny(name, reason)])


@click.command("grants")
@click.option("--incoming", is_flag=True, help="Grants on your datasets (default: held).")
@click.option("--state", type=enum_choice(exchange_pb2.GrantState), default=None,
              help="Only grants in this state.")
@click.option("--dataset", default="",
              help="Only grants on this dataset (full name, or an id of your own).")
@click.pass_context
@handles_errors
def grants(ctx: click.Context, incoming: bool, state: str | None, dataset: str) -> None:
    """List the grants you hold (or have given, with --incoming)."""
    with client_from(ctx) as client:
        show_grants(ctx, list(client.grants(_direction(incoming), state=state or 0,
                                            dataset=dataset)))


@click.command("revoke")
@click.argument("grant")
@click.option("--reason", required=True, help="Why the grant is revoked.")
@click.pass_context
@handles_errors
def revoke(ctx: click.Context, grant: str, reason: str) -> None:
    """Revoke GRANT on one of your datasets; running fetches stop."""
    with client_from(ctx) as client:
        show_grants(ctx, [client.revoke(grant, reason)])


@click.command("fetch")
@click.argument("dataset")
@click.option("--to", "target", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="File to write; a broken fetch to it resumes.")
@click.pass_context
@handles_errors
def fetch(ctx: click.Context, dataset: str, target: Path) -> None:
    """Fetch DATASET (or a version) under your grant, verified end to end.

    Under a grant naming fields the file holds only those: its hash and size are the receipt's
    delivered_sha256 and delivered_size, while content_sha256 and content_size are those of the
    version's content it was projected from."""
    if not target.parent.is_dir():  # before the gateway starts an exchange for nothing
        raise LocalMistake(f"cannot write {target}: the folder {target.parent} does not exist;"
                           " create it or choose another --to")
    with client_from(ctx) as client, transfer_progress(disable=wants_json(ctx)) as bar:
        task = bar.add_task(shown(f"fetching {dataset}"), total=None)
        fetched = client.fetch(dataset, target,
                               progress=lambda done, total: bar.update(task, completed=done,
                                                                       total=total))
    if wants_json(ctx):
        emit_json({"path": str(fetched.path), "receipt": _receipt_dict(fetched.receipt)})
        return
    receipt = fetched.receipt
    fields = f" fields {', '.join(receipt.fields)}" if receipt.fields else ""
    say(f"verified {receipt.dataset_version}{fields} ({receipt.delivered_size} bytes,"
                  f" sha256 {receipt.delivered_sha256.hex()}) -> {fetched.path}")
    if receipt.fields:
        say(f"projected from its content of {receipt.content_size} bytes, sha256"
                      f" {receipt.content_sha256.hex()}")
    say(f"receipt: {receipt.exchange}, audit leaf {receipt.audit_leaf_index}")


@click.command("fetches")
@click.option("--dataset", default="", help="Only fetches of this dataset.")
@click.pass_context
@handles_errors
def fetches(ctx: click.Context, dataset: str) -> None:
    """List who fetched your datasets: the completed fetches the audit log records."""
    with client_from(ctx) as client:
        found = list(client.fetches(dataset))
    if wants_json(ctx):
        for item in found:
            emit_json({"exchange": item.exchange, "requester": item.requester,
                       "dataset_version": item.dataset_version,
                       "complete_time": item.complete_time.isoformat(),
                       "audit_leaf_index": item.audit_event.leaf_index})
        return
    table = folding_table("completed", "requester", "dataset version", "exchange", "audit leaf")
    for item in found:
        add_row(table, item.complete_time.strftime("%Y-%m-%d %H:%M"), item.requester,
                item.dataset_version, item.exchange, str(item.audit_event.leaf_index))
    console.print(table)


def _receipt_dict(receipt: exchange_pb2.Receipt) -> dict[str, Any]:
    """The receipt with the receipt's own names: delivered_* describe the file written, content_*
    the version's content (the same unless `fields` names a projection of it)."""
    return {"exchange": receipt.exchange, "dataset_version": receipt.dataset_version,
            "fields": list(receipt.fields), "delivered_sha256": receipt.delivered_sha256.hex(),
            "delivered_size": receipt.delivered_size,
            "content_sha256": receipt.content_sha256.hex(), "content_size": receipt.content_size,
            "grant": receipt.grant, "audit_leaf_index": receipt.audit_leaf_index}


@click.command("watch")
@click.option("--cursor", default="", help="Resume after this event cursor.")
@click.option("--follow", multiple=True, help="Also follow this dataset (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Stop after this many events (default: run until interrupted).")
@click.pass_context
@handles_errors
def watch(ctx: click.Context, cursor: str, follow: tuple[str, ...], limit: int | None) -> None:
    """Print the events that concern you as they happen."""
    with client_from(ctx) as client:
        stream = client.watch(cursor=cursor, follow=follow)
        for count, event in enumerate(stream, start=1):
            if wants_json(ctx):
                emit_json(event)
            else:
                say(f"[{event.cursor}] {_when(event.create_time)}"
                    f" {enum_name(exchange_pb2.EventType, event.type)}"
                    f" {event.resource}: {event.summary}")
            if limit is not None and count >= limit:
                stream.close()
                return


COMMANDS = (request, requests, withdraw_request, approve, deny, grants, revoke,
            fetch, fetches, watch)
