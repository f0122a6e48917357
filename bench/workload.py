"""A mixed workload of agencies publishing, requesting and fetching, and the checks that every
operation a client saw acknowledged is stored exactly once, with its audit event.

Used by the fault tests (tests/faults) and the soak (`make soak`): each agency runs in its own
thread through the SDK over mutual TLS, records in a `Ledger` every operation whose response
it received, and counts the failures it expected (the gateway being down) apart from the ones it
did not. `inspect_storage` then reads the database, the blob store and the audit log offline.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from agencies import errors
from agencies.client import AgencyClient
from agencies.sim.roster import AgencySpec
from gateway import config as config_module
from gateway.audit import verify
from gateway.blobs import BlobStore
from gateway.network import NetworkLayout
from gateway.storage import audit as audit_sql
from gateway.storage import catalog as catalog_sql
from govshare import envelopes
from govshare.transparency import note, record

KiB = 1024
MiB = 1024 * KiB

EXPECTED_WHILE_DOWN = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})
"""What a call may fail with while the gateway is killed, restarting or shutting down."""
RETRY_PAUSE = 0.05


def agency_specs(count: int, prefix: str = "load") -> list[AgencySpec]:
    """`count` agencies spread over a few provinces."""
    regions = ("440000", "330000", "320000", "110000", "510100", "440300")
    return [AgencySpec(f"{prefix}-{n:02d}", f"Load agency {n}", regions[n % len(regions)])
            for n in range(count)]


@dataclass
class Ledger:
    """Operations acknowledged to the clients, and the failures they met."""

    versions: set[str] = field(default_factory=set)
    requests: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    """request_id -> (requester id, access request name, grant name or "")."""
    exchanges: set[str] = field(default_factory=set)
    checkpoints: int = 0
    expected_failures: Counter[str] = field(default_factory=Counter)
    """Failures with a code in EXPECTED_WHILE_DOWN, by code name."""
    failures: list[str] = field(default_factory=list)
    """Anything else: each one is a defect."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def acknowledged(self) -> int:
        return len(self.versions) + len(self.requests) + len(self.exchanges)


class Worker:
    """One agency's loop: publish small UNCONDITIONAL datasets, ask for other agencies' ones
    (retrying the same signed statement until acknowledged), fetch what it was granted (a broken
    fetch resumes the next time), and check the audit checkpoint extends the last one seen."""

    def __init__(self, client: AgencyClient, workload: Workload, seed: int):
        self.client = client
        self.workload = workload
        self.ledger = workload.ledger
        self.rng = random.Random(seed)
        self.inbox = workload.inbox / client.identity.id
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.published = 0
        self.asked: set[str] = set()
        self.granted: list[str] = []

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            draw = self.rng.random()
            if draw < 0.35:
                self._attempt("publish", self.publish)
            elif draw < 0.7 or not self.granted:
                self._attempt("request", lambda: self.request(stop))
            elif draw < 0.97:
                self._attempt("fetch", self.fetch)
            else:
                self._attempt("checkpoint", self.checkpoint)

    def publish(self) -> None:
        self.published += 1
        dataset = f"{self.client.name}/datasets/load-{self.published:05d}"
        large = self.rng.random() < self.workload.large_share
        size = self.rng.randint(1, 2 * MiB if large else 16 * KiB)
        response = self.client.publish(
            dataset, self.rng.randbytes(size), version=1, title=f"Load dataset {dataset}",
            media_type="CSV", classification="INTERNAL", sharing_type="UNCONDITIONAL")
        with self.ledger.lock:
            self.ledger.versions.add(response.dataset_version.name)
        self.workload.offer(dataset)

    def request(self, stop: threading.Event) -> None:
        dataset = self.workload.pick(self.rng, self.client.name, self.asked)
        if dataset is None:
            return
        self.asked.add(dataset)
        statement = self.client.access_request_statement(
            dataset, purpose="STATISTICS", purpose_text="load test",
            legal_basis="Statistics Law of the PRC, article 7")
        envelope = envelopes.seal(self.client.signing_key, envelopes.ACCESS_REQUEST, statement)
        response = self._until_acknowledged(
            lambda: self.client.send_access_request(envelope), stop)
        if response is None:
            return
        grant = response.grant.name if response.HasField("grant") else ""
        with self.ledger.lock:
            self.ledger.requests[statement.request_id] = (
                self.client.identity.id, response.access_request.name, grant)
        if grant:
            self.granted.append(dataset)

    def fetch(self) -> None:
        if not self.granted:
            return
        dataset = self.rng.choice(self.granted)
        fetched = self.client.fetch(dataset, to=self.inbox / dataset.replace("/", "_"))
        with self.ledger.lock:
            self.ledger.exchanges.add(fetched.receipt.exchange)

    def checkpoint(self) -> None:
        self.client.checkpoint()
        with self.ledger.lock:
            self.ledger.checkpoints += 1

    def _until_acknowledged(self, send: Callable[[], Any], stop: threading.Event) -> Any:
        """Resend the same request while the gateway is down: a retry must not duplicate it."""
        while True:
            try:
                return send()
            except errors.GovshareError as exc:
                if exc.code not in EXPECTED_WHILE_DOWN or stop.is_set():
                    raise
                self._count_expected(exc)
                time.sleep(RETRY_PAUSE)

    def _attempt(self, what: str, operation: Callable[[], object]) -> None:
        try:
            operation()
        except errors.GovshareError as exc:
            if exc.code in EXPECTED_WHILE_DOWN:
                self._count_expected(exc)
                time.sleep(RETRY_PAUSE)
                return
            with self.ledger.lock:
                self.ledger.failures.append(f"{self.client.identity.id} {what}: {exc}")

    def _count_expected(self, exc: errors.GovshareError) -> None:
        with self.ledger.lock:
            self.ledger.expected_failures[exc.code.name] += 1


class Workload:
    """Agency workers on their own threads, sharing the datasets they published."""

    def __init__(self, target: str, layout: NetworkLayout, agency_ids: Iterable[str], *,
                 seed: int, inbox: Path, timeout: float = 20.0, large_share: float = 0.1):
        self.ledger = Ledger()
        self.large_share = large_share
        """The share of publishes of up to 2 MiB (two chunks) rather than up to 16 KiB."""
        self.inbox = inbox
        self._published: list[str] = []
        self._lock = threading.Lock()
        self.clients = [AgencyClient(target, layout.certs(agency), server_name="localhost",
                                     timeout=timeout) for agency in agency_ids]
        self.workers = [Worker(client, self, seed * 1000 + n)
                        for n, client in enumerate(self.clients)]
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for worker in self.workers:
            thread = threading.Thread(target=worker.run, args=(self.stop,), daemon=True,
                                      name=f"load-{worker.client.identity.id}")
            thread.start()
            self.threads.append(thread)

    def finish(self, timeout: float = 30.0) -> Ledger:
        """Stop the workers, wait for their last calls, close the channels."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout)
        stuck = [thread.name for thread in self.threads if thread.is_alive()]
        if stuck:
            self.ledger.failures.append(f"workers did not stop: {', '.join(stuck)}")
        for client in self.clients:
            client.close()
        return self.ledger

    def offer(self, dataset: str) -> None:
        with self._lock:
            self._published.append(dataset)

    def pick(self, rng: random.Random, requester: str, asked: set[str]) -> str | None:
        """A dataset of another agency that `requester` has not asked for yet."""
        with self._lock:
            candidates = [d for d in self._published[-200:]
                          if not d.startswith(requester + "/") and d not in asked]
        return rng.choice(candidates) if candidates else None


# -- inspecting what was stored ------------------------------------------------------------------


@dataclass
class Inspection:
    """What the stored state says about a ledger; `problems` is empty when nothing was lost,
    duplicated or left behind and the audit log verifies."""

    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    orphan_blobs: list[str] = field(default_factory=list)
    missing_blobs: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    audit_problems: list[str] = field(default_factory=list)
    audit_size: int = 0

    @property
    def problems(self) -> list[str]:
        return [*(f"lost: {x}" for x in self.lost), *(f"duplicated: {x}" for x in self.duplicated),
                *(f"orphan blob: {x}" for x in self.orphan_blobs),
                *(f"missing blob: {x}" for x in self.missing_blobs),
                *(f"temp file left: {x}" for x in self.temp_files),
                *(f"audit: {x}" for x in self.audit_problems)]


def inspect_storage(layout: NetworkLayout, ledger: Ledger) -> Inspection:
    """Check the stored state of a stopped (or running) gateway against `ledger`."""
    config = config_module.load(layout.config_path)
    database = config.path(config.storage.database)
    found = Inspection()
    conn = audit_sql.connect_readonly(database)
    try:
        events = _allowed_events(conn)
        _check_versions(conn, ledger, events, found)
        _check_requests(conn, ledger, events, found)
        _check_exchanges(conn, ledger, events, found)
        _check_blobs(conn, config.path(config.storage.blobs), found)
    finally:
        conn.close()
    key = config.path(config.audit.verifier_key_file).read_text().strip()
    report = verify.verify_log(database, note.NoteVerifier.from_verifier_key(key))
    found.audit_size = report.tree_size
    found.audit_problems = [str(problem) for problem in report.problems]
    return found


def _allowed_events(conn: sqlite3.Connection) -> Counter[tuple[str, str]]:
    """How many ALLOWED events each (action, resource) has."""
    counts: Counter[tuple[str, str]] = Counter()
    for _, data in audit_sql.iter_records(conn):
        event = record.decode(data)
        if event["outcome"] == record.ALLOWED:
            counts.update((event["action"], resource) for resource in event["resources"])
    return counts


def _once(what: str, rows: int, events: int, found: Inspection) -> None:
    if rows == 0 or events == 0:
        found.lost.append(f"{what} ({rows} rows, {events} audit events)")
    elif rows > 1 or events > 1:
        found.duplicated.append(f"{what} ({rows} rows, {events} audit events)")


def _count(conn: sqlite3.Connection, sql: str, *params: object) -> int:
    return conn.execute(sql, params).fetchone()[0]


def _check_versions(conn: sqlite3.Connection, ledger: Ledger,
                    events: Counter[tuple[str, str]], found: Inspection) -> None:
    for name in sorted(ledger.versions):
        rows = _count(conn, "SELECT COUNT(*) FROM dataset_versions WHERE name = ?", name)
        _once(name, rows, events["catalog.publish", name], found)


def _check_requests(conn: sqlite3.Connection, ledger: Ledger,
                    events: Counter[tuple[str, str]], found: Inspection) -> None:
    for request_id, (requester, name, grant) in sorted(ledger.requests.items()):
        rows = _count(conn, "SELECT COUNT(*) FROM access_requests WHERE requester = ? AND"
                      " request_id = ? AND name = ?", requester, request_id, name)
        _once(f"{name} (request_id {request_id})", rows,
              events["exchange.request.create", name], found)
        if grant:
            rows = _count(conn, "SELECT COUNT(*) FROM grants WHERE name = ?", grant)
            _once(grant, rows, events["exchange.grant.create", grant], found)
    for requester, request_id in conn.execute(
            "SELECT requester, request_id FROM access_requests GROUP BY requester, request_id"
            " HAVING COUNT(*) > 1"):
        found.duplicated.append(f"access requests of {requester} with request_id {request_id}")


def _check_exchanges(conn: sqlite3.Connection, ledger: Ledger,
                     events: Counter[tuple[str, str]], found: Inspection) -> None:
    for name in sorted(ledger.exchanges):
        rows = _count(conn, "SELECT COUNT(*) FROM exchanges WHERE name = ? AND"
                      " state = 'COMPLETED'", name)
        _once(name, rows, events["exchange.fetch.complete", name], found)


def _check_blobs(conn: sqlite3.Connection, root: Path, found: Inspection) -> None:
    stored = {"/".join(key) for key in BlobStore(root).stored()}
    named = {"/".join(key) for key in catalog_sql.stored_content(conn)}
    found.orphan_blobs = sorted(stored - named)
    found.missing_blobs = sorted(named - stored)
    found.temp_files = sorted(path.name for path in (root / "tmp").iterdir()) \
        if (root / "tmp").is_dir() else []
