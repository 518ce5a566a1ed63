"""Configuration: TOML in, frozen dataclasses out.

Every option has a default, so `boshcm serve` runs with no file at all. Unknown keys and bad values are
refused with the dotted key named (`c2s.starttls: must be one of required, optional, disabled`), never
dropped or coerced. Command-line flags arrive as dotted-key overrides applied after the file.
`conf/boshcm.toml` documents every option; docs/configuration.md is the reference.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boshcm.cluster import ClusterError, parse_nodes, valid_node_id
from boshcm.extensions import ExtensionSection, ExtensionSpec, check_spec, installed
from boshcm.jid import JID, InvalidJID
from boshcm.toml_config import ConfigError, build_table, parse_host_port, read_toml

__all__ = ["Config", "ConfigError", "load_config", "parse_host_port"]


def _one_of(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(key, f"must be one of {', '.join(allowed)}; got {value!r}")


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(key, f"must be positive; got {value!r}")


def _not_negative(key: str, value: float, meaning_of_zero: str = "") -> None:
    if value < 0:
        raise ConfigError(key, f"must not be negative ({meaning_of_zero})" if meaning_of_zero else
                          "must not be negative")


def _bare_domain(key: str, text: str) -> None:
    try:
        jid = JID.parse(text)
    except InvalidJID as exc:
        raise ConfigError(key, str(exc)) from exc
    if jid.local is not None or jid.resource is not None:
        raise ConfigError(key, f"must be a bare domain; got {text!r}")


def _local_parts(key: str, usernames: Sequence[str]) -> None:
    """Accounts of this server named by their local part only ("quiz", not "quiz@example.org")."""
    for index, username in enumerate(usernames):
        if not username or "@" in username:
            raise ConfigError(f"{key}[{index}]", "must be a local part like 'quiz'")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    domain: str = "localhost"
    data_dir: str = "data"
    name: str = "boshcm"
    max_offline_messages: int = 100
    max_offline_bytes: int = 1_048_576

    def validate(self, section: str) -> None:
        _bare_domain(f"{section}.domain", self.domain)
        for name in ("max_offline_messages", "max_offline_bytes"):
            _positive(f"{section}.{name}", getattr(self, name))


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
    max_stanza_bytes_before_auth: int = 4_096
    max_unauthenticated_per_address: int = 8
    max_depth: int = 64
    negotiation_timeout_seconds: float = 60.0
    # Logins (every transport): see docs/security.md "Logins".
    auth_account_free_failures: int = 5
    auth_address_free_failures: int = 10
    auth_first_delay_seconds: float = 1.0
    auth_max_delay_seconds: float = 300.0
    auth_window_seconds: float = 900.0
    auth_remember_seconds: float = 2_592_000.0
    auth_max_tracked: int = 20_000
    # Bound stanzas per session (every transport): see docs/security.md "Stanza rates".
    stanza_rate_per_second: float = 50.0
    stanza_burst: int = 200
    guest_stanza_rate_per_second: float = 10.0
    guest_stanza_burst: int = 100
    stanza_flood_refusals: int = 2000
    stanza_rate_exempt: list[str] = field(default_factory=list)

    def validate(self, section: str) -> None:
        parse_host_port(self.listen, f"{section}.listen")
        _one_of(f"{section}.starttls", self.starttls, ("required", "optional", "disabled"))
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError(f"{section}.tls_cert", "tls_cert and tls_key must be given together")
        for name in ("max_stanza_bytes", "max_stanza_bytes_before_auth", "max_unauthenticated_per_address",
                     "max_depth", "negotiation_timeout_seconds", "auth_first_delay_seconds",
                     "auth_max_delay_seconds", "auth_window_seconds", "auth_remember_seconds", "auth_max_tracked",
                     "stanza_rate_per_second", "stanza_burst", "guest_stanza_rate_per_second", "guest_stanza_burst",
                     "stanza_flood_refusals"):
            _positive(f"{section}.{name}", getattr(self, name))
        for name in ("auth_account_free_failures", "auth_address_free_failures"):
            _not_negative(f"{section}.{name}", getattr(self, name))
        _local_parts(f"{section}.stanza_rate_exempt", self.stanza_rate_exempt)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpConfig:
    enabled: bool = True
    listen: str = "127.0.0.1:5280"
    bosh_path: str = "/http-bind"
    websocket_path: str = "/xmpp-websocket"
    cors_origins: list[str] = field(default_factory=lambda: ["*"])
    anonymous: bool = True
    quiz_page: bool = True
    quiz_page_transport: str = "websocket"  # issue 17: BOSH holds an HTTP/1.1 connection, six per host
    trusted_proxies: list[str] = field(default_factory=list)
    idle_timeout_seconds: float = 15.0
    max_websockets_per_address: int = 64

    def validate(self, section: str) -> None:
        parse_host_port(self.listen, f"{section}.listen")
        for index, network in enumerate(self.trusted_proxies):
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ConfigError(f"{section}.trusted_proxies[{index}]", str(exc)) from exc
        for name in ("idle_timeout_seconds", "max_websockets_per_address"):
            _positive(f"{section}.{name}", getattr(self, name))
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
    body_read_timeout_seconds: float = 10.0
    max_pending_bytes: int = 4_194_304
    max_response_bytes: int = 262_144

    def validate(self, section: str) -> None:
        for name in ("max_wait_seconds", "inactivity_seconds", "polling_seconds", "max_pause_seconds",
                     "max_body_bytes", "max_sessions", "body_read_timeout_seconds", "max_pending_bytes",
                     "max_response_bytes"):
            _positive(f"{section}.{name}", getattr(self, name))
        if not 0 <= self.max_hold <= 10:
            raise ConfigError(f"{section}.max_hold", f"must be between 0 and 10; got {self.max_hold}")


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamManagementConfig:
    """XEP-0198 on every transport (c2s, WebSocket, on-board BOSH)."""

    enabled: bool = True
    resume_seconds: float = 300.0
    max_unacked_stanzas: int = 1_000
    max_unacked_bytes: int = 1_048_576
    ack_request_every: int = 5
    max_detached_sessions: int = 10_000
    max_detached_guest_sessions: int = 2_000

    def validate(self, section: str) -> None:
        for name in ("max_unacked_stanzas", "max_unacked_bytes", "max_detached_sessions",
                     "max_detached_guest_sessions"):
            _positive(f"{section}.{name}", getattr(self, name))
        _not_negative(f"{section}.resume_seconds", self.resume_seconds, "0: no resumption")
        _not_negative(f"{section}.ack_request_every", self.ack_request_every, "0: never ask")


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamConfig:
    # Off-board: the XMPP servers (e.g. the nodes of an ejabberd cluster); new sessions go round robin.
    server: list[str] = field(default_factory=list)
    starttls: str = "required"
    verify_tls: bool = True
    domains: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    connect_timeout_seconds: float = 3.0
    down_seconds: float = 30.0
    # What a client has sent that its upstream server has not taken yet (docs/security.md).
    max_backlog_bytes: int = 1_048_576

    def validate(self, section: str) -> None:
        _positive(f"{section}.max_backlog_bytes", self.max_backlog_bytes)
        for index, server in enumerate(self.server):
            parse_host_port(server, f"{section}.server[{index}]")
        _one_of(f"{section}.starttls", self.starttls, ("required", "optional"))
        for index, route in enumerate(self.routes):
            parse_host_port(route, f"{section}.routes[{index}]")
        for name in ("connect_timeout_seconds", "down_seconds"):
            _positive(f"{section}.{name}", getattr(self, name))


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterConfig:
    """Several off-board nodes behind a round-robin load balancer (docs/scaling.md)."""

    node: str = ""                     # this node's id; empty: a single node, sids name no node
    listen: str = "127.0.0.1:5281"     # the internal listener for requests passed on by the other nodes
    nodes: list[str] = field(default_factory=list)   # "ID=http://HOST:PORT" for every node, this one too
    secret_file: str = ""
    max_skew_seconds: float = 30.0
    forward_margin_seconds: float = 5.0
    drain_timeout_seconds: float = 10.0

    def validate(self, section: str) -> None:
        for name in ("max_skew_seconds", "forward_margin_seconds"):
            _positive(f"{section}.{name}", getattr(self, name))
        _not_negative(f"{section}.drain_timeout_seconds", self.drain_timeout_seconds)
        try:
            table = parse_nodes(self.nodes)
        except ClusterError as exc:
            raise ConfigError(f"{section}.nodes", str(exc)) from exc
        if not self.node:
            return
        if not valid_node_id(self.node):
            raise ConfigError(f"{section}.node", f"must be 1-32 of a-z, 0-9 and '-'; got {self.node!r}")
        parse_host_port(self.listen, f"{section}.listen")
        if self.node not in table:
            raise ConfigError(f"{section}.nodes", f"must list this node {self.node!r}")
        if not self.secret_file:
            raise ConfigError(f"{section}.secret_file", "required when cluster.node is set")


@dataclass(frozen=True, slots=True, kw_only=True)
class MucConfig:
    enabled: bool = True
    domain: str = ""
    name: str = "Chatrooms"
    lock_seconds: float = 10.0
    history_length: int = 20
    # Rooms under attack: see docs/security.md "Rooms".
    max_occupants: int = 5_000
    max_rooms_per_account: int = 10
    max_rooms: int = 10_000
    max_affiliations_per_room: int = 10_000
    room_quota_exempt: list[str] = field(default_factory=list)
    max_pending_iqs: int = 10_000
    iq_timeout_seconds: float = 60.0

    def validate(self, section: str) -> None:
        if self.domain:
            _bare_domain(f"{section}.domain", self.domain)
        for name in ("lock_seconds", "history_length"):
            _not_negative(f"{section}.{name}", getattr(self, name))
        for name in ("max_occupants", "max_pending_iqs", "iq_timeout_seconds", "max_rooms",
                     "max_affiliations_per_room"):
            _positive(f"{section}.{name}", getattr(self, name))
        _not_negative(f"{section}.max_rooms_per_account", self.max_rooms_per_account, "0: no limit")
        _local_parts(f"{section}.room_quota_exempt", self.room_quota_exempt)


@dataclass(frozen=True, slots=True, kw_only=True)
class PepConfig:
    """XEP-0163 personal eventing on every account: see docs/security.md "PEP and blocking"."""

    enabled: bool = True
    max_nodes_per_account: int = 64
    max_items_per_node: int = 256
    max_item_bytes: int = 65_536
    max_account_bytes: int = 4_194_304
    max_caps_entries: int = 1_024
    max_affiliations_per_node: int = 256
    max_subscriptions_per_node: int = 256

    def validate(self, section: str) -> None:
        for name in ("max_nodes_per_account", "max_items_per_node", "max_item_bytes", "max_account_bytes",
                     "max_caps_entries", "max_affiliations_per_node", "max_subscriptions_per_node"):
            _positive(f"{section}.{name}", getattr(self, name))


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockingConfig:
    """XEP-0191 blocking command."""

    enabled: bool = True
    max_items: int = 1_000

    def validate(self, section: str) -> None:
        _positive(f"{section}.max_items", self.max_items)


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadConfig:
    """XEP-0363 HTTP file upload, served by the HTTP listener: see docs/security.md "Profiles and uploads"."""

    enabled: bool = True
    domain: str = ""                  # default: upload.<server.domain>
    public_url: str = ""              # what clients reach the HTTP listener at; default http://<http.listen>
    max_file_bytes: int = 10_485_760
    quota_bytes: int = 104_857_600
    slot_seconds: float = 300.0
    file_seconds: float = 2_592_000.0
    max_pending_slots: int = 16

    def validate(self, section: str) -> None:
        for name in ("max_file_bytes", "quota_bytes", "slot_seconds", "file_seconds", "max_pending_slots"):
            _positive(f"{section}.{name}", getattr(self, name))
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise ConfigError(f"{section}.public_url", f"must start with http:// or https://; got {self.public_url!r}")
        if self.domain:
            _bare_domain(f"{section}.domain", self.domain)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileConfig:
    """XEP-0054 vCards and XEP-0049 private storage (with XEP-0398 and XEP-0411 conversion to PEP)."""

    enabled: bool = True
    max_vcard_bytes: int = 131_072
    max_private_bytes: int = 65_536
    max_private_items: int = 64

    def validate(self, section: str) -> None:
        for name in ("max_vcard_bytes", "max_private_bytes", "max_private_items"):
            _positive(f"{section}.{name}", getattr(self, name))


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsConfig:
    """Prometheus /metrics on a listener of its own (docs/operations.md), and garbage-collector tuning."""

    enabled: bool = False
    listen: str = "127.0.0.1:9464"
    loop_lag_interval_seconds: float = 0.5
    gc_threshold0: int = 2_000        # Python's default is 700: fewer young collections, each short enough
    gc_threshold1: int = 2            # Python's default is 10: generation-1 collections a fifth the size, so shorter
    gc_threshold2: int = 50           # Python's default is 10: with threshold1 2, Python's cadence of full collections
    gc_freeze: bool = True            # gc.freeze() once started: long-lived objects leave the collector's walk
    gc_hold_in_fanout: bool = True    # no collection between a stanza's first and last recipient (CollectorHold)

    def validate(self, section: str) -> None:
        parse_host_port(self.listen, f"{section}.listen")
        _positive(f"{section}.loop_lag_interval_seconds", self.loop_lag_interval_seconds)
        _positive(f"{section}.gc_threshold0", self.gc_threshold0)
        _positive(f"{section}.gc_threshold1", self.gc_threshold1)
        _positive(f"{section}.gc_threshold2", self.gc_threshold2)


@dataclass(frozen=True, slots=True, kw_only=True)
class MamConfig:
    """XEP-0313 message archives of accounts and persistent rooms: see docs/security.md "Mobile clients"."""

    enabled: bool = True
    rooms: bool = True                   # persistent rooms archive their groupchat messages
    retention_days: float = 365.0        # 0: kept until the per-archive caps push them out
    max_messages_per_account: int = 10_000
    max_messages_per_room: int = 10_000
    max_bytes_per_account: int = 10_485_760  # stored stanzas; the oldest go first
    max_bytes_per_room: int = 10_485_760
    max_page: int = 250

    def validate(self, section: str) -> None:
        if self.retention_days < 0:
            raise ConfigError(f"{section}.retention_days", f"must be 0 or more; got {self.retention_days!r}")
        for name in ("max_messages_per_account", "max_messages_per_room", "max_bytes_per_account",
                     "max_bytes_per_room", "max_page"):
            _positive(f"{section}.{name}", getattr(self, name))


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrationConfig:
    """XEP-0077 in-band registration on the embedded server: see docs/security.md "Registration"."""

    enabled: bool = True                 # the quiz page's remembered guests register this way
    per_address_per_hour: int = 3
    per_address_per_day: int = 10
    global_per_hour: int = 100
    min_password_length: int = 8
    max_tracked_addresses: int = 20_000

    def validate(self, section: str) -> None:
        for name in ("per_address_per_hour", "per_address_per_day", "global_per_hour", "min_password_length",
                     "max_tracked_addresses"):
            _positive(f"{section}.{name}", getattr(self, name))


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
    stream_management: StreamManagementConfig = field(default_factory=StreamManagementConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    muc: MucConfig = field(default_factory=MucConfig)
    pep: PepConfig = field(default_factory=PepConfig)
    blocking: BlockingConfig = field(default_factory=BlockingConfig)
    mam: MamConfig = field(default_factory=MamConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    upload: UploadConfig = field(default_factory=UploadConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    log: LogConfig = field(default_factory=LogConfig)
    # The sections of installed extensions (boshcm/extensions.py), e.g. [quizbot], by name; each is the
    # extension's own dataclass, validated by the same loader.
    extensions: dict[str, ExtensionSection] = field(default_factory=dict)

    def validate(self, section: str) -> None:
        if self.cluster.node and not self.upstream.server:
            # The embedded server's state lives in one process: only off-board nodes can share the load.
            raise ConfigError("cluster.node", "needs upstream.server (several nodes work off-board only)")

    @property
    def data_path(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def muc_domain(self) -> str:
        return self.muc.domain or f"conference.{self.server.domain}"

    @property
    def upload_domain(self) -> str:
        return self.upload.domain or f"upload.{self.server.domain}"


def load_config(path: Path | str | None = None, overrides: dict[str, Any] | None = None, *,
                extensions: Sequence[ExtensionSpec] | None = None) -> Config:
    """Read `path` (if any), apply dotted-key `overrides`, validate. Raises ConfigError.

    `extensions`: whose sections are known besides boshcm's own; default: the installed ones."""
    specs = installed() if extensions is None else tuple(extensions)
    raw = read_toml(path, overrides)
    owned = {spec.name: raw.pop(spec.name, {}) for spec in specs}
    if "extensions" in raw:  # not a section: where the extensions' sections go
        raise ConfigError("extensions", "unknown option")
    config = build_table(Config, raw, "")
    sections: dict[str, ExtensionSection] = {}
    for spec in specs:
        check_spec(spec)
        sections[spec.name] = ExtensionSection(spec=spec, settings=build_table(spec.schema, owned[spec.name],
                                                                               f"{spec.name}."))
    return dataclasses.replace(config, extensions=sections)
