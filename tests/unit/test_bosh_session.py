"""The BOSH session machine (XEP-0124, XEP-0206) as conversations with a fake clock. No HTTP."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from lxml import etree

from boshcm.bosh.body import parse_request
from boshcm.bosh.session import (
    Authenticated,
    BoshAction,
    BoshLimits,
    BoshSession,
    CloseUpstream,
    ForwardToServer,
    OpenUpstream,
    RequestAborted,
    RequestArrived,
    Respond,
    ResponseUndelivered,
    RestartUpstream,
    ServerClosed,
    ServerStanzas,
    SessionEnded,
    UpstreamOpened,
)
from boshcm.errors import BoshCondition
from boshcm.stanza import Element
from boshcm.xml.writer import serialize

HTTPBIND = "http://jabber.org/protocol/httpbind"
FIRST_RID = 3_000_000_000  # docs/protocol.md, Interoperability notes: above 2^31


def stanza(text: str) -> Element:
    return etree.fromstring(f"<message xmlns='jabber:client' to='bob@localhost'><body>{text}</body></message>")


def features() -> Element:
    return etree.fromstring("<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>")


class Client:
    """Plays the HTTP side: numbered requests in, responses collected by request id."""

    def __init__(
        self,
        *,
        hold: int = 1,
        wait: int = 30,
        limits: BoshLimits | None = None,
        ack: bool = False,
        newkey: str | None = None,
        to: str = "localhost",
        route: str | None = None,
        origin: str | None = None,
        **extra: str,
    ) -> None:
        self.now = 1000.0
        self.rid = FIRST_RID
        self.ids = itertools.count(1)
        self.responses: dict[int, bytes] = {}
        self.forwarded: list[str] = []
        self.orders: list[BoshAction] = []
        attrs = {
            "rid": str(self.rid),
            "to": to,
            "wait": str(wait),
            "hold": str(hold),
            "ver": "1.11",
            "xmpp:version": "1.0",
        }
        if ack:
            attrs["ack"] = "1"
        if newkey:
            attrs["newkey"] = newkey
        if route:
            attrs["route"] = route
        attrs |= extra
        self.origin = origin
        first = RequestArrived(request_id=next(self.ids), body=self.body_of(attrs), origin=origin)  # type: ignore[arg-type]
        self.creation_id = first.request_id
        self.session = BoshSession(
            sid="s1", first=first, now=self.now, limits=limits or BoshLimits(), serialize=serialize
        )
        self.take(self.session.start(self.now))

    def body_of(self, attrs: dict[str, str], payload: str = "") -> object:
        rendered = " ".join(f"{k}='{v}'" for k, v in attrs.items())
        return parse_request(
            etree.fromstring(f"<body xmlns='{HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' {rendered}>{payload}</body>")
        )

    def take(self, actions: list[BoshAction]) -> list[BoshAction]:
        for action in actions:
            if isinstance(action, Respond):
                assert action.request_id not in self.responses, "a request was answered twice"
                self.responses[action.request_id] = action.data
            if isinstance(action, ForwardToServer):
                self.forwarded += [
                    s.findtext("{jabber:client}body") or etree.QName(s).localname for s in action.stanzas
                ]
        self.orders += actions
        return actions

    def server_opens(self) -> None:
        self.take(self.session.handle(UpstreamOpened(stream_id="abc", domain="localhost"), self.now))
        self.take(self.session.handle(ServerStanzas(stanzas=(features(),)), self.now))

    def request(self, payload: str = "", *, rid: int | None = None, origin: str | None = "same", **attrs: str) -> int:
        if rid is None:
            self.rid += 1
            rid = self.rid
        request_id = next(self.ids)
        body = self.body_of({"rid": str(rid), "sid": "s1", **attrs}, payload)
        arrived = RequestArrived(request_id=request_id, body=body, origin=self.origin if origin == "same" else origin)  # type: ignore[arg-type]
        self.take(self.session.handle(arrived, self.now))
        return request_id

    def server_sends(self, *texts: str) -> None:
        self.take(self.session.handle(ServerStanzas(stanzas=tuple(stanza(t) for t in texts)), self.now))

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.take(self.session.handle_timeout(self.now))

    def response(self, request_id: int) -> Element:
        return etree.fromstring(self.responses[request_id])

    def bodies(self, request_id: int) -> list[str]:
        return [child.findtext("{jabber:client}body") or "" for child in self.response(request_id)]

    def answered(self, request_id: int) -> bool:
        return request_id in self.responses


def started(**options: object) -> Client:
    client = Client(**options)  # type: ignore[arg-type]
    client.server_opens()
    return client


def test_creation_response_carries_the_xep_0124_section_7_2_attributes() -> None:
    client = started(hold=1, wait=45)
    created = client.response(client.creation_id)
    assert created.get("sid") == "s1" and created.get("wait") == "45" and created.get("hold") == "1"
    assert created.get("requests") == "2" and created.get("ver") == "1.11" and created.get("from") == "localhost"
    assert created.get("polling") == "2" and created.get("inactivity") == "60" and created.get("maxpause") == "120"
    assert created.get("authid") == "abc" and created.get("{urn:xmpp:xbosh}version") == "1.0"
    assert created.get("{urn:xmpp:xbosh}restartlogic") == "true"
    assert created[0].tag == "{http://etherx.jabber.org/streams}features"  # XEP-0206 §5: features in the response


def test_creation_opens_the_upstream_stream_with_to_and_version() -> None:
    client = Client()
    (order,) = [o for o in client.orders if isinstance(o, OpenUpstream)]
    assert order.to == "localhost" and order.version == "1.0"
    assert not client.answered(client.creation_id)  # held until the stream says something


def test_wait_and_hold_are_capped_by_configuration_section_7_2() -> None:
    client = started(hold=5, wait=600, limits=BoshLimits(max_wait_seconds=60, max_hold=2))
    created = client.response(client.creation_id)
    assert created.get("wait") == "60" and created.get("hold") == "2" and created.get("requests") == "3"


def test_missing_to_is_improper_addressing_section_17_2() -> None:
    client = Client(to="")
    created = client.response(client.creation_id)
    assert created.get("type") == "terminate" and created.get("condition") == "improper-addressing"


def test_payloads_are_forwarded_and_the_request_held_until_the_server_answers_section_8() -> None:
    client = started()
    request = client.request("<message xmlns='jabber:client' to='bob@localhost'><body>hi</body></message>")
    assert client.forwarded == ["hi"] and not client.answered(request)
    client.server_sends("pushed")
    assert client.bodies(request) == ["pushed"]


def test_stanzas_without_a_held_request_wait_and_go_out_batched_in_the_next_one() -> None:
    client = started()
    client.server_sends("one")
    client.server_sends("two")
    request = client.request()
    assert client.bodies(request) == ["one", "two"]


def test_wait_expiry_answers_an_empty_body_section_8() -> None:
    client = started(wait=20)
    request = client.request()
    client.advance(19)
    assert not client.answered(request)
    client.advance(1)
    assert len(client.response(request)) == 0 and client.response(request).get("type") is None


def test_hold_one_a_new_request_releases_the_held_one_at_once_section_10() -> None:
    client = started(hold=1)
    first = client.request()
    second = client.request()
    assert client.answered(first) and not client.answered(second)


def test_hold_two_keeps_two_requests_held_section_10() -> None:
    client = started(hold=2)
    first, second = client.request(), client.request()
    assert not client.answered(first) and not client.answered(second)
    third = client.request()
    assert client.answered(first) and not client.answered(third)
    client.server_sends("x")
    assert client.bodies(second) == ["x"]


def test_out_of_order_requests_are_processed_in_rid_order_section_14_1() -> None:
    client = started(hold=2)
    later = client.request("<message xmlns='jabber:client'><body>second</body></message>", rid=FIRST_RID + 2)
    assert client.forwarded == []
    client.request("<message xmlns='jabber:client'><body>first</body></message>", rid=FIRST_RID + 1)
    assert client.forwarded == ["first", "second"]
    assert not client.answered(later) or client.response(later).get("type") != "terminate"


def test_rid_beyond_the_window_is_item_not_found_section_14_3() -> None:
    client = started(hold=1)
    request = client.request(rid=FIRST_RID + 3)  # window is last + requests = last + 2
    assert client.response(request).get("condition") == "item-not-found"
    assert any(isinstance(o, SessionEnded) for o in client.orders)


def test_repeated_rid_gets_the_cached_response_byte_for_byte_section_14_3() -> None:
    client = started(hold=1)
    first = client.request()
    client.server_sends("lost in transit")
    repeat = client.request(rid=FIRST_RID + 1)
    assert client.responses[repeat] == client.responses[first]


def test_old_rid_no_longer_cached_is_item_not_found_section_14_3() -> None:
    client = started(hold=1)
    for _ in range(4):
        client.request()
        client.server_sends("x")
    stale = client.request(rid=FIRST_RID + 1)
    assert client.response(stale).get("condition") == "item-not-found"


def test_held_rid_sent_again_on_a_new_connection_replaces_the_old_request() -> None:
    client = started(hold=1)
    original = client.request()
    retry = client.request(rid=FIRST_RID + 1)
    # XEP-0124 §14.3: the original request gets a recoverable binding error (§17.1), not an empty body
    assert client.response(original).get("type") == "error" and len(client.response(original)) == 0
    client.server_sends("for the retry")
    assert client.bodies(retry) == ["for the retry"]


def test_more_simultaneous_requests_than_allowed_is_policy_violation_section_11() -> None:
    client = started(hold=1)  # requests = 2
    client.request(rid=FIRST_RID + 1)  # held
    client.request(rid=FIRST_RID + 3)  # early, waiting for +2
    third = client.request(rid=FIRST_RID + 2)
    assert client.response(third).get("condition") == "policy-violation"


def test_early_rid_sent_again_is_a_retry_not_overactivity_section_14() -> None:
    client = started(hold=2)
    client.request(rid=FIRST_RID + 2)
    client.request(rid=FIRST_RID + 2)
    client.request(rid=FIRST_RID + 1)
    assert not client.session.ended


def test_polling_faster_than_allowed_is_policy_violation_section_12() -> None:
    client = started(hold=0)
    client.request()
    client.advance(0.5)
    too_soon = client.request()
    assert client.response(too_soon).get("condition") == "policy-violation"


def test_polling_at_the_allowed_pace_is_fine() -> None:
    client = started(hold=0)
    first = client.request()
    client.advance(2.5)
    second = client.request()
    assert client.answered(first) and client.answered(second)
    assert client.response(second).get("type") is None


def test_inactivity_ends_the_session_and_closes_the_stream_section_10() -> None:
    client = started()
    client.request()
    client.advance(30)  # the held request returns at wait
    client.advance(59)
    assert not client.session.ended
    client.advance(1)
    assert client.session.ended
    assert any(isinstance(o, CloseUpstream) for o in client.orders)


def test_a_held_request_keeps_the_session_alive_however_long_section_10() -> None:
    client = started(wait=60)
    for _ in range(5):
        client.request()
        client.advance(60)
    assert not client.session.ended


def test_pause_releases_held_requests_and_stretches_inactivity_section_10() -> None:
    client = started(hold=1)
    held = client.request()
    paused = client.request(pause="100")
    assert client.answered(held) and client.answered(paused)
    client.advance(99)
    assert not client.session.ended
    client.advance(1)
    assert client.session.ended


def test_pause_beyond_maxpause_is_ignored_section_10() -> None:
    client = started(hold=1)
    client.request(pause="1000")
    client.advance(30)
    client.advance(60)
    assert client.session.ended


def test_client_terminate_forwards_its_presence_first_and_ends_section_13() -> None:
    client = started()
    held = client.request()
    bye = client.request("<presence xmlns='jabber:client' type='unavailable'/>", type="terminate")
    assert client.forwarded == ["presence"]
    assert client.response(bye).get("type") == "terminate" and client.response(held).get("type") == "terminate"
    kinds = [type(o) for o in client.orders]
    assert kinds.index(ForwardToServer) < kinds.index(CloseUpstream) < kinds.index(SessionEnded)


def test_requests_after_the_end_get_item_not_found() -> None:
    client = started()
    client.request(type="terminate")
    late = client.request()
    assert client.response(late).get("condition") == "item-not-found"


def key_chain(count: int) -> list[str]:
    """Keys in the order a client uses them: K(n) (the newkey), K(n-1), ... where K(i) = sha1(K(i-1))."""
    chain = ["seed"]
    for _ in range(count):
        chain.append(hashlib.sha1(chain[-1].encode()).hexdigest())
    return list(reversed(chain))


def test_a_wrong_key_refuses_that_request_alone_and_the_session_goes_on_section_15() -> None:
    keys = key_chain(5)
    client = started(newkey=keys[0])
    ok = client.request(key=keys[1])
    assert not client.session.ended and not client.answered(ok)
    hijacker = client.request(key="guessed", rid=FIRST_RID + 2)
    assert client.response(hijacker).get("condition") == "item-not-found"
    assert not client.session.ended and not client.answered(ok)  # an attacker cannot end the session either
    nxt = client.request(key=keys[2], rid=FIRST_RID + 2)
    assert client.answered(ok) and not client.answered(nxt) and not client.session.ended


def test_a_held_rid_resent_without_its_key_is_refused_and_the_held_request_keeps_its_slot_section_15() -> None:
    keys = key_chain(5)
    client = started(newkey=keys[0])
    held = client.request(key=keys[1])
    for key in ("guessed", keys[2], None):
        attrs = {"key": key} if key else {}
        thief = client.request(rid=FIRST_RID + 1, **attrs)
        assert client.response(thief).get("condition") == "item-not-found"
    client.server_sends("for the owner")
    assert client.bodies(held) == ["for the owner"] and not client.session.ended


def test_a_held_rid_resent_with_its_own_key_is_the_client_retrying_section_14_3() -> None:
    keys = key_chain(5)
    client = started(newkey=keys[0])
    original = client.request(key=keys[1])
    retry = client.request(rid=FIRST_RID + 1, key=keys[1])
    assert client.response(original).get("type") == "error"
    client.server_sends("for the retry")
    assert client.bodies(retry) == ["for the retry"]


def test_a_cached_rid_is_repeated_only_with_the_key_it_carried_section_14_3_and_15() -> None:
    keys = key_chain(5)
    client = started(newkey=keys[0])
    first = client.request(key=keys[1])
    client.server_sends("private")
    thief = client.request(rid=FIRST_RID + 1, key="guessed")
    assert client.response(thief).get("condition") == "item-not-found"
    assert b"private" not in client.responses[thief]
    repeat = client.request(rid=FIRST_RID + 1, key=keys[1])
    assert client.responses[repeat] == client.responses[first]
    assert not client.session.ended


def test_an_early_rid_with_a_wrong_key_is_refused_and_cannot_block_the_real_one_section_15() -> None:
    keys = key_chain(5)
    client = started(newkey=keys[0], hold=2)
    early_thief = client.request(rid=FIRST_RID + 2, key="guessed")
    assert client.response(early_thief).get("condition") == "item-not-found"
    for far in (FIRST_RID + 50, 2**53 - 1):  # beyond the window: refused, not fatal, and not hashed 2^53 times
        far_thief = client.request(rid=far, key="guessed")
        assert client.response(far_thief).get("condition") == "item-not-found"
    early = client.request(rid=FIRST_RID + 2, key=keys[2])  # checked against the chain two steps ahead
    client.request(rid=FIRST_RID + 1, key=keys[1])
    assert not client.session.ended and not client.answered(early)


def test_without_keys_a_request_from_another_origin_is_refused_and_the_session_goes_on() -> None:
    client = Client(origin="https://quiz.example")
    client.server_opens()
    held = client.request()
    for origin in ("https://evil.example", None):
        for rid in (FIRST_RID + 1, FIRST_RID + 2):  # the held rid, and the next one
            thief = client.request(rid=rid, origin=origin)
            assert client.response(thief).get("condition") == "item-not-found"
    client.server_sends("still mine")
    assert client.bodies(held) == ["still mine"] and not client.session.ended


def test_newkey_switches_to_a_new_key_sequence_section_15() -> None:
    first = hashlib.sha1(b"a").hexdigest()
    client = started(newkey=first)
    client.request(key="a", newkey=hashlib.sha1(b"z").hexdigest())
    client.request(key="z")
    assert not client.session.ended


def test_missing_key_when_keys_are_in_use_is_item_not_found_section_15() -> None:
    client = started(newkey=hashlib.sha1(b"a").hexdigest())
    request = client.request()
    assert client.response(request).get("condition") == "item-not-found"


def test_restart_is_passed_to_the_stream_and_features_answer_it_xep_0206_section_5() -> None:
    client = started()
    restart = client.request(**{"xmpp:restart": "true"})
    assert any(isinstance(o, RestartUpstream) for o in client.orders)
    client.take(client.session.handle(ServerStanzas(stanzas=(features(),)), client.now))
    assert client.response(restart)[0].tag == "{http://etherx.jabber.org/streams}features"


def test_stream_error_becomes_remote_stream_error_with_the_error_inside_xep_0206_section_6() -> None:
    client = started()
    held = client.request()
    error = etree.fromstring(
        "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
        "<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
    )
    client.take(
        client.session.handle(ServerClosed(condition=BoshCondition.REMOTE_STREAM_ERROR, stanzas=(error,)), client.now)
    )
    response = client.response(held)
    assert response.get("condition") == "remote-stream-error"
    assert response.find("{http://etherx.jabber.org/streams}error") is not None


def test_server_close_waits_for_a_request_when_none_is_held() -> None:
    client = started()
    client.server_sends("last words")
    client.take(client.session.handle(ServerClosed(condition=None), client.now))
    request = client.request()
    assert client.bodies(request) == ["last words"]
    final = client.request()
    assert client.response(final).get("type") == "terminate"


def test_upstream_failure_at_creation_is_reported_in_the_creation_response() -> None:
    client = Client()
    client.take(client.session.handle(ServerClosed(condition=BoshCondition.REMOTE_CONNECTION_FAILED), client.now))
    created = client.response(client.creation_id)
    assert created.get("type") == "terminate" and created.get("condition") == "remote-connection-failed"


def test_acks_when_requested_the_response_tells_the_highest_rid_seen_section_9_1() -> None:
    client = started(hold=2, ack=True)
    assert client.response(client.creation_id).get("ack") == str(FIRST_RID)
    first = client.request()
    client.request()
    client.request()  # releases the first held request, answered while later rids were seen
    assert client.response(first).get("ack") == str(FIRST_RID + 3)


def test_client_ack_below_a_sent_response_reports_it_lost_section_9_2() -> None:
    client = started(hold=1, ack=True)
    first = client.request(ack=str(FIRST_RID))
    client.server_sends("might be lost")
    assert client.answered(first)
    client.advance(2)
    report = client.request(ack=str(FIRST_RID))  # the client never saw the answer to FIRST_RID + 1
    client.server_sends("next")
    response = client.response(report)
    assert response.get("report") == str(FIRST_RID + 1) and response.get("time") == "2000"


def test_aborted_request_is_forgotten_and_inactivity_counts_from_then() -> None:
    client = started()
    held = client.request()
    client.take(client.session.handle(RequestAborted(request_id=held), client.now))
    client.advance(60)
    assert client.session.ended


@pytest.mark.parametrize("rid", [2**31 + 5, 2**53 - 10])
def test_large_rids_work(rid: int) -> None:
    client = Client()
    client.rid = rid
    client.session._last_rid = rid  # a session created at that rid
    client.server_opens()
    request = client.request()
    client.server_sends("fine")
    assert client.bodies(request) == ["fine"]


def test_a_retry_of_a_held_rid_whose_connection_went_away_is_held_again() -> None:
    client = started()
    held = client.request()
    client.take(client.session.handle(RequestAborted(request_id=held), client.now))
    client.server_sends("meanwhile")
    retry = client.request(rid=FIRST_RID + 1)  # Strophe resends the rid of a failed request
    assert client.bodies(retry) == ["meanwhile"] and not client.session.ended


def test_stanzas_of_an_answer_that_could_not_be_written_go_in_the_next_request() -> None:
    client = started()
    held = client.request()
    client.server_sends("one", "two")
    client.take(client.session.handle(ResponseUndelivered(request_id=held), client.now))
    client.server_sends("three")
    following = client.request()
    assert client.bodies(following) == ["one", "two", "three"]


def test_an_answer_that_could_not_be_written_is_delivered_once_when_its_rid_is_retried() -> None:
    client = started(hold=1)
    held = client.request()
    client.server_sends("only once")
    client.take(client.session.handle(ResponseUndelivered(request_id=held), client.now))
    retry = client.request(rid=FIRST_RID + 1)
    assert client.bodies(retry) == ["only once"]
    following = client.request()
    client.advance(30)
    assert client.bodies(following) == []


def test_a_response_is_split_at_max_response_bytes_and_a_larger_stanza_goes_alone() -> None:
    client = started(hold=1, limits=BoshLimits(max_response_bytes=1_000))
    client.server_sends(*[f"{index}" + "x" * 200 for index in range(8)], "big" + "y" * 3_000, "last")
    sizes, received = [], []
    while len(received) < 10:
        request = client.request()
        sizes.append(len(client.responses[request]))
        received += client.bodies(request)
    assert [text[0] for text in received[:8]] == [str(index) for index in range(8)]
    assert received[8].startswith("big") and received[9] == "last"
    assert all(size <= 1_000 for size in sizes if size < 3_000)  # only the big stanza's answer is larger
    assert any(size > 3_000 for size in sizes)
    assert client.session.pending_bytes == 0


def test_a_client_whose_queue_outgrows_max_pending_bytes_is_ended_with_policy_violation() -> None:
    client = started(limits=BoshLimits(max_pending_bytes=2_000))
    client.server_sends(*["z" * 500] * 3)
    assert not client.session.ended
    client.server_sends("z" * 500)
    assert any(isinstance(order, CloseUpstream) for order in client.orders)
    client.server_sends("dropped")  # nothing more is queued
    assert client.session.pending_bytes == 0
    late = client.request()
    assert client.response(late).get("condition") == "policy-violation"
    assert client.session.ended


def test_when_the_server_closes_every_held_request_is_answered() -> None:
    client = started(hold=2)
    first, second = client.request(), client.request()
    client.take(client.session.handle(ServerClosed(condition=BoshCondition.SYSTEM_SHUTDOWN), client.now))
    assert client.response(first).get("condition") == "system-shutdown"
    assert client.response(second).get("condition") == "system-shutdown"


def test_sasl_success_from_the_server_marks_the_session_authenticated_once() -> None:
    client = started()
    success = etree.fromstring("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
    assert not client.session.authenticated
    client.take(client.session.handle(ServerStanzas(stanzas=(success,)), client.now))
    client.take(client.session.handle(ServerStanzas(stanzas=(success,)), client.now))
    assert client.session.authenticated
    assert sum(isinstance(order, Authenticated) for order in client.orders) == 1


def test_before_login_a_request_body_may_only_be_a_few_kib() -> None:
    def sized(client: Client, size_bytes: int) -> int:
        client.rid += 1
        arrived = RequestArrived(request_id=next(client.ids), size_bytes=size_bytes,
                                 body=client.body_of({"rid": str(client.rid), "sid": "s1"}))  # type: ignore[arg-type]
        client.take(client.session.handle(arrived, client.now))
        return arrived.request_id

    limits = BoshLimits(max_body_bytes_before_auth=4096)
    stranger = started(limits=limits)
    refused = sized(stranger, 4097)
    assert stranger.response(refused).get("condition") == "policy-violation"
    assert any(isinstance(order, CloseUpstream) for order in stranger.orders)
    member = started(limits=limits)
    success = etree.fromstring("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
    member.take(member.session.handle(ServerStanzas(stanzas=(success,)), member.now))
    sized(member, 4097)
    sized(member, 200_000)
    assert not member.session.ended


@pytest.mark.parametrize(("asked", "answered"), [(None, "1.11"), ("1.6", "1.6"), ("1.10", "1.10"), ("1.12", "1.11"),
                                                 ("2.0", "1.11"), ("0.9", "0.9")])
def test_ver_is_the_lower_of_the_clients_and_ours_section_7_2(asked: str | None, answered: str) -> None:
    client = started(**({"ver": asked} if asked else {}))
    assert client.response(client.creation_id).get("ver") == answered


@pytest.mark.parametrize("content", ["text/html", "text/xml\r\nSet-Cookie: x=y", "nonsense", "image/svg+xml",
                                     # CR and LF by character reference: the parser keeps them in the value
                                     "text/xml&#13;&#10;&#13;&#10;;a=b", "text/xml;&#13;&#10;X=y"])
def test_a_content_type_that_is_not_xml_or_plain_text_is_bad_request_section_7_1(content: str) -> None:
    client = Client(content=content)
    assert client.response(client.creation_id).get("condition") == "bad-request"


def test_the_content_attribute_becomes_the_sessions_content_type_section_7_1() -> None:
    client = started(content="application/xml; charset=utf-8")
    assert client.session.content_type == "application/xml; charset=utf-8"
    assert started().session.content_type == "text/xml; charset=utf-8"


def test_a_client_terminate_closes_the_xmpp_side_cleanly_and_inactivity_does_not() -> None:
    """XEP-0124 §13 terminate is the client's goodbye; inactivity (§10) is a lost client, which a resumable
    XEP-0198 stream behind the session survives."""
    client = started()
    client.request(type="terminate")
    assert [order.by_client for order in client.orders if isinstance(order, CloseUpstream)] == [True]
    lost = started(limits=BoshLimits(inactivity_seconds=30))
    lost.advance(31)
    assert [order.by_client for order in lost.orders if isinstance(order, CloseUpstream)] == [False]


def test_a_request_whose_gap_never_fills_is_answered_within_wait_and_the_session_goes_on() -> None:
    """XEP-0124 §14.3: the request before it was lost and the client never sent it again. Held beside a held request
    it would wait past 'wait' (the held one's wait, then the inactivity): it gets a recoverable error at its 'wait'
    (§17.1), the client repeats what is unanswered, and nothing waits longer."""
    client = started(hold=1)  # wait 30
    held = client.request()
    lost_rid = client.rid + 1
    client.advance(5)
    early = client.request(rid=client.rid + 2)
    client.advance(25)
    assert client.answered(held) and not client.answered(early)  # the held one's wait: an empty body
    assert client.session.next_deadline() == pytest.approx(client.now + 5)  # not the inactivity's 60 s
    client.advance(5)
    assert client.response(early).get("type") == "error" and not client.session.ended
    repeated = client.request(rid=lost_rid)  # the client sends both again, in order
    client.request(rid=lost_rid + 1)
    assert client.answered(repeated) and not client.session.ended


def test_requests_waiting_for_a_gap_are_answered_when_the_session_ends() -> None:
    """An early rid (waiting for the one before it) must not hang when the session ends meanwhile."""
    client = started(hold=1)
    held = client.request()
    early = client.request(rid=client.rid + 2)
    assert not client.answered(early)
    client.take(client.session.handle(ServerClosed(condition=BoshCondition.SYSTEM_SHUTDOWN), client.now))
    assert client.response(held).get("condition") == "system-shutdown"
    assert client.response(early).get("type") == "terminate"
