"""What a command prints: tables by default, `--json` for scripts. Text from the network is
printed as text: never read as Rich markup, control and format characters escaped
(gateway.text.shown; in JSON, `\\u` escapes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click
from google.protobuf import json_format
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Column, Table
from rich.text import Text

from gateway.text import json_text, shown

console = Console(markup=False, emoji=False, highlight=False)
"""Prints text as it is: no markup, no `:emoji:` codes, no colouring of what looks like numbers
or URLs (what it prints goes through `cell` or `say` as well)."""


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


def say_stale(members: Sequence[str]) -> None:
    """Say on stderr (JSON lines on stdout stay clean) that a listing is partial: the members of
    the network its gateway had not reached lately, whose items may be missing or out of
    date."""
    if members:
        click.echo(shown(f"Partial: members {', '.join(members)} were not reached lately; their"
                         " items may be missing or out of date."), err=True)


def emit_json(message: Any) -> None:
    """One protobuf message (or dict) as one JSON line."""
    if hasattr(message, "DESCRIPTOR"):
        message = json_format.MessageToDict(message, preserving_proto_field_name=True)
    click.echo(json_text(message))
