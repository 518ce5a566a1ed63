"""Password guessing over real sockets, on every transport: per-account and per-address delays, and the two
ways an attacker must not lock a real user out (made-up names from her address; an attack on her account
from elsewhere after she has logged in from her own).

Attackers connect from other loopback addresses (127.0.0.2, ...): Linux routes all of 127/8 to lo, so the
server sees distinct remote addresses. The real user is at 127.0.0.1 and, on c2s, is a slixmpp client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from lxml import etree

from boshcm.app import Server
from boshcm.tls import SELF_SIGNED_CERT
from tests.integration.bosh_client import BoshClient
from tests.integration.xmpp_client import XmppClient
from tests.servers import running_server

TRANSPORTS = ("c2s", "bosh", "websocket")
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
TIMEOUT_SECONDS = 10.0
HEADER = (b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
          b"to='localhost' version='1.0'>")
RETRY_TEXT = re.compile(r"Too many failed attempts; try again in \d+ seconds")
Outcome = tuple[str, str]


@contextlib.asynccontextmanager
async def running(tmp_path: Path, **auth: object) -> AsyncIterator[Server]:
    async with running_server(tmp_path, {f"c2s.auth_{key}": value for key, value in auth.items()}) as server:
        yield server


def outcome_of(reply: etree._Element | None) -> Outcome:
    assert reply is not None, "no SASL answer"
    if reply.tag == f"{{{NS_SASL}}}success":
        return "success", ""
    assert reply.tag == f"{{{NS_SASL}}}failure", etree.tostring(reply)
    condition = next(child for child in reply if child.tag != f"{{{NS_SASL}}}text")
    return etree.QName(condition).localname, reply.findtext(f"{{{NS_SASL}}}text") or ""


def plain(username: str, password: str) -> str:
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
    return f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>"


class _Elements:
    """Top-level elements of an XMPP stream read from a StreamReader."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self.restart()

    def restart(self) -> None:
        self._parser = etree.XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._ready: list[etree._Element] = []

    async def next(self) -> etree._Element | None:
        while not self._ready:
            data = await asyncio.wait_for(self._reader.read(65_536), TIMEOUT_SECONDS)
            if not data:
                return None
            self._parser.feed(data)
            for event, node in self._parser.read_events():
                self._depth += 1 if event == "start" else -1
                if event == "end" and self._depth == 1:
                    self._ready.append(node)
        return self._ready.pop(0)


async def c2s_attempt(server: Server, source: str, username: str, password: str) -> Outcome:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.c2s.port, local_addr=(source, 0))
    stream = _Elements(reader)
    try:
        writer.write(HEADER)
        await stream.next()  # features: STARTTLS required
        writer.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        await stream.next()  # proceed
        context = ssl.create_default_context(cafile=str(server.config.data_path / SELF_SIGNED_CERT))
        context.check_hostname = False
        await writer.start_tls(context)
        stream.restart()
        writer.write(HEADER)
        await stream.next()  # features: mechanisms
        writer.write(plain(username, password).encode())
        return outcome_of(await stream.next())
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def websocket_attempt(server: Server, source: str, username: str, password: str) -> Outcome:
    assert server.http is not None
    url = f"ws://127.0.0.1:{server.http.port}/xmpp-websocket"
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as http, http.ws_connect(url, protocols=("xmpp",)) as ws:
        await ws.send_str(f"<open xmlns='{NS_FRAMING}' to='localhost' version='1.0'/>")
        await ws.receive(timeout=TIMEOUT_SECONDS)  # open
        await ws.receive(timeout=TIMEOUT_SECONDS)  # features
        await ws.send_str(plain(username, password))
        reply = await ws.receive(timeout=TIMEOUT_SECONDS)
        return outcome_of(etree.fromstring(reply.data.encode()))


async def bosh_attempt(server: Server, source: str, username: str, password: str) -> Outcome:
    assert server.http is not None
    url = f"http://127.0.0.1:{server.http.port}/http-bind"
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        bosh = BoshClient(http, url, wait=1)
        await bosh.create()
        answer = await bosh.post(bosh.body(plain(username, password)))
        await bosh.post(bosh.body(type="terminate"))
        return outcome_of(answer.find(f"{{{NS_SASL}}}*"))


async def attempt(transport: str, server: Server, source: str, username: str, password: str) -> Outcome:
    match transport:
        case "c2s":
            return await c2s_attempt(server, source, username, password)
        case "bosh":
            return await bosh_attempt(server, source, username, password)
        case "websocket":
            return await websocket_attempt(server, source, username, password)
    raise AssertionError(transport)


async def real_user_logs_in(transport: str, server: Server, username: str, password: str) -> bool:
    """The real user at 127.0.0.1: on c2s a slixmpp client (SCRAM-SHA-256), elsewhere a browser-like PLAIN."""
    if transport != "c2s":
        return await attempt(transport, server, "127.0.0.1", username, password) == ("success", "")
    client = XmppClient(f"{username}@localhost/desk", password, port=server.c2s.port,
                        ca_cert=server.config.data_path / SELF_SIGNED_CERT)
    try:
        await client.connect(expect_success=False)
        return client.session_started.is_set()
    finally:
        await client.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_account_under_attack_from_many_addresses_is_delayed(tmp_path: Path, transport: str) -> None:
    async with running(tmp_path, account_free_failures=2, address_free_failures=100,
                       first_delay_seconds=60.0) as server:
        for index in range(3):
            assert await attempt(transport, server, f"127.0.0.{index + 2}", "alice", "guess") == ("not-authorized", "")
        # The right password from a new address is refused unread while the delay lasts.
        condition, text = await attempt(transport, server, "127.0.0.9", "alice", "alice-secret")
        assert condition == "temporary-auth-failure" and RETRY_TEXT.fullmatch(text), text
        assert await attempt(transport, server, "127.0.0.9", "bob", "bob-secret") == ("success", "")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_address_guessing_at_real_accounts_is_delayed(tmp_path: Path, transport: str) -> None:
    async with running(tmp_path, account_free_failures=100, address_free_failures=2,
                       first_delay_seconds=60.0) as server:
        for username in ("alice", "bob", "alice"):
            assert await attempt(transport, server, "127.0.0.2", username, "guess") == ("not-authorized", "")
        condition, text = await attempt(transport, server, "127.0.0.2", "bob", "bob-secret")
        assert condition == "temporary-auth-failure" and RETRY_TEXT.fullmatch(text), text
        assert await attempt(transport, server, "127.0.0.3", "bob", "bob-secret") == ("success", "")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_made_up_names_from_her_address_do_not_lock_a_real_user_out(tmp_path: Path, transport: str) -> None:
    async with running(tmp_path, account_free_failures=2, address_free_failures=2,
                       first_delay_seconds=60.0) as server:
        for index in range(6):
            assert await attempt(transport, server, "127.0.0.1", f"ghost{index}", "guess") == ("not-authorized", "")
        assert await real_user_logs_in(transport, server, "alice", "alice-secret")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_user_who_logged_in_from_her_address_before_gets_in_during_an_attack(tmp_path: Path,
                                                                                    transport: str) -> None:
    async with running(tmp_path, account_free_failures=2, first_delay_seconds=60.0) as server:
        assert await real_user_logs_in(transport, server, "alice", "alice-secret")
        for index in range(3):
            await attempt(transport, server, f"127.0.0.{index + 2}", "alice", "guess")
        assert (await attempt(transport, server, "127.0.0.9", "alice", "alice-secret"))[0] == "temporary-auth-failure"
        assert await real_user_logs_in(transport, server, "alice", "alice-secret")
