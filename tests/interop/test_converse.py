"""Converse.js 14 (npm dist) in headless Chromium against the embedded server (issue 18): an avatar and a
room bookmark set in one browser (WebSocket) show in a second session of the same account (another browser
context, over BOSH), as Converse itself sees them, and older protocols read the same data through the
server's conversions.

What each check depends on (so the test fails when one breaks):
- the avatar in session 2: XEP-0054 vCard storage (Converse sets and reads avatars only as vCard PHOTO);
- the bookmark in session 2: XEP-0402 in PEP, which Converse uses only because the account advertises
  `urn:xmpp:bookmarks:1#compat` and `pubsub#publish-options` (without them it falls back to XEP-0048 in the
  PEP node `storage:bookmarks`, or keeps no bookmarks at all);
- slixmpp reading XEP-0084 metadata and data: the XEP-0398 vCard-to-PEP conversion;
- slixmpp reading XEP-0048 in private storage (XEP-0049, as Gajim does): the XEP-0411 conversion.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import BrowserContext, ConsoleMessage, Page, Route, expect

from boshcm.app import Server
from tests.integration.test_profile import client
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient
from tests.interop.browser import chromium, page_server

CONVERSE_PAGE = Path(__file__).parent / "js" / "converse.html"
ROOM = "quiz@conference.localhost"
TIMEOUT_SECONDS_BROWSER = 10.0


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real, small, single-colour PNG: Converse shows it as the avatar."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


AVATAR = png(24, 24, (200, 40, 90))

# Session 1: sets the avatar through Converse's vCard API and bookmarks the room through its bookmarks API
# (autojoin: Converse enters it), then waits for the server's answer to the bookmark publish (Converse sends
# it without awaiting it).
SET_AVATAR_AND_BOOKMARK = """
async ([image, room]) => {
  const { api, state, session } = window._converse;
  await Promise.all([api.waitUntil("VCardsInitialized"), api.waitUntil("bookmarksInitialized")]);
  const jid = session.get("bare_jid");
  await api.vcard.set(jid, { fn: "Alice", nickname: "alice", image, image_type: "image/png" });
  await api.bookmarks.set({ jid: room, name: "Quiz", autojoin: true, nick: "alice" });
  await window.enteredRoom(room);
  await Promise.all(window.publishes);
  const bookmark = await api.bookmarks.get(room);
  return {
    xep0402: await api.disco.supports("urn:xmpp:bookmarks:1#compat", jid),
    hash: state.profile.vcard.get("image_hash"),
    name: bookmark.get("name"),
  };
}
"""

# Session 2: what Converse itself knows once it has logged in: its own vCard, its bookmarks, and the room it
# entered because the bookmark says autojoin.
READ_PROFILE_AND_BOOKMARKS = """
async (room) => {
  const { api, state } = window._converse;
  await Promise.all([api.waitUntil("VCardsInitialized"), api.waitUntil("bookmarksInitialized")]);
  const vcard = state.profile.vcard;
  if (!vcard.get("vcard_updated")) await new Promise((resolve) => vcard.once("change:vcard_updated", resolve));
  const muc = await window.enteredRoom(room);
  const bookmark = await api.bookmarks.get(room);
  return {
    image: vcard.get("image"), image_type: vcard.get("image_type"), image_hash: vcard.get("image_hash"),
    fullname: vcard.get("fullname"),
    bookmark: bookmark && { jid: bookmark.get("jid"), name: bookmark.get("name"),
                            autojoin: bookmark.get("autojoin"), nick: bookmark.get("nick") },
    entered: { jid: muc.get("jid"), nick: muc.get("nick"), name: muc.getDisplayName() },
  };
}
"""


def settings(server: Server, resource: str, transport: str) -> dict[str, Any]:
    assert server.http is not None
    endpoint = ({"websocket_url": f"ws://127.0.0.1:{server.http.port}/xmpp-websocket"} if transport == "websocket"
                else {"bosh_service_url": f"http://127.0.0.1:{server.http.port}/http-bind"})
    return {
        **endpoint,
        "jid": f"alice@localhost/{resource}", "password": "alice-secret",
        "authentication": "login", "auto_login": True,
        "discover_connection_methods": False,  # else it asks https://localhost/.well-known/host-meta
        "view_mode": "fullscreen", "i18n": "en", "loglevel": "warn", "play_sounds": False,
        "assets_path": "/node_modules/converse.js/dist/",
        "blacklisted_plugins": ["converse-omemo"],  # its WebAssembly is not needed here
    }


@dataclass(slots=True)
class Converse:
    """One logged-in Converse in a browser context of its own (its own storage: another device)."""

    page: Page
    logged: list[str] = field(default_factory=list)  # its warnings and errors, for failure messages

    async def run(self, script: str, argument: Any) -> Any:
        """page.evaluate with a deadline: a promise Converse never settles fails the test, naming the step."""
        try:
            return await asyncio.wait_for(self.page.evaluate(script, argument), TIMEOUT_SECONDS_BROWSER)
        except TimeoutError:
            step = script.strip().splitlines()[0]
            raise AssertionError(f"Converse did not finish {step!r}; it logged: {self.logged}") from None


async def converse_session(context: BrowserContext, origin: str, server: Server, resource: str, transport: str,
                           offsite: list[str]) -> Converse:
    assert server.http is not None
    endpoint = f"http://127.0.0.1:{server.http.port}/"

    async def loopback_only(route: Route) -> None:
        # The login form shows sponsor logos from conversejs.org: no network here, and none needed.
        if route.request.url.startswith((origin, endpoint)):
            await route.continue_()
        else:
            offsite.append(route.request.url)
            await route.abort()

    await context.route("**/*", loopback_only)
    converse = Converse(page=await context.new_page())

    def keep(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            converse.logged.append(f"{message.type}: {message.text}")

    converse.page.on("console", keep)
    converse.page.set_default_timeout(TIMEOUT_SECONDS_BROWSER * 1000)
    await converse.page.goto(f"{origin}/converse.html")  # another origin than the XMPP endpoints
    await converse.run("(settings) => window.startConverse(settings)", settings(server, resource, transport))
    return converse


@pytest.mark.interop
async def test_converse_avatar_and_bookmark_follow_the_account_to_a_second_session(
        quiz_server: Server, tmp_path: Path) -> None:
    # The quiz room exists as the bot configured it (name "Quiz"): the player bookmarks it.
    server = quiz_server
    server.accounts.add("alice", "alice-secret")

    async def converse_html(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(CONVERSE_PAGE)

    offsite: list[str] = []
    digest = hashlib.sha1(AVATAR).hexdigest()
    async with chromium(tmp_path) as browser, page_server([web.get("/converse.html", converse_html)]) as origin:
        first = await converse_session(await browser.new_context(), origin, server, "desk", "websocket", offsite)
        done = await first.run(SET_AVATAR_AND_BOOKMARK, [base64.b64encode(AVATAR).decode(), ROOM])
        assert done == {"xep0402": True, "hash": digest, "name": "Quiz"}

        second = await converse_session(await browser.new_context(), origin, server, "phone", "bosh", offsite)
        seen = await second.run(READ_PROFILE_AND_BOOKMARKS, ROOM)
        assert base64.b64decode(seen["image"]) == AVATAR
        assert seen["image_type"] == "image/png" and seen["image_hash"] == digest
        assert seen["fullname"] == "Alice"
        assert seen["bookmark"] == {"jid": ROOM, "name": "Quiz", "autojoin": True, "nick": "alice"}
        assert seen["entered"] == {"jid": ROOM, "nick": "alice", "name": "Quiz"}
        # ... and shows them: the picture as its own avatar, the bookmarked room open in the list of groupchats.
        avatar = second.page.locator("converse-user-profile converse-avatar image")
        await expect(avatar).to_have_attribute("href", f"data:image/png;base64,{base64.b64encode(AVATAR).decode()}")
        await expect(second.page.locator("converse-rooms-list").get_by_text("Quiz", exact=True)).to_be_visible()
    # Converse needs nothing from the network; its login form only tries to show sponsor logos.
    assert all(url.startswith("https://conversejs.org/media/") for url in offsite), offsite

    # Older clients read the same data through the server's conversions.
    clients: list[XmppClient] = []
    try:
        tablet = await client(server, clients, "alice@localhost/tablet", "alice-secret")
        await read_with_slixmpp(tablet, digest)
    finally:
        await asyncio.gather(*(made.close() for made in clients))


async def read_with_slixmpp(tablet: XmppClient, digest: str) -> None:
    pubsub = tablet.xmpp.plugin["xep_0060"]
    # XEP-0402: the bookmark Converse published, as any XEP-0402 client reads it.
    items = await pubsub.get_items("alice@localhost", "urn:xmpp:bookmarks:1", timeout=TIMEOUT_SECONDS)
    item = items["pubsub"]["items"]["item"]
    conference = item["payload"]
    assert item["id"] == ROOM and conference.get("name") == "Quiz" and conference.get("autojoin") == "true"
    assert conference.findtext("{urn:xmpp:bookmarks:1}nick") == "alice"

    # XEP-0398: Converse's vCard PHOTO is the XEP-0084 avatar (metadata and data).
    metadata = await pubsub.get_items("alice@localhost", "urn:xmpp:avatar:metadata", timeout=TIMEOUT_SECONDS)
    info = metadata["pubsub"]["items"]["item"]["payload"].find("{urn:xmpp:avatar:metadata}info")
    assert info.get("id") == digest and info.get("bytes") == str(len(AVATAR)) and info.get("type") == "image/png"
    data = await tablet.xmpp.plugin["xep_0084"].retrieve_avatar("alice@localhost", digest, timeout=TIMEOUT_SECONDS)
    assert base64.b64decode(data["pubsub"]["items"]["item"]["payload"].text) == AVATAR

    # XEP-0411: a XEP-0048 client using private storage (XEP-0049, as Gajim does) sees the same bookmark.
    stored = await tablet.xmpp.plugin["xep_0048"].get_bookmarks(method="xep_0049", timeout=TIMEOUT_SECONDS)
    rooms = {str(conf["jid"]): conf for conf in stored["private"]["bookmarks"]["conferences"]}
    assert set(rooms) == {ROOM}
    assert rooms[ROOM]["name"] == "Quiz" and rooms[ROOM]["autojoin"] is True and rooms[ROOM]["nick"] == "alice"
