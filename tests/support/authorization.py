"""Who may call what: the authorization matrix of gateway.v1, one row per RPC.

This table is the single statement of the gateway's authorization rules. The matrix test
(`test_authorization_matrix.py`) calls every RPC as every kind of caller with a valid request and
compares the outcome with the cell; `docs/AUTHORIZATION.md` is rendered from it:

    .venv/bin/python -m tests.support.authorization > docs/AUTHORIZATION.md

and a test fails when the committed document differs from the rendering.

A cell is "OK" or "STATUS REASON" (the gRPC status and the ErrorInfo reason). Every refusal with
a reason reaches the gateway and is written to the audit log as a REFUSED event of the row's
action, with the caller as actor. A cell without a reason ("UNAVAILABLE (TLS handshake)") is a
connection the TLS handshake refused: it never reaches the gateway, so nothing is audited.
"""

from __future__ import annotations

from dataclasses import dataclass

COLUMNS: dict[str, str] = {
    "owner": "Owner",
    "requester": "Requester / grantee",
    "same_region": "Same-region agency",
    "other_region": "Other-region agency",
    "suspended": "Suspended agency",
    "admin": "Admin",
    "auditor": "Auditor",
    "peer": "Peer gateway",
    "peer_for_agency": "Peer for its agency",
    "peer_for_other": "Peer for an agency not its own",
    "agency_claiming": "Agency claiming to speak for one",
    "outsider": "Gateway not a member",
    "revoked": "Revoked certificate",
    "foreign_ca": "Foreign-CA certificate",
    "no_certificate": "No certificate",
}
"""Caller kinds, in column order, and their headings."""

CAST: dict[str, str] = {
    "owner": "agency gd-health (region 440000): publishes the datasets the requests, grants and"
             " exchanges are about",
    "requester": "agency js-stats (320000): asked for the owner's datasets and holds an active"
                 " grant on the CONFIDENTIAL one",
    "same_region": "agency sz-market (440300, inside the owner's province): registered, no"
                   " dealings with the owner",
    "other_region": "agency zj-stats (330000): registered, no dealings with the owner",
    "suspended": "agency gz-police (440100): registered, then suspended by an administrator",
    "admin": "a staff certificate with the `admin` role: manages the directory",
    "auditor": "a staff certificate with the `auditor` role: reads the audit log",
    "peer": "gateway bj-gateway: another member of the gateway's network, calling with the TLS"
            " certificate the network configuration names for it",
    "peer_for_agency": "bj-gateway calling with `govshare-on-behalf-of: agencies/bj-remote`, an"
                       " agency homed at bj-gateway (110000) as the gateway's replicas say,"
                       " signing with bj-remote's key: no dealings with the owner",
    "peer_for_other": "bj-gateway calling with `govshare-on-behalf-of: agencies/js-stats`, an"
                      " agency of the gateway itself, not of bj-gateway",
    "agency_claiming": "agency js-stats (the requester) calling with `govshare-on-behalf-of:"
                       " agencies/zj-stats`",
    "outsider": "gateway sh-gateway: a gateway certificate of the national CA that the"
                " configuration does not name",
    "revoked": "agency hz-water (330100): registered, its TLS certificate revoked in the CRL",
    "foreign_ca": "a certificate for gd-health issued by another CA",
    "no_certificate": "a TLS connection without a client certificate",
}

OK = "OK"
ROLE = "PERMISSION_DENIED ROLE_NOT_ALLOWED"
SUSPENDED = "PERMISSION_DENIED AGENCY_SUSPENDED"
REVOKED = "UNAUTHENTICATED CERTIFICATE_REVOKED"
HANDSHAKE = "UNAVAILABLE (TLS handshake)"
NOT_OWNER = "PERMISSION_DENIED NOT_OWNER"
NOT_REQUESTER = "PERMISSION_DENIED NOT_REQUESTER"
NOT_PARENT = "PERMISSION_DENIED PARENT_NOT_CALLER"
NO_GRANT = "PERMISSION_DENIED NO_ACTIVE_GRANT"
HIDDEN = "PERMISSION_DENIED DATASET_NOT_VISIBLE"
NOT_PARTY = "PERMISSION_DENIED NOT_A_PARTY"
NOT_VISIBLE = "PERMISSION_DENIED EVENT_NOT_VISIBLE"
NOT_IN_NETWORK = "PERMISSION_DENIED PEER_NOT_IN_NETWORK"
NOT_CARRIED = "PERMISSION_DENIED ON_BEHALF_NOT_ALLOWED"
LOG_NOT_CARRIED = "PERMISSION_DENIED AUDIT_LOG_NOT_CARRIED"
MEMBER_DOWN = "UNAVAILABLE MEMBER_UNAVAILABLE"

NO_CONNECTION = (REVOKED, HANDSHAKE, HANDSHAKE)
"""The last three columns: always the same, whatever the RPC."""
CLAIMS = ("PERMISSION_DENIED ON_BEHALF_AGENCY_NOT_HOMED", "PERMISSION_DENIED ON_BEHALF_NOT_A_PEER")
"""A peer speaking for an agency not its own, and an agency claiming to speak for one: refused
at the door whatever they call."""
GATEWAYS = (ROLE, NOT_CARRIED, *CLAIMS, NOT_IN_NETWORK, *NO_CONNECTION)
"""The last nine columns of every RPC a peer neither calls as itself nor carries for its
agencies: a gateway the configuration does not name is refused whatever it calls."""


def carried(for_agency: str) -> tuple[str, ...]:
    """The last nine columns of an RPC a peer calls for one of its agencies: without saying
    which it is refused; for its agency, the outcome is `for_agency`'s, that agency's own."""
    return ("PERMISSION_DENIED ON_BEHALF_REQUIRED", for_agency, *CLAIMS, NOT_IN_NETWORK,
            *NO_CONNECTION)


AS_PEER = (OK, NOT_CARRIED, *CLAIMS, NOT_IN_NETWORK, *NO_CONNECTION)
"""The last nine columns of an RPC a peer calls as itself, never for an agency."""
PEERS_ONLY = (ROLE, ROLE, ROLE, ROLE, ROLE, ROLE, ROLE, *AS_PEER)
"""An RPC only a peer calls, as itself."""
OTHER_LOG = "`log_origin` = the peer's log"
"""The variant of an audit read naming another member's log: carried there for an agency (the
peer is not running: UNAVAILABLE), never for staff nor for a call a peer carried here."""


@dataclass(frozen=True)
class Row:
    """One RPC: what the request names, what "owner" means for it, and the expected cells."""

    rpc: str
    """"Service.Method" of gateway.v1."""
    variant: str
    """What the request varies from the RPC's first row ("": it is the first row)."""
    action: str
    """The audit action of the RPC (refusals are audited under it)."""
    request: str
    """The valid request every caller sends (each with its own signature where one is needed)."""
    cells: tuple[str, ...]
    """One outcome per column of COLUMNS, in order."""

    @property
    def label(self) -> str:
        """The RPC, and its variant if any."""
        return f"{self.rpc} ({self.variant})" if self.variant else self.rpc

    def outcome(self, column: str) -> str:
        return self.cells[list(COLUMNS).index(column)]


def _row(rpc: str, action: str, request: str, *cells: str, variant: str = "") -> Row:
    assert len(cells) == len(COLUMNS), rpc
    return Row(rpc, variant, action, request, cells)


def _other_log(rpc: str, action: str, request: str, admin: str, peer: str | None = None
               ) -> Row:
    """The row of an audit read of the peer's log (OTHER_LOG), `admin` the admin's outcome and
    `peer` the peer's calling as itself, on an RPC it may call so."""
    gateways = carried(LOG_NOT_CARRIED)
    return _row(rpc, action, request, MEMBER_DOWN, MEMBER_DOWN, MEMBER_DOWN, MEMBER_DOWN,
                SUSPENDED, admin, LOG_NOT_CARRIED, peer or gateways[0], *gateways[1:],
                variant=OTHER_LOG)


# Columns:            owner, requester, same region, other region, suspended, admin, auditor,
#                     then GATEWAYS or carried(...) (peer, peer for its agency, CLAIMS: peer
#                     for an agency not its own, agency claiming; gateway not a member, and
#                     NO_CONNECTION: revoked, foreign CA, no certificate).
TABLE: tuple[Row, ...] = (
    _row("DirectoryService.GetAgency", "directory.get",
         "name = the owner (owner: the agency named)",
         OK, OK, OK, OK, SUSPENDED, OK, OK, *GATEWAYS),
    _row("DirectoryService.ListAgencies", "directory.list",
         "no filter (no owner: the owner column is gd-health calling)",
         OK, OK, OK, OK, SUSPENDED, OK, OK, *GATEWAYS),
    _row("DirectoryService.RegisterAgency", "directory.register",
         "a new agency with its CA-issued signing certificate (no owner: administration)",
         ROLE, ROLE, ROLE, ROLE, ROLE, OK, ROLE, *GATEWAYS),
    _row("DirectoryService.SuspendAgency", "directory.suspend",
         "name = a spare registered agency (no owner: administration)",
         ROLE, ROLE, ROLE, ROLE, ROLE, OK, ROLE, *GATEWAYS),
    _row("DirectoryService.ReinstateAgency", "directory.reinstate",
         "name = a spare agency an administrator suspended (no owner: administration)",
         ROLE, ROLE, ROLE, ROLE, ROLE, OK, ROLE, *GATEWAYS),
    _row("DirectoryService.ReplaceSigningCertificate", "directory.signing_certificate.replace",
         "name = a spare agency, with a second signing certificate the CA issued to it (no"
         " owner: administration)",
         ROLE, ROLE, ROLE, ROLE, ROLE, OK, ROLE, *GATEWAYS),
    _row("CatalogService.PublishDataset", "catalog.publish",
         "a new dataset under the owner, manifest signed by the caller (staff, who hold no"
         " signing key, send the owner's)",
         OK, "PERMISSION_DENIED NOT_PUBLISHER", "PERMISSION_DENIED NOT_PUBLISHER",
         "PERMISSION_DENIED NOT_PUBLISHER", SUSPENDED, ROLE, ROLE, *GATEWAYS),
    _row("CatalogService.GetDataset", "catalog.get",
         "the owner's CONFIDENTIAL dataset (PUBLIC and INTERNAL ones are visible to every"
         " registered agency)",
         OK, OK, HIDDEN, HIDDEN, SUSPENDED, OK, OK, *GATEWAYS),
    _row("CatalogService.ListDatasets", "catalog.list",
         "parent = the owner (each caller sees only the datasets it may see)",
         OK, OK, OK, OK, SUSPENDED, OK, OK, *GATEWAYS),
    _row("CatalogService.ListDatasetVersions", "catalog.versions",
         "parent = the owner's CONFIDENTIAL dataset",
         OK, OK, HIDDEN, HIDDEN, SUSPENDED, OK, OK, *GATEWAYS),
    _row("CatalogService.WithdrawDataset", "catalog.withdraw",
         "name = a dataset of the owner",
         OK, NOT_OWNER, NOT_OWNER, NOT_OWNER, SUSPENDED, ROLE, ROLE, *GATEWAYS),
    _row("ExchangeService.CreateAccessRequest", "exchange.request.create",
         "parent = the caller, a statement signed by the caller asking for the owner's"
         " CONDITIONAL dataset (staff send the requester's)",
         "FAILED_PRECONDITION OWN_DATASET", OK, OK, OK, SUSPENDED, ROLE, ROLE, *carried(OK)),
    _row("ExchangeService.GetAccessRequest", "exchange.request.get",
         "name = the requester's pending request for the owner's dataset",
         OK, OK, NOT_PARTY, NOT_PARTY, SUSPENDED, ROLE, ROLE, *carried(NOT_PARTY)),
    _row("ExchangeService.ListAccessRequests", "exchange.request.list",
         "parent = the owner, incoming requests",
         OK, NOT_PARENT, NOT_PARENT, NOT_PARENT, SUSPENDED, ROLE, ROLE, *carried(NOT_PARENT)),
    _row("ExchangeService.ApproveAccessRequest", "exchange.request.approve",
         "name = a pending request for the owner's dataset, decision signed by the caller"
         " (staff send the owner's)",
         OK, NOT_OWNER, NOT_OWNER, NOT_OWNER, SUSPENDED, ROLE, ROLE, *GATEWAYS),
    _row("ExchangeService.DenyAccessRequest", "exchange.request.deny",
         "as ApproveAccessRequest, with a reason",
         OK, NOT_OWNER, NOT_OWNER, NOT_OWNER, SUSPENDED, ROLE, ROLE, *GATEWAYS),
    _row("ExchangeService.WithdrawAccessRequest", "exchange.request.withdraw",
         "name = a new pending request of the requester for the owner's dataset, with a reason"
         " (only the requester withdraws: the owner denies instead)",
         NOT_REQUESTER, OK, NOT_REQUESTER, NOT_REQUESTER, SUSPENDED, ROLE, ROLE,
         *carried(NOT_REQUESTER)),
    _row("ExchangeService.ListGrants", "exchange.grant.list",
         "parent = the owner, grants given",
         OK, NOT_PARENT, NOT_PARENT, NOT_PARENT, SUSPENDED, ROLE, ROLE, *carried(NOT_PARENT)),
    _row("ExchangeService.RevokeGrant", "exchange.grant.revoke",
         "name = an active grant to the requester on the owner's dataset (administrators may"
         " revoke any grant)",
         OK, NOT_OWNER, NOT_OWNER, NOT_OWNER, SUSPENDED, OK, ROLE, *GATEWAYS),
    _row("ExchangeService.FetchDataset", "exchange.fetch",
         "dataset = the owner's CONFIDENTIAL dataset (only a grantee fetches; the owner reads"
         " its own dataset with GetDataset and ListDatasetVersions)",
         "FAILED_PRECONDITION OWN_DATASET", OK, NO_GRANT, NO_GRANT, SUSPENDED, ROLE, ROLE,
         *carried(NO_GRANT)),
    _row("ExchangeService.WatchEvents", "exchange.watch",
         "parent = the owner, from the first event",
         OK, NOT_PARENT, NOT_PARENT, NOT_PARENT, SUSPENDED, ROLE, ROLE, *GATEWAYS),
    _row("AuditService.ListAuditEvents", "audit.list",
         "every event (an agency sees only the events that name it; admins read none)",
         OK, OK, OK, OK, SUSPENDED, ROLE, OK, *GATEWAYS),
    _row("AuditService.GetAuditEvent", "audit.get",
         "name = the event of the owner's publication",
         OK, NOT_VISIBLE, NOT_VISIBLE, NOT_VISIBLE, SUSPENDED, ROLE, OK, *carried(NOT_VISIBLE)),
    _other_log("AuditService.GetAuditEvent", "audit.get",
               "name = auditEvents/0 of the peer's log, read through the gateway", ROLE),
    _row("AuditService.GetCheckpoint", "audit.checkpoint",
         "the latest checkpoint (hashes only: no owner)",
         OK, OK, OK, OK, SUSPENDED, OK, OK, *carried(OK)),
    _other_log("AuditService.GetCheckpoint", "audit.checkpoint",
               "the latest checkpoint of the peer's log, read through the gateway",
               LOG_NOT_CARRIED),
    _row("AuditService.GetInclusionProof", "audit.prove.inclusion",
         "leaf 0 in the latest tree (hashes only: no owner)",
         OK, OK, OK, OK, SUSPENDED, OK, OK, *carried(OK)),
    _other_log("AuditService.GetInclusionProof", "audit.prove.inclusion",
               "leaf 0 in the latest tree of the peer's log, read through the gateway",
               LOG_NOT_CARRIED),
    # Peers also prove, as themselves, the consistency of this log's checkpoints that other
    # witnesses cosigned (gossip).
    _row("AuditService.GetConsistencyProof", "audit.prove.consistency",
         "from tree size 1 to the latest (hashes only: no owner)",
         OK, OK, OK, OK, SUSPENDED, OK, OK, OK, *carried(OK)[1:]),
    _other_log("AuditService.GetConsistencyProof", "audit.prove.consistency",
               "from tree size 1 to the latest of the peer's log, read through the gateway",
               LOG_NOT_CARRIED, peer=LOG_NOT_CARRIED),
    # Peers compare the configuration a member holds with their own.
    _row("NetworkService.GetNetworkConfiguration", "network.configuration.get",
         "name = networkConfiguration, the configuration the gateway holds (no owner)",
         OK, OK, OK, OK, SUSPENDED, OK, OK, *AS_PEER),
    # A suspended agency is refused for its role before its registration is looked at.
    _row("WitnessService.AddCheckpoint", "witness.add_checkpoint",
         "old size 0 and a checkpoint of the peer's audit log signed by its audit key (every"
         " caller sends the peer's; the peer gets the witness's cosignature)",
         *PEERS_ONLY),
    _row("WitnessService.ListWitnessedCheckpoints", "witness.list",
         "no page token: the latest checkpoint the gateway cosigned of each log it witnesses"
         " (no owner; peers and auditors)",
         ROLE, ROLE, ROLE, ROLE, ROLE, ROLE, OK, *AS_PEER),
    _row("ReplicationService.ListNetworkChanges", "replication.list_changes",
         "from position 0: the agencies and shared datasets a member pulls (peers only)",
         *PEERS_ONLY),
)


def expected(cell: str) -> tuple[str, str | None]:
    """(gRPC status name, ErrorInfo reason or None when the call never reaches the gateway)."""
    status, _, reason = cell.partition(" ")
    return status, (reason if reason and not reason.startswith("(") else None)


def render() -> str:
    """docs/AUTHORIZATION.md."""
    lines = [
        "# Who may do what",
        "",
        "<!-- Generated from tests/support/authorization.py; do not edit. Regenerate with",
        "     .venv/bin/python -m tests.support.authorization > docs/AUTHORIZATION.md -->",
        "",
        "Every RPC of `gateway.v1`, called by every kind of caller with a valid request, so that",
        "only authorization decides. `tests/security/test_authorization_matrix.py` checks every",
        "cell against a running gateway.",
        "",
        "A cell is `OK` or the gRPC status and the `ErrorInfo` reason of the refusal. Every",
        "refusal with a reason is written to the audit log as a REFUSED event of the RPC's",
        "action, with the caller's identity as actor. `UNAVAILABLE (TLS handshake)`: the",
        "gateway's mutual TLS refuses the connection before any RPC, so nothing is audited.",
        "",
        "The callers:",
        "",
        *(f"- **{COLUMNS[column]}**: {text}." for column, text in CAST.items()),
        "",
        "Identity comes only from the verified client certificate, never from a request body;",
        "no rule depends on the caller's region, so the same-region and other-region columns",
        "agree (regions filter listings, they do not grant access). Staff see every dataset's",
        "metadata, CONFIDENTIAL ones included, but never content: only a grantee fetches.",
        "",
        "The gateway is a member of a network (`docs/FEDERATION.md`). A gateway certificate",
        "is a peer only when the configuration the gateway holds names its id as another",
        "member with that very TLS certificate; it is checked before the caller's role, so",
        "a gateway certificate of the national CA that the configuration does not name is",
        "refused `PEER_NOT_IN_NETWORK` whatever it calls. A peer may only ask the gateway,",
        "as its witness, to cosign its log's checkpoints (`WitnessService.AddCheckpoint`),",
        "pull its network changes (`ReplicationService.ListNetworkChanges`), and, to compare",
        "what the members cosigned and hold (docs/FEDERATION.md, \"Gossip\"), list the",
        "checkpoints it cosigned last (`WitnessService.ListWitnessedCheckpoints`, which",
        "auditors may read too), prove its own log's consistency",
        "(`AuditService.GetConsistencyProof`) and read its configuration",
        "(`NetworkService.GetNetworkConfiguration`); and it may call the",
        "RPCs an agency of its own reaches through it, for that agency (`govshare-on-behalf-of`,",
        "`docs/FEDERATION.md`): creating, reading, listing and withdrawing access requests,",
        "listing grants, fetching, and reading audit events, checkpoints and proofs of the",
        "gateway's log (the receipts of its fetches are there). Without naming one it is",
        "refused `ON_BEHALF_REQUIRED` there. For its agency, the call is that agency's, under",
        "the rules of any agency with no dealings with the owner (an agency homed at another",
        "member: its requests and grants are kept here, its home gateway carries its calls);",
        "its refusals are audited with the agency as actor and the peer as `via`. Every other",
        "RPC is `ON_BEHALF_NOT_ALLOWED` for it. A peer speaking for an agency the gateway's",
        "replicas do not hold as homed at that peer, and any caller but a peer sending the",
        "metadata, are refused at the door whatever they call, the claimant as actor; so is",
        "the metadata sent twice (`INVALID_ARGUMENT ON_BEHALF_INVALID`). A peer the",
        "configuration stops naming has its running fetches cut (`PEER_NOT_IN_NETWORK`), as",
        "its new calls are.",
        "",
        "An audit read naming another member's log (`log_origin`, rows marked so) is carried",
        "to that member for an agency of the gateway, on its behalf; the peer of these rows",
        "is not running, so the agencies' reads are `UNAVAILABLE MEMBER_UNAVAILABLE`, as they",
        "are whenever the member does not answer. Staff are not carried",
        "(`AUDIT_LOG_NOT_CARRIED`): a staff certificate is the national CA's, issued to a role",
        "and bound to no gateway, so an auditor reads a member's log at that member's gateway;",
        "carried, the member would have only the carrying gateway's word that an auditor",
        "calls (staff are in no replicated directory, as an agency's home is), and any",
        "member's operator could read every other member's whole log. Nor is a read a peer",
        "carried here naming a log not the gateway's own: a carried call is never carried on.",
        "",
        "| RPC | " + " | ".join(COLUMNS.values()) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
        *(f"| {_label(row)} | " + " | ".join(_cell(cell) for cell in row.cells) + " |"
          for row in TABLE),
        "",
        "## The requests",
        "",
        "| RPC | Audit action | Request |",
        "|---|---|---|",
        *(f"| {_label(row)} | `{row.action}` | {row.request} |" for row in TABLE),
        "",
    ]
    return "\n".join(lines)


def _label(row: Row) -> str:
    return f"`{row.rpc}` ({row.variant})" if row.variant else f"`{row.rpc}`"


def _cell(cell: str) -> str:
    status, reason = expected(cell)
    return f"{status}<br>{reason}" if reason else cell


if __name__ == "__main__":
    print(render(), end="")
