"""The browser quiz page as aiohttp routes: the static files in quizbot/web/, Strophe.js from quizbot/web/vendor/
(copied there from the npm package by scripts/setup.sh, shipped in the wheel), and /quiz/config.json telling the
page where everything is.

Phones on slow links load the page once and then keep it: every file is read and gzip-compressed once, when the
routes are made, and served with an ETag. The page's references carry the content's hash (`?v=…`), so a
versioned URL is cached for a year without asking again, and a new release is new URLs; index.html and app.js
are revalidated on every load (a 304 when nothing changed).

The page's JavaScript is ES modules (quizbot/web/*.js, app.js the entry): each module's imports of its siblings
are rewritten to their versioned URLs (a module's version covers the versions it imports, so a change anywhere
below renames everything above it), and index.html gets a `<link rel="modulepreload">` for every module app.js
imports, directly or not, so the browser fetches them all at once instead of one import level at a time. A module
loaded only on demand (`import("./host.js")`, the projector's host view) is versioned the same way but not
preloaded: a player's phone never fetches it, nor the QR code generator (qrcode-generator from npm, vendored like
Strophe.js) that the host view imports from /quiz/lib/qrcode.mjs."""

from __future__ import annotations

import functools
import gzip
import hashlib
import re
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
QRCODE = WEB / "vendor" / "qrcode.mjs"
QRCODE_URL = "/quiz/lib/qrcode.mjs"
ENTRY = "app.js"
OTHER_ASSETS = {"style.css": "text/css", "favicon.svg": "image/svg+xml"}
# `from "./sm.js"` / `import "./x.js"`: a sibling module (the page's modules name each other only this way);
# `import("./host.js")` loads one on demand.
IMPORT = re.compile(r'(\bfrom\s*|\bimport\s*|\bimport\(\s*)"\./([A-Za-z0-9_-]+\.js)"')
DYNAMIC = "import("
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
        return cls(body=body, gzipped=_gzipped(body), content_type=content_type,
                   version=hashlib.sha256(body).hexdigest()[:16])


@functools.lru_cache(maxsize=64)
def _gzipped(body: bytes) -> bytes:
    # mtime=0: the same content always gives the same bytes (and ETag) on every start. Cached: each server a process
    # starts (a test run starts hundreds) compresses the same files, Strophe.js among them, at the highest level.
    return gzip.compress(body, compresslevel=9, mtime=0)


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


def module_imports(source: str, *, dynamic: bool = True) -> list[str]:
    """The sibling modules a module imports, in order of appearance; without `dynamic`, only those it needs before
    it runs (not the ones it loads on demand with `import("./x.js")`)."""
    return list(dict.fromkeys(match.group(2) for match in IMPORT.finditer(source)
                              if dynamic or not match.group(1).startswith(DYNAMIC)))


def without_comment_lines(source: str) -> str:
    """The module with each line that is only a `//` comment left empty: a quarter less on the wire, gzipped, and
    the same line numbers as the source in a browser's stack traces. (The modules have no multi-line strings or
    template literals, where such a line would be text; tests/unit/test_quiz_page_assets.py checks.)"""
    return "\n".join("" if line.lstrip().startswith("//") else line for line in source.split("\n"))


def build_modules(sources: dict[str, str]) -> dict[str, Asset]:
    """Every module served, its imports pointing at the versioned URLs of what they import. The imports must form
    no cycle (a version is a hash over the versions below it) and name only modules there are."""
    built: dict[str, Asset] = {}

    def build(name: str, path: tuple[str, ...]) -> Asset:
        if name in built:
            return built[name]
        if name in path:
            raise ValueError(f"quiz page modules import each other in a cycle: {' -> '.join((*path, name))}")
        if name not in sources:
            raise ValueError(f"quiz page module {path[-1]} imports {name}, which is not in quizbot/web/")
        versions = {imported: build(imported, (*path, name)).version for imported in module_imports(sources[name])}
        text = IMPORT.sub(lambda m: f'{m.group(1)}"./{m.group(2)}?v={versions[m.group(2)]}"',
                          without_comment_lines(sources[name]))
        built[name] = Asset.of(text.encode(), "text/javascript")
        return built[name]

    for name in sorted(sources):
        build(name, ())
    return built


def imported_by(name: str, sources: dict[str, str]) -> list[str]:
    """The modules `name` needs before it runs (static imports, directly or not), each once, nearest first."""
    found: list[str] = []
    queue = [name]
    while queue:
        for imported in module_imports(sources[queue.pop(0)], dynamic=False):
            if imported not in found and imported != name:
                found.append(imported)
                queue.append(imported)
    return found


def build_assets() -> tuple[Asset, dict[str, Asset], Asset | None]:
    """index.html, the assets by name, and Strophe.js (None until scripts/setup.sh copied it), with every
    reference in index.html and the modules pointing at the versioned URL of what it loads. The vendored QR code
    generator, when there, is the asset "lib/qrcode.mjs", and the modules name it by its versioned URL."""
    sources = {path.name: path.read_text(encoding="utf-8") for path in sorted(WEB.glob("*.js"))}
    qrcode = Asset.of(QRCODE.read_bytes(), "text/javascript") if QRCODE.exists() else None
    if qrcode is not None:
        sources = {name: text.replace(f'"{QRCODE_URL}"', f'"{QRCODE_URL}?v={qrcode.version}"')
                   for name, text in sources.items()}
    assets: dict[str, Asset] = build_modules(sources)
    if qrcode is not None:
        assets["lib/qrcode.mjs"] = qrcode
    for name, content_type in OTHER_ASSETS.items():
        assets[name] = Asset.of((WEB / name).read_bytes(), content_type)
    strophe = Asset.of(STROPHE.read_bytes(), "text/javascript") if STROPHE.exists() else None
    html = (WEB / "index.html").read_text(encoding="utf-8")
    for name in OTHER_ASSETS:
        html = html.replace(f'"/quiz/{name}"', f'"/quiz/{name}?v={assets[name].version}"')
    if strophe is not None:
        html = html.replace(f'"{STROPHE_URL}"', f'"{STROPHE_URL}?v={strophe.version}"')
    # app.js keeps its plain URL (revalidated on each load, a 304 when unchanged) because deployment checks name
    # it (tests/packaging/test_wheel.py); the modules it loads are preloaded by their versioned URLs, the very
    # URLs the imports name (a module is fetched and run once per URL).
    entry = f'<script type="module" src="/quiz/{ENTRY}"></script>'
    if entry not in html:
        raise ValueError(f"quizbot/web/index.html does not load {ENTRY} as {entry}")
    preloads = "".join(f'\n<link rel="modulepreload" href="/quiz/{name}?v={assets[name].version}">'
                       for name in imported_by(ENTRY, sources))
    html = html.replace(entry, entry + preloads)
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

    async def qrcode(request: web.Request) -> web.Response:
        found = assets.get("lib/qrcode.mjs")
        if found is None:
            return web.Response(status=503, text="the QR code generator is not installed: run scripts/setup.sh, "
                                                 "which copies it from node_modules/ into quizbot/web/vendor/")
        return respond(request, found, cache_control(request, found))

    # /host is the page in its projector mode (the host view: question, countdown, join PIN and QR code).
    return [web.get("/", index), web.get("/host", index), web.get("/quiz/config.json", settings_json),
            web.get(STROPHE_URL, strophe), web.get(QRCODE_URL, qrcode), web.get("/quiz/{name}", asset)]
