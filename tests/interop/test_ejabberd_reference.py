"""ejabberd (Debian's 23.01) as the reference the churn benchmark compares with, and as a cluster (issue 15).

Checks that the harness in tests/ejabberd.py gives a working node and a working two-node cluster, and that
ejabberd does what tests/perf/bench_churn.py measures boshcm against: XEP-0198 resumption after the network
goes away, with what was sent meanwhile arriving exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from slixmpp import JID

from tests.ejabberd import EjabberdNode, cluster_members, ejabberd_cluster, ejabberd_node
from tests.integration.relay import Relay
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient

pytestmark = pytest.mark.interop

ACCOUNTS = {"alice": "alice-secret", "bob": "bob-secret"}


@pytest.fixture(scope="module")
def ejabberd() -> Iterator[EjabberdNode]:
    with ejabberd_node(ACCOUNTS) as node:
        yield node


@pytest.fixture(scope="module")
def ejabberd_pair() -> Iterator[tuple[EjabberdNode, ...]]:
    """Two clustered nodes with alice and bob, registered on the first; module-scoped: starting costs ~4 s."""
    with ejabberd_cluster(ACCOUNTS) as nodes:
        yield nodes


def client(node: EjabberdNode, jid: str, password: str, *, port: int | None = None,
           plugins: tuple[str, ...] = ()) -> XmppClient:
    return XmppClient(jid, password, port=port or node.c2s_port, ca_cert=node.cert_path, plugins=plugins)


def bodies(queue: asyncio.Queue[Any]) -> list[str]:
    found = []
    while not queue.empty():
        message = queue.get_nowait()
        if message["body"]:
            found.append(message["body"])
    return found


async def eventually(condition: Callable[[], bool], what: str) -> None:
    for _ in range(int(TIMEOUT_SECONDS / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_ejabberd_resumes_a_dropped_slixmpp_stream_and_delivers_each_message_once(
        ejabberd: EjabberdNode) -> None:
    relay = Relay("127.0.0.1", ejabberd.c2s_port)
    await relay.start()
    alice = client(ejabberd, "alice@localhost/desk", "alice-secret", port=relay.port, plugins=("xep_0198",))
    bob = client(ejabberd, "bob@localhost/phone", "bob-secret")
    try:
        resumed = asyncio.Event()
        alice.xmpp.add_event_handler("session_resumed", lambda _event: resumed.set())
        sm = alice.xmpp.plugin["xep_0198"]
        sm.window = 1
        await alice.connect()
        await eventually(lambda: bool(sm.sm_id), "<enabled/>")
        await bob.connect()
        bob.xmpp.send_message(mto=JID("alice@localhost/desk"), mbody="before", mtype="chat")
        assert (await alice.next_message())["body"] == "before"

        relay.drop()
        await asyncio.wait_for(alice.disconnected.wait(), TIMEOUT_SECONDS)
        for body in ("while away 1", "while away 2"):
            bob.xmpp.send_message(mto=JID("alice@localhost/desk"), mbody=body, mtype="chat")
        await asyncio.sleep(0.2)

        alice.disconnected.clear()
        alice.xmpp.connect(host="127.0.0.1", port=relay.port)
        await asyncio.wait_for(resumed.wait(), TIMEOUT_SECONDS)
        bob.xmpp.send_message(mto=JID("alice@localhost/desk"), mbody="after", mtype="chat")
        got = [(await alice.next_message())["body"] for _ in range(3)]
        assert got == ["while away 1", "while away 2", "after"]
        await asyncio.sleep(0.2)
        assert bodies(alice.messages) == []  # "before" was acknowledged: not sent again
    finally:
        await asyncio.gather(alice.close(), bob.close(), return_exceptions=True)
        await relay.stop()


async def test_an_account_registered_on_one_cluster_node_logs_in_on_the_other_and_messages_cross(
        ejabberd_pair: tuple[EjabberdNode, ...]) -> None:
    seed, other = ejabberd_pair
    assert cluster_members(other) == {seed.name, other.name}
    alice = client(other, "alice@localhost/b", "alice-secret")  # registered on the seed only
    bob = client(seed, "bob@localhost/a", "bob-secret")
    try:
        await alice.connect()
        await bob.connect()
        bob.xmpp.send_message(mto=JID("alice@localhost/b"), mbody="from node a", mtype="chat")
        assert (await alice.next_message())["body"] == "from node a"
        alice.xmpp.send_message(mto=JID("bob@localhost/a"), mbody="from node b", mtype="chat")
        assert (await bob.next_message())["body"] == "from node b"
    finally:
        await asyncio.gather(alice.close(), bob.close(), return_exceptions=True)
