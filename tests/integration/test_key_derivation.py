"""PBKDF2 off the event loop: while one login's key derivation runs, the server keeps serving everyone else."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
import time

import aiohttp
from lxml import etree

from boshcm.app import Server

OPEN = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
# One derivation of the slow account takes about this long: long enough that a blocked loop shows.
SLOW_DERIVATION_SECONDS = 0.3


def slow_iterations() -> int:
    """PBKDF2-SHA-256 iterations that take about SLOW_DERIVATION_SECONDS on this machine."""
    sample = 20_000
    started = time.perf_counter()
    hashlib.pbkdf2_hmac("sha256", b"calibrate", b"0123456789abcdef", sample)
    elapsed = max(time.perf_counter() - started, 1e-4)
    return max(sample, int(sample * SLOW_DERIVATION_SECONDS / elapsed))


def ws_url(server: Server) -> str:
    assert server.http is not None
    return f"ws://127.0.0.1:{server.http.port}/xmpp-websocket"


async def frame(ws: aiohttp.ClientWebSocketResponse) -> etree._Element:
    message = await ws.receive(timeout=10)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    return etree.fromstring(message.data.encode())


def plain(user: str, password: str) -> str:
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return f"<auth xmlns='{SASL}' mechanism='PLAIN'>{token}</auth>"


async def bound(ws: aiohttp.ClientWebSocketResponse, user: str, password: str) -> None:
    await ws.send_str(OPEN)
    await frame(ws)
    await frame(ws)
    await ws.send_str(plain(user, password))
    assert (await frame(ws)).tag == f"{{{SASL}}}success"
    await ws.send_str(OPEN)
    await frame(ws)
    await frame(ws)
    await ws.send_str("<iq xmlns='jabber:client' type='set' id='b'>"
                      "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    await frame(ws)


def ping_from_another_thread(url: str, ready: threading.Event, go: threading.Event) -> float:
    """Bob, logged in on a loop of his own: the seconds his ping takes once `go` is set. A client on the server's
    loop could not tell a blocked loop from a slow server."""

    async def ping() -> float:
        async with aiohttp.ClientSession() as http, http.ws_connect(url, protocols=("xmpp",)) as ws:
            await bound(ws, "bob", "bob-secret")
            ready.set()
            assert go.wait(10)
            time.sleep(0.05)  # the other login's derivation is under way
            sent_at = time.perf_counter()
            await ws.send_str("<iq xmlns='jabber:client' type='get' id='p' to='localhost'>"
                              "<ping xmlns='urn:xmpp:ping'/></iq>")
            pong = await frame(ws)
            assert pong.get("type") == "result" and pong.get("id") == "p"
            return time.perf_counter() - sent_at

    return asyncio.run(ping())


async def test_a_ping_is_answered_while_another_login_derives_its_key(server: Server) -> None:
    server.accounts.add("slow", "slow-secret", iterations=slow_iterations())
    ready, go = threading.Event(), threading.Event()
    pinger = asyncio.ensure_future(asyncio.to_thread(ping_from_another_thread, ws_url(server), ready, go))
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(server), protocols=("xmpp",)) as busy:
        await busy.send_str(OPEN)
        await frame(busy)
        await frame(busy)
        assert await asyncio.to_thread(ready.wait, 10)
        await busy.send_str(plain("slow", "slow-secret"))
        go.set()
        assert (await frame(busy)).tag == f"{{{SASL}}}success"
        # The old code derived on the event loop: the ping waited for the whole derivation.
        assert await pinger < SLOW_DERIVATION_SECONDS / 2


async def test_a_made_up_name_and_a_wrong_password_still_fail_off_the_loop(server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        for user, password in (("nobody", "x"), ("alice", "wrong")):
            async with http.ws_connect(ws_url(server), protocols=("xmpp",)) as ws:
                await ws.send_str(OPEN)
                await frame(ws)
                await frame(ws)
                await ws.send_str(plain(user, password))
                failure = await frame(ws)
                assert failure.tag == f"{{{SASL}}}failure"
                assert failure.find(f"{{{SASL}}}not-authorized") is not None
