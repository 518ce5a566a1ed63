// The page's reading and writing of urn:boshcm:quiz:0 (quizbot/web/protocol.js), on the examples docs/quiz.md
// gives ("Examples (as sent)"), so the docs and the page cannot drift apart.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { NS, answer, bareJid, command, domainOf, droppedFromRoom, inItsPlace, isPin, moreScorers, nodeOf, ownResult,
  ownStanding, payloadsOf, readPayload, resourceOf } from "../../quizbot/web/protocol.js";
import { parseXml } from "./xml.mjs";

const DOCS = readFileSync(new URL("../../docs/quiz.md", import.meta.url), "utf-8");
const block = DOCS.split("Examples (as sent):")[1].split("```xml")[1].split("```")[0];
const EXAMPLES = Object.fromEntries(parseXml(`<examples>${block}</examples>`).children
  .map((element) => [element.localName, element]));
const read = (kind) => readPayload(EXAMPLES[kind]);

test("every payload kind docs/quiz.md shows is read", () => {
  const documented = [...DOCS.split("## Payloads")[1].split("**Only the bot")[0].matchAll(/^\| `<(\w+)/gm)]
    .map((m) => m[1]);
  assert.ok(documented.length >= 12, documented);
  for (const kind of documented) {
    assert.ok(EXAMPLES[kind], `docs/quiz.md has no example of <${kind}/>`);
    assert.equal(read(kind).type, kind);
  }
});

test("a question: its numbers, deadline, text and choices", () => {
  assert.deepEqual(read("question"), {
    type: "question", id: "en-mus-004", game: "quiz-1795000000-1a2b3c4d", index: 2, total: 10, kind: "choice",
    category: "music", duration: 30, deadline: Date.UTC(2026, 10, 18, 11, 7, 10), text: "Who composed The Magic Flute?",
    choices: [{ key: "A", text: "Haydn" }, { key: "B", text: "Mozart" }, { key: "C", text: "Bach" },
              { key: "D", text: "Handel" }],
  });
});

test("a reveal: the correct choice, counts and scorers in order", () => {
  const reveal = read("reveal");
  assert.equal(reveal.answer, "Mozart");
  assert.equal(reveal.source, "https://en.wikipedia.org/wiki/The_Magic_Flute");
  assert.deepEqual(reveal.choices.filter((c) => c.correct).map((c) => c.key), ["B"]);
  assert.deepEqual(reveal.choices.map((c) => c.count), [0, 2, 1, 0]);
  assert.deepEqual(reveal.scorers, [{ nick: "Ann", points: 1000, seconds: 0.412, streak: 2 },
                                    { nick: "Ben", points: 790, seconds: 12.6, streak: 1 }]);
});

test("scores, top and game: players with points and shared ranks", () => {
  const scores = read("scores");
  assert.equal(scores.final, true);
  assert.equal(scores.reason, "finished");
  assert.deepEqual(scores.players.map((p) => [p.nick, p.points, p.rank]), [["Ann", 1950, 1], ["Ben", 740, 2], ["Cat", 740, 2]]);
  assert.equal(read("top").period, "week");
  assert.deepEqual(read("top").players.map((p) => p.rank), [1, 2]);
  const game = read("game");
  assert.deepEqual([game.state, game.mode, game.language, game.total, game.opener], ["running", "live", "en", 10, "Ann"]);
  assert.deepEqual(game.players.map((p) => [p.nick, p.points, p.rank]), [["Ann", 1950, null], ["Ben", 740, null]]);
});

test("the small ones: hint, received, progress, eliminated, pause, ready, room, categories", () => {
  assert.deepEqual(read("hint"), { type: "hint", question: "en-geo-001", pattern: "P a _ _ _", points: 50 });
  assert.deepEqual(read("received"), { type: "received", question: "en-mus-004" });
  assert.deepEqual(read("progress"), { type: "progress", question: "en-mus-004", answered: 17, players: 23 });
  assert.deepEqual(read("eliminated"), { type: "eliminated", question: "en-mus-004", nick: "Cat" });
  assert.deepEqual(read("pause"), { type: "pause", until: Date.UTC(2026, 10, 18, 11, 7, 40) });
  assert.deepEqual(read("ready"), { type: "ready", until: Date.UTC(2026, 10, 18, 11, 5, 3), seconds: 3 });
  assert.deepEqual(read("room"), { type: "room", jid: "brave-otter-4821@conference.localhost", name: "Ann's quiz",
                                   pin: "482913" });
  assert.deepEqual(read("categories").categories, [{ language: "en", name: "art", count: 16 },
                                                   { language: "en", name: "film", count: 16 },
                                                   { language: "de", name: "essen", count: 16 }]);
});

test("a category's name is its name attribute (the text is for clients that read only text)", () => {
  const categories = readPayload(parseXml(`<categories xmlns="${NS}" language="de">`
    + `<category language="de" name="geografie" count="3">Geografie</category>`
    + `<category language="en">history</category></categories>`));
  assert.deepEqual(categories.categories, [{ language: "de", name: "geografie", count: 3 },
                                           { language: "en", name: "history", count: null }]);
});

// Issue 14: the bot's private payloads, as docs/quiz.md ("Payloads") specifies them.
const RESULT = `<result xmlns="${NS}" question="en-mus-004" game="g1" correct="true" points="893" seconds="4.2"`
  + ` streak="3"/>`;
const STANDING = `<standing xmlns="${NS}" game="g1" total="1843" rank="734" players="2000" final="false"/>`;
const privately = (...payloads) => payloadsOf(parseXml(`<message xmlns="jabber:client" type="chat">`
  + `${payloads.join("")}</message>`)).payloads;

test("a result and a standing, privately in one message: result first", () => {
  assert.deepEqual(read("result"), { type: "result", question: "en-mus-004", game: "quiz-1795000000-1a2b3c4d",
                                     correct: true, points: 790, seconds: 12.6, streak: 1 });
  assert.deepEqual(read("standing"), { type: "standing", game: "quiz-1795000000-1a2b3c4d", total: 1530, rank: 2,
                                       players: 3, final: false });
  assert.deepEqual(privately(RESULT, STANDING), [
    { type: "result", question: "en-mus-004", game: "g1", correct: true, points: 893, seconds: 4.2, streak: 3 },
    { type: "standing", game: "g1", total: 1843, rank: 734, players: 2000, final: false },
  ]);
  const [wrong] = privately(`<result xmlns="${NS}" question="q" game="g1" correct="false" streak="0"/>`);
  assert.deepEqual(wrong, { type: "result", question: "q", game: "g1", correct: false, points: null, seconds: null,
                            streak: 0 });
  const [last] = privately(`<standing xmlns="${NS}" game="g1" total="0" rank="5" players="5" final="true"/>`);
  assert.equal(last.final, true);
});

test("private payloads count only privately: a <result/> or <standing/> in a room message is nobody's own", () => {
  const [result, standing] = privately(RESULT, STANDING);
  for (const payload of [result, standing, read("room"), read("received")]) {
    assert.equal(inItsPlace(payload, false), true, payload.type);
    assert.equal(inItsPlace(payload, true), false, payload.type);
  }
  for (const kind of ["reveal", "scores", "progress", "question"]) assert.equal(inItsPlace(read(kind), true), true, kind);
});

test("a bounded reveal and board say how many scored and how many are ranked in all", () => {
  const reveal = readPayload(parseXml(`<reveal xmlns="${NS}" question="q" answer="Mozart" scorers="1204">`
    + `<scorer nick="Ann" points="1000" seconds="0.4" streak="1"/><scorer nick="Ben" points="990" seconds="0.6"`
    + ` streak="1"/></reveal>`));
  assert.equal(reveal.scorerCount, 1204);
  assert.equal(moreScorers(reveal), 1202);
  const scores = readPayload(parseXml(`<scores xmlns="${NS}" game="g1" final="false" players="2000">`
    + `<player nick="Ann" points="1000" rank="1"/></scores>`));
  assert.equal(scores.playerCount, 2000);
  assert.equal(read("scores").playerCount, 3);
  assert.equal(moreScorers(read("reveal")), 0); // all who scored are on the list
  // A bot that does not bound (no count): the lists are all there is.
  const unbounded = readPayload(parseXml(`<reveal xmlns="${NS}" question="q" answer="x"><scorer nick="Ann"/></reveal>`));
  assert.equal(unbounded.scorerCount, null);
  assert.equal(moreScorers(unbounded), 0);
  assert.equal(readPayload(parseXml(`<scores xmlns="${NS}" game="g" final="false"/>`)).playerCount, null);
});

test("your own result after a reveal: the bot's <result/> for that question says it", () => {
  const reveal = read("reveal"); // scorers: Ann and Ben
  const [result] = privately(RESULT.replace('question="en-mus-004"', `question="${reveal.question}"`));
  // Not on the bounded scorer list, yet correct: the <result/> says so, with its points and streak.
  assert.deepEqual(ownResult(reveal, { nick: "Zoe", result, received: true }),
                   { kind: "correct", points: 893, seconds: 4.2, streak: 3 });
  const [wrong] = privately(`<result xmlns="${NS}" question="${reveal.question}" game="g1" correct="false"`
    + ` streak="0"/>`);
  assert.deepEqual(ownResult(reveal, { nick: "Zoe", result: wrong, received: true }),
                   { kind: "wrong", points: 0, seconds: null, streak: 0 });
  // A result for another question says nothing about this one.
  assert.equal(ownResult(reveal, { nick: "Zoe", result: { ...result, question: "other" }, sent: true }).kind,
               "wrong");
});

test("your own result without a <result/>: a scorer, an answer on its way, an uncounted answer, no answer", () => {
  const reveal = read("reveal");
  // A scorer of the page's nick (classic's one scorer; live before the result arrives): correct.
  assert.deepEqual(ownResult(reveal, { nick: "Ann", received: true }),
                   { kind: "correct", points: 1000, seconds: 0.412, streak: 2 });
  assert.deepEqual(ownResult(reveal, { nick: "Ben" }), { kind: "correct", points: 790, seconds: 12.6, streak: 1 });
  // Counted (<received/>) and not on the bounded scorer list: the bot's <result/> is on its way (it comes privately,
  // after the room's reveal) — nothing is claimed until then.
  assert.deepEqual(ownResult(reveal, { nick: "Cat", received: true }),
                   { kind: "pending", points: 0, seconds: null, streak: 0 });
  // Sent but never counted (classic has no <received/>; or too late): "not first or not right", as before.
  assert.equal(ownResult(reveal, { nick: "Cat", sent: true }).kind, "wrong");
  assert.equal(ownResult(reveal, { nick: "Dan" }).kind, "none");
  assert.equal(ownResult(reveal, { nick: "ann", sent: true }).kind, "wrong"); // nicks are compared exactly
});

test("your total and place: from the board when on it, else from the bot's <standing/>", () => {
  const scores = { ...read("scores"), game: "g1", playerCount: 2000 };
  const [standing] = privately(STANDING);
  assert.deepEqual(ownStanding(scores, standing, "Ben"), { points: 740, rank: 2, players: 2000, onBoard: true });
  assert.deepEqual(ownStanding(scores, null, "Cat"), { points: 740, rank: 2, players: 2000, onBoard: true });
  assert.deepEqual(ownStanding(scores, standing, "Zoe"), { points: 1843, rank: 734, players: 2000, onBoard: false });
  assert.equal(ownStanding(scores, null, "Zoe"), null);
  assert.equal(ownStanding(scores, { ...standing, game: "an-earlier-game" }, "Zoe"), null);
  assert.equal(ownStanding(null, standing, "Zoe"), null); // no board yet: its game's board comes with it
  // A bot that does not count: the board's length.
  assert.equal(ownStanding({ ...read("scores"), playerCount: null }, null, "Ann").players, 3);
});

test("a game PIN is six ASCII digits not starting with 0", () => {
  for (const pin of ["482913", "100000", "999999"]) assert.ok(isPin(pin), pin);
  for (const pin of ["048291", "48291", "4829130", "48291a", "４８２９１３", " 482913", ""]) assert.ok(!isPin(pin), pin);
});

test("text is read as written: markup and entities stay text", () => {
  const question = readPayload(parseXml(`<question xmlns="${NS}" id="q"><text>Rock 'n' Roll &amp; &lt;Blues&gt;</text>`
    + `<choice key="A">&lt;b&gt;x&lt;/b&gt;</choice></question>`));
  assert.equal(question.text, "Rock 'n' Roll & <Blues>");
  assert.equal(question.choices[0].text, "<b>x</b>");
});

test("unknown payloads are ignored, but a stanza carrying any quiz payload says so", () => {
  const message = parseXml(`<message xmlns="jabber:client"><future xmlns="${NS}"/><body>hi</body>`
    + `<question xmlns="urn:other"/></message>`);
  assert.deepEqual(payloadsOf(message), { raw: 1, payloads: [] });
  assert.equal(readPayload(parseXml(`<question xmlns="urn:other"/>`)), null);
  assert.equal(readPayload(parseXml(`<toString xmlns="${NS}"/>`)), null);
  const chat = parseXml(`<message xmlns="jabber:client"><body>!start</body></message>`);
  assert.deepEqual(payloadsOf(chat), { raw: 0, payloads: [] });
});

test("commands and answers as the page sends them", () => {
  assert.deepEqual(command("quiz", ["live", 5, "", "en"]), { attrs: { xmlns: NS, name: "quiz" }, text: "live 5 en" });
  assert.deepEqual(command("start"), { attrs: { xmlns: NS, name: "start" }, text: "" });
  assert.deepEqual(command("top", ["all", 10]), { attrs: { xmlns: NS, name: "top" }, text: "all 10" });
  assert.deepEqual(answer("q1", "B"), { xmlns: NS, question: "q1", choice: "B" });
  assert.deepEqual(answer("q1", null), { xmlns: NS, question: "q1" });
});

test("JIDs are split as Strophe.js splits them", () => {
  assert.equal(bareJid("quiz@conference.localhost/Ann/x"), "quiz@conference.localhost");
  assert.equal(resourceOf("quiz@conference.localhost/Ann/x"), "Ann/x");
  assert.equal(resourceOf("quiz@conference.localhost"), null);
  assert.equal(nodeOf("localhost"), null);
  assert.equal(nodeOf("ann@localhost/r"), "ann");
  assert.equal(domainOf("ann@localhost/r"), "localhost");
  assert.equal(domainOf("localhost"), "localhost");
  assert.equal(bareJid(""), null);
});

test("dropped from the room by the service: rejoin; removed by a decision or left: do not", () => {
  const self = (codes, extra = "") => parseXml(
    `<presence xmlns="jabber:client" from="quiz@conference.localhost/Dan" type="unavailable">`
    + `<x xmlns="http://jabber.org/protocol/muc#user"><item role="none" affiliation="none"/>${extra}`
    + codes.map((code) => `<status code="${code}"/>`).join("") + `</x></presence>`);
  // ejabberd's removal of an occupant whose session bounced a groupchat message: 110 and nothing else.
  assert.equal(droppedFromRoom(self(["110"])), true);
  assert.equal(droppedFromRoom(self(["110", "333"])), true);
  for (const decided of ["301", "303", "307", "321", "322", "332"]) {
    assert.equal(droppedFromRoom(self(["110", decided])), false, decided);
  }
  assert.equal(droppedFromRoom(self(["110"], "<destroy/>")), false);
  assert.equal(droppedFromRoom(self([])), false); // someone else's leave
  const available = parseXml(`<presence xmlns="jabber:client"><x xmlns="http://jabber.org/protocol/muc#user">`
    + `<status code="110"/></x></presence>`);
  assert.equal(droppedFromRoom(available), false);
});
