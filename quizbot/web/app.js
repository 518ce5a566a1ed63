// The browser quiz page: wires its modules together (docs/quiz.md, "The browser quiz page"). It reads the bot's
// urn:boshcm:quiz:0 payloads — never its human text, and only from the bot — and steers the bot with
// <command/> payloads, never typed "!" lines.
//   connection.js  Strophe.js over BOSH/WebSocket, BOSH keys (keys.js), XEP-0198 (sm.js), reconnecting
//   leader.js      one connection per browser: the leading tab connects, the others follow it (tabs.js)
//   protocol.js    payloads to plain objects and back (pure)     trust.js  only the bot speaks for the bot (pure)
//   view.js        the DOM                                       i18n.js   English and German (pure)
//   host.js        the projector's join PIN and QR code, loaded on demand in the host view (/host, ?host=1)
import { GUEST_STORE, SM_STORE, forgetGuest, guestAccount } from "./connection.js";
import { createConnection, storage as pageStore } from "./leader.js";
import { t } from "./i18n.js";
import * as protocol from "./protocol.js";
import { MUC, MUC_USER, NS, NS_REGISTER, bareJid, domainOf, nodeOf, readGuest, resourceOf } from "./protocol.js";
import { BotWatch } from "./trust.js";
import * as view from "./view.js";
import { $ } from "./view.js";

const { $iq, $msg, $pres } = window;
const DISCO_INFO = "http://jabber.org/protocol/disco#info";
const ROOM_INFO_STORE = "quiz-room-info";
const VIEW_STORE = "quiz-view";
const PAGE_STORE = "quiz-page";
const OCCUPANTS_STORE = "quiz-occupants";
const OWNER_STORE = "quiz-owner"; // whether this page may start games in its room (from its self-presence)
const FORGET_ID = "forget-me";
const REJOIN_PAUSE_MS = 5000; // a room that drops us again at once is not rejoined in a loop

const state = {
  config: null, nick: "", room: null, owner: false, question: null, answered: false, joined: false,
  opening: false, wantRoom: null, restored: false, viewShown: false, categories: [],
  host: false, // the projector's host view: in the room, never answering
  pin: null, // a game PIN being looked up (the start page's PIN field, or the home's)
  received: null, // the question the bot said it counted our answer for
  sent: null, // the question we sent an answer to
  reveal: null, // the open question's reveal, once shown
  result: null, // the bot's private <result/> for the open question
  scores: null, // the latest <scores/> (a bounded board) and the bot's private <standing/> beside it
  standing: null,
  info: { name: null, pin: null }, // the room's readable name and game PIN
  guest: null, // the remembered guest account this page logged in with (connection.js, guestAccount)
  forgotten: null, // "forget me": what to do once the server removed the account
  leaving: false, // we asked to leave the room (and join it again right after)
  rejoinedAt: 0, // when the page last joined again after the service dropped it from the room
};
let hostView = null; // host.js, once loaded
let connection = null;
let botWatch = null;

// --- talking to the bot ------------------------------------------------------------------------------------
// docs/quiz.md "Commands from rich clients": room commands (quiz, start) as groupchat to the room, the rest
// privately to the bot (!repeat and !score answer for the room the player is in).

function commandTo(to, type, name, ...args) {
  const { attrs, text } = protocol.command(name, args);
  const message = $msg({ to, type }).c("command", attrs);
  if (text) message.t(text);
  connection.send(message);
}

const toBot = (name, ...args) => commandTo(state.config.bot, "chat", name, ...args);
const toRoom = (name, ...args) => commandTo(state.room, "groupchat", name, ...args);

// --- what the page shows, kept for a reload ------------------------------------------------------------
// The bot's latest payloads (question, hint, received, result, reveal, standing, scores, game, categories) as read,
// so a resumed page draws the game as it was; the server then sends what came meanwhile. In this order: a reveal
// shows the result that came before it.

const VIEW_KINDS = ["categories", "game", "standing", "scores", "question", "hint", "received", "result", "reveal"];

function keepPayload(payload) {
  if (!VIEW_KINDS.includes(payload.type)) return;
  const saved = JSON.parse(pageStore.getItem(VIEW_STORE) || "{}");
  if (payload.type === "question") {
    for (const kind of ["hint", "received", "result", "reveal", "answered"]) delete saved[kind]; // a new question
  }
  saved[payload.type] = payload;
  pageStore.setItem(VIEW_STORE, JSON.stringify(saved));
}

function showSavedView() {
  state.viewShown = true;
  const ownership = JSON.parse(pageStore.getItem(OWNER_STORE) || "null");
  if (ownership && ownership.room === state.room) {
    state.owner = ownership.owner;
    view.showStartForm(state.owner);
  }
  const saved = JSON.parse(pageStore.getItem(VIEW_STORE) || "{}");
  for (const kind of VIEW_KINDS) {
    const payload = saved[kind];
    if (payload && typeof payload === "object" && payload.type === kind) handlePayload(payload, true, false);
  }
  if (saved.answered) {
    state.answered = true;
    view.lockAnswers(true);
  }
  for (const nick of JSON.parse(pageStore.getItem(OCCUPANTS_STORE) || "[]")) view.addOccupant(nick);
}

// --- rooms -------------------------------------------------------------------------------------------------

function showRoom(room) {
  if (state.room !== room) state.info = { name: null, pin: null };
  state.room = room;
  view.showRoom(room);
  const saved = JSON.parse(pageStore.getItem(ROOM_INFO_STORE) || "null");
  if (saved && saved.room === room) roomInfo(saved);
  if (state.host) showJoin();
}

// The room's readable name and game PIN, from whichever of <room/>, <game/> and disco#info says it.
function roomInfo({ name, pin }) {
  state.info = { name: name || state.info.name, pin: pin || state.info.pin };
  view.roomInfo(state.info);
  pageStore.setItem(ROOM_INFO_STORE, JSON.stringify({ room: state.room, ...state.info }));
  if (state.host) showJoin();
}

async function showJoin() {
  hostView = hostView || await import("./host.js");
  hostView.enter();
  await hostView.showJoin({ link: view.joinLink(state.room), pin: state.info.pin });
}

function joinRoom(room) {
  showRoom(room);
  state.joined = false;
  const presence = $pres({ to: `${room}/${state.nick}` }).c("x", { xmlns: MUC }).c("history", { maxstanzas: 0 });
  // The host view says what it is, for a bot that leaves hosts out of the players (docs/quiz.md, host view).
  if (state.host) {
    presence.up().up().c("host", { xmlns: NS });
    view.leaveOff(state.nick);
  }
  connection.send(presence);
  pageStore.setItem(PAGE_STORE, JSON.stringify({ room, nick: state.nick }));
  // XEP-0045 §6.4: the room's disco#info names it (muc#roomconfig_roomname), before any game says so.
  connection.send($iq({ to: room, type: "get", id: `room-info-${Date.now()}` }).c("query", { xmlns: DISCO_INFO }));
}

function onIq(iq) {
  if (iq.getAttribute("id") === FORGET_ID && state.forgotten) { state.forgotten(); return true; } // removed
  const from = bareJid(iq.getAttribute("from") || "");
  if (iq.getAttribute("type") !== "result" || !(iq.getAttribute("id") || "").startsWith("room-info-") ||
      from !== state.room) return true;
  const identity = [...iq.getElementsByTagName("identity")].find((i) => i.getAttribute("category") === "conference");
  const name = identity && identity.getAttribute("name");
  if (name && name !== nodeOf(from)) roomInfo({ name, pin: null });
  return true;
}

function onPresence(presence) {
  const from = presence.getAttribute("from") || "";
  const isBot = botWatch.presence(presence);
  if (!state.room || bareJid(from) !== state.room) return true;
  const nick = resourceOf(from);
  const type = presence.getAttribute("type");
  if (type === "error") {
    if (presence.getElementsByTagName("conflict").length) {
      state.nick += "_";
      joinRoom(state.room);
    }
    return true;
  }
  const x = protocol.childOf(presence, MUC_USER, "x");
  const item = x && x.getElementsByTagName("item")[0];
  if (isBot) return true; // the bot is no player
  if (type === "unavailable" || protocol.childOf(presence, NS, "host")) view.removeOccupant(nick); // nor a host view
  else view.addOccupant(nick);
  pageStore.setItem(OCCUPANTS_STORE, JSON.stringify(view.occupants()));
  const self = x && [...x.getElementsByTagName("status")].some((s) => s.getAttribute("code") === "110");
  if (self && type === "unavailable") {
    state.joined = false;
    if (state.leaving) state.leaving = false; // our own leave, with a join right behind it
    else if (protocol.droppedFromRoom(presence) && Date.now() - state.rejoinedAt > REJOIN_PAUSE_MS) {
      // Dropped by the service, not by anyone's decision: back in, and asking what we missed meanwhile.
      state.rejoinedAt = Date.now();
      joinRoom(state.room);
      toBot("repeat");
      toBot("score");
    }
  }
  if (self && type !== "unavailable") {
    state.joined = true;
    view.connectionStatus("connected");
    // Owners start games in their rooms; in the public room anyone may.
    state.owner = (item && item.getAttribute("affiliation") === "owner") || state.room === state.config.room;
    view.showStartForm(state.owner);
    // A resumed stream gets no new self-presence (it never left the room): the owner's controls come from here.
    pageStore.setItem(OWNER_STORE, JSON.stringify({ room: state.room, owner: state.owner }));
  }
  return true;
}

// --- messages ----------------------------------------------------------------------------------------------

function onMessage(message) {
  const from = message.getAttribute("from") || "";
  const type = message.getAttribute("type");
  if (message.getElementsByTagName("delay").length) return true; // room history
  const { raw, payloads } = protocol.payloadsOf(message);
  if (raw && !botWatch.trusted(message)) return true; // someone speaking for the bot: dropped whole
  for (const payload of payloads) handlePayload(payload, type === "groupchat");
  if (!raw && type !== "groupchat" && botWatch.trusted(message)) {
    if (state.pin) {
      view.homeStatus("pin-unknown", { pin: state.pin }); // the bot answers a PIN it does not know in words only
      state.pin = null;
    } else {
      // Words for this page alone: in a crowded room the bot answers a command typed in the chat privately.
      const body = protocol.textOf(message.getElementsByTagName("body")[0]);
      if (body) view.chatLine(state.config.botNick, body);
    }
  }
  if (type === "groupchat" && bareJid(from) === state.room && !raw) {
    const body = protocol.textOf(message.getElementsByTagName("body")[0]);
    if (body && !body.startsWith("!")) view.chatLine(resourceOf(from), body); // typed commands are not chat
  }
  return true;
}

function handlePayload(payload, inRoom, fresh = true) {
  // A private payload (<room/>, <result/>…) sent to a whole room is nobody's own.
  if (fresh && !protocol.inItsPlace(payload, inRoom)) return;
  if (fresh) keepPayload(payload);
  switch (payload.type) {
    case "room": onRoom(payload); break;
    case "game": onGame(payload); break;
    case "question": onQuestion(payload); break;
    case "hint": view.hint(t("hint-label", { h: payload.pattern })); break;
    case "received":
      if (state.question === payload.question) {
        state.received = payload.question;
        view.received(t("received"));
      }
      break;
    case "progress": if (state.question === payload.question) view.showProgress(payload); break;
    case "reveal": onReveal(payload); break;
    case "result":
      if (state.question === payload.question) {
        state.result = payload;
        showOwn();
      }
      break;
    case "standing":
      state.standing = payload;
      showOwn();
      break;
    case "scores": onScores(payload, fresh); break;
    case "top": view.showTop(payload); break;
    case "eliminated": view.chatLine("", t("out", { n: payload.nick })); break;
    case "pause": view.hint(t("pause-label", { t: new Date(payload.until).toLocaleTimeString() })); break;
    case "ready": view.getReady(payload); break;
    case "categories":
      state.categories = payload.categories;
      view.showCategories(state.categories);
      break;
    default: break;
  }
}

function onRoom(room) {
  if (domainOf(room.jid) !== state.config.muc || !nodeOf(room.jid)) return; // a room of this page's service
  state.pin = null;
  view.homeStatus(null);
  joinRoom(room.jid);
  roomInfo(room);
}

function onGame(game) {
  roomInfo(game);
  if (game.state === "lobby" && game.opener === state.nick && state.opening) {
    state.opening = false;
    toRoom("start"); // our own lobby: start at once, everyone in the room may answer
  }
  view.showGameState(game.state);
}

function onQuestion(question) {
  state.question = question.id;
  state.answered = state.host;
  state.reveal = state.result = null;
  view.showQuestion(question, state.host ? null : (key, button) => answer(key, key, button));
}

function onReveal(reveal) {
  // A reveal for a question this page never showed (it came back after a server restart or a long outage while
  // that question was open): not shown; the bot's next question comes, and !repeat asked for the open one.
  if (reveal.question !== state.question) return;
  state.answered = true;
  state.reveal = reveal;
  view.showReveal(reveal);
  showOwn();
}

// This player's own result after the reveal and its total and place, from whichever of the room's reveal and
// board and the bot's private <result/> and <standing/> (they may come in either order) have come so far.
function showOwn() {
  if (state.host) return;
  const standing = protocol.ownStanding(state.scores, state.standing, state.nick);
  view.ownStanding(standing);
  const reveal = state.reveal;
  if (!reveal || reveal.question !== state.question) return;
  const ours = { result: state.result, received: state.received === reveal.question, sent: state.sent === reveal.question };
  view.ownResult(protocol.ownResult(reveal, { nick: state.nick, ...ours }), standing);
}

function answer(text, choice, button) {
  if (state.answered || !state.question) return;
  state.answered = true;
  state.sent = state.question;
  view.markChosen(button);
  view.lockAnswers(true);
  view.received(t("sent-answer"));
  // A move, not a conversation: <no-permanent-store/> (XEP-0334) keeps it out of both parties' archives, which
  // 2,000 players would otherwise fill with a write per answer.
  const message = $msg({ to: state.config.bot, type: "chat" }).c("body").t(text).up()
    .c("answer", protocol.answer(state.question, choice)).up()
    .c("no-permanent-store", { xmlns: "urn:xmpp:hints" });
  connection.send(message); // privately to the bot: nobody in the room can copy it
  const saved = JSON.parse(pageStore.getItem(VIEW_STORE) || "{}");
  pageStore.setItem(VIEW_STORE, JSON.stringify({ ...saved, answered: true }));
}

function onScores(scores, fresh) {
  state.scores = scores;
  view.showScores(scores);
  showOwn();
  if (scores.final) {
    state.question = null;
    // One request per browser: every tab gets the answer (leader.js), so only the tab that leads asks.
    if (fresh && connection.role !== "follower") toBot("top", "all", 10);
  }
}

// --- the connection's events -------------------------------------------------------------------------------

function onStatus(kind) {
  switch (kind) {
    case "connecting": if (!state.room) view.loginStatus("connecting"); break;
    case "authfail":
      // The remembered guest is gone (removed, or a new server): register a new one, once — unless this browser
      // forgot it on purpose ("forget me", maybe in another tab).
      if (state.guest && readGuest(localStorage.getItem(GUEST_STORE), state.config.domain)) {
        state.guest = null;
        forgetGuest();
        playAsGuest(false);
      } else {
        // Refused on a reconnect or a reload too (the account removed, its password changed): connection.js stops
        // trying, and the login form, shown over the room, says why.
        view.show("login");
        view.showForget(false);
        view.loginStatus("authfail");
        if (state.room) view.connectionStatus("authfail");
      }
      break;
    case "failed": view.loginStatus("failed"); break;
    case "login": // the session is over (in a follower tab: the leading tab's login was refused)
      view.show("login");
      view.showForget(false);
      if (state.room) view.connectionStatus("logged-out");
      break;
    case "up":
      view.connectionStatus("connected");
      view.connectionState("up");
      break;
    case "reconnecting":
      view.connectionStatus("reconnecting");
      view.connectionState("reconnecting");
      break;
    default: break;
  }
}

// A session to use: a login, a re-attached BOSH session after a reload ("attached"), or a fresh bind after a
// refused resumption ("rebound"). A re-attached or rebound page rejoins the room to see who is there and asks
// the bot to repeat the question and the scores.
function onReady(reason, saved) {
  if (reason === "attached") {
    state.nick = saved.nick;
    state.room = saved.room;
    state.restored = true;
  } else if (reason === "rebound") {
    state.restored = Boolean(state.room);
  }
  connection.send($pres());
  view.connectionStatus("connected");
  view.show("login", false);
  view.showForget(true);
  if (state.restored) {
    state.restored = false;
    if (!state.viewShown) showSavedView();
    state.leaving = true;
    connection.send($pres({ to: `${state.room}/${state.nick}`, type: "unavailable" }));
    joinRoom(state.room);
    toBot("repeat");
    toBot("score");
  } else if (state.wantRoom) joinRoom(state.wantRoom);
  else if (state.room) joinRoom(state.room);
  else {
    view.show("home");
    if (state.pin) lookUpPin(state.pin);
  }
  toBot("categories");
}

// This tab follows the session another tab leads (leader.js): it shows what that tab shows, the room the player
// is in or the home, and sends nothing (the player is there already).
function onFollowed() {
  view.show("login", false);
  view.showForget(true);
  const saved = JSON.parse(pageStore.getItem(PAGE_STORE) || "null");
  if (saved && typeof saved.nick === "string") state.nick = saved.nick;
  if (saved && typeof saved.room === "string") followRoom(saved);
  else if (!state.room) view.show("home");
}

// The player is in this room now (joined from another tab, or this one followed late).
function followRoom({ room, nick }) {
  if (room !== state.room) {
    view.clearRoom();
    state.question = state.reveal = state.result = state.scores = state.standing = null;
    state.viewShown = false;
  }
  state.nick = nick;
  botWatch.load();
  showRoom(room);
  if (!state.viewShown) showSavedView();
}

// docs/quiz.md "Game PINs": <command name="pin">NNNNNN</command> privately; the bot answers <room jid name pin/>.
function lookUpPin(pin) {
  state.pin = pin;
  view.homeStatus("pin-looking", { pin });
  toBot("pin", pin);
}

// A new login: nothing of an earlier session in this tab is resumed or shown.
function login(jid, password) {
  for (const key of [VIEW_STORE, "quiz-bots", OCCUPANTS_STORE, PAGE_STORE, ROOM_INFO_STORE, OWNER_STORE]) {
    pageStore.removeItem(key);
  }
  state.viewShown = true;
  pageStore.setItem(PAGE_STORE, JSON.stringify({ room: null, nick: state.nick })); // for the tabs that follow
  connection.login(jid, password);
}

// "Play as guest": the browser's remembered guest account (registered on the first visit), else SASL ANONYMOUS.
async function playAsGuest(remember = true) {
  view.loginStatus("connecting");
  const guest = await guestAccount(state.config);
  state.guest = remember && guest ? guest : null;
  if (guest) login(`${guest.jid}/quiz-${Math.random().toString(36).slice(2, 8)}`, guest.password);
  else login(state.config.domain, null); // SASL ANONYMOUS
}

// "Log out and forget me": the remembered guest account is removed on the server (XEP-0077 §3.2 <remove/>; the
// server answers, then closes the stream) and in this browser, with everything the page kept; the page starts
// again from the login form. An account's page is only logged out: its account is not the page's to remove.
const FORGET_SECONDS = 5; // a server that does not answer: forgotten here all the same

function forgetMe() {
  view.showForget(false);
  const guest = readGuest(localStorage.getItem(GUEST_STORE), state.config.domain);
  state.guest = null; // a login that fails from now on registers no new guest (onStatus)
  forgetGuest();
  const finish = () => {
    if (state.forgotten === false) return; // once: the server's answer or the timeout
    state.forgotten = false;
    connection.end();
    for (const key of [VIEW_STORE, "quiz-bots", OCCUPANTS_STORE, PAGE_STORE, ROOM_INFO_STORE, OWNER_STORE, SM_STORE]) {
      pageStore.removeItem(key);
      localStorage.removeItem(key);
    }
    sessionStorage.clear();
    location.replace(location.pathname);
  };
  if (!guest || bareJid(connection.jid || "") !== guest.jid) { finish(); return; }
  state.forgotten = finish;
  setTimeout(finish, FORGET_SECONDS * 1000);
  connection.send($iq({ type: "set", id: FORGET_ID }).c("query", { xmlns: NS_REGISTER }).c("remove"));
}

// --- wiring ------------------------------------------------------------------------------------------------

async function main() {
  state.config = await (await fetch("/quiz/config.json")).json();
  const params = new URLSearchParams(location.search);
  state.wantRoom = params.get("room");
  state.host = params.has("host") || location.pathname === "/host";
  if (state.host) document.body.dataset.mode = "host";
  view.applyLanguage(localStorage.getItem("quiz-language") || (navigator.language || "en").slice(0, 2));
  botWatch = new BotWatch({ bot: state.config.bot, botNick: state.config.botNick, storage: pageStore });
  const saved = JSON.parse(pageStore.getItem(PAGE_STORE) || "null");
  connection = createConnection({
    config: state.config, storage: sessionStorage, inRoom: () => Boolean(state.room),
    events: {
      status: onStatus,
      ready: (reason) => onReady(reason, saved),
      followed: onFollowed,
      resumed: () => {
        view.showForget(true);
        if (!state.viewShown) showSavedView();
      },
    },
  });
  connection.onStanza("message", onMessage);
  connection.onStanza("presence", onPresence);
  connection.onStanza("iq", onIq);
  // A reloaded page (same tab) takes its session back: see connection.js.
  if (saved && saved.room) {
    connection.restore({
      beforeResume: () => {
        state.nick = saved.nick;
        state.room = saved.room;
        botWatch.load();
        showRoom(saved.room);
      },
    });
  }

  $("forget-me").addEventListener("click", forgetMe);
  // Another tab of this browser (the same player: leader.js) joined a room: this one shows it too.
  window.addEventListener("storage", (event) => {
    if (event.key !== PAGE_STORE || !event.newValue || !connection.jid) return;
    let moved = null;
    try { moved = JSON.parse(event.newValue); } catch { return; }
    if (moved && typeof moved.room === "string" && moved.room !== state.room) followRoom(moved);
  });
  $("language").addEventListener("change", (event) => {
    localStorage.setItem("quiz-language", event.target.value);
    view.applyLanguage(event.target.value);
  });
  $("guest-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.nick = $("nick").value.trim();
    state.pin = protocol.isPin($("pin").value.trim()) ? $("pin").value.trim() : null;
    playAsGuest();
  });
  $("account-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const jid = $("jid").value.trim();
    state.nick = $("nick").value.trim() || nodeOf(jid);
    state.pin = protocol.isPin($("pin").value.trim()) ? $("pin").value.trim() : null;
    login(jid.includes("/") ? jid : `${jid}/quiz-${Math.random().toString(36).slice(2, 8)}`, $("password").value);
  });
  $("create-game").addEventListener("click", () => {
    view.connectionStatus("creating");
    toBot("newgame", state.nick); // named after the player ("Ann's quiz"), not a guest's random JID
  });
  $("quiz-language").addEventListener("change", () => view.showCategories(state.categories));
  $("join-public").addEventListener("click", () => joinRoom(state.config.room));
  $("pin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const pin = $("home-pin").value.trim();
    if (protocol.isPin(pin)) lookUpPin(pin);
  });
  $("copy-link").addEventListener("click", async () => {
    $("share-link").select();
    if (navigator.clipboard) await navigator.clipboard.writeText($("share-link").value).catch(() => {});
    view.copied();
  });
  $("start-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.opening = true;
    toRoom("quiz", "live", Number($("count").value) || 5, $("category").value, $("quiz-language").value);
  });
  $("answer-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("answer").value.trim();
    if (text) answer(text, null, null);
  });
  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("chat-input").value.trim();
    if (text && state.room) connection.send($msg({ to: state.room, type: "groupchat" }).c("body").t(text));
    $("chat-input").value = "";
  });
  document.addEventListener("keydown", (event) => {
    if (!state.question || state.answered || event.target.tagName === "INPUT") return;
    const key = event.key.toUpperCase();
    const index = "ABCD".indexOf(key) >= 0 ? "ABCD".indexOf(key) : "1234".indexOf(key);
    const button = view.choiceButton(index);
    if (button) button.click();
  });
  // The login buttons come disabled (index.html): a form sent before these listeners existed would be submitted
  // by the browser itself, reloading the page with the nickname in the URL.
  for (const button of document.querySelectorAll("#login button[disabled]")) button.disabled = false;
  performance.mark("quiz-ready"); // every control works from here on (docs/quiz.md: time to interactive)
}

main();
