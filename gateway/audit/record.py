"""Audit records: the exact bytes of one event, serialised once and stored as they are.

A record is compact JSON with sorted keys; verifiers hash the stored bytes and never re-encode
the decoded fields. Field `v` names the format version.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

ALLOWED = "ALLOWED"
REFUSED = "REFUSED"
ANONYMOUS = "urn:govshare:anonymous"

_AGENCY = re.compile(r"^(agencies/[^/]+)")
_DATASET = re.compile(r"^(agencies/[^/]+/datasets/[^/]+)")


@dataclass(frozen=True)
class Event:
    """What happened, before the log gives it a position and a time."""

    actor: str
    """Identity URI of the caller, from its verified certificate."""
    action: str
    """Dotted action name, for example "catalog.publish"."""
    resources: tuple[str, ...] = ()
    """Resource names the action concerned."""
    outcome: str = ALLOWED
    """ALLOWED or REFUSED."""
    reason: str = ""
    """For refusals: the ErrorInfo reason and message."""
    request_digest: str = ""
    """Hex SHA-256 of the request as received."""
    envelope_ids: tuple[str, ...] = ()
    """Hex SHA-256 of each signed envelope payload involved."""
    agencies: tuple[str, ...] = ()
    """Agency resource names concerned besides those derived from `resources`."""

    def subjects(self) -> list[str]:
        """Every agency and dataset this event concerns, for filtering and visibility (other
        resource names stay in `resources` only: nothing filters on them).

        Names holding NUL (a refused request may carry any text) are no subjects: SQLite's JSON
        functions cut strings at NUL, so `audit verify` could not match them to their rows."""
        found = dict.fromkeys(self.agencies)
        for name in self.resources:
            if "\0" in name:
                continue
            for pattern in (_AGENCY, _DATASET):
                match = pattern.match(name)
                if match:
                    found[match.group(1)] = None
        return list(found)


def encode(event: Event, leaf_index: int, when: str, subjects: list[str] | None = None) -> bytes:
    """The record bytes of `event` at `leaf_index`, time `when` (times.to_text form);
    `subjects` is event.subjects() when the caller has it already."""
    body = {
        "v": 1,
        "seq": leaf_index,
        "time": when,
        "actor": event.actor,
        "action": event.action,
        "resources": list(event.resources),
        "outcome": event.outcome,
        "reason": event.reason,
        "request_digest": event.request_digest,
        "envelopes": list(event.envelope_ids),
        "subjects": event.subjects() if subjects is None else subjects,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def decode(record: bytes) -> dict[str, Any]:
    """The fields of a record (for display and filtering; never re-encoded)."""
    return json.loads(record)
