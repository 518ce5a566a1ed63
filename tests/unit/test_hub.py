"""The hub (boshcm/xmpp/hub.py): which sink is bound to which JID, and the performer of router orders."""

from __future__ import annotations

from lxml import etree

from boshcm.errors import StreamErrorCondition
from boshcm.jid import JID
from boshcm.stanza import Element
from boshcm.xmpp.hub import Hub, HubSeat
from boshcm.xmpp.router import Deliver, Disconnect

ALICE = JID.parse("alice@localhost/desk")
BOB = JID.parse("bob@localhost/phone")


class Sink:
    def __init__(self) -> None:
        self.stanzas: list[str] = []
        self.closed: list[StreamErrorCondition] = []

    def deliver(self, stanza: Element) -> None:
        self.stanzas.append(stanza.get("id", ""))

    def disconnect(self, condition: StreamErrorCondition) -> None:
        self.closed.append(condition)


def message(stanza_id: str) -> Element:
    return etree.fromstring(f"<message xmlns='jabber:client' id='{stanza_id}'/>")


def test_deliver_goes_to_the_sink_bound_to_the_full_jid() -> None:
    hub, alice, bob = Hub(), Sink(), Sink()
    hub.register(ALICE, alice)
    hub.register(BOB, bob)
    hub.perform([Deliver(to=ALICE, stanza=message("1")), Deliver(to=BOB, stanza=message("2")),
                 Deliver(to=ALICE, stanza=message("3"))])
    assert alice.stanzas == ["1", "3"] and bob.stanzas == ["2"] and hub.delivered == 3


def test_deliver_to_a_gone_sink_is_dropped_and_not_counted() -> None:
    hub, alice = Hub(), Sink()
    hub.register(ALICE, alice)
    hub.unregister(ALICE, alice)
    hub.perform([Deliver(to=ALICE, stanza=message("1")), Deliver(to=BOB, stanza=message("2"))])
    assert alice.stanzas == [] and hub.delivered == 0


def test_only_the_owning_sink_can_unregister_a_jid() -> None:
    """A replaced session leaves after its successor bound the same JID: it must not unbind the successor."""
    hub, old, new = Hub(), Sink(), Sink()
    hub.register(ALICE, old)
    hub.register(ALICE, new)
    hub.unregister(ALICE, old)
    hub.perform([Deliver(to=ALICE, stanza=message("1"))])
    assert new.stanzas == ["1"] and old.stanzas == []
    hub.unregister(ALICE, new)
    hub.perform([Deliver(to=ALICE, stanza=message("2"))])
    assert new.stanzas == ["1"]


def test_disconnect_closes_the_sink_once_and_unbinds_it() -> None:
    hub, alice = Hub(), Sink()
    hub.register(ALICE, alice)
    hub.perform([Disconnect(jid=ALICE, condition=StreamErrorCondition.CONFLICT),
                 Deliver(to=ALICE, stanza=message("late")),
                 Disconnect(jid=ALICE, condition=StreamErrorCondition.CONFLICT)])
    assert alice.closed == [StreamErrorCondition.CONFLICT] and alice.stanzas == []


def test_disconnect_of_an_unbound_jid_does_nothing() -> None:
    hub, bob = Hub(), Sink()
    hub.register(BOB, bob)
    hub.perform([Disconnect(jid=ALICE, condition=StreamErrorCondition.CONFLICT)])
    hub.perform([Deliver(to=BOB, stanza=message("1"))])
    assert bob.closed == [] and bob.stanzas == ["1"]


def test_a_seat_releases_only_its_own_binding_and_only_once() -> None:
    hub, old, new = Hub(), Sink(), Sink()
    first, second = HubSeat(hub), HubSeat(hub)
    first.take(ALICE, old)
    second.take(ALICE, new)    # the same resource bound again: the newer session owns it
    first.release(old)
    hub.perform([Deliver(to=ALICE, stanza=message("1"))])
    assert new.stanzas == ["1"]
    second.release(new)
    second.release(new)
    hub.perform([Deliver(to=ALICE, stanza=message("2"))])
    assert new.stanzas == ["1"] and old.stanzas == []
