"""Avatars, bookmarks and HTTP upload: the same steps against boshcm and against Prosody 0.12 (Debian), observations
compared (issue 18).

Prosody's side: mod_pep, mod_vcard_legacy (XEP-0054, XEP-0153, XEP-0398), mod_bookmarks (XEP-0049, XEP-0048,
XEP-0402, XEP-0411) and mod_http_file_share as the component `upload.localhost` (XEP-0363). Recorded: whether each
step succeeded (error condition and application-specific error), what the other party or a later read sees, and
HTTP statuses. Not recorded: ids and URLs the service makes up, error texts, and how a boolean attribute is spelt
(`autojoin`: its meaning only). Each test lists what is meant to differ, with the reason.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import aiohttp
import pytest
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0048.stanza import Bookmarks
from slixmpp.plugins.xep_0402.stanza import Conference

from boshcm.tls import SELF_SIGNED_CERT
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient
from tests.interop.prosody import Prosody
from tests.servers import running_server

pytestmark = pytest.mark.interop

PLUGINS = ("xep_0004", "xep_0060", "xep_0115", "xep_0163", "xep_0084", "xep_0223", "xep_0402", "xep_0054",
           "xep_0049", "xep_0048", "xep_0363")
PROSODY_MODULES = ("pep", "vcard_legacy", "bookmarks")
ALICE, BOB = "alice@localhost", "bob@localhost"
# Two different pictures: one published as XEP-0084, one set as the vCard PHOTO.
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PNG_2 = b"\x89PNG\r\n\x1a\n" + bytes(reversed(range(256))) * 3
AVATAR_DATA, AVATAR_METADATA = "urn:xmpp:avatar:data", "urn:xmpp:avatar:metadata"
BOOKMARKS = "urn:xmpp:bookmarks:1"
UPLOAD = "urn:xmpp:http:upload:0"
APP_NAMESPACES = ("{http://jabber.org/protocol/pubsub#errors}", f"{{{UPLOAD}}}")
Observations = dict[str, object]
Scenario = Callable[[int, Path], Awaitable[Observations]]


# --- running one scenario on both servers ---------------------------------------------------------------------


async def on_both(tmp_path: Path, scenario: Scenario) -> tuple[Observations, Observations]:
    """(Prosody's observations, boshcm's), the same scenario with alice and bob on each."""
    prosody = Prosody(tmp_path / "prosody", modules=PROSODY_MODULES, upload=True)
    prosody.register("alice", "alice-secret")
    prosody.register("bob", "bob-secret")
    await prosody.start()
    try:
        reference = await scenario(prosody.c2s_port, prosody.cert_path)
    finally:
        await prosody.stop()
    async with running_server(tmp_path / "boshcm") as server:
        ours = await scenario(server.c2s.port, server.config.data_path / SELF_SIGNED_CERT)
    return reference, ours


def assert_same_but(reference: Observations, ours: Observations,
                    intended: dict[str, tuple[object, object]]) -> None:
    """Every observation equal, except those in `intended`, which must be exactly (Prosody's, ours)."""
    for step, (prosody_says, we_say) in intended.items():
        assert (reference.pop(step), ours.pop(step)) == (prosody_says, we_say), step
    assert ours == reference


@contextlib.asynccontextmanager
async def alice_and_bob(port: int, cert: Path) -> AsyncIterator[tuple[XmppClient, XmppClient]]:
    alice = XmppClient(f"{ALICE}/desk", "alice-secret", port=port, ca_cert=cert, plugins=PLUGINS)
    bob = XmppClient(f"{BOB}/phone", "bob-secret", port=port, ca_cert=cert, plugins=PLUGINS)
    try:
        await alice.connect()
        await bob.connect()
        yield alice, bob
    finally:
        await asyncio.gather(alice.close(), bob.close(), return_exceptions=True)


async def become_contacts(alice: XmppClient, bob: XmppClient) -> None:
    """A subscription both ways, by the protocol (slixmpp accepts and subscribes back by default). Both are
    available first: a server keeps a subscription request for a user who has not sent presence yet."""
    alice.xmpp.send_presence()
    bob.xmpp.send_presence()
    alice.xmpp.send_presence_subscription(pto=BOB)
    for _attempt in range(50):
        await asyncio.sleep(0.05)
        await asyncio.gather(*(client.xmpp.get_roster(timeout=TIMEOUT_SECONDS) for client in (alice, bob)))
        if all(client.xmpp.client_roster[other]["subscription"] == "both"
               for client, other in ((alice, BOB), (bob, ALICE))):
            return
    raise AssertionError("alice and bob did not become contacts")


Outcome = tuple[str, ...]


def outcome_of(error: IqError) -> Outcome:
    extra = [child.tag.partition("}")[2] for child in error.iq["error"].xml
             if any(child.tag.startswith(ns) for ns in APP_NAMESPACES)]
    return ("error", str(error.iq["error"]["condition"]), *extra)


async def attempt(step: Awaitable[Any]) -> Outcome:
    try:
        await step
    except IqError as error:
        return outcome_of(error)
    return ("ok",)


def fingerprint(data: bytes) -> tuple[int, str]:
    return len(data), hashlib.sha1(data).hexdigest()


class Notifications:
    """What bob's resource is notified of about alice's avatar metadata: publishes and purges, in order.

    Notifications addressed to bob's bare JID are only counted (`to_bare`): Prosody 0.12's mod_pep adds a local
    contact's bare JID as a recipient once it has resolved his caps, which may or may not have happened by the
    time of a publish, so whether it sends that copy is a race."""

    def __init__(self, client: XmppClient) -> None:
        self._client = client
        self.to_bare = 0
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        client.xmpp.add_event_handler("pubsub_publish", lambda event: self._queue.put_nowait(("publish", event)))
        client.xmpp.add_event_handler("pubsub_purge", lambda event: self._queue.put_nowait(("purge", event)))

    def forget(self) -> None:
        """Drop what came so far (a server may send the last item again, e.g. on presence)."""
        while not self._queue.empty():
            self._queue.get_nowait()

    async def since_forget(self) -> tuple[tuple[object, ...], ...]:
        """The notifications from alice for the metadata node since `forget`: (kind, item id, metadata) or
        ("purge",). A ping first: both servers notify before they answer the publisher, so what bob was sent
        is in his stream before the pong."""
        await self._client.xmpp.plugin["xep_0199"].ping("localhost", timeout=TIMEOUT_SECONDS)
        seen: list[tuple[object, ...]] = []
        while not self._queue.empty():
            kind, event = self._queue.get_nowait()
            if str(event["from"]) != ALICE:
                continue
            if str(event["to"]) == BOB:
                self.to_bare += 1
                continue
            if kind == "purge" and event["pubsub_event"]["purge"]["node"] == AVATAR_METADATA:
                seen.append((kind,))
            if kind == "publish" and event["pubsub_event"]["items"]["node"] == AVATAR_METADATA:
                item = event["pubsub_event"]["items"]["item"]
                seen.append((kind, item["id"], metadata_seen(item["payload"])))
        return tuple(seen)


def metadata_seen(payload: ElementTree.Element | None) -> tuple[tuple[str, str, str], ...]:
    """(id, bytes, type) of each <info/> of avatar metadata."""
    if payload is None:
        return ()
    return tuple((info.get("id", ""), info.get("bytes", ""), info.get("type", ""))
                 for info in payload.iter(f"{{{AVATAR_METADATA}}}info"))


async def presence_photo(alice: XmppClient, bob: XmppClient) -> str | None:
    """alice sends an available presence without any vcard-temp:x:update; the photo hash bob gets (XEP-0153)."""
    while not bob.presences.empty():
        bob.presences.get_nowait()
    alice.xmpp.send_presence()
    presence = await bob.presence_from(ALICE)
    photo = presence.xml.find("{vcard-temp:x:update}x/{vcard-temp:x:update}photo")
    return None if photo is None else (photo.text or "")


# --- 1. avatars: XEP-0084, XEP-0054, XEP-0398, XEP-0153 -------------------------------------------------------


async def avatars(port: int, cert: Path) -> Observations:
    seen: Observations = {}
    async with alice_and_bob(port, cert) as (alice, bob):
        await become_contacts(alice, bob)
        notifications = Notifications(bob)
        # Presence again, now that they are contacts: alice's PEP service learns bob's caps, which have +notify for
        # the avatar metadata (slixmpp's xep_0084); the disco round trips below give it time to resolve them.
        bob.xmpp.send_presence()
        await presence_photo(alice, bob)
        features = await bob.xmpp.plugin["xep_0030"].get_info(ALICE, timeout=TIMEOUT_SECONDS)
        seen["conversion feature on the account"] = \
            "urn:xmpp:pep-vcard-conversion:0" in features["disco_info"]["features"]
        server_features = await bob.xmpp.plugin["xep_0030"].get_info("localhost", timeout=TIMEOUT_SECONDS)
        seen["vcard-temp on the server"] = "vcard-temp" in server_features["disco_info"]["features"]
        seen["empty vcard"] = await _vcard_seen(bob)

        # XEP-0084 publish by alice: bob is notified and reads the data; her vCard shows the picture (XEP-0398).
        avatar = alice.xmpp.plugin["xep_0084"]
        digest = hashlib.sha1(PNG).hexdigest()
        notifications.forget()
        seen["publish avatar data"] = await attempt(avatar.publish_avatar(PNG, timeout=TIMEOUT_SECONDS))
        seen["publish avatar metadata"] = await attempt(avatar.publish_avatar_metadata(
            [{"id": digest, "type": "image/png", "bytes": str(len(PNG))}], timeout=TIMEOUT_SECONDS))
        seen["contact notified of metadata"] = await notifications.since_forget()
        data = await bob.xmpp.plugin["xep_0084"].retrieve_avatar(ALICE, digest, timeout=TIMEOUT_SECONDS)
        seen["contact reads avatar data"] = fingerprint(
            base64.b64decode(data["pubsub"]["items"]["item"]["payload"].text or ""))
        seen["vcard after avatar publish"] = await _vcard_seen(bob)
        seen["presence photo after avatar publish"] = await presence_photo(alice, bob)

        # A vCard with a PHOTO set by alice: the same picture becomes her XEP-0084 avatar (XEP-0398 §3).
        vcards = alice.xmpp.plugin["xep_0054"]
        card = vcards.make_vcard()
        card["FN"] = "Alice"
        card["PHOTO"]["TYPE"] = "image/png"
        card["PHOTO"]["BINVAL"] = PNG_2
        notifications.forget()
        seen["set vcard with photo"] = await attempt(vcards.publish_vcard(card, timeout=TIMEOUT_SECONDS))
        seen["contact notified of vcard photo"] = await notifications.since_forget()
        items = await bob.xmpp.plugin["xep_0060"].get_items(ALICE, AVATAR_DATA, timeout=TIMEOUT_SECONDS)
        seen["avatar data after vcard set"] = tuple(
            (entry["id"], fingerprint(base64.b64decode(entry["payload"].text or "")))
            for entry in items["pubsub"]["items"])
        seen["vcard after vcard set"] = await _vcard_seen(bob)
        seen["presence photo after vcard set"] = await presence_photo(alice, bob)

        # A vCard without a PHOTO after one with it.
        plain = vcards.make_vcard()
        plain["FN"] = "Alice"
        notifications.forget()
        seen["set vcard without photo"] = await attempt(vcards.publish_vcard(plain, timeout=TIMEOUT_SECONDS))
        seen["contact notified of photo removal"] = await notifications.since_forget()
        items = await bob.xmpp.plugin["xep_0060"].get_items(ALICE, AVATAR_METADATA, timeout=TIMEOUT_SECONDS)
        seen["metadata after photo removed"] = tuple(
            metadata_seen(entry["payload"]) for entry in items["pubsub"]["items"])
        items = await bob.xmpp.plugin["xep_0060"].get_items(ALICE, AVATAR_DATA, timeout=TIMEOUT_SECONDS)
        seen["avatar data after photo removed"] = tuple(entry["id"] for entry in items["pubsub"]["items"])
        seen["vcard after photo removed"] = await _vcard_seen(bob)
        seen["presence photo after photo removed"] = await presence_photo(alice, bob)
        seen["notifications to bob's bare JID"] = notifications.to_bare
        seen["set someone else's vcard"] = await attempt(bob.xmpp.plugin["xep_0054"].publish_vcard(
            plain, jid=ALICE, timeout=TIMEOUT_SECONDS))
    return seen


async def _vcard_seen(bob: XmppClient) -> tuple[str, str, tuple[int, str] | None]:
    """(FN, PHOTO/TYPE, fingerprint of PHOTO/BINVAL) of alice's vCard as bob reads it."""
    got = await bob.xmpp.plugin["xep_0054"].get_vcard(ALICE, timeout=TIMEOUT_SECONDS)
    card = got.xml.find("{vcard-temp}vCard")
    assert card is not None
    binval = card.findtext("{vcard-temp}PHOTO/{vcard-temp}BINVAL")
    return (card.findtext("{vcard-temp}FN") or "", card.findtext("{vcard-temp}PHOTO/{vcard-temp}TYPE") or "",
            fingerprint(base64.b64decode("".join(binval.split()))) if binval else None)


async def test_avatars_and_vcards_behave_as_prosody(tmp_path: Path) -> None:
    reference, ours = await on_both(tmp_path, avatars)
    # Prosody 0.12 may also send a copy of each notification to a local contact's bare JID (see Notifications), so
    # a contact's resource can get it twice; we send one to each resource whose caps have +notify (XEP-0163 §4.3.1).
    reference.pop("notifications to bob's bare JID")
    assert ours.pop("notifications to bob's bare JID") == 0
    assert_same_but(reference, ours, {
        # A vCard without PHOTO: Prosody purges the avatar nodes without telling anyone, so contacts keep showing
        # the old picture; we publish empty metadata, which XEP-0084 §4.6 defines as "avatar disabled".
        "contact notified of photo removal": ((), (("publish", "current", ()),)),
        "metadata after photo removed": ((), ((),)),
        # Only the account may set its vCard: Prosody has no handler for a set addressed to another account and
        # answers service-unavailable, as for any unknown iq; we give what XEP-0054 §3.2 says it SHOULD be.
        "set someone else's vcard": (("error", "service-unavailable"), ("error", "forbidden")),
    })


# --- 2. bookmarks: XEP-0402 and XEP-0048 in XEP-0049 private storage (XEP-0411) ----------------------------------


Bookmark = tuple[str, str, bool, str]


def pep_bookmarks(result: Any) -> tuple[Bookmark, ...]:
    return tuple(sorted((item["id"], item["payload"].get("name", ""),
                         item["payload"].get("autojoin") in ("1", "true"),
                         item["payload"].findtext(f"{{{BOOKMARKS}}}nick") or "")
                        for item in result["pubsub"]["items"]))


def private_bookmarks(result: Any) -> tuple[Bookmark, ...]:
    storage = result.xml.find("{jabber:iq:private}query/{storage:bookmarks}storage")
    assert storage is not None
    return tuple(sorted((conference.get("jid", ""), conference.get("name", ""),
                         conference.get("autojoin") in ("1", "true"),
                         conference.findtext("{storage:bookmarks}nick") or "")
                        for conference in storage.iter("{storage:bookmarks}conference")))


async def bookmarks(port: int, cert: Path) -> Observations:
    seen: Observations = {}
    async with alice_and_bob(port, cert) as (alice, bob):
        features = await alice.xmpp.plugin["xep_0030"].get_info(ALICE, timeout=TIMEOUT_SECONDS)
        seen["conversion features on the account"] = tuple(sorted(
            feature for feature in features["disco_info"]["features"]
            if feature.startswith(("urn:xmpp:bookmarks", "storage:bookmarks"))))
        legacy = alice.xmpp.plugin["xep_0048"]
        seen["private bookmarks before any"] = private_bookmarks(
            await legacy.get_bookmarks(method="xep_0049", timeout=TIMEOUT_SECONDS))

        # XEP-0402 publish: XEP-0048 private storage shows it.
        conference = Conference()
        conference["name"], conference["autojoin"], conference["nick"] = "Quiz", True, "Alice"
        storage = alice.xmpp.plugin["xep_0223"]
        storage.node_profiles[BOOKMARKS] = {"pubsub#persist_items": "true", "pubsub#max_items": "max",
                                            "pubsub#send_last_published_item": "never",
                                            "pubsub#access_model": "whitelist"}
        seen["publish pep bookmark"] = await attempt(storage.store(
            conference, node=BOOKMARKS, id="quiz@conference.localhost", timeout=TIMEOUT_SECONDS))
        seen["private bookmarks after pep publish"] = private_bookmarks(
            await legacy.get_bookmarks(method="xep_0049", timeout=TIMEOUT_SECONDS))

        # XEP-0048 in private storage: the XEP-0402 node shows it (changed, added and removed rooms).
        listed = Bookmarks()
        listed.add_conference("quiz@conference.localhost", "Ally", name="Quiz night", autojoin=False)
        listed.add_conference("lobby@conference.localhost", "A", name="Lobby", autojoin=True)
        seen["set private bookmarks"] = await attempt(legacy.set_bookmarks(
            listed, method="xep_0049", timeout=TIMEOUT_SECONDS))
        seen["pep bookmarks after private set"] = pep_bookmarks(await alice.xmpp.plugin["xep_0060"].get_items(
            ALICE, BOOKMARKS, timeout=TIMEOUT_SECONDS))
        fewer = Bookmarks()
        fewer.add_conference("lobby@conference.localhost", "A", name="Lobby", autojoin=True)
        seen["set fewer private bookmarks"] = await attempt(legacy.set_bookmarks(
            fewer, method="xep_0049", timeout=TIMEOUT_SECONDS))
        seen["pep bookmarks after removal"] = pep_bookmarks(await alice.xmpp.plugin["xep_0060"].get_items(
            ALICE, BOOKMARKS, timeout=TIMEOUT_SECONDS))
        seen["private bookmarks at the end"] = private_bookmarks(
            await legacy.get_bookmarks(method="xep_0049", timeout=TIMEOUT_SECONDS))
        try:
            seen["stranger reads private bookmarks"] = ("ok", private_bookmarks(await _private_get(bob, ALICE)))
        except IqError as error:
            seen["stranger reads private bookmarks"] = outcome_of(error)
    return seen


def _private_get(client: XmppClient, owner: str) -> Any:
    iq = client.xmpp.make_iq_get(ito=owner)
    iq.xml.append(ElementTree.fromstring("<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/>"
                                         "</query>"))
    return iq.send(timeout=TIMEOUT_SECONDS)


async def test_bookmarks_behave_as_prosody(tmp_path: Path) -> None:
    reference, ours = await on_both(tmp_path, bookmarks)
    assert_same_but(reference, ours, {
        # Prosody also converts XEP-0048 bookmarks kept in the PEP node `storage:bookmarks` (#compat-pep); we keep
        # that node as an ordinary PEP node (docs/protocol.md).
        "conversion features on the account": (
            ("urn:xmpp:bookmarks-conversion:0", f"{BOOKMARKS}#compat", f"{BOOKMARKS}#compat-pep"),
            ("urn:xmpp:bookmarks-conversion:0", f"{BOOKMARKS}#compat")),
        # A private-storage get addressed to another account: Prosody's mod_bookmarks answers with the sender's own
        # bookmarks (bob has none; alice's are not shown); XEP-0049 §2.3 wants an error, forbidden preferred.
        "stranger reads private bookmarks": (("ok", ()), ("error", "forbidden")),
    })


# --- 3. HTTP upload: XEP-0363 -----------------------------------------------------------------------------------


async def upload(port: int, cert: Path) -> Observations:
    seen: Observations = {}
    async with alice_and_bob(port, cert) as (alice, _bob), aiohttp.ClientSession() as http:
        disco = alice.xmpp.plugin["xep_0030"]
        items = await disco.get_items("localhost", timeout=TIMEOUT_SECONDS)
        services = []
        for jid, _node, _name in items["disco_items"]["items"]:
            info = await disco.get_info(jid, timeout=TIMEOUT_SECONDS)
            if UPLOAD in info["disco_info"]["features"]:
                limit = info.xml.findtext(".//{jabber:x:data}field[@var='max-file-size']/{jabber:x:data}value")
                services.append((str(jid), tuple(info["disco_info"]["identities"]), limit))
        seen["upload services in disco items"] = tuple(services)
        service = services[0][0] if services else "upload.localhost"

        async def request(filename: str, size: int) -> tuple[str, str, dict[str, str]]:
            iq = await alice.xmpp.plugin["xep_0363"].request_slot(service, filename, size, "image/png",
                                                                  timeout=TIMEOUT_SECONDS)
            slot = iq.xml.find(f"{{{UPLOAD}}}slot")
            put, get = slot.find(f"{{{UPLOAD}}}put"), slot.find(f"{{{UPLOAD}}}get")
            headers = {header.get("name", ""): header.text or "" for header in put.iter(f"{{{UPLOAD}}}header")}
            return put.get("url", ""), get.get("url", ""), headers

        put_url, get_url, headers = await request("cat.png", len(PNG))
        seen["slot headers"] = tuple(sorted(headers))
        seen["slot: get url is the put url"] = put_url == get_url
        async with http.put(put_url, data=PNG, headers=headers | {"Content-Type": "image/png"}) as response:
            seen["put"] = response.status
        async with http.get(get_url) as response:
            seen["get"] = (response.status, response.headers.get("Content-Type", ""),
                           fingerprint(await response.read()))
        async with http.put(put_url, data=PNG, headers=headers | {"Content-Type": "image/png"}) as response:
            seen["put on a used slot"] = response.status
        async with http.get(get_url) as response:
            seen["get after a second put"] = (response.status, fingerprint(await response.read()))

        put_url, get_url, headers = await request("short.png", 10)
        async with http.put(put_url, data=PNG, headers=headers | {"Content-Type": "image/png"}) as response:
            seen["put of another size than the slot's"] = response.status
        async with http.get(get_url) as response:
            seen["get after a refused put"] = response.status
        async with http.put(put_url, data=PNG[:10], headers=headers | {"Content-Type": "image/png"}) as response:
            seen["put of the right size after a refused put"] = response.status

        try:
            await alice.xmpp.plugin["xep_0363"].request_slot(service, "huge.bin", 10 * 1024 * 1024 + 1,
                                                             timeout=TIMEOUT_SECONDS)
            seen["slot for a file too large"] = ("ok",)
        except IqError as error:
            limit = error.iq.xml.findtext(
                f"{{jabber:client}}error/{{{UPLOAD}}}file-too-large/{{{UPLOAD}}}max-file-size")
            seen["slot for a file too large"] = (*outcome_of(error), limit or "")
    return seen


async def test_http_upload_behaves_as_prosody(tmp_path: Path) -> None:
    reference, ours = await on_both(tmp_path, upload)
    assert_same_but(reference, ours, {
        # Prosody's PUT needs the token it puts in an Authorization header of the slot; our slot id (128 random
        # bits, in the URL) is the secret, so no header is needed (docs/protocol.md, XEP-0363).
        "slot headers": (("Authorization",), ()),
        # A slot granted but not (yet) uploaded: Prosody knows the slot and says 410 Gone; we serve finished uploads
        # only and say 404 (docs/security.md "Profiles and file upload").
        "get after a refused put": (410, 404),
    })
