"""The browser quiz page as aiohttp routes: the static files in quizbot/web/, Strophe.js from quizbot/web/vendor/
(copied there from the npm package by scripts/setup.sh, shipped in the wheel), and /quiz/config.json telling the
page where everything is.

Phones on slow links load the page once and then keep it: every file is read and gzip-compressed once, when the
routes are made, and served with an ETag. The page's references carry the content's hash (`?v=…`), so a
versioned URL is cached for a year without asking again, and a new release is new URLs; index.html and app.js
are revalidated on every load (a 304 when nothing changed)."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from boshcm.config import Config
    from quizbot.config import EmbeddedQuizbotConfig

WEB = Path(__file__).parent / "web"
STROPHE = WEB / "vendor" / "strophe.umd.min.js"
STROPHE_URL = "/quiz/lib/strophe.umd.min.js"
ASSETS = {"app.js": "text/javascript", "sm.js": "text/javascript", "style.css": "text/css",
          "favicon.svg": "image/svg+xml"}
REVALIDATE = "no-cache"  # keep it, but ask (If-None-Match) before using it
FOREVER = "public, max-age=31536000, immutable"  # a versioned URL never changes


@dataclass(frozen=True, slots=True, kw_only=True)
class Asset:
    """One file as served: the bytes, their gzip form, and the version that names this content."""

    body: bytes
    gzipped: bytes
    content_type: str
    version: str

    @classmethod
    def of(cls, body: bytes, content_type: str) -> Asset:
        # mtime=0: the same content always gives the same bytes (and ETag) on every start.
        return cls(body=body, gzipped=gzip.compress(body, compresslevel=9, mtime=0), content_type=content_type,
                   version=hashlib.sha256(body).hexdigest()[:16])


def accepts_gzip(request: web.Request) -> bool:
    # RFC 9110 §12.5.3: a coding named explicitly wins over "*"; "q=0" refuses it.
    weights: dict[str, float] = {}
    for part in request.headers.get("Accept-Encoding", "").split(","):
        coding, *params = (piece.strip() for piece in part.split(";"))
        weight = 1.0
        for param in params:
            if param.lower().startswith("q="):
                try:
                    weight = float(param[2:])
                except ValueError:
                    weight = 0.0
        weights[coding.lower()] = weight
    return weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0))) > 0


def respond(request: web.Request, asset: Asset, cache_control: str) -> web.Response:
    """The asset, gzipped when the client takes it; 304 when the client's copy is current (RFC 9110 §13.1.2)."""
    gzipped = accepts_gzip(request)
    # Each representation its own strong ETag: the compressed bytes are not the plain ones.
    etag = f'"{asset.version}-gz"' if gzipped else f'"{asset.version}"'
    headers = {"ETag": etag, "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
    wanted = {tag.strip().removeprefix("W/") for tag in request.headers.get("If-None-Match", "").split(",")}
    if etag in wanted or "*" in wanted:
        return web.Response(status=304, headers=headers)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=asset.gzipped if gzipped else asset.body, content_type=asset.content_type,
                        charset=None if asset.content_type.startswith("image/") else "utf-8", headers=headers)


def build_assets() -> tuple[Asset, dict[str, Asset], Asset | None]:
    """index.html, the assets by name, and Strophe.js (None until scripts/setup.sh copied it), with every
    reference in index.html and app.js pointing at the versioned URL of what it loads."""
    assets: dict[str, Asset] = {}
    sm = Asset.of((WEB / "sm.js").read_bytes(), ASSETS["sm.js"])
    assets["sm.js"] = sm
    app = (WEB / "app.js").read_text(encoding="utf-8")
    assets["app.js"] = Asset.of(app.replace('from "./sm.js"', f'from "./sm.js?v={sm.version}"').encode(),
                                ASSETS["app.js"])
    for name in ("style.css", "favicon.svg"):
        assets[name] = Asset.of((WEB / name).read_bytes(), ASSETS[name])
    strophe = Asset.of(STROPHE.read_bytes(), "text/javascript") if STROPHE.exists() else None
    html = (WEB / "index.html").read_text(encoding="utf-8")
    for name, asset in assets.items():
        # sm.js is loaded by app.js; app.js keeps its plain URL (revalidated on each load, a 304 when unchanged)
        # because deployment checks name it (tests/packaging/test_wheel.py).
        if name not in {"sm.js", "app.js"}:
            html = html.replace(f'"/quiz/{name}"', f'"/quiz/{name}?v={asset.version}"')
    if strophe is not None:
        html = html.replace(f'"{STROPHE_URL}"', f'"{STROPHE_URL}?v={strophe.version}"')
    return Asset.of(html.encode(), "text/html"), assets, strophe


def cache_control(request: web.Request, asset: Asset) -> str:
    return FOREVER if request.query.get("v") == asset.version else REVALIDATE


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
    index_html, assets, strophe_js = build_assets()

    async def index(request: web.Request) -> web.Response:
        return respond(request, index_html, REVALIDATE)

    async def settings_json(request: web.Request) -> web.Response:
        # The WebSocket URL needs the scheme and host the page was loaded from.
        scheme = "wss" if request.secure else "ws"
        return web.json_response({**settings, "websocket": f"{scheme}://{request.host}{settings['websocket']}"},
                                 headers={"Cache-Control": "no-store"})

    async def strophe(request: web.Request) -> web.Response:
        if strophe_js is None:
            return web.Response(status=503, text="Strophe.js is not installed: run scripts/setup.sh, which copies "
                                                 "it from node_modules/ into quizbot/web/vendor/")
        return respond(request, strophe_js, cache_control(request, strophe_js))

    async def asset(request: web.Request) -> web.Response:
        found = assets.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        return respond(request, found, cache_control(request, found))

    return [web.get("/", index), web.get("/quiz/config.json", settings_json),
            web.get(STROPHE_URL, strophe), web.get("/quiz/{name}", asset)]
