"""The database schema as recorded migrations (sqlite-utils `Migrations`), applied in order.

Each migration runs in a transaction with the record of it having been applied. Never edit an
applied migration: add a new one.
"""

import re
from datetime import UTC, datetime
from typing import Any

from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("govshare")


@MIGRATIONS(name="0001_directory")
def _directory(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE agencies (
            id TEXT PRIMARY KEY,
            display_name TEXT NOT NULL,
            region_code TEXT NOT NULL,
            signing_certificate_pem TEXT NOT NULL,
            signing_key_id TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL CHECK (state IN ('ACTIVE', 'SUSPENDED')),
            suspend_reason TEXT NOT NULL DEFAULT '',
            create_time TEXT NOT NULL,
            update_time TEXT NOT NULL
        )"""
    )


@MIGRATIONS(name="0002_audit_log")
def _audit_log(db: Database) -> None:
    # Leaves keep the exact record bytes; the other columns are copies for filtering only.
    db.execute(
        """
        CREATE TABLE audit_leaves (
            leaf_index INTEGER PRIMARY KEY,
            record BLOB NOT NULL,
            create_time TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            outcome TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX audit_leaves_actor ON audit_leaves (actor, leaf_index)")
    db.execute("CREATE INDEX audit_leaves_action ON audit_leaves (action, leaf_index)")
    db.execute("CREATE INDEX audit_leaves_time ON audit_leaves (create_time)")
    # Every agency and resource name an event concerns, for "who touched my data" queries.
    db.execute(
        """
        CREATE TABLE audit_subjects (
            subject TEXT NOT NULL,
            leaf_index INTEGER NOT NULL REFERENCES audit_leaves (leaf_index),
            PRIMARY KEY (subject, leaf_index)
        ) WITHOUT ROWID"""
    )
    # Perfect-subtree hashes: (level, index) covers leaves [index*2^level, (index+1)*2^level)
    # (rekeyed by 0006).
    db.execute(
        """
        CREATE TABLE tree_nodes (
            level INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            hash BLOB NOT NULL,
            PRIMARY KEY (level, idx)
        ) WITHOUT ROWID"""
    )
    db.execute(
        """
        CREATE TABLE checkpoints (
            tree_size INTEGER PRIMARY KEY,
            root_hash BLOB NOT NULL,
            note BLOB NOT NULL,
            create_time TEXT NOT NULL
        )"""
    )


@MIGRATIONS(name="0003_catalog")
def _catalog(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE datasets (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            publisher TEXT NOT NULL REFERENCES agencies (id),
            region_code TEXT NOT NULL,
            latest_version INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('ACTIVE', 'WITHDRAWN')),
            withdraw_reason TEXT NOT NULL DEFAULT '',
            classification TEXT NOT NULL,
            sharing_type TEXT NOT NULL,
            title TEXT NOT NULL,
            abstract TEXT NOT NULL,
            tags TEXT NOT NULL,
            field_names TEXT NOT NULL,
            create_time TEXT NOT NULL,
            update_time TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX datasets_publisher ON datasets (publisher, seq)")
    db.execute(
        """
        CREATE TABLE dataset_tags (
            tag TEXT NOT NULL,
            dataset_seq INTEGER NOT NULL REFERENCES datasets (seq),
            PRIMARY KEY (tag, dataset_seq)
        ) WITHOUT ROWID"""
    )
    db.execute(
        """
        CREATE TABLE dataset_versions (
            name TEXT PRIMARY KEY,
            dataset TEXT NOT NULL REFERENCES datasets (name),
            version INTEGER NOT NULL,
            signed_manifest BLOB NOT NULL,
            content_sha256 TEXT NOT NULL,
            content_size INTEGER NOT NULL,
            create_time TEXT NOT NULL,
            audit_leaf_index INTEGER NOT NULL,
            UNIQUE (dataset, version)
        )"""
    )
    db["datasets"].enable_fts(
        ["title", "abstract", "tags", "field_names"], create_triggers=True, tokenize="unicode61"
    )


@MIGRATIONS(name="0004_exchange")
def _exchange(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE access_requests (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            requester TEXT NOT NULL REFERENCES agencies (id),
            owner TEXT NOT NULL REFERENCES agencies (id),
            dataset TEXT NOT NULL REFERENCES datasets (name),
            request_id TEXT NOT NULL,
            statement_digest TEXT NOT NULL,
            signed_statement BLOB NOT NULL,
            state TEXT NOT NULL,
            state_reason TEXT NOT NULL,
            decide_deadline TEXT,
            signed_decision BLOB,
            grant_name TEXT,
            create_time TEXT NOT NULL,
            decide_time TEXT,
            UNIQUE (requester, request_id)
        )"""
    )
    db.execute("CREATE INDEX access_requests_owner ON access_requests (owner, seq)")
    db.execute("CREATE INDEX access_requests_requester ON access_requests (requester, seq)")
    db.execute(
        """
        CREATE TABLE grants (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            grantee TEXT NOT NULL REFERENCES agencies (id),
            owner TEXT NOT NULL REFERENCES agencies (id),
            dataset TEXT NOT NULL REFERENCES datasets (name),
            access_request TEXT NOT NULL REFERENCES access_requests (name),
            fields TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('ACTIVE', 'REVOKED')),
            signed_statement BLOB NOT NULL,
            create_time TEXT NOT NULL,
            expire_time TEXT NOT NULL,
            revoke_time TEXT,
            revoke_reason TEXT NOT NULL DEFAULT ''
        )"""
    )
    db.execute("CREATE INDEX grants_grantee ON grants (grantee, dataset, seq)")
    db.execute("CREATE INDEX grants_owner ON grants (owner, seq)")
    db.execute(
        """
        CREATE TABLE exchanges (
            name TEXT PRIMARY KEY,
            requester TEXT NOT NULL REFERENCES agencies (id),
            owner TEXT NOT NULL REFERENCES agencies (id),
            dataset_version TEXT NOT NULL REFERENCES dataset_versions (name),
            grant_name TEXT NOT NULL REFERENCES grants (name),
            state TEXT NOT NULL CHECK (state IN ('STARTED', 'COMPLETED', 'BROKEN')),
            create_time TEXT NOT NULL,
            complete_time TEXT,
            receipt BLOB
        )"""
    )
    # Notifications for WatchEvents: a recipient, or NULL for events every agency holding a
    # grant on (or following) the dataset receives.
    db.execute(
        """
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            recipient TEXT,
            type TEXT NOT NULL,
            resource TEXT NOT NULL,
            dataset TEXT NOT NULL,
            actor TEXT NOT NULL,
            summary TEXT NOT NULL,
            create_time TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX events_recipient ON events (recipient, seq)")
    db.execute("CREATE INDEX events_dataset ON events (dataset, seq)")


@MIGRATIONS(name="0005_audit_subjects_inline")
def _audit_subjects_inline(db: Database) -> None:
    # An event's subjects move into its leaf row as one framed string ("\nname\nname\n"):
    # per-subject rows and the actor index scattered every batch's writes over many pages (two
    # thirds of a commit's cost), while listings scan leaves in order anyway.
    db.execute("ALTER TABLE audit_leaves ADD COLUMN subjects TEXT NOT NULL DEFAULT ''")
    db.execute(
        """
        UPDATE audit_leaves SET subjects = (
            SELECT char(10) || group_concat(value, char(10)) || char(10)
              FROM json_each(CAST(record AS TEXT), '$.subjects'))
         WHERE json_array_length(CAST(record AS TEXT), '$.subjects') > 0"""
    )
    db.execute("DROP TABLE audit_subjects")
    db.execute("DROP INDEX audit_leaves_actor")


@MIGRATIONS(name="0006_tree_nodes_in_append_order")
def _tree_nodes_in_append_order(db: Database) -> None:
    # Keyed by (level, idx), a batch's new nodes touched one page (and its parents) per level:
    # half the pages a commit wrote. Keyed by their append order they land at the end.
    db.register_function(_stored_index_0006, deterministic=True, name="stored_index")
    db.execute("CREATE TABLE tree_hashes (id INTEGER PRIMARY KEY, hash BLOB NOT NULL)")
    db.execute("INSERT INTO tree_hashes SELECT stored_index(level, idx), hash FROM tree_nodes")
    db.execute("DROP TABLE tree_nodes")
    db.execute("ALTER TABLE tree_hashes RENAME TO tree_nodes")


def _stored_index_0006(level: int, idx: int) -> int:
    """Where the subtree (level, idx) goes in append order, as 0006 defined it (each leaf's
    hash, then every subtree that leaf completes, lowest first)."""
    n = ((idx + 1) << level) - 1
    return 2 * n - n.bit_count() + level


@MIGRATIONS(name="0007_audit_subject_index")
def _audit_subject_index(db: Database) -> None:
    # Which leaves concern each agency and dataset, for listings that filter by one: without
    # it, an agency's page scans the log until it fills. The committer fills it in steps of
    # many leaves between batches (grouped by subject, a step writes few pages), so it may lag
    # behind the log; `upto` is the first leaf not yet indexed, and listings scan from there.
    db.execute(
        """
        CREATE TABLE audit_subject_index (
            subject TEXT NOT NULL,
            leaf_index INTEGER NOT NULL,
            PRIMARY KEY (subject, leaf_index)
        ) WITHOUT ROWID"""
    )
    db.execute(
        "CREATE TABLE audit_subject_index_state (id INTEGER PRIMARY KEY CHECK (id = 0),"
        " upto INTEGER NOT NULL)"
    )
    db.execute("INSERT INTO audit_subject_index_state (id, upto) VALUES (0, 0)")


@MIGRATIONS(name="0008_search_text_by_han_character")
def _search_text_by_han_character(db: Database) -> None:
    # unicode61 takes a run of Chinese characters for one word, matched by prefix only, so a
    # word inside a title was never found. The index now holds catalog.search_text of each
    # column (every Han character a word), written with the dataset row instead of by
    # triggers copying the raw columns.
    for suffix in ("ai", "ad", "au"):
        db.execute(f"DROP TRIGGER datasets_{suffix}")
    db.execute("DROP TABLE datasets_fts")
    columns = ", ".join(_SEARCHED_0008)
    db.execute(f"CREATE VIRTUAL TABLE datasets_fts USING fts5 ({columns}, tokenize='unicode61')")
    for seq, *texts in db.execute(f"SELECT seq, {columns} FROM datasets").fetchall():
        db.execute(f"INSERT INTO datasets_fts (rowid, {columns}) VALUES (?, ?, ?, ?, ?)",
                   [seq, *(_HAN_0008.sub(r" \1 ", text) for text in texts)])


_SEARCHED_0008 = ("title", "abstract", "tags", "field_names")
_HAN_0008 = re.compile("([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f])")
"""The columns indexed and the Han characters spaced out as 0008 defined them; later
tokenisers re-index through their own migrations, so a fresh database and an upgraded one get
the same history."""


@MIGRATIONS(name="0009_version_classification")
def _version_classification(db: Database) -> None:
    # Each version is visible by its own classification: an older CONFIDENTIAL version stays
    # hidden after a later one is published PUBLIC.
    db.execute("ALTER TABLE dataset_versions ADD COLUMN classification TEXT NOT NULL"
               " DEFAULT 'CONFIDENTIAL'")
    for name, signed in db.execute("SELECT name, signed_manifest FROM dataset_versions").fetchall():
        db.execute("UPDATE dataset_versions SET classification = ? WHERE name = ?",
                   [_classification_0009(signed), name])


def _classification_0009(signed_manifest: bytes) -> str:
    """The classification of a stored signed manifest, read by field number as it was at 0009
    (Envelope.payload = 2, Manifest.classification = 7, values 1 to 3); CONFIDENTIAL, the
    column default, when it cannot be read."""
    payloads = _wire_values(signed_manifest, 2)
    values = _wire_values(payloads[-1], 7) if payloads else []
    return {1: "PUBLIC", 2: "INTERNAL"}.get(values[-1] if values else 0, "CONFIDENTIAL")


@MIGRATIONS(name="0010_pending_access_requests")
def _pending_access_requests(db: Database) -> None:
    # One pending request per requester and dataset: the check reads this index, not every
    # request the requester ever made.
    db.execute("CREATE INDEX access_requests_pending ON access_requests (requester, dataset)"
               " WHERE state = 'PENDING'")


@MIGRATIONS(name="0011_previous_signing_certificates")
def _previous_signing_certificates(db: Database) -> None:
    # A JSON array of {certificate_pem, key_id, retire_time}, oldest first: an agency's
    # directory row (cached whole) carries what verifying its older manifests needs.
    db.execute("ALTER TABLE agencies ADD COLUMN previous_signing_certificates TEXT NOT NULL"
               " DEFAULT '[]'")


@MIGRATIONS(name="0012_sharing_terms_of_versions_and_grants")
def _sharing_terms_of_versions_and_grants(db: Database) -> None:
    # A grant opens only the versions whose terms are no stricter than those it was given
    # under: each version keeps its sharing type beside its classification, and each grant the
    # terms of its dataset's latest version when it was given. A grant given before this takes
    # those of the latest version published at or before its create_time; without one, the
    # narrowest terms (the column defaults), as a version whose sharing type cannot be read
    # takes the strictest.
    db.execute("ALTER TABLE dataset_versions ADD COLUMN sharing_type TEXT NOT NULL"
               " DEFAULT 'NOT_SHARED'")
    for name, signed in db.execute("SELECT name, signed_manifest FROM dataset_versions").fetchall():
        db.execute("UPDATE dataset_versions SET sharing_type = ? WHERE name = ?",
                   [_sharing_type_0012(signed), name])
    db.execute("ALTER TABLE grants ADD COLUMN max_classification TEXT NOT NULL DEFAULT 'PUBLIC'")
    db.execute("ALTER TABLE grants ADD COLUMN max_sharing_type TEXT NOT NULL"
               " DEFAULT 'UNCONDITIONAL'")
    given = ("FROM dataset_versions v WHERE v.dataset = grants.dataset"
             " AND v.create_time <= grants.create_time")
    db.execute(
        "UPDATE grants SET (max_classification, max_sharing_type) ="
        f" (SELECT v.classification, v.sharing_type {given} ORDER BY v.version DESC LIMIT 1)"
        f" WHERE EXISTS (SELECT 1 {given})"
    )


def _sharing_type_0012(signed_manifest: bytes) -> str:
    """The sharing type of a stored signed manifest, read by field number from the wire format
    as it was at 0012 (Envelope.payload = 2, Manifest.sharing_type = 8, values 1 to 3), not
    through the generated classes, which may change after this migration."""
    payloads = _wire_values(signed_manifest, 2)
    values = _wire_values(payloads[-1], 8) if payloads else []
    return {1: "UNCONDITIONAL", 2: "CONDITIONAL"}.get(values[-1] if values else 0, "NOT_SHARED")


def _wire_values(message: bytes, number: int) -> list[Any]:
    """The values of top-level field `number` in protobuf `message`, in order (the last one
    counts, as protobuf reads a scalar); none when `message` does not parse."""
    try:
        fields = UnknownFieldSet(empty_pb2.Empty.FromString(message))
    except DecodeError:
        return []
    return [field.data for field in fields if field.field_number == number]


@MIGRATIONS(name="0013_requests_for_names_not_published")
def _requests_for_names_not_published(db: Database) -> None:
    # A request naming a dataset its requester may not see is recorded whether or not the
    # dataset exists (an answer that differed would tell), so `dataset` names no datasets row.
    db["access_requests"].transform(drop_foreign_keys=["dataset"])
    # The cap on PENDING requests of one requester towards one owner reads this.
    db.execute("CREATE INDEX access_requests_pending_owner ON access_requests (requester, owner)"
               " WHERE state = 'PENDING'")


@MIGRATIONS(name="0014_grants_wider_than_their_requests")
def _grants_wider_than_their_requests(db: Database) -> None:
    # A grant covers at most the fields its request named. Earlier releases gave some grants
    # every field (fields '[]') for a request naming a few. Narrowing the row would contradict
    # the grant statement the gateway signed, which the grantee holds, and re-signing would
    # date a statement never made then; so such a grant still in force is revoked, its signed
    # record kept as it was, and its grantee asks again for a grant that names the fields.
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # times.to_text's form
    wide = db.execute(
        "SELECT g.name, r.signed_statement FROM grants g JOIN access_requests r"
        " ON r.name = g.access_request WHERE g.fields = '[]' AND g.state = 'ACTIVE'"
        " AND g.expire_time > ?", [now]).fetchall()
    for name, signed in wide:
        asked = _request_fields_0014(signed)
        if asked:
            db.execute(
                "UPDATE grants SET state = 'REVOKED', revoke_time = ?, revoke_reason = ?"
                " WHERE name = ?",
                [now, f"it covered every field, but its request asked only for"
                      f" {', '.join(asked)}: request access again", name])


def _request_fields_0014(signed_statement: bytes) -> list[str]:
    """The fields a stored signed access request names, read by field number from the wire
    format as it was at 0014 (Envelope.payload = 2, AccessRequestStatement.fields = 7)."""
    payloads = _wire_values(signed_statement, 2)
    values = _wire_values(payloads[-1], 7) if payloads else []
    return [value.decode("utf-8", "replace") for value in values if isinstance(value, bytes)]


@MIGRATIONS(name="0015_witnesses")
def _witnesses(db: Database) -> None:
    # As a witness: the tree head last cosigned per log followed, with the note cosigned.
    db.execute(
        """
        CREATE TABLE witnessed_logs (
            origin TEXT PRIMARY KEY,
            tree_size INTEGER NOT NULL,
            root_hash BLOB NOT NULL,
            checkpoint BLOB NOT NULL,
            update_time TEXT NOT NULL
        )"""
    )
    # Checkpoints refused as not extending the tree cosigned: evidence of a fork or rollback.
    db.execute(
        """
        CREATE TABLE witness_refusals (
            id INTEGER PRIMARY KEY,
            origin TEXT NOT NULL,
            tree_size INTEGER NOT NULL,
            reason TEXT NOT NULL,
            checkpoint BLOB NOT NULL,
            create_time TEXT NOT NULL
        )"""
    )
    # As a log: the cosignature lines each witness (a member id) gave a checkpoint.
    db.execute(
        """
        CREATE TABLE cosignatures (
            tree_size INTEGER NOT NULL,
            witness TEXT NOT NULL,
            line TEXT NOT NULL,
            create_time TEXT NOT NULL,
            PRIMARY KEY (tree_size, witness)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX cosignatures_witness ON cosignatures (witness, tree_size)")


@MIGRATIONS(name="0016_cosignatures_by_origin")
def _cosignatures_by_origin(db: Database) -> None:
    # A log that moved to a new origin (govshare gateway new-origin) has checkpoints of both:
    # the cosignatures of one must never be handed out with, or counted for, the other's. A
    # row kept takes the origin of the checkpoint stored at its size (none: '', matching none).
    db.execute(
        """
        CREATE TABLE cosignatures_by_origin (
            origin TEXT NOT NULL,
            tree_size INTEGER NOT NULL,
            witness TEXT NOT NULL,
            line TEXT NOT NULL,
            create_time TEXT NOT NULL,
            PRIMARY KEY (origin, tree_size, witness)
        ) WITHOUT ROWID"""
    )
    db.execute(
        """
        INSERT INTO cosignatures_by_origin (origin, tree_size, witness, line, create_time)
        SELECT COALESCE((SELECT CAST(substr(k.note, 1, instr(k.note, X'0A') - 1) AS TEXT)
                         FROM checkpoints AS k WHERE k.tree_size = c.tree_size), ''),
               c.tree_size, c.witness, c.line, c.create_time
        FROM cosignatures AS c"""
    )
    db.execute("DROP TABLE cosignatures")
    db.execute("ALTER TABLE cosignatures_by_origin RENAME TO cosignatures")
    db.execute("CREATE INDEX cosignatures_witness ON cosignatures (origin, witness, tree_size)")


@MIGRATIONS(name="0017_network_replicas")
def _network_replicas(db: Database) -> None:
    # As a holder: the position of each agency's and shared dataset's latest change, for the
    # other members to pull (ListNetworkChanges). Triggers keep it, so no write path has to; a
    # row is replaced at each change, so the table holds one row per agency and dataset.
    db.execute(
        """
        CREATE TABLE network_changes (
            position INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL CHECK (kind IN ('agency', 'dataset')),
            key TEXT NOT NULL,
            UNIQUE (kind, key)
        )"""
    )
    # The history the positions count in: a copy of an older database numbers its changes
    # again from a lower position, so a receiver that sees another epoch starts over.
    db.execute("CREATE TABLE network_epoch (id INTEGER PRIMARY KEY CHECK (id = 1),"
               " epoch TEXT NOT NULL)")
    db.execute("INSERT INTO network_epoch (id, epoch) VALUES (1, lower(hex(randomblob(16))))")
    # A dataset the network was sent: its random replication id (a removal names it, never a
    # digest of the name, which a word list would recover) and whether the network's copies
    # stand (shared = 1) or were told to go. A dataset never shared has no row, and no change.
    db.execute(
        """
        CREATE TABLE network_datasets (
            name TEXT PRIMARY KEY,
            replication_id TEXT NOT NULL UNIQUE,
            shared INTEGER NOT NULL CHECK (shared IN (0, 1))
        )"""
    )
    changed = """
                    DELETE FROM network_changes WHERE kind = '{kind}' AND key = NEW.{key};
                    INSERT INTO network_changes (kind, key) VALUES ('{kind}', NEW.{key});"""
    agency_changed = changed.format(kind="agency", key="id")
    dataset_changed = changed.format(kind="dataset", key="name")
    shared = ("NEW.classification IN ('PUBLIC', 'INTERNAL')"
              " AND NEW.sharing_type != 'NOT_SHARED'")
    for event in ("INSERT", "UPDATE"):
        db.execute(
            f"""
            CREATE TRIGGER agencies_{event.lower()}_network_change AFTER {event} ON agencies
            BEGIN{agency_changed}
            END"""
        )
        db.execute(
            f"""
            CREATE TRIGGER datasets_{event.lower()}_network_change AFTER {event} ON datasets
            WHEN {shared}
            BEGIN
                INSERT INTO network_datasets (name, replication_id, shared)
                    SELECT NEW.name, lower(hex(randomblob(16))), 1 WHERE NOT EXISTS
                        (SELECT 1 FROM network_datasets WHERE name = NEW.name);
                UPDATE network_datasets SET shared = 1 WHERE name = NEW.name;{dataset_changed}
            END"""
        )
        db.execute(
            f"""
            CREATE TRIGGER datasets_{event.lower()}_network_removal AFTER {event} ON datasets
            WHEN NOT ({shared})
                AND (SELECT shared FROM network_datasets WHERE name = NEW.name) = 1
            BEGIN
                UPDATE network_datasets SET shared = 0 WHERE name = NEW.name;{dataset_changed}
            END"""
        )
    db.execute("INSERT INTO network_changes (kind, key) SELECT 'agency', id FROM agencies"
               " ORDER BY rowid")
    shared_rows = shared.replace("NEW.", "")
    db.execute("INSERT INTO network_datasets (name, replication_id, shared)"
               f" SELECT name, lower(hex(randomblob(16))), 1 FROM datasets WHERE {shared_rows}")
    db.execute("INSERT INTO network_changes (kind, key) SELECT 'dataset', name FROM datasets"
               f" WHERE {shared_rows} ORDER BY rowid")
    # As a receiver: the other members' agencies and shared datasets, each row naming the
    # member it was pulled from, and how far each member's changes were taken in which of its
    # histories (epoch).
    db.execute(
        """
        CREATE TABLE replica_agencies (
            id TEXT PRIMARY KEY,
            member TEXT NOT NULL,
            display_name TEXT NOT NULL,
            region_code TEXT NOT NULL,
            signing_certificate_pem TEXT NOT NULL,
            signing_key_id TEXT NOT NULL,
            state TEXT NOT NULL,
            suspend_reason TEXT NOT NULL,
            create_time TEXT NOT NULL,
            update_time TEXT NOT NULL,
            previous_signing_certificates TEXT NOT NULL DEFAULT '[]'
        )"""
    )
    db.execute(
        """
        CREATE TABLE replica_datasets (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            replication_id TEXT NOT NULL,
            member TEXT NOT NULL,
            publisher TEXT NOT NULL,
            region_code TEXT NOT NULL,
            latest_version INTEGER NOT NULL,
            state TEXT NOT NULL,
            withdraw_reason TEXT NOT NULL,
            classification TEXT NOT NULL,
            sharing_type TEXT NOT NULL,
            title TEXT NOT NULL,
            abstract TEXT NOT NULL,
            tags TEXT NOT NULL,
            field_names TEXT NOT NULL,
            create_time TEXT NOT NULL,
            update_time TEXT NOT NULL,
            signed_manifest BLOB NOT NULL
        )"""
    )
    db.execute("CREATE INDEX replica_datasets_created ON replica_datasets"
               " (create_time, member, seq)")
    db.execute("CREATE INDEX replica_datasets_replication_id ON replica_datasets"
               " (member, replication_id)")
    # Tags one by one, as dataset_tags, so that a tag filter matches whole tags only.
    db.execute(
        """
        CREATE TABLE replica_dataset_tags (
            tag TEXT NOT NULL,
            dataset_seq INTEGER NOT NULL REFERENCES replica_datasets (seq),
            PRIMARY KEY (tag, dataset_seq)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE VIRTUAL TABLE replica_datasets_fts USING fts5"
               " (title, abstract, tags, field_names, tokenize='unicode61')")
    db.execute(
        """
        CREATE TABLE replica_positions (
            member TEXT PRIMARY KEY,
            epoch TEXT NOT NULL,
            position INTEGER NOT NULL
        )"""
    )
    # The merged catalog lists newest first by first publication, local and replicated alike.
    db.execute("CREATE INDEX datasets_created ON datasets (create_time, seq)")


@MIGRATIONS(name="0018_exchanges_across_members")
def _exchanges_across_members(db: Database) -> None:
    # Exchanges cross members: an agency homed at another member asks for this gateway's
    # datasets through its own gateway, and this gateway's agencies for other members'
    # datasets through this one. Either way one side of a request, grant or exchange is an
    # agency (and a dataset) of another member, which names a replica row or nothing this
    # gateway holds, never an agencies or datasets row.
    db["grants"].transform(drop_foreign_keys=["grantee", "owner", "dataset"])
    db["access_requests"].transform(drop_foreign_keys=["requester", "owner"])
    db["exchanges"].transform(drop_foreign_keys=["requester"])


@MIGRATIONS(name="0019_forwarded_requests")
def _forwarded_requests(db: Database) -> None:
    # A request this gateway carried to another member for one of its agencies, and the grant
    # that member gave, are kept here as that member last answered, beside the local ones
    # (so that the requester's listings merge both in one order, with one page token),
    # `member` naming the member that holds and decides them (NULL: this gateway's own).
    db.execute("ALTER TABLE access_requests ADD COLUMN member TEXT")
    db.execute("ALTER TABLE grants ADD COLUMN member TEXT")
    # What the requester's gateway asks its members about: requests still waiting for a
    # decision, and grants still in force.
    db.execute("CREATE INDEX access_requests_forwarded ON access_requests (member)"
               " WHERE member IS NOT NULL AND state = 'PENDING'")
    db.execute("CREATE INDEX grants_forwarded ON grants (member, grantee)"
               " WHERE member IS NOT NULL AND state = 'ACTIVE'")


@MIGRATIONS(name="0020_witness_gossip")
def _witness_gossip(db: Database) -> None:
    # As a witness: its own cosignature line of the checkpoint last cosigned, so that it can
    # list what it vouches for (WitnessService.ListWitnessedCheckpoints). Rows cosigned before
    # keep '' until the next cosignature and are not listed till then.
    db.execute("ALTER TABLE witnessed_logs ADD COLUMN cosignature TEXT NOT NULL DEFAULT ''")
    # As a member comparing what its peers cosigned with its own view: pairs of statements
    # signed by one key that cannot both be true (two checkpoints of one log that are not one
    # history, two configurations of one version), each pair kept once.
    db.execute(
        """
        CREATE TABLE network_evidence (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            member TEXT NOT NULL,
            first BLOB NOT NULL,
            first_from TEXT NOT NULL,
            second BLOB NOT NULL,
            second_from TEXT NOT NULL,
            pair TEXT NOT NULL UNIQUE,
            reason TEXT NOT NULL,
            create_time TEXT NOT NULL
        )"""
    )
