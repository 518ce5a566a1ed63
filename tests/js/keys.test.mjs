// XEP-0124 §15 BOSH keys (quizbot/web/keys.js) with node's WebCrypto: each key the page sends hashes to the one
// before it, a new chain is announced with newkey before the old one runs out, and a reload carries on.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

import { BoshKeys, KEYS_PER_SEQUENCE, KEY_STORE, keySequence } from "../../quizbot/web/keys.js";

const sha1 = (text) => createHash("sha1").update(text).digest("hex");

class Storage {
  constructor() { this.items = new Map(); }
  getItem(key) { return this.items.has(key) ? this.items.get(key) : null; }
  setItem(key, value) { this.items.set(key, String(value)); }
  removeItem(key) { this.items.delete(key); }
}

test("a sequence is a SHA-1 chain of hex strings", async () => {
  const keys = await keySequence();
  assert.equal(keys.length, KEYS_PER_SEQUENCE + 1);
  for (let n = 1; n < keys.length; n++) assert.equal(keys[n], sha1(keys[n - 1]));
  assert.match(keys[0], /^[0-9a-f]{40}$/);
  assert.notEqual((await keySequence())[0], keys[0]); // a fresh random seed each time
});

test("every key hashes to the previous one, across the switch to a new chain", async () => {
  const keys = await BoshKeys.fresh();
  let expected = keys.next(true).newkey; // session creation: newkey only
  let switches = 0;
  for (let request = 0; request < 3 * KEYS_PER_SEQUENCE; request++) {
    const attrs = keys.next(false);
    assert.equal(sha1(attrs.key), expected, `request ${request}`);
    expected = attrs.newkey ?? attrs.key;
    if (attrs.newkey) {
      switches++;
      // XEP-0124 §15.3: the switch happens before the old chain runs out.
      while (!keys.spare) await new Promise((resolve) => setTimeout(resolve, 5)); // the next one is made meanwhile
    }
  }
  assert.ok(switches >= 3, `switched ${switches} times`);
});

test("a reloaded page carries on with the saved chain of its own session only", async () => {
  const storage = new Storage();
  const keys = await BoshKeys.fresh();
  const sent = keys.next(true).newkey;
  keys.save(storage, "sid-1");
  assert.equal(BoshKeys.load(storage, "sid-2"), null);
  const again = BoshKeys.load(storage, "sid-1");
  assert.equal(sha1(again.next(false).key), sent);
  storage.setItem(KEY_STORE, JSON.stringify({ sid: "sid-1", keys: [] }));
  assert.equal(BoshKeys.load(storage, "sid-1"), null);
});
