"""XEP-0352 client state indication: the pure holder, and a bound client session that uses it."""

from __future__ import annotations

from lxml import etree

from boshcm.stanza import NS_CLIENT, Element, qname
from boshcm.xmpp.client_session import SendElement, StanzaForClient
from boshcm.xmpp.csi import NS_CHAT_STATES, NS_CSI, ClientState
from tests.unit.test_client_session import NOW, Conversation, features_of, sent


def presence(sender: str, show: str | None = None, kind: str | None = None) -> Element:
    stanza = etree.Element(qname(NS_CLIENT, "presence"), {"from": sender, "to": "alice@localhost/desk"})
    if kind is not None:
        stanza.set("type", kind)
    if show is not None:
        etree.SubElement(stanza, qname(NS_CLIENT, "show")).text = show
    return stanza


def chat_state(sender: str, state: str) -> Element:
    stanza = etree.Element(qname(NS_CLIENT, "message"), {"from": sender, "type": "chat"})
    etree.SubElement(stanza, qname(NS_CHAT_STATES, state))
    return stanza


def chat(sender: str, body: str) -> Element:
    stanza = etree.Element(qname(NS_CLIENT, "message"), {"from": sender, "type": "chat"})
    etree.SubElement(stanza, qname(NS_CLIENT, "body")).text = body
    etree.SubElement(stanza, qname(NS_CHAT_STATES, "active"))
    return stanza


def describe(stanzas: list[Element]) -> list[str]:
    out = []
    for stanza in stanzas:
        show = stanza.findtext(qname(NS_CLIENT, "show"))
        body = stanza.findtext(qname(NS_CLIENT, "body"))
        states = [etree.QName(child).localname for child in stanza if etree.QName(child).namespace == NS_CHAT_STATES]
        detail = body or show or (states[0] if states else "") or stanza.get("type") or ""
        out.append(f"{etree.QName(stanza).localname} {stanza.get('from')} {detail}")
    return out


def test_active_client_gets_everything_at_once() -> None:
    state = ClientState()
    assert describe(state.outgoing(presence("bob@localhost/a", "away"))) == ["presence bob@localhost/a away"]


def test_inactive_client_gets_only_the_latest_presence_of_each_contact_on_active() -> None:
    state = ClientState()
    state.set_inactive()
    assert state.outgoing(presence("bob@localhost/a", "away")) == []
    assert state.outgoing(presence("carol@localhost/b", "dnd")) == []
    assert state.outgoing(presence("bob@localhost/a", "xa")) == []
    assert state.outgoing(presence("carol@localhost/b", kind="unavailable")) == []
    assert describe(state.set_active()) == ["presence bob@localhost/a xa", "presence carol@localhost/b unavailable"]
    assert describe(state.outgoing(presence("bob@localhost/a", "chat"))) == ["presence bob@localhost/a chat"]


def test_a_message_with_a_body_goes_at_once_after_what_was_held_in_order() -> None:
    state = ClientState()
    state.set_inactive()
    assert state.outgoing(presence("bob@localhost/a", "away")) == []
    assert state.outgoing(chat_state("bob@localhost/a", "composing")) == []
    assert describe(state.outgoing(chat("bob@localhost/a", "hello"))) == [
        "presence bob@localhost/a away", "message bob@localhost/a composing", "message bob@localhost/a hello"]
    assert state.held == 0
    assert state.inactive  # still inactive: the next presence waits again
    assert state.outgoing(presence("bob@localhost/a", "dnd")) == []


def test_subscription_requests_and_errors_are_never_held() -> None:
    state = ClientState()
    state.set_inactive()
    assert state.outgoing(presence("bob@localhost/a", "away")) == []
    assert describe(state.outgoing(presence("bob@localhost", kind="subscribe"))) == [
        "presence bob@localhost/a away", "presence bob@localhost subscribe"]


def test_held_stanzas_are_bounded_and_flushed_rather_than_dropped() -> None:
    state = ClientState(max_held=3)
    state.set_inactive()
    for number in range(3):
        assert state.outgoing(presence(f"user{number}@localhost/r", "away")) == []
    released = state.outgoing(presence("user3@localhost/r", "away"))
    assert len(released) == 4 and state.held == 0


# --- in a client session --------------------------------------------------------------------------

def bound_session() -> Conversation:
    conversation = Conversation()
    conversation.login()
    return conversation


def deliver(conversation: Conversation, stanza: Element) -> list[Element]:
    return sent(conversation.session.handle(StanzaForClient(stanza=stanza), NOW))


def test_csi_is_advertised_after_authentication() -> None:
    conversation = Conversation()
    conversation.starttls()
    assert qname(NS_CSI, "csi") not in features_of(conversation.open())
    assert sent(conversation.plain_auth())
    assert qname(NS_CSI, "csi") in features_of(conversation.open())


def test_inactive_session_holds_presence_and_chat_states_and_flushes_them_on_active() -> None:
    conversation = bound_session()
    assert conversation.send(f"<inactive xmlns='{NS_CSI}'/>") == []
    assert deliver(conversation, presence("bob@localhost/a", "away")) == []
    assert deliver(conversation, chat_state("bob@localhost/a", "composing")) == []
    assert deliver(conversation, presence("bob@localhost/a", "xa")) == []
    actions = conversation.send(f"<active xmlns='{NS_CSI}'/>")
    assert all(isinstance(action, SendElement) for action in actions)
    assert describe(sent(actions)) == ["message bob@localhost/a composing", "presence bob@localhost/a xa"]


def test_inactive_session_sends_messages_at_once_preceded_by_what_it_held() -> None:
    conversation = bound_session()
    conversation.send(f"<inactive xmlns='{NS_CSI}'/>")
    assert deliver(conversation, chat_state("bob@localhost/a", "composing")) == []
    assert describe(deliver(conversation, chat("bob@localhost/a", "hi"))) == [
        "message bob@localhost/a composing", "message bob@localhost/a hi"]


def test_held_stanzas_are_counted_by_stream_management_only_when_they_go_out() -> None:
    conversation = bound_session()
    assert sent(conversation.send("<enable xmlns='urn:xmpp:sm:3'/>"))
    conversation.send(f"<inactive xmlns='{NS_CSI}'/>")
    deliver(conversation, presence("bob@localhost/a", "away"))
    sm = conversation.session.stream_management
    assert sm is not None and sm.sent == 0
    conversation.send(f"<active xmlns='{NS_CSI}'/>")
    assert sm.sent == 1
