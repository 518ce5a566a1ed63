"""Prometheus /metrics on its own listener, scraped over real HTTP while real slixmpp clients use the server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from slixmpp import JID as SlixJID

from boshcm.app import Server
from boshcm.tls import SELF_SIGNED_CERT
from tests.integration.bosh_client import BoshClient
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient
from tests.servers import running_server

ROOM = SlixJID("lobby@conference.localhost")


async def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert server.metrics_http is not None
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{server.metrics_http.port}/metrics") as response:
        assert response.status == 200 and response.content_type == "text/plain"
        text = await response.text()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def client(server: Server, jid: str, password: str, mechanism: str | None = None) -> XmppClient:
    return XmppClient(jid, password, port=server.c2s.port, ca_cert=server.config.data_path / SELF_SIGNED_CERT,
                      plugins=("xep_0045", "xep_0004"), mechanism=mechanism)


async def test_metrics_are_off_by_default(server: Server) -> None:
    assert server.metrics_http is None


async def test_metrics_count_sessions_logins_stanzas_rooms_and_held_bosh_requests(tmp_path: Path) -> None:
    async with running_server(tmp_path, {"metrics.enabled": True, "metrics.listen": "127.0.0.1:0",
                                         "metrics.loop_lag_interval_seconds": 0.01}) as server:
        before = await scrape(server)
        assert before[("boshcm_sessions", (("transport", "c2s"),))] == 0
        assert before[("boshcm_logins_total", ())] == 0
        intruder = client(server, "alice@localhost/x", "wrong", "SCRAM-SHA-256")  # one attempt
        await intruder.connect(expect_success=False)
        assert intruder.auth_failed.is_set()
        await intruder.close()
        alice = client(server, "alice@localhost/desk", "alice-secret")
        await alice.connect()
        muc = alice.xmpp.plugin["xep_0045"]
        await muc.join_muc_wait(ROOM, "Alice", maxstanzas=0, timeout=TIMEOUT_SECONDS)
        alice.xmpp.send_message(mto=ROOM, mbody="hello", mtype="groupchat")
        assert (await alice.next_message())["body"] == "hello"
        assert server.bosh is not None
        async with aiohttp.ClientSession() as http:
            bosh = BoshClient(http, f"http://127.0.0.1:{server.http.port}/http-bind")  # type: ignore[union-attr]
            await bosh.login("bob", "bob-secret")
            # An empty request is held until there is something to say.
            pending = asyncio.ensure_future(bosh.post(bosh.body()))
            await asyncio.sleep(0.2)
            now = await scrape(server)
            pending.cancel()
        await alice.close()
    assert now[("boshcm_sessions", (("transport", "c2s"),))] == 1
    assert now[("boshcm_sessions", (("transport", "bosh"),))] == 1
    assert now[("boshcm_bosh_held_requests", ())] >= 1
    assert now[("boshcm_logins_total", ())] == 2
    assert now[("boshcm_login_failures_total", ())] == 1
    assert now[("boshcm_stanzas_received_total", ())] >= 2   # the join, the message
    assert now[("boshcm_stanzas_delivered_total", ())] >= 3  # the self-presence, the subject, the message
    assert now[("boshcm_muc_rooms", ())] == 1 and now[("boshcm_muc_occupants", ())] == 1
    assert now[("boshcm_event_loop_lag_seconds_count", ())] >= 1
    assert sum(value for (name, _labels), value in now.items() if name == "boshcm_gc_pause_seconds_count") >= 1
