"""XEP-0198 resumption for guests (SASL ANONYMOUS), as conversations over a real router and a room.

A guest gets a new random name at every anonymous login, so "the same account" (XEP-0198 §5) cannot be its
name: the resumption id (unguessable, told only to the stream that enabled it) is the proof, and only
another anonymous login may present a guest's id. The resuming stream's own throw-away name disappears; the
guest keeps its JID, presence and rooms while detached, and loses them for good when the window expires.
"""

from __future__ import annotations

import base64

from lxml import etree

from boshcm.errors import StreamErrorCondition
from boshcm.jid import JID
from boshcm.stanza import NS_BIND, NS_CLIENT, NS_SASL, NS_STANZAS, Element, qname
from boshcm.xmpp.accounts import AccountStore
from boshcm.xmpp.client_session import (
    Bound,
    ClientSession,
    CloseStream,
    Detach,
    ElementReceived,
    Replaced,
    ResumptionExpired,
    SendElement,
    SessionAction,
    SessionSettings,
    StanzaForClient,
    StreamStarted,
    TlsPolicy,
    Transport,
    TransportClosed,
)
from boshcm.xmpp.muc.service import MucService, RoomStore
from boshcm.xmpp.resumption import ResumptionTable
from boshcm.xmpp.router import Deliver, Disconnect, Router, RouterAction
from boshcm.xmpp.storage import MemoryStore, RosterItem
from boshcm.xmpp.stream_management import NS_SM, SmLimits
from boshcm.xmpp.throttle import AuthThrottle
from tests.unit.test_client_session import with_keys_derived

SM = f"xmlns='{NS_SM}'"
ROOM = "lobby@conference.localhost"


class Users:
    """Accounts alice and bob, and the guests online now (the set sessions share, as in app.py)."""

    def __init__(self) -> None:
        self.anonymous: set[str] = set()

    def exists(self, username: str) -> bool:
        return username in self.anonymous or username in {"alice", "bob"}


class World:
    def __init__(self, *, max_detached: int = 100) -> None:
        self.users = Users()
        self.store = MemoryStore()
        self.router = Router(domain="localhost", users=self.users, store=self.store,
                             wall_clock=lambda: 1_700_000_000.0)
        self.muc = MucService(domain="conference.localhost", store=RoomStore(":memory:"),
                              wall_clock=lambda: 1_700_000_000.0,
                              is_guest=lambda jid: jid.domain == "localhost" and jid.local in self.users.anonymous)
        self.router.add_component("conference.localhost", self.muc, "Chatrooms")
        self.accounts = AccountStore(":memory:")
        self.accounts.add("alice", "alice-secret")
        self.accounts.add("bob", "bob-secret")
        self.table: ResumptionTable[ClientSession] = ResumptionTable(max_detached=max_detached)
        self.settings = SessionSettings(domain="localhost", tls_policy=TlsPolicy.DISABLED, anonymous=True,
                                        stream_management=SmLimits(resume_seconds=60))
        self.sessions: dict[JID, Client] = {}
        self.now = 1000.0
        self.ids = iter(f"sm-{number}" for number in range(100))

    def perform(self, actions: list[RouterAction] | list[SessionAction], source: Client | None = None) -> None:
        for action in actions:
            if isinstance(action, Deliver) and (client := self.sessions.get(action.to)) is not None:
                client.take(client.session.handle(StanzaForClient(stanza=action.stanza), self.now))
            elif isinstance(action, Disconnect) and (client := self.sessions.pop(action.jid, None)) is not None:
                client.take(client.session.handle(Replaced(condition=action.condition), self.now))
            elif isinstance(action, Bound) and source is not None:
                self.sessions[action.jid] = source

    def expire(self) -> None:
        self.now += 61
        for session in self.table.expired(self.now):
            self.perform(session.handle(ResumptionExpired(), self.now))


class Client:
    def __init__(self, world: World) -> None:
        self.world = world
        self.session = ClientSession(settings=world.settings, router=world.router, accounts=world.accounts,
                                     throttle=AuthThrottle(), now=world.now, resumptions=world.table,
                                     guests=world.users.anonymous,
                                     transport=Transport(secure=True, can_starttls=False, remote_address="192.0.2.1"),
                                     sm_id_factory=lambda: next(world.ids))
        self.received: list[Element] = []
        self.closed: list[CloseStream] = []
        self.detached = False

    def take(self, actions: list[SessionAction]) -> None:
        actions = with_keys_derived(self.session, actions, self.world.now)
        for action in actions:
            if isinstance(action, SendElement):
                self.received.append(action.element)
            elif isinstance(action, CloseStream):
                self.closed.append(action)
            elif isinstance(action, Detach):
                self.detached = True
        self.world.perform(actions, self)

    def send(self, text: str) -> list[Element]:
        before = len(self.received)
        self.take(self.session.handle(ElementReceived(element=etree.fromstring(text)), self.world.now))
        return self.received[before:]

    def authenticate(self, user: str | None = None) -> None:
        """SASL PLAIN as `user`, or ANONYMOUS (a new guest name) when None."""
        self.take(self.session.handle(StreamStarted(to="localhost"), self.world.now))
        if user is None:
            self.send(f"<auth xmlns='{NS_SASL}' mechanism='ANONYMOUS'/>")
        else:
            payload = base64.b64encode(f"\0{user}\0{user}-secret".encode()).decode()
            self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
        self.take(self.session.handle(StreamStarted(to="localhost"), self.world.now))

    def online(self, user: str | None = None, *, enable: str | None = "resume='true'") -> Element | None:
        self.authenticate(user)
        self.send(f"<iq xmlns='{NS_CLIENT}' type='set' id='bind'><bind xmlns='{NS_BIND}'/></iq>")
        enabled = self.send(f"<enable {SM} {enable}/>")[0] if enable is not None else None
        self.send(f"<presence xmlns='{NS_CLIENT}'/>")
        return enabled

    @property
    def jid(self) -> JID:
        assert self.session.jid is not None
        return self.session.jid

    def messages(self) -> list[str]:
        return [m.findtext(qname(NS_CLIENT, "body")) or "" for m in self.received
                if m.tag == qname(NS_CLIENT, "message")]

    def drop(self) -> None:
        self.take(self.session.handle(TransportClosed(), self.world.now))


def chat(to: JID | str, body: str) -> str:
    return f"<message xmlns='{NS_CLIENT}' to='{to}' type='chat'><body>{body}</body></message>"


def tag(element: Element) -> str:
    return etree.QName(element).localname


def item_not_found(elements: list[Element]) -> bool:
    (failed,) = elements
    return tag(failed) == "failed" and failed.find(qname(NS_STANZAS, "item-not-found")) is not None


def test_a_guest_resumes_with_a_new_anonymous_login_and_its_throw_away_name_disappears() -> None:
    world = World()
    guest, bob = Client(world), Client(world)
    enabled = guest.online()
    assert enabled is not None and enabled.get("resume") == "true" and enabled.get("id") == "sm-0"
    name = guest.jid
    bob.online("bob", enable=None)
    bob.send(chat(name, "seen"))
    guest.drop()
    assert guest.detached and world.router.is_bound(name) and name.local in world.users.anonymous
    bob.send(chat(name, "while away"))

    again = Client(world)
    again.authenticate()  # a new random guest name, for now
    assert len(world.users.anonymous) == 2
    resumed, *_rest = again.send(f"<resume {SM} previd='sm-0' h='2'/>")
    assert (tag(resumed), resumed.get("previd")) == ("resumed", "sm-0")
    assert again.messages() == ["while away"]
    assert again.jid == name and world.sessions[name] is again
    assert world.users.anonymous == {name.local}  # the throw-away name is gone, the guest's stays
    bob.send(chat(name, "welcome back"))
    assert again.messages() == ["while away", "welcome back"]


def test_a_guests_id_is_not_resumable_by_an_account_nor_an_accounts_id_by_a_guest() -> None:
    world = World()
    guest, alice = Client(world), Client(world)
    guest.online()       # sm-0
    alice.online("alice")  # sm-1
    guest.drop()
    alice.drop()
    bob = Client(world)
    bob.authenticate("bob")
    assert item_not_found(bob.send(f"<resume {SM} previd='sm-0' h='0'/>"))
    stranger = Client(world)
    stranger.authenticate()
    assert item_not_found(stranger.send(f"<resume {SM} previd='sm-1' h='0'/>"))
    assert item_not_found(stranger.send(f"<resume {SM} previd='made-up' h='0'/>"))
    assert world.table.detached_count == 2  # both still waiting for their owners


def test_a_guest_resuming_over_its_still_open_stream_keeps_its_name() -> None:
    world = World()
    guest = Client(world)
    guest.online()
    name = guest.jid
    again = Client(world)
    again.authenticate()
    assert tag(again.send(f"<resume {SM} previd='sm-0' h='1'/>")[0]) == "resumed"
    assert [c.condition for c in guest.closed] == [StreamErrorCondition.CONFLICT]
    # The replaced stream closed without taking the guest's name (or binding) with it.
    assert world.users.anonymous == {name.local} and world.router.is_bound(name)


def test_when_a_guests_window_expires_its_rooms_see_it_leave_and_unacked_messages_go_back() -> None:
    world = World()
    guest, bob = Client(world), Client(world)
    guest.online()
    name = guest.jid
    bob.online("bob", enable=None)
    bob.send(f"<presence xmlns='{NS_CLIENT}' to='{ROOM}/bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
    bob.send(f"<iq xmlns='{NS_CLIENT}' to='{ROOM}' type='set' id='instant'><query "
             "xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>")
    guest.send(f"<presence xmlns='{NS_CLIENT}' to='{ROOM}/guest'><x xmlns='http://jabber.org/protocol/muc'/>"
               "</presence>")
    assert any(e.get("from") == f"{ROOM}/guest" for e in bob.received)
    world.router.handle_stanza(name, etree.fromstring(
        f"<iq xmlns='{NS_CLIENT}' type='set' id='r1'><query xmlns='jabber:iq:roster'>"
        f"<item jid='bob@localhost'/></query></iq>"), world.now)
    assert world.store.roster_items(name.local) != []
    guest.drop()
    before = len(bob.received)
    bob.send(chat(name, "still there?"))
    bob.send(chat(name.bare, "to the bare JID"))
    assert not [e for e in bob.received[before:] if e.get("type") in ("unavailable", "error")]  # it waits

    world.expire()
    after = bob.received[before:]
    left = [e for e in after if tag(e) == "presence" and e.get("type") == "unavailable"
            and e.get("from") == f"{ROOM}/guest"]
    assert len(left) == 1
    # RFC 6121 §8.5.2.2.1: no offline storage for a guest: both messages go back to bob.
    errors = [e for e in after if tag(e) == "message" and e.get("type") == "error"]
    assert sorted(e.findtext(qname(NS_CLIENT, "body")) or "" for e in errors) == ["still there?", "to the bare JID"]
    assert all(e.find(f"{{{NS_CLIENT}}}error/{{{NS_STANZAS}}}service-unavailable") is not None for e in errors)
    assert world.store.offline_messages(name.local) == []
    # Gone for good: unbound, no name, no roster, not resumable.
    assert not world.router.is_bound(name) and world.users.anonymous == set()
    assert world.store.roster_items(name.local) == []
    later = Client(world)
    later.authenticate()
    assert item_not_found(later.send(f"<resume {SM} previd='sm-0' h='0'/>"))


def test_detached_guests_count_against_the_one_bound_of_detached_sessions() -> None:
    world = World(max_detached=1)
    guest, alice, other = Client(world), Client(world), Client(world)
    guest.online()
    alice.online("alice")
    other.online()
    guest.drop()
    assert guest.detached
    alice.drop()
    other.drop()
    # The table is full: a lost connection ends its session at once, an account's as a guest's.
    assert not alice.detached and not other.detached and world.table.detached_count == 1
    assert world.users.anonymous == {guest.jid.local}


def test_guest_roster_items_do_not_outlive_a_session_that_ends_cleanly() -> None:
    world = World()
    guest = Client(world)
    guest.online(enable=None)
    name = guest.jid
    world.store.put_roster_item(name.local, RosterItem(jid=JID.parse("bob@localhost")))
    guest.drop()
    assert world.store.roster_items(name.local) == [] and world.users.anonymous == set()
