"""Gateway configuration: frozen dataclasses loaded from one TOML file, overridden by flags.

Relative paths in the file are resolved against the file's own folder, so a network folder
(the demo's, say) can be moved as a whole.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class ServerConfig:
    """How the gateway listens."""

    listen: str = "127.0.0.1:8443"
    """host:port to bind; the default listens on loopback only. Port 0 picks a free port."""
    max_workers: int = 64
    """Threads serving RPCs; also the most requests one group commit can batch."""
    grace_seconds: float = 10.0
    """On SIGTERM/SIGINT, how long in-flight calls may take to finish."""


@dataclass(frozen=True)
class TLSConfig:
    """The national CA and the gateway's own certificates and keys."""

    ca: Path = Path("certs/ca/ca.pem")
    """The national root CA certificate: client certificates must chain to it."""
    crl: Path = Path("certs/ca/crl.pem")
    """The CA's revocation list, re-read when the file changes."""
    certificate: Path = Path("certs/gateway/tls.pem")
    """The gateway's TLS server certificate."""
    key: Path = Path("certs/gateway/tls.key")
    """The gateway's TLS private key."""
    signing_certificate: Path = Path("certs/gateway/signing.pem")
    """The gateway's Ed25519 signing certificate (grants, receipts, checkpoints)."""
    signing_key: Path = Path("certs/gateway/signing.key")
    """The gateway's Ed25519 signing key."""


@dataclass(frozen=True)
class StorageConfig:
    """Where state lives."""

    database: Path = Path("govshare.db")
    """The SQLite database file."""
    blobs: Path = Path("blobs")
    """The content-addressed store of dataset content."""
    synchronous: str = "FULL"
    """SQLite synchronous mode: FULL makes every acknowledged commit survive power loss."""


@dataclass(frozen=True)
class AuditConfig:
    """The audit log."""

    origin: str = "govshare.local/audit"
    """The checkpoint origin line, naming this log to verifiers."""
    verifier_key_file: Path = Path("audit.vkey")
    """Where the gateway writes its note verifier key for third-party verifiers."""


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
    requests_per_second: float = 200.0
    """Sustained request rate per caller (token bucket refill)."""
    burst: int = 400
    """Token bucket size: requests a caller may make at once."""


@dataclass(frozen=True)
class ExchangeConfig:
    """Sharing rules."""

    clock_skew_seconds: int = 300
    """Signed statements whose create_time is further than this from the gateway's clock are
    refused."""
    max_grant_days: int = 365
    """Longest access a grant may give; longer requests are capped."""
    decision_working_days: int = 10
    """Working days an owner has to decide on a CONDITIONAL request before it shows as overdue."""


@dataclass(frozen=True)
class Config:
    """Everything the gateway needs to run."""

    server: ServerConfig = field(default_factory=ServerConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    exchange: ExchangeConfig = field(default_factory=ExchangeConfig)
    base_dir: Path = Path(".")
    """The folder relative paths are resolved against (the config file's folder)."""

    def path(self, value: Path) -> Path:
        """`value` resolved against base_dir."""
        return value if value.is_absolute() else (self.base_dir / value).resolve()

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
        raw = tomllib.load(handle)
    sections = {f.name: f for f in dataclasses.fields(Config) if f.name != "base_dir"}
    unknown = set(raw) - set(sections)
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {sorted(unknown)}")
    values = {name: _section(sections[name].default_factory(), raw.get(name, {}), path)
              for name in sections}
    return Config(**values, base_dir=path.resolve().parent)


def _section(default: Any, raw: dict[str, Any], path: Path) -> Any:
    kinds = {f.name: f.type for f in dataclasses.fields(default)}
    unknown = set(raw) - set(kinds)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)} in [{type(default).__name__}]")
    converted = {
        key: Path(value) if kinds[key] == "Path" else value for key, value in raw.items()
    }
    return dataclasses.replace(default, **converted)


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
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
