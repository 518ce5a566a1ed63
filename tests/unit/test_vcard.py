"""XEP-0054 vCards, the XEP-0153 photo hash and XEP-0398 conversion to and from PEP avatars (pure)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from lxml import etree

from boshcm.jid import JID
from boshcm.stanza import Element, make_stanza, sub
from boshcm.xmpp.orders import SaveVCard
from boshcm.xmpp.pubsub import MemoryPepStore, NodeConfig
from boshcm.xmpp.pubsub.store import StoredItem
from boshcm.xmpp.router import Deliver, Router, RouterMachine
from boshcm.xmpp.storage import MemoryStore
from boshcm.xmpp.vcard import (
    NS_AVATAR_DATA,
    NS_AVATAR_METADATA,
    NS_VCARD,
    NS_VCARD_UPDATE,
    MemoryVCardStore,
    SqliteVCardStore,
    VCardOutcome,
    VCards,
)

ALICE = JID.parse("alice@localhost/desk")
PNG = b"\x89PNG picture"
DIGEST = hashlib.sha1(PNG).hexdigest()


def vcard_iq(kind: str, sender: JID, *, to: str | None = None, photo: bytes | None = None,
             name: str = "Alice") -> Element:
    iq = make_stanza("iq", {"type": kind, "id": "v1", "from": str(sender), **({"to": to} if to else {})})
    card = sub(iq, NS_VCARD, "vCard")
    if kind == "set":
        sub(card, NS_VCARD, "FN", text=name)
        if photo is not None:
            photo_el = sub(card, NS_VCARD, "PHOTO")
            sub(photo_el, NS_VCARD, "TYPE", text="image/png")
            sub(photo_el, NS_VCARD, "BINVAL", text=base64.b64encode(photo).decode())
    return iq


def handled(vcards: VCards, sender: JID, owner: JID, iq: Element) -> VCardOutcome:
    """`handle_iq`, with its write order performed as the router's adapter would."""
    outcome = vcards.handle_iq(sender, owner, iq)
    if outcome.write is not None:
        vcards.store.put_vcard(outcome.write.user, outcome.write.vcard)
    return outcome


def copied(vcards: VCards, user: str, metadata: Element) -> None:
    if (order := vcards.avatar_published(user, metadata)) is not None:
        vcards.store.put_vcard(order.user, order.vcard)


def test_set_then_anyone_gets_it() -> None:
    vcards = VCards(MemoryVCardStore())
    assert handled(vcards, ALICE, ALICE.bare, vcard_iq("set", ALICE)).reply.get("type") == "result"
    reply = handled(vcards, JID.parse("bob@localhost/x"), ALICE.bare,
                             vcard_iq("get", JID.parse("bob@localhost/x"), to="alice@localhost")).reply
    assert reply.findtext(f"{{{NS_VCARD}}}vCard/{{{NS_VCARD}}}FN") == "Alice"


def test_no_vcard_yet_is_an_empty_vcard() -> None:
    reply = handled(VCards(MemoryVCardStore()), ALICE, ALICE.bare, vcard_iq("get", ALICE)).reply
    card = reply.find(f"{{{NS_VCARD}}}vCard")
    assert card is not None and len(card) == 0


def test_someone_elses_vcard_cannot_be_set() -> None:
    bob = JID.parse("bob@localhost/x")
    vcards = VCards(MemoryVCardStore())
    reply = handled(vcards, bob, ALICE.bare, vcard_iq("set", bob, to="alice@localhost")).reply
    assert reply.find(".//{*}forbidden") is not None
    assert handled(vcards, ALICE, ALICE.bare, vcard_iq("get", ALICE)).reply.find(f".//{{{NS_VCARD}}}FN") is None


def test_an_oversized_vcard_is_not_acceptable_and_not_stored() -> None:
    vcards = VCards(MemoryVCardStore(), max_bytes=200)
    reply = handled(vcards, ALICE, ALICE.bare, vcard_iq("set", ALICE, photo=b"x" * 300)).reply
    assert reply.find(".//{*}not-acceptable") is not None
    assert vcards.photo_hash("alice") == ""


def test_a_vcard_photo_is_published_as_the_pep_avatar() -> None:
    vcards = VCards(MemoryVCardStore(), pep_store=MemoryPepStore())
    outcome = handled(vcards, ALICE, ALICE.bare, vcard_iq("set", ALICE, photo=PNG))
    nodes = [iq.find(".//{*}publish").get("node") for iq in outcome.publishes]  # type: ignore[union-attr]
    assert nodes == [NS_AVATAR_DATA, NS_AVATAR_METADATA]                 # XEP-0084 §4.1: data first
    info = outcome.publishes[1].find(f".//{{{NS_AVATAR_METADATA}}}info")
    assert info is not None and info.get("id") == DIGEST and info.get("bytes") == str(len(PNG))
    assert {iq.get("from") for iq in outcome.publishes} == {str(ALICE)}
    # The same photo again publishes nothing.
    assert handled(vcards, ALICE, ALICE.bare, vcard_iq("set", ALICE, photo=PNG, name="A.")).publishes == []
    # No photo any more: the avatar is disabled (empty metadata, XEP-0084 §4.6) and the picture itself retracted.
    removed = handled(vcards, ALICE, ALICE.bare, vcard_iq("set", ALICE, name="A.")).publishes
    metadata, retract = removed
    assert metadata.find(f".//{{{NS_AVATAR_METADATA}}}metadata") is not None
    assert len(metadata.find(f".//{{{NS_AVATAR_METADATA}}}metadata")) == 0  # type: ignore[arg-type]
    retracted = retract.find(".//{*}retract")
    assert retracted is not None and retracted.get("node") == NS_AVATAR_DATA
    assert [item.get("id") for item in retracted] == [DIGEST]


def test_a_pep_avatar_becomes_the_vcard_photo_and_the_presence_hash() -> None:
    pep = MemoryPepStore()
    pep.put_node("alice", NS_AVATAR_DATA, NodeConfig(), keep=1)
    data = etree.tostring(etree.fromstring(
        f"<data xmlns='{NS_AVATAR_DATA}'>{base64.b64encode(PNG).decode()}</data>"))
    pep.publish("alice", NS_AVATAR_DATA, StoredItem(id=DIGEST, payload=data), keep=1)
    vcards = VCards(MemoryVCardStore(), pep_store=pep)
    handled(vcards, ALICE, ALICE.bare, vcard_iq("set", ALICE))
    copied(vcards, "alice", etree.fromstring(
        f"<metadata xmlns='{NS_AVATAR_METADATA}'><info id='{DIGEST}' type='image/png' bytes='12'/></metadata>"))
    card = handled(vcards, ALICE, ALICE.bare, vcard_iq("get", ALICE)).reply
    assert card.findtext(f".//{{{NS_VCARD}}}FN") == "Alice"
    assert base64.b64decode(card.findtext(f".//{{{NS_VCARD}}}BINVAL") or "") == PNG
    presence = make_stanza("presence")
    vcards.stamp_presence("alice", presence)
    assert presence.findtext(f"{{{NS_VCARD_UPDATE}}}x/{{{NS_VCARD_UPDATE}}}photo") == DIGEST
    # XEP-0084 §4.6: empty metadata turns the avatar off, and the vCard photo with it.
    copied(vcards, "alice", etree.fromstring(f"<metadata xmlns='{NS_AVATAR_METADATA}'/>"))
    assert vcards.photo_hash("alice") == ""


def test_a_clients_own_photo_hash_is_kept() -> None:
    vcards = VCards(MemoryVCardStore())
    handled(vcards, ALICE, ALICE.bare, vcard_iq("set", ALICE, photo=PNG))
    presence = make_stanza("presence")
    sub(sub(presence, NS_VCARD_UPDATE, "x"), NS_VCARD_UPDATE, "photo", text="abc")
    vcards.stamp_presence("alice", presence)
    assert [photo.text for photo in presence.iter(f"{{{NS_VCARD_UPDATE}}}photo")] == ["abc"]


# --- writes as orders (issue 16 item 2) ------------------------------------------------------------

class Users:
    anonymous: frozenset[str] = frozenset()

    def exists(self, username: str) -> bool:
        return username in {"alice", "bob"}


def stanza(text: str) -> Element:
    return etree.fromstring(f"<x xmlns='jabber:client'>{text}</x>")[0]


def test_a_vcard_set_is_an_order_and_its_result_and_avatar_publishes_wait_until_it_is_written(
        tmp_path: Path) -> None:
    cards = SqliteVCardStore(tmp_path / "vcard.sqlite")
    pep = MemoryPepStore()
    machine = RouterMachine(domain="localhost", users=Users(), rosters=MemoryStore(), wall_clock=lambda: 0.0,
                            pep_store=pep, vcards=VCards(cards, pep_store=pep))
    machine.bind(ALICE, 0.0)
    statements: list[str] = []
    cards.connection.set_trace_callback(statements.append)
    iq = vcard_iq("set", ALICE, photo=PNG)
    (order,) = machine.handle_stanza(ALICE, iq, 0.0)
    assert isinstance(order, SaveVCard) and order.user == "alice" and order.request is iq
    assert len(order.publishes) == 2 and pep.items("alice", NS_AVATAR_DATA) == []  # not yet run
    assert [s for s in statements if not s.lstrip().upper().startswith("SELECT")] == []
    assert cards.vcard("alice") is None
    cards.put_vcard(order.user, order.vcard)  # as the adapter would; then the machine hears of it
    (result, *_) = machine.vcard_saved(order)
    assert isinstance(result, Deliver) and result.to == ALICE and result.stanza.get("type") == "result"
    assert [item.id for item in pep.items("alice", NS_AVATAR_DATA)] == [DIGEST]


def test_a_refused_vcard_write_is_a_storage_error_and_publishes_no_avatar(tmp_path: Path) -> None:
    cards = SqliteVCardStore(tmp_path / "vcard.sqlite")
    pep = MemoryPepStore()
    router = Router(domain="localhost", users=Users(), store=MemoryStore(), wall_clock=lambda: 0.0,
                    pep_store=pep, vcards=VCards(cards, pep_store=pep))
    router.bind(ALICE, 0.0)
    cards.connection.execute("PRAGMA query_only = ON")  # writes fail (SQLITE_READONLY)
    (reply,) = [a.stanza for a in router.handle_stanza(ALICE, vcard_iq("set", ALICE, photo=PNG), 0.0)
                if isinstance(a, Deliver)]
    assert reply.get("type") == "error" and reply.find(".//{*}resource-constraint") is not None
    assert pep.items("alice", NS_AVATAR_DATA) == []
    cards.connection.execute("PRAGMA query_only = OFF")
    presence = router.handle_stanza(ALICE, stanza("<presence/>"), 0.0)
    (own,) = [a.stanza for a in presence if isinstance(a, Deliver)]
    assert not own.findtext(f"{{{NS_VCARD_UPDATE}}}x/{{{NS_VCARD_UPDATE}}}photo")  # no photo was kept
