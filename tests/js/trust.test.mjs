// Only the bot speaks for the bot (quizbot/web/trust.js; the bot's own rule: quizbot/trust.py).
import assert from "node:assert/strict";
import { test } from "node:test";

import { BotWatch } from "../../quizbot/web/trust.js";
import { parseXml } from "./xml.mjs";

const ROOM = "quiz@conference.localhost";
const BOT = "quiz@localhost";

class Storage {
  constructor() { this.items = new Map(); }
  getItem(key) { return this.items.has(key) ? this.items.get(key) : null; }
  setItem(key, value) { this.items.set(key, String(value)); }
}

const watch = (storage = new Storage()) => new BotWatch({ bot: BOT, botNick: "Quizbot", storage });

function presence(nick, { affiliation = "owner", jid = null, id = "bot-id", type = null } = {}) {
  return parseXml(`<presence xmlns="jabber:client" from="${ROOM}/${nick}"${type ? ` type="${type}"` : ""}>`
    + `<x xmlns="http://jabber.org/protocol/muc#user"><item affiliation="${affiliation}" role="moderator"`
    + `${jid ? ` jid="${jid}"` : ""}/></x>`
    + `${id ? `<occupant-id xmlns="urn:xmpp:occupant-id:0" id="${id}"/>` : ""}</presence>`);
}

function message(from, { type = "groupchat", ids = ["bot-id"] } = {}) {
  return parseXml(`<message xmlns="jabber:client" from="${from}" type="${type}">`
    + ids.map((id) => `<occupant-id xmlns="urn:xmpp:occupant-id:0" id="${id}"/>`).join("")
    + `<question xmlns="urn:boshcm:quiz:0" id="q"/></message>`);
}

test("in a room: the owner under the bot's nick with the occupant-id of its presence", () => {
  const bots = watch();
  assert.equal(bots.presence(presence("Quizbot")), true);
  assert.equal(bots.trusted(message(`${ROOM}/Quizbot`)), true);
  assert.equal(bots.trusted(message(`${ROOM}/Quizbot`, { ids: ["someone-else"] })), false); // a forged occupant-id
  assert.equal(bots.trusted(message(`${ROOM}/Quizbot`, { ids: [] })), false);
  assert.equal(bots.trusted(message(`${ROOM}/Quizbot`, { ids: ["bot-id", "bot-id"] })), false);
  assert.equal(bots.trusted(message(`${ROOM}/Mallory`)), false);
  assert.equal(bots.trusted(message(`other@conference.localhost/Quizbot`)), false); // a room it was not seen in
});

test("not the bot: not the owner, another nick, another real JID", () => {
  const bots = watch();
  assert.equal(bots.presence(presence("Quizbot", { affiliation: "member" })), false);
  assert.equal(bots.presence(presence("Quizbotter")), false);
  assert.equal(bots.presence(presence("Quizbot", { jid: "mallory@localhost/x" })), false);
  assert.equal(bots.trusted(message(`${ROOM}/Quizbot`)), false);
  assert.equal(bots.presence(presence("Quizbot2", { jid: "Quiz@LOCALHOST/bot" })), true); // a renamed bot, JID shown
});

test("the first bot occupant stays the bot until it leaves", () => {
  const bots = watch();
  assert.equal(bots.presence(presence("Quizbot")), true);
  assert.equal(bots.presence(presence("Quizbot2", { id: "other" })), false);
  assert.equal(bots.trusted(message(`${ROOM}/Quizbot2`, { ids: ["other"] })), false);
  assert.equal(bots.presence(presence("Quizbot", { type: "unavailable" })), true);
  assert.equal(bots.trusted(message(`${ROOM}/Quizbot`)), false); // gone: it has to prove itself again
  assert.equal(bots.presence(presence("Quizbot2", { id: "other" })), true);
  assert.equal(bots.trusted(message(`${ROOM}/Quizbot2`, { ids: ["other"] })), true);
});

test("the bot's nick taken over by someone else is no longer the bot", () => {
  const bots = watch();
  bots.presence(presence("Quizbot"));
  assert.equal(bots.presence(presence("Quizbot", { affiliation: "none", id: "x" })), false);
  assert.equal(bots.trusted(message(`${ROOM}/Quizbot`)), false);
});

test("a room without occupant-ids: the bot's messages carry none", () => {
  const bots = watch();
  assert.equal(bots.presence(presence("Quizbot", { id: null })), true);
  assert.equal(bots.trusted(message(`${ROOM}/Quizbot`, { ids: [] })), true);
  assert.equal(bots.trusted(message(`${ROOM}/Quizbot`, { ids: ["any"] })), false);
});

test("privately: only the bot's real JID, never an occupant's private message", () => {
  const bots = watch();
  bots.presence(presence("Quizbot"));
  assert.equal(bots.trusted(message("Quiz@localhost/bot", { type: "chat", ids: [] })), true);
  assert.equal(bots.trusted(message(`${ROOM}/Quizbot`, { type: "chat" })), false);
  assert.equal(bots.trusted(message("mallory@localhost/x", { type: "chat", ids: [] })), false);
  assert.equal(bots.trusted(message("", { type: "chat", ids: [] })), false);
});

test("what it learnt survives a reload", () => {
  const storage = new Storage();
  watch(storage).presence(presence("Quizbot"));
  const reloaded = watch(storage);
  assert.equal(reloaded.trusted(message(`${ROOM}/Quizbot`)), false);
  reloaded.load();
  assert.equal(reloaded.trusted(message(`${ROOM}/Quizbot`)), true);
  storage.setItem("quiz-bots", JSON.stringify({ not: "a list" }));
  reloaded.load(); // malformed: ignored
  assert.equal(reloaded.trusted(message(`${ROOM}/Quizbot`)), true);
});
