// The quiz page's XEP-0198 module (quizbot/web/sm.js), without a browser: `node --test tests/js/`.
import assert from "node:assert/strict";
import { test } from "node:test";

import { NS_SM, StreamManagement, distance, increment, isStanza } from "../../quizbot/web/sm.js";

const enabled = (options) => {
  const sm = new StreamManagement(options);
  sm.enable();
  sm.onEnabled({ id: "abc", resume: "true" });
  return sm;
};

test("counters wrap at 2^32", () => {
  assert.equal(increment(2 ** 32 - 1), 0);
  assert.equal(increment(41), 42);
  assert.equal(distance(2 ** 32 - 2, 1), 3);
  assert.equal(distance(7, 7), 0);
  const sm = enabled();
  sm.inbound = 2 ** 32 - 1;
  sm.handled();
  assert.deepEqual(sm.answer(), { xmlns: NS_SM, h: "0" });
});

test("an ack across the wrap drops exactly the stanzas it covers", () => {
  const sm = enabled();
  sm.acked = 2 ** 32 - 2;
  for (const n of [1, 2, 3, 4]) sm.sent(`<message id='${n}'/>`);
  assert.equal(sm.onAck(1), true); // 2^32-2 -> 1: three stanzas
  assert.deepEqual(sm.unacked, ["<message id='4'/>"]);
  assert.equal(sm.acked, 1);
});

test("inbound stanzas count only after <enabled/>, outbound only after <enable/>", () => {
  const sm = new StreamManagement();
  sm.handled();
  assert.equal(sm.sent("<presence/>"), false);
  assert.deepEqual(sm.unacked, []);
  assert.deepEqual(sm.enable(), { xmlns: NS_SM, resume: "true" });
  sm.sent("<presence/>"); // between <enable/> and <enabled/>: the server counts it
  sm.handled(); // not yet enabled: not counted
  sm.onEnabled({ id: "abc", resume: "true" });
  sm.handled();
  sm.handled();
  assert.equal(sm.inbound, 2);
  assert.deepEqual(sm.unacked, ["<presence/>"]);
  assert.equal(sm.resumable, true);
});

test("an ack request goes out every requestEvery stanzas", () => {
  const sm = enabled({ requestEvery: 3 });
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => sm.sent(`<iq id='${n}'/>`)),
                   [false, false, true, false, false, true]);
});

test("an ack for more than was sent is refused and changes nothing", () => {
  const sm = enabled();
  sm.sent("<message/>");
  assert.equal(sm.onAck(2), false);
  assert.equal(sm.onAck(-1), false);
  assert.equal(sm.onAck("1"), false);
  assert.deepEqual(sm.unacked, ["<message/>"]);
  assert.equal(sm.acked, 0);
});

test("guests and refused resumption get acks only", () => {
  const sm = new StreamManagement();
  sm.enable();
  sm.onEnabled({ id: null, resume: undefined });
  assert.equal(sm.resumable, false);
  assert.equal(sm.resume(), null);
  sm.enable();
  sm.onEnabled({ id: "x", resume: "false" });
  assert.equal(sm.resumable, false);
});

test("after <resumed h/> exactly the stanzas the server did not get are sent again, in order", () => {
  const sm = enabled();
  for (const n of [1, 2, 3, 4, 5]) sm.sent(`<message id='${n}'/>`);
  sm.onAck(2);
  sm.handled();
  sm.handled();
  sm.handled();
  assert.deepEqual(sm.resume(), { xmlns: NS_SM, previd: "abc", h: "3" });
  const again = sm.onResumed(4);
  assert.deepEqual(again, ["<message id='5'/>"]);
  assert.deepEqual(sm.unacked, []); // rebuilt as the page sends them again
  sm.sent(again[0]);
  assert.equal(sm.onAck(5), true);
  assert.deepEqual(sm.unacked, []);
  assert.equal(sm.inbound, 3); // the inbound count goes on
});

test("an impossible h in <resumed/> is reported, nothing is resent", () => {
  const sm = enabled();
  sm.sent("<message/>");
  assert.equal(sm.onResumed(9), null);
});

test("<failed/> ends resumption and hands back what was never acknowledged", () => {
  const sm = enabled();
  for (const n of [1, 2, 3]) sm.sent(`<message id='${n}'/>`);
  assert.deepEqual(sm.onFailed(1), ["<message id='2'/>", "<message id='3'/>"]);
  assert.equal(sm.resumable, false);
  assert.equal(sm.counting, false);
  assert.equal(sm.sent("<message/>"), false);
});

test("the state survives a round trip through sessionStorage (JSON)", () => {
  const sm = enabled();
  sm.sent("<message id='1'>Tom's &amp; \"x\"</message>");
  sm.handled();
  sm.handled();
  sm.onAck(0);
  const back = StreamManagement.fromSnapshot(JSON.parse(JSON.stringify(sm.snapshot())));
  assert.deepEqual(back.snapshot(), sm.snapshot());
  assert.deepEqual(back.resume(), { xmlns: NS_SM, previd: "abc", h: "2" });
  assert.deepEqual(back.onResumed(0), ["<message id='1'>Tom's &amp; \"x\"</message>"]);
});

test("a malformed saved state gives a fresh machine, not a broken one", () => {
  for (const saved of [null, "x", { id: 5 }, { counting: true, enabled: true, id: "a", inbound: -1, acked: 0,
    unacked: [] }, { counting: true, enabled: true, id: "a", inbound: 0, acked: 0, unacked: [3] }]) {
    const sm = StreamManagement.fromSnapshot(saved);
    assert.equal(sm.resumable, false);
    assert.deepEqual(sm.unacked, []);
  }
});

test("only message, presence and iq are stanzas", () => {
  assert.deepEqual(["message", "presence", "iq", "r", "a", "enable", "auth"].map(isStanza),
                   [true, true, true, false, false, false, false]);
});
