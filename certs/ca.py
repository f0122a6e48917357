"""The national certificate authority: one root, leaf certificates, a CRL and an index.

The root (ECDSA P-256, path_length=0) signs leaves only. Agencies and the gateway get two keys:
ECDSA P-256 for TLS and a separate Ed25519 key for signing, so a stolen TLS key cannot forge
signed records (as X-Road separates authentication and signing keys). Every file is created with
O_EXCL: the CA never overwrites a key or certificate. Every read-modify-write of the index and the
CRL holds an exclusive lock on ``ca.lock``, so several operators or scripts can share one CA. The
index also keeps the last CRL number, so a deleted or damaged ``crl.pem`` does not restart the
numbering (gateways refuse a CRL numbered below the one they hold).
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .files import exclusive_lock, replace_file
from .identity import STAFF_ROLES, URN_PREFIX, Identity

StrPath = str | os.PathLike[str]
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
CRL_FILE = "crl.pem"
INDEX_FILE = "index.json"
LOCK_FILE = "ca.lock"
TLS_CERT = "tls.pem"
TLS_KEY = "tls.key"
SIGNING_CERT = "signing.pem"
SIGNING_KEY = "signing.key"

DEFAULT_CA_NAME = "govshare national root CA"
ROOT_DAYS = 3650
LEAF_DAYS = 825
STAFF_DAYS = 397
CLOCK_SKEW = timedelta(minutes=5)
CRL_DAYS = 7
CRL_LIFETIME = timedelta(days=CRL_DAYS)
REVOCATION_REASONS = (
    "unspecified",
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "privilegeWithdrawn",
)
"""RFC 5280 reasons that fit a leaf revoked for good (no hold, no CA compromise)."""

_PEM = serialization.Encoding.PEM
_FILES = {"tls": (TLS_CERT, TLS_KEY), "signing": (SIGNING_CERT, SIGNING_KEY)}
_TLS_USAGE = ("digital_signature",)
_SIGNING_USAGE = ("digital_signature", "content_commitment")


class CAError(Exception):
    """Base of every CA failure; the CLI renders it as one ``Error:`` line."""


class AlreadyExists(CAError):
    """A file the CA would write is already there; the CA never overwrites."""


class NotFound(CAError):
    """The CA folder, its CRL, or the certificate or identity to revoke does not exist."""


class InvalidCertificate(CAError):
    """A certificate is not signed by the CA or is outside its validity window."""


class InvalidCRL(CAError):
    """A CRL is unreadable or not signed by the CA, so it says nothing either way."""


class InvalidValidity(CAError):
    """A validity in days that is not positive, or ends after the last date X.509 can hold."""


@dataclass(frozen=True)
class IssuedCertificate:
    """One row of ``index.json``: enough to list, expire and revoke without the certificate."""

    serial: str
    identity: str
    purpose: str
    subject: str
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None = None
    reason: str | None = None

    def status(self, now: datetime | None = None) -> str:
        """``revoked``, ``expired``, ``not-yet-valid`` or ``valid`` at ``now``."""
        now = _now(now)
        if self.revoked_at is not None:
            return "revoked"
        if now > self.not_after:
            return "expired"
        if now < self.not_before:
            return "not-yet-valid"
        return "valid"

    def to_json(self) -> dict[str, str | None]:
        return {
            "serial": self.serial,
            "identity": self.identity,
            "purpose": self.purpose,
            "subject": self.subject,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, row: dict[str, str | None]) -> IssuedCertificate:
        revoked_at = row.get("revoked_at")
        return cls(
            serial=str(row["serial"]),
            identity=str(row["identity"]),
            purpose=str(row["purpose"]),
            subject=str(row["subject"]),
            not_before=datetime.fromisoformat(str(row["not_before"])),
            not_after=datetime.fromisoformat(str(row["not_after"])),
            revoked_at=datetime.fromisoformat(revoked_at) if revoked_at else None,
            reason=row.get("reason"),
        )


@dataclass(frozen=True)
class IssuedBundle:
    """What one issuance wrote into ``folder``; ``signing`` is None for staff, ``tls`` None for
    a network authority."""

    identity: Identity
    folder: Path
    tls: IssuedCertificate | None
    signing: IssuedCertificate | None
    files: tuple[Path, ...]


class CertificateAuthority:
    """The root key and its records, in one folder."""

    def __init__(
        self, folder: Path, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey
    ) -> None:
        self.folder = folder
        self.certificate = certificate
        self._key = key

    @classmethod
    def init(
        cls,
        folder: StrPath,
        name: str = DEFAULT_CA_NAME,
        validity_days: int = ROOT_DAYS,
        *,
        now: datetime | None = None,
    ) -> CertificateAuthority:
        """Create a self-signed root in ``folder``; refuses if a CA is already there."""
        folder = Path(folder)
        _refuse_existing(folder, (CA_KEY, CA_CERT, CRL_FILE, INDEX_FILE))
        now = _now(now)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "govshare"),
            ]
        )
        certificate = (
            _validity(x509.CertificateBuilder(), now, valid_until(validity_days, now=now))
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage("key_cert_sign", "crl_sign"), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        _private_folder(folder)
        ca = cls(folder, certificate, key)
        with ca._locked():
            _write_new(folder / CA_KEY, _private_pem(key), mode=0o600)
            _write_new(folder / CA_CERT, certificate.public_bytes(_PEM))
            ca._write_crl([], now, CRL_LIFETIME)
        return ca

    @classmethod
    def open(cls, folder: StrPath) -> CertificateAuthority:
        """Load the CA in ``folder``, checking that its key belongs to its certificate."""
        folder = Path(folder)
        try:
            certificate = x509.load_pem_x509_certificate((folder / CA_CERT).read_bytes())
            key = serialization.load_pem_private_key((folder / CA_KEY).read_bytes(), None)
        except FileNotFoundError as exc:
            raise NotFound(f"no CA in {folder}: {exc.filename} is missing") from None
        except ValueError:
            raise CAError(f"{folder} holds an unreadable {CA_CERT} or {CA_KEY}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or (
            key.public_key() != certificate.public_key()
        ):
            raise CAError(f"{folder / CA_KEY} is not the key of {folder / CA_CERT}")
        return cls(folder, certificate, key)

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(_PEM)

    def issue_agency(
        self,
        agency_id: str,
        out_folder: StrPath,
        validity_days: int = LEAF_DAYS,
        *,
        now: datetime | None = None,
    ) -> IssuedBundle:
        """TLS client and signing certificates for an agency."""
        return self._issue(
            Identity("agency", agency_id),
            Path(out_folder),
            (ExtendedKeyUsageOID.CLIENT_AUTH,),
            signing=True,
            validity_days=validity_days,
            now=_now(now),
        )

    def issue_gateway(
        self,
        out_folder: StrPath,
        name: str = "gateway",
        dns_names: Sequence[str] = ("localhost",),
        ip_addresses: Sequence[str] = ("127.0.0.1",),
        validity_days: int = LEAF_DAYS,
        *,
        now: datetime | None = None,
    ) -> IssuedBundle:
        """TLS certificate and the key that signs receipts and audit checkpoints. The TLS
        certificate serves (serverAuth) and also calls the other gateways of a network as
        their peer (clientAuth: a witness asks for the gateway's certificate)."""
        hosts: list[x509.GeneralName] = [x509.DNSName(dns) for dns in dns_names]
        hosts += [x509.IPAddress(ip_address(ip)) for ip in ip_addresses]
        return self._issue(
            Identity("gateway", name),
            Path(out_folder),
            (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
            signing=True,
            validity_days=validity_days,
            now=_now(now),
            hosts=hosts,
        )

    def issue_staff(
        self,
        name: str,
        role: str,
        out_folder: StrPath,
        validity_days: int = STAFF_DAYS,
        *,
        now: datetime | None = None,
    ) -> IssuedBundle:
        """TLS client certificate only: staff administer or audit, they never sign as an agency."""
        if role not in STAFF_ROLES:
            raise ValueError(f"unknown staff role {role!r}, expected one of {STAFF_ROLES}")
        return self._issue(
            Identity(role, name),
            Path(out_folder),
            (ExtendedKeyUsageOID.CLIENT_AUTH,),
            signing=False,
            validity_days=validity_days,
            now=_now(now),
        )

    def issue_network_authority(
        self,
        network_id: str,
        out_folder: StrPath,
        validity_days: int = LEAF_DAYS,
        *,
        now: datetime | None = None,
    ) -> IssuedBundle:
        """The Ed25519 signing certificate of the authority that signs the network configuration
        of ``network_id`` (``urn:govshare:network:<network_id>``); no TLS certificate, as the
        authority only signs. The root does not sign configurations itself: it signs certificates
        and CRLs only, with an ECDSA key kept offline, and an authority key can be revoked and
        replaced without a new root."""
        return self._issue(
            Identity("network", network_id),
            Path(out_folder),
            (),
            signing=True,
            validity_days=validity_days,
            now=_now(now),
        )

    def revoke(
        self,
        serial_or_uri: str,
        reason: str = "unspecified",
        *,
        now: datetime | None = None,
    ) -> builtins.list[IssuedCertificate]:
        """Revoke a hex serial, or every certificate of an identity URI, and re-sign the CRL.

        Already revoked certificates keep their original date and reason.
        """
        if reason not in REVOCATION_REASONS:
            raise CAError(
                f"unknown revocation reason {reason!r}, expected one of {REVOCATION_REASONS}"
            )
        now = _now(now)
        matches = _matcher(serial_or_uri)
        with self._locked():
            rows = self._read_index()
            hits = [i for i, row in enumerate(rows) if matches(row)]
            if not hits:
                raise NotFound(f"no certificate issued for {serial_or_uri!r}")
            for i in hits:
                if rows[i].revoked_at is None:
                    rows[i] = replace(rows[i], revoked_at=now, reason=reason)
            self._write_crl(rows, now, CRL_LIFETIME)
        return [rows[i] for i in hits]

    def renew_crl(
        self, validity_days: int = CRL_DAYS, *, now: datetime | None = None
    ) -> x509.CertificateRevocationList:
        """Re-sign the CRL with the same revocations and the next CRL number.

        Run it before the CRL's nextUpdate: a gateway refuses every client once its CRL expired.
        """
        now = _now(now)
        next_update = valid_until(validity_days, now=now)
        with self._locked():
            return self._write_crl(self._read_index(), now, next_update - now)

    def list(self) -> builtins.list[IssuedCertificate]:
        """Every certificate issued, oldest first, with its revocation state."""
        return self._read_index()

    def crl(self) -> x509.CertificateRevocationList:
        return load_crl(self.folder / CRL_FILE)

    def _issue(
        self,
        identity: Identity,
        out: Path,
        tls_eku: tuple[x509.ObjectIdentifier, ...],
        *,
        signing: bool,
        validity_days: int,
        now: datetime,
        hosts: Iterable[x509.GeneralName] = (),
    ) -> IssuedBundle:
        """Write ``ca.pem``, the TLS pair (unless ``tls_eku`` is empty) and maybe the signing pair,
        none of them existing.

        Everything is signed before the first file is written, so a refusal writes nothing; the
        index row comes before the files, so no certificate exists that cannot be revoked.
        """
        names = ((CA_CERT,) + ((TLS_CERT, TLS_KEY) if tls_eku else ())
                 + ((SIGNING_CERT, SIGNING_KEY) if signing else ()))
        _refuse_existing(out, names)
        uri = x509.UniformResourceIdentifier(identity.uri)
        not_after = min(valid_until(validity_days, now=now), self.certificate.not_valid_after_utc)
        leaves: dict[str, tuple[PrivateKey, x509.Certificate]] = {}
        if tls_eku:
            tls_key = ec.generate_private_key(ec.SECP256R1())
            tls_extensions = [
                (x509.SubjectAlternativeName([*hosts, uri]), False),
                (_key_usage(*_TLS_USAGE), True),
                (x509.ExtendedKeyUsage(tls_eku), False),
            ]
            leaves["tls"] = (tls_key, self._leaf(identity, tls_key, tls_extensions, not_after, now))
        if signing:
            signing_key = ed25519.Ed25519PrivateKey.generate()
            signing_extensions = [
                (x509.SubjectAlternativeName([uri]), False),
                (_key_usage(*_SIGNING_USAGE), True),
            ]
            leaves["signing"] = (
                signing_key,
                self._leaf(identity, signing_key, signing_extensions, not_after, now),
            )
        records = {
            purpose: _record(certificate, identity, purpose)
            for purpose, (_, certificate) in leaves.items()
        }
        _private_folder(out)
        with self._locked():
            self._write_index([*self._read_index(), *records.values()])
        _write_new(out / CA_CERT, self.certificate_pem)
        for purpose, (key, certificate) in leaves.items():
            cert_name, key_name = _FILES[purpose]
            _write_new(out / key_name, _private_pem(key), mode=0o600)
            _write_new(out / cert_name, certificate.public_bytes(_PEM))
        return IssuedBundle(
            identity,
            out,
            records.get("tls"),
            records.get("signing"),
            tuple(out / name for name in names),
        )

    def _leaf(
        self,
        identity: Identity,
        key: PrivateKey,
        extensions: Sequence[tuple[x509.ExtensionType, bool]],
        not_after: datetime,
        now: datetime,
    ) -> x509.Certificate:
        """Sign one leaf certificate for ``key``."""
        builder = (
            _validity(x509.CertificateBuilder(), now, not_after)
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COMMON_NAME, identity.id),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"govshare {identity.kind}"),
                    ]
                )
            )
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(self._authority_key_id, False)
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical)
        return builder.sign(self._key, hashes.SHA256())

    def _locked(self) -> AbstractContextManager[None]:
        """The CA's exclusive lock, for every change of its folder."""
        return exclusive_lock(self.folder / LOCK_FILE)

    @property
    def _authority_key_id(self) -> x509.AuthorityKeyIdentifier:
        ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)

    def _read_document(self) -> dict:
        try:
            return json.loads((self.folder / INDEX_FILE).read_text())
        except FileNotFoundError:
            raise NotFound(f"no CA index at {self.folder / INDEX_FILE}") from None

    def _read_index(self) -> builtins.list[IssuedCertificate]:
        return [IssuedCertificate.from_json(row) for row in self._read_document()["certificates"]]

    def _write_index(
        self, rows: Iterable[IssuedCertificate], last_crl: int | None = None
    ) -> None:
        """Write the certificates and the last CRL number (kept unless ``last_crl`` is given);
        hold the lock."""
        if last_crl is None:
            last_crl = self._last_crl_number()
        document = {
            "version": 1,
            "crl_number": last_crl,
            "certificates": [row.to_json() for row in rows],
        }
        replace_file(self.folder / INDEX_FILE, json.dumps(document, indent=2).encode() + b"\n")

    def _last_crl_number(self) -> int:
        """The highest CRL number signed, as the index and crl.pem record it (0 before the first):
        the index keeps it when crl.pem is deleted or damaged, since gateways refuse a CRL whose
        number is not above the one they hold."""
        try:
            indexed = self._read_document().get("crl_number", 0)  # absent in older indexes
        except NotFound:
            indexed = 0
        try:
            on_file = crl_number(self.crl())
        except (NotFound, InvalidCRL):
            on_file = 0
        return max(indexed, on_file)

    def _write_crl(
        self, rows: Iterable[IssuedCertificate], now: datetime, lifetime: timedelta
    ) -> x509.CertificateRevocationList:
        """Record ``rows`` and the next CRL number in the index, then re-sign the whole CRL with
        that number (1 for a new CA); hold the lock. A crash between the two leaves a gap in the
        numbering, never a repeat."""
        rows = builtins.list(rows)
        next_number = self._last_crl_number() + 1
        self._write_index(rows, next_number)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now)
            .next_update(now + lifetime)
            .add_extension(x509.CRLNumber(next_number), critical=False)
            .add_extension(self._authority_key_id, critical=False)
        )
        for row in rows:
            if row.revoked_at is not None:
                entry = _revoked_entry(row.serial, row.revoked_at, row.reason)
                builder = builder.add_revoked_certificate(entry)
        crl = builder.sign(self._key, hashes.SHA256())
        replace_file(self.folder / CRL_FILE, crl.public_bytes(_PEM))
        return crl


def load_crl(path: StrPath) -> x509.CertificateRevocationList:
    """Read a PEM CRL; its signature is checked by ``is_revoked``, not here."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise NotFound(f"no CRL at {path}") from None
    try:
        return x509.load_pem_x509_crl(data)
    except ValueError:
        raise InvalidCRL(f"{path} is not a PEM CRL") from None


def crl_number(crl: x509.CertificateRevocationList) -> int:
    """The CRL number: each re-signed CRL has a higher one, so an older copy can be told apart."""
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        raise InvalidCRL("the CRL has no CRL number") from None


def valid_until(days: int, *, now: datetime | None = None) -> datetime:
    """``now`` plus ``days``, refused unless ``days`` is positive and the end fits in X.509."""
    if days < 1:
        raise InvalidValidity(f"a validity of {days} days is not positive: give at least 1 day")
    try:
        return _now(now) + timedelta(days=days)
    except OverflowError:  # past year 9999, the last GeneralizedTime and datetime can hold
        raise InvalidValidity(
            f"a validity of {days} days ends after 9999-12-31, the last date a certificate or"
            " CRL can hold: give fewer days"
        ) from None


def verify_chain(
    cert: x509.Certificate, ca_cert: x509.Certificate, *, now: datetime | None = None
) -> None:
    """Raise InvalidCertificate at the first failed check of ``cert`` against the root.

    1. ``ca_cert`` signed ``cert`` (issuer name and signature).
    2. The root is inside its validity window at ``now``.
    3. ``cert`` is inside its validity window at ``now``.
    """
    now = _now(now)
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        issuer = ca_cert.subject.rfc4514_string()
        raise InvalidCertificate(
            f"certificate {cert.serial_number:x} is not signed by {issuer}"
        ) from None
    _check_window(ca_cert, "CA certificate", now)
    _check_window(cert, f"certificate {cert.serial_number:x}", now)


def verify_crl(crl: x509.CertificateRevocationList, ca_cert: x509.Certificate) -> None:
    """InvalidCRL unless ``ca_cert`` issued ``crl`` and its (ECDSA) key signed it."""
    if crl.issuer != ca_cert.subject:
        raise InvalidCRL(f"the CRL is issued by {crl.issuer.rfc4514_string()}, not by"
                         f" {ca_cert.subject.rfc4514_string()}")
    key = ca_cert.public_key()
    if not (isinstance(key, ec.EllipticCurvePublicKey) and crl.is_signature_valid(key)):
        raise InvalidCRL(f"the CRL is not signed by the key of {ca_cert.subject.rfc4514_string()}")


def is_revoked(
    cert: x509.Certificate, crl: x509.CertificateRevocationList, ca_cert: x509.Certificate
) -> bool:
    """Whether ``crl`` lists ``cert``; the CRL counts only once the root issued and signed it."""
    verify_crl(crl, ca_cert)
    return crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None


def _now(now: datetime | None) -> datetime:
    """The injectable clock, to the second as X.509 stores it; naive times are refused."""
    if now is None:
        now = datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.replace(microsecond=0)


def _validity(
    builder: x509.CertificateBuilder, now: datetime, not_after: datetime
) -> x509.CertificateBuilder:
    """Start ``CLOCK_SKEW`` early so peers with a slow clock accept a fresh certificate."""
    return builder.not_valid_before(now - CLOCK_SKEW).not_valid_after(not_after)


def _check_window(cert: x509.Certificate, what: str, now: datetime) -> None:
    if now < cert.not_valid_before_utc:
        raise InvalidCertificate(f"{what} is not valid before {cert.not_valid_before_utc}")
    if now > cert.not_valid_after_utc:
        raise InvalidCertificate(f"{what} expired at {cert.not_valid_after_utc}")


def _key_usage(*enabled: str) -> x509.KeyUsage:
    flags = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    flags.update(dict.fromkeys(enabled, True))
    return x509.KeyUsage(**flags)


def _record(certificate: x509.Certificate, identity: Identity, purpose: str) -> IssuedCertificate:
    return IssuedCertificate(
        serial=f"{certificate.serial_number:x}",
        identity=identity.uri,
        purpose=purpose,
        subject=certificate.subject.rfc4514_string(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )


def _matcher(serial_or_uri: str) -> Callable[[IssuedCertificate], bool]:
    """Select index rows by identity URI or by hex serial (``0x`` and colons allowed)."""
    if serial_or_uri.startswith(URN_PREFIX):
        return lambda row: row.identity == serial_or_uri
    try:
        serial = int(serial_or_uri.replace(":", "").removeprefix("0x"), 16)
    except ValueError:
        raise NotFound(f"{serial_or_uri!r} is neither a hex serial nor an identity URI") from None
    return lambda row: int(row.serial, 16) == serial


def _revoked_entry(
    serial: str, revoked_at: datetime, reason: str | None
) -> x509.RevokedCertificate:
    """A CRL entry; ``unspecified`` carries no reason extension, as RFC 5280 asks."""
    builder = (
        x509.RevokedCertificateBuilder().serial_number(int(serial, 16)).revocation_date(revoked_at)
    )
    if reason and reason != "unspecified":
        builder = builder.add_extension(x509.CRLReason(x509.ReasonFlags(reason)), False)
    return builder.build()


def _refuse_existing(folder: Path, names: Iterable[str]) -> None:
    """Check before writing anything, so a refused issuance leaves no half-written bundle."""
    existing = [name for name in names if (folder / name).exists()]
    if existing:
        raise AlreadyExists(f"{folder} already holds {', '.join(existing)}; refusing to overwrite")


def _private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _private_folder(folder: Path) -> None:
    """Create ``folder`` 0700 (it will hold private keys), or make an existing empty one 0700.
    An existing folder that holds other files keeps its mode: it may be the current folder or
    one shared with other things (the keys themselves are written 0600)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not any(folder.iterdir()):
        folder.chmod(0o700)


def _write_new(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Create ``path`` with ``mode`` from the first byte; O_EXCL never replaces a file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise AlreadyExists(f"{path} already exists; refusing to overwrite it") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        path.unlink()
        raise


