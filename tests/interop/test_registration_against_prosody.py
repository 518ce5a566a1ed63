"""XEP-0077 before login, step by step against Prosody 0.12 (Debian; `allow_registration = true`, mod_register) as
the reference: the stream feature, the form, a new account, a taken name, a name that is no localpart. Both over
the raw WebSocket (RFC 7395), where the quiz page registers its guests."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from lxml import etree

from boshcm.app import Server
from tests.interop.prosody import Prosody

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_REGISTER = "jabber:iq:register"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


async def conversation(url: str, requests: list[str]) -> tuple[bool, list[tuple[str, str | None]]]:
    """(feature offered, [(iq type, error condition)] for each request) on one fresh WebSocket stream each."""
    results: list[tuple[str, str | None]] = []
    offered = False
    async with aiohttp.ClientSession() as http:
        for request in requests:
            async with http.ws_connect(url, protocols=("xmpp",)) as ws:
                await ws.send_str(f"<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>")
                while True:
                    element = etree.fromstring((await ws.receive(timeout=10)).data.encode())
                    if etree.QName(element).localname == "features":
                        offered = element.find("{http://jabber.org/features/iq-register}register") is not None
                        break
                await ws.send_str(request)
                reply = etree.fromstring((await ws.receive(timeout=10)).data.encode())
                error = reply.find("{jabber:client}error")
                condition = None if error is None else next(
                    etree.QName(child).localname for child in error
                    if etree.QName(child).namespace == NS_STANZAS and etree.QName(child).localname != "text")
                results.append((reply.get("type", ""), condition))
                await ws.send_str(f"<close xmlns='{NS_FRAMING}'/>")
    return offered, results


def register(username: str, password: str = "long-password") -> str:
    return (f"<iq xmlns='jabber:client' type='set' id='r'><query xmlns='{NS_REGISTER}'>"
            f"<username>{username}</username><password>{password}</password></query></iq>")


REQUESTS = [
    f"<iq xmlns='jabber:client' type='get' id='g'><query xmlns='{NS_REGISTER}'/></iq>",
    register("newcomer"),
    register("newcomer", "other-password"),   # taken
    register("no@good"),                       # not a localpart
    f"<iq xmlns='jabber:client' type='set' id='r'><query xmlns='{NS_REGISTER}'><username>x</username></query></iq>",
]


@pytest.mark.interop
async def test_registration_matches_prosody(server: Server, tmp_path: Path) -> None:
    prosody = Prosody(tmp_path / "prosody", modules=("register",))
    config = prosody.config_path.read_text()
    prosody.config_path.write_text(config.replace("VirtualHost", "allow_registration = true\nVirtualHost", 1))
    await prosody.start()
    try:
        reference = await conversation(prosody.websocket_url, REQUESTS)
    finally:
        await prosody.stop()
    assert server.http is not None
    ours = await conversation(f"ws://127.0.0.1:{server.http.port}/xmpp-websocket", REQUESTS)
    assert reference == (True, [("result", None), ("result", None), ("error", "conflict"),
                                ("error", "not-acceptable"), ("error", "not-acceptable")])
    assert ours == reference
