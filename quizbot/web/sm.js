// XEP-0198 stream management for the quiz page (Strophe.js has none over BOSH): counters modulo 2^32, the
// queue of stanzas the server has not acknowledged, what to answer to <r/>, and what to send again after a
// <resumed/>. Pure: the page (app.js) feeds it facts and performs what it returns; no DOM, no network, no
// clock, so node's test runner checks it (tests/js/sm.test.mjs). Stanzas are kept as XML strings, which is
// also how they survive a reload in sessionStorage.

export const NS_SM = "urn:xmpp:sm:3";
const MOD = 2 ** 32;

// XEP-0198 §4: h wraps to 0 after 2^32 - 1.
export const increment = (h) => (h + 1) % MOD;
// How many stanzas lie between two counter values, across a wrap.
export const distance = (from, to) => (((to - from) % MOD) + MOD) % MOD;

const isCounter = (h) => Number.isInteger(h) && h >= 0 && h < MOD;

export class StreamManagement {
  constructor({ requestEvery = 5 } = {}) {
    this.requestEvery = requestEvery;
    this.reset();
  }

  reset() {
    this.counting = false; // outbound: since we sent <enable/> (or <resume/>)
    this.enabled = false; // inbound: since the server said <enabled/> (or <resumed/>)
    this.id = null; // the resumption id; null: acks only (guests, or resumption refused)
    this.inbound = 0; // h: stanzas from the server this page has handled
    this.acked = 0; // the server's last h: our stanzas it has handled
    this.unacked = []; // our stanzas after `acked`, oldest first
  }

  get resumable() { return this.id !== null; }

  // §3: after binding. Returns the element's attributes; outbound counting starts here.
  enable() {
    this.reset();
    this.counting = true;
    return { xmlns: NS_SM, resume: "true" };
  }

  // §5: instead of binding, on a fresh stream after authenticating again.
  resume() {
    if (!this.resumable) return null;
    return { xmlns: NS_SM, previd: this.id, h: String(this.inbound) };
  }

  onEnabled({ id, resume }) {
    this.enabled = true;
    this.inbound = 0;
    this.id = id && (resume === "true" || resume === "1") ? id : null;
  }

  // A stanza (message, presence, iq) went out. True when it is time to ask for an ack.
  sent(xml) {
    if (!this.counting) return false;
    this.unacked.push(xml);
    return this.requestEvery > 0 && this.unacked.length % this.requestEvery === 0;
  }

  // A stanza from the server was handled.
  handled() {
    if (this.enabled) this.inbound = increment(this.inbound);
  }

  // <r/> from the server: the h of our <a/>.
  answer() { return { xmlns: NS_SM, h: String(this.inbound) }; }

  // <a h/> from the server. Returns false when h acknowledges more than was sent (§4: a protocol error).
  onAck(h) {
    const count = isCounter(h) ? distance(this.acked, h) : -1;
    if (count < 0 || count > this.unacked.length) return false;
    this.unacked.splice(0, count);
    this.acked = h;
    return true;
  }

  // <resumed h/>: the server has our stanzas up to h; returns the rest, in order, to send again (each goes
  // through sent() again, so the queue is rebuilt as they leave). null: h was impossible, treat as failed.
  onResumed(h) {
    if (!this.onAck(h)) return null;
    const again = this.unacked;
    this.unacked = [];
    this.counting = true;
    this.enabled = true;
    return again;
  }

  // <failed/> (to <enable/> or <resume/>): the old stream is gone. Returns what the server never
  // acknowledged (h, when given, says what it did get); the page decides whether any of it still matters.
  onFailed(h) {
    if (isCounter(h)) this.onAck(h);
    const lost = this.unacked;
    this.reset();
    return lost;
  }

  snapshot() {
    return { counting: this.counting, enabled: this.enabled, id: this.id, inbound: this.inbound,
             acked: this.acked, unacked: [...this.unacked] };
  }

  // From sessionStorage: anything malformed gives a fresh machine (the page then binds, as without SM).
  static fromSnapshot(saved, options) {
    const sm = new StreamManagement(options);
    if (!saved || typeof saved !== "object") return sm;
    const { counting, enabled, id, inbound, acked, unacked } = saved;
    if (typeof counting !== "boolean" || typeof enabled !== "boolean" || !isCounter(inbound) || !isCounter(acked)
        || !(id === null || typeof id === "string") || !Array.isArray(unacked)
        || !unacked.every((x) => typeof x === "string")) return sm;
    Object.assign(sm, { counting, enabled, id, inbound, acked, unacked: [...unacked] });
    return sm;
  }
}

// Which top-level elements count (§4): stanzas, not nonzas such as <r/>, <a/> or SASL.
export const isStanza = (name) => name === "message" || name === "presence" || name === "iq";
