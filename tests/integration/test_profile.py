"""Profiles on the embedded server with real slixmpp clients and a real HTTP socket: XEP-0054/0153/0084/0398
vCards and avatars, XEP-0049/0048/0402/0411 bookmarks, XEP-0363 HTTP upload and its attacks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0048.stanza import Bookmarks
from slixmpp.plugins.xep_0402.stanza import Conference

from boshcm.app import Server
from boshcm.jid import JID
from boshcm.tls import SELF_SIGNED_CERT
from boshcm.xmpp.storage import RosterItem
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient

PLUGINS = ("xep_0004", "xep_0060", "xep_0115", "xep_0163", "xep_0084", "xep_0223", "xep_0402", "xep_0054",
           "xep_0153", "xep_0049", "xep_0048", "xep_0363")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
UPLOAD = "{urn:xmpp:http:upload:0}"
BOOKMARKS = "urn:xmpp:bookmarks:1"


async def client(server: Server, clients: list[XmppClient], jid: str, password: str) -> XmppClient:
    made = XmppClient(jid, password, port=server.c2s.port, ca_cert=server.config.data_path / SELF_SIGNED_CERT,
                      plugins=PLUGINS)
    clients.append(made)
    await made.connect()
    return made


async def test_vcard_photo_becomes_the_pep_avatar_and_the_presence_photo_hash(
        server: Server, clients: list[XmppClient]) -> None:
    server.store.put_roster_item("alice", RosterItem(jid=JID.parse("bob@localhost"), subscription="both"))
    server.store.put_roster_item("bob", RosterItem(jid=JID.parse("alice@localhost"), subscription="both"))
    alice = await client(server, clients, "alice@localhost/old", "alice-secret")
    bob = await client(server, clients, "bob@localhost/web", "bob-secret")
    bob.xmpp.send_presence()
    vcard = alice.xmpp.plugin["xep_0054"].make_vcard()
    vcard["FN"] = "Alice"
    vcard["PHOTO"]["TYPE"] = "image/png"
    vcard["PHOTO"]["BINVAL"] = PNG
    await alice.xmpp.plugin["xep_0054"].publish_vcard(vcard, timeout=TIMEOUT_SECONDS)

    # XEP-0054: bob reads alice's vCard from her bare JID.
    got = await bob.xmpp.plugin["xep_0054"].get_vcard(JID_ALICE, timeout=TIMEOUT_SECONDS)
    assert got["vcard_temp"]["FN"] == "Alice"
    assert got["vcard_temp"]["PHOTO"]["BINVAL"] == PNG

    # XEP-0398: the same picture is alice's PEP avatar (XEP-0084 data and metadata).
    digest = hashlib.sha1(PNG).hexdigest()
    metadata = await bob.xmpp.plugin["xep_0060"].get_items(JID_ALICE, "urn:xmpp:avatar:metadata",
                                                          timeout=TIMEOUT_SECONDS)
    info = metadata["pubsub"]["items"]["item"]["payload"].find("{urn:xmpp:avatar:metadata}info")
    assert info.get("id") == digest and info.get("bytes") == str(len(PNG))
    data = await bob.xmpp.plugin["xep_0084"].retrieve_avatar(JID_ALICE, digest, timeout=TIMEOUT_SECONDS)
    assert base64.b64decode(data["pubsub"]["items"]["item"]["payload"].text) == PNG

    # XEP-0153: her presence carries the photo hash, though her client did not add it.
    alice.xmpp.send_presence()
    presence = await bob.presence_from("alice@localhost")
    assert presence.xml.findtext("{vcard-temp:x:update}x/{vcard-temp:x:update}photo") == digest


JID_ALICE = "alice@localhost"


async def test_pep_avatar_becomes_the_vcard_photo(server: Server, clients: list[XmppClient]) -> None:
    alice = await client(server, clients, "alice@localhost/new", "alice-secret")
    avatars = alice.xmpp.plugin["xep_0084"]
    digest = hashlib.sha1(PNG).hexdigest()
    await avatars.publish_avatar(PNG, timeout=TIMEOUT_SECONDS)
    await avatars.publish_avatar_metadata([{"id": digest, "type": "image/png", "bytes": str(len(PNG))}],
                                          timeout=TIMEOUT_SECONDS)
    bob = await client(server, clients, "bob@localhost/old", "bob-secret")
    got = await bob.xmpp.plugin["xep_0054"].get_vcard(JID_ALICE, timeout=TIMEOUT_SECONDS)
    assert got["vcard_temp"]["PHOTO"]["BINVAL"] == PNG
    assert got["vcard_temp"]["PHOTO"]["TYPE"] == "image/png"


async def test_setting_someone_elses_vcard_is_forbidden(server: Server, clients: list[XmppClient]) -> None:
    bob = await client(server, clients, "bob@localhost/x", "bob-secret")
    vcard = bob.xmpp.plugin["xep_0054"].make_vcard()
    vcard["FN"] = "Not Alice"
    with pytest.raises(IqError) as raised:
        await bob.xmpp.plugin["xep_0054"].publish_vcard(vcard, jid=JID_ALICE, timeout=TIMEOUT_SECONDS)
    assert raised.value.condition == "forbidden"


async def test_bookmark_in_private_storage_is_a_pep_bookmark_and_back(
        server: Server, clients: list[XmppClient]) -> None:
    old = await client(server, clients, "alice@localhost/gajim", "alice-secret")
    new = await client(server, clients, "alice@localhost/phone", "alice-secret")
    bookmarks = Bookmarks()
    bookmarks.add_conference("quiz@conference.localhost", "Alice", name="Quiz", autojoin=True)
    await old.xmpp.plugin["xep_0048"].set_bookmarks(bookmarks, method="xep_0049", timeout=TIMEOUT_SECONDS)

    # XEP-0411: the XEP-0402 client sees it in PEP.
    items = await new.xmpp.plugin["xep_0060"].get_items(JID_ALICE, "urn:xmpp:bookmarks:1", timeout=TIMEOUT_SECONDS)
    item = items["pubsub"]["items"]["item"]
    assert item["id"] == "quiz@conference.localhost"
    conference = item["payload"]
    assert conference.get("name") == "Quiz" and conference.get("autojoin") == "true"
    assert conference.findtext("{urn:xmpp:bookmarks:1}nick") == "Alice"

    # ... and a bookmark added by the XEP-0402 client shows in private storage.
    added = Conference()
    added["name"], added["autojoin"], added["nick"] = "Lobby", False, "A"
    storage = new.xmpp.plugin["xep_0223"]
    storage.node_profiles[BOOKMARKS] = {"pubsub#max_items": "max", "pubsub#send_last_published_item": "never"}
    await storage.store(added, node=BOOKMARKS, id="lobby@conference.localhost", timeout=TIMEOUT_SECONDS)
    stored = await old.xmpp.plugin["xep_0048"].get_bookmarks(method="xep_0049", timeout=TIMEOUT_SECONDS)
    rooms = {str(conf["jid"]): conf for conf in stored["private"]["bookmarks"]["conferences"]}
    assert set(rooms) == {"quiz@conference.localhost", "lobby@conference.localhost"}
    assert rooms["quiz@conference.localhost"]["autojoin"] is True
    assert rooms["lobby@conference.localhost"]["nick"] == "A"


async def test_other_private_data_round_trips_and_is_refused_to_others(
        server: Server, clients: list[XmppClient]) -> None:
    alice = await client(server, clients, "alice@localhost/x", "alice-secret")
    iq = alice.xmpp.make_iq_set()
    iq.xml.append(_xml("<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'>dark</prefs></query>"))
    await iq.send(timeout=TIMEOUT_SECONDS)
    get = alice.xmpp.make_iq_get()
    get.xml.append(_xml("<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query>"))
    result = await get.send(timeout=TIMEOUT_SECONDS)
    assert result.xml.findtext("{jabber:iq:private}query/{urn:example:prefs}prefs") == "dark"

    bob = await client(server, clients, "bob@localhost/x", "bob-secret")
    peek = bob.xmpp.make_iq_get(ito=JID_ALICE)
    peek.xml.append(_xml("<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query>"))
    with pytest.raises(IqError) as raised:
        await peek.send(timeout=TIMEOUT_SECONDS)
    assert raised.value.condition == "forbidden"


def _xml(text: str) -> Any:
    from xml.etree import ElementTree
    return ElementTree.fromstring(text)


# --- XEP-0363 HTTP upload ------------------------------------------------------------------------


async def test_slixmpp_uploads_a_picture_and_anyone_with_the_url_gets_it_back(
        server: Server, clients: list[XmppClient]) -> None:
    alice = await client(server, clients, "alice@localhost/x", "alice-secret")
    url = await alice.xmpp.plugin["xep_0363"].upload_file("cat.png", content_type="image/png",
                                                          input_file=io.BytesIO(PNG), timeout=TIMEOUT_SECONDS)
    assert url.startswith(f"http://127.0.0.1:{server.http.port if server.http else 0}/upload/")
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert await response.read() == PNG
        assert response.headers["Content-Type"] == "image/png"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert [path.name for path in (server.config.data_path / "upload").iterdir()] == [url.split("/")[-2]]


async def slot(alice: XmppClient, server: Server, filename: str, size: int,
               content_type: str = "application/octet-stream") -> str:
    iq = await alice.xmpp.plugin["xep_0363"].request_slot("upload.localhost", filename, size, content_type,
                                                          timeout=TIMEOUT_SECONDS)
    return str(iq.xml.find(f"{UPLOAD}slot/{UPLOAD}put").get("url"))


async def test_a_slot_is_usable_once(server: Server, clients: list[XmppClient]) -> None:
    alice = await client(server, clients, "alice@localhost/x", "alice-secret")
    url = await slot(alice, server, "a.bin", 4)
    async with aiohttp.ClientSession() as http:
        async with http.put(url, data=b"good") as first:
            assert first.status == 201
        async with http.put(url, data=b"evil") as second:
            assert second.status == 409
        async with http.get(url) as response:
            assert await response.read() == b"good"


async def test_body_size_must_match_the_slot(server: Server, clients: list[XmppClient]) -> None:
    alice = await client(server, clients, "alice@localhost/x", "alice-secret")
    url = await slot(alice, server, "a.bin", 4)
    async with aiohttp.ClientSession() as http:
        async with http.put(url, data=b"much longer than four bytes") as response:
            assert response.status == 413
        async with http.get(url) as response:
            assert response.status == 404


async def test_oversized_file_is_refused_with_file_too_large(server: Server, clients: list[XmppClient]) -> None:
    alice = await client(server, clients, "alice@localhost/x", "alice-secret")
    limit = server.config.upload.max_file_bytes
    with pytest.raises(IqError) as raised:
        await slot(alice, server, "huge.bin", limit + 1)
    assert raised.value.condition == "not-acceptable"
    assert raised.value.iq.xml.findtext(f"{{jabber:client}}error/{UPLOAD}file-too-large/{UPLOAD}max-file-size") \
        == str(limit)


async def test_over_quota_is_refused_with_resource_constraint(tmp_path: Path) -> None:
    from tests.servers import running_server

    async with running_server(tmp_path, {"upload.quota_bytes": 10}) as small:
        made: list[XmppClient] = []
        alice = await client(small, made, "alice@localhost/x", "alice-secret")
        try:
            url = await slot(alice, small, "a.bin", 8)
            async with aiohttp.ClientSession() as http, http.put(url, data=b"12345678") as response:
                assert response.status == 201
            with pytest.raises(IqError) as raised:
                await slot(alice, small, "b.bin", 3)
            assert raised.value.condition == "resource-constraint"
        finally:
            await alice.close()


@pytest.mark.parametrize("path", ["/upload/..%2F..%2Faccounts.sqlite/x", "/upload/../accounts.sqlite",
                                  "/upload/AAAAAAAAAAAAAAAAAAAAAA/a.bin", "/upload/a/..%2F..%2Fupload.sqlite"])
async def test_paths_that_are_not_a_known_slot_are_refused(server: Server, path: str) -> None:
    assert server.http is not None
    async with aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{server.http.port}"
        async with http.put(base + path, data=b"x", skip_auto_headers=()) as response:
            assert response.status in (404, 405)
        async with http.get(base + path) as response:
            assert response.status == 404
    assert sorted(p.name for p in (server.config.data_path / "upload").iterdir()) == []


async def test_html_is_served_as_an_attachment_never_inline(server: Server, clients: list[XmppClient]) -> None:
    alice = await client(server, clients, "alice@localhost/x", "alice-secret")
    page = b"<script>alert(1)</script>"
    url = await slot(alice, server, "x.html", len(page), "text/html")
    async with aiohttp.ClientSession() as http:
        async with http.put(url, data=page, headers={"Content-Type": "text/html"}) as response:
            assert response.status == 201
        async with http.get(url, headers={"Origin": "https://chat.example"}) as response:
            assert response.headers["Content-Disposition"].startswith("attachment")
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Access-Control-Allow-Origin"] == "*"


async def test_upload_service_is_discoverable(server: Server, clients: list[XmppClient]) -> None:
    alice = await client(server, clients, "alice@localhost/x", "alice-secret")
    info = await alice.xmpp.plugin["xep_0363"].find_upload_service(timeout=TIMEOUT_SECONDS)
    assert info is not None and str(info["from"]) == "upload.localhost"
    await asyncio.sleep(0)
