"""The BOSH rid window (XEP-0124 §14) under any order of requests, repeats, aborts, server stanzas and time.

A hypothesis state machine plays the HTTP adapter and the XMPP side against one `BoshSession`. The model
knows only what an adapter can see (requests it sent, responses it got) and what the spec promises:
  - every request is answered at most once, and never after its client went away;
  - client payloads reach the server once each and in rid order, with no rid skipped;
  - server stanzas reach the client once each and in order;
  - a repeated rid whose answer is among the last `requests` answers gets those bytes again, byte for byte;
  - no more than `hold` processed requests wait unanswered.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from lxml import etree

from boshcm.bosh.body import RequestBody
from boshcm.bosh.session import (
    BoshAction,
    BoshLimits,
    BoshSession,
    ForwardToServer,
    RequestAborted,
    RequestArrived,
    Respond,
    ResponseUndelivered,
    ServerStanzas,
    SessionEnded,
    UpstreamOpened,
)
from boshcm.stanza import Element
from boshcm.xml.writer import serialize

HTTPBIND = "{http://jabber.org/protocol/httpbind}"
FIRST_RID = 2_147_483_640  # docs/protocol.md, Interoperability notes: rids above 2^31
WAIT_SECONDS = 30.0


def message(marker: str) -> Element:
    return etree.fromstring(f"<message xmlns='jabber:client' id='{marker}'/>")


def markers(data: bytes, prefix: str) -> list[int]:
    return [int(child.get("id", "")[len(prefix):]) for child in etree.fromstring(data)
            if etree.QName(child).localname == "message" and child.get("id", "").startswith(prefix)]


def is_answer(data: bytes) -> bool:
    """A real answer to the rid: not a refusal, a terminate or a recoverable binding error (§17)."""
    return etree.fromstring(data).get("type") not in ("terminate", "error")


@dataclass(slots=True)
class Request:
    request_id: int
    rid: int
    aborted: bool = False
    answer: bytes | None = None


class RidWindow(RuleBasedStateMachine):
    @initialize(hold=st.integers(min_value=1, max_value=2))
    def create(self, hold: int) -> None:
        self.now = 1000.0
        self.next_id = 0
        self.requests: dict[int, Request] = {}
        self.by_rid: dict[int, list[Request]] = {}
        self.ended = False
        self.forwarded: list[int] = []         # client payload markers, in the order the server got them
        self.delivered: list[int] = []         # server stanza markers, in the order the client got them
        self.answers: dict[int, bytes] = {}    # rid -> the real answer the client read for it
        self.recent: dict[int, bytes] = {}     # the last `requests` answers sent and not lost, oldest first
        self.next_stanza = 0
        self.highest_rid = FIRST_RID
        self.in_order = FIRST_RID              # every rid up to here has arrived (the spec's processed prefix)
        self.fresh: list[Respond] = []          # first answers to their rid, of the last batch
        first = self._arrive(FIRST_RID, {"to": "localhost", "wait": str(int(WAIT_SECONDS)), "hold": str(hold)})
        self.session = BoshSession(sid="s1", first=first, now=self.now, limits=BoshLimits(max_hold=2),
                                   serialize=serialize)
        self.hold = self.session.hold
        self._take(self.session.start(self.now))
        self._take(self.session.handle(UpstreamOpened(stream_id="abc", domain="localhost"), self.now))
        features = etree.fromstring("<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>")
        self._take(self.session.handle(ServerStanzas(stanzas=(features,)), self.now))

    # --- the adapter's side -----------------------------------------------------------------------

    def _arrive(self, rid: int, attrs: dict[str, str] | None = None) -> RequestArrived:
        self.next_id += 1
        request = Request(request_id=self.next_id, rid=rid)
        self.requests[request.request_id] = request
        self.by_rid.setdefault(rid, []).append(request)
        body = RequestBody(rid=rid, sid=None if attrs else "s1", attrs={"rid": str(rid), **(attrs or {})},
                           payloads=(message(f"c{rid}"),) if not attrs else ())
        return RequestArrived(request_id=request.request_id, body=body)

    def _send(self, rid: int) -> None:
        self.highest_rid = max(self.highest_rid, rid)
        self._take(self.session.handle(self._arrive(rid), self.now))
        # An ended session processes nothing more. (Early requests it leaves unanswered are not held.)
        while not self.ended and any(not r.aborted for r in self.by_rid.get(self.in_order + 1, ())):
            self.in_order += 1

    def _take(self, actions: list[BoshAction]) -> None:
        self.fresh = []
        for action in actions:
            match action:
                case Respond(request_id=request_id, data=data):
                    request = self.requests[request_id]
                    assert request.answer is None, f"request {request_id} (rid {request.rid}) answered twice"
                    assert not request.aborted, f"request {request_id} answered after its client went away"
                    request.answer = data
                    if request.rid > self.in_order and etree.fromstring(data).get("type") == "error":
                        # XEP-0124 §17.1: an early request given up on (its gap not filled within 'wait', or
                        # replaced by its retry) was never processed: as if it never came; the client repeats it.
                        self.by_rid[request.rid].remove(request)
                    self._received(request, data)
                case ForwardToServer(stanzas=stanzas):
                    self.forwarded += [int(s.get("id", "")[1:]) for s in stanzas]
                case SessionEnded():
                    self.ended = True
                case _:
                    pass

    def _received(self, request: Request, data: bytes) -> None:
        if not is_answer(data):
            return
        if request.rid in self.answers:
            # §14.3: a repeated rid is the same response again; the client takes it once.
            assert data == self.answers[request.rid], f"rid {request.rid} answered with different bytes"
            return
        self.answers[request.rid] = data
        self.fresh.append(Respond(request_id=request.request_id, data=data))
        self.delivered += markers(data, "s")
        # The last `requests` answers sent are kept for repeats; one that was lost is not.
        self.recent.pop(request.rid, None)
        self.recent[request.rid] = data
        while len(self.recent) > self.session.requests:
            del self.recent[next(iter(self.recent))]

    def _live(self) -> list[Request]:
        return [r for r in self.requests.values() if r.answer is None and not r.aborted]

    # --- rules ------------------------------------------------------------------------------------

    @rule()
    def next_request(self) -> None:
        self._send(self.highest_rid + 1)

    @rule(ahead=st.integers(min_value=2, max_value=4))
    def early_request(self, ahead: int) -> None:
        """A request overtakes the one before it (two HTTP connections); beyond the window it ends the session."""
        rid = self.highest_rid + ahead
        beyond = not self.ended and rid > self.in_order + self.session.requests
        self._send(rid)
        if beyond:
            # XEP-0124 §14.3: a rid above the window ends the session with item-not-found.
            answer = self.requests[self.next_id].answer
            assert answer is not None and self.ended, f"rid {rid} beyond the window was not refused"
            assert etree.fromstring(answer).get("condition") == "item-not-found"

    @rule(back=st.integers(min_value=0, max_value=5))
    def repeat_request(self, back: int) -> None:
        rid = max(FIRST_RID + 1, self.highest_rid - back)
        if rid > self.highest_rid:
            return
        recent = dict(self.recent)
        alive = not self.ended and rid <= self.in_order
        request_id = self.next_id + 1
        self._send(rid)
        if alive and rid in recent:
            # XEP-0124 §14.3: the lost response again, byte for byte.
            assert self.requests[request_id].answer == recent[rid], f"repeated rid {rid} got other bytes"

    @rule(data=st.data())
    def abort(self, data: st.DataObject) -> None:
        live = self._live()
        if live:
            request = data.draw(st.sampled_from(live))
            request.aborted = True
            if request.rid > self.in_order:
                self.by_rid[request.rid].remove(request)  # never processed: as if it never came
            self._take(self.session.handle(RequestAborted(request_id=request.request_id), self.now))

    @precondition(lambda self: any(markers(r.data, "s") for r in self.fresh))
    @rule()
    def answer_lost(self) -> None:
        """The connection of the answer just written was already closing: the client never read it."""
        lost = next(r for r in self.fresh if markers(r.data, "s"))
        rid = self.requests[lost.request_id].rid
        del self.answers[rid]
        self.recent.pop(rid, None)
        taken = markers(lost.data, "s")
        self.delivered = [n for n in self.delivered if n not in taken]
        self._take(self.session.handle(ResponseUndelivered(request_id=lost.request_id), self.now))

    @rule(count=st.integers(min_value=1, max_value=3))
    def server_stanzas(self, count: int) -> None:
        stanzas = tuple(message(f"s{self.next_stanza + i}") for i in range(count))
        self.next_stanza += count
        self._take(self.session.handle(ServerStanzas(stanzas=stanzas), self.now))

    @rule(seconds=st.sampled_from([0.5, WAIT_SECONDS / 2, WAIT_SECONDS, WAIT_SECONDS * 3]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        self._take(self.session.handle_timeout(self.now))

    # --- invariants -------------------------------------------------------------------------------

    @invariant()
    def client_payloads_reach_the_server_once_in_rid_order(self) -> None:
        if hasattr(self, "session"):
            expected = list(range(FIRST_RID + 1, FIRST_RID + 1 + len(self.forwarded)))
            assert self.forwarded == expected, f"forwarded rids {self.forwarded}"
            assert not self.forwarded or self.forwarded[-1] <= self.in_order

    @invariant()
    def server_stanzas_reach_the_client_once_in_order(self) -> None:
        if hasattr(self, "session"):
            assert self.delivered == sorted(set(self.delivered)), f"delivered {self.delivered}"

    @invariant()
    def never_more_than_hold_requests_held(self) -> None:
        if hasattr(self, "session"):
            held = [r for r in self._live() if r.rid <= self.in_order]
            assert len(held) <= (0 if self.ended else self.hold), f"held {[r.rid for r in held]}"


RidWindow.TestCase.settings = settings(max_examples=150, stateful_step_count=25, deadline=None)
TestRidWindow = RidWindow.TestCase


def test_an_early_request_given_up_on_leaves_its_rid_to_the_clients_repeat() -> None:
    """The case hypothesis found: 642 overtakes 641, waits 'wait' in vain and gets a recoverable error; then 641
    and 643 come. 642 was never processed, so 643 waits for its repeat and only 641 is held."""
    machine = RidWindow()
    machine.create(hold=1)
    machine.early_request(ahead=2)
    machine.time_passes(seconds=WAIT_SECONDS)
    machine.repeat_request(back=1)
    machine.next_request()
    assert machine.in_order == FIRST_RID + 1
    machine.never_more_than_hold_requests_held()
    machine.client_payloads_reach_the_server_once_in_rid_order()
    machine.teardown()
