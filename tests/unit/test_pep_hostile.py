"""Hostile PEP and blocking requests: whatever the shape, one answer to the sender, no exception, strict XML out."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from boshcm.jid import JID
from boshcm.xml.parser import StanzaReceived, StreamParser
from boshcm.xml.writer import serialize
from boshcm.xmpp.blocking import Blocklists, MemoryBlocklistStore
from boshcm.xmpp.pubsub import MemoryPepStore, PepLimits
from boshcm.xmpp.router import Deliver, Router
from boshcm.xmpp.storage import MemoryStore, RosterItem
from tests.property.test_xml_parser_properties import namespaced_elements, xml_text

ALICE, BOB = JID.parse("alice@localhost/a"), JID.parse("bob@localhost/b")
HEADER = (b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
          b"to='localhost' version='1.0'>")
PUBSUB = ["http://jabber.org/protocol/pubsub", "http://jabber.org/protocol/pubsub#owner", "urn:xmpp:blocking"]
VERBS = ["publish", "retract", "items", "create", "configure", "delete", "purge", "default", "subscribe",
         "publish-options", "item", "block", "unblock", "blocklist", "x", "field"]


class Users:
    anonymous: frozenset[str] = frozenset()

    def exists(self, username: str) -> bool:
        return username in {"alice", "bob"}


@st.composite
def requests(draw: st.DrawFn) -> str:
    """An iq get/set to alice's or bob's account with a pubsub- or blocking-shaped payload of random parts."""
    def part(depth: int) -> st.SearchStrategy[str]:
        @st.composite
        def build(inner: st.DrawFn) -> str:
            name = inner(st.sampled_from(VERBS))
            attrs = inner(st.dictionaries(st.sampled_from(["node", "id", "jid", "max_items", "notify", "type",
                                                           "var"]), xml_text, max_size=3))
            children = inner(st.lists(st.one_of(part(depth + 1), namespaced_elements(2)), max_size=3)) \
                if depth < 3 else []
            text = inner(xml_text)
            attributes = "".join(f" {key}={quoteattr(value)}" for key, value in attrs.items())
            return f"<{name}{attributes}>{''.join(children)}{text}</{name}>"
        return build()

    namespace = draw(st.sampled_from(PUBSUB))
    root = "pubsub" if "pubsub" in namespace else draw(st.sampled_from(["block", "unblock", "blocklist"]))
    body = "".join(draw(st.lists(part(1), max_size=3)))
    to = draw(st.sampled_from(["", " to='alice@localhost'", " to='bob@localhost'"]))
    verb = draw(st.sampled_from(["get", "set"]))
    return f"<iq type='{verb}' id='q'{to}><{root} xmlns='{namespace}'>{body}</{root}></iq>"


def make_router() -> Router:
    store = MemoryStore()
    store.put_roster_item("alice", RosterItem(jid=JID.parse("bob@localhost"), subscription="both"))
    store.put_roster_item("bob", RosterItem(jid=JID.parse("alice@localhost"), subscription="both"))
    router = Router(domain="localhost", users=Users(), store=store, wall_clock=lambda: 0.0,
                    pep_store=MemoryPepStore(), pep_limits=PepLimits(max_item_bytes=512, max_nodes_per_account=3),
                    blocking=Blocklists(MemoryBlocklistStore(), max_items=3))
    for jid in (ALICE, BOB):
        router.bind(jid, 0.0)
        router.handle_stanza(jid, etree.fromstring("<presence xmlns='jabber:client'/>"), 0.0)
    return router


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(requests(), min_size=1, max_size=4))
def test_any_pubsub_or_blocking_request_gets_one_answer_and_strict_xml(texts: list[str]) -> None:
    router = make_router()
    for text in texts:
        for event in StreamParser().feed(HEADER + text.encode()):
            if not isinstance(event, StanzaReceived):
                continue
            actions = router.handle_stanza(ALICE, event.element, 0.0)
            answers = [a for a in actions if isinstance(a, Deliver) and a.to == ALICE
                       and a.stanza.get("id") == "q" and etree.QName(a.stanza).localname == "iq"]
            assert len(answers) == 1 and answers[0].stanza.get("type") in ("result", "error")
            for action in actions:
                assert isinstance(action, Deliver)
                etree.fromstring(serialize(action.stanza), etree.XMLParser(resolve_entities=False))
