"""The browser quiz page as aiohttp routes: the static files in quizbot/web/, Strophe.js from quizbot/web/vendor/
(copied there from the npm package by scripts/setup.sh, shipped in the wheel), and /quiz/config.json telling the
page where everything is."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from boshcm.config import Config
    from quizbot.config import EmbeddedQuizbotConfig

WEB = Path(__file__).parent / "web"
STROPHE = WEB / "vendor" / "strophe.umd.min.js"


def page_routes(config: Config, quiz: EmbeddedQuizbotConfig) -> list[web.RouteDef]:
    settings = {
        "domain": config.server.domain,
        "muc": config.muc_domain,
        "bot": f"{quiz.account}@{config.server.domain}",
        "botNick": quiz.nick,
        "room": f"{quiz.room}@{config.muc_domain}" if quiz.room else None,
        "bosh": config.http.bosh_path,
        "websocket": config.http.websocket_path,
        "transport": config.http.quiz_page_transport,
        "guests": config.http.anonymous,
    }

    async def index(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB / "index.html")

    async def settings_json(request: web.Request) -> web.Response:
        # The WebSocket URL needs the scheme and host the page was loaded from.
        scheme = "wss" if request.secure else "ws"
        return web.json_response({**settings, "websocket": f"{scheme}://{request.host}{settings['websocket']}"})

    async def strophe(_request: web.Request) -> web.StreamResponse:
        if not STROPHE.exists():
            return web.Response(status=503, text="Strophe.js is not installed: run scripts/setup.sh, which copies "
                                                 "it from node_modules/ into quizbot/web/vendor/")
        return web.FileResponse(STROPHE)

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in {"app.js", "sm.js", "style.css"}:
            raise web.HTTPNotFound()
        return web.FileResponse(WEB / name)

    return [web.get("/", index), web.get("/quiz/config.json", settings_json),
            web.get("/quiz/lib/strophe.umd.min.js", strophe), web.get("/quiz/{name}", asset)]
