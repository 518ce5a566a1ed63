"""XEP-0363 slots (pure): size, quota, pending slots, one use per slot, expiry, and the slot request iq."""

from __future__ import annotations

import itertools

from lxml import etree

from boshcm.stanza import make_stanza, sub
from boshcm.upload import (
    NS_UPLOAD,
    PutVerdict,
    Refused,
    Slot,
    UploadLimits,
    UploadService,
    UploadSlots,
    clean_filename,
)

LIMITS = UploadLimits(max_file_bytes=100, quota_bytes=150, slot_seconds=60, file_seconds=3600, max_pending_slots=2)


def slots() -> UploadSlots:
    counter = itertools.count()
    return UploadSlots(LIMITS, new_id=lambda: f"slot{next(counter):018d}")


def granted(machine: UploadSlots, size: int = 10, owner: str = "alice@localhost", now: float = 0.0) -> Slot:
    slot = machine.request(owner, "a.png", size, "image/png", now)
    assert isinstance(slot, Slot)
    return slot


def test_file_larger_than_the_limit_is_refused_with_the_limit() -> None:
    refused = slots().request("alice@localhost", "big", 101, "image/png", 0.0)
    assert isinstance(refused, Refused) and refused.condition.value == "not-acceptable"
    assert refused.max_file_bytes == 100


def test_quota_counts_stored_files_and_open_slots() -> None:
    machine = slots()
    stored = granted(machine, 100)
    assert machine.begin_put(stored.id, "a.png", 100, 1.0) is PutVerdict.ACCEPT
    machine.put_done(stored.id, 2.0)
    granted(machine, 40)
    refused = machine.request("alice@localhost", "c", 11, "image/png", 3.0)
    assert isinstance(refused, Refused) and refused.condition.value == "resource-constraint"
    assert isinstance(machine.request("bob@localhost", "c", 100, "image/png", 3.0), Slot)  # per account


def test_pending_slots_are_bounded_per_account() -> None:
    machine = slots()
    granted(machine)
    granted(machine)
    refused = machine.request("alice@localhost", "c", 1, "image/png", 0.0)
    assert isinstance(refused, Refused) and refused.condition.value == "resource-constraint"


def test_a_slot_is_written_once() -> None:
    machine = slots()
    slot = granted(machine)
    assert machine.begin_put(slot.id, "a.png", 10, 1.0) is PutVerdict.ACCEPT
    assert machine.begin_put(slot.id, "a.png", 10, 1.0) is PutVerdict.CONFLICT  # while writing
    machine.put_done(slot.id, 2.0)
    assert machine.begin_put(slot.id, "a.png", 10, 3.0) is PutVerdict.CONFLICT  # after


def test_put_must_declare_exactly_the_granted_size_and_name() -> None:
    machine = slots()
    slot = granted(machine)
    assert machine.begin_put(slot.id, "a.png", None, 1.0) is PutVerdict.LENGTH_REQUIRED
    assert machine.begin_put(slot.id, "a.png", 11, 1.0) is PutVerdict.WRONG_SIZE
    assert machine.begin_put(slot.id, "other.png", 10, 1.0) is PutVerdict.NOT_FOUND
    assert machine.begin_put("nonexistent", "a.png", 10, 1.0) is PutVerdict.NOT_FOUND


def test_a_failed_put_spends_the_slot() -> None:
    machine = slots()
    slot = granted(machine)
    machine.begin_put(slot.id, "a.png", 10, 1.0)
    machine.put_failed(slot.id)
    assert machine.begin_put(slot.id, "a.png", 10, 2.0) is PutVerdict.NOT_FOUND


def test_unused_slots_and_old_files_expire() -> None:
    machine = slots()
    unused = granted(machine, now=0.0)
    kept = granted(machine, now=0.0)
    machine.begin_put(kept.id, "a.png", 10, 1.0)
    machine.put_done(kept.id, 1.0)
    assert machine.next_deadline() == 60.0
    assert machine.begin_put(unused.id, "a.png", 10, 60.0) is PutVerdict.NOT_FOUND
    assert machine.expire(60.0) == []                     # the unused slot: nothing on disk to delete
    assert machine.stored(kept.id, "a.png", 100.0) is kept
    assert machine.expire(3601.0) == [kept]
    assert machine.stored(kept.id, "a.png", 3601.0) is None and machine.next_deadline() is None


def test_file_names_lose_paths_and_control_characters() -> None:
    assert clean_filename("../../etc/passwd") == "passwd"
    assert clean_filename("C:\\x\\evil.png") == "evil.png"
    assert clean_filename("a\nb\x00.png") == "ab.png"
    assert clean_filename("..") is None and clean_filename("dir/") is None


def service(guests: frozenset[str] = frozenset()) -> UploadService:
    return UploadService(domain="upload.localhost", slots=slots(), base_url=lambda: "https://chat.example/",
                         wall_clock=lambda: 0.0, is_guest=lambda jid: jid.local in guests, server_domain="localhost")


def request(sender: str, filename: str = "cat.png", size: str = "10",
            content_type: str = "image/png") -> etree._Element:
    iq = make_stanza("iq", {"type": "get", "id": "s1", "from": sender, "to": "upload.localhost"})
    sub(iq, NS_UPLOAD, "request", {"filename": filename, "size": size, "content-type": content_type})
    return iq


def test_slot_urls_are_under_the_public_url_with_the_name_quoted() -> None:
    (reply,) = service().handle_stanza(request("alice@localhost/x", filename="my cat.png"), 0.0)
    put = reply.find(f"{{{NS_UPLOAD}}}slot/{{{NS_UPLOAD}}}put")
    assert put is not None
    assert put.get("url") == "https://chat.example/upload/slot000000000000000000/my%20cat.png"


def test_guests_and_strangers_get_no_slot() -> None:
    for sender, guests in (("guest1@localhost/x", frozenset({"guest1"})), ("eve@elsewhere/x", frozenset())):
        (reply,) = service(guests).handle_stanza(request(sender), 0.0)
        assert reply.get("type") == "error" and reply.find(".//{*}not-allowed") is not None


def test_bad_sizes_are_bad_requests() -> None:
    for size in ("", "-1", "0", "1e9", "9" * 20):
        (reply,) = service().handle_stanza(request("alice@localhost/x", size=size), 0.0)
        assert reply.find(".//{*}bad-request") is not None, size


def test_disco_info_gives_the_size_limit() -> None:
    info = service().disco_info()
    assert info.find("{*}identity").get("category") == "store"  # type: ignore[union-attr]
    assert [value.text for value in info.iter("{jabber:x:data}value")] == [NS_UPLOAD, "100"]


def test_an_unknown_content_type_is_stored_as_octet_stream() -> None:
    upload = service()
    upload.handle_stanza(request("alice@localhost/x", content_type="text/html\r\nX-Evil: 1"), 0.0)
    assert upload.slots.begin_put("slot000000000000000000", "cat.png", 10, 0.0) is PutVerdict.ACCEPT
    assert upload.slots.put_done("slot000000000000000000", 0.0).content_type == "application/octet-stream"


def test_the_component_lists_its_features_and_answers_pings() -> None:
    features = [feature.get("var") for feature in service().disco_info().iter("{*}feature")]
    assert features == ["http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items",
                        "urn:xmpp:ping", NS_UPLOAD]
    ping = make_stanza("iq", {"type": "get", "id": "p1", "from": "alice@localhost/x", "to": "upload.localhost"})
    sub(ping, "urn:xmpp:ping", "ping")
    (pong,) = service().handle_stanza(ping, 0.0)
    assert (pong.get("type"), pong.get("id"), pong.get("to")) == ("result", "p1", "alice@localhost/x")
    node = make_stanza("iq", {"type": "get", "id": "d1", "from": "alice@localhost/x", "to": "upload.localhost"})
    sub(node, "http://jabber.org/protocol/disco#info", "query", {"node": "nothing"})
    (missing,) = service().handle_stanza(node, 0.0)
    assert missing.find(".//{*}item-not-found") is not None
