"""What an answer about a dataset the caller may not see tells: compared with the answer about
a name nobody published, with the names themselves set aside."""

from __future__ import annotations

from gateway.v1 import exchange_pb2

MISSING = "agencies/gd-health/datasets/never-published"
SECRETS = ("State Secrets Law", "merged into case-files-2", "UNCONDITIONAL", "CONDITIONAL",
           "NOT_SHARED", "unconditionally", "on conditions", "withdrawn", "not shared",
           "legal basis")
"""What no answer about a hidden dataset may say: its legal basis, its withdrawal reason, its
terms."""


def anonymous(text: str, name: str) -> str:
    return text.replace(name, "<dataset>")


def answer(response, name: str) -> tuple:
    """What a CreateAccessRequest answer tells, the dataset's name and the request's own name
    and times aside."""
    request = response.access_request
    statement = exchange_pb2.AccessRequestStatement()
    statement.CopyFrom(request.statement)
    for field in ("dataset", "request_id", "nonce", "create_time"):
        statement.ClearField(field)
    return (request.requester, request.owner, anonymous(request.dataset, name), request.state,
            anonymous(request.state_reason, name), request.decide_deadline.ToDatetime().date(),
            request.overdue, request.grant, bytes(request.signed_decision.SerializeToString()),
            statement.SerializeToString(deterministic=True), response.HasField("grant"))


def assert_tells_nothing(*texts: str) -> None:
    for text in texts:
        assert not [secret for secret in SECRETS if secret in text], text
