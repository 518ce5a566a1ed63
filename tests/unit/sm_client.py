"""Client sessions over a real router without sockets, for the XEP-0198 conversations (test_stream_management.py,
test_guest_resumption.py): a fake clock gives `now`, and a small hub stand-in performs the router's deliveries the
way xmpp/hub.py does (through `StanzaForClient`)."""

from __future__ import annotations

import base64
from typing import Any

from lxml import etree

from boshcm.jid import JID
from boshcm.stanza import NS_BIND, NS_CLIENT, NS_SASL, Element, qname
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
from boshcm.xmpp.resumption import ResumptionTable
from boshcm.xmpp.router import Deliver, Disconnect, Router, RouterAction
from boshcm.xmpp.storage import MemoryStore
from boshcm.xmpp.stream_management import NS_SM, SmLimits
from boshcm.xmpp.throttle import AuthThrottle
from tests.unit.test_client_session import with_keys_derived

SM = f"xmlns='{NS_SM}'"


class Users:
    """Accounts alice and bob, and the guests online now (the set sessions share, as in app.py)."""

    def __init__(self) -> None:
        self.anonymous: set[str] = set()

    def exists(self, username: str) -> bool:
        return username in self.anonymous or username in {"alice", "bob"}


class World:
    """A router, the resumption table and a hub stand-in that performs deliveries like xmpp/hub.py.
    `anonymous`: SASL ANONYMOUS is offered (guests); `limits`: the `SmLimits`."""

    def __init__(self, *, anonymous: bool = False, max_detached: int = 100, **limits: Any) -> None:
        self.users = Users()
        self.store = MemoryStore()
        self.router = Router(domain="localhost", users=self.users, store=self.store,
                             wall_clock=lambda: 1_700_000_000.0)
        self.accounts = AccountStore(":memory:")
        self.accounts.add("alice", "alice-secret")
        self.accounts.add("bob", "bob-secret")
        self.table: ResumptionTable[ClientSession] = ResumptionTable(max_detached=max_detached)
        self.settings = SessionSettings(domain="localhost", tls_policy=TlsPolicy.DISABLED, anonymous=anonymous,
                                        stream_management=SmLimits(**limits))
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
        """Let the resumption window pass and end the detached sessions, as the hub's timer does."""
        self.now += self.settings.stream_management.resume_seconds + 1
        for session in self.table.expired(self.now):
            self.perform(session.handle(ResumptionExpired(), self.now))


class Client:
    """One client stream of `user` (None: a guest, SASL ANONYMOUS): what it was sent, in order."""

    def __init__(self, world: World, user: str | None = None) -> None:
        self.world, self.user = world, user
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

    def authenticate(self) -> list[Element]:
        """SASL PLAIN as the user, or ANONYMOUS (a new guest name); what the restarted stream says."""
        self.take(self.session.handle(StreamStarted(to="localhost"), self.world.now))
        if self.user is None:
            self.send(f"<auth xmlns='{NS_SASL}' mechanism='ANONYMOUS'/>")
        else:
            payload = base64.b64encode(f"\0{self.user}\0{self.user}-secret".encode()).decode()
            self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{payload}</auth>")
        before = len(self.received)
        self.take(self.session.handle(StreamStarted(to="localhost"), self.world.now))
        return self.received[before:]

    def bind(self, resource: str | None = None) -> None:
        """Bind `resource`, or one the server picks."""
        wanted = f"<resource>{resource}</resource>" if resource is not None else ""
        self.send(f"<iq xmlns='{NS_CLIENT}' type='set' id='bind'><bind xmlns='{NS_BIND}'>{wanted}</bind></iq>")

    def online(self, resource: str | None = None, *, enable: str | None = "resume='true'") -> Element | None:
        """Log in, bind, enable stream management (unless `enable` is None) and send initial presence."""
        self.authenticate()
        self.bind(resource)
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
