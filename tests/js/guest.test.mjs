// The remembered guest's pure parts (quizbot/web/protocol.js and register.js): the XEP-0077 request the page sends before its
// first login, the stream feature it looks for, the random name and password, and what localStorage may hold.
import assert from "node:assert/strict";
import { test } from "node:test";

import { NS_REGISTER, guestCredentials, readGuest } from "../../quizbot/web/protocol.js";
import { NS_REGISTER_FEATURE, boshRequest, boshSessionRequest, offersRegistration, openFrame, registerIq }
  from "../../quizbot/web/register.js";
import { parseXml } from "./xml.mjs";

test("the registration request carries the name and password, escaped", () => {
  const iq = parseXml(registerIq("r1", "guest-ab", "p<&>'\""));
  assert.equal(iq.getAttribute("type"), "set");
  assert.equal(iq.getAttribute("id"), "r1");
  const query = iq.children[0];
  assert.equal(query.namespaceURI, NS_REGISTER);
  assert.deepEqual([...query.children].map((c) => [c.localName, c.textContent]),
    [["username", "guest-ab"], ["password", "p<&>'\""]]);
});

test("the register stream feature is recognised, and only it", () => {
  const offered = parseXml(`<features xmlns="http://etherx.jabber.org/streams"><register xmlns="${NS_REGISTER_FEATURE}"/>
    </features>`);
  assert.equal(offersRegistration(offered), true);
  const other = parseXml('<features xmlns="http://etherx.jabber.org/streams"><register xmlns="urn:other"/></features>');
  assert.equal(offersRegistration(other), false);
  assert.equal(offersRegistration(null), false);
});

test("the stream opens to the page's domain", () => {
  const open = parseXml(openFrame("quiz.example"));
  assert.equal(open.localName, "open");
  assert.equal(open.getAttribute("to"), "quiz.example");
});

test("a guest's name and password come from the random bytes, never from each other", () => {
  const bytes = Uint8Array.from({ length: 24 }, (_, i) => i * 7);
  const made = guestCredentials(bytes, "localhost");
  assert.match(made.username, /^guest-[0-9a-f]{12}$/);
  assert.equal(made.jid, `${made.username}@localhost`);
  assert.equal(made.password.length, 36);
  assert.ok(!made.password.includes(made.username.slice(6)));
  assert.notDeepEqual(guestCredentials(bytes.map((b) => b ^ 1), "localhost"), made);
});

test("only a well-formed guest of this domain is read back", () => {
  const saved = JSON.stringify({ jid: "guest-1@localhost", password: "secret" });
  assert.deepEqual(readGuest(saved, "localhost"), { jid: "guest-1@localhost", password: "secret" });
  assert.equal(readGuest(saved, "other.example"), null);
  assert.equal(readGuest("{not json", "localhost"), null);
  assert.equal(readGuest(null, "localhost"), null);
  assert.equal(readGuest(JSON.stringify({ jid: "localhost", password: "x" }), "localhost"), null);
  assert.equal(readGuest(JSON.stringify({ jid: "a@localhost" }), "localhost"), null);
});

test("the BOSH session for a registration: XEP-0206's request, then the payload and the goodbye", () => {
  const create = parseXml(boshSessionRequest(1234, "quiz.example", 10));
  assert.equal(create.localName, "body");
  assert.equal(create.namespaceURI, "http://jabber.org/protocol/httpbind");
  assert.equal(create.getAttribute("rid"), "1234");
  assert.equal(create.getAttribute("to"), "quiz.example");
  assert.equal(create.getAttribute("hold"), "1");
  assert.equal(create.getAttribute("wait"), "10");
  assert.equal(create.getAttribute("xmpp:version"), "1.0");
  const request = parseXml(boshRequest(1235, "s<1", registerIq("register", "guest-ab", "pw")));
  assert.equal(request.getAttribute("sid"), "s<1");
  assert.equal(request.getAttribute("type"), null);
  assert.equal(request.children[0].localName, "iq");
  assert.equal(request.children[0].children[0].namespaceURI, NS_REGISTER);
  const end = parseXml(boshRequest(1236, "s1", "", "terminate"));
  assert.equal(end.getAttribute("type"), "terminate");
  assert.equal(end.children.length, 0);
});
