"""The typed errors of govshare: each class names its gRPC status code (by name, so this
module needs no gRPC) and its ErrorInfo reason.

The domain raises these; `gateway.status` is the only place that turns them into a gRPC
status, with a `google.rpc.ErrorInfo` detail (reason, domain, metadata).
"""

from __future__ import annotations

from collections.abc import Mapping

DOMAIN = "govshare.gateway.v1"
MAX_MESSAGE_BYTES = 1024
MAX_METADATA_BYTES = 256
"""Messages and metadata may quote a caller's input: clipped, so the status trailers stay under
gRPC's 8 KiB metadata limit (past it the caller gets "Stream removed" instead of the error)
and a refusal's audit event stays small."""


class GatewayError(Exception):
    """Base of every error the gateway reports to a caller."""

    code = "INTERNAL"
    reason = "INTERNAL"
    audited = False
    """True once the refusal this error causes has been written to the audit log."""

    def __init__(self, message: str, *, reason: str | None = None, **metadata: object):
        message = clip(message, MAX_MESSAGE_BYTES)
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason
        self.metadata = clipped(metadata)


def clipped(metadata: Mapping[str, object]) -> dict[str, str]:
    """ErrorInfo metadata, each value as text clipped to MAX_METADATA_BYTES."""
    return {key: clip(str(value), MAX_METADATA_BYTES) for key, value in metadata.items()}


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, marked with "…" when cut."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode(errors="ignore") + "…"


class InvalidArgument(GatewayError):
    """The request is malformed: a field is missing, too long, or not in its pattern."""

    code = "INVALID_ARGUMENT"
    reason = "INVALID_ARGUMENT"


class Unauthenticated(GatewayError):
    """The caller's certificate is not acceptable (revoked, or carries no govshare identity)."""

    code = "UNAUTHENTICATED"
    reason = "CERTIFICATE_REJECTED"


class PermissionDenied(GatewayError):
    """The caller is known but may not do this."""

    code = "PERMISSION_DENIED"
    reason = "PERMISSION_DENIED"


class NotFound(GatewayError):
    """The named resource does not exist."""

    code = "NOT_FOUND"
    reason = "NOT_FOUND"


class AlreadyExists(GatewayError):
    """The resource to create exists already."""

    code = "ALREADY_EXISTS"
    reason = "ALREADY_EXISTS"


class FailedPrecondition(GatewayError):
    """The resource is not in a state that allows this."""

    code = "FAILED_PRECONDITION"
    reason = "FAILED_PRECONDITION"


class Aborted(GatewayError):
    """A compare-and-set lost: the state the caller assumed has moved on; read it and retry."""

    code = "ABORTED"
    reason = "ABORTED"


class OutOfRange(GatewayError):
    """A position or size lies beyond what exists now (a leaf past the latest tree size)."""

    code = "OUT_OF_RANGE"
    reason = "OUT_OF_RANGE"


class ResourceExhausted(GatewayError):
    """A size, rate or concurrency limit was exceeded."""

    code = "RESOURCE_EXHAUSTED"
    reason = "LIMIT_EXCEEDED"


class DataLoss(GatewayError):
    """Bytes were lost or altered: streamed content or stored content does not match its hash."""

    code = "DATA_LOSS"
    reason = "CONTENT_MISMATCH"


class Cancelled(GatewayError):
    """The caller cancelled the call before it ended; nothing was kept."""

    code = "CANCELLED"
    reason = "CANCELLED"


class Unavailable(GatewayError):
    """The gateway cannot serve now (shutting down, storage unwritable); retry later."""

    code = "UNAVAILABLE"
    reason = "UNAVAILABLE"


class FromMember(GatewayError):
    """Another member's gateway refused a call carried there for an agency: its answer passed
    on as it came (status, reason, metadata), the message naming the member."""

    reason = "MEMBER_REFUSED"

    def __init__(self, code: str, message: str, *, reason: str = "",
                 metadata: Mapping[str, object]):
        # The member's metadata is network text: a mapping, never keyword arguments, so that
        # no key of its choosing ("reason", "message") can collide with ours.
        super().__init__(message, reason=reason)
        self.code = code
        self.metadata = clipped(metadata)


class NetworkConfigurationRejected(GatewayError):
    """A signed network configuration was refused; the subclass and reason say which rule."""

    code = "FAILED_PRECONDITION"
    reason = "NETWORK_CONFIGURATION_REJECTED"


class NetworkConfigurationInvalid(NetworkConfigurationRejected):
    """A network configuration is malformed or breaks a rule of its own (a region served twice,
    a member certificate of another gateway, an unreadable verifier key)."""

    code = "INVALID_ARGUMENT"
    reason = "NETWORK_CONFIGURATION_INVALID"


class NetworkConfigurationSignatureInvalid(NetworkConfigurationRejected):
    """A network configuration is not signed by a valid, unrevoked network authority of its
    network certified by the national CA."""

    code = "PERMISSION_DENIED"
    reason = "NETWORK_CONFIGURATION_SIGNATURE_INVALID"


class NetworkConfigurationExpired(NetworkConfigurationRejected):
    """A network configuration is past its expire_time."""

    reason = "NETWORK_CONFIGURATION_EXPIRED"


class NetworkConfigurationNotYetValid(NetworkConfigurationExpired):
    """A network configuration is issued later than now allows: the one refusal that time alone
    can lift, so a gateway tries the same file again."""

    reason = "NETWORK_CONFIGURATION_NOT_YET_VALID"


class NetworkConfigurationNotNewer(NetworkConfigurationRejected):
    """A network configuration would replace one of the same or a higher version."""

    reason = "NETWORK_CONFIGURATION_NOT_NEWER"
