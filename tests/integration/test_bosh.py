"""BOSH (XEP-0124/0206) on-board, over real HTTP on loopback, against TCP clients of the same server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from lxml import etree

from boshcm.app import Server
from tests.integration.bosh_client import BoshClient
from tests.integration.test_c2s import logged_in
from tests.integration.xmpp_client import XmppClient


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def bosh_url(server: Server) -> str:
    assert server.http is not None
    return f"http://127.0.0.1:{server.http.port}/http-bind"


async def test_session_creation_response_follows_xep_0124_and_0206(server: Server, http: aiohttp.ClientSession) -> None:
    client = BoshClient(http, bosh_url(server), wait=30, hold=1)
    created = await client.create()
    assert created.get("sid") and len(created.get("sid", "")) >= 24
    assert created.get("wait") == "30" and created.get("hold") == "1" and created.get("requests") == "2"
    assert created.get("ver") == "1.11" and created.get("from") == "localhost" and created.get("authid")
    assert created.get("{urn:xmpp:xbosh}version") == "1.0"
    assert created.get("{urn:xmpp:xbosh}restartlogic") == "true"
    mechanisms = [m.text for m in created.iter("{urn:ietf:params:xml:ns:xmpp-sasl}mechanism")]
    assert "PLAIN" in mechanisms and "SCRAM-SHA-256" in mechanisms


async def test_bosh_and_tcp_users_chat_and_see_each_others_presence(
    server: Server, http: aiohttp.ClientSession, clients: list[XmppClient]
) -> None:
    bob = await logged_in(server, clients, "bob@localhost/phone", "bob-secret")
    alice = BoshClient(http, bosh_url(server))
    await alice.login("alice", "alice-secret")
    alice.start_polling()
    try:
        await alice.send("<presence xmlns='jabber:client' to='bob@localhost/phone'/>")
        seen = await bob.presence_from("alice@localhost", "available")
        assert str(seen["from"]) == "alice@localhost/web"
        await alice.send(
            "<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>über BOSH</body></message>"
        )
        assert (await bob.next_message())["body"] == "über BOSH"
        bob.xmpp.send_message(mto="alice@localhost/web", mbody="und zurück", mtype="chat")
        reply = await alice.next("message")
        assert reply.findtext("{jabber:client}body") == "und zurück"
        assert reply.get("from") == "bob@localhost/phone"

        # XEP-0124 §13 / docs/protocol.md: terminate carries the unavailable presence, which must be processed.
        answer = await alice.post(alice.body("<presence xmlns='jabber:client' type='unavailable'/>", type="terminate"))
        assert answer.get("type") == "terminate"
        gone = await bob.presence_from("alice@localhost", "unavailable")
        assert str(gone["from"]) == "alice@localhost/web"
    finally:
        await alice.close()


async def test_repeated_rid_gets_the_same_bytes_and_rids_beyond_the_window_end_the_session(
    server: Server, http: aiohttp.ClientSession
) -> None:
    client = BoshClient(http, bosh_url(server))
    await client.login("alice", "alice-secret")
    request = client.body(
        "<iq xmlns='jabber:client' type='get' id='ping1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
    )
    first = await client.post_raw(request)
    assert b"ping1" in first
    assert await client.post_raw(request) == first  # XEP-0124 §14.3
    client.rid += 5
    beyond = etree.fromstring(await client.post_raw(client.body()))
    assert beyond.get("type") == "terminate" and beyond.get("condition") == "item-not-found"


async def test_unknown_sid_and_garbage_get_terminate_conditions(server: Server, http: aiohttp.ClientSession) -> None:
    client = BoshClient(http, bosh_url(server))
    client.sid = "no-such-session"
    unknown = etree.fromstring(await client.post_raw(client.body()))
    assert unknown.get("condition") == "item-not-found"
    garbage = etree.fromstring(await client.post_raw(b"<body xmlns='http://jabber.org/protocol/httpbind'><unclosed>"))
    assert garbage.get("condition") == "bad-request"
    entity = etree.fromstring(await client.post_raw(b"<!DOCTYPE b [<!ENTITY x 'y'>]><body rid='1'>&x;</body>"))
    assert entity.get("condition") == "bad-request"


async def test_held_request_is_answered_empty_after_wait(server: Server, http: aiohttp.ClientSession) -> None:
    client = BoshClient(http, bosh_url(server), wait=1)
    await client.login("alice", "alice-secret")
    started = asyncio.get_running_loop().time()
    empty = await client.post(client.body())
    assert len(empty) == 0 and empty.get("type") is None
    assert 0.8 <= asyncio.get_running_loop().time() - started < 3


async def test_cors_preflight_and_responses_carry_the_allowed_origin(
    server: Server, http: aiohttp.ClientSession
) -> None:
    headers = {
        "Origin": "http://quiz.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    async with http.options(bosh_url(server), headers=headers) as preflight:
        assert preflight.status == 200
        assert preflight.headers["Access-Control-Allow-Origin"] == "*"
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
        assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]
    client = BoshClient(http, bosh_url(server))
    async with http.post(
        bosh_url(server),
        data=client.body(to="localhost", wait="5", hold="1"),
        headers={"Origin": "http://quiz.example"},
    ) as response:
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.headers["Content-Type"].startswith("text/xml")


async def test_stream_error_reaches_the_bosh_client_as_remote_stream_error(
    server: Server, http: aiohttp.ClientSession
) -> None:
    client = BoshClient(http, bosh_url(server))
    await client.login("alice", "alice-secret")
    answer = await client.post(
        client.body("<message xmlns='jabber:client' from='mallory@localhost' to='bob@localhost'/>")
    )
    assert answer.get("type") == "terminate" and answer.get("condition") == "remote-stream-error"
    assert (
        answer.find("{http://etherx.jabber.org/streams}error/{urn:ietf:params:xml:ns:xmpp-streams}invalid-from")
        is not None
    )


async def test_a_held_request_gets_a_pushed_stanza_within_milliseconds(
    server: Server, http: aiohttp.ClientSession, clients: list[XmppClient]
) -> None:
    bob = await logged_in(server, clients, "bob@localhost/phone", "bob-secret")
    alice = BoshClient(http, bosh_url(server), wait=30)
    await alice.login("alice", "alice-secret")
    loop = asyncio.get_running_loop()
    held = loop.create_task(alice.post(alice.body()))
    await asyncio.sleep(0.2)  # the request is now held by the server
    sent_at = loop.time()
    bob.xmpp.send_message(mto="alice@localhost/web", mbody="push", mtype="chat")
    response = await held
    latency = loop.time() - sent_at
    assert response.findtext("{jabber:client}message/{jabber:client}body") == "push"
    assert latency < 1.0  # generous for a loaded CI machine; tests/perf measures the real figure


@pytest.mark.parametrize(
    "bad",
    [
        b"<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='localhost'><unclosed></body>",
        b"<notbody xmlns='urn:example' rid='1'/>",
        b"<body xmlns='http://jabber.org/protocol/httpbind' rid='minus one'/>",
        b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>]><body>&lol;</body>",
        b"<body xmlns='http://jabber.org/protocol/httpbind' rid='1'><!-- comment --></body>",
        b"\xff\xfe garbage",
    ],
)
async def test_bad_request_gets_bad_request_and_the_next_session_still_works(
    server: Server, http: aiohttp.ClientSession, bad: bytes
) -> None:
    client = BoshClient(http, bosh_url(server))
    answer = etree.fromstring(await client.post_raw(bad))
    assert answer.get("type") == "terminate" and answer.get("condition") == "bad-request"
    fresh = BoshClient(http, bosh_url(server))
    await fresh.login("alice", "alice-secret")


async def test_oversized_body_is_refused_without_ending_other_sessions(
    server: Server, http: aiohttp.ClientSession
) -> None:
    other = BoshClient(http, bosh_url(server))
    await other.login("bob", "bob-secret")
    big = b"<body xmlns='http://jabber.org/protocol/httpbind' rid='1'>" + b"x" * (2 * 1024 * 1024) + b"</body>"
    answer = etree.fromstring(await BoshClient(http, bosh_url(server)).post_raw(big))
    assert answer.get("condition") == "policy-violation"
    pong = await other.post(
        other.body("<iq xmlns='jabber:client' type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    )
    assert pong.find("{jabber:client}iq").get("type") == "result"  # type: ignore[union-attr]


async def test_get_on_the_endpoint_explains_itself_and_aliases_work(
    server: Server, http: aiohttp.ClientSession
) -> None:
    assert server.http is not None
    async with http.get(bosh_url(server)) as page:
        assert page.status == 200 and "BOSH endpoint" in await page.text()
    client = BoshClient(http, f"http://127.0.0.1:{server.http.port}/bosh")
    created = await client.create()
    assert created.get("sid")


async def test_the_content_attribute_sets_the_content_type_of_every_response(
    server: Server, http: aiohttp.ClientSession
) -> None:
    # XEP-0124 §7.1: "the connection manager MUST use that value in the Content-Type header of all responses".
    client = BoshClient(http, bosh_url(server))
    content = "application/xml; charset=utf-8"
    async with http.post(bosh_url(server), data=client.body(to="localhost", wait="5", hold="1", content=content)) as r:
        assert r.headers["Content-Type"] == content
        client.sid = etree.fromstring(await r.read()).get("sid")
    no_such = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-NONE'/>"
    async with http.post(bosh_url(server), data=client.body(no_such)) as reply:  # <failure/> at once
        assert reply.headers["Content-Type"] == content
    async with http.post(bosh_url(server), data=client.body(type="terminate")) as reply:
        assert reply.headers["Content-Type"] == content


async def test_a_content_type_that_a_browser_would_render_as_a_page_is_bad_request(
    server: Server, http: aiohttp.ClientSession
) -> None:
    client = BoshClient(http, bosh_url(server))
    answer = etree.fromstring(await client.post_raw(client.body(to="localhost", content="text/html")))
    assert answer.get("type") == "terminate" and answer.get("condition") == "bad-request"


@pytest.mark.parametrize(("asked", "answered"), [("1.6", "1.6"), ("1.11", "1.11"), ("1.20", "1.11"), ("2.0", "1.11")])
async def test_ver_is_the_highest_we_support_not_above_the_clients(
    server: Server, http: aiohttp.ClientSession, asked: str, answered: str
) -> None:
    # XEP-0124 §7.2: "the highest version ... that the connection manager supports, or the version specified
    # by the client in its request, whichever is lower".
    client = BoshClient(http, bosh_url(server))
    created = await client.post(client.body(to="localhost", wait="5", hold="1", ver=asked))
    assert created.get("ver") == answered
