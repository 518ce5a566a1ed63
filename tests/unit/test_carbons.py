"""XEP-0280 message carbons through the router, read as conversations."""

from __future__ import annotations

from lxml import etree

from boshcm.jid import JID
from boshcm.stanza import Element
from boshcm.xmpp.carbons import NS_CARBONS, NS_FORWARD
from tests.unit.test_router import ALICE_DESK, ALICE_PHONE, BOB, Server, delivered, error_condition

ENABLE = f"<iq type='set' id='c1'><enable xmlns='{NS_CARBONS}'/></iq>"
DISABLE = f"<iq type='set' id='c2'><disable xmlns='{NS_CARBONS}'/></iq>"
BOB_PHONE = JID.parse("bob@localhost/phone")


def carbon(stanza: Element) -> tuple[str, Element] | None:
    """('sent'|'received', the forwarded message) for a carbon copy, else None."""
    for direction in ("sent", "received"):
        wrapper = stanza.find(f"{{{NS_CARBONS}}}{direction}")
        if wrapper is not None:
            inner = wrapper.find(f"{{{NS_FORWARD}}}forwarded/{{jabber:client}}message")
            assert inner is not None
            return direction, inner
    return None


def world() -> Server:
    server = Server()
    for jid in (ALICE_DESK, ALICE_PHONE, BOB, BOB_PHONE):
        server.online(jid)
    return server


def test_enabling_carbons_is_answered_and_advertised() -> None:
    server = world()
    ((to, reply),) = delivered(server.send(ALICE_PHONE, ENABLE))
    assert to == str(ALICE_PHONE) and reply.get("type") == "result" and reply.get("id") == "c1"
    ((_, info),) = delivered(server.send(ALICE_DESK, "<iq type='get' id='d' to='localhost'>"
                                         "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"))
    assert NS_CARBONS in [feature.get("var") for feature in info.iter("{*}feature")]


def test_sent_and_received_copies_go_to_enabled_resources_that_did_not_get_the_message() -> None:
    server = world()
    server.send(ALICE_PHONE, ENABLE)
    server.send(BOB_PHONE, ENABLE)
    actions = server.send(ALICE_DESK,
                          "<message to='bob@localhost/laptop' type='chat' id='m1'><body>hi</body></message>")
    by_recipient = dict(delivered(actions))
    assert set(by_recipient) == {str(BOB), str(ALICE_PHONE), str(BOB_PHONE)}
    assert carbon(by_recipient[str(BOB)]) is None
    sent = by_recipient[str(ALICE_PHONE)]
    assert sent.get("from") == "alice@localhost" and sent.get("to") == str(ALICE_PHONE)
    direction, inner = carbon(sent) or ("", sent)
    assert direction == "sent" and inner.get("from") == str(ALICE_DESK) and inner.findtext("{*}body") == "hi"
    received = by_recipient[str(BOB_PHONE)]
    assert received.get("from") == "bob@localhost"
    direction, inner = carbon(received) or ("", received)
    assert direction == "received" and inner.get("to") == str(BOB) and inner.get("id") == "m1"


HI_DESK = "<message to='alice@localhost/desk' type='chat'><body>hi</body></message>"


def test_no_copies_for_resources_that_did_not_enable_or_disabled_again() -> None:
    server = world()
    assert [to for to, _ in delivered(server.send(BOB, HI_DESK))] == [str(ALICE_DESK)]
    server.send(ALICE_PHONE, ENABLE)
    assert [to for to, _ in delivered(server.send(BOB, HI_DESK))] == [str(ALICE_DESK), str(ALICE_PHONE)]
    server.send(ALICE_PHONE, DISABLE)
    assert [to for to, _ in delivered(server.send(BOB, HI_DESK))] == [str(ALICE_DESK)]


def test_private_no_copy_groupchat_and_bodyless_normal_messages_are_not_copied() -> None:
    server = world()
    server.send(ALICE_PHONE, ENABLE)
    plain = "<message to='bob@localhost/laptop' type='chat'><body>x</body></message>"
    assert [to for to, _ in delivered(server.send(ALICE_DESK, plain))] == [str(BOB), str(ALICE_PHONE)]
    for text in (f"<message to='bob@localhost/laptop' type='chat'><body>x</body><private xmlns='{NS_CARBONS}'/>"
                 "</message>",
                 "<message to='bob@localhost/laptop' type='chat'><body>x</body><no-copy xmlns='urn:xmpp:hints'/>"
                 "</message>",
                 "<message to='bob@localhost/laptop'><x xmlns='jabber:x:oob'/></message>",
                 "<message to='bob@localhost/laptop' type='headline'><body>x</body></message>"):
        assert [to for to, _ in delivered(server.send(ALICE_DESK, text))] == [str(BOB)], text


def test_a_copy_sent_by_a_client_is_not_copied_again() -> None:
    server = world()
    server.send(BOB_PHONE, ENABLE)
    plain = "<message to='bob@localhost/laptop' type='chat'><body>x</body></message>"
    assert [to for to, _ in delivered(server.send(ALICE_DESK, plain))] == [str(BOB), str(BOB_PHONE)]
    forged = (f"<message to='bob@localhost/laptop' type='chat'><received xmlns='{NS_CARBONS}'>"
              f"<forwarded xmlns='{NS_FORWARD}'><message xmlns='jabber:client' from='carol@localhost/x' "
              "type='chat'><body>trust me</body></message></forwarded></received></message>")
    assert [to for to, _ in delivered(server.send(ALICE_DESK, forged))] == [str(BOB)]


def test_carbons_end_with_the_resource() -> None:
    server = world()
    server.send(ALICE_PHONE, ENABLE)
    assert [to for to, _ in delivered(server.send(BOB, HI_DESK))] == [str(ALICE_DESK), str(ALICE_PHONE)]
    server.router.unbind(ALICE_PHONE, 0.0)
    server.online(ALICE_PHONE)
    assert [to for to, _ in delivered(server.send(BOB, HI_DESK))] == [str(ALICE_DESK)]


def test_carbons_get_is_bad_request() -> None:
    server = world()
    ((_, reply),) = delivered(server.send(ALICE_PHONE, f"<iq type='get' id='c'><enable xmlns='{NS_CARBONS}'/></iq>"))
    assert reply.get("type") == "error" and error_condition(reply) == "bad-request"
    assert etree.QName(reply).localname == "iq"
