// The page's XMPP connection: Strophe.js over WebSocket (or BOSH, when configured or when WebSocket does not get
// through), BOSH keys (keys.js), XEP-0198 stream management (sm.js), liveness pings, reconnecting and resuming,
// and an outbox for what the player does while no stream is up. The tab that leads (leader.js: one connection per
// browser, shared by its tabs) runs it; leader.js wraps it in the same API for the page (createLink):
// login(jid, password), restore(), takeOver(), end(), send(stanza), onStanza(name, handler), and events: status(kind)
// with kind "connecting" | "up" | "reconnecting" | "authfail" | "failed" | "login" (log in again),
// ready(reason) when a session is there to use ("login", "attached": a reloaded page re-attached to its BOSH
// session, "rebound": a session was lost and not resumed — refused, or not resumable — and the page bound afresh)
// and resumed() after a XEP-0198 resumption.
//
// Stream management: after binding the page sends <enable resume='true'/> on either transport and keeps what a
// resumption needs: the id, h, the stanzas the server has not acknowledged and the full JID in localStorage
// (`shared`: another tab of this browser takes the session over when this one closes), and with them the SCRAM
// keys Strophe derived (never the password) in this tab's sessionStorage only (they reach the other tabs over the
// channel, never a storage that outlives the tab). A reload, a network switch or minutes offline then end
// in a SASL login on a fresh connection (WebSocket, or BOSH when WebSocket does not get through) and
// <resume previd h/> instead of a bind: same JID, same rooms, and the server sends again whatever this page had
// not handled — including a response written into a BOSH request the browser abandoned. On <failed/> the page
// binds and rejoins as before, and so it does when a session without a resumption id (a server that grants acks
// only) is lost. Guests (SASL ANONYMOUS) resume too; a reloaded guest page without a resumable session re-attaches
// to its BOSH session.
// Timers: window.quizTiming (set before the page loads) may shorten them, as the tests do.
import { BoshKeys, KEY_STORE, useKeys } from "./keys.js";
import { bareJid, guestCredentials, nodeOf, readGuest } from "./protocol.js";
import { NS_SM, StreamManagement, isStanza } from "./sm.js";
import { fresh } from "./tabs.js";

const { Strophe, $build } = window;
// Strophe logs every request at DEBUG to the console: work and noise on a phone, for nobody.
Strophe.setLogLevel(Strophe.LogLevel.WARN);

export const SM_STORE = "quiz-sm";
const BOSH_SESSION = "strophe-bosh-session"; // Strophe's own (keepalive)
// resumeSeconds: how long the server keeps a detached session (stream_management.resume_seconds).
const TIMING = { pingSeconds: 20, timeoutSeconds: 10, retrySeconds: 1, maxRetrySeconds: 15, resumeSeconds: 300,
                 ...(window.quizTiming || {}) };

const parseXml = (xml) => new DOMParser().parseFromString(xml, "text/xml").documentElement;

// What Strophe hands xmlInput: over BOSH the whole <body/>, whose children are the top-level elements; over
// WebSocket each top-level element itself (Strophe strips its <wrapper/>), or the <open/>/<close/> framing.
// Reading only children made a WebSocket page miss <enabled/> (never resumable) and miscount h.
function topLevel(received) {
  if (!received || typeof received.localName !== "string") return []; // a raw MessageEvent (<close/>)
  if (received.localName === "body" && received.namespaceURI === Strophe.NS.HTTPBIND) return [...received.children];
  return [received];
}

// --- remembered guests (XEP-0077) ------------------------------------------------------------------------------
// "Play as guest" registers a random account on a browser's first visit and keeps it in localStorage (the one
// secret this page keeps there: it is the guest's identity), so a guest who comes back — after a reload, a server
// restart or days away — logs in with SCRAM as the same player with the same points. The server may offer no
// registration (off-board servers, `registration.enabled = false`) or refuse (rate limits): the page then plays
// as an anonymous guest (SASL ANONYMOUS), as before.

export const GUEST_STORE = "quiz-guest";

function guestStore() {
  try {
    return window.localStorage;
  } catch {
    return null; // refused (a privacy setting): nothing is remembered
  }
}

// Falling back to BOSH (docs/quiz.md, "Falling back to BOSH"). A WebSocket that brings no stream is given up for
// BOSH within the same attempt: at once when it is refused or closed before the login is through (the server's
// per-address cap answers 429, a draining server 503, a proxy closes it), after timeoutSeconds + 5 when it stays
// silent. A refusal counts for that attempt only (the guest registration and its login are one): the next
// connection, a reconnect after the BOSH stream is lost or a new login, tries WebSocket first again, since a cap or
// a restart passes and trying again costs one refused upgrade. A silent WebSocket would cost the whole wait on
// every reconnect: after one, this page stays on BOSH until it is reloaded. A login the server refused (authfail)
// is no transport's fault: no fallback.
let webSocketSilent = false;
// The guest registration's WebSocket did not get through: the login that follows goes over BOSH at once.
let registeredOverBosh = false;

// The browser's guest account ({ jid, password }): the remembered one, or one registered now; null when the server
// registers no guests (play anonymously).
export async function guestAccount(config) {
  const store = guestStore();
  const saved = store && readGuest(store.getItem(GUEST_STORE), config.domain);
  if (saved) return saved;
  const made = guestCredentials(crypto.getRandomValues(new Uint8Array(24)), config.domain);
  // register.js: loaded on a browser's first "Play as guest" only, never with the page.
  const { registerAccount } = await import("./register.js");
  const { created, webSocketFailed, webSocketSilent: silent } = await registerAccount(config, made,
                                                                                      TIMING.timeoutSeconds);
  registeredOverBosh = webSocketFailed;
  webSocketSilent = webSocketSilent || silent;
  if (!created) return null;
  const guest = { jid: made.jid, password: made.password };
  if (store) store.setItem(GUEST_STORE, JSON.stringify(guest));
  return guest;
}

export function forgetGuest() {
  const store = guestStore();
  if (store) store.removeItem(GUEST_STORE);
}

// config: /quiz/config.json; storage: sessionStorage; inRoom(): whether the page is in a room (an attempt that
// fails there is retried rather than reported); events: { status, ready, resumed }.
// shared: localStorage (the session's state for every tab); onInput(element): each stanza from the server, once
// it counts as handled (leader.js passes it on to the other tabs).
export function createLink({ config, storage, shared, inRoom, events, onInput = () => {} }) {
  let conn = null; // the Strophe connection in use; an abandoned one is ignored from then on
  let credentials = null; // { jid, password } of the last login: reconnecting needs them again
  const handlers = []; // [name, handler] for every new Strophe connection
  const link = {
    sm: new StreamManagement(),
    phase: null, // "enable" | "resume" while waiting for the server's answer
    jid: null, // the full JID a resumption takes back
    up: false, // what the page shows: connected, or reconnecting
    lastHeard: 0,
    pingSentAt: null,
    retrySeconds: TIMING.retrySeconds,
    retryTimer: null,
    attemptTimer: null,
    pass: null, // the SCRAM keys of the session's account login (null for guests)
  };
  // What the player does while no stream is up (an answer given during a reconnect) waits here and goes out on
  // the stream that comes back, after what the server asked to have again: nothing the player did is lost.
  const outbox = [];

  const isBosh = (c) => Boolean(c && c._proto && "sid" in c._proto);

  // A guest (SASL ANONYMOUS) logs in to the bare domain and gets a new name each time: its resumption id, not
  // its name, is what takes the session back (the server drops the new name), so any anonymous login may
  // present it.
  const isGuestLogin = () => Boolean(credentials) && !nodeOf(credentials.jid);

  function saveLink() {
    if (conn && conn.scram_keys) link.pass = conn.scram_keys;
    const saved = { jid: link.jid, guest: isGuestLogin(), sm: link.sm.snapshot() };
    storage.setItem(SM_STORE, JSON.stringify({ ...saved, pass: link.pass }));
    shared.setItem(SM_STORE, JSON.stringify({ ...saved, at: Date.now() }));
  }

  const read = (store) => {
    try {
      const saved = JSON.parse(store.getItem(SM_STORE) || "null");
      return saved && typeof saved.jid === "string" ? saved : null;
    } catch {
      return null;
    }
  };

  // The session to take back: as the last leading tab left it (localStorage), with the keys this tab kept when it
  // led the same session (sessionStorage). `own`: this tab led it (a reload of that tab).
  function loadLink() {
    const mine = read(storage);
    const latest = read(shared) || mine;
    if (!latest) return null;
    const own = Boolean(mine) && mine.jid === latest.jid;
    return { ...latest, pass: own ? mine.pass : null, own };
  }

  function forgetSession() {
    storage.removeItem(KEY_STORE);
    storage.removeItem(BOSH_SESSION);
  }

  // Wraps the connection's send (to count and keep our stanzas) and its xmlInput (to see every element the
  // server sends, before Strophe's handlers run), without changing Strophe.
  function useStreamManagement(c) {
    const send = c.send.bind(c);
    c.rawSend = send; // nonzas (<r/>, <a/>, <enable/>, <resume/>) are not counted
    c.send = (stanza) => {
      for (const item of Array.isArray(stanza) ? stanza : [stanza]) {
        const element = item && typeof item.tree === "function" ? item.tree() : item;
        if (!element) continue;
        send(element);
        if (c === conn && isStanza(element.nodeName)) {
          if (link.sm.sent(Strophe.serialize(element))) send($build("r", { xmlns: NS_SM }));
          saveLink();
        }
      }
    };
    c.xmlInput = (received) => {
      if (c !== conn) return; // an abandoned connection: whatever it still delivers comes again
      heard();
      for (const element of topLevel(received)) {
        if (element.namespaceURI === NS_SM) onStreamManagement(c, element);
        else if (isStanza(element.localName)) {
          link.sm.handled(); // counted before Strophe's handlers run it, in the same turn: nothing in between
          saveLink();
          onInput(element); // and passed on in that turn too: what the next leader resumes after, every tab had
        }
      }
    };
  }

  function onStreamManagement(c, element) {
    switch (element.localName) {
      case "r": c.rawSend($build("a", link.sm.answer())); break;
      case "a": link.sm.onAck(Number(element.getAttribute("h"))); saveLink(); break;
      case "enabled":
        link.phase = null;
        link.sm.onEnabled({ id: element.getAttribute("id"), resume: element.getAttribute("resume") });
        saveLink();
        break;
      case "resumed": onResumed(c, element); break;
      case "failed": {
        const h = element.hasAttribute("h") ? Number(element.getAttribute("h")) : undefined;
        link.sm.onFailed(h); // lost stanzas are not sent again: presences and answers to an old question are stale
        saveLink();
        if (link.phase === "resume") {
          link.phase = null;
          rebound = true; // rejoin and ask the bot, as after an expired session
          c.bind();
        }
        link.phase = null;
        break;
      }
      default: break;
    }
  }
  let rebound = false;

  function onResumed(c, element) {
    const again = link.sm.onResumed(Number(element.getAttribute("h")));
    link.phase = null;
    // Strophe believes it is still binding: tell it the session is back (the resent stanzas that follow in this
    // very response must reach the handlers).
    c.authenticated = true;
    c.do_bind = false;
    c.jid = link.jid;
    for (const xml of again || []) c.send(parseXml(xml));
    saveLink();
    linkUp();
    events.resumed();
  }

  // --- liveness: "connected" is true ----------------------------------------------------------------------

  function heard() {
    link.lastHeard = Date.now();
    link.pingSentAt = null;
    if (!link.up && link.phase === null && conn && conn.authenticated) linkUp();
  }

  // onSent() is called once the stanza is on the stream (counted, kept until acknowledged): a stanza waiting in the
  // outbox dies with this tab, so leader.js confirms another tab's stanza only then.
  function send(stanza, onSent = () => {}) {
    if (conn && link.up) {
      conn.send(stanza);
      onSent();
      flushSoon();
    } else outbox.push([stanza, onSent]);
  }

  // Strophe's BOSH transport sends what is queued on a timer (100 ms), and a background tab's timers are slowed
  // to a second or more: the leading tab may be one (its player answers in another tab). What is sent in one turn
  // goes out together right after it (a microtask is never throttled).
  let flushing = false;
  function flushSoon() {
    if (flushing) return;
    flushing = true;
    queueMicrotask(() => {
      flushing = false;
      if (conn && isBosh(conn)) conn.flush();
    });
  }

  function linkUp() {
    link.up = true;
    while (outbox.length && conn) {
      const [stanza, onSent] = outbox.shift();
      conn.send(stanza);
      onSent();
    }
    flushSoon();
    link.retrySeconds = TIMING.retrySeconds;
    clearTimeout(link.attemptTimer);
    events.status("up");
  }

  function linkDown() {
    link.up = false;
    events.status("reconnecting");
  }

  function watchdog() {
    if (!conn || !conn.authenticated || link.retryTimer) return;
    const now = Date.now();
    if (link.pingSentAt !== null && now - link.pingSentAt > TIMING.timeoutSeconds * 1000) {
      connectionLost();
    } else if (link.pingSentAt === null && now - link.lastHeard > TIMING.pingSeconds * 1000 && link.sm.counting) {
      link.pingSentAt = now; // XEP-0198 §4: any answer, <a/> or a stanza, proves the way back works
      conn.rawSend($build("r", { xmlns: NS_SM }));
    }
  }

  // The connection is gone or silent; `ended`: Strophe said so (CONNFAIL, DISCONNECTED) and is done with it. A
  // resumable session is taken over on a fresh connection. A BOSH session that cannot be resumed (the server grants
  // acks only, or <enabled/> has not come yet) is left to Strophe's own retries while it is only silent (it comes
  // back with the same JID); once Strophe has given it up the page logs in again, binds and rejoins.
  function connectionLost({ ended = false } = {}) {
    if (!conn || link.retryTimer) return;
    linkDown();
    // Not conn.connected alone: Strophe 5.0's _doDisconnect reports DISCONNECTED before it clears `connected` (and
    // after it clears `authenticated`, so the watchdog no longer looks): a session it gave up looked alive, and the
    // page stayed on "reconnecting".
    if (!ended && !link.sm.resumable && isBosh(conn) && conn.connected) {
      link.pingSentAt = null; // Strophe retries the same BOSH session; ask again later
      link.lastHeard = Date.now();
      return;
    }
    abandon();
    if (!credentials) {
      events.status("login"); // a re-attached guest session that Strophe gave up: log in again
      return;
    }
    if (!link.sm.resumable) rebound = true; // the retry binds afresh: rejoin and ask the bot, as after <failed/>
    scheduleRetry();
  }

  function abandon() {
    const c = conn;
    if (!c) return;
    conn = null; // from now on its callbacks and data are ignored
    try {
      c._proto._abortAllRequests();
      c._doDisconnect(); // local: no terminate, no <close/>, so the server keeps the session for a resumption
    } catch {
      // already torn down
    }
  }

  function scheduleRetry() {
    clearTimeout(link.retryTimer);
    link.retryTimer = setTimeout(() => {
      link.retryTimer = null;
      if (!navigator.onLine) { scheduleRetry(); return; }
      const { jid, password } = credentials;
      connect(jid, password, config.transport === "websocket", true);
      // An attempt that neither resumes nor fails in time is abandoned too.
      clearTimeout(link.attemptTimer);
      link.attemptTimer = setTimeout(() => {
        if (link.up) return;
        // A silent WebSocket (a proxy, a filter that lets the upgrade through and nothing else): BOSH from now on.
        if (conn && !isBosh(conn)) webSocketSilent = true;
        abandon();
        scheduleRetry();
      }, (TIMING.timeoutSeconds + 5) * 1000);
    }, link.retrySeconds * 1000);
    link.retrySeconds = Math.min(TIMING.maxRetrySeconds, link.retrySeconds * 2);
  }

  // --- connecting ------------------------------------------------------------------------------------------

  function endpoint(preferWebSocket) {
    const webSocket = preferWebSocket && !webSocketSilent && config.websocket && "WebSocket" in window;
    return webSocket ? config.websocket : config.bosh;
  }

  function newConnection(url) {
    // keepalive: Strophe keeps the BOSH session id in sessionStorage, so a reloaded page can re-attach to it.
    // explicitResourceBinding: after SASL the page chooses between <resume/> and a bind.
    const c = new Strophe.Connection(url, { keepalive: true, explicitResourceBinding: true });
    for (const [name, handler] of handlers) c.addHandler(handler, null, name);
    useStreamManagement(c);
    conn = c;
    return c;
  }

  // The session is there: enable stream management and tell the page.
  function connected(c, reason) {
    link.jid = c.jid;
    link.phase = "enable";
    c.rawSend($build("enable", link.sm.enable()));
    saveLink();
    linkUp();
    events.ready(reason);
  }

  // retrying: scheduleRetry watches the attempt itself.
  async function connect(jid, password, preferWebSocket = config.transport === "websocket", retrying = false) {
    const url = endpoint(preferWebSocket);
    credentials = { jid, password };
    events.status("connecting");
    const keys = url === config.bosh && BoshKeys.available() ? await BoshKeys.fresh() : null;
    const c = newConnection(url);
    if (keys) useKeys(c, keys, storage);
    else storage.removeItem(KEY_STORE);
    let established = false;
    let loginRefused = false; // authfail: the server answered over this transport
    let fellBack = false;
    let watch = null; // the first attempt's watch (a retry's is scheduleRetry's), until the attempt is decided
    // Over BOSH for this attempt only (see webSocketSilent above).
    const fallBack = () => {
      if (fellBack || established || loginRefused) return;
      fellBack = true;
      clearTimeout(watch);
      connect(jid, password, false);
    };
    // A BOSH login that came to nothing (the server unreachable, HTTP errors): tried again later when it takes a
    // session back (a reconnect, a reload, a tab taking over) or the page is in a room, else the login form says so
    // (and its buttons try again).
    const failed = () => {
      clearTimeout(watch);
      abandon();
      if (retrying || link.jid || inRoom()) {
        clearTimeout(link.attemptTimer);
        scheduleRetry();
      } else events.status("failed");
    };
    if (url !== config.bosh) {
      // Strophe reports a WebSocket closed before the stream is up only when the close is abnormal (1006: refused,
      // unreachable); one closed with a code (a proxy's 1008, a server's 1013 "try again later") passes without a
      // word, and the page waited timeoutSeconds + 5 for it.
      const onClose = c._proto._onClose.bind(c._proto);
      c._proto._onClose = (event) => {
        onClose(event);
        if (c !== conn || established || loginRefused) return;
        abandon();
        fallBack();
      };
    }
    // A WebSocket that opens and then says nothing (a proxy, a filter): BOSH after a while, for good. A BOSH login
    // not through by then has failed: Strophe's own retries of an unreachable server take some 100 s to give up.
    if (!retrying) {
      watch = setTimeout(() => {
        if (c !== conn || established || fellBack || loginRefused) return;
        if (url === config.bosh) { failed(); return; }
        webSocketSilent = true;
        abandon();
        fallBack();
      }, (TIMING.timeoutSeconds + 5) * 1000);
    }
    c.connect(jid, password, (status) => {
      if (c !== conn) return; // abandoned
      if (status === Strophe.Status.BINDREQUIRED) {
        const resume = link.sm.resume();
        const sameLogin = isGuestLogin() || bareJid(link.jid || "") === bareJid(jid);
        if (resume && link.jid && sameLogin) {
          established = true;
          clearTimeout(watch);
          link.phase = "resume";
          c.rawSend($build("resume", resume));
        } else {
          link.sm.reset();
          c.bind();
        }
      } else if (status === Strophe.Status.CONNECTED) {
        established = true;
        clearTimeout(watch);
        const reason = rebound ? "rebound" : "login";
        rebound = false;
        connected(c, reason);
      } else if (status === Strophe.Status.AUTHFAIL) {
        loginRefused = true; // a wrong password stays wrong over BOSH
        clearTimeout(watch);
        // And on a reconnect too (the account removed, its password changed): no retry, which would be refused
        // every maxRetrySeconds for good (and meet the server's login throttle). The page shows the login form
        // (app.js; a remembered guest is registered anew, once).
        stop("login refused");
        events.status("authfail");
      } else if ((status === Strophe.Status.CONNFAIL || status === Strophe.Status.DISCONNECTED) && !established
                 && url !== config.bosh) {
        // WebSocket unavailable (refused, or closed at once): fall back to BOSH, once (CONNFAIL comes with a
        // DISCONNECTED, and two BOSH logins would race for the session).
        fallBack();
      } else if ((status === Strophe.Status.DISCONNECTED || status === Strophe.Status.CONNFAIL) && established) {
        // The network dropped for longer than Strophe's own retries, or the server ended the session.
        connectionLost({ ended: true });
      } else if (status === Strophe.Status.CONNFAIL || status === Strophe.Status.DISCONNECTED) {
        // A BOSH login that did not get through. Strophe 5.0 reports CONNFAIL for some ends (a terminate); when
        // its requests fail (unreachable or HTTP 5xx: the fifth, after some 100 s; HTTP 4xx: the first) it reports
        // CONNTIMEOUT or nothing, then DISCONNECTED, and the login form said "connecting" for good.
        failed();
      }
    });
  }

  // A reloaded page (same tab) resumes its XEP-0198 session when it has one (beforeResume() is called first: the
  // page draws the room it was in); a guest re-attaches to its BOSH session while the server keeps it (inactivity
  // limit), and ready("attached") follows. Either way: same JID, so the bot still knows the player and their
  // points. False when there is nothing to take back: the player logs in again.
  function restore({ beforeResume }) {
    let resumable = loadLink();
    // What another tab left is taken only while the server may still keep it; this tab's own, as before.
    if (resumable && !resumable.own && !fresh(resumable, Date.now(), TIMING.resumeSeconds)) resumable = null;
    if (resumable && (resumable.pass || resumable.guest)) {
      link.sm = StreamManagement.fromSnapshot(resumable.sm);
      if (link.sm.resumable) {
        link.jid = resumable.jid;
        link.pass = resumable.pass || null;
        beforeResume();
        linkDown();
        if (resumable.guest) connect(config.domain, null);
        else connect(resumable.jid, resumable.pass);
        return true;
      }
    }
    const session = JSON.parse(storage.getItem(BOSH_SESSION) || "null");
    if (!session) return false;
    const keys = BoshKeys.load(storage, session.sid);
    if (!keys) {
      forgetSession(); // without its keys the session cannot go on: log in again
      return false;
    }
    const c = newConnection(config.bosh);
    useKeys(c, keys, storage);
    if (resumable) { // the same stream goes on: so do its counters
      link.sm = StreamManagement.fromSnapshot(resumable.sm);
      link.jid = resumable.jid;
    }
    let attached = false;
    try {
      c.restore(undefined, (status) => {
        if (c !== conn) return;
        if (status === Strophe.Status.ATTACHED) {
          attached = true;
          linkUp();
          events.ready("attached");
        } else if (status === Strophe.Status.DISCONNECTED && attached) {
          reconnectOrLogin();
        } else if ((status === Strophe.Status.CONNFAIL || status === Strophe.Status.DISCONNECTED) && !attached) {
          events.status("login"); // the session is gone: log in again
        }
      });
    } catch {
      return false; // nothing to restore
    }
    return true;
  }

  // This tab leads now because the one that led closed or reloaded: it takes that session over as a reload would
  // (<resume/>: same JID, nothing missed), as a guest or with the keys the old leader handed over (`pass`).
  // False when there is nothing to take over.
  function takeOver(pass) {
    const saved = loadLink();
    if (!saved) return false;
    const sm = StreamManagement.fromSnapshot(saved.sm);
    const keys = saved.pass || pass || null;
    if (!sm.resumable || !(saved.guest || keys)) return false;
    link.sm = sm;
    link.jid = saved.jid;
    link.pass = keys;
    outbox.length = 0;
    linkDown();
    if (saved.guest) connect(config.domain, null);
    else connect(saved.jid, keys);
    return true;
  }

  // Another tab logged in, a new session for the whole browser: this tab's connection ends with a goodbye.
  function end() { stop("another tab logged in"); }

  // No more of this session in this tab: no retry, and its connection ends with a goodbye.
  function stop(reason) {
    const c = conn;
    conn = null;
    credentials = null;
    clearTimeout(link.retryTimer);
    clearTimeout(link.attemptTimer);
    link.retryTimer = null;
    link.up = false;
    outbox.length = 0;
    if (!c) return;
    try {
      c.disconnect(reason);
    } catch {
      // already torn down
    }
  }

  function reconnectOrLogin() {
    if (!credentials) { events.status("login"); return; }
    linkDown();
    setTimeout(() => connect(credentials.jid, credentials.password), 1000);
  }

  setInterval(watchdog, 250);
  window.addEventListener("offline", () => { if (link.up) connectionLost(); });
  window.addEventListener("online", () => {
    if (link.retryTimer) {
      clearTimeout(link.retryTimer);
      link.retryTimer = null;
      link.retrySeconds = TIMING.retrySeconds;
      scheduleRetry();
    }
  });

  return {
    // Stanzas of this kind ("message", "presence") from the server go to handler(stanza), which returns true.
    onStanza(name, handler) { handlers.push([name, handler]); if (conn) conn.addHandler(handler, null, name); },
    // A new login (SASL ANONYMOUS when password is null): nothing of an earlier session in this tab is resumed.
    login(jid, password) {
      end(); // a session of this tab before (one taken over from a closed tab, say) ends
      storage.removeItem(SM_STORE);
      shared.removeItem(SM_STORE);
      link.sm = new StreamManagement();
      link.jid = null;
      link.pass = null;
      outbox.length = 0;
      rebound = false;
      const overBosh = registeredOverBosh;
      registeredOverBosh = false;
      connect(jid, password, config.transport === "websocket" && !overBosh);
    },
    restore,
    takeOver,
    end,
    send,
    get jid() { return link.jid; },
    get pass() { return link.pass; },
    get guest() { return isGuestLogin(); },
    get up() { return link.up; },
    // Sends what is queued at once: a leader in a background tab has its timers slowed down (Strophe's BOSH
    // transport waits for one before it sends), and another tab's player is waiting.
    flush() { if (conn) conn.flush(); },
  };
}
