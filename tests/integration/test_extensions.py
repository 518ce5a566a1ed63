"""The extension seam over real sockets, with an extension made here (not the quiz): its section is read and
validated, its routes are served, it starts with a narrow handle once the listeners are up and stops with the
server, its declared service account is made through the handle and is exempt from the stanza rate and the
room quota; nothing else is. Also: the server's name and version as a client sees them (`server.name`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from lxml import etree

import boshcm
from boshcm.app import Server
from boshcm.config import Config, load_config
from boshcm.extensions import ExtensionSpec, ServerHandle, installed
from quizbot.extension import QuizExtension
from tests.integration.xmpp_client import XmppClient
from tests.security.transports import RawClient, connected

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
BURST = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class GreeterConfig:
    enabled: bool = True
    greeting: str = "hello"


class Greeter:
    """A tiny extension: one route, one service account, a record of its life."""

    service_accounts = frozenset({"svc"})

    def __init__(self, config: Config, settings: GreeterConfig) -> None:
        self.settings = settings
        self.events: list[str] = []
        self.handle: ServerHandle | None = None

    def routes(self) -> Sequence[web.RouteDef]:
        async def hello(_request: web.Request) -> web.Response:
            return web.Response(text=self.settings.greeting)

        return [web.get("/hello", hello)]

    async def start(self, server: ServerHandle) -> None:
        self.events.append("start")
        self.handle = server
        server.ensure_account("svc", "svc-secret")

    async def stop(self) -> None:
        self.events.append("stop")


GREETER = ExtensionSpec(name="greeter", schema=GreeterConfig, create=Greeter)


@contextlib.asynccontextmanager
async def greeter_server(tmp_path: Path, overrides: Mapping[str, object] = {}) -> AsyncIterator[Server]:
    config = load_config(None, {"server.data_dir": str(tmp_path / "data"), "c2s.listen": "127.0.0.1:0",
                                "http.listen": "127.0.0.1:0", "quizbot.enabled": False, **overrides},
                         extensions=[GREETER, *installed()])
    server = Server(config)
    server.accounts.add("alice", "alice-secret")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def get(server: Server, path: str) -> tuple[int, str]:
    assert server.http is not None
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{server.http.port}{path}") as reply:
        return reply.status, await reply.text()


async def test_an_extension_serves_its_routes_starts_with_a_handle_its_account_logs_in_and_it_stops(
        tmp_path: Path) -> None:
    async with greeter_server(tmp_path, {"greeter.greeting": "hi there"}) as server:
        greeter = server.extension(Greeter)
        assert greeter.events == ["start"]
        assert await get(server, "/hello") == (200, "hi there")
        handle = greeter.handle
        assert handle is not None and handle.c2s_address is not None and handle.ca_file is not None
        assert (handle.domain, handle.muc_domain) == ("localhost", "conference.localhost")
        # The extension is a client like any other: the address and CA file it was given verify and log in.
        client = XmppClient("svc@localhost/ext", "svc-secret", port=handle.c2s_address[1], ca_cert=handle.ca_file)
        try:
            await client.connect()
        finally:
            await client.close()
        # Only declared service accounts may be made or re-keyed through the handle.
        with pytest.raises(ValueError, match="not a service account"):
            handle.ensure_account("alice", "stolen")
        assert server.accounts.verify_password("alice", "alice-secret")
    assert greeter.events == ["start", "stop"]


def ping(number: int) -> bytes:
    return (f"<iq xmlns='jabber:client' type='get' to='localhost' id='p{number}'>"
            f"<ping xmlns='urn:xmpp:ping'/></iq>").encode()


async def refused_pings(client: RawClient, count: int) -> int:
    for number in range(count):
        await client.send_raw(ping(number))
    refused = answered = 0
    while answered + refused < count:
        element = await client.next_element()
        assert element is not None, "stream ended"
        if etree.QName(element).localname == "iq":
            if element.get("type") == "error":
                refused += 1
            else:
                answered += 1
    return refused


async def rooms_refused(client: RawClient, names: Sequence[str]) -> int:
    refused = 0
    for name in names:
        await client.send_raw(f"<presence xmlns='jabber:client' to='{name}@conference.localhost/me'>"
                              "<x xmlns='http://jabber.org/protocol/muc'/></presence>".encode())
        while True:
            element = await client.next_element()
            assert element is not None, "stream ended"
            if etree.QName(element).localname == "presence" and element.get("from", "").startswith(name):
                refused += element.get("type") == "error"
                break
    return refused


async def test_service_accounts_are_exempt_from_the_stanza_rate_and_the_room_quota(tmp_path: Path) -> None:
    limits = {"c2s.stanza_rate_per_second": 0.001, "c2s.stanza_burst": BURST, "muc.max_rooms_per_account": 1}
    async with greeter_server(tmp_path, limits) as server:
        async with connected("c2s", server, login=("svc", "svc-secret")) as svc:
            assert await refused_pings(svc, 3 * BURST) == 0
            assert await rooms_refused(svc, ["s1", "s2", "s3"]) == 0
        async with connected("c2s", server, login=("alice", "alice-secret")) as alice:
            assert await refused_pings(alice, 2 * BURST) == BURST
        async with connected("c2s", server, login=("alice", "alice-secret")) as alice:
            assert await rooms_refused(alice, ["a1", "a2"]) == 1


async def test_without_the_quiz_bot_the_page_is_served_and_no_account_made_or_privileged(tmp_path: Path) -> None:
    async with greeter_server(tmp_path, {"quizbot.enabled": False}) as server:
        assert (await get(server, "/"))[0] == 200  # the page is http.quiz_page's, as before
        assert server.extension(QuizExtension).client is None
        assert not server.accounts.exists("quiz")
        assert server.service_accounts == {"svc"}


async def test_the_server_reports_its_configured_name_and_the_package_version(tmp_path: Path) -> None:
    async with greeter_server(tmp_path, {"server.name": "Example Chat"}) as server, \
            connected("c2s", server, login=("alice", "alice-secret")) as alice:
        await alice.send_raw(b"<iq xmlns='jabber:client' type='get' to='localhost' id='v'>"
                             b"<query xmlns='jabber:iq:version'/></iq>")
        version = await alice.next_element()
        assert version is not None and version.get("type") == "result", version
        assert version.findtext("{*}query/{*}name") == "Example Chat"
        assert version.findtext("{*}query/{*}version") == boshcm.__version__
        await alice.send_raw(b"<iq xmlns='jabber:client' type='get' to='localhost' id='i'>"
                             b"<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        info = await alice.next_element()
        assert info is not None
        identity = info.find("{*}query/{*}identity[@category='server']")
        assert identity is not None and identity.get("name") == "Example Chat"


async def test_an_extension_exports_its_readings_on_the_servers_metrics_and_nowhere_when_they_are_off(
        tmp_path: Path) -> None:
    from boshcm.metrics import Reading
    from tests.integration.test_metrics import scrape

    greetings = [0]
    reading = Reading(name="greeter_greetings", documentation="Greetings said", read=lambda: greetings[0],
                      counter=True)
    async with greeter_server(tmp_path / "off") as server:
        handle = server.extension(Greeter).handle
        assert handle is not None and server.metrics is None
        handle.add_reading(reading)  # metrics off: accepted, exported nowhere
    async with greeter_server(tmp_path / "on", {"metrics.enabled": True, "metrics.listen": "127.0.0.1:0"}) as server:
        handle = server.extension(Greeter).handle
        assert handle is not None
        handle.add_reading(reading)
        greetings[0] = 3
        assert (await scrape(server))[("greeter_greetings_total", ())] == 3  # read at scrape time
