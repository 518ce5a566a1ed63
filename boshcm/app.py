"""Composition root: builds the stores, machines and adapters from a Config, runs them, shuts them down."""

from __future__ import annotations

import asyncio
import logging
import ssl
from contextlib import closing
from functools import cached_property
from pathlib import Path
from typing import TypeVar

from boshcm import __version__
from boshcm.address_slots import AddressSlots
from boshcm.bosh.http import RESPONSE_GRACE_SECONDS, BoshConnection, BoshEndpoint
from boshcm.bosh.lane import BoshLane
from boshcm.bosh.nodes import INTERNAL_IDLE_TIMEOUT_SECONDS, InternalEndpoint, NodePeers
from boshcm.bosh.onboard import OnboardLink
from boshcm.bosh.session import BoshLimits, OpenUpstream
from boshcm.clock import Clock, SystemClock
from boshcm.cluster import ClusterError, UpstreamServers, parse_nodes, read_secret
from boshcm.config import Config, ConfigError, parse_host_port
from boshcm.database import StorageError
from boshcm.errors import BoshCondition
from boshcm.extensions import Extension
from boshcm.jid import JID
from boshcm.metrics import CollectorHold, Metrics, Reading, tune_gc
from boshcm.shutdown import StopSignals
from boshcm.tls import SELF_SIGNED_CERT, ensure_self_signed, server_context
from boshcm.upload import UploadHttp, UploadLimits, UploadService, UploadSlots, UploadStore
from boshcm.upstream.link import UpstreamListener
from boshcm.upstream.offboard_link import OffboardLink, upstream_tls_context
from boshcm.web import Cors, HttpServer, TrustedProxies, bosh_paths, build_app
from boshcm.websocket import WebSocketEndpoint
from boshcm.xml.parser import StreamParser
from boshcm.xmpp.accounts import AccountStore
from boshcm.xmpp.blocking import Blocklists, SqliteBlocklistStore
from boshcm.xmpp.c2s import C2sConnection, C2sServer
from boshcm.xmpp.client_session import ClientSession, SessionSettings, TlsPolicy, Transport
from boshcm.xmpp.hub import Hub
from boshcm.xmpp.mam import ArchiveService, MamLimits, SqliteArchiveStore
from boshcm.xmpp.muc.config import RoomConfig
from boshcm.xmpp.muc.service import MucRegistry, MucService, RoomStore
from boshcm.xmpp.private_storage import PrivateStorage, SqlitePrivateStore
from boshcm.xmpp.pubsub import PepLimits, SqlitePepStore
from boshcm.xmpp.registration import Registrations, RegistrationSettings
from boshcm.xmpp.resumption import ResumptionTable
from boshcm.xmpp.router import Router
from boshcm.xmpp.session_adapter import key_derivation_pool
from boshcm.xmpp.storage import SqliteStore
from boshcm.xmpp.stream_management import SmLimits
from boshcm.xmpp.throttle import AuthThrottle, ThrottleSettings
from boshcm.xmpp.vcard import SqliteVCardStore, VCards

log = logging.getLogger(__name__)

E = TypeVar("E")

ACCOUNTS_FILE = "accounts.sqlite"
STORE_FILE = "server.sqlite"
ROOMS_FILE = "rooms.sqlite"
PEP_FILE = "pep.sqlite"
BLOCKLIST_FILE = "blocklist.sqlite"
MAM_FILE = "mam.sqlite"
ARCHIVE_PURGE_SECONDS = 86_400.0
VCARD_FILE = "vcard.sqlite"
PRIVATE_FILE = "private.sqlite"
UPLOAD_FILE = "upload.sqlite"
UPLOAD_DIR = "upload"


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
        profile = config.profile
        self.vcard_store = SqliteVCardStore(data / VCARD_FILE) if profile.enabled else None
        self.private_store = SqlitePrivateStore(data / PRIVATE_FILE) if profile.enabled else None
        # XEP-0313: one store; account and room archives differ only in their caps.
        mam = config.mam
        self.archive_store = SqliteArchiveStore(data / MAM_FILE) if mam.enabled else None
        self.account_archive = None if self.archive_store is None else ArchiveService(
            store=self.archive_store, limits=MamLimits(retention_days=mam.retention_days, max_page=mam.max_page,
                                                       max_messages_per_archive=mam.max_messages_per_account,
                                                       max_bytes_per_archive=mam.max_bytes_per_account))
        self.room_archive = None if self.archive_store is None or not mam.rooms else ArchiveService(
            store=self.archive_store, limits=MamLimits(retention_days=mam.retention_days, max_page=mam.max_page,
                                                       max_messages_per_archive=mam.max_messages_per_room,
                                                       max_bytes_per_archive=mam.max_bytes_per_room))
        self._archive_purge: asyncio.Task[None] | None = None
        self.router = Router(domain=config.server.domain, users=self.users, store=self.store,
                             wall_clock=self.clock.wall, server_name=config.server.name, server_version=__version__,
                             # XEP-0077 §8: in-band registration is offered (the stream feature says it too).
                             extra_features=("jabber:iq:register",) if config.registration.enabled else (),
                             pep_store=self.pep_store, pep_limits=PepLimits(
                                 max_nodes_per_account=pep.max_nodes_per_account,
                                 max_items_per_node=pep.max_items_per_node, max_item_bytes=pep.max_item_bytes,
                                 max_account_bytes=pep.max_account_bytes, max_caps_entries=pep.max_caps_entries,
                                 max_affiliations_per_node=pep.max_affiliations_per_node,
                                 max_subscriptions_per_node=pep.max_subscriptions_per_node),
                             blocking=None if self.blocklists is None else Blocklists(
                                 self.blocklists, max_items=config.blocking.max_items),
                             archive=self.account_archive,
                             vcards=None if self.vcard_store is None else VCards(
                                 self.vcard_store, pep_store=self.pep_store, max_bytes=profile.max_vcard_bytes),
                             private=None if self.private_store is None else PrivateStorage(
                                 self.private_store, pep_store=self.pep_store,
                                 max_bytes=profile.max_private_bytes, max_items=profile.max_private_items),
                             before_stanza=CollectorHold().hold if config.metrics.gc_hold_in_fanout else lambda: None)
        sm = config.stream_management
        # XEP-0198: one table of resumable sessions for every transport; the hub parks and expires them.
        self.resumptions: ResumptionTable[ClientSession] = ResumptionTable(
            max_detached=sm.max_detached_sessions, max_detached_guests=sm.max_detached_guest_sessions)
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
            registry = MucRegistry(
                domain=config.muc_domain, secret=self.rooms.secret(), rooms=self.rooms.load(),
                wall_clock=self.clock.wall, name=muc.name, lock_seconds=muc.lock_seconds,
                default_config=RoomConfig(history_length=muc.history_length),
                max_occupants=muc.max_occupants, max_rooms_per_account=muc.max_rooms_per_account,
                quota_exempt=frozenset(JID.make(name, domain) for name in exempt),
                is_guest=lambda jid: jid.domain == domain and jid.local in guests,
                max_pending_iqs=muc.max_pending_iqs, iq_timeout_seconds=muc.iq_timeout_seconds,
                max_affiliations=muc.max_affiliations_per_room, max_rooms=muc.max_rooms, archive=self.room_archive)
            self.muc = MucService(registry, self.rooms)
            self.router.add_component(config.muc_domain, self.muc, config.muc.name)
        # XEP-0363: a component for slot requests; the HTTP listener serves the files (needs http.enabled).
        self.upload_slots: UploadSlots | None = None
        self.upload_store: UploadStore | None = None
        self.upload_http: UploadHttp | None = None
        self._upload_expiry: asyncio.Task[None] | None = None
        if config.upload.enabled and config.http.enabled:
            upload = config.upload
            self.upload_slots = UploadSlots(UploadLimits(
                max_file_bytes=upload.max_file_bytes, quota_bytes=upload.quota_bytes,
                slot_seconds=upload.slot_seconds, file_seconds=upload.file_seconds,
                max_pending_slots=upload.max_pending_slots))
            self.upload_store = UploadStore(data / UPLOAD_FILE)
            domain, guests = config.server.domain, self.users.anonymous
            self.router.add_component(config.upload_domain, UploadService(
                domain=config.upload_domain, slots=self.upload_slots, base_url=self.upload_base_url,
                wall_clock=self.clock.wall, is_guest=lambda jid: jid.domain == domain and jid.local in guests,
                server_domain=domain), "HTTP File Upload")
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
        # XEP-0077 (docs/security.md "Registration"): shared by every session, so its limits count server-wide.
        reg = config.registration
        self.registrations = Registrations(RegistrationSettings(
            enabled=reg.enabled, per_address_per_hour=reg.per_address_per_hour,
            per_address_per_day=reg.per_address_per_day, global_per_hour=reg.global_per_hour,
            min_password_length=reg.min_password_length, max_tracked_addresses=reg.max_tracked_addresses),
            self.accounts, iterations=self.accounts.iterations)
        self.tls_context = self._tls_context(data) if c2s.starttls != "disabled" else None
        # SASL PLAIN's PBKDF2 runs here, off the event loop, for every transport (xmpp/session_adapter.py).
        self.key_pool = key_derivation_pool()
        # One count for every transport: an address holds at most this many sessions that have not logged in.
        self.unauthenticated = AddressSlots(per_address=c2s.max_unauthenticated_per_address)
        host, port = parse_host_port(c2s.listen, "c2s.listen")
        self.c2s = C2sServer(host=host, port=port, connection_factory=self._new_c2s_connection)
        # Off-board (like Punjab): BOSH sessions go to another XMPP server; the embedded one stays dark.
        self.offboard = bool(config.upstream.server)
        self._upstream_tasks: set[asyncio.Task[None]] = set()
        # Several upstream servers (an XMPP cluster's nodes): new sessions round robin, skipping one that is down.
        self.upstreams = UpstreamServers([parse_host_port(server, "upstream.server")
                                          for server in config.upstream.server] or [("", 0)],  # on-board: unused
                                         down_seconds=config.upstream.down_seconds)
        # Several boshcm nodes (docs/scaling.md): requests for another node's session are passed on to it.
        self.peers: NodePeers | None = None
        self.internal_http: HttpServer | None = None
        self._secret = b""
        if config.cluster.node:
            self._secret = _read_cluster_secret(config.cluster.secret_file)
        self.http: HttpServer | None = None
        self.bosh: BoshEndpoint | None = None
        self.websocket: WebSocketEndpoint | None = None
        self.metrics: Metrics | None = None          # [metrics]: docs/operations.md
        self.metrics_http: HttpServer | None = None
        self._lag_probe: asyncio.Task[None] | None = None

    def upload_base_url(self) -> str:
        """Where clients reach the HTTP listener: upload.public_url, or the listener's own address."""
        if self.config.upload.public_url:
            return self.config.upload.public_url
        host, port = parse_host_port(self.config.http.listen, "http.listen")
        if self.http is not None:
            port = self.http.port
        host = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
        return f"http://{host}:{port}"

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
                             guests=self.users.anonymous, resumptions=self.resumptions,
                             registrations=self.registrations)

    def max_stanza_bytes(self, authenticated: bool) -> int:
        """Strangers get a few KiB per element until they have authenticated (every transport)."""
        c2s = self.config.c2s
        return c2s.max_stanza_bytes if authenticated else c2s.max_stanza_bytes_before_auth

    def new_parser(self, authenticated: bool) -> StreamParser:
        return StreamParser(max_stanza_bytes=self.max_stanza_bytes(authenticated), max_depth=self.config.c2s.max_depth)

    def _new_c2s_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> C2sConnection:
        return C2sConnection(reader, writer, hub=self.hub, clock=self.clock, new_session=self.new_session,
                             new_parser=self.new_parser, tls_context=self.tls_context,
                             unauthenticated=self.unauthenticated, key_pool=self.key_pool)

    def _new_link(self, connection: BoshConnection, order: OpenUpstream, remote: str) -> OnboardLink | OffboardLink:
        if not self.offboard:
            return OnboardLink(connection, to=order.to, lang=order.lang, version=order.version,
                               secure=connection.secure and order.secure, remote=remote, hub=self.hub,
                               clock=self.clock, new_session=self.new_session, key_pool=self.key_pool)
        return self.offboard_link(connection, to=order.to, lang=order.lang, route=order.route)

    @cached_property
    def _upstream_tls(self) -> ssl.SSLContext:
        # Made on first use: loading the system's CA store costs tens of milliseconds, and an on-board server
        # that never opens an upstream link (routes, cluster relays) should not pay it at every start.
        return upstream_tls_context(verify=self.config.upstream.verify_tls)

    def _relay_link(self, listener: UpstreamListener, to: str, lang: str | None) -> OffboardLink:
        return self.offboard_link(listener, to=to, lang=lang)

    def offboard_link(self, listener: UpstreamListener, *, to: str, lang: str | None,
                      route: str | None = None) -> OffboardLink:
        upstream = self.config.upstream
        target = _route_target(route)
        servers = ([parse_host_port(target, "route")] if target is not None
                   else self.upstreams.candidates(self.clock.now()))
        return OffboardLink(listener, to=to, lang=lang, servers=servers,
                            starttls_required=upstream.starttls == "required", tls_context=self._upstream_tls,
                            tasks=self._upstream_tasks, max_stanza_bytes=self.config.c2s.max_stanza_bytes,
                            max_depth=self.config.c2s.max_depth, max_backlog_bytes=upstream.max_backlog_bytes,
                            connect_timeout_seconds=upstream.connect_timeout_seconds, report=self._upstream_report,
                            clock=self.clock)

    def _upstream_report(self, server: tuple[str, int], ok: bool) -> None:
        if server not in self.upstreams.servers:
            return  # a 'route' target: not one of the servers taken in turn
        if ok:
            self.upstreams.succeeded(server)
        else:
            self.upstreams.failed(server, self.clock.now())

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
        http, bosh, cluster = self.config.http, self.config.bosh, self.config.cluster
        cors = Cors(http.cors_origins)
        if cluster.node:
            # A held request passed on waits as long as the owner may hold it, and a little more.
            self.peers = NodePeers(me=cluster.node, nodes=parse_nodes(cluster.nodes), secret=self._secret,
                                   wall_clock=self.clock.wall,
                                   timeout_seconds=bosh.max_wait_seconds + RESPONSE_GRACE_SECONDS
                                   + cluster.forward_margin_seconds)
        self.bosh = BoshEndpoint(
            node=cluster.node, forwarder=self.peers,
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
            unauthenticated=self.unauthenticated, relay=self._relay_link if self.offboard else None,
            key_pool=self.key_pool)
        pages = [route for extension in self.extensions for route in extension.routes()]
        if self.upload_slots is not None and self.upload_store is not None:
            self.upload_http = UploadHttp(slots=self.upload_slots, store=self.upload_store,
                                          directory=self.config.data_path / UPLOAD_DIR, cors=cors,
                                          wall_clock=self.clock.wall)
            pages += self.upload_http.routes()
        proxies = TrustedProxies(http.trusted_proxies)
        app = build_app(cors=cors, bosh_path=http.bosh_path, bosh_handler=self.bosh.handle,
                        websocket_path=http.websocket_path, websocket_handler=self.websocket.handle,
                        static_routes=pages, proxies=proxies)
        lane = BoshLane(endpoint=self.bosh, paths=bosh_paths(http.bosh_path), cors=cors, proxies=proxies,
                        idle_timeout_seconds=http.idle_timeout_seconds,
                        body_read_timeout_seconds=bosh.body_read_timeout_seconds, max_body_bytes=bosh.max_body_bytes)
        host, port = parse_host_port(http.listen, "http.listen")
        return HttpServer(app, host=host, port=port, idle_timeout_seconds=http.idle_timeout_seconds, lane=lane)

    async def start(self) -> None:
        self._expiry = asyncio.get_running_loop().create_task(self.hub.run_expiry())
        if self.account_archive is not None:
            self._archive_purge = asyncio.get_running_loop().create_task(self._purge_archives(self.account_archive))
        if self.config.c2s.enabled and not self.offboard:
            await self.c2s.start()
        if self.config.http.enabled:
            self.http = self._build_http()
            await self.http.start()
            assert self.bosh is not None
            self.bosh.start()
            if self.config.cluster.node:
                await self._start_internal(self.bosh)
            if self.upload_http is not None:
                self._upload_expiry = asyncio.get_running_loop().create_task(self.upload_http.run_expiry())
        if self.config.metrics.enabled:
            await self._start_metrics()
        handle = _Handle(self)
        for extension in self.extensions:
            await extension.start(handle)
            self._started.append(extension)

    async def _start_internal(self, bosh: BoshEndpoint) -> None:
        """The listener for requests the other nodes pass on (never the public one)."""
        cluster = self.config.cluster
        internal = InternalEndpoint(bosh=bosh, me=cluster.node, nodes=parse_nodes(cluster.nodes),
                                    secret=self._secret, wall_clock=self.clock.wall,
                                    max_skew_seconds=cluster.max_skew_seconds)
        host, port = parse_host_port(cluster.listen, "cluster.listen")
        self.internal_http = HttpServer(internal.app(), host=host, port=port,
                                        idle_timeout_seconds=INTERNAL_IDLE_TIMEOUT_SECONDS)
        await self.internal_http.start()

    async def drain(self) -> None:
        """Stop taking clients and end the sessions there are so that they reconnect elsewhere (docs/scaling.md):
        close the public listener (a round-robin front then gets connection-refused and tries another node),
        answer held BOSH requests with `system-shutdown`, end WebSockets with a `system-shutdown` stream error,
        drop (not close) the off-board links, and wait up to `cluster.drain_timeout_seconds` for the answers to
        be written. The internal listener stays open meanwhile: requests passed on by other nodes are answered."""
        if self.http is None or self.bosh is None or self.bosh.draining:
            return
        await self.http.stop_listening()
        self.bosh.end_sessions()
        if self.websocket is not None:
            self.websocket.end_sessions()
        if not await self.bosh.wait_idle(self.config.cluster.drain_timeout_seconds):
            log.info("drain: HTTP requests still open after %ss", self.config.cluster.drain_timeout_seconds)

    async def stop(self) -> None:
        await self.drain()
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
        if self.internal_http is not None:
            await self.internal_http.stop()
        if self.peers is not None:
            await self.peers.close()
        for task in list(self._upstream_tasks):
            task.cancel()
        if self._upstream_tasks:
            await asyncio.wait(list(self._upstream_tasks), timeout=5)
        if self._expiry is not None:
            self._expiry.cancel()
            await asyncio.gather(self._expiry, return_exceptions=True)
        await self._stop_metrics()
        if self._upload_expiry is not None:
            self._upload_expiry.cancel()
            await asyncio.gather(self._upload_expiry, return_exceptions=True)
        if self._archive_purge is not None:
            self._archive_purge.cancel()
            await asyncio.gather(self._archive_purge, return_exceptions=True)
        self.hub.end_parked()  # XEP-0198: waiting sessions end; their unacked messages are stored offline
        self.key_pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()
        self.accounts.close()
        if self.rooms is not None:
            self.rooms.close()
        if self.pep_store is not None:
            self.pep_store.close()
        if self.blocklists is not None:
            self.blocklists.close()
        if self.archive_store is not None:
            self.archive_store.close()
        for closable in (self.vcard_store, self.private_store, self.upload_store):
            if closable is not None:
                closable.close()


    # --- metrics (boshcm/metrics.py): scrape-time readings of counts the server keeps anyway -------------

    async def _start_metrics(self) -> None:
        self.metrics = metrics = Metrics()
        for reading in self._readings():
            metrics.add(reading)
        metrics.watch_gc()
        self._lag_probe = asyncio.get_running_loop().create_task(
            metrics.probe_loop_lag(self.config.metrics.loop_lag_interval_seconds))
        host, port = parse_host_port(self.config.metrics.listen, "metrics.listen")
        self.metrics_http = HttpServer(metrics.app(), host=host, port=port)
        await self.metrics_http.start()

    async def _stop_metrics(self) -> None:
        if self.metrics_http is not None:
            await self.metrics_http.stop()
        if self._lag_probe is not None:
            self._lag_probe.cancel()
            await asyncio.gather(self._lag_probe, return_exceptions=True)
        if self.metrics is not None:
            self.metrics.unwatch_gc()

    def _readings(self) -> list[Reading]:
        sessions = "boshcm_sessions"
        sessions_doc = "Client sessions by transport (detached: XEP-0198, waiting for a resumption)"
        bosh, websocket = self.bosh, self.websocket
        readings = [
            Reading(name=sessions, documentation=sessions_doc, labels=(("transport", "c2s"),),
                    read=lambda: self.c2s.connection_count()),
            Reading(name=sessions, documentation=sessions_doc, labels=(("transport", "detached"),),
                    read=lambda: self.resumptions.detached_count),
            Reading(name="boshcm_stanzas_received", documentation="Stanzas from bound client sessions",
                    read=lambda: self.router.received, counter=True),
            Reading(name="boshcm_stanzas_delivered", documentation="Stanzas handed to client sessions",
                    read=lambda: self.hub.delivered, counter=True),
            Reading(name="boshcm_logins", documentation="Passwords evaluated and accepted (SASL)",
                    read=lambda: self.throttle.logins, counter=True),
            Reading(name="boshcm_login_failures", documentation="Passwords evaluated and refused (SASL)",
                    read=lambda: self.throttle.failures, counter=True),
        ]
        if bosh is not None:
            readings += [
                Reading(name=sessions, documentation=sessions_doc, labels=(("transport", "bosh"),),
                        read=lambda: len(bosh.registry)),
                Reading(name="boshcm_bosh_held_requests", documentation="BOSH HTTP requests held open",
                        read=bosh.held_requests),
                Reading(name="boshcm_bosh_queue_bytes", documentation="Bytes queued for BOSH clients",
                        read=lambda: sum(c.session.pending_bytes for c in bosh.registry.values()))]
        if websocket is not None:
            readings.append(Reading(name=sessions, documentation=sessions_doc, labels=(("transport", "websocket"),),
                                    read=lambda: len(websocket.connections)))
        if (muc := self.muc) is not None:
            readings += [
                Reading(name="boshcm_muc_rooms", documentation="Rooms in memory", read=lambda: len(muc.rooms())),
                Reading(name="boshcm_muc_occupants", documentation="Occupants of all rooms",
                        read=lambda: sum(room.occupant_count for room in muc.rooms()))]
        return readings


    async def _purge_archives(self, archive: ArchiveService) -> None:
        """XEP-0313 retention ([mam] retention_days): at start-up, then once a day (rooms share the store)."""
        while True:
            try:
                archive.purge_expired(self.clock.wall())
            except StorageError as exc:
                log.error("cannot delete expired archived messages (%s); trying again tomorrow", exc)
            await asyncio.sleep(ARCHIVE_PURGE_SECONDS)


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
        self._metrics = server.metrics

    def add_reading(self, reading: Reading) -> None:
        if self._metrics is not None:
            self._metrics.add(reading)

    def ensure_account(self, username: str, password: str) -> None:
        if username not in self._service_accounts:
            raise ValueError(f"{username!r} is not a service account of any extension")
        if not self._accounts.exists(username):
            self._accounts.add(username, password)
        elif not self._accounts.verify_password(username, password):
            self._accounts.set_password(username, password)


def run_server(config: Config) -> None:
    """`boshcm serve`: on uvloop where it is installed (`pip install boshcm[fast]`), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(config))
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(config))


async def serve(config: Config) -> None:
    """Run until SIGINT/SIGTERM."""
    loop = asyncio.get_running_loop()
    log.info("event loop: %s.%s", type(loop).__module__.partition(".")[0], type(loop).__name__)
    server = Server(config)
    with StopSignals() as stop:  # from here: a SIGTERM during start-up stops the server once it has started
        try:
            await server.start()
        except BaseException:
            await server.stop()  # a fault late in start-up (the quiz bot's store) must not leave listeners behind
            raise
        # No stop-the-world pauses: start-up's long-lived objects leave the collector's walk (docs/performance.md).
        tune_gc(threshold0=config.metrics.gc_threshold0, threshold1=config.metrics.gc_threshold1,
                threshold2=config.metrics.gc_threshold2, freeze=config.metrics.gc_freeze)
        log.info("boshcm serving %s (data in %s)", config.server.domain, config.data_path.resolve())
        try:
            await stop.wait()
        finally:
            log.info("shutting down")
            await server.stop()


def _read_cluster_secret(path: str) -> bytes:
    try:
        return read_secret(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError("cluster.secret_file", f"cannot read {path}: {exc.strerror}") from exc
    except ClusterError as exc:
        raise ConfigError("cluster.secret_file", str(exc)) from exc


def _route_target(route: str | None) -> str | None:
    """XEP-0124 §7.1: route is 'xmpp:host:port'; returns 'host:port'."""
    if route is None:
        return None
    return route.removeprefix("xmpp:")


def delete_user_data(config: Config, username: str) -> None:
    """Everything stored for an account goes with it: roster, offline messages, PEP nodes, blocklist, archive,
    vCard, private storage and uploaded files."""
    data, bare = config.data_path, str(JID.make(username, config.server.domain))
    with closing(SqliteStore(data / STORE_FILE)) as store:
        store.delete_user(username)
    with closing(SqlitePepStore(data / PEP_FILE)) as pep:
        pep.delete_user(username)
    with closing(SqliteBlocklistStore(data / BLOCKLIST_FILE)) as blocklists:
        blocklists.delete_user(username)
    with closing(SqliteArchiveStore(data / MAM_FILE)) as archive:
        archive.delete_archive(bare)
    with closing(SqliteVCardStore(data / VCARD_FILE)) as vcards:
        vcards.delete_user(username)
    with closing(SqlitePrivateStore(data / PRIVATE_FILE)) as private:
        private.delete_user(username)
    with closing(UploadStore(data / UPLOAD_FILE)) as uploads:
        for slot in [slot for slot in uploads.stored() if slot.owner == bare]:
            (data / UPLOAD_DIR / slot.id).unlink(missing_ok=True)
            uploads.remove(slot.id)
