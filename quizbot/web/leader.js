// One connection per browser, shared by all its tabs of the page (docs/quiz.md, "Many tabs, one connection").
// Browsers allow six HTTP/1.1 connections per host and BOSH holds one per tab: a sixth tab waited a minute for
// every message, a seventh never got in. So the tabs elect a leader with the Web Locks API (the lock is the
// tab's for as long as it lives; the next tab in the lock's queue gets it when it closes or reloads), and only
// the leader connects (connection.js). The others follow over a BroadcastChannel (tabs.js: the messages):
// the leader passes on every stanza the server sends, as it handles it, and sends what they send. All tabs are
// then the same player, which is what someone opening the quiz twice expects.
//
// The session's XEP-0198 state is in localStorage, written by the leader as it counts each stanza (and passes
// it on): when the leader closes, the next one resumes the session after exactly what every tab has had
// (<resume previd h/>), as a guest or with the SCRAM keys the old leader handed round on the channel. A
// follower's stanza stays pending until the leader confirms it is on the stream (counted, kept until the server
// acknowledges it, so a resumption sends it again if need be); a new leader gets the pending ones again.
// Logging in from a follower takes the lock (steal): the old leader says goodbye to its session.
//
// Without Web Locks (pages on plain http other than localhost: not a secure context) or BroadcastChannel, every
// tab has its own connection and keeps its state in its own sessionStorage, as before.
import { SM_STORE, createLink } from "./connection.js";
import { CHANNEL, Pending, Senders, readMessage } from "./tabs.js";

const { Strophe } = window;
const LOCK = "quiz-connection";
// A leader's statuses that end its session: the login form shows.
const ENDED = new Set(["authfail", "login"]);

export const SHARED = Boolean(globalThis.navigator && navigator.locks && "BroadcastChannel" in window);

const nowhere = { getItem: () => null, setItem() {}, removeItem() {} };

function safeLocal() {
  try {
    localStorage.setItem("quiz-probe", "1");
    localStorage.removeItem("quiz-probe");
    return localStorage;
  } catch {
    return nowhere; // refused (a privacy setting): every tab keeps its own
  }
}

// Where the session's state lives for every tab (XEP-0198 counters and queue; never keys or passwords).
const local = SHARED ? safeLocal() : nowhere;

// The page's own state (room, nick, the bot's latest payloads) for every tab: read from localStorage, written to
// it and to this tab's sessionStorage (this tab's copy: what it showed last, as the page always kept it).
export const storage = local === nowhere ? sessionStorage : {
  getItem: (key) => local.getItem(key),
  setItem(key, value) {
    sessionStorage.setItem(key, value);
    local.setItem(key, value);
  },
  removeItem(key) {
    sessionStorage.removeItem(key);
    local.removeItem(key);
  },
};

const parseStanza = (xml) => new DOMParser().parseFromString(xml, "text/xml").documentElement;
const serialize = (stanza) => Strophe.serialize(stanza && typeof stanza.tree === "function" ? stanza.tree() : stanza);

// The same API as connection.js's link: login, restore, send, onStanza, jid; events status, ready, resumed, and
// followed() (a follower now shows the session the leader has).
export function createConnection({ config, storage: tabStorage, inRoom, events }) {
  const tab = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  const channel = SHARED ? new BroadcastChannel(CHANNEL) : null;
  const handlers = [];
  const pending = new Pending(); // what this tab sent as a follower, until the leader confirms it
  const senders = new Senders(); // as the leader: what each follower already had sent
  let role = "starting"; // "leader" | "follower" | "alone"
  let link = null; // this tab's connection, made when it first leads
  let following = false; // a follower showing the session (restore() found one)
  let leaderSays = { up: false, jid: null, guest: false, pass: null, ended: false };
  let ended = false; // as the leader: since a status of ENDED, until a new login
  let waiting = null; // the AbortController of this tab's place in the lock's queue

  const post = (message) => channel.postMessage({ ...message, from: tab });

  function announce() {
    if (role !== "leader") return;
    post({ kind: "state", up: link.up, jid: link.jid, guest: link.guest, pass: link.pass, ended });
  }

  function ensureLink() {
    if (link) return link;
    link = createLink({
      config, storage: tabStorage, shared: local, inRoom,
      events: {
        status: (kind) => {
          if (ENDED.has(kind)) ended = true;
          else if (kind === "connecting" || kind === "up") ended = false;
          events.status(kind);
          if (channel) announce();
        },
        ready: (reason) => { events.ready(reason); if (channel) announce(); },
        resumed: () => { events.resumed(); if (channel) announce(); },
      },
      onInput: (element) => { if (role === "leader") post({ kind: "stanza", xml: Strophe.serialize(element) }); },
    });
    for (const [name, handler] of handlers) link.onStanza(name, handler);
    return link;
  }

  // --- the lock -------------------------------------------------------------------------------------------------

  // The lock is this tab's while it lives (the browser frees it when the tab closes or reloads), unless stolen.
  // onGranted(lock) with lock null: another tab holds it (ifAvailable).
  function requestLock(options, onGranted) {
    let granted = false;
    navigator.locks.request(LOCK, options, (lock) => {
      granted = Boolean(lock);
      onGranted(lock);
      return granted ? new Promise(() => {}) : null;
    }).catch(() => { if (granted) stolen(); }); // AbortError: stolen, or our place in the queue given up
  }

  // Another tab logged in and took the lock: its session replaces this one's.
  function stolen() {
    if (role !== "leader") return;
    role = "follower";
    following = false;
    if (link) link.end();
    waitToLead();
  }

  function waitToLead() {
    waiting = new AbortController();
    requestLock({ signal: waiting.signal }, lead);
  }

  // The tab that led closed or reloaded: this one takes its session over for every tab, and sends through it what
  // it had sent as a follower and not seen confirmed.
  function lead() {
    role = "leader";
    post({ kind: "leader" });
    const own = ensureLink();
    const took = own.takeOver(leaderSays.pass);
    if (!took && following) events.status("login");
    for (const { seq, xml } of pending.all()) {
      own.send(parseStanza(xml));
      pending.confirm(seq);
    }
  }

  const elected = new Promise((resolve) => {
    if (!SHARED) {
      role = "alone";
      resolve(role);
      return;
    }
    requestLock({ ifAvailable: true }, (lock) => {
      role = lock ? "leader" : "follower";
      resolve(role);
      if (!lock) waitToLead();
    });
  });

  // --- the channel ----------------------------------------------------------------------------------------------

  function deliver(xml) {
    const stanza = parseStanza(xml);
    for (const [name, handler] of handlers) if (stanza.localName === name) handler(stanza);
  }

  function relay({ from, seq, xml }) {
    if (!senders.accept(from, seq)) return; // a second copy: the first one confirms
    link.send(parseStanza(xml), () => post({ kind: "sent", to: from, seq }));
    link.flush();
  }

  // A tab that showed no session (the login form, opened before the login or logged in from another tab) follows
  // the leader's as soon as there is one: the same player in every tab, without a reload.
  function onLeaderState(state) {
    leaderSays = state;
    if (following && state.ended) {
      // The leader's login was refused: the login form here too, not "reconnecting" for ever; the next login is
      // followed again.
      following = false;
      events.status("login");
      return;
    }
    if (!following && state.jid && state.up) {
      following = true;
      events.followed();
    }
    if (following && state.jid) events.status(state.up ? "up" : "reconnecting");
  }

  if (channel) {
    channel.onmessage = ({ data }) => {
      const message = readMessage(data);
      if (!message) return;
      if (role === "leader") {
        if (message.kind === "hello") announce();
        else if (message.kind === "send") relay(message);
      } else if (role === "follower") {
        if (message.kind === "stanza") { if (following) deliver(message.xml); }
        else if (message.kind === "state") onLeaderState(message);
        else if (message.kind === "sent" && message.to === tab) pending.confirm(message.seq);
        else if (message.kind === "leader") for (const item of pending.all()) post({ kind: "send", ...item });
      }
    };
  }

  elected.then((elect) => {
    if (elect === "follower") post({ kind: "hello" });
    else ensureLink();
  });

  // --- the page's API -------------------------------------------------------------------------------------------

  // A follower shows the session the leader has (the page draws the room it was in from the shared state, as after
  // a reload); a leader, or a tab on its own, takes its session back (connection.js).
  async function restore(options) {
    if ((await elected) !== "follower") return ensureLink().restore(options);
    const saved = JSON.parse(local.getItem(SM_STORE) || "null");
    if (!saved || typeof saved.jid !== "string") return false;
    following = true;
    options.beforeResume();
    events.resumed();
    post({ kind: "hello" });
    return true;
  }

  return {
    onStanza(name, handler) {
      handlers.push([name, handler]);
      if (link) link.onStanza(name, handler);
    },
    // A new login for the whole browser: a follower takes the lock (the leader's session ends) and connects.
    async login(jid, password) {
      await elected;
      if (role === "follower") { // elected so, or since another tab logged in
        if (waiting) waiting.abort();
        await new Promise((granted) => {
          requestLock({ steal: true }, () => {
            role = "leader";
            post({ kind: "leader" });
            granted();
          });
        });
      }
      following = false;
      ensureLink().login(jid, password);
    },
    restore,
    // Logging out ("forget me"): a leading tab's session ends with a goodbye; a follower has none of its own.
    end() { if (link && role !== "follower") link.end(); },
    async send(stanza) {
      await elected;
      if (role === "follower") { // a tab elected to lead follows once another tab has logged in (stolen)
        post({ kind: "send", ...pending.add(serialize(stanza)) });
      } else ensureLink().send(stanza);
    },
    get jid() { return role === "follower" ? leaderSays.jid : link && link.jid; },
    // For tests and the curious: "leader", "follower" or "alone".
    get role() { return role; },
  };
}
