// What the tabs of one browser say to each other (quizbot/web/tabs.js), without a browser: `node --test tests/js/`.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Pending, Senders, fresh, readMessage } from "../../quizbot/web/tabs.js";

test("only well-formed messages of a known kind are read", () => {
  assert.deepEqual(readMessage({ kind: "stanza", from: "t1", xml: "<message/>" }),
                   { kind: "stanza", from: "t1", xml: "<message/>" });
  assert.ok(readMessage({ kind: "send", from: "t1", seq: 1, xml: "<presence/>" }));
  assert.ok(readMessage({ kind: "state", from: "t1", up: true, jid: "a@b/c", guest: false, pass: { ck: "x" },
                         ended: false }));
  assert.ok(readMessage({ kind: "state", from: "t1", up: false, jid: "a@b/c", guest: false, pass: null, ended: true }));
  for (const bad of [null, "stanza", 7, {}, { kind: "stanza", xml: "<m/>" }, { kind: "stanza", from: "t", xml: 3 },
    { kind: "send", from: "t", seq: 0, xml: "<m/>" }, { kind: "send", from: "t", seq: "1", xml: "<m/>" },
    { kind: "state", from: "t", up: "yes", jid: null, guest: false, pass: null, ended: false },
    { kind: "state", from: "t", up: false, jid: null, guest: false, pass: null },
    { kind: "toString", from: "t" }, { kind: "evil", from: "t" }]) {
    assert.equal(readMessage(bad), null, JSON.stringify(bad));
  }
});

test("a follower's stanzas stay pending until confirmed, and a new leader gets them again in order", () => {
  const pending = new Pending();
  const one = pending.add("<message id='1'/>");
  const two = pending.add("<message id='2'/>");
  pending.add("<message id='3'/>");
  assert.deepEqual([one.seq, two.seq], [1, 2]);
  pending.confirm(two.seq); // confirmations may come in any order
  assert.deepEqual(pending.all(), [{ seq: 1, xml: "<message id='1'/>" }, { seq: 3, xml: "<message id='3'/>" }]);
  pending.confirm(1);
  pending.confirm(3);
  pending.confirm(3); // twice: harmless
  assert.deepEqual(pending.all(), []);
  assert.equal(pending.add("<presence/>").seq, 4); // numbers are never reused
});

test("the leader sends each follower's stanza once, however often it is asked", () => {
  const senders = new Senders();
  assert.equal(senders.accept("a", 1), true);
  assert.equal(senders.accept("a", 2), true);
  assert.equal(senders.accept("a", 2), false); // sent again after a "leader" announcement
  assert.equal(senders.accept("a", 1), false);
  assert.equal(senders.accept("b", 1), true); // another tab counts on its own
  assert.equal(senders.accept("a", 3), true);
});

test("a session left by another tab is taken back only while the server may keep it", () => {
  const now = 1_000_000;
  assert.equal(fresh({ at: now - 299_000 }, now, 300), true);
  assert.equal(fresh({ at: now - 301_000 }, now, 300), false);
  assert.equal(fresh({}, now, 300), false);
  assert.equal(fresh(null, now, 300), false);
});
