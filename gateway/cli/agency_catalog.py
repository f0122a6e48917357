"""`govshare agency publish|datasets|show|versions|withdraw`: the catalog from the terminal.

`COMMANDS` join the `agency` group in gateway/cli/__init__.py.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import click

from gateway.cli.exits import LocalMistake, handles_errors
from gateway.cli.options import client_from, enum_choice
from gateway.cli.output import (
    add_row,
    console,
    emit_json,
    folding_grid,
    folding_table,
    print_items,
    say,
    say_stale,
    transfer_progress,
    wants_json,
)
from gateway.text import shown
from gateway.v1 import catalog_pb2
from govshare.enums import enum_name, enum_value

MEDIA_TYPES = {".csv": "CSV", ".jsonl": "JSON_LINES", ".ndjson": "JSON_LINES",
               ".parquet": "PARQUET"}


def load_schema(path: Path) -> list[catalog_pb2.SchemaField]:
    """Schema fields from a JSON list of {name, type, description, sensitivity}."""
    try:
        items = json.loads(path.read_text())
        return [catalog_pb2.SchemaField(
            name=item["name"], type=enum_value(catalog_pb2.FieldType, item.get("type", "STRING")),
            description=item.get("description", ""),
            sensitivity=enum_value(catalog_pb2.Sensitivity, item.get("sensitivity", "NONE")),
        ) for item in items]
    except (ValueError, KeyError, TypeError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--schema") from None


def infer_schema(path: Path) -> list[catalog_pb2.SchemaField]:
    """STRING fields named after a CSV file's header row."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except UnicodeDecodeError:
        raise LocalMistake(f"{path} is not UTF-8 text, so its header cannot name the fields:"
                           " give --schema, or convert the file to UTF-8 (for example"
                           " `iconv -f GBK -t UTF-8`)") from None
    return [catalog_pb2.SchemaField(name=name, type=catalog_pb2.FIELD_TYPE_STRING,
                                    sensitivity=catalog_pb2.SENSITIVITY_NONE)
            for name in header]


@click.command("publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dataset", "-d", "dataset_id", required=True,
              help="Dataset id (e.g. hospital-beds) or full name.")
@click.option("--title", required=True, help="Short title, 1 to 200 characters.")
@click.option("--abstract", default="", help="What the dataset contains.")
@click.option("--version", "version", type=click.IntRange(min=1), default=None,
              help="Version number (default: latest + 1).")
@click.option("--media-type", type=enum_choice(catalog_pb2.MediaType), default=None,
              help="Content format (default: from the file extension).")
@click.option("--classification", type=enum_choice(catalog_pb2.Classification),
              default="INTERNAL", show_default=True, help="Security classification.")
@click.option("--sharing-type", type=enum_choice(catalog_pb2.SharingType), default="CONDITIONAL",
              show_default=True, help="How the dataset may be shared.")
@click.option("--legal-basis", default="", help="Law or regulation; required for NOT_SHARED.")
@click.option("--conditions", default="", help="Conditions a requester must meet.")
@click.option("--update-cycle", type=enum_choice(catalog_pb2.UpdateCycle), default="IRREGULAR",
              show_default=True, help="How often new versions appear.")
@click.option("--tag", "tags", multiple=True, help="A search keyword (repeatable).")
@click.option("--schema", "schema_file", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="JSON file listing the fields (default for CSV: header).")
@click.pass_context
@handles_errors
def publish(ctx: click.Context, file: Path, dataset_id: str, title: str, abstract: str,
            version: int | None, media_type: str | None, classification: str,
            sharing_type: str, legal_basis: str, conditions: str, update_cycle: str,
            tags: tuple[str, ...], schema_file: Path | None) -> None:
    """Sign a manifest for FILE and publish it as a new dataset version."""
    media_type = media_type or MEDIA_TYPES.get(file.suffix.lower(), "OCTET_STREAM")
    if schema_file:
        schema = load_schema(schema_file)
    else:
        schema = infer_schema(file) if media_type.upper() == "CSV" else []
    fields = dict(title=title, abstract=abstract, version=version, media_type=media_type,
                  schema=schema, classification=classification, sharing_type=sharing_type,
                  sharing_conditions=conditions, legal_basis=legal_basis,
                  update_cycle=update_cycle, tags=tags)
    with client_from(ctx) as client:
        if wants_json(ctx):
            emit_json(client.publish(dataset_id, file, **fields))
            return
        with transfer_progress(transient=True) as bar:
            task = bar.add_task(shown(f"uploading {file.name}"), total=file.stat().st_size)
            response = client.publish(dataset_id, file, **fields,
                                      progress=lambda sent, _: bar.update(task, completed=sent))
    version_row = response.dataset_version
    note = (" (the same content as a version you published before)"
            if response.content_deduplicated else "")
    say(f"published {version_row.name}{note}")
    say(f"sha256 {version_row.manifest.content_sha256.hex()}  "
                  f"{version_row.manifest.content_size} bytes  "
                  f"audit leaf {version_row.audit_leaf_index}")


@click.command("datasets")
@click.option("--query", "-q", default="", help="Words to search for (all required).")
@click.option("--publisher", default="-", help="Only this agency's datasets.")
@click.option("--region", default="", help="Only publishers in this GB/T 2260 region code.")
@click.option("--tag", default="", help="Only datasets with this tag.")
@click.option("--classification", type=enum_choice(catalog_pb2.Classification), default=None,
              help="Only this classification.")
@click.option("--sharing-type", type=enum_choice(catalog_pb2.SharingType), default=None,
              help="Only this sharing type.")
@click.option("--withdrawn", is_flag=True, help="Include withdrawn datasets.")
@click.pass_context
@handles_errors
def datasets(ctx: click.Context, query: str, publisher: str, region: str, tag: str,
             classification: str | None, sharing_type: str | None, withdrawn: bool) -> None:
    """List and search the datasets you may see, newest first."""
    with client_from(ctx) as client:
        listing = client.datasets(
            publisher=publisher, query=query, region_code=region, tag=tag,
            classification=classification or 0, sharing_type=sharing_type or 0,
            show_withdrawn=withdrawn,
        )
        found = list(listing)
    print_items(ctx, found, ("dataset", "title", "version", "classification", "sharing", "state"),
                lambda item: (
                    item.name, item.manifest.title, str(item.latest_version),
                    enum_name(catalog_pb2.Classification, item.manifest.classification),
                    enum_name(catalog_pb2.SharingType, item.manifest.sharing_type),
                    enum_name(catalog_pb2.DatasetState, item.state)))
    say_stale(listing.stale_members)


@click.command("show")
@click.argument("name")
@click.pass_context
@handles_errors
def show(ctx: click.Context, name: str) -> None:
    """Show a dataset (NAME: full name, or an id of your own) with its latest manifest."""
    with client_from(ctx) as client:
        dataset = client.get(name)
    if wants_json(ctx):
        emit_json(dataset)
        return
    manifest = dataset.manifest
    details = folding_grid(2)
    for label, value in (
        ("name", dataset.name), ("title", manifest.title), ("abstract", manifest.abstract),
        ("publisher", f"{dataset.publisher} ({dataset.region_code})"),
        ("version", str(dataset.latest_version)),
        ("state", enum_name(catalog_pb2.DatasetState, dataset.state)
         + (f": {dataset.withdraw_reason}" if dataset.withdraw_reason else "")),
        ("media type", enum_name(catalog_pb2.MediaType, manifest.media_type)),
        ("classification", enum_name(catalog_pb2.Classification, manifest.classification)),
        ("sharing", enum_name(catalog_pb2.SharingType, manifest.sharing_type)),
        ("conditions", manifest.sharing_conditions), ("legal basis", manifest.legal_basis),
        ("update cycle", enum_name(catalog_pb2.UpdateCycle, manifest.update_cycle)),
        ("tags", ", ".join(manifest.tags)),
        ("content", f"{manifest.content_size} bytes, sha256 {manifest.content_sha256.hex()}"),
    ):
        if value:
            add_row(details, label, value)
    console.print(details)
    if manifest.schema:
        fields = folding_table("field", "type", "sensitivity", "description")
        for item in manifest.schema:
            add_row(fields, item.name, enum_name(catalog_pb2.FieldType, item.type),
                    enum_name(catalog_pb2.Sensitivity, item.sensitivity), item.description)
        console.print(fields)


@click.command("versions")
@click.argument("name")
@click.option("--verify", is_flag=True,
              help="Re-verify each signed manifest against the publisher's certificate.")
@click.pass_context
@handles_errors
def versions(ctx: click.Context, name: str, verify: bool) -> None:
    """List every version of a dataset, newest first."""
    with client_from(ctx) as client:
        found = list(client.versions(name))
        for item in found if verify else ():
            client.verify_manifest(item)
    print_items(ctx, found, ("version", "created", "size", "sha256", "audit leaf",
                             *(("signature",) if verify else ())), lambda item: (
        str(item.version), item.create_time.ToJsonString(), str(item.manifest.content_size),
        item.manifest.content_sha256.hex()[:16], str(item.audit_leaf_index),
        *(("verified",) if verify else ())))


@click.command("withdraw")
@click.argument("name")
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
@click.pass_context
@handles_errors
def withdraw(ctx: click.Context, name: str, reason: str) -> None:
    """Withdraw one of your datasets; its history stays retrievable."""
    with client_from(ctx) as client:
        dataset = client.withdraw(name, reason)
    if wants_json(ctx):
        emit_json(dataset)
        return
    say(f"withdrew {dataset.name}")


COMMANDS = (publish, datasets, show, versions, withdraw)
