"""SQL for the catalog: datasets (latest version's metadata), their tags and versions.

A dataset row carries its latest version's metadata denormalised (title, abstract, tags,
field_names, classification, sharing_type), so filters work on one table; `datasets_fts`
(rowid = seq) holds the same four texts as `search_text`, written with the row. Listing is
newest first by first publication (`create_time`, then `seq`), merged with the datasets
replicated from the other members of the network (`dataset_position`), paged by keyset, so
datasets added while a caller pages never shift the pages. Listings are returned as iterators
read row by row, so a caller that fills a page by size reads no more rows than it sends.
"""

from __future__ import annotations

import heapq
import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

from gateway.models import AccessRequest, Dataset, Version
from gateway.storage.database import each, every, first, insert

ACTIVE = "ACTIVE"
WITHDRAWN = "WITHDRAWN"

_HAN = re.compile("([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f])")
"""A Han character (CJK unified and compatibility ideographs, extensions A to H)."""


def search_text(text: str) -> str:
    """`text` as the full-text index sees it: every Han character a word of its own.

    FTS5's unicode61 tokenizer takes a run of Chinese characters for one word, and queries
    match words by prefix only, so 医院 would never find 广东省医院床位统计. Spaced out, the
    index holds single characters and a query's run of characters becomes a phrase of them
    (医院 -> "医 院", adjacent); trigrams would miss the many two-character words. The same
    function builds the index and the queries, so the two always agree."""
    return _HAN.sub(r" \1 ", text)


# -- reading (used by the catalog and the exchange) ----------------------------------------------


_DATASETS = (
    "SELECT d.*, v.signed_manifest FROM datasets d JOIN dataset_versions v"
    " ON v.dataset = d.name AND v.version = d.latest_version"
)
"""Dataset rows with their latest version's signed manifest (serialised Envelope)."""


def get_dataset(conn: sqlite3.Connection, name: str) -> Dataset | None:
    """The dataset named "agencies/{agency}/datasets/{dataset}" with the latest version's
    `signed_manifest`, or None."""
    return first(conn.execute(f"{_DATASETS} WHERE d.name = ?", (name,)), Dataset)


def get_replica_dataset(conn: sqlite3.Connection, name: str) -> Dataset | None:
    """The copy of dataset `name` replicated from another member of the network (its
    `network_member` that member), or None."""
    return first(conn.execute(f"{_REPLICA_DATASETS} WHERE r.name = ?", (name,)), Dataset)


def sharing_terms(conn: sqlite3.Connection, name: str) -> tuple[Any, ...] | None:
    """What an access decision on a dataset depends on (`Dataset.terms`): one cheap read to
    confirm a decision taken moments earlier still holds."""
    row = conn.execute("SELECT state, latest_version, sharing_type, classification"
                       " FROM datasets WHERE name = ?", (name,)).fetchone()
    return tuple(row) if row else None


def get_version(conn: sqlite3.Connection, name: str) -> Version | None:
    """The version named ".../datasets/{dataset}/versions/{n}", or None."""
    return first(conn.execute("SELECT * FROM dataset_versions WHERE name = ?", (name,)), Version)


def latest_version(conn: sqlite3.Connection, dataset: str) -> Version | None:
    """The newest version of a dataset, or None."""
    return first(conn.execute(
        "SELECT * FROM dataset_versions WHERE dataset = ? ORDER BY version DESC LIMIT 1",
        (dataset,),
    ), Version)


def list_versions(
    conn: sqlite3.Connection, dataset: str, *, before: int | None, limit: int,
    confidential: bool,
) -> Iterator[Version]:
    """Versions of a dataset newest first, those below `before` when given; CONFIDENTIAL ones
    only when `confidential` (each version by its own classification)."""
    clauses, params = ["dataset = ?"], [dataset]
    if before is not None:
        clauses.append("version < ?")
        params.append(before)
    if not confidential:
        clauses.append("classification != 'CONFIDENTIAL'")
    return each(conn.execute(
        f"SELECT * FROM dataset_versions WHERE {' AND '.join(clauses)}"
        " ORDER BY version DESC LIMIT ?",
        (*params, limit),
    ), Version)


def stored_content(conn: sqlite3.Connection) -> set[tuple[str, str]]:
    """(publisher, hex SHA-256) of every version's content: the blobs that must be kept, each
    in its publisher's namespace."""
    return {(row[0], row[1]) for row in conn.execute(
        "SELECT DISTINCT d.publisher, v.content_sha256 FROM datasets d"
        " JOIN dataset_versions v ON v.dataset = d.name")}


def publisher_named(conn: sqlite3.Connection, publisher: str, sha256_hex: str) -> bool:
    """Whether a version of one of `publisher`'s own datasets names the content `sha256_hex`
    (read through the publisher's datasets: their versions, not the whole table)."""
    return conn.execute(
        "SELECT 1 FROM datasets d JOIN dataset_versions v ON v.dataset = d.name"
        " WHERE d.publisher = ? AND v.content_sha256 = ? LIMIT 1",
        (publisher, sha256_hex)).fetchone() is not None


CONFIDENTIAL_GRANT = "g.state = 'ACTIVE' AND g.max_classification = 'CONFIDENTIAL'"
"""SQL condition: the grant row `g` is ACTIVE and covers CONFIDENTIAL versions (it was given
under CONFIDENTIAL terms); its expiry is checked apart."""
SEES_CONFIDENTIAL = (
    "(d.publisher = ? OR EXISTS (SELECT 1 FROM grants g WHERE g.grantee = ? AND"
    f" g.dataset = d.name AND {CONFIDENTIAL_GRANT} AND g.expire_time > ?))"
)
"""SQL condition: an agency may see the CONFIDENTIAL metadata of the dataset row `d` (its
publisher, or an active unexpired grant covering CONFIDENTIAL); parameters from
`visible_to_params`."""
VISIBLE_TO = f"(d.classification != 'CONFIDENTIAL' OR {SEES_CONFIDENTIAL})"
"""SQL condition: the dataset row `d` is visible to an agency (the catalog's rule); its
parameters come from `visible_to_params`."""


def visible_to_params(agency: str, now: str) -> tuple[str, str, str]:
    return (agency, agency, now)


def has_confidential_grant(conn: sqlite3.Connection, grantee: str, dataset: str,
                           now: str) -> bool:
    """Whether agency `grantee` (an id) holds an ACTIVE grant on `dataset` covering CONFIDENTIAL
    versions and expiring after `now` (times.to_text form)."""
    return conn.execute(
        f"SELECT 1 FROM grants g WHERE g.grantee = ? AND g.dataset = ? AND {CONFIDENTIAL_GRANT}"
        " AND g.expire_time > ? LIMIT 1",
        (grantee, dataset, now),
    ).fetchone() is not None


@dataclass(frozen=True)
class DatasetFilter:
    """What ListDatasets asks for; empty fields do not filter."""

    publisher: str = ""
    """Agency id."""
    region_prefix: str = ""
    tag: str = ""
    classification: str = ""
    sharing_type: str = ""
    fts_query: str = ""
    """An FTS5 MATCH expression built by the catalog (never raw user text)."""
    dataset_id: str = ""
    """A valid dataset id: only datasets of that id (of `publisher`, or of any)."""
    show_withdrawn: bool = False
    viewer: str | None = None
    """Agency id whose visibility applies; None sees everything (staff)."""
    now: str = ""
    """times.to_text of now, for grant expiry."""


DatasetPosition = tuple[str, str, int]
"""Where a dataset stands in the merged catalog: (create_time, network_member, seq), listed in
descending order; this gateway's own datasets have member "" and the seq of `datasets`, the
replicated ones their member and the seq of `replica_datasets`."""


def dataset_position(dataset: Dataset) -> DatasetPosition:
    return (dataset.create_time, dataset.network_member, dataset.seq)


def list_datasets(
    conn: sqlite3.Connection, where: DatasetFilter, *, before: DatasetPosition | None,
    limit: int,
) -> Iterator[Dataset]:
    """Datasets matching `where`, this gateway's and those replicated from the other members
    of its network, newest first by first publication (`dataset_position`), those below
    `before` when given; `limit` of each kind at most."""
    return heapq.merge(_own_datasets(conn, where, before, limit),
                       _replica_datasets(conn, where, before, limit),
                       key=dataset_position, reverse=True)


def _filters(alias: str, where: DatasetFilter) -> tuple[list[str], list[Any]]:
    """The clauses of `where` that read the dataset row `alias` alone (own and replica rows
    have the same columns), with their parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("publisher", where.publisher), ("classification", where.classification),
                          ("sharing_type", where.sharing_type)):
        if value:
            clauses.append(f"{alias}.{column} = ?")
            params.append(value)
    if where.region_prefix:
        clauses.append(f"{alias}.region_code LIKE ?")
        params.append(where.region_prefix + "%")
    if where.dataset_id:  # ids hold no GLOB wildcards: only the publisher's "*" matches any
        clauses.append(f"{alias}.name GLOB ?")
        params.append(f"agencies/{where.publisher or '*'}/datasets/{where.dataset_id}")
    if not where.show_withdrawn:
        clauses.append(f"{alias}.state = 'ACTIVE'")
    return clauses, params


def _own_datasets(conn: sqlite3.Connection, where: DatasetFilter,
                  before: DatasetPosition | None, limit: int) -> Iterator[Dataset]:
    clauses, params = _filters("d", where)
    if before is not None:
        time, member, seq = before
        if member:  # after a replica: this gateway's datasets of that time come next
            clauses.append("d.create_time <= ?")
            params.append(time)
        else:
            clauses.append("(d.create_time, d.seq) < (?, ?)")
            params.extend((time, seq))
    if where.tag:
        clauses.append("EXISTS (SELECT 1 FROM dataset_tags t WHERE t.dataset_seq = d.seq"
                       " AND t.tag = ?)")
        params.append(where.tag)
    if where.fts_query:
        clauses.append("d.seq IN (SELECT rowid FROM datasets_fts WHERE datasets_fts MATCH ?)")
        params.append(where.fts_query)
    if where.viewer is not None:
        clauses.append(VISIBLE_TO)
        params.extend(visible_to_params(where.viewer, where.now))
    params.append(limit)
    matching = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return each(conn.execute(
        f"{_DATASETS}{matching} ORDER BY d.create_time DESC, d.seq DESC LIMIT ?",
        params,
    ), Dataset)


_REPLICA_DATASETS = (
    "SELECT r.name, r.publisher, r.region_code, r.latest_version, r.state, r.withdraw_reason,"
    " r.classification, r.sharing_type, r.title, r.abstract, r.tags, r.field_names,"
    " r.create_time, r.update_time, r.signed_manifest, r.seq, r.member AS network_member"
    " FROM replica_datasets r"
)
"""Replicated dataset rows as Datasets. Only datasets every agency may see are replicated
(gateway.replication), so no viewer's visibility filters them."""


def _replica_datasets(conn: sqlite3.Connection, where: DatasetFilter,
                      before: DatasetPosition | None, limit: int) -> Iterator[Dataset]:
    clauses, params = _filters("r", where)
    if before is not None:
        clauses.append("(r.create_time, r.member, r.seq) < (?, ?, ?)")
        params.extend(before)
    if where.tag:
        clauses.append("EXISTS (SELECT 1 FROM replica_dataset_tags t WHERE t.dataset_seq = r.seq"
                       " AND t.tag = ?)")
        params.append(where.tag)
    if where.fts_query:
        clauses.append("r.seq IN (SELECT rowid FROM replica_datasets_fts"
                       " WHERE replica_datasets_fts MATCH ?)")
        params.append(where.fts_query)
    params.append(limit)
    matching = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return each(conn.execute(
        f"{_REPLICA_DATASETS}{matching} ORDER BY r.create_time DESC, r.member DESC,"
        " r.seq DESC LIMIT ?", params), Dataset)


# -- writing (inside unit-of-work changes) -------------------------------------------------------


_DATASET_COLUMNS = tuple(field.name for field in fields(Dataset)
                         if field.name not in ("seq", "signed_manifest", "network_member"))
"""The columns of a Dataset written to its row (the database numbers it; the signed manifest
is its latest version's)."""


def upsert_dataset(conn: sqlite3.Connection, dataset: Dataset, tags: Sequence[str]) -> None:
    """Insert a dataset, or update its latest-version metadata; its tag rows and its search
    text follow."""
    marks = ", ".join("?" for _ in _DATASET_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in _DATASET_COLUMNS
                        if c not in ("name", "create_time"))
    conn.execute(
        f"INSERT INTO datasets ({', '.join(_DATASET_COLUMNS)}) VALUES ({marks})"
        f" ON CONFLICT (name) DO UPDATE SET {updates}",
        [getattr(dataset, column) for column in _DATASET_COLUMNS],
    )
    seq = conn.execute("SELECT seq FROM datasets WHERE name = ?", (dataset.name,)).fetchone()[0]
    conn.execute("DELETE FROM dataset_tags WHERE dataset_seq = ?", (seq,))
    conn.executemany("INSERT INTO dataset_tags (tag, dataset_seq) VALUES (?, ?)",
                     [(tag, seq) for tag in tags])
    index_search_text(conn, seq, [getattr(dataset, column) for column in SEARCHED])


SEARCHED = ("title", "abstract", "tags", "field_names")
"""The dataset columns full-text search covers, in `datasets_fts` column order."""


def index_search_text(conn: sqlite3.Connection, seq: int, texts: Sequence[str],
                      index: str = "datasets_fts") -> None:
    """Index (or re-index) dataset `seq` under the SEARCHED texts, as `search_text`, in the
    full-text `index` (`replica_datasets_fts` for replicated datasets)."""
    conn.execute(
        f"INSERT OR REPLACE INTO {index} (rowid, title, abstract, tags, field_names)"
        " VALUES (?, ?, ?, ?, ?)", (seq, *map(search_text, texts)),
    )


def insert_version(conn: sqlite3.Connection, version: Version) -> None:
    insert(conn, "dataset_versions", version)


def withdraw_dataset(conn: sqlite3.Connection, name: str, reason: str, when: str) -> None:
    conn.execute(
        "UPDATE datasets SET state = 'WITHDRAWN', withdraw_reason = ?, update_time = ?"
        " WHERE name = ?",
        (reason, when, name),
    )


def withdraw_pending_requests(
    conn: sqlite3.Connection, dataset: str, when: str
) -> list[AccessRequest]:
    """Mark a withdrawn dataset's PENDING access requests WITHDRAWN, those of requesters that
    may see it at `when`; returns them, oldest first. The
    others stay PENDING for the owner to decide, as a request for a name never published does:
    closing them would tell their requesters that the hidden dataset exists."""
    closed = every(conn.execute(
        "UPDATE access_requests SET state = 'WITHDRAWN',"
        " state_reason = 'the dataset was withdrawn by its owner', decide_time = :when"
        " WHERE dataset = :dataset AND state = 'PENDING' AND EXISTS (SELECT 1 FROM datasets d"
        " WHERE d.name = :dataset AND (d.classification != 'CONFIDENTIAL' OR EXISTS (SELECT 1"
        " FROM grants g WHERE g.grantee = access_requests.requester AND g.dataset = d.name"
        f" AND {CONFIDENTIAL_GRANT} AND g.expire_time > :when)))"
        " RETURNING *, state AS effective_state",
        {"when": when, "dataset": dataset},
    ), AccessRequest)
    return sorted(closed, key=lambda request: request.seq)
