// What the tabs of one browser say to each other about their one shared connection (leader.js): the messages on
// the BroadcastChannel, read defensively, and the bookkeeping that makes a follower's stanza go out exactly once
// although the leader may close at any moment. Pure: no DOM, no channel, no clock, so node's test runner checks
// it (tests/js/tabs.test.mjs).
//
// Leader to followers: "stanza" (one the server sent, as handled: counted for XEP-0198 and saved first),
// "state" (connected or not, the full JID, what a follower needs to take the session over, and whether the session
// is over: a refused login), "sent" (a
// follower's stanza is on the stream). Followers to the leader: "hello" (a new tab: tell me the state), "send".
// Any tab: "leader" (I lead now: send me again what I have not confirmed).

export const CHANNEL = "quiz-connection";

const KINDS = {
  stanza: (m) => typeof m.xml === "string",
  state: (m) => typeof m.up === "boolean" && (m.jid === null || typeof m.jid === "string")
    && typeof m.guest === "boolean" && (m.pass === null || typeof m.pass === "object") && typeof m.ended === "boolean",
  sent: (m) => typeof m.to === "string" && Number.isInteger(m.seq),
  hello: () => true,
  send: (m) => typeof m.xml === "string" && Number.isInteger(m.seq) && m.seq > 0,
  leader: () => true,
};

// A message from another tab, or null when it is not one of ours (the channel is per origin, but anything on the
// origin may post to it: a malformed message is ignored, never half-used).
export function readMessage(data) {
  if (!data || typeof data !== "object" || typeof data.kind !== "string" || typeof data.from !== "string") return null;
  const valid = Object.hasOwn(KINDS, data.kind) && KINDS[data.kind](data);
  return valid ? data : null;
}

// A follower's stanzas from "send" until the leader's "sent": a leader that closes before confirming leaves them
// here, and the next leader gets them again (it announces itself with "leader").
export class Pending {
  constructor() {
    this.seq = 0;
    this.waiting = new Map(); // seq -> xml, oldest first
  }

  add(xml) {
    this.seq += 1;
    this.waiting.set(this.seq, xml);
    return { seq: this.seq, xml };
  }

  confirm(seq) { this.waiting.delete(seq); }

  // Everything not confirmed, oldest first, for a new leader.
  all() { return [...this.waiting].map(([seq, xml]) => ({ seq, xml })); }
}

// The leader's memory of what each follower already had sent: a "send" that comes twice (the follower asked again
// because the confirmation crossed a new leader's announcement) goes out once.
export class Senders {
  constructor() { this.last = new Map(); } // tab -> highest seq sent

  // True when this stanza is new and is to be sent.
  accept(tab, seq) {
    if (seq <= (this.last.get(tab) || 0)) return false;
    this.last.set(tab, seq);
    return true;
  }
}

// Whether a session another tab saved (localStorage) is worth taking back when no tab leads: one whose leader
// went quiet longer ago than the server keeps a detached session is gone (a browser started again days later
// shows the login, not a stale room).
export function fresh(saved, now, maxAgeSeconds) {
  return Boolean(saved) && Number.isFinite(saved.at) && now - saved.at <= maxAgeSeconds * 1000;
}
