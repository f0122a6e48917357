"""The directory of agencies: registration, suspension and reinstatement by administrators."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs import ca as certs_ca
from certs import network_configuration as netconf
from certs.identity import Identity, identity_from_certificate
from gateway import paging
from gateway.config import LimitsConfig
from gateway.context import Call
from gateway.federation import NetworkMembership
from gateway.identity import Caller
from gateway.models import Agency
from gateway.paging import Page, PageTokens
from gateway.readcache import ReadCache
from gateway.statements import StatementOpener
from gateway.storage import Database
from gateway.storage import directory as sql
from gateway.storage import replica as replica_sql
from gateway.text import check_reason
from gateway.unit_of_work import Tx, UnitOfWork
from gateway.v1 import directory_pb2, network_pb2
from govshare import errors, times
from govshare.names import ID_PATTERN, AgencyName
from govshare.signing import VerifyKey

REGION_CODE = re.compile(r"^[1-9]\d{5}$")


def region_prefix(region_code: str, field: str = "region_code") -> str:
    """The code prefix a GB/T 2260 region filter matches: "440000" -> "44", "440300" -> "4403".

    Codes are province (2 digits), prefecture (2) and county (2); trailing "00" pairs mean the
    whole level, so a province code matches every division in that province.
    """
    if not region_code:
        return ""
    if not REGION_CODE.match(region_code):
        raise errors.InvalidArgument(
            f"{field} must be a six-digit GB/T 2260 code such as 440000", field=field
        )
    return netconf.region_prefix(region_code)


def serves(member: network_pb2.MemberGateway, region_code: str) -> bool:
    """Whether `region_code` is within one of the regions the configuration gives `member`."""
    return any(region_code.startswith(region_prefix(code)) for code in member.region_codes)


class DirectoryCache(ReadCache):
    """Directory rows by agency id and by signing key id: every RPC looks up its caller and
    every signed statement its signer; `register`, `suspend` and `reinstate` below invalidate it."""

    CAPACITY = 20_000  # two keys per agency, a signing certificate in each row

    def __init__(self, db: Any):
        super().__init__(db, self.CAPACITY)

    def by_id(self, agency_id: str) -> Agency | None:
        return self.get(("id", agency_id), sql.get_agency)

    def by_key_id(self, key_id: str) -> Agency | None:
        return self.get(("key", key_id), sql.get_agency_by_key_id)


class Directory:
    """The directory of agencies: who is registered, in what state, with which signing
    certificate."""

    def __init__(self, db: Database, work: UnitOfWork, agencies: DirectoryCache,
                 statements: StatementOpener, ca_certificate: x509.Certificate,
                 limits: LimitsConfig, page_tokens: PageTokens,
                 network: NetworkMembership | None = None):
        self._db = db
        self._work = work
        self._agencies = agencies
        self._statements = statements
        self._ca_certificate = ca_certificate
        self._limits = limits
        self._page_tokens = page_tokens
        self._network = network
        """The configuration held, whose members may carry calls for their agencies."""

    def register(
        self, call: Call, agency_id: str, display_name: str, region_code: str,
        signing_certificate_pem: str,
    ) -> Agency:
        """Check and store a new agency with its signing certificate; return its row."""
        if not ID_PATTERN.fullmatch(agency_id):
            raise errors.InvalidArgument(f"agency_id must match {ID_PATTERN.pattern}",
                                         field="agency_id")
        name = str(AgencyName(agency_id))
        call.resources = [name]
        if not 1 <= len(display_name) <= 200:
            raise errors.InvalidArgument("agency.display_name must be 1 to 200 characters",
                                         field="agency.display_name")
        if not REGION_CODE.match(region_code):
            raise errors.InvalidArgument(
                "agency.region_code must be a six-digit GB/T 2260 code such as 440000",
                field="agency.region_code",
            )
        self._check_region_served(region_code)
        key = self._signing_key(agency_id, signing_certificate_pem, call.time)
        when = times.to_text(call.time)
        row = Agency(
            id=agency_id, display_name=display_name, region_code=region_code,
            signing_certificate_pem=signing_certificate_pem, signing_key_id=key.key_id,
            state="ACTIVE", suspend_reason="", create_time=when, update_time=when,
        )

        def change(tx: Tx) -> tuple[Agency, list]:
            if sql.get_agency(tx.conn, agency_id) is not None:
                raise errors.AlreadyExists(f"agency {agency_id} is already registered",
                                           agency=agency_id)
            member = sql.replica_member(tx.conn, agency_id)
            if member is not None:  # one id, one agency, across the whole network
                raise errors.AlreadyExists(
                    f"agency {agency_id} is registered at member {member} of the network: an"
                    " agency registers with its own region's gateway only; choose another"
                    " agency_id if this is another agency",
                    reason="AGENCY_HELD_BY_MEMBER", agency=agency_id, member=member)
            if sql.get_agency_by_key_id(tx.conn, key.key_id) is not None:
                raise errors.AlreadyExists(
                    "this signing certificate is registered to another agency",
                    reason="SIGNING_KEY_IN_USE")
            sql.insert_agency(tx.conn, row)
            return sql.get_agency(tx.conn, agency_id), [call.event(agencies=(name,))]

        try:
            return self._work.commit(change, call.refusal).value
        finally:
            self._agencies.invalidate()

    def _check_region_served(self, region_code: str) -> None:
        """On a network member, FAILED_PRECONDITION REGION_NOT_SERVED unless the configuration
        held gives `region_code` to this gateway: the other members would refuse the agency's
        replicas (REPLICATION_REGION_NOT_SERVED) and its exchanges would fail later."""
        if self._network is None:
            return
        configuration = self._network.current
        serving = [m for m in configuration.configuration.members if serves(m, region_code)]
        if any(m.id == self._network.own_id for m in serving):
            return
        where = (f"member {serving[0].id} at {serving[0].address} serves it: register the"
                 " agency there" if serving else "no member serves it")
        raise errors.FailedPrecondition(
            f"region {region_code} is not served by this gateway: network"
            f" {configuration.network_id} version {configuration.version} gives"
            f" {self._network.own_id} {', '.join(self._own_regions()) or 'no region'}, and"
            f" {where}",
            reason="REGION_NOT_SERVED", region_code=region_code,
            member=serving[0].id if serving else "")

    def _own_regions(self) -> list[str]:
        assert self._network is not None
        own = self._network.current.member(self._network.own_id)
        return list(own.region_codes) if own is not None else []

    def suspend(self, call: Call, name: str, reason: str) -> Agency:
        """Suspend an agency; its calls are refused from now on."""
        return self._set_state(call, name, reason, "SUSPENDED")

    def reinstate(self, call: Call, name: str, reason: str) -> Agency:
        """Make a suspended agency active again; its calls are served from now on. Its grants are
        left as they are: expiry and revocation during the suspension stand."""
        return self._set_state(call, name, reason, "ACTIVE", check=_must_be_suspended)

    def _set_state(
        self, call: Call, name: str, reason: str, state: str,
        check: Callable[[Agency], None] | None = None,
    ) -> Agency:
        """Move an agency to `state` (once `check` passes on its row), audited with `reason`."""
        agency_id = AgencyName.parse(name).agency
        check_reason(reason)
        # Only a suspended agency shows a reason; the reasons of past suspensions stay in the log.
        suspend_reason = reason if state == "SUSPENDED" else ""

        def change(tx: Tx) -> tuple[Agency, list]:
            row = sql.get_agency(tx.conn, agency_id)
            if row is None:
                raise errors.NotFound(f"agency {agency_id} is not registered", agency=agency_id)
            if check:
                check(row)
            sql.set_agency_state(tx.conn, agency_id, state, suspend_reason, times.to_text(tx.now))
            return sql.get_agency(tx.conn, agency_id), [call.event(reason=reason)]

        try:
            return self._work.commit(change, call.refusal).value
        finally:
            self._agencies.invalidate()  # the agency's next call sees the new state

    def replace_signing_certificate(self, call: Call, name: str, pem: str,
                                    reason: str) -> Agency:
        """Give an agency a new signing certificate; the old one joins its previous ones, which
        verify what it signed before but sign nothing new."""
        agency_id = AgencyName.parse(name).agency
        call.resources = [name]
        check_reason(reason)
        key = self._signing_key(agency_id, pem, call.time, "signing_certificate_pem")
        pem = _canonical(pem)  # the same certificate is the same text, however it was sent

        def change(tx: Tx) -> tuple[Agency, list]:
            row = sql.get_agency(tx.conn, agency_id)
            if row is None:
                raise errors.NotFound(f"agency {agency_id} is not registered", agency=agency_id)
            if pem == _canonical(row.signing_certificate_pem):
                raise errors.FailedPrecondition(
                    f"this is already the signing certificate of agency {agency_id}",
                    reason="CERTIFICATE_UNCHANGED", agency=agency_id)
            holder = sql.get_agency_by_key_id(tx.conn, key.key_id)
            if holder is not None and holder.id != agency_id:
                raise errors.AlreadyExists("this signing key is registered to another agency",
                                           reason="SIGNING_KEY_IN_USE")
            now = times.to_text(tx.now)
            retired = {"certificate_pem": row.signing_certificate_pem,
                       "key_id": row.signing_key_id, "retire_time": now}
            previous = [*json.loads(row.previous_signing_certificates), retired]
            sql.replace_signing_certificate(tx.conn, agency_id, pem, key.key_id,
                                            json.dumps(previous), now)
            replaced = f"{reason} (signing key {row.signing_key_id} replaced by {key.key_id})"
            return sql.get_agency(tx.conn, agency_id), [call.event(reason=replaced)]

        try:
            return self._work.commit(change, call.refusal).value
        finally:
            self._agencies.invalidate()  # the next statement is checked against the new key

    def get(self, name: str) -> Agency:
        """An agency of this gateway, or one of another member as this gateway replicated it
        (`network_member` naming the member): the directory is the whole network's, and the
        SDK verifies a fetched manifest with its publisher's entry wherever it is homed."""
        agency_id = AgencyName.parse(name).agency
        row = (self._agencies.by_id(agency_id)
               or replica_sql.replica_agency(self._db.reader(), agency_id))
        if row is None:
            raise errors.NotFound(f"{name} is not registered", agency=name)
        return row

    def list_agencies(self, call: Call,
                      request: directory_pb2.ListAgenciesRequest) -> Page[Agency]:
        """A page of the directory, by agency id, in the region `request` names (the directory
        is public to every caller: `call` is taken as every listing takes it, and unread)."""
        size = paging.page_size(request.page_size)
        after = self._page_tokens.decode(request.page_token, request) or ""
        found = sql.list_agencies(self._db.reader(), after=after, limit=size + 1,
                                  region_prefix=region_prefix(request.region_code))
        return paging.page(self._page_tokens, self._limits, request, found, size, _agency_id)

    def registered(self, caller: Caller) -> Agency:
        """The directory row of an agency caller; PERMISSION_DENIED unless registered and active."""
        row = self._agencies.by_id(caller.identity.id)
        if row is None:
            raise errors.PermissionDenied(
                f"agency {caller.identity.id} is not registered; ask an administrator to register"
                " it",
                reason="AGENCY_NOT_REGISTERED",
                agency=caller.identity.id,
            )
        if row.state != "ACTIVE":
            raise errors.PermissionDenied(
                f"agency {caller.identity.id} is suspended: {row.suspend_reason}",
                reason="AGENCY_SUSPENDED",
                agency=caller.identity.id,
            )
        return row

    def homed_at(self, member_id: str, agency_id: str) -> Agency:
        """The replicated directory row of agency `agency_id`, for the peer `member_id` that
        speaks for it: PERMISSION_DENIED unless this gateway holds it as an agency of that very
        member (ON_BEHALF_AGENCY_NOT_HOMED), active there as far as its replica says
        (AGENCY_SUSPENDED: a suspension at its home gateway reaches here by replication)."""
        agency = AgencyName(agency_id)
        row = replica_sql.replica_agency(self._db.reader(), agency_id)
        if row is None or row.network_member != member_id:
            where = (f"it is homed at member {row.network_member}" if row is not None
                     else "it is an agency of this gateway" if self._agencies.by_id(agency_id)
                     else "no member holds it, as far as this gateway's replicas say")
            raise errors.PermissionDenied(
                f"member {member_id} may not speak for {agency}: {where}; a member gateway"
                " speaks only for the agencies it serves", reason="ON_BEHALF_AGENCY_NOT_HOMED",
                agency=agency, member=member_id)
        if row.state != "ACTIVE":
            raise errors.PermissionDenied(
                f"agency {agency_id} is suspended at its home gateway {member_id}:"
                f" {row.suspend_reason}", reason="AGENCY_SUSPENDED", agency=agency_id)
        return row

    def acting(self, call: Call) -> Agency:
        """The directory row of the agency `call` acts as, checked again as at its door (a
        stream checks while it runs): registered and active here, or homed and active at the
        peer that carries the call, still a member of the configuration held with the
        certificate it presented (PEER_NOT_IN_NETWORK once it left, as its new calls are)."""
        if call.via is not None and call.peer is not None:
            if self._network is not None:
                self._network.peer(call.via)
            return self.homed_at(call.peer.id, call.caller.identity.id)
        return self.registered(call.caller)

    def _signing_key(self, agency_id: str, pem: str, now: datetime,
                     field: str = "agency.signing_certificate_pem") -> VerifyKey:
        """The Ed25519 key of a signing certificate issued by the national CA to `agency_id`,
        which may sign at `now` (not expired, not revoked); refusals name `field`."""
        try:
            certificate = x509.load_pem_x509_certificate(pem.encode())
            # An expired certificate is checked as of its last day, so that its refusal says
            # SIGNING_CERTIFICATE_EXPIRED only when the CA did issue it.
            when = min(now, certificate.not_valid_after_utc)
            certs_ca.verify_chain(certificate, self._ca_certificate, now=when)
            key = VerifyKey.from_certificate(certificate)
            identity = identity_from_certificate(certificate)
        except (ValueError, certs_ca.CAError) as exc:
            raise errors.InvalidArgument(
                f"signing_certificate_pem must be an Ed25519 certificate issued by the national CA:"
                f" {exc}",
                reason="CERTIFICATE_INVALID", field=field,
            ) from exc
        if identity != Identity("agency", agency_id):
            raise errors.InvalidArgument(
                f"the signing certificate is issued to {identity.uri}, not to agency {agency_id}",
                reason="CERTIFICATE_IDENTITY_MISMATCH", field=field,
            )
        self._statements.check_signing_certificate(agency_id, certificate,
                                                   errors.FailedPrecondition, field, now)
        return key


def _must_be_suspended(row: Agency) -> None:
    if row.state != "SUSPENDED":
        raise errors.FailedPrecondition(
            f"agency {row.id} is {row.state}, not SUSPENDED: only a suspended agency can"
            " be reinstated",
            reason="AGENCY_NOT_SUSPENDED", agency=row.id, state=row.state,
        )


def _agency_id(agency: Agency) -> str:
    return agency.id


def _canonical(pem: str) -> str:
    return x509.load_pem_x509_certificate(pem.encode()).public_bytes(
        serialization.Encoding.PEM).decode()


