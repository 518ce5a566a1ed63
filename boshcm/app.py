"""Composition root: builds the stores, machines and adapters from a Config, runs them, shuts them down."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from pathlib import Path
from typing import TypeVar

from boshcm import __version__
from boshcm.address_slots import AddressSlots
from boshcm.bosh.http import BoshConnection, BoshEndpoint
from boshcm.bosh.session import BoshLimits, OpenUpstream
from boshcm.bosh.upstream import OffboardLink, OnboardLink, UpstreamListener, upstream_tls_context
from boshcm.clock import Clock, SystemClock
from boshcm.config import Config, parse_host_port
from boshcm.errors import BoshCondition
from boshcm.extensions import Extension
from boshcm.jid import JID
from boshcm.tls import SELF_SIGNED_CERT, ensure_self_signed, server_context
from boshcm.web import Cors, HttpServer, TrustedProxies, build_app
from boshcm.websocket import WebSocketEndpoint
from boshcm.xml.parser import StreamParser
from boshcm.xmpp.accounts import AccountStore
from boshcm.xmpp.blocking import Blocklists, SqliteBlocklistStore
from boshcm.xmpp.c2s import C2sConnection, C2sServer
from boshcm.xmpp.hub import Hub
from boshcm.xmpp.muc.config import RoomConfig
from boshcm.xmpp.muc.service import MucService, RoomStore
from boshcm.xmpp.pubsub import PepLimits, SqlitePepStore
from boshcm.xmpp.resumption import ResumptionTable
from boshcm.xmpp.router import Router
from boshcm.xmpp.storage import SqliteStore
from boshcm.xmpp.stream import ClientSession, SessionSettings, TlsPolicy, Transport
from boshcm.xmpp.stream_management import SmLimits
from boshcm.xmpp.throttle import AuthThrottle, ThrottleSettings

log = logging.getLogger(__name__)

E = TypeVar("E")

ACCOUNTS_FILE = "accounts.sqlite"
STORE_FILE = "server.sqlite"
ROOMS_FILE = "rooms.sqlite"
PEP_FILE = "pep.sqlite"
BLOCKLIST_FILE = "blocklist.sqlite"


def open_accounts(config: Config) -> AccountStore:
    config.data_path.mkdir(parents=True, exist_ok=True)
    return AccountStore(config.data_path / ACCOUNTS_FILE)


class LiveUsers:
    """Accounts plus the anonymous users currently online: everyone the router may address."""

    def __init__(self, accounts: AccountStore) -> None:
        self._accounts = accounts
        self.anonymous: set[str] = set()

    def exists(self, username: str) -> bool:
        return username in self.anonymous or self._accounts.exists(username)


class Server:
    """The embedded XMPP server with its listeners."""

    def __init__(self, config: Config, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        data = config.data_path
        data.mkdir(parents=True, exist_ok=True)
        self.accounts = open_accounts(config)
        self.users = LiveUsers(self.accounts)
        self.store = SqliteStore(data / STORE_FILE, max_offline_messages=config.server.max_offline_messages,
                                 max_offline_bytes=config.server.max_offline_bytes)
        pep = config.pep
        self.pep_store = SqlitePepStore(data / PEP_FILE) if pep.enabled else None
        self.blocklists = SqliteBlocklistStore(data / BLOCKLIST_FILE) if config.blocking.enabled else None
        self.router = Router(domain=config.server.domain, users=self.users, store=self.store,
                             wall_clock=self.clock.wall, server_name=config.server.name, server_version=__version__,
                             pep_store=self.pep_store, pep_limits=PepLimits(
                                 max_nodes_per_account=pep.max_nodes_per_account,
                                 max_items_per_node=pep.max_items_per_node, max_item_bytes=pep.max_item_bytes,
                                 max_account_bytes=pep.max_account_bytes, max_caps_entries=pep.max_caps_entries),
                             blocking=None if self.blocklists is None else Blocklists(
                                 self.blocklists, max_items=config.blocking.max_items))
        sm = config.stream_management
        # XEP-0198: one table of resumable sessions for every transport; the hub parks and expires them.
        self.resumptions: ResumptionTable[ClientSession] = ResumptionTable(max_detached=sm.max_detached_sessions)
        self.hub = Hub(clock=self.clock, resumptions=self.resumptions)
        self._expiry: asyncio.Task[None] | None = None
        # Extensions (boshcm/extensions.py), e.g. the quiz: their service accounts are exempt from the room
        # quota and the stanza rate.
        self.extensions: list[Extension] = [section.spec.create(config, section.settings)
                                            for section in config.extensions.values()]
        self.service_accounts = frozenset(name for extension in self.extensions
                                          for name in extension.service_accounts)
        self._started: list[Extension] = []
        self.rooms: RoomStore | None = None
        self.muc: MucService | None = None
        if config.muc.enabled:
            self.rooms = RoomStore(data / ROOMS_FILE)
            muc, domain = config.muc, config.server.domain
            exempt = [*muc.room_quota_exempt, *self.service_accounts]
            guests = self.users.anonymous
            self.muc = MucService(domain=config.muc_domain, store=self.rooms, wall_clock=self.clock.wall,
                                  name=muc.name, lock_seconds=muc.lock_seconds,
                                  default_config=RoomConfig(history_length=muc.history_length),
                                  max_occupants=muc.max_occupants, max_rooms_per_account=muc.max_rooms_per_account,
                                  quota_exempt=frozenset(JID.make(name, domain) for name in exempt),
                                  is_guest=lambda jid: jid.domain == domain and jid.local in guests,
                                  max_pending_iqs=muc.max_pending_iqs, iq_timeout_seconds=muc.iq_timeout_seconds)
            self.router.add_component(config.muc_domain, self.muc, config.muc.name)
        c2s = config.c2s
        self.throttle = AuthThrottle(ThrottleSettings(
            account_free_failures=c2s.auth_account_free_failures,
            address_free_failures=c2s.auth_address_free_failures,
            first_delay_seconds=c2s.auth_first_delay_seconds, max_delay_seconds=c2s.auth_max_delay_seconds,
            forget_seconds=c2s.auth_window_seconds, remember_seconds=c2s.auth_remember_seconds,
            max_entries=c2s.auth_max_tracked))
        self.session_settings = SessionSettings(
            domain=config.server.domain, tls_policy=TlsPolicy(c2s.starttls),
            allow_plain_without_tls=c2s.allow_plain_without_tls, anonymous=c2s.anonymous,
            anonymous_web=config.http.anonymous,
            negotiation_timeout_seconds=c2s.negotiation_timeout_seconds,
            stanza_rate_per_second=c2s.stanza_rate_per_second, stanza_burst=c2s.stanza_burst,
            guest_stanza_rate_per_second=c2s.guest_stanza_rate_per_second,
            guest_stanza_burst=c2s.guest_stanza_burst, stanza_flood_refusals=c2s.stanza_flood_refusals,
            stanza_rate_exempt=frozenset([*c2s.stanza_rate_exempt, *self.service_accounts]),
            stream_management=SmLimits(enabled=sm.enabled, resume_seconds=sm.resume_seconds,
                                       max_unacked_stanzas=sm.max_unacked_stanzas,
                                       max_unacked_bytes=sm.max_unacked_bytes, ack_request_every=sm.ack_request_every,
                                       max_detached_sessions=sm.max_detached_sessions))
        self.tls_context = self._tls_context(data) if c2s.starttls != "disabled" else None
        # One count for every transport: an address holds at most this many sessions that have not logged in.
        self.unauthenticated = AddressSlots(per_address=c2s.max_unauthenticated_per_address)
        host, port = parse_host_port(c2s.listen, "c2s.listen")
        self.c2s = C2sServer(host=host, port=port, connection_factory=self._new_c2s_connection)
        # Off-board (like Punjab): BOSH sessions go to another XMPP server; the embedded one stays dark.
        self.offboard = bool(config.upstream.server)
        self._upstream_tls = upstream_tls_context(verify=config.upstream.verify_tls)
        self._upstream_tasks: set[asyncio.Task[None]] = set()
        self.http: HttpServer | None = None
        self.bosh: BoshEndpoint | None = None
        self.websocket: WebSocketEndpoint | None = None

    def _tls_context(self, data: Path) -> ssl.SSLContext:
        c2s = self.config.c2s
        if c2s.tls_cert:
            return server_context(Path(c2s.tls_cert), Path(c2s.tls_key))
        return server_context(*ensure_self_signed(data, self.config.server.domain))

    def extension(self, kind: type[E]) -> E:
        """The running server's extension of this class (tests and tools reach the quiz bot this way)."""
        for extension in self.extensions:
            if isinstance(extension, kind):
                return extension
        raise LookupError(f"no {kind.__name__} extension")

    def new_session(self, transport: Transport) -> ClientSession:
        return ClientSession(settings=self.session_settings, transport=transport, router=self.router,
                             accounts=self.accounts, throttle=self.throttle, now=self.clock.now(),
                             guests=self.users.anonymous, resumptions=self.resumptions)

    def max_stanza_bytes(self, authenticated: bool) -> int:
        """Strangers get a few KiB per element until they have authenticated (every transport)."""
        c2s = self.config.c2s
        return c2s.max_stanza_bytes if authenticated else c2s.max_stanza_bytes_before_auth

    def new_parser(self, authenticated: bool) -> StreamParser:
        return StreamParser(max_stanza_bytes=self.max_stanza_bytes(authenticated), max_depth=self.config.c2s.max_depth)

    def _new_c2s_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> C2sConnection:
        return C2sConnection(reader, writer, hub=self.hub, clock=self.clock, new_session=self.new_session,
                             new_parser=self.new_parser, tls_context=self.tls_context,
                             unauthenticated=self.unauthenticated)

    def _new_link(self, connection: BoshConnection, order: OpenUpstream, remote: str) -> OnboardLink | OffboardLink:
        if not self.offboard:
            return OnboardLink(connection, to=order.to, lang=order.lang, version=order.version,
                               secure=connection.secure and order.secure, remote=remote, hub=self.hub,
                               clock=self.clock, new_session=self.new_session)
        return self.offboard_link(connection, to=order.to, lang=order.lang, route=order.route)

    def _relay_link(self, listener: UpstreamListener, to: str, lang: str | None) -> OffboardLink:
        return self.offboard_link(listener, to=to, lang=lang)

    def offboard_link(self, listener: UpstreamListener, *, to: str, lang: str | None,
                      route: str | None = None) -> OffboardLink:
        upstream = self.config.upstream
        host, port = parse_host_port(_route_target(route) or upstream.server, "upstream.server")
        return OffboardLink(listener, to=to, lang=lang, host=host, port=port,
                            starttls_required=upstream.starttls == "required", tls_context=self._upstream_tls,
                            tasks=self._upstream_tasks, max_stanza_bytes=self.config.c2s.max_stanza_bytes,
                            max_depth=self.config.c2s.max_depth)

    def _check_address(self, to: str, route: str | None) -> BoshCondition | None:
        """XEP-0124 §7.1 'to' and 'route': only where the operator allows."""
        if not self.offboard:
            return None if to == self.config.server.domain else BoshCondition.HOST_UNKNOWN
        upstream = self.config.upstream
        if upstream.domains and to not in upstream.domains:
            return BoshCondition.HOST_UNKNOWN
        if route is not None and _route_target(route) not in upstream.routes:
            return BoshCondition.IMPROPER_ADDRESSING
        return None

    def _build_http(self) -> HttpServer:
        http, bosh = self.config.http, self.config.bosh
        cors = Cors(http.cors_origins)
        self.bosh = BoshEndpoint(
            clock=self.clock, cors=cors, link_factory=self._new_link, max_body_bytes=bosh.max_body_bytes,
            max_depth=self.config.c2s.max_depth, max_sessions=bosh.max_sessions, check_address=self._check_address,
            unauthenticated=self.unauthenticated, body_read_timeout_seconds=bosh.body_read_timeout_seconds,
            limits=BoshLimits(max_wait_seconds=bosh.max_wait_seconds, max_hold=bosh.max_hold,
                              inactivity_seconds=bosh.inactivity_seconds, polling_seconds=bosh.polling_seconds,
                              max_pause_seconds=bosh.max_pause_seconds, max_pending_bytes=bosh.max_pending_bytes,
                              max_response_bytes=bosh.max_response_bytes,
                              max_body_bytes_before_auth=self.config.c2s.max_stanza_bytes_before_auth))
        self.websocket = WebSocketEndpoint(
            hub=self.hub, clock=self.clock, new_session=self.new_session, max_frame_bytes=self.max_stanza_bytes,
            max_depth=self.config.c2s.max_depth, cors=cors,
            per_address=AddressSlots(per_address=http.max_websockets_per_address),
            unauthenticated=self.unauthenticated, relay=self._relay_link if self.offboard else None)
        pages = [route for extension in self.extensions for route in extension.routes()]
        app = build_app(cors=cors, bosh_path=http.bosh_path, bosh_handler=self.bosh.handle,
                        websocket_path=http.websocket_path, websocket_handler=self.websocket.handle,
                        static_routes=pages, proxies=TrustedProxies(http.trusted_proxies))
        host, port = parse_host_port(http.listen, "http.listen")
        return HttpServer(app, host=host, port=port, idle_timeout_seconds=http.idle_timeout_seconds)

    async def start(self) -> None:
        self._expiry = asyncio.get_running_loop().create_task(self.hub.run_expiry())
        if self.config.c2s.enabled and not self.offboard:
            await self.c2s.start()
        if self.config.http.enabled:
            self.http = self._build_http()
            await self.http.start()
            assert self.bosh is not None
            self.bosh.start()
        handle = _Handle(self)
        for extension in self.extensions:
            await extension.start(handle)
            self._started.append(extension)

    async def stop(self) -> None:
        while self._started:
            await self._started.pop().stop()
        await self.c2s.stop()
        if self.websocket is not None:
            for connection in list(self.websocket.connections):
                connection.shutdown()
        if self.bosh is not None:
            await self.bosh.stop()
        if self.http is not None:
            await self.http.stop()
        for task in list(self._upstream_tasks):
            task.cancel()
        if self._upstream_tasks:
            await asyncio.wait(list(self._upstream_tasks), timeout=5)
        if self._expiry is not None:
            self._expiry.cancel()
            await asyncio.gather(self._expiry, return_exceptions=True)
        self.hub.end_parked()  # XEP-0198: waiting sessions end; their unacked messages are stored offline
        self.store.close()
        self.accounts.close()
        if self.rooms is not None:
            self.rooms.close()
        if self.pep_store is not None:
            self.pep_store.close()
        if self.blocklists is not None:
            self.blocklists.close()


class _Handle:
    """What an extension sees of a running server (boshcm/extensions.py ServerHandle), and no more."""

    def __init__(self, server: Server) -> None:
        config = server.config
        self.domain = config.server.domain
        self.muc_domain = config.muc_domain if server.muc is not None else None
        self.data_path = config.data_path
        self.c2s_address: tuple[str, int] | None = None
        if config.c2s.enabled and not server.offboard:
            host = server.c2s.host
            self.c2s_address = ("127.0.0.1" if host in ("0.0.0.0", "::") else host, server.c2s.port)
        self.ca_file = None if config.c2s.tls_cert else config.data_path / SELF_SIGNED_CERT
        self._accounts = server.accounts
        self._service_accounts = server.service_accounts

    def ensure_account(self, username: str, password: str) -> None:
        if username not in self._service_accounts:
            raise ValueError(f"{username!r} is not a service account of any extension")
        if not self._accounts.exists(username):
            self._accounts.add(username, password)
        elif not self._accounts.verify_password(username, password):
            self._accounts.set_password(username, password)


async def serve(config: Config) -> None:
    """Run until SIGINT/SIGTERM."""
    server = Server(config)
    try:
        await server.start()
    except BaseException:
        await server.stop()  # a fault late in start-up (the quiz bot's store) must not leave listeners behind
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log.info("boshcm serving %s (data in %s)", config.server.domain, config.data_path.resolve())
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await server.stop()


def _route_target(route: str | None) -> str | None:
    """XEP-0124 §7.1: route is 'xmpp:host:port'; returns 'host:port'."""
    if route is None:
        return None
    return route.removeprefix("xmpp:")


def delete_user_data(config: Config, username: str) -> None:
    """Roster, offline messages, PEP nodes and the blocklist go with the account."""
    store = SqliteStore(config.data_path / STORE_FILE)
    try:
        store.delete_user(username)
    finally:
        store.close()
    pep = SqlitePepStore(config.data_path / PEP_FILE)
    try:
        pep.delete_user(username)
    finally:
        pep.close()
    blocklists = SqliteBlocklistStore(config.data_path / BLOCKLIST_FILE)
    try:
        blocklists.delete_user(username)
    finally:
        blocklists.close()
