"""The HTTP listener: one aiohttp application for BOSH, WebSocket and the quiz page.

Also the HTTP-level defences every route shares: CORS answers and origin checks, the client's real address
and scheme behind trusted reverse proxies, and the idle timeout that ends slow or silent connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from aiohttp import web
from multidict import CIMultiDictProxy

from boshcm.listeners import LISTEN_BACKLOG

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CORS_MAX_AGE_SECONDS = 86_400


class Cors:
    """Pages live on other origins than the BOSH URL (docs/protocol.md, "Interoperability notes"): answer
    preflights, tag every response."""

    def __init__(self, allowed_origins: Sequence[str]) -> None:
        self._any = "*" in allowed_origins
        self._allowed = frozenset(allowed_origins)

    def allow_origin(self, origin: str | None) -> str | None:
        if origin is None:
            return None
        if self._any:
            return "*"
        return origin if origin in self._allowed else None

    def allows(self, request: web.Request) -> bool:
        return self.allows_origin(request.headers.get("Origin"), f"{request.scheme}://{request.host}")

    def allows_origin(self, origin: str | None, own_origin: str) -> bool:
        """May a browser page from this origin use the endpoint? Non-browser clients send no Origin and are
        allowed; a page served by boshcm itself (`own_origin`, the request's scheme://host) always is."""
        if origin is None or origin == own_origin:
            return True
        return self.allow_origin(origin) is not None

    def headers(self, request: web.Request) -> dict[str, str]:
        return self.headers_for(request.headers.get("Origin"))

    def headers_for(self, origin: str | None) -> dict[str, str]:
        """The CORS headers of every answer to a request from this Origin (none without one)."""
        allowed = self.allow_origin(origin)
        if allowed is None:
            return {}
        headers = {"Access-Control-Allow-Origin": allowed}
        if allowed != "*":
            headers["Vary"] = "Origin"
        return headers

    async def preflight(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=200, headers=self.preflight_headers(request.headers.get("Origin")))

    def preflight_headers(self, origin: str | None) -> dict[str, str]:
        headers = self.headers_for(origin)
        if headers:
            headers |= {"Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                        "Access-Control-Allow-Headers": "Content-Type",
                        "Access-Control-Max-Age": str(CORS_MAX_AGE_SECONDS)}
        return headers


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The client's address and scheme as reported by reverse proxies we trust, and only by those.

    Behind nginx every peer is the proxy; the client is the rightmost address in `Forwarded` (RFC 7239) or
    `X-Forwarded-For` that is not itself a trusted proxy. A peer that is not a trusted proxy is the client,
    whatever headers it sends (they are forgeable).
    """

    def __init__(self, networks: Sequence[str]) -> None:
        self._networks: tuple[IpNetwork, ...] = tuple(ipaddress.ip_network(net, strict=False) for net in networks)

    @property
    def configured(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: str | None) -> bool:
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def client(self, peer: str | None, headers: CIMultiDictProxy[str]) -> tuple[str | None, str | None]:
        """(client address, scheme) from the forwarding headers, or (None, None) to keep the peer's own."""
        if not self._networks or not self.trusts(peer):
            return None, None
        hops, schemes = _forwarded_hops(headers)
        client = None
        for hop in reversed(hops):
            client = hop
            if not self.trusts(hop):
                break
        scheme = schemes[-1] if schemes else None
        return client, scheme if scheme in ("http", "https") else None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        remote, scheme = self.client(request.remote, request.headers)
        if remote is not None or scheme is not None:
            # One clone: a clone does not inherit an earlier clone's remote.
            request = request.clone(remote=remote or request.remote or "", scheme=scheme or request.scheme)
        return await handler(request)


def _forwarded_hops(headers: CIMultiDictProxy[str]) -> tuple[list[str], list[str]]:
    """Client addresses and schemes, nearest proxy last. RFC 7239 `Forwarded` wins over X-Forwarded-*."""
    if forwarded := headers.getall("Forwarded", []):
        hops: list[str] = []
        schemes: list[str] = []
        for element in ",".join(forwarded).split(","):
            for pair in element.split(";"):
                name, _, value = pair.strip().partition("=")
                value = value.strip().strip('"')
                if name.lower() == "for":
                    hops.append(_strip_port(value))
                elif name.lower() == "proto":
                    schemes.append(value.lower())
        return hops, schemes
    hops = [hop.strip() for hop in ",".join(headers.getall("X-Forwarded-For", [])).split(",") if hop.strip()]
    schemes = [s.strip().lower() for s in ",".join(headers.getall("X-Forwarded-Proto", [])).split(",") if s.strip()]
    return [_strip_port(hop) for hop in hops], schemes


def _strip_port(hop: str) -> str:
    """'[2001:db8::1]:4711' -> '2001:db8::1', '192.0.2.1:4711' -> '192.0.2.1'."""
    if hop.startswith("["):
        return hop[1:].partition("]")[0]
    if hop.count(":") == 1:
        return hop.partition(":")[0]
    return hop


def bosh_paths(bosh_path: str) -> tuple[str, ...]:
    """The configured BOSH path and its alias."""
    return tuple(dict.fromkeys((bosh_path, BOSH_ALIAS)))


def build_app(*, cors: Cors, bosh_path: str, bosh_handler: Handler | None, websocket_path: str,
              websocket_handler: Handler | None, static_routes: Sequence[web.AbstractRouteDef] = (),
              proxies: TrustedProxies | None = None) -> web.Application:
    # Without trusted proxies there is nothing to rewrite: no middleware layer on every request.
    app = web.Application(middlewares=[proxies.middleware] if proxies is not None and proxies.configured else [])
    if bosh_handler is not None:
        for path in bosh_paths(bosh_path):
            app.router.add_route("POST", path, bosh_handler)
            app.router.add_route("OPTIONS", path, cors.preflight)
            app.router.add_route("GET", path, _bosh_page)
    if websocket_handler is not None:
        for path in dict.fromkeys((websocket_path, WEBSOCKET_ALIAS)):
            app.router.add_route("GET", path, websocket_handler)
    app.add_routes(static_routes)
    return app


BOSH_ALIAS = "/bosh"
WEBSOCKET_ALIAS = "/ws"
_BOSH_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>boshcm BOSH endpoint</title></head>
<body><h1>boshcm</h1><p>This is a BOSH endpoint (XEP-0124, XEP-0206). XMPP clients such as Strophe.js POST
<code>&lt;body/&gt;</code> requests here; browsers have nothing to see.</p></body></html>"""


async def _bosh_page(_request: web.Request) -> web.Response:
    return web.Response(text=_BOSH_PAGE, content_type="text/html")


class FrontLane(Protocol):
    """Takes the listener's connections first and gives aiohttp those it does not serve (bosh/lane.py)."""

    def with_fallback(self, fallback: Callable[[], asyncio.BaseProtocol]) -> Callable[[], asyncio.BaseProtocol]: ...

    def close_connections(self) -> None: ...


class HttpServer:
    def __init__(self, app: web.Application, *, host: str, port: int, idle_timeout_seconds: float = 15.0,
                 lane: FrontLane | None = None) -> None:
        # aiohttp's keep-alive timer runs while a connection waits for a complete request head, from the
        # connection's start or the previous response: it is also the header timeout that ends slowloris
        # connections. Cancelling handlers of departed clients lets a held BOSH request be noticed at once.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True,
                                     keepalive_timeout=idle_timeout_seconds)
        self._host, self._port = host, port
        self.lane = lane
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        await self._runner.setup()
        assert self._runner.server is not None
        factory = self._runner.server if self.lane is None else self.lane.with_fallback(self._runner.server)
        self._server = await asyncio.get_running_loop().create_server(
            factory, self._host, self._port, reuse_address=True, backlog=LISTEN_BACKLOG)
        log.info("http listening on %s:%d", self._host, self.port)

    async def stop_listening(self) -> None:
        """Close the listening socket, keep the connections (draining: their answers are still to be written)."""
        if self._server is not None:
            self._server.close()

    async def stop(self) -> None:
        await self.stop_listening()
        if self.lane is not None:
            self.lane.close_connections()
        await self._runner.cleanup()


def is_secure_request(request: web.Request) -> bool:
    return is_secure(request.scheme, request.remote or "")


def is_secure(scheme: str, address: str) -> bool:
    """TLS (here or at a trusted proxy), or loopback (browsers treat http://localhost as a secure origin)."""
    if scheme == "https":
        return True
    with contextlib.suppress(ValueError, TypeError):
        return ipaddress.ip_address(address).is_loopback
    return False
