"""Resource names of the govshare API, parsed in one place.

Names are paths (AIP-122): "agencies/{agency}", "agencies/{agency}/datasets/{dataset}",
".../versions/{n}", "agencies/{agency}/accessRequests/{id}", ".../grants/{id}",
".../exchanges/{id}" and "auditEvents/{leaf_index}". Agency and dataset ids match `ID_PATTERN`,
so a name never carries path characters, NUL or surprises; the ids the gateway gives requests,
grants and exchanges are 32 hex digits (govshare.ids).

`parse` checks a caller's text and says which field is wrong and what it should look like;
`match` answers None instead. The constructors take parts already checked (parsed, or read from
storage) and do not check them again: they are on every reply's path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Self

from govshare import errors

ID_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,62}[a-z0-9]$")
"""Agency, dataset and principal ids are DNS-label-like, 3-64 chars; use ``fullmatch``, as
``$`` accepts a final newline."""
MAX_VERSION = 2**63 - 1
MAX_LEAF_INDEX = 2**63 - 1
"""Version numbers and leaf indexes are int64 (the proto's and SQLite's integer)."""

_ID = ID_PATTERN.pattern.removeprefix("^").removesuffix("$")
_HEX_ID = "[0-9a-f]{32}"
_NUMBER = "0|[1-9][0-9]{0,18}"
_IDS_RULE = f" with ids matching {ID_PATTERN.pattern}"


class _Name:
    """What every name does with text: `parse` it (or refuse it naming the field) and `match`
    it. A subclass gives its documented FORM, the REGEX of its text and `_of` its groups."""

    FORM: ClassVar[str]
    RULE: ClassVar[str] = _IDS_RULE
    REGEX: ClassVar[re.Pattern[str]]

    @classmethod
    def match(cls, text: str) -> Self | None:
        """The name `text` spells, or None."""
        found = cls.REGEX.fullmatch(text)
        return None if found is None else cls._of(*found.groups())

    @classmethod
    def parse(cls, text: str, field: str = "name") -> Self:
        """The name `text` spells; INVALID_ARGUMENT naming `field` and the form otherwise."""
        name = cls.match(text)
        if name is None:
            raise errors.InvalidArgument(f"{field} must be {cls.FORM}{cls.RULE}", field=field)
        return name

    @classmethod
    def _of(cls, *groups: str) -> Self:
        return cls(*groups)  # type: ignore[call-arg]


@dataclass(frozen=True)
class AgencyName(_Name):
    """agencies/{agency}"""

    FORM = "agencies/{agency}"
    REGEX = re.compile(f"agencies/({_ID})")

    agency: str

    def __str__(self) -> str:
        return f"agencies/{self.agency}"

    def dataset(self, dataset: str) -> DatasetName:
        return DatasetName(self.agency, dataset)

    def access_request(self, request_id: str) -> AccessRequestName:
        return AccessRequestName(self.agency, request_id)

    def grant(self, grant_id: str) -> GrantName:
        return GrantName(self.agency, grant_id)

    def exchange(self, exchange_id: str) -> ExchangeName:
        return ExchangeName(self.agency, exchange_id)


@dataclass(frozen=True)
class DatasetName(_Name):
    """agencies/{agency}/datasets/{dataset}"""

    FORM = "agencies/{agency}/datasets/{dataset}"
    REGEX = re.compile(f"agencies/({_ID})/datasets/({_ID})")

    agency: str
    dataset: str

    def __str__(self) -> str:
        return f"agencies/{self.agency}/datasets/{self.dataset}"

    @property
    def owner(self) -> AgencyName:
        return AgencyName(self.agency)

    def version(self, version: int) -> VersionName:
        return VersionName(self, version)


@dataclass(frozen=True)
class VersionName(_Name):
    """agencies/{agency}/datasets/{dataset}/versions/{version}, version 1 or later."""

    FORM = "agencies/{agency}/datasets/{dataset}/versions/{version}"
    RULE = f"{_IDS_RULE} and a version from 1 to {MAX_VERSION}"
    REGEX = re.compile(f"agencies/({_ID})/datasets/({_ID})/versions/([1-9][0-9]{{0,18}})")

    dataset: DatasetName
    version: int

    def __str__(self) -> str:
        return f"{self.dataset}/versions/{self.version}"

    @classmethod
    def _of(cls, *groups: str) -> Self | None:  # type: ignore[override]
        agency, dataset, version = groups
        return cls(DatasetName(agency, dataset), int(version)) \
            if int(version) <= MAX_VERSION else None


@dataclass(frozen=True)
class _ChildName(_Name):
    """A resource the gateway names under an agency with a 32-hex-digit id."""

    COLLECTION: ClassVar[str]

    agency: str
    id: str

    def __str__(self) -> str:
        return f"agencies/{self.agency}/{self.COLLECTION}/{self.id}"

    @property
    def parent(self) -> AgencyName:
        return AgencyName(self.agency)


def _child_regex(collection: str) -> re.Pattern[str]:
    return re.compile(f"agencies/({_ID})/{collection}/({_HEX_ID})")


class AccessRequestName(_ChildName):
    """agencies/{requester}/accessRequests/{id}"""

    COLLECTION = "accessRequests"
    FORM = "agencies/{agency}/accessRequests/{access_request}"
    RULE = f"{_IDS_RULE} and an access request id of 32 hex digits"
    REGEX = _child_regex(COLLECTION)


class GrantName(_ChildName):
    """agencies/{grantee}/grants/{id}"""

    COLLECTION = "grants"
    FORM = "agencies/{agency}/grants/{grant}"
    RULE = f"{_IDS_RULE} and a grant id of 32 hex digits"
    REGEX = _child_regex(COLLECTION)


class ExchangeName(_ChildName):
    """agencies/{requester}/exchanges/{id}"""

    COLLECTION = "exchanges"
    FORM = "agencies/{agency}/exchanges/{exchange}"
    RULE = f"{_IDS_RULE} and an exchange id of 32 hex digits"
    REGEX = _child_regex(COLLECTION)


@dataclass(frozen=True)
class AuditEventName(_Name):
    """auditEvents/{leaf_index}: an event is named by its place in the log."""

    FORM = "auditEvents/{leaf_index}"
    RULE = f" with a decimal index from 0 to {MAX_LEAF_INDEX}"
    REGEX = re.compile(f"auditEvents/({_NUMBER})")

    leaf_index: int

    def __str__(self) -> str:
        return f"auditEvents/{self.leaf_index}"

    @classmethod
    def _of(cls, *groups: str) -> Self | None:  # type: ignore[override]
        index = int(groups[0])
        return cls(index) if index <= MAX_LEAF_INDEX else None
