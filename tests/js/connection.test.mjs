// The page's choice between WebSocket and BOSH (quizbot/web/connection.js), without a browser: a fake Strophe.js
// stands for the library as the browser drives it, node's mock timers for the clock. `node --test tests/js/`.
// The same in Chromium against the real server: tests/interop/test_quiz_page.py.
import assert from "node:assert/strict";
import { afterEach, beforeEach, mock, test } from "node:test";

import { parseXml } from "./xml.mjs";

const WEBSOCKET = "ws://quiz.test/xmpp-websocket";
const BOSH = "http://quiz.test/http-bind";
const CONFIG = { domain: "quiz.test", transport: "websocket", websocket: WEBSOCKET, bosh: BOSH };
const Status = { CONNFAIL: 2, AUTHFAIL: 4, CONNECTED: 5, DISCONNECTED: 6, DISCONNECTING: 7, CONNTIMEOUT: 10,
                 BINDREQUIRED: 11 };

// Every Strophe connection the page made, oldest first.
let made = [];

// Strophe's WebSocket transport: the socket's close event calls _onClose(event), which reports a close before the
// stream only when it is abnormal (1006), and a close of a stream that was up as a disconnect (Strophe 5.0).
class FakeWebSocketTransport {
  constructor(conn) { this.conn = conn; }
  _onClose(event) {
    if (this.conn.connected) this.conn._doDisconnect();
    else if (event.code === 1006) {
      this.conn.callback(Status.CONNFAIL, "The WebSocket connection could not be established");
      this.conn._doDisconnect();
    }
  }
  _abortAllRequests() {}
}

class FakeConnection {
  constructor(service) {
    this.service = service;
    this._proto = service === BOSH ? { sid: null, _abortAllRequests() {} } : new FakeWebSocketTransport(this);
    this.connected = false;
    this.authenticated = false;
    this.callback = null;
    made.push(this);
  }
  addHandler() {}
  send() {}
  flush() {}
  connect(jid, password, callback) { this.jid = jid; this.callback = callback; }
  bind() {
    this.jid = `${this.jid}/quiz`;
    this.authenticated = true;
    this.callback(Status.CONNECTED);
  }
  // Strophe 5.0's Connection._doDisconnect, in its order: `authenticated` cleared, DISCONNECTED reported, and only
  // then `connected` cleared.
  _doDisconnect() {
    this.authenticated = false;
    this.callback(Status.DISCONNECTED);
    this.connected = false;
  }
  disconnect() { this._doDisconnect(); }
  // What the server and the network do.
  streamOpens() { this.connected = true; }
  // SASL done: the page binds, and then the server enables resumption (or acks only: resume_seconds = 0, a
  // server without it).
  loginSucceeds({ resumable = true } = {}) {
    this.streamOpens();
    this.callback(Status.BINDREQUIRED);
    this.xmlInput(parseXml(resumable ? '<enabled xmlns="urn:xmpp:sm:3" id="sm-1" resume="true"/>'
                                     : '<enabled xmlns="urn:xmpp:sm:3"/>'));
  }
  resumes() { // SASL done: the page resumes, the server agrees
    this.streamOpens();
    this.callback(Status.BINDREQUIRED);
    this.xmlInput(parseXml('<resumed xmlns="urn:xmpp:sm:3" previd="sm-1" h="0"/>'));
  }
  loginFails() { this.streamOpens(); this.callback(Status.AUTHFAIL); }
  // Over BOSH: the server ends the session (<body type='terminate' condition/>: a restart, an expired session):
  // Strophe's _dataRecv reports CONNFAIL, then disconnects.
  serverEnds(condition) {
    this.callback(Status.CONNFAIL, condition);
    this._doDisconnect();
  }
  // Over BOSH: Strophe gives up after its retries (the fifth failed request, Bosh._hitError):
  // _onDisconnectTimeout reports CONNTIMEOUT, then disconnects.
  retriesFail() {
    this.callback(Status.CONNTIMEOUT);
    this._doDisconnect();
  }
  // Over BOSH: a request answered with an HTTP 4xx (Bosh._onRequestStateChange): DISCONNECTING, then disconnects.
  httpError() {
    this.callback(Status.DISCONNECTING);
    this._doDisconnect();
  }
  answers() { this.xmlInput(parseXml('<a xmlns="urn:xmpp:sm:3" h="0"/>')); } // what the server sends comes in
}

globalThis.window = {
  Strophe: {
    Connection: FakeConnection, Status, LogLevel: { WARN: 2 },
    NS: { HTTPBIND: "http://jabber.org/protocol/httpbind" }, setLogLevel() {}, serialize: (element) => String(element),
  },
  $build: (name, attrs) => ({ nodeName: name, attrs }),
  WebSocket: class {},
  addEventListener() {},
};
if (!globalThis.navigator) globalThis.navigator = { onLine: true };
// No crypto.subtle: no BOSH keys (tests/js/keys.test.mjs), and connect() makes its connection in the same turn.
Object.defineProperty(globalThis, "crypto", { value: {}, configurable: true });
// The mock timers are "experimental" in node 20; their one warning is no news.
const emitWarning = process.emitWarning;
process.emitWarning = (warning, ...rest) => {
  if (!String(warning).includes("MockTimers")) emitWarning.call(process, warning, ...rest);
};

const memoryStorage = () => {
  const items = new Map();
  return { getItem: (k) => items.get(k) ?? null, setItem: (k, v) => items.set(k, String(v)),
           removeItem: (k) => items.delete(k) };
};

// A link of a freshly loaded page (its own module instance: what a page remembers dies with it).
let pages = 0;
async function newPage(config = CONFIG) {
  pages += 1;
  const { createLink } = await import(`../../quizbot/web/connection.js?page=${pages}`);
  const statuses = [];
  const readies = [];
  const link = createLink({
    config, storage: memoryStorage(), shared: memoryStorage(), inRoom: () => false,
    events: { status: (kind) => statuses.push(kind), ready: (reason) => readies.push(reason), resumed() {} },
  });
  return { link, statuses, readies };
}

const services = () => made.map((c) => (c.service === BOSH ? "bosh" : "websocket"));
const latest = () => made[made.length - 1];

beforeEach(() => {
  made = [];
  mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"] });
});
afterEach(() => mock.timers.reset());

test("a WebSocket the server refuses (HTTP 429: an abnormal close to Strophe) falls back to BOSH at once, once",
     async () => {
  const { link } = await newPage();
  link.login("cat@quiz.test", "secret");
  made[0]._proto._onClose({ code: 1006 });
  assert.deepEqual(services(), ["websocket", "bosh"]);
  mock.timers.tick(20_000); // the watch on a silent WebSocket finds nothing to do
  assert.deepEqual(services(), ["websocket", "bosh"]);
});

test("a WebSocket closed with a code before the stream (1013, try again later) falls back to BOSH at once",
     async () => {
  const { link } = await newPage();
  link.login("cat@quiz.test", "secret");
  made[0]._proto._onClose({ code: 1013, reason: "try again later" });
  mock.timers.tick(2_000);
  assert.deepEqual(services(), ["websocket", "bosh"]);
  latest().loginSucceeds();
  assert.equal(link.up, true);
});

test("a fallback after a refusal is for that attempt: the reconnect after the BOSH stream is lost tries WebSocket",
     async () => {
  const { link, statuses } = await newPage();
  link.login("cat@quiz.test", "secret");
  made[0]._proto._onClose({ code: 1006 });
  latest().loginSucceeds();
  assert.equal(link.up, true);
  latest()._doDisconnect(); // the BOSH stream is lost
  assert.equal(statuses.at(-1), "reconnecting");
  mock.timers.tick(1_000); // retrySeconds
  assert.deepEqual(services(), ["websocket", "bosh", "websocket"]);
  latest().resumes(); // and the session goes on there
  assert.equal(link.up, true);
});

test("a WebSocket that says nothing falls back after 15 s, and the page stays on BOSH after it", async () => {
  const { link } = await newPage();
  link.login("cat@quiz.test", "secret");
  mock.timers.tick(14_000);
  assert.deepEqual(services(), ["websocket"]);
  mock.timers.tick(1_000); // timeoutSeconds + 5
  assert.deepEqual(services(), ["websocket", "bosh"]);
  latest().loginSucceeds();
  latest()._doDisconnect();
  mock.timers.tick(1_000);
  assert.deepEqual(services(), ["websocket", "bosh", "bosh"]);
  // A new page (a reload) tries WebSocket again.
  const again = await newPage();
  again.link.login("cat@quiz.test", "secret");
  assert.equal(services().at(-1), "websocket");
});

test("a login refused over WebSocket is not tried again over BOSH", async () => {
  const { link, statuses } = await newPage();
  link.login("cat@quiz.test", "wrong");
  made[0].loginFails();
  assert.equal(statuses.at(-1), "authfail");
  mock.timers.tick(20_000);
  made[0]._proto._onClose({ code: 1000 }); // the server gives up on the stream
  mock.timers.tick(20_000);
  assert.deepEqual(services(), ["websocket"]);
  assert.equal(statuses.at(-1), "authfail");
});

// A BOSH session that cannot be resumed (the server grants acks only) is left to Strophe's own retries while it is
// only silent; Strophe reports DISCONNECTED before it clears `connected`, which made a session it had given up
// look alive: the page stayed on "reconnecting" for good.
const BOSH_ONLY = { ...CONFIG, transport: "bosh" };
// The clock in the watchdog's steps (node 20's tick() sets Date.now() to its end before it runs what was due).
const advance = (ms) => { for (let t = 0; t < ms; t += 250) mock.timers.tick(250); };

test("a BOSH session without resumption that the server ends (item-not-found) is logged in again and rejoined",
     async () => {
  const { link, statuses, readies } = await newPage(BOSH_ONLY);
  link.login("cat@quiz.test", "secret");
  made[0].loginSucceeds({ resumable: false });
  assert.equal(link.up, true);
  made[0].serverEnds("item-not-found");
  assert.equal(statuses.at(-1), "reconnecting");
  mock.timers.tick(1_000); // retrySeconds
  assert.deepEqual(services(), ["bosh", "bosh"]);
  latest().loginSucceeds({ resumable: false });
  assert.equal(link.up, true);
  assert.equal(statuses.at(-1), "up");
  assert.deepEqual(readies, ["login", "rebound"]); // bound afresh: the page rejoins and asks the bot again
});

test("a silent BOSH session without resumption is left to Strophe until Strophe gives up, then replaced",
     async () => {
  const { link, statuses } = await newPage(BOSH_ONLY);
  link.login("cat@quiz.test", "secret");
  made[0].loginSucceeds({ resumable: false });
  advance(31_000); // pingSeconds of silence, then timeoutSeconds without an answer to <r/>
  assert.equal(statuses.at(-1), "reconnecting");
  made[0].answers(); // Strophe's retry got through: the same session goes on
  assert.equal(statuses.at(-1), "up");
  advance(31_000);
  assert.equal(statuses.at(-1), "reconnecting");
  assert.deepEqual(services(), ["bosh"]);
  made[0].retriesFail();
  mock.timers.tick(60_000);
  assert.deepEqual(services(), ["bosh", "bosh"]);
  latest().loginSucceeds({ resumable: false });
  assert.equal(statuses.at(-1), "up");
});

// A refused login is final, on a reconnect too (the account removed, its password changed): the retry used to be
// abandoned after timeoutSeconds + 5 like a silent one and tried again, refused every maxRetrySeconds for good.
test("a login refused on a reconnect is not tried again: the page is told once and stops", async () => {
  const { link, statuses } = await newPage();
  link.login("cat@quiz.test", "secret");
  made[0].loginSucceeds();
  made[0]._proto._onClose({ code: 1006 }); // the WebSocket drops
  mock.timers.tick(1_000); // retrySeconds
  assert.equal(made.length, 2);
  latest().loginFails(); // the password was changed meanwhile
  assert.equal(statuses.at(-1), "authfail");
  mock.timers.tick(120_000);
  made[1]._proto._onClose({ code: 1000 }); // the server gives up on the stream
  mock.timers.tick(120_000);
  assert.equal(made.length, 2);
  assert.deepEqual(statuses.filter((kind) => kind === "authfail"), ["authfail"]);
  assert.equal(statuses.at(-1), "authfail");
  assert.equal(link.up, false);
  link.login("cat@quiz.test", "new-secret"); // the login form: the player tries again
  latest().loginSucceeds();
  assert.equal(link.up, true);
});

// A first BOSH login whose requests fail: Strophe reports CONNTIMEOUT (its fifth failed request) or nothing (an
// HTTP 4xx), then DISCONNECTED, never CONNFAIL: the login form used to say "connecting" for good.
test("a first login whose BOSH requests fail is reported failed, and the player can try again", async () => {
  const { link, statuses } = await newPage();
  link.login("cat@quiz.test", "secret");
  made[0]._proto._onClose({ code: 1006 }); // no WebSocket either
  assert.deepEqual(services(), ["websocket", "bosh"]);
  latest().retriesFail();
  assert.equal(statuses.at(-1), "failed");
  mock.timers.tick(60_000);
  assert.equal(made.length, 2); // nothing tried behind the player's back
  link.login("cat@quiz.test", "secret");
  assert.equal(services().at(-1), "websocket");
  latest().loginSucceeds();
  assert.equal(statuses.at(-1), "up");

  const other = await newPage(BOSH_ONLY);
  other.link.login("cat@quiz.test", "secret");
  latest().httpError(); // 404: the BOSH address is wrong
  assert.equal(other.statuses.at(-1), "failed");
});

test("a first BOSH login without an answer is reported failed after timeoutSeconds + 5, not Strophe's 100 s",
     async () => {
  const { link, statuses } = await newPage(BOSH_ONLY);
  link.login("cat@quiz.test", "secret");
  mock.timers.tick(14_000);
  assert.equal(statuses.at(-1), "connecting");
  mock.timers.tick(1_000);
  assert.equal(statuses.at(-1), "failed");
  made[0].retriesFail(); // Strophe gives up later: nothing more to say
  assert.deepEqual(statuses.filter((kind) => kind === "failed"), ["failed"]);
  assert.equal(made.length, 1);
});
