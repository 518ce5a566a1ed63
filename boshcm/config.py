"""Configuration: TOML in, frozen dataclasses out.

Every option has a default, so `boshcm serve` runs with no file at all. Unknown keys and bad values are
refused with the dotted key named (`c2s.starttls: must be one of required, optional, disabled`), never
dropped or coerced. Command-line flags arrive as dotted-key overrides applied after the file.
`conf/boshcm.toml` documents every option; docs/configuration.md is the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boshcm.jid import JID, InvalidJID
from boshcm.toml_config import ConfigError, load_toml, parse_host_port
from quizbot.config import EmbeddedQuizbotConfig

__all__ = ["Config", "ConfigError", "load_config", "parse_host_port"]


def _one_of(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(key, f"must be one of {', '.join(allowed)}; got {value!r}")


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(key, f"must be positive; got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    domain: str = "localhost"
    data_dir: str = "data"
    name: str = "boshcm"

    def validate(self, section: str) -> None:
        try:
            jid = JID.parse(self.domain)
        except InvalidJID as exc:
            raise ConfigError(f"{section}.domain", str(exc)) from exc
        if jid.local is not None or jid.resource is not None:
            raise ConfigError(f"{section}.domain", f"must be a bare domain; got {self.domain!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class C2sConfig:
    enabled: bool = True
    listen: str = "127.0.0.1:5222"
    starttls: str = "required"
    tls_cert: str = ""
    tls_key: str = ""
    allow_plain_without_tls: bool = False
    anonymous: bool = False
    max_stanza_bytes: int = 262_144
    max_depth: int = 64
    negotiation_timeout_seconds: float = 60.0
    auth_max_failures: int = 5
    auth_window_seconds: float = 60.0
    auth_lockout_seconds: float = 60.0

    def validate(self, section: str) -> None:
        parse_host_port(self.listen, f"{section}.listen")
        _one_of(f"{section}.starttls", self.starttls, ("required", "optional", "disabled"))
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError(f"{section}.tls_cert", "tls_cert and tls_key must be given together")
        for name in ("max_stanza_bytes", "max_depth", "negotiation_timeout_seconds", "auth_max_failures",
                     "auth_window_seconds", "auth_lockout_seconds"):
            _positive(f"{section}.{name}", getattr(self, name))


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpConfig:
    enabled: bool = True
    listen: str = "127.0.0.1:5280"
    bosh_path: str = "/http-bind"
    websocket_path: str = "/xmpp-websocket"
    cors_origins: list[str] = field(default_factory=lambda: ["*"])
    anonymous: bool = True
    quiz_page: bool = True
    quiz_page_transport: str = "bosh"

    def validate(self, section: str) -> None:
        parse_host_port(self.listen, f"{section}.listen")
        _one_of(f"{section}.quiz_page_transport", self.quiz_page_transport, ("bosh", "websocket"))
        for name in ("bosh_path", "websocket_path"):
            if not getattr(self, name).startswith("/"):
                raise ConfigError(f"{section}.{name}", "must start with '/'")


@dataclass(frozen=True, slots=True, kw_only=True)
class BoshConfig:
    max_wait_seconds: float = 60.0
    max_hold: int = 2
    inactivity_seconds: float = 60.0
    polling_seconds: float = 2.0
    max_pause_seconds: float = 120.0
    max_body_bytes: int = 1_048_576
    max_sessions: int = 100_000

    def validate(self, section: str) -> None:
        for name in ("max_wait_seconds", "inactivity_seconds", "polling_seconds", "max_pause_seconds",
                     "max_body_bytes", "max_sessions"):
            _positive(f"{section}.{name}", getattr(self, name))
        if not 0 <= self.max_hold <= 10:
            raise ConfigError(f"{section}.max_hold", f"must be between 0 and 10; got {self.max_hold}")


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamConfig:
    server: str = ""
    starttls: str = "required"
    verify_tls: bool = True
    domains: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)

    def validate(self, section: str) -> None:
        if self.server:
            parse_host_port(self.server, f"{section}.server")
        _one_of(f"{section}.starttls", self.starttls, ("required", "optional"))
        for index, route in enumerate(self.routes):
            parse_host_port(route, f"{section}.routes[{index}]")


@dataclass(frozen=True, slots=True, kw_only=True)
class MucConfig:
    enabled: bool = True
    domain: str = ""
    name: str = "Chatrooms"
    lock_seconds: float = 10.0
    history_length: int = 20

    def validate(self, section: str) -> None:
        if self.domain:
            try:
                JID.parse(self.domain)
            except InvalidJID as exc:
                raise ConfigError(f"{section}.domain", str(exc)) from exc
        if self.lock_seconds < 0:
            raise ConfigError(f"{section}.lock_seconds", "must not be negative")
        if self.history_length < 0:
            raise ConfigError(f"{section}.history_length", "must not be negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    level: str = "info"

    def validate(self, section: str) -> None:
        _one_of(f"{section}.level", self.level, ("debug", "info", "warning", "error"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    c2s: C2sConfig = field(default_factory=C2sConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    bosh: BoshConfig = field(default_factory=BoshConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    muc: MucConfig = field(default_factory=MucConfig)
    log: LogConfig = field(default_factory=LogConfig)
    quizbot: EmbeddedQuizbotConfig = field(default_factory=EmbeddedQuizbotConfig)

    @property
    def data_path(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def muc_domain(self) -> str:
        return self.muc.domain or f"conference.{self.server.domain}"


def load_config(path: Path | str | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read `path` (if any), apply dotted-key `overrides`, validate. Raises ConfigError."""
    return load_toml(Config, path, overrides)
