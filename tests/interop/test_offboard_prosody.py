"""Off-board: boshcm relays BOSH sessions to a real Prosody from Debian over TCP with STARTTLS."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from lxml import etree

from boshcm.app import Server
from boshcm.config import load_config
from tests.integration.bosh_client import BoshClient
from tests.integration.xmpp_client import XmppClient
from tests.interop.prosody import Prosody, free_port

pytestmark = pytest.mark.interop


async def offboard_boshcm(tmp_path: Path, upstream: str, **extra: object) -> Server:
    config = load_config(None, {"quizbot.enabled": False,
                                "server.data_dir": str(tmp_path / "boshcm"), "http.listen": "127.0.0.1:0",
                                "c2s.listen": "127.0.0.1:0", "upstream.server": [upstream],
                                "upstream.verify_tls": False, **extra})
    server = Server(config)
    await server.start()
    return server


async def test_bosh_login_and_chat_through_boshcm_to_prosody(prosody: Prosody, tmp_path: Path) -> None:
    boshcm = await offboard_boshcm(tmp_path, f"127.0.0.1:{prosody.c2s_port}")
    bob = XmppClient("bob@localhost/phone", "bob-secret", port=prosody.c2s_port, ca_cert=prosody.cert_path)
    try:
        assert boshcm.http is not None
        await bob.connect()
        bob.xmpp.send_presence()
        async with aiohttp.ClientSession() as http:
            alice = BoshClient(http, f"http://127.0.0.1:{boshcm.http.port}/http-bind")
            await alice.login("alice", "alice-secret")
            assert alice.jid == "alice@localhost/web"
            alice.start_polling()
            await alice.send("<presence xmlns='jabber:client' to='bob@localhost/phone'/>")
            await alice.send("<message xmlns='jabber:client' to='bob@localhost/phone' type='chat'>"
                             "<body>via boshcm to Prosody</body></message>")
            message = await bob.next_message()
            assert message["body"] == "via boshcm to Prosody"
            assert str(message["from"]) == "alice@localhost/web"
            bob.xmpp.send_message(mto="alice@localhost/web", mbody="Prosody says hi", mtype="chat")
            reply = await alice.next("message")
            assert reply.findtext("{jabber:client}body") == "Prosody says hi"
            await alice.close()
    finally:
        await bob.close()
        await boshcm.stop()


async def test_unreachable_upstream_gives_remote_connection_failed(tmp_path: Path) -> None:
    boshcm = await offboard_boshcm(tmp_path, f"127.0.0.1:{free_port()}")
    try:
        assert boshcm.http is not None
        async with aiohttp.ClientSession() as http:
            client = BoshClient(http, f"http://127.0.0.1:{boshcm.http.port}/http-bind")
            created = await client.create()
            assert created.get("type") == "terminate"
            assert created.get("condition") == "remote-connection-failed"
    finally:
        await boshcm.stop()


async def test_route_outside_the_allow_list_is_refused(prosody: Prosody, tmp_path: Path) -> None:
    boshcm = await offboard_boshcm(tmp_path, f"127.0.0.1:{prosody.c2s_port}")
    try:
        assert boshcm.http is not None
        async with aiohttp.ClientSession() as http:
            client = BoshClient(http, f"http://127.0.0.1:{boshcm.http.port}/http-bind")
            refused = etree.fromstring(await client.post_raw(client.body(
                to="localhost", wait="5", hold="1", route="xmpp:internal.example:5222")))
            assert refused.get("type") == "terminate" and refused.get("condition") == "improper-addressing"
    finally:
        await boshcm.stop()


async def test_websocket_login_and_chat_through_boshcm_to_prosody(prosody: Prosody, tmp_path: Path) -> None:
    import base64

    boshcm = await offboard_boshcm(tmp_path, f"127.0.0.1:{prosody.c2s_port}")
    bob = XmppClient("bob@localhost/phone", "bob-secret", port=prosody.c2s_port, ca_cert=prosody.cert_path)
    try:
        assert boshcm.http is not None
        await bob.connect()
        url = f"ws://127.0.0.1:{boshcm.http.port}/xmpp-websocket"
        open_frame = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"
        async with aiohttp.ClientSession() as http, http.ws_connect(url, protocols=("xmpp",)) as ws:

            async def frame() -> etree._Element:
                message = await ws.receive(timeout=10)
                assert message.type is aiohttp.WSMsgType.TEXT, message
                return etree.fromstring(message.data.encode())

            await ws.send_str(open_frame)
            assert (await frame()).tag == "{urn:ietf:params:xml:ns:xmpp-framing}open"
            features = await frame()
            assert "PLAIN" in [m.text for m in features.iter("{urn:ietf:params:xml:ns:xmpp-sasl}mechanism")]
            token = base64.b64encode(b"\0alice\0alice-secret").decode()
            await ws.send_str(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
            assert (await frame()).tag == "{urn:ietf:params:xml:ns:xmpp-sasl}success"
            await ws.send_str(open_frame)
            assert (await frame()).tag == "{urn:ietf:params:xml:ns:xmpp-framing}open"
            await frame()  # features with bind
            await ws.send_str("<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:"
                              "xmpp-bind'><resource>ws</resource></bind></iq>")
            assert (await frame()).findtext(".//{urn:ietf:params:xml:ns:xmpp-bind}jid") == "alice@localhost/ws"
            await ws.send_str("<message xmlns='jabber:client' to='bob@localhost/phone' type='chat'>"
                              "<body>websocket via boshcm</body></message>")
            assert (await bob.next_message())["body"] == "websocket via boshcm"
            await ws.send_str("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
            closing = await ws.receive(timeout=10)
            assert closing.data == '<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />'
    finally:
        await bob.close()
        await boshcm.stop()
