"""A second, independent client implementation: go-sendxmpp (Debian), built on the go-xmpp library."""

from __future__ import annotations

import asyncio
import shutil

from boshcm.app import Server
from tests.integration.test_c2s import logged_in
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient

GO_SENDXMPP = shutil.which("go-sendxmpp")


def go_sendxmpp(server: Server, user: str, password: str, *args: str) -> list[str]:
    assert GO_SENDXMPP, "go-sendxmpp is missing: scripts/test.sh installs it with apt-get"
    return [GO_SENDXMPP, "-u", user, "-p", password, "-j", f"127.0.0.1:{server.c2s.port}",
            "-n",  # the test server's certificate is self-signed
            "--timeout", "10", *args]


async def test_go_sendxmpp_logs_in_and_its_message_reaches_a_slixmpp_user(
        server: Server, clients: list[XmppClient]) -> None:
    bob = await logged_in(server, clients, "bob@localhost/phone", "bob-secret")
    process = await asyncio.create_subprocess_exec(
        *go_sendxmpp(server, "alice@localhost", "alice-secret", "bob@localhost"),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _out, err = await asyncio.wait_for(process.communicate("Grüße aus Go".encode()), TIMEOUT_SECONDS * 2)
    assert process.returncode == 0, err.decode()
    message = await bob.next_message()
    assert message["body"] == "Grüße aus Go"
    assert message["from"].bare == "alice@localhost"


async def test_go_sendxmpp_receives_offline_and_live_messages(server: Server, clients: list[XmppClient]) -> None:
    alice = await logged_in(server, clients, "alice@localhost/desk", "alice-secret")
    alice.xmpp.send_message(mto="bob@localhost", mbody="stored while you were away", mtype="chat")
    await alice.xmpp.plugin["xep_0199"].ping(jid="localhost", timeout=TIMEOUT_SECONDS)

    listener = await asyncio.create_subprocess_exec(
        *go_sendxmpp(server, "bob@localhost", "bob-secret", "--listen"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert listener.stdout is not None
        first = await asyncio.wait_for(listener.stdout.readline(), TIMEOUT_SECONDS)
        assert first.decode().rstrip().endswith("alice@localhost: stored while you were away")
        alice.xmpp.send_message(mto="bob@localhost", mbody="and this one live", mtype="chat")
        second = await asyncio.wait_for(listener.stdout.readline(), TIMEOUT_SECONDS)
        assert second.decode().rstrip().endswith("alice@localhost: and this one live")
    finally:
        listener.terminate()
        await listener.wait()
