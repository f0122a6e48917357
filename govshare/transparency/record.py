"""Audit records: the exact bytes of one event, serialised once and stored as they are.

A record is compact JSON with sorted keys; verifiers hash the stored bytes and never re-encode
the decoded fields. Field `v` names the format version. A record does not hold its own position:
the leaf index is where the tree puts it, and every inclusion proof binds it. So an event is
encoded and hashed where it is created, on the request's thread, and the log's committer only
places finished leaves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _text
from typing import Any

from govshare import times
from govshare.transparency import merkle

ALLOWED = "ALLOWED"
REFUSED = "REFUSED"
ANONYMOUS = "urn:govshare:anonymous"
FORMAT_VERSION = 1
"""Field `v` of every record this code writes without `via`: their bytes are those earlier
releases wrote."""
VIA_FORMAT_VERSION = 2
"""Field `v` of a record with `via` (a call a member gateway carried for one of its agencies):
version 1 plus that one key, so that a reader of version 1 records sees it is not one."""
NEW_ORIGIN = "audit.new_origin"
"""The action of the first leaf under a new origin; its reason holds the signed checkpoint the
previous origin ended with."""

_ID = r"[a-z0-9][a-z0-9-]{0,63}"
"""What an agency or dataset id in a subject may look like: at most 64 characters of those
govshare.names.ID_PATTERN allows."""
_AGENCY = re.compile(rf"^(agencies/{_ID})(?:/|$)")
_DATASET = re.compile(rf"^(agencies/{_ID}/datasets/{_ID})(?:/|$)")


@dataclass(frozen=True)
class Event:
    """What happened, before the log gives it a position."""

    actor: str
    """Identity URI of the caller, from its verified certificate."""
    action: str
    """Dotted action name, for example "catalog.publish"."""
    resources: tuple[str, ...] = ()
    """Resource names the action concerned."""
    outcome: str = ALLOWED
    """ALLOWED or REFUSED."""
    reason: str = ""
    """For refusals: the ErrorInfo reason and message; for audit.new_origin, the signed
    checkpoint the previous origin ended with."""
    request_digest: str = ""
    """Hex SHA-256 of the request as received."""
    envelope_ids: tuple[str, ...] = ()
    """Hex SHA-256 of each signed envelope payload involved."""
    agencies: tuple[str, ...] = ()
    """Agency resource names concerned besides those derived from `resources`."""
    time: str = field(default_factory=lambda: times.to_text(times.utcnow()))
    """When it happened (times.to_text form)."""
    via: str = ""
    """Identity URI of the member gateway that carried the call for the actor, an agency homed
    at that member (empty: the actor called this gateway itself)."""
    subjects: list[str] = field(init=False, compare=False)
    """Every agency and dataset the event concerns (derived)."""
    record: bytes = field(init=False, compare=False, repr=False)
    """The record bytes, encoded once, when the event is made."""
    leaf_hash: bytes = field(init=False, compare=False, repr=False)
    """SHA-256(0x00 || record): the Merkle leaf (RFC 6962)."""

    def __post_init__(self) -> None:
        # Encoded where the event is made (a request thread), not in the log's committer.
        object.__setattr__(self, "subjects", self._subjects())
        object.__setattr__(self, "record", self._encode())
        object.__setattr__(self, "leaf_hash", merkle.leaf_hash(self.record))

    def _subjects(self) -> list[str]:
        """Every agency and dataset this event concerns, for filtering and visibility (other
        resource names stay in `resources` only: nothing filters on them).

        Only names of valid ids are subjects: a refused request may carry any text, and the
        log stores subjects separated by newlines (SQLite's JSON functions cut strings at NUL,
        so `audit verify` could not match such names to their leaf)."""
        found = dict.fromkeys(self.agencies)
        for name in self.resources:
            for pattern in (_AGENCY, _DATASET):
                match = pattern.match(name)
                if match:
                    found[match.group(1)] = None
        return list(found)

    def _encode(self) -> bytes:
        """Compact JSON with sorted keys, written out in key order: the same bytes as
        json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) gives (a test
        holds it to that), in a third of the time; every append pays for it."""
        carried = f',"v":{VIA_FORMAT_VERSION},"via":{_text(self.via)}' if self.via else \
            f',"v":{FORMAT_VERSION}'
        return (f'{{"action":{_text(self.action)},"actor":{_text(self.actor)},'
                f'"envelopes":{_texts(self.envelope_ids)},"outcome":{_text(self.outcome)},'
                f'"reason":{_text(self.reason)},"request_digest":{_text(self.request_digest)},'
                f'"resources":{_texts(self.resources)},"subjects":{_texts(self.subjects)},'
                f'"time":{_text(self.time)}{carried}}}').encode()


def _texts(items: Iterable[str]) -> str:
    return "[" + ",".join(map(_text, items)) + "]"


def decode(record: bytes) -> dict[str, Any]:
    """The fields of a record (for display and filtering; never re-encoded)."""
    return json.loads(record)
