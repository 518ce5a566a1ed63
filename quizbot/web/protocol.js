// The bot's urn:boshcm:quiz:0 payloads (docs/quiz.md, "Payloads") read into plain objects, and the page's own
// <answer/> and <command/> built as attributes and text. Pure: it reads elements (anything with localName,
// namespaceURI, children, getAttribute, textContent) and touches no DOM, network or clock, so node tests it
// (tests/js/protocol.test.mjs). Also the few JID helpers the page needs, as Strophe.js defines them.

export const NS = "urn:boshcm:quiz:0";
export const MUC = "http://jabber.org/protocol/muc";
export const MUC_USER = "http://jabber.org/protocol/muc#user";
export const OCCUPANT_ID = "urn:xmpp:occupant-id:0";

// --- addresses (the same results as Strophe.getBareJidFromJid & co.) ------------------------------------------

export const bareJid = (jid) => (jid ? jid.split("/")[0] : null);
export function resourceOf(jid) {
  if (!jid) return null;
  const parts = jid.split("/");
  return parts.length < 2 ? null : parts.slice(1).join("/");
}
export const nodeOf = (jid) => (jid && jid.indexOf("@") >= 0 ? jid.split("@")[0] : null);
export function domainOf(jid) {
  const bare = bareJid(jid);
  if (!bare) return null;
  return bare.indexOf("@") < 0 ? bare : bare.split("@").slice(1).join("@");
}

// --- reading ---------------------------------------------------------------------------------------------

export const childrenOf = (element, ns, name) =>
  [...element.children].filter((c) => c.namespaceURI === ns && (name === undefined || c.localName === name));
export const childOf = (element, ns, name) => childrenOf(element, ns, name)[0] || null;

// Our own unavailable presence from a room (status 110) that we did not ask for: true when the service dropped us
// and joining again is right. ejabberd removes an occupant whose session bounced a groupchat message (one that
// reached it while its stream was being resumed) with no reason code; XEP-0045 says the same with 333. A person's
// or the room's decision (ban 301, nick change 303, kick 307, affiliation 321/322, shutdown 332, a destroyed
// room) is not undone by rejoining.
const DECIDED = new Set(["301", "303", "307", "321", "322", "332"]);
export function droppedFromRoom(presence) {
  if (presence.getAttribute("type") !== "unavailable") return false;
  const x = childOf(presence, MUC_USER, "x");
  if (!x || childOf(x, MUC_USER, "destroy")) return false;
  const codes = childrenOf(x, MUC_USER, "status").map((s) => s.getAttribute("code"));
  return codes.includes("110") && !codes.some((code) => DECIDED.has(code));
}

// Text of an element as the sender wrote it. Never Strophe.getText: it XML-escapes (an apostrophe would show
// as &apos;), and everything here goes into the page with textContent, which needs no escaping at all.
export const textOf = (element) => (element ? element.textContent : "");

// A numeric attribute; null when absent or not a number.
function num(element, name) {
  const value = element.getAttribute(name);
  if (value === null || value.trim() === "") return null;
  const number = Number(value);
  return Number.isFinite(number) ? number : null;
}

const players = (element) => childrenOf(element, NS, "player").map((p) => ({
  nick: p.getAttribute("nick"), points: num(p, "points"), rank: num(p, "rank"),
  eliminated: p.getAttribute("eliminated") === "true",
}));

const READERS = {
  room: (e) => ({ jid: e.getAttribute("jid") || "", name: e.getAttribute("name"), pin: e.getAttribute("pin") }),
  game: (e) => ({
    id: e.getAttribute("id"), state: e.getAttribute("state"), mode: e.getAttribute("mode"),
    language: e.getAttribute("language"), total: num(e, "total"), opener: e.getAttribute("opener"),
    category: e.getAttribute("category"), pin: e.getAttribute("pin"), name: e.getAttribute("name"),
    players: players(e),
  }),
  question: (e) => ({
    id: e.getAttribute("id"), game: e.getAttribute("game"), index: num(e, "index"), total: num(e, "total"),
    kind: e.getAttribute("kind"), category: e.getAttribute("category"), duration: num(e, "duration"),
    deadline: Date.parse(e.getAttribute("deadline")), text: textOf(childOf(e, NS, "text")),
    choices: childrenOf(e, NS, "choice").map((c) => ({ key: c.getAttribute("key"), text: textOf(c) })),
  }),
  hint: (e) => ({ question: e.getAttribute("question"), pattern: e.getAttribute("pattern"), points: num(e, "points") }),
  received: (e) => ({ question: e.getAttribute("question") }),
  progress: (e) => ({ question: e.getAttribute("question"), answered: num(e, "answered"), players: num(e, "players") }),
  reveal: (e) => ({
    question: e.getAttribute("question"), answer: e.getAttribute("answer"), source: e.getAttribute("source"),
    choices: childrenOf(e, NS, "choice").map((c) => ({
      key: c.getAttribute("key"), text: textOf(c), count: num(c, "count"), correct: c.getAttribute("correct") === "true",
    })),
    scorers: childrenOf(e, NS, "scorer").map((s) => ({
      nick: s.getAttribute("nick"), points: num(s, "points"), seconds: num(s, "seconds"), streak: num(s, "streak"),
    })),
    // How many scored in all: the list names at most the board's size.
    scorerCount: num(e, "scorers"),
  }),
  eliminated: (e) => ({ question: e.getAttribute("question"), nick: e.getAttribute("nick") }),
  pause: (e) => ({ until: Date.parse(e.getAttribute("until")) }),
  ready: (e) => ({ until: Date.parse(e.getAttribute("until")), seconds: num(e, "seconds") }),
  scores: (e) => ({ game: e.getAttribute("game"), final: e.getAttribute("final") === "true",
                    reason: e.getAttribute("reason"), players: players(e), playerCount: num(e, "players") }),
  // Privately, to this player only (issue 14: boards are bounded, each player hears its own result and place).
  result: (e) => ({
    question: e.getAttribute("question"), game: e.getAttribute("game"), correct: e.getAttribute("correct") === "true",
    points: num(e, "points"), seconds: num(e, "seconds"), streak: num(e, "streak"),
  }),
  standing: (e) => ({ game: e.getAttribute("game"), total: num(e, "total"), rank: num(e, "rank"),
                      players: num(e, "players"), final: e.getAttribute("final") === "true" }),
  top: (e) => ({ period: e.getAttribute("period"), players: players(e) }),
  categories: (e) => ({
    language: e.getAttribute("language"),
    // The name is the attribute the bot sends (the text is the same name, for clients that read only text).
    categories: childrenOf(e, NS, "category").map((c) => ({
      language: c.getAttribute("language"), name: c.getAttribute("name") || textOf(c), count: num(c, "count"),
    })),
  }),
};

// One payload element as { type: its name, ...its fields }; null for anything this page does not know (version 0
// may grow: unknown elements are ignored).
export function readPayload(element) {
  if (element.namespaceURI !== NS || !Object.hasOwn(READERS, element.localName)) return null;
  return { type: element.localName, ...READERS[element.localName](element) };
}

// What the bot sends privately, never to a room (docs/quiz.md, "Payloads"): in a room message such a payload is
// no word of the bot's to this page (the bot's occupant speaks to everyone there), so it is not taken.
const PRIVATE_KINDS = new Set(["room", "received", "result", "standing"]);
export const inItsPlace = (payload, inRoom) => !inRoom || !PRIVATE_KINDS.has(payload.type);

// The quiz payloads of a stanza, read; `raw` says whether it carried any (even ones this page does not know).
export function payloadsOf(stanza) {
  const raw = childrenOf(stanza, NS);
  return { raw: raw.length, payloads: raw.map(readPayload).filter(Boolean) };
}

// --- writing ---------------------------------------------------------------------------------------------

// docs/quiz.md "Commands from rich clients": <command name="quiz">live 10 en</command>, no body; the bot parses
// the text with the grammar of typed commands. Empty arguments are left out.
export function command(name, args = []) {
  const text = args.map((a) => String(a ?? "").trim()).filter(Boolean).join(" ");
  return { attrs: { xmlns: NS, name }, text };
}

// <answer question choice/> beside the body (the body is the typed text or the choice key).
export function answer(question, choice) {
  return { xmlns: NS, question, ...(choice ? { choice } : {}) };
}

// --- what a reveal meant for this player (docs/quiz.md, "Your own result after a reveal") -----------------------

// `result`: the bot's private <result/> (live, sixbreak: to each player whose answer counted); `received`: the bot
// sent <received/> for this question; `sent`: the page sent an answer to it (classic has neither). The <result/>
// says it; else a scorer of the page's nick on the (bounded) list: correct; else a counted answer waits for its
// <result/> ("pending": it comes privately, after the room's reveal, and most correct players are not on the list);
// else an answer sent: wrong (in classic: not first or not right); else no answer.
export function ownResult(reveal, { nick, result = null, received = false, sent = false }) {
  if (result && result.question === reveal.question) {
    if (result.correct) return { kind: "correct", points: result.points, seconds: result.seconds, streak: result.streak };
    return { kind: "wrong", points: 0, seconds: null, streak: 0 };
  }
  const scorer = reveal.scorers.find((s) => s.nick === nick);
  if (scorer) return { kind: "correct", points: scorer.points, seconds: scorer.seconds, streak: scorer.streak };
  return { kind: received ? "pending" : sent ? "wrong" : "none", points: 0, seconds: null, streak: 0 };
}

// How many scored beyond the reveal's list ("and 1,202 more").
export const moreScorers = (reveal) => Math.max(0, (reveal.scorerCount ?? 0) - reveal.scorers.length);

// The page's total and rank beside a <scores/>: its row when it is on the board (that board is the newest word),
// else the bot's private <standing/> of the same game; `players` ranked in all. Null when neither says.
export function ownStanding(scores, standing, nick) {
  if (!scores) return null;
  const players = scores.playerCount ?? scores.players.length;
  const row = scores.players.find((p) => p.nick === nick);
  if (row) return { points: row.points, rank: row.rank, players, onBoard: true };
  if (!standing || standing.game !== scores.game || standing.total === null || standing.rank === null) return null;
  return { points: standing.total, rank: standing.rank, players: standing.players ?? players, onBoard: false };
}

// A game PIN as the bot takes it: six ASCII digits, not starting with 0 (docs/quiz.md, "Game PINs").
export const isPin = (text) => /^[1-9][0-9]{5}$/.test(text);

// --- remembered guests (XEP-0077) ------------------------------------------------------------------------------
// "Play as guest" registers a random account once per browser and logs in with it from then on (docs/quiz.md,
// "Guests who come back"): the account's name and password and what localStorage keeps. What registers it is in
// register.js, loaded on demand.

export const NS_REGISTER = "jabber:iq:register";

// A guest's random name and password from random bytes (crypto.getRandomValues in the page).
export function guestCredentials(randomBytes, domain) {
  const hex = [...randomBytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  const username = `guest-${hex.slice(0, 12)}`;
  return { username, jid: `${username}@${domain}`, password: hex.slice(12) };
}

// What localStorage keeps: { jid, password } for this page's domain, or null when absent, damaged or another's.
export function readGuest(text, domain) {
  try {
    const saved = JSON.parse(text || "null");
    if (!saved || typeof saved.jid !== "string" || typeof saved.password !== "string") return null;
    return domainOf(saved.jid) === domain && nodeOf(saved.jid) ? saved : null;
  } catch {
    return null;
  }
}
