"""XEP-0313 archives with XEP-0059 paging: the pure service over both stores, and the router's account archive."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from boshcm.jid import JID
from boshcm.stanza import Element, make_stanza, sub
from boshcm.xmpp.mam import (
    NS_MAM,
    NS_RSM,
    NS_STANZA_ID,
    ArchiveService,
    ArchiveStore,
    Filter,
    MamLimits,
    MemoryArchiveStore,
    Party,
    SqliteArchiveStore,
)
from boshcm.xmpp.orders import ArchiveMessage, QueryArchive
from boshcm.xmpp.router import Deliver, Router, RouterAction, RouterMachine
from boshcm.xmpp.storage import MemoryStore
from tests.unit.test_router import ALICE_DESK, ALICE_PHONE, BOB, Users, delivered, error_condition

ALICE = JID.parse("alice@localhost")
DAY = 86_400.0
T0 = 1_700_000_000.0


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArchiveStore]:
    if request.param == "memory":
        yield MemoryArchiveStore()
        return
    sqlite = SqliteArchiveStore(tmp_path / "mam.sqlite", trim_every=1)
    yield sqlite
    sqlite.close()


def counter() -> Iterator[str]:
    number = 0
    while True:
        number += 1
        yield f"id{number}"


def service(store: ArchiveStore, **limits: float) -> ArchiveService:
    ids = counter()
    return ArchiveService(store=store, limits=MamLimits(**limits), id_factory=lambda: next(ids))  # type: ignore[arg-type]


def chat(sender: str, to: str, body: str) -> Element:
    message = make_stanza("message", {"from": sender, "to": to, "type": "chat"})
    sub(message, "jabber:client", "body", text=body)
    return message


def write(archive: ArchiveService, parties: list[Party], message: Element, wall: float) -> None:
    """What the router and the conference service do: take the entry (an order), then perform it."""
    _id, order = archive.entry(parties, message, wall)
    if order is not None:
        archive.perform(order)


def fill(archive: ArchiveService, count: int, *, start: float = T0, peer: str = "bob@localhost/laptop",
         prefix: str = "m") -> None:
    for number in range(count):
        write(archive, [Party(archive=ALICE, peer=JID.parse(peer))],
              chat(peer, "alice@localhost", f"{prefix}{number}"), start + number)


def query(archive: ArchiveService, *, rsm: str = "", form: str = "", wall: float = T0 + 1000,
          queryid: str = "q") -> tuple[list[Element], Element]:
    iq = etree.fromstring(f"<iq xmlns='jabber:client' type='set' id='i' from='alice@localhost/desk'>"
                          f"<query xmlns='{NS_MAM}' queryid='{queryid}'>{form}"
                          f"{f'<set xmlns={chr(39)}{NS_RSM}{chr(39)}>{rsm}</set>' if rsm else ''}</query></iq>")
    out = archive.handle_iq(ALICE, iq, wall)
    return out[:-1], out[-1]


def bodies(results: list[Element]) -> list[str | None]:
    return [result.findtext("{*}result/{*}forwarded/{*}message/{*}body") for result in results]


def fin(reply: Element) -> tuple[bool, str | None, str | None, str | None]:
    fin_element = reply.find(f"{{{NS_MAM}}}fin")
    assert fin_element is not None, etree.tostring(reply)
    return (fin_element.get("complete") == "true", fin_element.findtext(f"{{{NS_RSM}}}set/{{{NS_RSM}}}first"),
            fin_element.findtext(f"{{{NS_RSM}}}set/{{{NS_RSM}}}last"),
            fin_element.findtext(f"{{{NS_RSM}}}set/{{{NS_RSM}}}count"))


def form(**fields: str) -> str:
    values = "".join(f"<field var='{var}'><value>{value}</value></field>" for var, value in fields.items())
    return (f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>{NS_MAM}</value>"
            f"</field>{values}</x>")


def test_paging_forward_with_after_until_complete(store: ArchiveStore) -> None:
    archive = service(store)
    fill(archive, 5)
    results, reply = query(archive, rsm="<max>2</max>")
    assert bodies(results) == ["m0", "m1"] and fin(reply) == (False, "id1", "id2", "5")
    first = results[0]
    assert first.get("to") == "alice@localhost/desk" and first.get("from") == "alice@localhost"
    result = first.find(f"{{{NS_MAM}}}result")
    assert result is not None and result.get("queryid") == "q" and result.get("id") == "id1"
    assert first.find("{*}result/{*}forwarded/{urn:xmpp:delay}delay").get("stamp") == "2023-11-14T22:13:20.000Z"
    results, reply = query(archive, rsm="<max>2</max><after>id2</after>")
    assert bodies(results) == ["m2", "m3"] and not fin(reply)[0]
    results, reply = query(archive, rsm="<max>2</max><after>id4</after>")
    assert bodies(results) == ["m4"] and fin(reply)[0]


def test_paging_backward_from_the_newest_in_chronological_order(store: ArchiveStore) -> None:
    archive = service(store)
    fill(archive, 5)
    results, reply = query(archive, rsm="<max>2</max><before/>")
    assert bodies(results) == ["m3", "m4"] and fin(reply)[:3] == (False, "id4", "id5")
    results, reply = query(archive, rsm="<max>2</max><before>id4</before>")
    assert bodies(results) == ["m1", "m2"] and not fin(reply)[0]
    results, reply = query(archive, rsm="<max>2</max><before>id2</before>")
    assert bodies(results) == ["m0"] and fin(reply)[0]


def test_pages_are_capped_whatever_the_client_asks(store: ArchiveStore) -> None:
    archive = service(store, max_page=3)
    fill(archive, 5)
    results, reply = query(archive, rsm="<max>1000</max>")
    assert len(results) == 3 and not fin(reply)[0]
    results, reply = query(archive)
    assert len(results) == 3


def test_filters_with_start_and_end(store: ArchiveStore) -> None:
    archive = service(store)
    fill(archive, 3, peer="bob@localhost/laptop")
    fill(archive, 2, start=T0 + 10, peer="carol@localhost/x", prefix="c")
    results, _ = query(archive, form=form(**{"with": "carol@localhost"}))
    assert bodies(results) == ["c0", "c1"]
    results, _ = query(archive, form=form(**{"with": "bob@localhost/laptop", "start": "2023-11-14T22:13:21Z"}))
    assert bodies(results) == ["m1", "m2"]
    results, _ = query(archive, form=form(end="2023-11-14T22:13:21+00:00"))
    assert bodies(results) == ["m0", "m1"]


def test_bad_queries_get_the_specified_errors(store: ArchiveStore) -> None:
    archive = service(store)
    fill(archive, 1)
    for rsm, extra, condition in (("<after>nope</after>", "", "item-not-found"),
                                  ("<max>many</max>", "", "bad-request"),
                                  ("", form(start="yesterday"), "bad-request"),
                                  ("", form(start="2023-11-14T22:13:21"), "bad-request"),
                                  ("", form(colour="red"), "feature-not-implemented")):
        results, reply = query(archive, rsm=rsm, form=extra)
        assert results == [] and reply.get("type") == "error" and error_condition(reply) == condition, condition


def test_each_archive_keeps_only_its_newest_messages(store: ArchiveStore) -> None:
    archive = service(store, max_messages_per_archive=3)
    fill(archive, 5)
    results, reply = query(archive, rsm="<max>10</max>")
    assert bodies(results) == ["m2", "m3", "m4"] and fin(reply)[3] == "3"


def test_messages_older_than_the_retention_are_gone_at_the_next_query_and_by_purge(store: ArchiveStore) -> None:
    archive = service(store, retention_days=1)
    fill(archive, 2)
    fill(archive, 1, start=T0 + DAY, prefix="n")
    results, _ = query(archive, wall=T0 + DAY + 0.5)
    assert bodies(results) == ["m1", "n0"]
    results, _ = query(archive, wall=T0 + DAY + 1.5)
    assert bodies(results) == ["n0"]
    archive.purge_expired(T0 + 3 * DAY)
    results, reply = query(archive, wall=T0)
    assert results == [] and fin(reply) == (True, None, None, "0")


def test_the_sqlite_cap_is_enforced_every_few_messages_not_on_each(tmp_path: Path) -> None:
    store = SqliteArchiveStore(tmp_path / "mam.sqlite", trim_every=4)
    archive = service(store, max_messages_per_archive=2)
    fill(archive, 3)
    assert store.count("alice@localhost", Filter()) == 3   # no trim yet: the hot path was one INSERT each
    fill(archive, 1, prefix="n")
    assert store.count("alice@localhost", Filter()) == 2
    store.close()


def test_a_full_archive_is_trimmed_without_summing_it_whole_again(tmp_path: Path) -> None:
    store = SqliteArchiveStore(tmp_path / "mam.sqlite", trim_every=4)
    archive = service(store, max_messages_per_archive=20)
    fill(archive, 40)
    statements: list[str] = []
    store.connection.set_trace_callback(statements.append)
    fill(archive, 12, start=T0 + 100, prefix="n")   # three count trims of a full archive
    assert store.count("alice@localhost", Filter()) == 20
    # The byte total is carried through the trims: only the trimmed rows are summed, never the archive whole.
    whole_sums = [sql for sql in statements if "SUM(length(stanza))" in sql and "seq <=" not in sql]
    assert whole_sums == []
    (total,) = store.connection.execute("SELECT SUM(length(stanza)) FROM messages WHERE archive = ?",
                                        ("alice@localhost",)).fetchone()
    assert store._total_bytes("alice@localhost") == total
    store.close()


def test_the_query_form_lists_the_fields(store: ArchiveStore) -> None:
    archive = service(store)
    iq = etree.fromstring(f"<iq xmlns='jabber:client' type='get' id='f' from='alice@localhost/desk'>"
                          f"<query xmlns='{NS_MAM}'/></iq>")
    (reply,) = archive.handle_iq(ALICE, iq, T0)
    assert {field.get("var") for field in reply.iter("{jabber:x:data}field")} >= {"FORM_TYPE", "with", "start", "end"}


# --- the account archive in the router ------------------------------------------------------------

class ArchivingServer:
    def __init__(self) -> None:
        self.store = MemoryArchiveStore()
        self.wall = T0
        self.router = Router(domain="localhost", users=Users(), store=MemoryStore(), wall_clock=lambda: self.wall,
                             archive=service(self.store))

    def send(self, sender: JID, text: str) -> list[RouterAction]:
        return self.router.handle_stanza(sender, etree.fromstring(f"<x xmlns='jabber:client'>{text}</x>")[0], 0.0)

    def online(self, jid: JID) -> None:
        self.router.bind(jid, 0.0)
        self.send(jid, "<presence/>")

    def mam(self, sender: JID, rsm: str = "") -> list[tuple[str, Element]]:
        set_element = f"<set xmlns='{NS_RSM}'>{rsm}</set>" if rsm else ""
        return delivered(self.send(sender, f"<iq type='set' id='mq'><query xmlns='{NS_MAM}'>{set_element}"
                                           "</query></iq>"))


def test_chat_messages_are_archived_for_both_parties_and_carry_the_recipients_stanza_id() -> None:
    server = ArchivingServer()
    server.online(ALICE_DESK)
    server.online(BOB)
    ((to, live),) = delivered(server.send(BOB, "<message to='alice@localhost' type='chat'><body>hi</body>"
                                               "<stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='forged'/>"
                                               "</message>"))
    (stanza_id,) = live.findall(f"{{{NS_STANZA_ID}}}stanza-id")
    assert to == str(ALICE_DESK) and stanza_id.get("by") == "alice@localhost" and stanza_id.get("id") != "forged"
    alice_results = server.mam(ALICE_DESK)
    assert [etree.QName(s).localname for _, s in alice_results] == ["message", "iq"]
    assert alice_results[0][1].find(f"{{{NS_MAM}}}result").get("id") == stanza_id.get("id")
    bob_results = server.mam(BOB)
    assert bodies([s for _, s in bob_results[:-1]]) == ["hi"]


def test_only_chat_and_normal_messages_with_a_body_are_archived() -> None:
    server = ArchivingServer()
    server.online(ALICE_DESK)
    server.online(BOB)
    server.send(BOB, "<message to='alice@localhost' type='chat'><composing "
                     "xmlns='http://jabber.org/protocol/chatstates'/></message>")
    server.send(BOB, "<message to='alice@localhost' type='headline'><body>news</body></message>")
    server.send(BOB, "<message to='nobody@localhost' type='chat'><body>lost</body></message>")
    server.send(BOB, "<message to='alice@localhost'><body>normal</body></message>")
    assert bodies([s for _, s in server.mam(ALICE_DESK)[:-1]]) == ["normal"]


def test_a_message_the_sender_asks_not_to_store_is_archived_by_nobody_and_still_delivered() -> None:
    server = ArchivingServer()
    server.online(ALICE_DESK)
    server.online(BOB)
    delivered_copies = []
    for hint in ("no-permanent-store", "no-store"):
        delivered_copies += delivered(server.send(BOB, f"<message to='alice@localhost' type='chat'><body>{hint}</body>"
                                                       f"<{hint} xmlns='urn:xmpp:hints'/></message>"))
    server.send(BOB, "<message to='alice@localhost' type='chat'><body>kept</body></message>")
    assert [s.findtext("{jabber:client}body") for _, s in delivered_copies] == ["no-permanent-store", "no-store"]
    assert all(s.find(f"{{{NS_STANZA_ID}}}stanza-id") is None for _, s in delivered_copies)
    assert bodies([s for _, s in server.mam(ALICE_DESK)[:-1]]) == ["kept"]
    assert bodies([s for _, s in server.mam(BOB)[:-1]]) == ["kept"]


def test_messages_for_an_offline_account_are_archived_so_a_returning_client_catches_up() -> None:
    server = ArchivingServer()
    server.online(BOB)
    server.send(BOB, "<message to='alice@localhost' type='chat'><body>while you were away</body></message>")
    server.online(ALICE_PHONE)
    assert bodies([s for _, s in server.mam(ALICE_PHONE)[:-1]]) == ["while you were away"]


def test_nobody_queries_another_accounts_archive() -> None:
    server = ArchivingServer()
    server.online(ALICE_DESK)
    server.online(BOB)
    server.send(BOB, "<message to='alice@localhost' type='chat'><body>secret</body></message>")
    ((_, reply),) = delivered(server.send(BOB, f"<iq type='set' id='x' to='alice@localhost'>"
                                               f"<query xmlns='{NS_MAM}'/></iq>"))
    assert reply.get("type") == "error" and error_condition(reply) == "forbidden"


def test_the_archive_is_advertised_on_the_account() -> None:
    server = ArchivingServer()
    server.online(ALICE_DESK)
    ((_, info),) = delivered(server.send(ALICE_DESK, "<iq type='get' id='d' to='alice@localhost'>"
                                                     "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"))
    assert NS_MAM in [feature.get("var") for feature in info.iter("{*}feature")]


# --- the byte cap per archive ----------------------------------------------------------------------

def stored_bytes(store: ArchiveStore, archive: str = "alice@localhost") -> int:
    return sum(len(row.stanza) for _seq, row in store.page(archive, Filter(), after=None, before=None,
                                                           limit=100_000, newest_first=False))


def test_each_archive_keeps_only_its_newest_messages_within_its_byte_cap(store: ArchiveStore) -> None:
    size = len(etree.tostring(chat("bob@localhost/laptop", "alice@localhost", "m0")))
    archive = service(store, max_bytes_per_archive=3 * size + size // 2)
    fill(archive, 5)
    results, reply = query(archive)
    # The oldest went first, just enough for each new one to fit: three fit under the cap, four would not.
    assert bodies(results) == ["m2", "m3", "m4"] and fin(reply)[3] == "3"
    assert stored_bytes(store) <= 3 * size + size // 2
    # Another archive has its own cap.
    write(archive, [Party(archive=JID.parse("bob@localhost"), peer=ALICE)],
          chat("alice@localhost/desk", "bob@localhost", "b0"), T0)
    assert store.count("bob@localhost", Filter()) == 1 and store.count("alice@localhost", Filter()) == 3


def test_a_large_message_pushes_out_as_many_old_ones_as_it_needs(store: ArchiveStore) -> None:
    small = len(etree.tostring(chat("bob@localhost/laptop", "alice@localhost", "m0")))
    archive = service(store, max_bytes_per_archive=6 * small)
    fill(archive, 5)
    write(archive, [Party(archive=ALICE, peer=JID.parse("bob@localhost/laptop"))],
          chat("bob@localhost/laptop", "alice@localhost", "L" * (3 * small)), T0 + 10)
    results, _ = query(archive)
    assert [len(b) for b in bodies(results)] == [2, 2, 3 * small]  # m3, m4 and the large one
    assert stored_bytes(store) <= 6 * small


def test_the_sqlite_byte_cap_holds_after_a_restart_and_a_deletion(tmp_path: Path) -> None:
    size = len(etree.tostring(chat("bob@localhost/laptop", "alice@localhost", "m0")))
    store = SqliteArchiveStore(tmp_path / "mam.sqlite", trim_every=64)
    archive = service(store, max_bytes_per_archive=4 * size)
    fill(archive, 6)
    assert store.count("alice@localhost", Filter()) == 4  # the byte cap is exact, not every few messages
    store.close()
    reopened = SqliteArchiveStore(tmp_path / "mam.sqlite", trim_every=64)
    archive = service(reopened, max_bytes_per_archive=4 * size)
    fill(archive, 2, start=T0 + 100, prefix="n")
    results, _ = query(archive)
    assert bodies(results) == ["m4", "m5", "n0", "n1"]
    reopened.delete_archive("alice@localhost")
    fill(archive, 4, start=T0 + 200, prefix="p")
    assert reopened.count("alice@localhost", Filter()) == 4
    reopened.close()


# --- guests keep no archive -----------------------------------------------------------------------

class UsersWithAGuest:
    anonymous = frozenset({"anon-1"})

    def exists(self, username: str) -> bool:
        return username in {"alice", "bob", "anon-1"}


def test_a_message_to_a_guest_carries_no_stanza_id_and_only_the_sender_archives_it() -> None:
    guest = JID.parse("anon-1@localhost/web")
    store = MemoryArchiveStore()
    router = Router(domain="localhost", users=UsersWithAGuest(), store=MemoryStore(), wall_clock=lambda: T0,
                    archive=service(store))
    for jid in (guest, BOB):
        router.bind(jid, 0.0)
        router.handle_stanza(jid, make_stanza("presence"), 0.0)
    message = chat("bob@localhost/laptop", "anon-1@localhost/web", "hello guest")
    sub(message, NS_STANZA_ID, "stanza-id", {"by": "anon-1@localhost", "id": "planted"})
    ((to, live),) = delivered(router.handle_stanza(BOB, message, 0.0))
    assert to == str(guest) and live.findall(f"{{{NS_STANZA_ID}}}stanza-id") == []
    assert store.count("bob@localhost", Filter()) == 1 and store.count("anon-1@localhost", Filter()) == 0


# --- archiving and queries as orders (issue 16 item 2) ---------------------------------------------

def test_archiving_is_an_order_before_the_message_and_a_query_is_a_read_the_adapter_answers(
        tmp_path: Path) -> None:
    store = SqliteArchiveStore(tmp_path / "mam.sqlite")
    machine = RouterMachine(domain="localhost", users=Users(), rosters=MemoryStore(), wall_clock=lambda: T0,
                            archive=service(store))
    for jid in (ALICE_DESK, BOB):
        machine.bind(jid, 0.0)
        machine.handle_stanza(jid, make_stanza("presence"), 0.0)
    statements: list[str] = []
    store.connection.set_trace_callback(statements.append)
    message = etree.fromstring("<message xmlns='jabber:client' to='alice@localhost' type='chat'><body>hi</body>"
                               "</message>")
    order, live = machine.handle_stanza(BOB, message, 0.0)
    assert isinstance(order, ArchiveMessage) and isinstance(live, Deliver) and live.to == ALICE_DESK
    assert {entry.archive for entry in order.messages} == {"alice@localhost", "bob@localhost"}
    (stanza_id,) = live.stanza.findall(f"{{{NS_STANZA_ID}}}stanza-id")
    assert {entry.id for entry in order.messages} == {stanza_id.get("id")}
    iq = etree.fromstring(f"<iq xmlns='jabber:client' type='set' id='q'><query xmlns='{NS_MAM}'/></iq>")
    (query,) = machine.handle_stanza(ALICE_DESK, iq, 0.0)
    assert query == QueryArchive(archive=ALICE, requester=ALICE_DESK, iq=iq, wall=T0)
    assert statements == []  # the machine neither wrote nor read mam.sqlite


def test_a_refused_archive_write_still_delivers_the_message_without_a_stanza_id(tmp_path: Path) -> None:
    store = SqliteArchiveStore(tmp_path / "mam.sqlite")
    router = Router(domain="localhost", users=Users(), store=MemoryStore(), wall_clock=lambda: T0,
                    archive=service(store))
    router.bind(ALICE_DESK, 0.0)
    router.handle_stanza(ALICE_DESK, make_stanza("presence"), 0.0)
    router.bind(BOB, 0.0)
    store.connection.execute("PRAGMA query_only = ON")  # writes fail (SQLITE_READONLY)
    message = etree.fromstring("<message xmlns='jabber:client' to='alice@localhost' type='chat'><body>hi</body>"
                               "</message>")
    ((to, live),) = delivered(router.handle_stanza(BOB, message, 0.0))
    assert to == str(ALICE_DESK) and live.find(f"{{{NS_STANZA_ID}}}stanza-id") is None
    store.connection.execute("PRAGMA query_only = OFF")
    iq = etree.fromstring(f"<iq xmlns='jabber:client' type='set' id='q'><query xmlns='{NS_MAM}'/></iq>")
    ((_to, fin),) = delivered(router.handle_stanza(ALICE_DESK, iq, 0.0))
    assert fin.get("type") == "result" and fin.findtext(f".//{{{NS_RSM}}}count") == "0"
