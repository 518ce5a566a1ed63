"""XEP-0054 vCards, the XEP-0153 photo hash and XEP-0398 conversion to and from PEP avatars (pure)."""

from __future__ import annotations

import base64
import hashlib

from lxml import etree

from boshcm.jid import JID
from boshcm.stanza import Element, make_stanza, sub
from boshcm.xmpp.pubsub import MemoryPepStore, NodeConfig
from boshcm.xmpp.pubsub.store import StoredItem
from boshcm.xmpp.vcard import NS_AVATAR_DATA, NS_AVATAR_METADATA, NS_VCARD, NS_VCARD_UPDATE, MemoryVCardStore, VCards

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


def test_set_then_anyone_gets_it() -> None:
    vcards = VCards(MemoryVCardStore())
    assert vcards.handle_iq(ALICE, ALICE.bare, vcard_iq("set", ALICE)).reply.get("type") == "result"
    reply = vcards.handle_iq(JID.parse("bob@localhost/x"), ALICE.bare,
                             vcard_iq("get", JID.parse("bob@localhost/x"), to="alice@localhost")).reply
    assert reply.findtext(f"{{{NS_VCARD}}}vCard/{{{NS_VCARD}}}FN") == "Alice"


def test_no_vcard_yet_is_an_empty_vcard() -> None:
    reply = VCards(MemoryVCardStore()).handle_iq(ALICE, ALICE.bare, vcard_iq("get", ALICE)).reply
    card = reply.find(f"{{{NS_VCARD}}}vCard")
    assert card is not None and len(card) == 0


def test_someone_elses_vcard_cannot_be_set() -> None:
    bob = JID.parse("bob@localhost/x")
    vcards = VCards(MemoryVCardStore())
    reply = vcards.handle_iq(bob, ALICE.bare, vcard_iq("set", bob, to="alice@localhost")).reply
    assert reply.find(".//{*}forbidden") is not None
    assert vcards.handle_iq(ALICE, ALICE.bare, vcard_iq("get", ALICE)).reply.find(f".//{{{NS_VCARD}}}FN") is None


def test_an_oversized_vcard_is_not_acceptable_and_not_stored() -> None:
    vcards = VCards(MemoryVCardStore(), max_bytes=200)
    reply = vcards.handle_iq(ALICE, ALICE.bare, vcard_iq("set", ALICE, photo=b"x" * 300)).reply
    assert reply.find(".//{*}not-acceptable") is not None
    assert vcards.photo_hash("alice") == ""


def test_a_vcard_photo_is_published_as_the_pep_avatar() -> None:
    vcards = VCards(MemoryVCardStore(), pep_store=MemoryPepStore())
    outcome = vcards.handle_iq(ALICE, ALICE.bare, vcard_iq("set", ALICE, photo=PNG))
    nodes = [iq.find(".//{*}publish").get("node") for iq in outcome.publishes]  # type: ignore[union-attr]
    assert nodes == [NS_AVATAR_DATA, NS_AVATAR_METADATA]                 # XEP-0084 §4.1: data first
    info = outcome.publishes[1].find(f".//{{{NS_AVATAR_METADATA}}}info")
    assert info is not None and info.get("id") == DIGEST and info.get("bytes") == str(len(PNG))
    assert {iq.get("from") for iq in outcome.publishes} == {str(ALICE)}
    # The same photo again publishes nothing.
    assert vcards.handle_iq(ALICE, ALICE.bare, vcard_iq("set", ALICE, photo=PNG, name="A.")).publishes == []
    # No photo any more: the avatar is disabled (empty metadata, XEP-0084 §4.6) and the picture itself retracted.
    removed = vcards.handle_iq(ALICE, ALICE.bare, vcard_iq("set", ALICE, name="A.")).publishes
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
    vcards.handle_iq(ALICE, ALICE.bare, vcard_iq("set", ALICE))
    vcards.avatar_published("alice", etree.fromstring(
        f"<metadata xmlns='{NS_AVATAR_METADATA}'><info id='{DIGEST}' type='image/png' bytes='12'/></metadata>"))
    card = vcards.handle_iq(ALICE, ALICE.bare, vcard_iq("get", ALICE)).reply
    assert card.findtext(f".//{{{NS_VCARD}}}FN") == "Alice"
    assert base64.b64decode(card.findtext(f".//{{{NS_VCARD}}}BINVAL") or "") == PNG
    presence = make_stanza("presence")
    vcards.stamp_presence("alice", presence)
    assert presence.findtext(f"{{{NS_VCARD_UPDATE}}}x/{{{NS_VCARD_UPDATE}}}photo") == DIGEST
    # XEP-0084 §4.6: empty metadata turns the avatar off, and the vCard photo with it.
    vcards.avatar_published("alice", etree.fromstring(f"<metadata xmlns='{NS_AVATAR_METADATA}'/>"))
    assert vcards.photo_hash("alice") == ""


def test_a_clients_own_photo_hash_is_kept() -> None:
    vcards = VCards(MemoryVCardStore())
    vcards.handle_iq(ALICE, ALICE.bare, vcard_iq("set", ALICE, photo=PNG))
    presence = make_stanza("presence")
    sub(sub(presence, NS_VCARD_UPDATE, "x"), NS_VCARD_UPDATE, "photo", text="abc")
    vcards.stamp_presence("alice", presence)
    assert [photo.text for photo in presence.iter(f"{{{NS_VCARD_UPDATE}}}photo")] == ["abc"]
