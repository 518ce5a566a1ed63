"""The same MUC scenario against boshcm and against Prosody's MUC (Debian): every client must see the same.

Recorded per client: each stanza from the room, as (kind, sender nick, type, status codes, what it carries).
Things XEP-0045 leaves open (ids, stanza-id values, message wording) are not recorded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from boshcm.app import Server
from boshcm.config import load_config
from boshcm.tls import SELF_SIGNED_CERT
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient
from tests.interop.prosody import Prosody

pytestmark = pytest.mark.interop

ROOM = "arena@conference.localhost"
Record = tuple[str, str, str, tuple[str, ...], str]


class Recorder:
    def __init__(self, client: XmppClient) -> None:
        self.seen: list[Record] = []
        client.xmpp.add_filter("in", self._record)

    def _record(self, stanza: Any) -> Any:
        element = stanza.xml  # slixmpp keeps the stanza as an ElementTree element
        sender = element.get("from", "")
        kind = element.tag.rpartition("}")[2]
        if sender.split("/")[0] == ROOM and kind in ("presence", "message"):
            codes = tuple(sorted(s.get("code", "") for s in element.iter("{http://jabber.org/protocol/muc#user}status")))
            carries = ("subject" if element.find("{jabber:client}subject") is not None else
                       "body" if element.find("{jabber:client}body") is not None else "")
            nick = sender.partition("/")[2]
            self.seen.append((kind, nick, element.get("type", ""), codes, carries))
        return stanza


async def scenario(port: int, cert: Path) -> dict[str, list[Record]]:
    alice = XmppClient("alice@localhost/desk", "alice-secret", port=port, ca_cert=cert,
                       plugins=("xep_0045", "xep_0004"))
    bob = XmppClient("bob@localhost/phone", "bob-secret", port=port, ca_cert=cert, plugins=("xep_0045",))
    recorders = {"alice": Recorder(alice), "bob": Recorder(bob)}
    try:
        for client in (alice, bob):
            await client.connect()
        muc_alice, muc_bob = alice.xmpp.plugin["xep_0045"], bob.xmpp.plugin["xep_0045"]
        await muc_alice.join_muc_wait(ROOM, "Alice", maxstanzas=0, timeout=TIMEOUT_SECONDS)
        await muc_alice.set_room_config(ROOM, alice.xmpp.plugin["xep_0004"].make_form(ftype="submit"))
        await muc_bob.join_muc_wait(ROOM, "Bob", maxstanzas=0, timeout=TIMEOUT_SECONDS)
        await settle()
        bob.xmpp.send_message(mto=ROOM, mbody="hello arena", mtype="groupchat")
        await settle()
        bob.xmpp.send_presence(pto=f"{ROOM}/Robert")
        await settle()
        await muc_alice.set_role(ROOM, "Robert", "none", reason="testing")
        await settle()
        await muc_bob.join_muc_wait(ROOM, "Bob", maxstanzas=0, timeout=TIMEOUT_SECONDS)
        await settle()
        await muc_alice.set_affiliation(ROOM, "outcast", jid="bob@localhost")
        await settle()
    finally:
        await asyncio.gather(alice.close(), bob.close(), return_exceptions=True)
    return {name: recorder.seen for name, recorder in recorders.items()}


async def settle() -> None:
    await asyncio.sleep(0.3)


async def test_clients_see_the_same_room_on_boshcm_and_on_prosody(prosody: Prosody, tmp_path: Path) -> None:
    reference = await scenario(prosody.c2s_port, prosody.cert_path)
    config = load_config(None, {"quizbot.enabled": False,
                                "server.data_dir": str(tmp_path / "boshcm"), "c2s.listen": "127.0.0.1:0",
                                "http.enabled": False})
    server = Server(config)
    server.accounts.add("alice", "alice-secret")
    server.accounts.add("bob", "bob-secret")
    await server.start()
    try:
        ours = await scenario(server.c2s.port, config.data_path / SELF_SIGNED_CERT)
    finally:
        await server.stop()
    for name in ("alice", "bob"):
        assert ours[name] == reference[name], f"{name} sees a different room:\n{ours[name]}\n{reference[name]}"
