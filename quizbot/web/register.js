// A guest account registered before its first login (XEP-0077 §3.1; docs/quiz.md, "Guests who come back"): over
// a WebSocket of its own, or over a BOSH session of its own when WebSocket does not get through. Loaded by
// connection.js on a browser's first "Play as guest" only: the page's first load stays small.
// Its requests are plain strings, made by the pure functions first here (tests/js/guest.test.mjs).
import { NS_REGISTER } from "./protocol.js";

// --- the requests (pure) ----------------------------------------------------------------------------------------

export const NS_REGISTER_FEATURE = "http://jabber.org/features/iq-register";
const NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";

const escapeXml = (text) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
  .replace(/"/g, "&quot;").replace(/'/g, "&apos;");

export const openFrame = (domain) => `<open xmlns="${NS_FRAMING}" to="${escapeXml(domain)}" version="1.0"/>`;
export const closeFrame = () => `<close xmlns="${NS_FRAMING}"/>`;

// XEP-0077 §3.1: the new account's name and password, before authentication.
export const registerIq = (id, username, password) =>
  `<iq xmlns="jabber:client" type="set" id="${escapeXml(id)}"><query xmlns="${NS_REGISTER}">` +
  `<username>${escapeXml(username)}</username><password>${escapeXml(password)}</password></query></iq>`;

// XEP-0124 / XEP-0206: a BOSH session of the page's own for the registration (when WebSocket does not get
// through): its session request, then requests with payloads, and the goodbye.
const NS_HTTPBIND = "http://jabber.org/protocol/httpbind";
const NS_XBOSH = "urn:xmpp:xbosh";

export const boshSessionRequest = (rid, domain, wait) =>
  `<body xmlns="${NS_HTTPBIND}" xmlns:xmpp="${NS_XBOSH}" rid="${rid}" to="${escapeXml(domain)}" xml:lang="en" ` +
  `wait="${wait}" hold="1" ver="1.6" xmpp:version="1.0" content="text/xml; charset=utf-8"/>`;

export const boshRequest = (rid, sid, payload = "", type = null) =>
  `<body xmlns="${NS_HTTPBIND}" rid="${rid}" sid="${escapeXml(sid)}"${type ? ` type="${type}"` : ""}>${payload}</body>`;

// The server's stream features offer in-band registration.
export const offersRegistration = (features) => Boolean(features) && [...features.children]
  .some((child) => child.localName === "register" && child.namespaceURI === NS_REGISTER_FEATURE);

// --- speaking them -------------------------------------------------------------------------------------------

const parseXml = (xml) => new DOMParser().parseFromString(xml, "text/xml").documentElement;

// What a registration attempt came to: "created"; "refused" (the server answered: no registration here, a name
// taken, a rate limit); "unreachable" (the transport did not get through: the other one may); "silent" (a
// WebSocket that neither opened a stream nor closed in time: unreachable, and slow to find out).
const CREATED = "created";
const REFUSED = "refused";
const UNREACHABLE = "unreachable";
const SILENT = "silent";

const registerResult = (iq) => (iq.getAttribute("type") === "result" ? CREATED : REFUSED);

// Over a WebSocket of its own, before any login.
function registerOverWebSocket(config, { username, password }, timeoutSeconds) {
  return new Promise((resolve) => {
    if (!config.websocket || !("WebSocket" in window)) { resolve(UNREACHABLE); return; }
    let ws = null;
    let done = false;
    let opened = false; // the server spoke: a close from here on is its answer, not an unreachable server
    const finish = (result) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try { ws.send(closeFrame()); ws.close(); } catch { /* already closed */ }
      resolve(result);
    };
    const timer = setTimeout(() => finish(opened ? REFUSED : SILENT), (timeoutSeconds + 5) * 1000);
    try {
      ws = new WebSocket(config.websocket, "xmpp");
    } catch {
      finish(UNREACHABLE);
      return;
    }
    ws.onopen = () => ws.send(openFrame(config.domain));
    ws.onerror = () => finish(opened ? REFUSED : UNREACHABLE);
    ws.onclose = () => finish(opened ? REFUSED : UNREACHABLE);
    ws.onmessage = ({ data }) => {
      const element = parseXml(data);
      opened = true;
      if (element.localName === "features") {
        if (offersRegistration(element)) ws.send(registerIq("register", username, password));
        else finish(REFUSED);
      } else if (element.localName === "iq" && element.getAttribute("id") === "register") {
        finish(registerResult(element));
      }
    };
  });
}

// Over a BOSH session of its own (XEP-0206), before any login: the session request brings the stream features
// (or the next response does), one request carries the registration and brings its answer, and the session ends
// with a terminate. Plain fetch: Strophe's connection registers nothing, and this session is gone at once.
async function registerOverBosh(config, { username, password }, timeoutSeconds) {
  if (!config.bosh || !("fetch" in window)) return UNREACHABLE;
  const wait = Math.max(1, Math.ceil(timeoutSeconds));
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), (timeoutSeconds + 5) * 1000);
  let rid = 1 + Math.floor(Math.random() * 2 ** 31); // XEP-0124 §7: random, far from 2^53
  let sid = null;
  const post = async (body) => {
    const response = await fetch(config.bosh, { method: "POST", body, signal: abort.signal,
                                                headers: { "Content-Type": "text/xml; charset=utf-8" } });
    if (!response.ok) throw new Error(`BOSH ${response.status}`);
    const answer = parseXml(await response.text());
    if (answer.getAttribute("type") === "terminate") throw new Error("BOSH session ended");
    return answer;
  };
  // The element wanted from this response or the next few (a BOSH response may come empty: nothing yet).
  const awaitChild = async (first, wanted) => {
    let answer = first;
    for (let polls = 0; polls < 3; polls += 1) {
      const found = [...answer.children].find(wanted);
      if (found) return found;
      rid += 1;
      answer = await post(boshRequest(rid, sid));
    }
    return null;
  };
  let result = UNREACHABLE;
  try {
    const created = await post(boshSessionRequest(rid, config.domain, wait));
    sid = created.getAttribute("sid");
    if (!sid) return UNREACHABLE;
    result = REFUSED; // the server answered: from here on a failure is its
    const features = await awaitChild(created, (child) => child.localName === "features");
    if (!offersRegistration(features)) return REFUSED;
    rid += 1;
    const sent = await post(boshRequest(rid, sid, registerIq("register", username, password)));
    const iq = await awaitChild(sent, (child) => child.localName === "iq" && child.getAttribute("id") === "register");
    return iq ? registerResult(iq) : REFUSED;
  } catch {
    return result;
  } finally {
    clearTimeout(timer);
    if (sid) {
      rid += 1;
      fetch(config.bosh, { method: "POST", body: boshRequest(rid, sid, "", "terminate"),
                           headers: { "Content-Type": "text/xml; charset=utf-8" } }).catch(() => {});
    }
  }
}

// WebSocket first, then BOSH when WebSocket did not get through (a proxy without WebSocket, a filter): the
// account is created over whichever works. webSocketFailed: the login that follows had better use BOSH at once;
// webSocketSilent: the WebSocket failed by saying nothing (connection.js stays on BOSH after that).
export async function registerAccount(config, credentials, timeoutSeconds) {
  const result = await registerOverWebSocket(config, credentials, timeoutSeconds);
  if (result !== UNREACHABLE && result !== SILENT) {
    return { created: result === CREATED, webSocketFailed: false, webSocketSilent: false };
  }
  const created = (await registerOverBosh(config, credentials, timeoutSeconds)) === CREATED;
  return { created, webSocketFailed: true, webSocketSilent: result === SILENT };
}
