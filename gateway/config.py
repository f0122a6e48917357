"""Gateway configuration: frozen dataclasses loaded from one TOML file, overridden by flags.

Relative paths in the file are resolved against the file's own folder, so a network folder
(the demo's, say) can be moved as a whole.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from govshare.transparency import note

MiB = 1024 * 1024
GiB = 1024 * MiB
FRAMING_BYTES = 64 * 1024
"""Room a gRPC message needs around a content chunk (the other fields and protobuf framing)."""
CLIENT_MESSAGE_BYTES = 4 * MiB
"""The largest message gRPC clients receive unless told otherwise: fetch chunks must fit."""
LONGEST_TIMER = (2**31 - 1) // 1000
"""The longest timer setting in seconds (24 days): gRPC takes keepalives as 32-bit
milliseconds, and Python's waits overflow on much longer ones."""


@dataclass(frozen=True)
class ServerConfig:
    """How the gateway listens."""

    listen: str = "127.0.0.1:8443"
    """host:port to bind; the default listens on loopback only. Port 0 picks a free port."""
    max_workers: int = 64
    """Threads serving RPCs; also the most requests one group commit can batch."""
    grace_seconds: float = 10.0
    """On SIGTERM/SIGINT, how long in-flight calls may take to finish (0 to 2147483)."""
    keepalive_seconds: float = 30.0
    """After this long without traffic on a connection the gateway sends an HTTP/2 PING, so a
    client host that vanished (powered off, unplugged: no FIN or RST) is found out and its
    streams release their threads and slots. At least 1."""
    keepalive_timeout_seconds: float = 20.0
    """How long a PING may go unanswered before the gateway closes the connection and ends its
    calls; a dead peer is found within keepalive_seconds + this (50 s by default). At least 1."""
    min_client_ping_seconds: float = 10.0
    """The shortest interval between a client's PINGs the gateway accepts; a client pinging more
    often gets GOAWAY ENHANCE_YOUR_CALM ("too_many_pings"). The SDK pings every 30 s."""


@dataclass(frozen=True)
class TLSConfig:
    """The national CA and the gateway's own certificates and keys."""

    ca: Path = Path("certs/ca/ca.pem")
    """The national root CA certificate: client certificates must chain to it."""
    crl: Path = Path("certs/ca/crl.pem")
    """The CA's revocation list: required at start; a changed file is taken only if it is a
    newer CRL of the CA (else the last good one stays in force); past its nextUpdate every call
    is refused (UNAVAILABLE CRL_EXPIRED) until the CA re-signs it (govshare certs crl)."""
    certificate: Path = Path("certs/gateway/tls.pem")
    """The gateway's TLS server certificate."""
    key: Path = Path("certs/gateway/tls.key")
    """The gateway's TLS private key."""
    signing_certificate: Path = Path("certs/gateway/signing.pem")
    """The gateway's Ed25519 signing certificate (grants, receipts, checkpoints)."""
    signing_key: Path = Path("certs/gateway/signing.key")
    """The gateway's Ed25519 signing key."""


SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


@dataclass(frozen=True)
class StorageConfig:
    """Where state lives."""

    database: Path = Path("govshare.db")
    """The SQLite database file."""
    blobs: Path = Path("blobs")
    """The content-addressed store of dataset content."""
    synchronous: str = "FULL"
    """SQLite synchronous mode (OFF, NORMAL, FULL or EXTRA): FULL makes every acknowledged
    commit survive power loss."""


@dataclass(frozen=True)
class AuditConfig:
    """The audit log."""

    origin: str = "govshare.local/audit"
    """The checkpoint origin line, naming this log to verifiers."""
    verifier_key_file: Path = Path("audit.vkey")
    """Where the gateway writes its note verifier key for third-party verifiers."""
    previous_verifier_keys: tuple[str, ...] = ()
    """Verifier keys (as audit.vkey held them) the log was signed with before the current
    signing key or origin: the last stored checkpoint may be signed by one of them, and
    `govshare audit verify` accepts checkpoints they signed. New checkpoints use the current
    key."""
    checkpoint_file: Path = Path("audit.checkpoint")
    """Where the gateway keeps its latest signed checkpoint outside the database, saved before
    anyone sees it: a database whose log does not extend it (a restored backup, a copy that
    went its own way) is refused at start."""

    def previous_verifiers(self) -> list[note.NoteVerifier]:
        """previous_verifier_keys, parsed (load has checked them)."""
        return [note.NoteVerifier.from_verifier_key(key.strip())
                for key in self.previous_verifier_keys]


@dataclass(frozen=True)
class LimitsConfig:
    """Sizes, rates and concurrency a caller may use."""

    max_dataset_bytes: int = 4 * GiB
    """Largest dataset content accepted by PublishDataset."""
    max_chunk_bytes: int = 1 * MiB
    """Largest content chunk in a publish stream; also the chunk size of fetches."""
    max_message_bytes: int = 1 * MiB + 64 * 1024
    """Largest gRPC message accepted (a chunk plus its framing)."""
    max_streams_per_agency: int = 8
    """Concurrent streaming calls (publish, fetch, watch) one agency may hold."""
    max_streams: int = 0
    """Concurrent streaming calls of all callers together; each holds a server thread for its
    whole life, so this must stay below [server] max_workers. 0: three quarters of max_workers
    (48 of the default 64), leaving the rest for unary calls."""
    requests_per_second: float = 200.0
    """Sustained request rate per caller (token bucket refill)."""
    burst: int = 400
    """Token bucket size: requests a caller may make at once."""
    audited_refusals_per_second: float = 10.0
    """Refusals at the door (certificate revoked or unknown, role not allowed, agency not
    registered or suspended, rate above the limit) audited one by one per caller, sustained;
    beyond them refusals are counted and summarised (gateway/refusals.py)."""
    audited_refusals_burst: int = 100
    """Door refusals of one caller audited one by one at once."""
    refusal_summary_seconds: float = 10.0
    """How often the counted refusals are written to the audit log, one REFUSED event per
    caller, action and reason."""


@dataclass(frozen=True)
class ExchangeConfig:
    """Sharing rules."""

    clock_skew_seconds: int = 300
    """Signed statements whose create_time is further than this from the gateway's clock are
    refused."""
    max_grant_days: int = 365
    """Longest access a grant may give; longer requests are capped."""
    max_pending_requests: int = 100
    """PENDING access requests one agency may have waiting for one owner; more are refused
    (RESOURCE_EXHAUSTED TOO_MANY_PENDING_REQUESTS)."""
    decision_working_days: int = 10
    """Working days an owner has to decide on a CONDITIONAL request before it shows as overdue
    (until the end of the last one, in `timezone`)."""
    timezone: str = "Asia/Shanghai"
    """The IANA time zone whose calendar days working days are counted in."""
    holidays: tuple[date, ...] = ()
    """Dates that are not working days (statutory holidays), e.g. [2026-10-01, 2026-10-02]."""
    extra_working_days: tuple[date, ...] = ()
    """Saturdays and Sundays that are working days (those China works around its holidays)."""


@dataclass(frozen=True)
class NetworkConfig:
    """Membership of a national network of gateways (docs/FEDERATION.md). By default the
    gateway is no network member and serves on its own, as a single gateway always has."""

    configuration_file: str = ""
    """The signed network configuration (a SignedNetworkConfiguration, as `govshare network
    sign` writes it) naming this gateway as a member; empty: not a network member. Checked at
    start with [tls] ca (the gateway does not start on a missing, unverifiable or expired one,
    or one that does not list this gateway with its own certificates and audit key); once it
    expires without a newer one, every call but the configuration's own read is refused
    (FAILED_PRECONDITION NETWORK_CONFIGURATION_EXPIRED)."""
    refresh_seconds: float = 300.0
    """How often the file is read again: a valid configuration of a higher version replaces
    the one held (its CRL too, when newer than [tls] crl); anything else is refused, logged
    and audited, and the one held stays."""
    witness_key: str = ""
    """The Ed25519 private key (PEM, mode 0600; `govshare network witness-key` writes one) with
    which this gateway, as a witness, cosigns the other members' checkpoints. Required with
    configuration_file: the configuration's witness_verifier_key for this gateway must be its
    public key, else the gateway does not start."""
    witness_http_listen: str = ""
    """Where the witness also serves the C2SP tlog-witness HTTP form, `POST /add-checkpoint`
    (host:port, over TLS with [tls] certificate, no client certificate asked: the checkpoint's
    signature authenticates the request); empty: not served, only WitnessService over gRPC."""
    witness_push_seconds: float = 10.0
    """How often the gateway asks the other members to cosign its latest checkpoint; a witness
    that does not answer is asked again later, waiting up to 32 times longer each time it
    fails."""
    replicate_seconds: float = 30.0
    """How often the gateway pulls the other members' directory and catalog changes, and asks
    them about the access requests it carried there still pending and the grants they gave
    still in force; a member not reached within three times this is named stale in listings."""
    gossip_seconds: float = 60.0
    """How often the gateway compares what the other members cosigned of each log, and the
    configuration each holds, with its own view: a log showing two histories, or two
    configurations of one version, is kept as evidence and audited (govshare network
    status)."""
    relay_idle_seconds: float = 30.0
    """How long a fetch this gateway relays from another member may wait for that member's
    next message: past it the relay is cut (UNAVAILABLE RELAY_IDLE, the agency may resume),
    so a member that hangs holds neither the agency's stream slots nor a server thread."""


@dataclass(frozen=True)
class Config:
    """Everything the gateway needs to run."""

    server: ServerConfig = field(default_factory=ServerConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    base_dir: Path = Path(".")
    """The folder relative paths are resolved against (the config file's folder)."""

    def path(self, value: Path) -> Path:
        """`value` resolved against base_dir."""
        return value if value.is_absolute() else (self.base_dir / value).resolve()

    @property
    def max_streams(self) -> int:
        """The gateway-wide cap on concurrent streams ([limits] max_streams, or its default)."""
        return self.limits.max_streams or max(1, self.server.max_workers * 3 // 4)

    def replace(self, **sections: dict[str, Any]) -> Config:
        """A copy with some fields of some sections replaced, as flags do."""
        changes = {
            name: dataclasses.replace(getattr(self, name), **values)
            for name, values in sections.items()
            if values
        }
        return dataclasses.replace(self, **changes)


def load(path: Path) -> Config:
    """Read a gateway.toml; unknown sections or keys are errors, so typos do not pass silently."""
    path = Path(path)
    with path.open("rb") as handle:
        try:
            raw = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path} is not valid TOML: {exc}") from None
    sections = {f.name: f for f in dataclasses.fields(Config) if f.name != "base_dir"}
    unknown = set(raw) - set(sections)
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {sorted(unknown)}")
    values = {name: _section(name, sections[name].default_factory(), raw.get(name, {}), path)
              for name in sections}
    config = Config(**values, base_dir=path.resolve().parent)
    found = problems(config)
    if found:
        raise ValueError(f"{path}: " + "; ".join(found))
    return config


def _section(name: str, default: Any, raw: Any, path: Path) -> Any:
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: [{name}] must be a table of keys")
    kinds = {f.name: f.type for f in dataclasses.fields(default)}
    unknown = set(raw) - set(kinds)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)} in [{name}]")
    converted = {key: _typed(f"[{name}] {key}", kinds[key], value, path)
                 for key, value in raw.items()}
    return dataclasses.replace(default, **converted)


_KINDS: dict[str, tuple[type, ...]] = {"str": (str,), "Path": (str,), "int": (int,),
                                       "float": (int, float)}
_KIND_NAMES = {"str": "a string", "Path": "a path string", "int": "an integer",
               "float": "a number"}


def _typed(key: str, kind: str, value: Any, path: Path) -> Any:
    """`value` as the field's type; a value of another TOML type is an error naming the key."""
    if kind == "tuple[date, ...]":
        return _dates(key, value, path)
    if kind == "tuple[str, ...]":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"{path}: {key} must be a list of strings, got {value!r}")
        return tuple(value)
    if isinstance(value, bool) or not isinstance(value, _KINDS[kind]):
        raise ValueError(f"{path}: {key} must be {_KIND_NAMES[kind]} (without units), got"
                         f" {value!r}")
    if kind == "Path":
        return Path(value)
    if kind == "float" and not math.isfinite(value):
        raise ValueError(f"{path}: {key} must be a finite number, got {value!r}")
    return float(value) if kind == "float" else value


def _dates(key: str, value: Any, path: Path) -> tuple[date, ...]:
    """A list of TOML dates (2026-10-01) or ISO date strings ("2026-10-01") as dates."""
    try:
        if not isinstance(value, list):
            raise TypeError
        return tuple(item if type(item) is date else date.fromisoformat(item) for item in value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: {key} must be a list of dates like [2026-10-01, 2026-10-02],"
                         f" got {value!r}") from None


def _calendar_problems(exchange: ExchangeConfig) -> list[str]:
    """What is wrong in the [exchange] keys that make the working-day calendar."""
    found = []
    try:
        ZoneInfo(exchange.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        found.append("[exchange] timezone must be an IANA time zone name such as Asia/Shanghai,"
                     f" got {exchange.timezone!r}")
    weekdays = [day.isoformat() for day in exchange.extra_working_days if day.weekday() < 5]
    if weekdays:
        found.append("[exchange] extra_working_days must be Saturdays or Sundays (Monday to"
                     f" Friday are working days unless a holiday), got {', '.join(weekdays)}")
    both = sorted(set(exchange.holidays) & set(exchange.extra_working_days))
    if both:
        found.append("[exchange] holidays and extra_working_days both list"
                     f" {', '.join(day.isoformat() for day in both)}: remove it from one")
    return found


def _audit_problems(audit: AuditConfig) -> list[str]:
    """What is wrong in the [audit] keys that name and sign the log."""
    found = []
    if not note.is_key_name(audit.origin):
        found.append("[audit] origin must be a note key name: not empty, without spaces or '+'"
                     f" (for instance govshare.local/audit), got {audit.origin!r}")
    for key in audit.previous_verifier_keys:
        try:
            note.NoteVerifier.from_verifier_key(key.strip())
        except ValueError as exc:
            found.append("[audit] previous_verifier_keys must hold verifier keys as audit.vkey"
                         f" holds them (name+id+key): {key!r} is not one ({exc})")
    return found


def problems(config: Config) -> list[str]:
    """What is out of range or inconsistent in `config`, each naming its key."""
    found = [f"{key} must be positive, got {value!r}" for key, value in (
        ("[server] max_workers", config.server.max_workers),
        ("[limits] max_dataset_bytes", config.limits.max_dataset_bytes),
        ("[limits] max_chunk_bytes", config.limits.max_chunk_bytes),
        ("[limits] max_message_bytes", config.limits.max_message_bytes),
        ("[limits] max_streams_per_agency", config.limits.max_streams_per_agency),
        ("[limits] requests_per_second", config.limits.requests_per_second),
        ("[limits] burst", config.limits.burst),
        ("[limits] audited_refusals_per_second", config.limits.audited_refusals_per_second),
        ("[limits] audited_refusals_burst", config.limits.audited_refusals_burst),
        ("[limits] refusal_summary_seconds", config.limits.refusal_summary_seconds),
        ("[exchange] clock_skew_seconds", config.exchange.clock_skew_seconds),
        ("[exchange] max_grant_days", config.exchange.max_grant_days),
        ("[exchange] max_pending_requests", config.exchange.max_pending_requests),
        ("[exchange] decision_working_days", config.exchange.decision_working_days),
        ("[network] refresh_seconds", config.network.refresh_seconds),
        ("[network] witness_push_seconds", config.network.witness_push_seconds),
        ("[network] replicate_seconds", config.network.replicate_seconds),
        ("[network] gossip_seconds", config.network.gossip_seconds),
        ("[network] relay_idle_seconds", config.network.relay_idle_seconds),
    ) if not value > 0]  # so that a nan of a Config built in code is refused too
    found += [f"[exchange] {key} must be at most {most}, got {value!r}" for key, value, most in (
        ("decision_working_days", config.exchange.decision_working_days, 366),
        ("max_grant_days", config.exchange.max_grant_days, 36_525),
    ) if value > most]
    if config.server.max_workers == 1:
        found.append("[server] max_workers must be at least 2: streams may hold all but one")
    found += [f"[server] {key} must be {least} to {LONGEST_TIMER} seconds, got {value!r}"
              for key, value, least in (
                  ("keepalive_seconds", config.server.keepalive_seconds, 1),
                  ("keepalive_timeout_seconds", config.server.keepalive_timeout_seconds, 1),
                  ("min_client_ping_seconds", config.server.min_client_ping_seconds, 0),
                  ("grace_seconds", config.server.grace_seconds, 0),
              ) if not least <= value <= LONGEST_TIMER]
    limits = config.limits
    found += [f"{key} must be at most {LONGEST_TIMER}, got {value!r}" for key, value in (
        ("[limits] refusal_summary_seconds", limits.refusal_summary_seconds),
        ("[network] refresh_seconds", config.network.refresh_seconds),
        ("[network] witness_push_seconds", config.network.witness_push_seconds),
        ("[network] replicate_seconds", config.network.replicate_seconds),
        ("[network] gossip_seconds", config.network.gossip_seconds),
        ("[network] relay_idle_seconds", config.network.relay_idle_seconds),
    ) if not value <= LONGEST_TIMER]
    if limits.max_chunk_bytes + FRAMING_BYTES > CLIENT_MESSAGE_BYTES:
        found.append("[limits] max_chunk_bytes must be at most"
                     f" {CLIENT_MESSAGE_BYTES - FRAMING_BYTES} (fetch chunks must fit the 4 MiB"
                     " messages gRPC clients accept by default),"
                     f" got {limits.max_chunk_bytes}")
    if limits.max_message_bytes > CLIENT_MESSAGE_BYTES:
        found.append(f"[limits] max_message_bytes must be at most {CLIENT_MESSAGE_BYTES} (replies"
                     " must fit the 4 MiB messages gRPC clients accept by default), got"
                     f" {limits.max_message_bytes}")
    if limits.max_message_bytes < limits.max_chunk_bytes + FRAMING_BYTES:
        found.append(f"[limits] max_message_bytes must be at least [limits] max_chunk_bytes +"
                     f" {FRAMING_BYTES} (a chunk and its framing), that is"
                     f" {limits.max_chunk_bytes + FRAMING_BYTES}; got {limits.max_message_bytes}")
    if not 0 <= limits.max_streams < config.server.max_workers:
        found.append(f"[limits] max_streams must be 0 (the default) or below [server] max_workers"
                     f" ({config.server.max_workers}), so unary calls keep threads; got"
                     f" {limits.max_streams}")
    if config.storage.synchronous.upper() not in SYNCHRONOUS_MODES:
        found.append(f"[storage] synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, got"
                     f" {config.storage.synchronous!r}")
    found += _calendar_problems(config.exchange)
    found += _audit_problems(config.audit)
    found += _listen_problems(config.server.listen)
    found += _network_problems(config.network)
    return found


def _network_problems(network: NetworkConfig) -> list[str]:
    found = []
    if network.configuration_file and not network.witness_key:
        found.append("[network] witness_key must name the gateway's witness key (govshare"
                     " network witness-key writes one) when configuration_file is set: every"
                     " member witnesses the others' logs")
    if network.witness_http_listen and not network.configuration_file:
        found.append("[network] witness_http_listen needs configuration_file: only a network"
                     " member witnesses logs; leave it empty on a gateway of its own")
    elif network.witness_http_listen and not network.witness_http_listen.rpartition(":")[
            2].isdigit():
        found.append("[network] witness_http_listen must be host:port, got"
                     f" {network.witness_http_listen!r}")
    return found


UNIX_SCHEMES = ("unix", "unix-abstract")
"""grpc's address schemes for Unix sockets, which [server] listen may name."""


def _listen_problems(listen: str) -> list[str]:
    """What is wrong with [server] listen (grpc would otherwise bind a port number past 65535
    modulo 65536, or refuse it only as "the address is in use")."""
    scheme, _, path = listen.partition(":")
    if scheme in UNIX_SCHEMES and path:
        return []  # a Unix socket (grpc's unix:PATH and unix-abstract:NAME): no port
    host, _, port = listen.rpartition(":")
    if host and port.isascii() and port.isdigit() and int(port) <= 65535:
        return []
    return ["[server] listen must be host:port with a host and a port from 0 to 65535 (0 picks"
            f" a free one), for instance 127.0.0.1:8443, or unix:PATH; got {listen!r}"]


def render(config: Config) -> str:
    """The TOML text of `config` (paths as given, relative ones kept relative)."""
    lines: list[str] = []
    for f in dataclasses.fields(Config):
        if f.name == "base_dir":
            continue
        lines.append(f"[{f.name}]")
        section = getattr(config, f.name)
        for item in dataclasses.fields(section):
            lines.append(f"{item.name} = {_toml_value(getattr(section, item.name))}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, date):
        return value.isoformat()  # a TOML local date
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
