// BOSH keys (XEP-0124 §15). Whoever learns the sid (a proxy log, a shared screen) still cannot send in this
// session: every request carries the previous element of a SHA-1 chain, K(n) = hex(SHA-1(K(n-1))), whose earlier
// elements only this page knows. Strophe.js has no keys: useKeys() wraps the BOSH transport's _buildBody (the one
// place every request body is made) and adds newkey/key there. The chain is saved with Strophe's sid/rid in
// `storage` (sessionStorage), so a reloaded page can re-attach. Browsers offer crypto.subtle only on secure
// origins (https, or http://localhost and 127.0.0.1); elsewhere the page runs without keys. The chain itself is
// tested in node (tests/js/keys.test.mjs).

export const KEY_STORE = "quiz-bosh-keys";
export const KEYS_PER_SEQUENCE = 64;

const toHex = (bytes) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");

export async function keySequence(count = KEYS_PER_SEQUENCE) {
  const seed = new Uint8Array(20);
  crypto.getRandomValues(seed);
  const keys = [toHex(seed)]; // K(0)
  for (let n = 1; n <= count; n++) {
    const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(keys[n - 1]));
    keys.push(toHex(new Uint8Array(digest)));
  }
  return keys; // K(0) … K(n): used from the end
}

export class BoshKeys {
  constructor(keys, spare) {
    this.keys = keys; // what is left of the current sequence; the last one goes out next
    this.spare = spare; // the next sequence, ready before this one runs out
  }

  static available() { return Boolean(globalThis.crypto && crypto.subtle); }

  static async fresh() { return new BoshKeys(await keySequence(), await keySequence()); }

  static load(storage, sid) {
    const saved = JSON.parse(storage.getItem(KEY_STORE) || "null");
    if (!saved || saved.sid !== sid || !Array.isArray(saved.keys) || !saved.keys.length) return null;
    const keys = new BoshKeys(saved.keys, saved.spare);
    if (!keys.spare) keySequence().then((spare) => { keys.spare = spare; });
    return keys;
  }

  save(storage, sid) {
    storage.setItem(KEY_STORE, JSON.stringify({ sid, keys: this.keys, spare: this.spare }));
  }

  // The attributes for the next request body.
  next(creating) {
    if (creating) return { newkey: this.keys.pop() };
    const key = this.keys.pop();
    // Switch to the spare sequence at the latest with K(0), or earlier once it is ready (newkey is allowed on
    // any request); then prepare the one after.
    if (this.spare && (this.keys.length === 0 || this.keys.length < KEYS_PER_SEQUENCE / 4)) {
      this.keys = this.spare;
      this.spare = null;
      keySequence().then((keys) => { this.spare = keys; });
      return { key, newkey: this.keys.pop() };
    }
    return { key };
  }
}

// Strophe's BOSH transport of `conn` sends the keys from now on.
export function useKeys(conn, keys, storage) {
  const bosh = conn._proto;
  const build = bosh._buildBody.bind(bosh);
  bosh._buildBody = () => {
    const creating = bosh.sid === null;
    const body = build(); // Strophe's own body: rid, sid, and its sessionStorage entry
    body.attrs(keys.next(creating));
    keys.save(storage, bosh.sid);
    return body;
  };
}
