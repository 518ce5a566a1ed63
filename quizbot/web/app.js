// The browser quiz page: Strophe.js over BOSH (WebSocket when configured, falling back to BOSH), reading the
// bot's urn:boshcm:quiz:0 payloads — never its human text, and only from the bot. Schema: docs/quiz.md.
// An ES module: XEP-0198 stream management lives in sm.js (pure, tested in node: tests/js/).
import { NS_SM, StreamManagement, isStanza } from "./sm.js";

const NS = "urn:boshcm:quiz:0";
const MUC = "http://jabber.org/protocol/muc";
const MUC_USER = "http://jabber.org/protocol/muc#user";
const OCCUPANT_ID = "urn:xmpp:occupant-id:0";
const KEY_STORE = "quiz-bosh-keys";
const KEYS_PER_SEQUENCE = 64;
const CHAT_LINES = 200; // a phone keeps the last ones; a long evening's chat does not pile up in the DOM
const { Strophe, $build, $msg, $pres } = window;
// Strophe logs every request at DEBUG to the console: work and noise on a phone, for nobody.
Strophe.setLogLevel(Strophe.LogLevel.WARN);

const TEXT = {
  en: {
    title: "Quiz", language: "Language", welcome: "Play along", nickname: "Nickname", "play-guest": "Play as guest",
    "with-account": "Log in with an account", jid: "Address (name@server)", password: "Password", login: "Log in",
    choose: "Choose a game", create: "Create a game for friends", public: "Join the public quiz room",
    share: "Invite friends with this link:", copy: "Copy", lobby: "Players here", questions: "Questions",
    category: "Category", any: "any", "quiz-language": "Questions in", start: "Start the game",
    waiting: "Waiting for the room's owner to start a game…", "your-answer": "Your answer", send: "Send",
    scores: "Scores", podium: "Final podium", top: "All-time top list", chat: "Chat", message: "Message",
    connecting: "Connecting…", failed: "Could not connect.", authfail: "Login failed.",
    reconnecting: "Connection lost — reconnecting…", connected: "Connected.", received: "Answer received ✓",
    "sent-answer": "Answer sent…", question: "Question {i} of {n}", answer: "The answer: {a}",
    nobody: "Nobody scored.", points: "{p} points", "hint-label": "Hint: {h}", out: "{n} is out!",
    "pause-label": "Break until {t}", creating: "Creating your room…", "nick-taken": "That nickname is taken here.",
  },
  de: {
    title: "Quiz", language: "Sprache", welcome: "Spiel mit", nickname: "Spitzname", "play-guest": "Als Gast spielen",
    "with-account": "Mit Konto anmelden", jid: "Adresse (name@server)", password: "Passwort", login: "Anmelden",
    choose: "Spiel wählen", create: "Spiel für Freunde erstellen", public: "Öffentlichem Quizraum beitreten",
    share: "Lade Freunde mit diesem Link ein:", copy: "Kopieren", lobby: "Mitspieler hier", questions: "Fragen",
    category: "Kategorie", any: "alle", "quiz-language": "Fragen auf", start: "Spiel starten",
    waiting: "Warte, bis der Raumbesitzer ein Spiel startet…", "your-answer": "Deine Antwort", send: "Senden",
    scores: "Punktestand", podium: "Siegertreppchen", top: "Ewige Bestenliste", chat: "Chat", message: "Nachricht",
    connecting: "Verbinde…", failed: "Verbindung fehlgeschlagen.", authfail: "Anmeldung fehlgeschlagen.",
    reconnecting: "Verbindung unterbrochen — verbinde neu…", connected: "Verbunden.",
    received: "Antwort angekommen ✓", "sent-answer": "Antwort gesendet…", question: "Frage {i} von {n}",
    answer: "Die Antwort: {a}", nobody: "Niemand hat gepunktet.", points: "{p} Punkte", "hint-label": "Tipp: {h}",
    out: "{n} ist raus!", "pause-label": "Pause bis {t}", creating: "Dein Raum wird erstellt…",
    "nick-taken": "Dieser Spitzname ist hier schon vergeben.",
  },
};

const state = {
  config: null, conn: null, lang: "en", nick: "", room: null, owner: false, question: null,
  answered: false, timer: null, credentials: null, joined: false, opening: false, wantRoom: null,
};
const $ = (id) => document.getElementById(id);

function t(key, values = {}) {
  const text = (TEXT[state.lang] || TEXT.en)[key] || TEXT.en[key] || key;
  return text.replace(/\{(\w+)\}/g, (_, name) => values[name] ?? "");
}

function applyLanguage(lang) {
  state.lang = TEXT[lang] ? lang : "en";
  document.documentElement.lang = state.lang;
  $("language").value = state.lang;
  $("quiz-language").value = state.lang;
  for (const element of document.querySelectorAll("[data-t]")) element.textContent = t(element.dataset.t);
}

function show(id, visible = true) { $(id).hidden = !visible; }

function quizChild(stanza, name) {
  for (const child of stanza.children) {
    if (child.namespaceURI === NS && child.localName === name) return child;
  }
  return null;
}

// Text of an element as the sender wrote it. Never Strophe.getText: it XML-escapes (an apostrophe would show
// as &apos;), and everything here goes into the page with textContent, which needs no escaping at all.
function textOf(element) {
  return element ? element.textContent : "";
}

function bodyOf(stanza) {
  return textOf(stanza.getElementsByTagName("body")[0]);
}

// --- only the bot speaks for the bot ----------------------------------------------------------------------
// Any occupant can send a <question/> ("Type your password to win"), <scores/> or a private <room jid=…/>.
// The page believes quiz payloads only from the bot: in a room from the bot's occupant JID with the occupant-id
// (XEP-0421, set by the room) seen in the bot's presence; privately only from the bot's real JID. The bot's
// occupant is the room's owner under the bot's nick (maybe with a number), and, where the room shows real
// JIDs, with the bot's JID; the first one stays the bot until it leaves. Same rule: quizbot/trust.py.

const botWatch = {
  bots: new Map(), // room -> { nick, occupantId }

  // Kept for a reload: stanzas the server sends again after a resumption come from a bot seen before it.
  save() { sessionStorage.setItem("quiz-bots", JSON.stringify([...this.bots])); },
  load() {
    const saved = JSON.parse(sessionStorage.getItem("quiz-bots") || "[]");
    if (Array.isArray(saved)) this.bots = new Map(saved.filter((e) => Array.isArray(e) && e.length === 2));
  },

  childOf(stanza, ns, name) {
    return [...stanza.children].find((c) => c.namespaceURI === ns && c.localName === name) || null;
  },

  nickLooksLikeTheBot(nick) {
    const base = state.config.botNick;
    return nick.startsWith(base) && /^\d*$/.test(nick.slice(base.length));
  },

  // Returns true when this presence is the bot's.
  presence(presence) {
    const from = presence.getAttribute("from") || "";
    const room = Strophe.getBareJidFromJid(from).toLowerCase();
    const nick = Strophe.getResourceFromJid(from);
    if (!nick) return false;
    const known = this.bots.get(room);
    const type = presence.getAttribute("type");
    if (type === "unavailable" || type === "error") {
      if (known && known.nick === nick) { this.bots.delete(room); this.save(); } // gone or renamed: prove it again
      return Boolean(known && known.nick === nick);
    }
    if (known && known.nick !== nick) return false; // the first bot occupant stays the bot
    const x = this.childOf(presence, MUC_USER, "x");
    const item = x && this.childOf(x, MUC_USER, "item");
    const real = item && item.getAttribute("jid");
    if (!item || item.getAttribute("affiliation") !== "owner" || !this.nickLooksLikeTheBot(nick) ||
        (real && Strophe.getBareJidFromJid(real).toLowerCase() !== state.config.bot.toLowerCase())) {
      if (known) { this.bots.delete(room); this.save(); } // the bot's nick now belongs to someone else
      return false;
    }
    const id = this.childOf(presence, OCCUPANT_ID, "occupant-id");
    this.bots.set(room, { nick, occupantId: id ? id.getAttribute("id") : null });
    this.save();
    return true;
  },

  trusted(message) {
    const from = message.getAttribute("from") || "";
    if (message.getAttribute("type") !== "groupchat") {
      return Strophe.getBareJidFromJid(from).toLowerCase() === state.config.bot.toLowerCase();
    }
    const bot = this.bots.get(Strophe.getBareJidFromJid(from).toLowerCase());
    if (!bot || Strophe.getResourceFromJid(from) !== bot.nick) return false;
    const ids = [...message.children].filter((c) => c.namespaceURI === OCCUPANT_ID && c.localName === "occupant-id")
      .map((c) => c.getAttribute("id"));
    return bot.occupantId === null ? ids.length === 0 : ids.length === 1 && ids[0] === bot.occupantId;
  },
};

// --- BOSH keys (XEP-0124 §15) ------------------------------------------------------------------------------
// Whoever learns the sid (a proxy log, a shared screen) still cannot send in this session: every request
// carries the previous element of a SHA-1 chain, K(n) = hex(SHA-1(K(n-1))), whose earlier elements only this
// page knows. Strophe.js has no keys: the page wraps the BOSH transport's _buildBody (the one place every
// request body is made) and adds newkey/key there. The chain is saved with Strophe's sid/rid in
// sessionStorage, so a reloaded page can re-attach. Browsers offer crypto.subtle only on secure origins
// (https, or http://localhost and 127.0.0.1); elsewhere the page runs without keys.

const toHex = (bytes) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");

async function keySequence() {
  const seed = new Uint8Array(20);
  crypto.getRandomValues(seed);
  const keys = [toHex(seed)]; // K(0)
  for (let n = 1; n <= KEYS_PER_SEQUENCE; n++) {
    const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(keys[n - 1]));
    keys.push(toHex(new Uint8Array(digest)));
  }
  return keys; // K(0) … K(n): used from the end
}

class BoshKeys {
  constructor(keys, spare) {
    this.keys = keys; // what is left of the current sequence; the last one goes out next
    this.spare = spare; // the next sequence, ready before this one runs out
  }

  static available() { return Boolean(window.crypto && crypto.subtle); }

  static async fresh() { return new BoshKeys(await keySequence(), await keySequence()); }

  static load(sid) {
    const saved = JSON.parse(sessionStorage.getItem(KEY_STORE) || "null");
    if (!saved || saved.sid !== sid || !Array.isArray(saved.keys) || !saved.keys.length) return null;
    const keys = new BoshKeys(saved.keys, saved.spare);
    if (!keys.spare) keySequence().then((spare) => { keys.spare = spare; });
    return keys;
  }

  save(sid) {
    sessionStorage.setItem(KEY_STORE, JSON.stringify({ sid, keys: this.keys, spare: this.spare }));
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

function useKeys(conn, keys) {
  const bosh = conn._proto;
  const build = bosh._buildBody.bind(bosh);
  bosh._buildBody = () => {
    const creating = bosh.sid === null;
    const body = build(); // Strophe's own body: rid, sid, and its sessionStorage entry
    body.attrs(keys.next(creating));
    keys.save(bosh.sid);
    return body;
  };
  state.keys = keys;
}

function forgetSession() {
  sessionStorage.removeItem(KEY_STORE);
  sessionStorage.removeItem("strophe-bosh-session");
}

// --- stream management (XEP-0198, sm.js) -------------------------------------------------------------------
// After binding the page sends <enable resume='true'/> on either transport and keeps, in sessionStorage, what
// a resumption needs: the id, h, the stanzas the server has not acknowledged, the full JID and the SCRAM keys
// Strophe derived (never the password). A reload, a network switch or minutes offline then end in a SASL login
// on a fresh connection (WebSocket, or BOSH when WebSocket does not get through) and <resume previd h/>
// instead of a bind: same JID, same rooms, and the server sends again whatever this page had not handled —
// including a response written into a BOSH request the browser abandoned. On <failed/> the page binds and
// rejoins as before. Guests (SASL ANONYMOUS) get acks only: their BOSH session is re-attached instead.
// Timers: window.quizTiming (set before the page loads) may shorten them, as the tests do.

const SM_STORE = "quiz-sm";
const VIEW_STORE = "quiz-view";
const TIMING = { pingSeconds: 20, timeoutSeconds: 10, retrySeconds: 1, maxRetrySeconds: 15, ...(window.quizTiming || {}) };

const link = {
  sm: new StreamManagement(),
  phase: null, // "enable" | "resume" while waiting for the server's answer
  jid: null, // the full JID a resumption takes back
  pass: null, // what SASL needs again: the password in memory, SCRAM keys in storage
  up: false, // what the page shows: connected, or reconnecting
  lastHeard: 0,
  pingSentAt: null,
  retrySeconds: TIMING.retrySeconds,
  retryTimer: null,
  attemptTimer: null,
};

function saveLink() {
  const keys = state.conn && state.conn.scram_keys;
  sessionStorage.setItem(SM_STORE, JSON.stringify({ jid: link.jid, pass: keys || null, guest: isGuestLogin(),
                                                    sm: link.sm.snapshot() }));
}

// A guest (SASL ANONYMOUS) logs in to the bare domain and gets a new name each time: its resumption id, not its
// name, is what takes the session back (the server drops the new name), so any anonymous login may present it.
function isGuestLogin() {
  return Boolean(state.credentials) && !Strophe.getNodeFromJid(state.credentials.jid);
}

function loadLink() {
  const saved = JSON.parse(sessionStorage.getItem(SM_STORE) || "null");
  if (!saved || typeof saved.jid !== "string") return null;
  return saved;
}

const parseXml = (xml) => new DOMParser().parseFromString(xml, "text/xml").documentElement;

// Wraps the connection's send (to count and keep our stanzas) and its xmlInput (to see every element the
// server sends, before Strophe's handlers run), without changing Strophe.
function useStreamManagement(conn) {
  const send = conn.send.bind(conn);
  conn.rawSend = send; // nonzas (<r/>, <a/>, <enable/>, <resume/>) are not counted
  conn.send = (stanza) => {
    for (const item of Array.isArray(stanza) ? stanza : [stanza]) {
      const element = item && typeof item.tree === "function" ? item.tree() : item;
      if (!element) continue;
      send(element);
      if (conn === state.conn && isStanza(element.nodeName)) {
        if (link.sm.sent(Strophe.serialize(element))) send($build("r", { xmlns: NS_SM }));
        saveLink();
      }
    }
  };
  conn.xmlInput = (received) => {
    if (conn !== state.conn) return; // an abandoned connection: whatever it still delivers comes again
    heard();
    for (const element of topLevel(received)) {
      if (element.namespaceURI === NS_SM) onStreamManagement(conn, element);
      else if (isStanza(element.localName)) {
        link.sm.handled(); // counted before Strophe's handlers run it, in the same turn: nothing in between
        saveLink();
      }
    }
  };
}

// What Strophe hands xmlInput: over BOSH the whole <body/>, whose children are the top-level elements; over
// WebSocket each top-level element itself (Strophe strips its <wrapper/>), or the <open/>/<close/> framing.
// Reading only children made a WebSocket page miss <enabled/> (never resumable) and miscount h.
function topLevel(received) {
  if (!received || typeof received.localName !== "string") return []; // a raw MessageEvent (<close/>)
  if (received.localName === "body" && received.namespaceURI === Strophe.NS.HTTPBIND) return [...received.children];
  return [received];
}

function onStreamManagement(conn, element) {
  switch (element.localName) {
    case "r": conn.rawSend($build("a", link.sm.answer())); break;
    case "a": link.sm.onAck(Number(element.getAttribute("h"))); saveLink(); break;
    case "enabled":
      link.phase = null;
      link.sm.onEnabled({ id: element.getAttribute("id"), resume: element.getAttribute("resume") });
      saveLink();
      break;
    case "resumed": onResumed(conn, element); break;
    case "failed": {
      const h = element.hasAttribute("h") ? Number(element.getAttribute("h")) : undefined;
      link.sm.onFailed(h); // lost stanzas are not sent again: presences and answers to an old question are stale
      saveLink();
      if (link.phase === "resume") {
        link.phase = null;
        state.restored = Boolean(state.room); // rejoin and ask the bot, as after an expired session
        conn.bind();
      }
      link.phase = null;
      break;
    }
    default: break;
  }
}

function onResumed(conn, element) {
  const again = link.sm.onResumed(Number(element.getAttribute("h")));
  link.phase = null;
  // Strophe believes it is still binding: tell it the session is back (the resent stanzas that follow in this
  // very response must reach the handlers).
  conn.authenticated = true;
  conn.do_bind = false;
  conn.jid = link.jid;
  for (const xml of again || []) conn.send(parseXml(xml));
  saveLink();
  linkUp();
  if (!state.viewShown) showSavedView();
}

// --- liveness: "connected" is true ------------------------------------------------------------------------

function heard() {
  link.lastHeard = Date.now();
  link.pingSentAt = null;
  if (!link.up && link.phase === null && state.conn && state.conn.authenticated) linkUp();
}

// What the player does while no stream is up (an answer given during a reconnect) waits here and goes out on
// the stream that comes back, after what the server asked to have again: nothing the player did is lost.
const outbox = [];

function send(stanza) {
  if (state.conn && link.up) state.conn.send(stanza);
  else outbox.push(stanza);
}

function linkUp() {
  link.up = true;
  while (outbox.length && state.conn) state.conn.send(outbox.shift());
  link.retrySeconds = TIMING.retrySeconds;
  clearTimeout(link.attemptTimer);
  $("connection").textContent = t("connected");
  document.body.dataset.connection = "up";
}

function linkDown() {
  link.up = false;
  $("connection").textContent = t("reconnecting");
  document.body.dataset.connection = "reconnecting";
}

function watchdog() {
  const conn = state.conn;
  if (!conn || !conn.authenticated || link.retryTimer) return;
  const now = Date.now();
  if (link.pingSentAt !== null && now - link.pingSentAt > TIMING.timeoutSeconds * 1000) {
    connectionLost();
  } else if (link.pingSentAt === null && now - link.lastHeard > TIMING.pingSeconds * 1000 && link.sm.counting) {
    link.pingSentAt = now; // XEP-0198 §4: any answer, <a/> or a stanza, proves the way back works
    conn.rawSend($build("r", { xmlns: NS_SM }));
  }
}

// The connection is gone or silent. A resumable session is taken over on a fresh connection; a guest's BOSH
// session is left to Strophe's own retries (it comes back with the same JID), a guest's WebSocket is replaced.
function connectionLost() {
  const conn = state.conn;
  if (!conn || link.retryTimer) return;
  linkDown();
  const bosh = conn._proto && "sid" in conn._proto;
  if (!link.sm.resumable && bosh && conn.connected) {
    link.pingSentAt = null; // Strophe retries the same BOSH session; ask again later
    link.lastHeard = Date.now();
    return;
  }
  abandon();
  if (state.credentials) scheduleRetry();
  else show("login"); // a re-attached guest session that Strophe gave up: log in again
}

function abandon() {
  const conn = state.conn;
  if (!conn) return;
  state.conn = null; // from now on its callbacks and data are ignored
  try {
    conn._proto._abortAllRequests();
    conn._doDisconnect(); // local: no terminate, no <close/>, so the server keeps the session for a resumption
  } catch (error) {
    // already torn down
  }
}

function scheduleRetry() {
  clearTimeout(link.retryTimer);
  link.retryTimer = setTimeout(() => {
    link.retryTimer = null;
    if (!navigator.onLine) { scheduleRetry(); return; }
    const { jid, password } = state.credentials;
    connect(jid, password, state.config.transport === "websocket" && !link.webSocketFailed);
    // An attempt that neither resumes nor fails in time is abandoned too.
    clearTimeout(link.attemptTimer);
    link.attemptTimer = setTimeout(() => {
      if (link.up) return;
      // A WebSocket that opens and closes silently (a proxy, a filter) says nothing to Strophe: use BOSH.
      if (state.conn && !(state.conn._proto && "sid" in state.conn._proto)) link.webSocketFailed = true;
      abandon();
      scheduleRetry();
    },
                                   (TIMING.timeoutSeconds + 5) * 1000);
  }, link.retrySeconds * 1000);
  link.retrySeconds = Math.min(TIMING.maxRetrySeconds, link.retrySeconds * 2);
}

window.addEventListener("offline", () => { if (link.up) connectionLost(); });
window.addEventListener("online", () => {
  if (link.retryTimer) { clearTimeout(link.retryTimer); link.retryTimer = null; link.retrySeconds = TIMING.retrySeconds; scheduleRetry(); }
});

// --- connecting --------------------------------------------------------------------------------------------

function endpoint(preferWebSocket) {
  const cfg = state.config;
  return preferWebSocket && cfg.websocket && "WebSocket" in window ? cfg.websocket : cfg.bosh;
}

function newConnection(url) {
  // keepalive: Strophe keeps the BOSH session id in sessionStorage, so a reloaded page can re-attach to it.
  // explicitResourceBinding: after SASL the page chooses between <resume/> and a bind.
  const conn = new Strophe.Connection(url, { keepalive: true, explicitResourceBinding: true });
  conn.addHandler(onMessage, null, "message");
  conn.addHandler(onPresence, null, "presence");
  useStreamManagement(conn);
  state.conn = conn;
  return conn;
}

async function connect(jid, password, preferWebSocket = state.config.transport === "websocket") {
  const url = endpoint(preferWebSocket);
  state.credentials = { jid, password };
  if (!state.room) $("login-status").textContent = t("connecting");
  const keys = url === state.config.bosh && BoshKeys.available() ? await BoshKeys.fresh() : null;
  const conn = newConnection(url);
  if (keys) useKeys(conn, keys);
  else sessionStorage.removeItem(KEY_STORE);
  let connected = false;
  let fellBack = false;
  conn.connect(jid, password, (status) => {
    if (conn !== state.conn) return; // abandoned
    if (status === Strophe.Status.BINDREQUIRED) {
      const resume = link.sm.resume();
      const sameLogin = isGuestLogin() || Strophe.getBareJidFromJid(link.jid || "") === Strophe.getBareJidFromJid(jid);
      if (resume && link.jid && sameLogin) {
        connected = true;
        link.phase = "resume";
        conn.rawSend($build("resume", resume));
      } else {
        link.sm.reset();
        conn.bind();
      }
    } else if (status === Strophe.Status.CONNECTED) {
      connected = true;
      link.jid = conn.jid;
      link.phase = "enable";
      conn.rawSend($build("enable", link.sm.enable()));
      saveLink();
      linkUp();
      onConnected();
    } else if (status === Strophe.Status.AUTHFAIL) {
      $("login-status").textContent = t("authfail");
    } else if ((status === Strophe.Status.CONNFAIL || status === Strophe.Status.DISCONNECTED) && !connected
               && url !== state.config.bosh) {
      // WebSocket unavailable (refused, or closed at once): fall back to BOSH, once (CONNFAIL comes with a
      // DISCONNECTED, and two BOSH logins would race for the session).
      if (fellBack) return;
      fellBack = true;
      link.webSocketFailed = true;
      connect(jid, password, false);
    } else if ((status === Strophe.Status.DISCONNECTED || status === Strophe.Status.CONNFAIL) && connected) {
      connectionLost(); // the network dropped for longer than Strophe's own retries
    } else if (status === Strophe.Status.CONNFAIL && link.retryTimer === null && !link.up && state.room) {
      abandon();
      scheduleRetry(); // still offline: try again later
    } else if (status === Strophe.Status.CONNFAIL) {
      $("login-status").textContent = t("failed");
    }
  });
}

// A reloaded page (same tab) resumes its XEP-0198 session when it has one; a guest re-attaches to its BOSH
// session while the server keeps it (inactivity limit). Either way: same JID, so the bot still knows the
// player and their points. A resumed page shows what it saved and gets what it missed from the server; a
// re-attached one rejoins the room to see who is there and asks the bot to repeat the question and scores.
function restore() {
  const saved = JSON.parse(sessionStorage.getItem("quiz-page") || "null");
  const resumable = loadLink();
  if (saved && saved.room && resumable && (resumable.pass || resumable.guest)) {
    link.sm = StreamManagement.fromSnapshot(resumable.sm);
    if (link.sm.resumable) {
      link.jid = resumable.jid;
      state.nick = saved.nick;
      state.room = saved.room;
      botWatch.load();
      showRoom(saved.room);
      linkDown();
      if (resumable.guest) connect(state.config.domain, null);
      else connect(resumable.jid, resumable.pass);
      return true;
    }
  }
  const session = JSON.parse(sessionStorage.getItem("strophe-bosh-session") || "null");
  if (!saved || !saved.room || !session) return false;
  const keys = BoshKeys.load(session.sid);
  if (!keys) {
    forgetSession(); // without its keys the session cannot go on: log in again
    return false;
  }
  const conn = newConnection(state.config.bosh);
  useKeys(conn, keys);
  if (resumable) { // the same stream goes on: so do its counters
    link.sm = StreamManagement.fromSnapshot(resumable.sm);
    link.jid = resumable.jid;
  }
  let attached = false;
  try {
    conn.restore(undefined, (status) => {
      if (conn !== state.conn) return;
      if (status === Strophe.Status.ATTACHED) {
        attached = true;
        state.nick = saved.nick;
        state.room = saved.room;
        state.restored = true;
        linkUp();
        onConnected();
      } else if (status === Strophe.Status.DISCONNECTED && attached) {
        reconnectOrLogin();
      } else if ((status === Strophe.Status.CONNFAIL || status === Strophe.Status.DISCONNECTED) && !attached) {
        show("login"); // the session is gone: log in again
      }
    });
  } catch (error) {
    return false; // nothing to restore
  }
  return true;
}

function reconnectOrLogin() {
  if (state.credentials) reconnect();
  else show("login");
}

function reconnect() {
  if (!state.credentials) { show("login"); return; }
  linkDown();
  setTimeout(() => connect(state.credentials.jid, state.credentials.password), 1000);
}

function onConnected() {
  state.conn.send($pres());
  $("connection").textContent = t("connected");
  show("login", false);
  const toBot = (text) => state.conn.send($msg({ to: state.config.bot, type: "chat" }).c("body").t(text));
  if (state.restored) {
    state.restored = false;
    if (!state.viewShown) showSavedView();
    state.conn.send($pres({ to: `${state.room}/${state.nick}`, type: "unavailable" }));
    joinRoom(state.room);
    toBot("!repeat");
    toBot("!score");
  } else if (state.wantRoom) joinRoom(state.wantRoom);
  else if (state.room) joinRoom(state.room);
  else show("home");
  toBot("!categories");
}

// --- what the page shows, kept for a reload ------------------------------------------------------------
// The bot's latest payloads (question, hint, received, reveal, scores, game, categories) as it sent them, so a
// resumed page draws the game as it was; the server then sends what came meanwhile.

const VIEW_KINDS = ["categories", "game", "scores", "question", "hint", "received", "reveal"];

function keepPayload(payload) {
  if (!VIEW_KINDS.includes(payload.localName)) return;
  const view = JSON.parse(sessionStorage.getItem(VIEW_STORE) || "{}");
  if (payload.localName === "question") {
    for (const kind of ["hint", "received", "reveal", "answered"]) delete view[kind]; // a new question: unanswered
  }
  view[payload.localName] = Strophe.serialize(payload);
  sessionStorage.setItem(VIEW_STORE, JSON.stringify(view));
}

function showSavedView() {
  state.viewShown = true;
  const view = JSON.parse(sessionStorage.getItem(VIEW_STORE) || "{}");
  for (const kind of VIEW_KINDS) {
    if (typeof view[kind] === "string") handlePayload(parseXml(view[kind]), true, false);
  }
  if (view.answered) {
    state.answered = true;
    lockAnswers(true);
  }
  const occupants = JSON.parse(sessionStorage.getItem("quiz-occupants") || "[]");
  for (const nick of occupants) addOccupant(nick);
}

// --- rooms -------------------------------------------------------------------------------------------------

function showRoom(room) {
  state.room = room;
  show("login", false);
  show("home", false);
  show("room");
  $("room-title").textContent = room.split("@")[0];
  const link = new URL(location.href);
  link.search = "?room=" + encodeURIComponent(room);
  $("share-link").value = link.toString();
}

function joinRoom(room) {
  showRoom(room);
  state.joined = false;
  state.conn.send($pres({ to: `${room}/${state.nick}` }).c("x", { xmlns: MUC }).c("history", { maxstanzas: 0 }));
  sessionStorage.setItem("quiz-page", JSON.stringify({ room, nick: state.nick }));
}

function onPresence(presence) {
  const from = presence.getAttribute("from") || "";
  const isBot = botWatch.presence(presence);
  if (!state.room || Strophe.getBareJidFromJid(from) !== state.room) return true;
  const nick = Strophe.getResourceFromJid(from);
  if (presence.getAttribute("type") === "error") {
    if (presence.getElementsByTagName("conflict").length) {
      state.nick += "_";
      joinRoom(state.room);
    }
    return true;
  }
  const x = [...presence.children].find((c) => c.namespaceURI === MUC_USER);
  const item = x && x.getElementsByTagName("item")[0];
  const list = $("occupants");
  if (isBot) return true; // the bot is no player
  const existing = [...list.children].find((li) => li.dataset.nick === nick);
  if (presence.getAttribute("type") === "unavailable") {
    if (existing) existing.remove();
  } else addOccupant(nick);
  sessionStorage.setItem("quiz-occupants", JSON.stringify([...list.children].map((li) => li.dataset.nick)));
  const self = x && [...x.getElementsByTagName("status")].some((s) => s.getAttribute("code") === "110");
  if (self && presence.getAttribute("type") !== "unavailable") {
    state.joined = true;
    $("connection").textContent = t("connected");
    // Owners start games in their rooms; in the public room anyone may.
    state.owner = (item && item.getAttribute("affiliation") === "owner") || state.room === state.config.room;
    show("start-form", state.owner);
    show("waiting", !state.owner);
  }
  return true;
}

function addOccupant(nick) {
  const list = $("occupants");
  if ([...list.children].some((li) => li.dataset.nick === nick)) return;
  const li = document.createElement("li");
  li.dataset.nick = nick;
  li.textContent = nick;
  list.appendChild(li);
}

// --- messages ----------------------------------------------------------------------------------------------

function onMessage(message) {
  const from = message.getAttribute("from") || "";
  const type = message.getAttribute("type");
  const bare = Strophe.getBareJidFromJid(from);
  if (message.getElementsByTagName("delay").length) return true; // room history
  const payloads = [...message.children].filter((c) => c.namespaceURI === NS);
  if (payloads.length && !botWatch.trusted(message)) return true; // someone speaking for the bot: dropped whole
  for (const payload of payloads) handlePayload(payload, type === "groupchat");
  if (type === "groupchat" && bare === state.room && !payloads.length) {
    const body = bodyOf(message);
    if (body && !body.startsWith("!")) chatLine(Strophe.getResourceFromJid(from), body); // commands are not chat
  }
  return true;
}

function handlePayload(payload, inRoom, fresh = true) {
  if (fresh) keepPayload(payload);
  switch (payload.localName) {
    case "room": if (!inRoom) onRoom(payload); break; // the bot sends rooms privately, never to a room
    case "game": onGame(payload); break;
    case "question": onQuestion(payload); break;
    case "hint": $("hint").textContent = t("hint-label", { h: payload.getAttribute("pattern") }); break;
    case "received": if (state.question === payload.getAttribute("question")) $("received").textContent = t("received"); break;
    case "reveal": onReveal(payload); break;
    case "scores": onScores(payload, fresh); break;
    case "top": fillRanking($("top-list"), payload); break;
    case "eliminated": chatLine("", t("out", { n: payload.getAttribute("nick") })); break;
    case "pause": $("hint").textContent = t("pause-label", { t: new Date(payload.getAttribute("until")).toLocaleTimeString() }); break;
    case "categories": fillCategories(payload); break;
    default: break;
  }
}

function onRoom(room) {
  const jid = room.getAttribute("jid") || "";
  if (Strophe.getDomainFromJid(jid) !== state.config.muc || !Strophe.getNodeFromJid(jid)) return; // a room here
  joinRoom(jid);
}

function onGame(game) {
  const gameState = game.getAttribute("state");
  if (gameState === "lobby" && game.getAttribute("opener") === state.nick && state.opening) {
    state.opening = false;
    sendToRoom("!start"); // our own lobby: start at once, everyone in the room may answer
  }
  if (gameState === "running") {
    show("lobby", false);
    show("podium", false);
  }
  if (gameState === "ended" || gameState === "none") show("lobby");
}

function onQuestion(question) {
  state.question = question.getAttribute("id");
  state.answered = false;
  show("question");
  show("reveal", false);
  $("received").textContent = "";
  $("hint").textContent = "";
  $("q-index").textContent = t("question", { i: question.getAttribute("index"), n: question.getAttribute("total") });
  $("q-category").textContent = question.getAttribute("category");
  $("q-text").textContent = textOf(quizChild(question, "text"));
  const choices = [...question.children].filter((c) => c.namespaceURI === NS && c.localName === "choice");
  const box = $("choices");
  box.replaceChildren();
  for (const choice of choices) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.key = choice.getAttribute("key");
    button.textContent = `${choice.getAttribute("key")}) ${textOf(choice)}`;
    button.addEventListener("click", () => answer(button.dataset.key, button.dataset.key, button));
    box.appendChild(button);
  }
  show("answer-form", choices.length === 0);
  lockAnswers(false);
  $("answer").type = question.getAttribute("kind") === "number" ? "text" : "text";
  $("answer").inputMode = question.getAttribute("kind") === "number" ? "decimal" : "text";
  $("answer").value = "";
  if (choices.length) box.firstChild.focus(); else $("answer").focus();
  startCountdown(Date.parse(question.getAttribute("deadline")), Number(question.getAttribute("duration")));
}

// One answer per question: after it (or the reveal) the choices, the text box and its button are locked.
function lockAnswers(locked) {
  for (const control of [...$("choices").children, ...$("answer-form").elements]) control.disabled = locked;
}

function startCountdown(deadline, duration) {
  clearInterval(state.timer);
  const bar = $("countdown");
  const tick = () => {
    const left = Math.max(0, deadline - Date.now());
    const share = Math.min(100, (100 * left) / (duration * 1000));
    bar.style.width = `${share}%`;
    bar.parentElement.setAttribute("aria-valuenow", String(Math.round(share)));
    if (left <= 0) clearInterval(state.timer);
  };
  tick();
  state.timer = setInterval(tick, 200);
}

function answer(text, choice, button) {
  if (state.answered || !state.question) return;
  state.answered = true;
  if (button) button.classList.add("chosen");
  lockAnswers(true);
  $("received").textContent = t("sent-answer");
  const message = $msg({ to: state.config.bot, type: "chat" }).c("body").t(text).up()
    .c("answer", { xmlns: NS, question: state.question, ...(choice ? { choice } : {}) });
  send(message); // privately to the bot: nobody in the room can copy it
  const view = JSON.parse(sessionStorage.getItem(VIEW_STORE) || "{}");
  sessionStorage.setItem(VIEW_STORE, JSON.stringify({ ...view, answered: true }));
}

function onReveal(reveal) {
  clearInterval(state.timer);
  state.answered = true;
  lockAnswers(true);
  for (const b of $("choices").children) {
    const choice = [...reveal.children].find((c) => c.localName === "choice" && c.getAttribute("key") === b.dataset.key);
    if (choice && choice.getAttribute("correct") === "true") b.classList.add("correct");
  }
  const box = $("reveal");
  box.replaceChildren();
  const head = document.createElement("p");
  head.className = "answer";
  head.textContent = t("answer", { a: reveal.getAttribute("answer") });
  box.appendChild(head);
  const scorers = [...reveal.children].filter((c) => c.localName === "scorer");
  const list = document.createElement("ul");
  list.className = "scorers";
  for (const scorer of scorers) {
    const li = document.createElement("li");
    li.textContent = `${scorer.getAttribute("nick")}: +${t("points", { p: scorer.getAttribute("points") })}`;
    list.appendChild(li);
  }
  if (!scorers.length) list.textContent = t("nobody");
  box.appendChild(list);
  show("reveal");
}

function fillRanking(list, payload) {
  list.replaceChildren();
  for (const player of [...payload.children].filter((c) => c.localName === "player")) {
    const li = document.createElement("li");
    li.dataset.nick = player.getAttribute("nick");
    li.dataset.points = player.getAttribute("points");
    // The bot ranks: equal points share a rank (1, 2, 2, 4); the list shows its number, not the position.
    const rank = Number(player.getAttribute("rank"));
    if (Number.isInteger(rank) && rank > 0) {
      li.value = rank;
      li.dataset.rank = String(rank);
    }
    li.textContent = `${player.getAttribute("nick")} — ${t("points", { p: player.getAttribute("points") })}`;
    list.appendChild(li);
  }
}

function onScores(scores, fresh) {
  fillRanking($("scores"), scores);
  show("scoreboard");
  if (scores.getAttribute("final") === "true") {
    fillRanking($("podium-list"), scores);
    show("question", false);
    show("podium");
    state.question = null;
    if (fresh) send($msg({ to: state.config.bot, type: "chat" }).c("body").t("!top all 10"));
  }
}

function fillCategories(payload) {
  state.categories = [...payload.children].filter((c) => c.localName === "category")
    .map((c) => ({ language: c.getAttribute("language"), name: textOf(c) }));
  showCategories();
}

function showCategories() {
  const select = $("category");
  select.replaceChildren(select.firstElementChild); // keep "any"
  for (const category of (state.categories || []).filter((c) => c.language === $("quiz-language").value)) {
    const option = document.createElement("option");
    option.value = option.textContent = category.name;
    select.appendChild(option);
  }
}

function chatLine(nick, text) {
  const li = document.createElement("li");
  li.textContent = nick ? `${nick}: ${text}` : text;
  const log = $("chat-log");
  log.appendChild(li);
  while (log.childElementCount > CHAT_LINES) log.firstElementChild.remove();
  li.scrollIntoView({ block: "nearest" });
}

function sendToRoom(text) {
  send($msg({ to: state.room, type: "groupchat" }).c("body").t(text));
}

// --- wiring ------------------------------------------------------------------------------------------------

// A new login: nothing of an earlier session in this tab is resumed or shown.
function startOver() {
  for (const key of [SM_STORE, VIEW_STORE, "quiz-bots", "quiz-occupants", "quiz-page"]) sessionStorage.removeItem(key);
  link.sm = new StreamManagement();
  link.jid = null;
  outbox.length = 0;
  state.viewShown = true;
}

async function main() {
  state.config = await (await fetch("/quiz/config.json")).json();
  const params = new URLSearchParams(location.search);
  state.wantRoom = params.get("room");
  applyLanguage(localStorage.getItem("quiz-language") || (navigator.language || "en").slice(0, 2));
  setInterval(watchdog, 250);
  restore();
  $("language").addEventListener("change", (event) => {
    localStorage.setItem("quiz-language", event.target.value);
    applyLanguage(event.target.value);
  });
  $("guest-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.nick = $("nick").value.trim();
    startOver();
    connect(state.config.domain, null); // SASL ANONYMOUS
  });
  $("account-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const jid = $("jid").value.trim();
    state.nick = $("nick").value.trim() || Strophe.getNodeFromJid(jid);
    startOver();
    connect(jid.includes("/") ? jid : `${jid}/quiz-${Math.random().toString(36).slice(2, 8)}`, $("password").value);
  });
  $("create-game").addEventListener("click", () => {
    $("connection").textContent = t("creating");
    send($msg({ to: state.config.bot, type: "chat" }).c("body").t("!newgame"));
  });
  $("quiz-language").addEventListener("change", showCategories);
  $("join-public").addEventListener("click", () => joinRoom(state.config.room));
  $("copy-link").addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText($("share-link").value));
  $("start-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const parts = ["!quiz", "live", String(Number($("count").value) || 5)];
    if ($("category").value) parts.push($("category").value);
    parts.push($("quiz-language").value);
    state.opening = true;
    sendToRoom(parts.join(" "));
  });
  $("answer-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("answer").value.trim();
    if (text) answer(text, null, null);
  });
  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("chat-input").value.trim();
    if (text && state.room) sendToRoom(text);
    $("chat-input").value = "";
  });
  document.addEventListener("keydown", (event) => {
    if (!state.question || state.answered || event.target.tagName === "INPUT") return;
    const key = event.key.toUpperCase();
    const index = "ABCD".indexOf(key) >= 0 ? "ABCD".indexOf(key) : "1234".indexOf(key);
    const button = $("choices").children[index];
    if (button) button.click();
  });
}

main();
