"""The signed network configuration: which regional gateways make up the national network, how
to reach and trust each of them, and the national CA's current CRL (gateway/v1/network.proto).

The network authority (``urn:govshare:network:<network_id>``, certified by the national CA)
builds and signs it; every gateway and agency SDK verifies it with the national CA's root
certificate alone. It lives beside the CA rather than in the protocol core because every check it
makes is a certificate check (chains to the root, identities, the CRL), and those are this
package's; it takes nothing of the server.

Every refusal is a `govshare.errors.NetworkConfigurationRejected`, whose subclass and reason
name the rule broken: ..._INVALID, ..._SIGNATURE_INVALID, ..._EXPIRED (or NOT_YET_VALID) and
..._NOT_NEWER.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.v1 import network_pb2
from govshare import envelopes, errors, signing, times
from govshare.names import ID_PATTERN
from govshare.transparency.cosignature import CosignatureVerifier
from govshare.transparency.note import MAX_SIGNATURES, NoteVerifier

from . import member_signing
from .ca import (
    CLOCK_SKEW,
    SIGNING_CERT,
    TLS_CERT,
    CAError,
    crl_number,
    verify_chain,
    verify_crl,
)
from .identity import Identity, identity_from_certificate

REGION_CODE = re.compile(r"[1-9][0-9]{5}")
"""A GB/T 2260 administrative division code: six ASCII digits, the first not 0."""


def region_prefix(region_code: str) -> str:
    """The prefix of the codes of the divisions within a region: "440000" -> "44", "440300" ->
    "4403" (province, prefecture and county, 2 digits each; trailing "00" pairs mean the whole
    level)."""
    while region_code.endswith("00"):
        region_code = region_code[:-2]
    return region_code


def serves(member: network_pb2.MemberGateway, region_code: str) -> bool:
    """Whether an agency of `region_code` lies within one of `member`'s region codes (440300,
    Shenzhen, within 440000, Guangdong): the agencies that member homes."""
    return bool(region_code) and any(region_code.startswith(region_prefix(code))
                                     for code in member.region_codes)
_ADDRESS = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
                      r":([0-9]{1,5})")
"""host:port with an ASCII host name (IDNA names as A-labels), an IPv4 or a bracketed IPv6."""

MAX_MEMBERS = MAX_SIGNATURES
"""The most members a network may have: a member's checkpoint, as GetCheckpoint serves it,
carries the log's signature and one cosignature per other member, and our signed-note parser
takes at most note.MAX_SIGNATURES lines (as Go's note package; C2SP signed-note asks verifiers
to take at least 16)."""

NETWORK_KIND = "network"
GATEWAY_KIND = "gateway"


@dataclass(frozen=True)
class VerifiedConfiguration:
    """A network configuration that passed `verify`, with what gateways and the SDK look up."""

    signed: network_pb2.SignedNetworkConfiguration
    configuration: network_pb2.NetworkConfiguration
    authority: x509.Certificate
    crl: x509.CertificateRevocationList
    """The national CA's CRL the configuration carries, its signature checked."""

    @property
    def network_id(self) -> str:
        return self.configuration.network_id

    @property
    def version(self) -> int:
        return self.configuration.version

    @property
    def expire_time(self) -> datetime:
        return self.configuration.expire_time.ToDatetime(tzinfo=UTC)

    @property
    def payload(self) -> bytes:
        """The exact signed bytes: two configurations are the same when these are."""
        return self.signed.envelope.payload

    def member(self, gateway_id: str) -> network_pb2.MemberGateway | None:
        """The member gateway `gateway_id`, None when the network has none of that id."""
        return next((m for m in self.configuration.members if m.id == gateway_id), None)

    def signer(self, key_id: str) -> network_pb2.MemberGateway | None:
        """The member whose signing certificate, current or previous, holds key `key_id` (what
        signs its grants, receipts and checkpoints), None when no member's does."""
        return next((m for m in self.configuration.members
                     if key_id in member_signing.key_ids(m)), None)

    def member_for_region(self, region_code: str) -> network_pb2.MemberGateway | None:
        """The member serving `region_code` (matched exactly), None when no member does."""
        return next((m for m in self.configuration.members if region_code in m.region_codes),
                    None)

    def is_revoked(self, certificate: x509.Certificate) -> bool:
        """Whether the CRL this configuration carries revokes `certificate` (of the same CA)."""
        return self.crl.get_revoked_certificate_by_serial_number(
            certificate.serial_number) is not None


def build(network_id: str, members: Iterable[network_pb2.MemberGateway], quorum: int,
          crl_der: bytes, ca_certificate: x509.Certificate,
          now: datetime) -> network_pb2.NetworkConfiguration:
    """An unsigned configuration (no version nor times yet: `sign` sets them), refused with
    NetworkConfigurationInvalid when it breaks a rule a receiver applies."""
    configuration = network_pb2.NetworkConfiguration(
        network_id=network_id, members=members,
        witness_policy=network_pb2.WitnessPolicy(quorum=quorum), crl_der=crl_der)
    crl = _crl(configuration.crl_der, ca_certificate)
    _check_content(configuration, ca_certificate, crl, now)
    return configuration


def member(folder: Path, *, gateway_id: str, region_codes: Iterable[str], address: str,
           audit_origin: str, witness_verifier_key: str) -> network_pb2.MemberGateway:
    """The entry of the member gateway whose certificates `folder` holds, as `certs
    issue-gateway` writes them (tls.pem, signing.pem). Its audit verifier key is its signing
    key's under `audit_origin` (its [audit] origin), with which it signs its checkpoints, so no
    gateway has to have started for the network to exist."""
    signing_certificate = (folder / SIGNING_CERT).read_text()
    audit_key = NoteVerifier(audit_origin, signing.VerifyKey.from_certificate(signing_certificate))
    return network_pb2.MemberGateway(
        id=gateway_id, region_codes=region_codes, address=address,
        tls_certificate_pem=(folder / TLS_CERT).read_text(),
        signing_certificate_pem=signing_certificate, audit_origin=audit_origin,
        audit_verifier_key=audit_key.verifier_key, witness_verifier_key=witness_verifier_key)


def new_witness_key(path: Path, name: str) -> CosignatureVerifier:
    """A new witness key written to `path` (mode 0600, never over an existing file), for a
    member's [network] witness_key; returns its cosignature/v1 verifier, named `name` (the
    member's witness_verifier_key). ValueError for a name a verifier key cannot have."""
    key = signing.SigningKey.generate()
    verifier = CosignatureVerifier(name, key.verifier())
    signing.write_private_pem(path, key)
    return verifier


def seal(configuration: network_pb2.NetworkConfiguration, key: signing.SigningKey,
         authority_certificate_pem: str, *, version: int, validity: timedelta,
         now: datetime) -> network_pb2.SignedNetworkConfiguration:
    """`configuration` as version `version`, valid from `now` for `validity`, sealed with the
    network authority's `key`, unchecked (`sign` checks it)."""
    statement = network_pb2.NetworkConfiguration()
    statement.CopyFrom(configuration)
    statement.version = version
    statement.issue_time.CopyFrom(times.to_timestamp(now))
    statement.expire_time.CopyFrom(times.to_timestamp(now + validity))
    return network_pb2.SignedNetworkConfiguration(
        envelope=envelopes.seal(key, envelopes.NETWORK_CONFIGURATION, statement),
        authority_certificate_pem=authority_certificate_pem)


def sign(configuration: network_pb2.NetworkConfiguration, key: signing.SigningKey,
         authority_certificate_pem: str, ca_certificate: x509.Certificate, *, version: int,
         validity: timedelta, now: datetime,
         current: VerifiedConfiguration | None = None) -> VerifiedConfiguration:
    """`seal`, then verified as a receiver holding `current` would, so the authority never
    publishes what receivers refuse."""
    signed = seal(configuration, key, authority_certificate_pem, version=version,
                  validity=validity, now=now)
    return verify(signed, ca_certificate, now, current)


def verify(signed: network_pb2.SignedNetworkConfiguration, ca_certificate: x509.Certificate,
           now: datetime, current: VerifiedConfiguration | None = None, *,
           crl: x509.CertificateRevocationList | None = None) -> VerifiedConfiguration:
    """The configuration `signed` carries, once every check passed, in this order (the first
    failure raises):

    1. the envelope is of the network configuration's payload type;
    2. the authority certificate is issued by `ca_certificate`, valid at `now`, of a network
       authority (``urn:govshare:network:<id>``), and its Ed25519 key made the one signature;
    3. the payload decodes, and names the authority's network;
    4. the CRL it carries is the CA's, and the newest CRL of those the receiver knows (that
       one, the CRL of `current`, and `crl`: one the receiver holds besides, such as a
       gateway's CRL in force, verified by the receiver already) does not revoke the
       authority certificate;
    5. its content is well formed (members, certificates, keys, quorum) and it is valid at
       `now`, expiring by the carried CRL's nextUpdate and by the notAfter of the authority's
       and every member's certificates;
    6. with `current`: it is of the same network and either the same bytes or a higher version,
       carrying a CRL no older than the current one's.
    """
    if signed.envelope.payload_type != envelopes.NETWORK_CONFIGURATION:
        raise errors.NetworkConfigurationInvalid(
            f"the envelope carries {signed.envelope.payload_type!r}, not a network configuration"
            f" ({envelopes.NETWORK_CONFIGURATION})", field="envelope.payload_type")
    authority = _authority(signed, ca_certificate, now)
    configuration = _decode(signed)
    authority_id = identity_from_certificate(authority).id
    if authority_id != configuration.network_id:
        raise errors.NetworkConfigurationSignatureInvalid(
            f"the authority certificate is for network {authority_id!r}, but the configuration"
            f" is of network {configuration.network_id!r}", authority=authority_id,
            network=configuration.network_id)
    carried = _crl(configuration.crl_der, ca_certificate)
    held = [known for known in (current and current.crl, crl) if known is not None]
    _check_authority_not_revoked(authority, [carried, *held])
    certificates = _check_content(configuration, ca_certificate, carried, now)
    _check_times(configuration, [_crl_limit(carried), _certificate_limit(
        "the network authority certificate", authority, "a renewed authority certificate"),
        *certificates], now)
    verified = VerifiedConfiguration(signed, configuration, authority, carried)
    if current is not None:
        _check_replaces(verified, current)
    return verified


def unverified(signed: network_pb2.SignedNetworkConfiguration) -> network_pb2.NetworkConfiguration:
    """The configuration `signed` carries, decoded WITHOUT any check: to show it, never to rely
    on it (NetworkConfigurationInvalid if it is of another type or does not decode)."""
    if envelopes.claimed(signed.envelope, envelopes.NETWORK_CONFIGURATION) is None:
        raise errors.NetworkConfigurationInvalid(
            "the envelope does not carry a network configuration", field="envelope")
    return _decode(signed)


def _authority(signed: network_pb2.SignedNetworkConfiguration, ca_certificate: x509.Certificate,
               now: datetime) -> x509.Certificate:
    """Step 2: the authority certificate, its chain, kind and signature."""
    def refuse(why: str) -> errors.NetworkConfigurationSignatureInvalid:
        return errors.NetworkConfigurationSignatureInvalid(
            f"the network configuration is not signed by a network authority of the national"
            f" CA: {why}", field="authority_certificate_pem")

    try:
        authority = x509.load_pem_x509_certificate(signed.authority_certificate_pem.encode())
    except ValueError:
        raise refuse("authority_certificate_pem is not a PEM certificate") from None
    try:
        verify_chain(authority, ca_certificate, now=now)
        identity = identity_from_certificate(authority)
        key = signing.VerifyKey.from_certificate(authority)
    except (CAError, ValueError) as exc:
        raise refuse(str(exc)) from None
    if identity.kind != NETWORK_KIND:
        raise refuse(f"the certificate is of {identity.uri}, not of a urn:govshare:network:"
                     " authority")
    try:
        envelopes.check_sealed(signed.envelope, key, envelopes.NETWORK_CONFIGURATION)
    except signing.SignatureError:
        raise refuse("the envelope's signature does not verify with the authority"
                     " certificate's key (the payload was altered, or another key signed it)"
                     ) from None
    return authority


def _decode(signed: network_pb2.SignedNetworkConfiguration) -> network_pb2.NetworkConfiguration:
    try:
        return envelopes.decode(signed.envelope, envelopes.NETWORK_CONFIGURATION,
                                "envelope")
    except errors.InvalidArgument as exc:
        raise errors.NetworkConfigurationInvalid(exc.message, field="envelope.payload") from None


def _crl(crl_der: bytes, ca_certificate: x509.Certificate) -> x509.CertificateRevocationList:
    """The CRL of crl_der, signed by the CA, with a CRL number and a nextUpdate."""
    try:
        crl = x509.load_der_x509_crl(crl_der)
        verify_crl(crl, ca_certificate)
        crl_number(crl)
    except (ValueError, CAError) as exc:
        raise errors.NetworkConfigurationInvalid(
            f"crl_der is not a CRL of the national CA: {exc}", field="crl_der") from None
    if crl.next_update_utc is None:
        raise errors.NetworkConfigurationInvalid("crl_der carries no nextUpdate", field="crl_der")
    return crl


def _check_authority_not_revoked(authority: x509.Certificate,
                                 known: list[x509.CertificateRevocationList]) -> None:
    """Step 4: the CRL a configuration carries is chosen by its signer, so a revoked authority
    could carry an older CRL not listing it yet: the newest CRL the receiver knows counts."""
    newest = max(known, key=crl_number)
    if newest.get_revoked_certificate_by_serial_number(authority.serial_number) is not None:
        raise errors.NetworkConfigurationSignatureInvalid(
            f"the network authority certificate {authority.serial_number:x} is revoked by the"
            f" national CA (CRL number {crl_number(newest)})",
            field="authority_certificate_pem", serial=f"{authority.serial_number:x}")


def _invalid(message: str, **metadata: object) -> errors.NetworkConfigurationInvalid:
    return errors.NetworkConfigurationInvalid(message, **metadata)


def _check_content(configuration: network_pb2.NetworkConfiguration,
                   ca_certificate: x509.Certificate, crl: x509.CertificateRevocationList,
                   now: datetime) -> list[_Limit]:
    """Step 5, without the times: network id, members and quorum; returns the limits the
    members' certificates set to the configuration's validity."""
    if not ID_PATTERN.fullmatch(configuration.network_id):
        raise _invalid(f"network_id {configuration.network_id!r} must match"
                       f" {ID_PATTERN.pattern}", field="network_id")
    members = configuration.members
    if not members:
        raise _invalid("the configuration lists no member gateway: add at least one",
                       field="members")
    if len(members) > MAX_MEMBERS:
        raise _invalid(f"the configuration lists {len(members)} members, but a member's"
                       f" checkpoint carries its own signature and one cosignature per other"
                       f" member, and a signed note carries at most {MAX_MEMBERS} signature"
                       " lines (verifiers refuse more as malformed): list at most"
                       f" {MAX_MEMBERS} members", field="members", members=len(members),
                       max_members=MAX_MEMBERS)
    limits = [limit for index, member in enumerate(members)
              for limit in _check_member(member, f"members[{index}]", ca_certificate, crl, now)]
    _check_unique(members, "id", lambda m: [m.id])
    _check_unique(members, "region_codes", lambda m: m.region_codes)
    _check_unique(members, "audit_origin", lambda m: [m.audit_origin],
                  "; each gateway sets its own [audit] origin in its gateway.toml (the default"
                  " suits a gateway alone), such as gd-gateway.example.gov/audit")
    _check_unique(members, "witness_verifier_key",
                  lambda m: [_witness_key(m.witness_verifier_key).key])
    _check_unique(members, "address", lambda m: [m.address.lower()],
                  "; the peers calling one would reach the other")
    _check_unique(members, "members", _keys,
                  "; a member holding another's key could connect or sign as that member, and"
                  " a member's witness key is apart from its signing key", shown="a public key")
    _check_unique(members, "signing key", lambda m: list(member_signing.key_ids(m)))
    quorum = configuration.witness_policy.quorum
    if quorum > len(members) - 1:
        raise _invalid(f"witness_policy.quorum is {quorum}, but a checkpoint can gather at most"
                       f" {len(members) - 1} cosignatures (one per other member): lower it",
                       field="witness_policy.quorum", quorum=quorum, members=len(members))
    if quorum == 0 and len(members) > 1:
        # A quorum of 0 switches witnessing off for the SDK and `audit verify`: a member could
        # then roll back or fork its log unseen by anyone who relies on the configuration.
        raise _invalid(f"witness_policy.quorum is 0 in a network of {len(members)} members:"
                       " receivers would check no cosignature, so a member's rolled-back or"
                       " forked log would go unseen; give a quorum of at least 1 (only a"
                       " network of one member, which has no witness, takes 0)",
                       field="witness_policy.quorum", quorum=quorum, members=len(members))
    return limits


def _check_unique(members: Iterable[network_pb2.MemberGateway], field: str, values,
                  hint: str = "", *, shown: str = "") -> None:
    """No two members (nor one member twice) share a value of `field` (`hint` ends the
    refusal's message, which calls the value `shown`, by default `field`)."""
    seen: dict[object, str] = {}
    for member in members:
        for value in values(member):
            if value in seen:
                raise _invalid(
                    f"members {seen[value]!r} and {member.id!r} share {shown or field}"
                    f" {_quoted(value)}: each must be unique in the network{hint}", field=field,
                    members=f"{seen[value]},{member.id}")
            seen[value] = member.id


def _keys(member: network_pb2.MemberGateway) -> list[bytes]:
    """The public keys a member's entry names (checked by `_check_member` already): its TLS
    key, its signing key (which is also its audit key), its witness key, each once."""
    tls, signing_certificate = (x509.load_pem_x509_certificate(pem.encode()).public_key()
                                for pem in (member.tls_certificate_pem,
                                            member.signing_certificate_pem))
    signing_key = signing_certificate.public_bytes(Encoding.Raw, PublicFormat.Raw)
    audit_key = NoteVerifier.from_verifier_key(member.audit_verifier_key).key.public_raw
    return [tls.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
            *dict.fromkeys((signing_key, audit_key)),
            _witness_key(member.witness_verifier_key).key.public_raw]


def _quoted(value: object) -> str:
    return repr(value) if isinstance(value, str) else "(the same key)"


def _check_member(member: network_pb2.MemberGateway, field: str,
                  ca_certificate: x509.Certificate, crl: x509.CertificateRevocationList,
                  now: datetime) -> list[_Limit]:
    if not ID_PATTERN.fullmatch(member.id):
        raise _invalid(f"{field}.id {member.id!r} must match {ID_PATTERN.pattern}",
                       field=f"{field}.id")
    if not member.region_codes:
        raise _invalid(f"member {member.id!r} serves no region: give its GB/T 2260 codes",
                       field=f"{field}.region_codes")
    for code in member.region_codes:
        if not REGION_CODE.fullmatch(code):
            raise _invalid(f"member {member.id!r} region code {code!r} is not a GB/T 2260 code"
                           " (six digits, the first not 0, such as 440000)",
                           field=f"{field}.region_codes", member=member.id)
    address = _ADDRESS.fullmatch(member.address)
    if address is None or not 1 <= int(address[2]) <= 65535:
        raise _invalid(f"member {member.id!r} address {member.address!r} is not host:port with"
                       " an ASCII host and a port from 1 to 65535", field=f"{field}.address",
                       member=member.id)
    limits = [_certificate_limit(
        f"member {member.id!r} {purpose} certificate",
        _check_member_certificate(member, purpose, field, ca_certificate, crl, now),
        f"new certificates for member {member.id!r} (govshare certs issue-gateway)")
        for purpose in ("tls", "signing")]
    _check_member_keys(member, field)
    try:
        member_signing.check_previous(member, field, ca_certificate, crl, now + CLOCK_SKEW)
    except ValueError as exc:
        raise _invalid(f"member {member.id!r}: {exc}",
                       field=f"{field}.previous_signing_certificates", member=member.id) from None
    return limits


def _check_member_certificate(member: network_pb2.MemberGateway, purpose: str, field: str,
                              ca_certificate: x509.Certificate,
                              crl: x509.CertificateRevocationList,
                              now: datetime) -> x509.Certificate:
    """The member's `purpose` certificate, once it is the national CA's, valid, unrevoked, and
    names the member (the signing one holds an Ed25519 key)."""
    name = f"{purpose}_certificate_pem"
    where = f"{field}.{name}"
    try:
        certificate = x509.load_pem_x509_certificate(getattr(member, name).encode())
        verify_chain(certificate, ca_certificate, now=now)
        identity = identity_from_certificate(certificate)
        if purpose == "signing":
            signing.VerifyKey.from_certificate(certificate)
    except (ValueError, CAError) as exc:
        raise _invalid(f"member {member.id!r} {purpose} certificate is not one of the national"
                       f" CA valid now: {exc}", field=where, member=member.id) from None
    expected = Identity(GATEWAY_KIND, member.id)
    if identity != expected:
        raise _invalid(f"member {member.id!r} {purpose} certificate is of {identity.uri}, not of"
                       f" {expected.uri}: a member's id is the gateway id of its certificates"
                       f" (govshare certs issue-gateway --name {member.id})", field=where,
                       member=member.id,
                       certificate_identity=identity.uri)
    if crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None:
        raise _invalid(f"member {member.id!r} {purpose} certificate"
                       f" {certificate.serial_number:x} is revoked by the CRL the configuration"
                       " carries", field=where, member=member.id)
    return certificate


def _check_member_keys(member: network_pb2.MemberGateway, field: str) -> None:
    """The audit verifier key is a signed-note key named for the audit origin (our gateways
    sign checkpoints with the origin as key name); the witness key is a cosignature/v1 key."""
    try:
        audit = NoteVerifier.from_verifier_key(member.audit_verifier_key)
    except ValueError as exc:
        raise _invalid(f"member {member.id!r} audit_verifier_key is not a signed-note verifier"
                       f" key (name+hex id+base64 of 0x01 and an Ed25519 key): {exc}",
                       field=f"{field}.audit_verifier_key", member=member.id) from None
    if audit.name != member.audit_origin:
        raise _invalid(f"member {member.id!r} audit_verifier_key is named {audit.name!r}, not"
                       f" its audit_origin {member.audit_origin!r}",
                       field=f"{field}.audit_verifier_key", member=member.id)
    try:
        _witness_key(member.witness_verifier_key)
    except ValueError as exc:
        raise _invalid(f"member {member.id!r} witness_verifier_key is not a cosignature/v1"
                       f" verifier key (name+hex id+base64 of 0x04 and an Ed25519 key): {exc}",
                       field=f"{field}.witness_verifier_key", member=member.id) from None


def _witness_key(text: str) -> CosignatureVerifier:
    """A member's witness key, in its cosignature/v1 form only: a note key (0x01) that a
    client would also accept as a cosigner is refused here, so that the configuration names
    each witness key one way."""
    verifier = CosignatureVerifier.from_verifier_key(text)
    if verifier.verifier_key != text:
        raise ValueError("the key is not of type 0x04")
    return verifier


class _Limit(NamedTuple):
    """A time the configuration must expire by: what sets it, and what lets a later one."""

    what: str
    time: datetime
    remedy: str


def _crl_limit(crl: x509.CertificateRevocationList) -> _Limit:
    # Past its nextUpdate the carried CRL no longer says what is revoked.
    assert crl.next_update_utc is not None  # _crl refuses a CRL without one
    return _Limit("the nextUpdate of the CRL it carries", crl.next_update_utc, "a fresh CRL")


def _certificate_limit(what: str, certificate: x509.Certificate, remedy: str) -> _Limit:
    # Past its notAfter, every receiver refuses the certificate, and with it the configuration:
    # a gateway must not serve on a configuration that the SDK and restarting members refuse.
    return _Limit(f"the notAfter of {what}", certificate.not_valid_after_utc, remedy)


def _check_times(configuration: network_pb2.NetworkConfiguration, limits: list[_Limit],
                 now: datetime) -> None:
    """Step 5, the times: a version, a sound validity within every one of `limits`, and `now`
    inside it."""
    if configuration.version < 1:
        raise _invalid("version must be at least 1", field="version")
    for name in ("issue_time", "expire_time"):
        if not configuration.HasField(name):
            raise _invalid(f"{name} is not set", field=name)
    issued = _time(configuration, "issue_time")
    expires = _time(configuration, "expire_time")
    if expires <= issued:
        raise _invalid(f"expire_time {times.to_text(expires)} is not after issue_time"
                       f" {times.to_text(issued)}", field="expire_time")
    for limit in limits:
        if expires > limit.time:
            raise _invalid(f"expire_time {times.to_text(expires)} is after {limit.what},"
                           f" {times.to_text(limit.time)}: sign with a shorter validity"
                           f" or with {limit.remedy}", field="expire_time",
                           limit=times.to_text(limit.time))
    if now < issued - CLOCK_SKEW:
        raise errors.NetworkConfigurationNotYetValid(
            f"the network configuration is not valid before {times.to_text(issued)}: check the"
            " clock", issue_time=times.to_text(issued))
    if now >= expires:
        raise errors.NetworkConfigurationExpired(
            f"the network configuration version {configuration.version} expired at"
            f" {times.to_text(expires)}: fetch a newer one", expire_time=times.to_text(expires))


def _time(configuration: network_pb2.NetworkConfiguration, name: str) -> datetime:
    try:
        return times.from_timestamp(getattr(configuration, name), name)
    except errors.InvalidArgument as exc:
        raise _invalid(exc.message, field=name) from None


def _check_replaces(new: VerifiedConfiguration, current: VerifiedConfiguration) -> None:
    """Step 6: a configuration replaces the current one only with a higher version (the same
    bytes again are not a replacement, and pass), never with an older CRL."""
    if new.network_id != current.network_id:
        raise _invalid(f"the configuration is of network {new.network_id!r}, not of the"
                       f" current {current.network_id!r}", field="network_id")
    if new.payload == current.payload:
        return
    if new.version <= current.version:
        raise errors.NetworkConfigurationNotNewer(
            f"the configuration is version {new.version}, not newer than the current version"
            f" {current.version}", version=new.version, current_version=current.version)
    if crl_number(new.crl) < crl_number(current.crl):
        raise _invalid(f"the configuration carries CRL number {crl_number(new.crl)}, older than"
                       f" the current configuration's {crl_number(current.crl)}",
                       field="crl_der")
