"""Service discovery tells the truth (issue 18, docs/protocol.md "XEP-0479 Compliance Suites 2023"): a real
slixmpp client asks the server, its own account, another account, conference.<domain> and upload.<domain>,
and each lists exactly the namespaces boshcm implements there, and nothing it does not (XEP-0357 push)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slixmpp import JID as XmppJid

from boshcm.app import Server
from boshcm.tls import SELF_SIGNED_CERT
from boshcm.xmpp.pubsub.service import FEATURES as PEP_FEATURES
from tests.integration.xmpp_client import TIMEOUT_SECONDS, XmppClient
from tests.servers import running_server

DISCO = ("http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items")
SERVER_FEATURES = {
    *DISCO,
    "urn:xmpp:ping",              # XEP-0199
    "jabber:iq:version",          # XEP-0092
    "jabber:iq:roster",           # RFC 6121 §2
    "msgoffline",                 # XEP-0160
    "urn:xmpp:delay",             # XEP-0203 on offline messages
    "urn:xmpp:carbons:2",         # XEP-0280
    "urn:xmpp:blocking",          # XEP-0191
    "vcard-temp",                 # XEP-0054
    "jabber:iq:private",          # XEP-0049
    "jabber:iq:register",         # XEP-0077 (registration.enabled)
}
# What every requester learns about an account's bare JID (PEP on, profiles on).
ACCOUNT_FEATURES = {
    *DISCO,
    *PEP_FEATURES,                          # XEP-0163 / XEP-0060 subset
    "urn:xmpp:pep-vcard-conversion:0",      # XEP-0398
    "urn:xmpp:bookmarks-conversion:0",      # XEP-0411
    "urn:xmpp:bookmarks:1#compat",          # XEP-0402 §5.3: private-storage bookmarks kept in step
}
# Only the owner has an archive to query, and only the owner's messages carry its stanza-ids.
OWNER_FEATURES = {"urn:xmpp:mam:2", "urn:xmpp:sid:0"}   # XEP-0313, XEP-0359
NOT_IMPLEMENTED = {
    "urn:xmpp:push:0",                      # XEP-0357
    "urn:xmpp:mam:2#extended",              # XEP-0313: no `ids` field, no flip-page
    "urn:xmpp:bookmarks:1#compat-pep",      # XEP-0402: XEP-0048-in-PEP is not converted
    "urn:xmpp:extdisco:2",                  # XEP-0215
}


async def client(server: Server, clients: list[XmppClient], jid: str, password: str, **options: Any) -> XmppClient:
    made = XmppClient(jid, password, port=server.c2s.port, ca_cert=server.config.data_path / SELF_SIGNED_CERT,
                      **options)
    clients.append(made)
    await made.connect()
    return made


async def info_of(asker: XmppClient, jid: str) -> tuple[set[tuple[str, str]], set[str]]:
    info = (await asker.xmpp.plugin["xep_0030"].get_info(jid=XmppJid(jid), timeout=TIMEOUT_SECONDS))["disco_info"]
    return {(category, kind) for category, kind, _lang, _name in info["identities"]}, set(info["features"])


async def test_server_disco_lists_exactly_what_the_server_implements(
        server: Server, clients: list[XmppClient]) -> None:
    alice = await client(server, clients, "alice@localhost/desk", "alice-secret")
    identities, features = await info_of(alice, "localhost")
    assert identities == {("server", "im")}
    assert features == SERVER_FEATURES
    items = await alice.xmpp.plugin["xep_0030"].get_items(jid=XmppJid("localhost"), timeout=TIMEOUT_SECONDS)
    assert {str(item[0]) for item in items["disco_items"]["items"]} == {"conference.localhost", "upload.localhost"}


async def test_own_account_disco_lists_pep_archive_and_bookmark_compat(
        server: Server, clients: list[XmppClient]) -> None:
    alice = await client(server, clients, "alice@localhost/desk", "alice-secret")
    identities, features = await info_of(alice, "alice@localhost")
    assert identities == {("account", "registered"), ("pubsub", "pep")}
    assert features == ACCOUNT_FEATURES | OWNER_FEATURES
    assert not features & NOT_IMPLEMENTED


async def test_another_account_disco_has_no_archive_features(server: Server, clients: list[XmppClient]) -> None:
    bob = await client(server, clients, "bob@localhost/desk", "bob-secret")
    identities, features = await info_of(bob, "alice@localhost")
    assert identities == {("account", "registered"), ("pubsub", "pep")}
    assert features == ACCOUNT_FEATURES


async def test_components_disco_lists_exactly_their_features(server: Server, clients: list[XmppClient]) -> None:
    alice = await client(server, clients, "alice@localhost/desk", "alice-secret")
    identities, features = await info_of(alice, "conference.localhost")
    assert identities == {("conference", "text")}
    assert features == {*DISCO, "http://jabber.org/protocol/muc", "urn:xmpp:occupant-id:0", "urn:xmpp:sid:0"}
    identities, features = await info_of(alice, "upload.localhost")
    assert identities == {("store", "file")}
    assert features == {*DISCO, "urn:xmpp:ping", "urn:xmpp:http:upload:0"}


async def test_a_guest_is_not_offered_an_archive_it_never_gets(tmp_path: Path) -> None:
    clients: list[XmppClient] = []
    async with running_server(tmp_path, {"c2s.anonymous": True}) as server:
        try:
            guest = await client(server, clients, "localhost", "", mechanism="ANONYMOUS")
            _identities, features = await info_of(guest, guest.xmpp.boundjid.bare)
            assert not features & OWNER_FEATURES
        finally:
            for made in clients:
                await made.close()


async def test_features_switched_off_are_not_advertised(tmp_path: Path) -> None:
    clients: list[XmppClient] = []
    off = {"pep.enabled": False, "blocking.enabled": False, "profile.enabled": False, "mam.enabled": False,
           "muc.enabled": False, "upload.enabled": False, "registration.enabled": False}
    async with running_server(tmp_path, off) as server:
        try:
            alice = await client(server, clients, "alice@localhost/desk", "alice-secret")
            identities, features = await info_of(alice, "localhost")
            assert identities == {("server", "im")}
            assert features == SERVER_FEATURES - {"urn:xmpp:blocking", "vcard-temp", "jabber:iq:private",
                                                  "jabber:iq:register"}
            items = await alice.xmpp.plugin["xep_0030"].get_items(jid=XmppJid("localhost"), timeout=TIMEOUT_SECONDS)
            assert not items["disco_items"]["items"]
            identities, features = await info_of(alice, "alice@localhost")
            assert identities == {("account", "registered")}
            assert features == {DISCO[0]}
        finally:
            for made in clients:
                await made.close()
