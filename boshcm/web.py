"""The HTTP listener: one aiohttp application for BOSH, WebSocket and the quiz page, with CORS."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CORS_MAX_AGE_SECONDS = 86_400


class Cors:
    """INTEROP.md: pages live on other origins than the BOSH URL; answer preflights, tag every response."""

    def __init__(self, allowed_origins: Sequence[str]) -> None:
        self._any = "*" in allowed_origins
        self._allowed = frozenset(allowed_origins)

    def allow_origin(self, origin: str | None) -> str | None:
        if origin is None:
            return None
        if self._any:
            return "*"
        return origin if origin in self._allowed else None

    def headers(self, request: web.Request) -> dict[str, str]:
        allowed = self.allow_origin(request.headers.get("Origin"))
        if allowed is None:
            return {}
        headers = {"Access-Control-Allow-Origin": allowed}
        if allowed != "*":
            headers["Vary"] = "Origin"
        return headers

    async def preflight(self, request: web.Request) -> web.StreamResponse:
        headers = self.headers(request)
        if headers:
            headers |= {"Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                        "Access-Control-Allow-Headers": "Content-Type",
                        "Access-Control-Max-Age": str(CORS_MAX_AGE_SECONDS)}
        return web.Response(status=200, headers=headers)


def build_app(*, cors: Cors, bosh_path: str, bosh_handler: Handler | None, websocket_path: str,
              websocket_handler: Handler | None, static_routes: Sequence[web.AbstractRouteDef] = ()
              ) -> web.Application:
    app = web.Application()
    if bosh_handler is not None:
        for path in dict.fromkeys((bosh_path, BOSH_ALIAS)):
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


class HttpServer:
    def __init__(self, app: web.Application, *, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True)
        self._host, self._port = host, port
        self._site: web.TCPSite | None = None

    @property
    def port(self) -> int:
        assert self._site is not None and self._site._server is not None
        sockets = getattr(self._site._server, "sockets", None)
        assert sockets
        return int(sockets[0].getsockname()[1])

    async def start(self) -> None:
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self._host, self._port)
        await self._site.start()
        log.info("http listening on %s:%d", self._host, self.port)

    async def stop(self) -> None:
        await self._runner.cleanup()
