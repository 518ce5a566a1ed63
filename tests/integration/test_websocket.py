"""XMPP over WebSocket (RFC 7395) on-board, frame by frame."""

from __future__ import annotations

import base64

import aiohttp
import pytest
from aiohttp import web
from lxml import etree

from boshcm.app import Server

OPEN = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"


def ws_url(server: Server) -> str:
    assert server.http is not None
    return f"ws://127.0.0.1:{server.http.port}/xmpp-websocket"


async def frame(ws: aiohttp.ClientWebSocketResponse) -> etree._Element:
    message = await ws.receive(timeout=5)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    return etree.fromstring(message.data.encode())


async def test_login_and_clean_close_with_the_exact_close_frame(server: Server) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(server), protocols=("xmpp",)) as ws:
        assert ws.protocol == "xmpp"
        await ws.send_str(OPEN)
        opened = await frame(ws)
        assert opened.tag == "{urn:ietf:params:xml:ns:xmpp-framing}open" and opened.get("from") == "localhost"
        features = await frame(ws)
        assert "PLAIN" in [m.text for m in features.iter("{urn:ietf:params:xml:ns:xmpp-sasl}mechanism")]
        token = base64.b64encode(b"\0alice\0alice-secret").decode()
        await ws.send_str(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
        assert (await frame(ws)).tag == "{urn:ietf:params:xml:ns:xmpp-sasl}success"
        await ws.send_str(OPEN)
        await frame(ws)
        assert (await frame(ws)).find("{urn:ietf:params:xml:ns:xmpp-bind}bind") is not None
        await ws.send_str(
            "<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
        )
        bound = await frame(ws)
        assert (bound.findtext(".//{urn:ietf:params:xml:ns:xmpp-bind}jid") or "").startswith("alice@localhost/")
        await ws.send_str("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
        closing = await ws.receive(timeout=5)
        assert closing.data == '<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />'  # docs/protocol.md: exactly


async def test_bad_frame_gets_a_stream_error_frame_then_close(server: Server) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(server), protocols=("xmpp",)) as ws:
        await ws.send_str(OPEN)
        await frame(ws)
        await frame(ws)
        await ws.send_str("<message xmlns='jabber:client'><unclosed></message>")
        error = await frame(ws)
        assert error.tag == "{http://etherx.jabber.org/streams}error"
        assert error.find("{urn:ietf:params:xml:ns:xmpp-streams}not-well-formed") is not None
        closing = await ws.receive(timeout=5)
        assert closing.data == '<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />'


async def test_without_the_xmpp_subprotocol_the_socket_is_closed(server: Server) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(server)) as ws:
        message = await ws.receive(timeout=5)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == aiohttp.WSCloseCode.PROTOCOL_ERROR


async def test_a_writer_that_fails_closes_the_connection_rather_than_leaving_it_mute(
        server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The writer task handles a gone client itself; anything else it raises is a bug, and the connection must then
    end (as a TaskGroup would end it), not stay open with a reader waiting and nothing ever written."""
    async def broken_send_str(self: web.WebSocketResponse, data: str, compress: int | None = None) -> None:
        raise RuntimeError("a bug in the writer")

    monkeypatch.setattr(web.WebSocketResponse, "send_str", broken_send_str)
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(server), protocols=("xmpp",)) as ws:
        await ws.send_str(OPEN)
        ended = await ws.receive(timeout=5)
        assert ended.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR), ended
    assert "writing failed" in caplog.text
