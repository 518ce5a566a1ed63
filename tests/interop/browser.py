"""Headless Debian Chromium driven by Playwright, and a page server on its own origin (../shared/INTEROP.md)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web
from playwright.async_api import Browser, async_playwright

ROOT = Path(__file__).parents[2]
NODE_MODULES = ROOT / "node_modules"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

BLANK_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script src="/node_modules/strophe.js/dist/strophe.umd.min.js"></script>
<script src="/node_modules/@xmpp/client/dist/xmpp.min.js"></script>
</head><body>test page</body></html>"""


@asynccontextmanager
async def chromium(tmp_path: Path) -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).exists(), "chromium is missing: scripts/test.sh installs it with apt-get"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def page_server(extra_routes: list[web.RouteDef] | None = None) -> AsyncIterator[str]:
    """Serves the blank test page and node_modules on a loopback port of its own; yields the base URL."""
    assert (NODE_MODULES / "strophe.js").exists(), "npm packages missing: scripts/test.sh runs npm install"

    async def blank(_request: web.Request) -> web.Response:
        return web.Response(text=BLANK_PAGE, content_type="text/html")

    app = web.Application()
    app.add_routes([web.get("/", blank), web.static("/node_modules", NODE_MODULES), *(extra_routes or [])])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
