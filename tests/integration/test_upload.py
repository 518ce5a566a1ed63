"""XEP-0363 upload expiry and the upload component's discovery and ping, over a real HTTP socket and with slixmpp.

The slot and file lifetimes are configured to fractions of a second; the server's own expiry task does the work.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from slixmpp.exceptions import IqError

from boshcm.app import Server
from boshcm.tls import SELF_SIGNED_CERT
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient
from tests.servers import running_server

PLUGINS = ("xep_0030", "xep_0199", "xep_0363")
UPLOAD = "{urn:xmpp:http:upload:0}"


async def alice_of(server: Server, clients: list[XmppClient]) -> XmppClient:
    made = XmppClient("alice@localhost/x", "alice-secret", port=server.c2s.port,
                      ca_cert=server.config.data_path / SELF_SIGNED_CERT, plugins=PLUGINS)
    clients.append(made)
    await made.connect()
    return made


async def slot_url(alice: XmppClient, filename: str, size: int) -> str:
    iq = await alice.xmpp.plugin["xep_0363"].request_slot("upload.localhost", filename, size,
                                                          "application/octet-stream", timeout=TIMEOUT_SECONDS)
    return str(iq.xml.find(f"{UPLOAD}slot/{UPLOAD}put").get("url"))


async def test_the_upload_component_answers_ping_and_lists_its_features(server: Server,
                                                                       clients: list[XmppClient]) -> None:
    alice = await alice_of(server, clients)
    await alice.xmpp.plugin["xep_0199"].ping("upload.localhost", timeout=TIMEOUT_SECONDS)
    info = await alice.xmpp.plugin["xep_0030"].get_info("upload.localhost", timeout=TIMEOUT_SECONDS)
    features = set(info["disco_info"]["features"])
    assert {"urn:xmpp:http:upload:0", "http://jabber.org/protocol/disco#info", "urn:xmpp:ping"} <= features
    size = info.xml.findtext(".//{jabber:x:data}field[@var='max-file-size']/{jabber:x:data}value")
    assert size == str(server.config.upload.max_file_bytes)


async def test_a_stored_file_expires_its_url_is_gone_and_its_quota_is_free(tmp_path: Path) -> None:
    async with running_server(tmp_path, {"upload.file_seconds": 0.5, "upload.quota_bytes": 8}) as server:
        clients: list[XmppClient] = []
        try:
            alice = await alice_of(server, clients)
            url = await slot_url(alice, "a.bin", 8)
            async with aiohttp.ClientSession() as http:
                async with http.put(url, data=b"12345678") as put:
                    assert put.status == 201
                async with http.get(url) as fresh:
                    assert fresh.status == 200
                try:
                    await slot_url(alice, "b.bin", 8)
                    raise AssertionError("the quota is full while the file is kept")
                except IqError as full:
                    assert full.condition == "resource-constraint"
                await asyncio.sleep(0.8)
                async with http.get(url) as expired:
                    assert expired.status == 404
            assert list((server.config.data_path / "upload").iterdir()) == []  # deleted from disk, not just hidden
            assert await slot_url(alice, "b.bin", 8)  # its bytes no longer count
        finally:
            await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)


async def test_an_unused_slot_expires_and_its_put_is_refused(tmp_path: Path) -> None:
    async with running_server(tmp_path, {"upload.slot_seconds": 0.3}) as server:
        clients: list[XmppClient] = []
        try:
            alice = await alice_of(server, clients)
            url = await slot_url(alice, "late.bin", 4)
            await asyncio.sleep(0.5)
            async with aiohttp.ClientSession() as http:
                async with http.put(url, data=b"late") as put:
                    assert put.status == 404
                async with http.get(url) as get:
                    assert get.status == 404
            assert list((server.config.data_path / "upload").iterdir()) == []
        finally:
            await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
