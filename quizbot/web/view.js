// What the page shows: DOM rendering of index.html's sections from plain objects (protocol.js reads the
// payloads), in the words of i18n.js. Text is text: everything goes in with textContent, never markup.
import { formatCount, setLanguage, t } from "./i18n.js";
import { moreScorers } from "./protocol.js";

const CHAT_LINES = 200; // a phone keeps the last ones; a long evening's chat does not pile up in the DOM

export const $ = (id) => document.getElementById(id);

export function show(id, visible = true) { $(id).hidden = !visible; }

export function applyLanguage(lang) {
  const chosen = setLanguage(lang);
  document.documentElement.lang = chosen;
  $("language").value = chosen;
  $("quiz-language").value = chosen;
  for (const element of document.querySelectorAll("[data-t]")) element.textContent = t(element.dataset.t);
  for (const element of document.querySelectorAll("[data-t-label]")) {
    element.setAttribute("aria-label", t(element.dataset.tLabel));
  }
  return chosen;
}

// "Log out and forget me": shown while the page has a session to end.
export function showForget(visible) { show("forget-me", visible); }

export function loginStatus(key) { $("login-status").textContent = t(key); }

// Whether the status line says "get ready" (the bot's <ready/>): the first question puts "the game is on" back.
let readyShown = false;

export function connectionStatus(key) {
  readyShown = false;
  $("connection").textContent = t(key);
}

// Between the start and the first question: in how many seconds it comes (the bot's count, not this clock's).
export function getReady({ until, seconds }) {
  const s = seconds ?? Math.max(0, Math.round((until - Date.now()) / 1000));
  $("connection").textContent = t("get-ready", { s });
  readyShown = true;
}

// "up" or "reconnecting", for the styles and the tests.
export function connectionState(value) { document.body.dataset.connection = value; }

// The join link of a room: the page's own address with ?room= (also the host view's QR code).
export function joinLink(room) {
  const link = new URL("/", location.href);
  link.search = "?room=" + encodeURIComponent(room);
  return link.toString();
}

export function showRoom(room) {
  show("login", false);
  show("home", false);
  show("room");
  $("room-title").textContent = room.split("@")[0]; // until the room's name is known
  $("share-link").value = joinLink(room);
}

// Another room now (the player moved there in another tab): nothing of the last one stays on show.
export function clearRoom() {
  for (const id of ["occupants", "chat-log", "scores", "podium-list", "top-list"]) $(id).replaceChildren();
  for (const id of ["board-count", "own-standing"]) $(id).textContent = "";
  for (const id of ["question", "scoreboard", "podium"]) show(id, false);
  $("room-pin").textContent = "";
}

// The room's readable name (`name` of <room/> and <game/>, or the room's disco#info) and its game PIN.
export function roomInfo({ name, pin }) {
  if (name) {
    $("room-title").textContent = name;
    document.title = `${name} · ${t("title")}`;
  }
  if (pin) {
    $("room-pin").textContent = t("pin-shown", { pin });
    $("room-pin").dataset.pin = pin;
  }
}

export function homeStatus(key, values) { $("home-status").textContent = key ? t(key, values) : ""; }

export function copied() { $("copy-status").textContent = t("copied"); }

// The lobby's controls: owners start games, others wait for them.
export function showStartForm(owner) {
  show("start-form", owner);
  show("waiting", !owner);
}

// --- players in the room -----------------------------------------------------------------------------------

// The host view is an occupant of the room but no player: its own nick is left off its lists and boards.
let notAPlayer = null;
export function leaveOff(nick) { notAPlayer = nick; }

export function addOccupant(nick) {
  if (nick === notAPlayer) return;
  const list = $("occupants");
  if ([...list.children].some((li) => li.dataset.nick === nick)) return;
  const li = document.createElement("li");
  li.dataset.nick = nick;
  li.textContent = nick;
  list.appendChild(li);
}

export function removeOccupant(nick) {
  const existing = [...$("occupants").children].find((li) => li.dataset.nick === nick);
  if (existing) existing.remove();
}

export const occupants = () => [...$("occupants").children].map((li) => li.dataset.nick);

// --- the game ----------------------------------------------------------------------------------------------

export function showGameState(state) {
  document.body.dataset.game = state;
  const line = { running: "game-running", ended: "game-ended", lobby: "game-lobby" }[state];
  if (line) connectionStatus(line);
  if (state === "running") {
    show("lobby", false);
    show("podium", false);
  }
  if (state === "ended" || state === "none") show("lobby");
}

let countdown = null;

// Kahoot's tiles: a colour and a shape for each choice, so that no one needs the colour to tell them apart.
const SHAPES = { A: "▲", B: "◆", C: "●", D: "■" };

// onChoice(key, button) when a choice is clicked; none for the host view, whose tiles are not controls.
export function showQuestion(question, onChoice) {
  if (readyShown) connectionStatus("game-running");
  show("question");
  show("reveal", false);
  $("received").textContent = "";
  $("hint").textContent = "";
  $("progress").textContent = "";
  $("own-result").textContent = "";
  delete $("own-result").dataset.kind;
  $("q-index").textContent = t("question", { i: question.index, n: question.total });
  $("q-category").textContent = question.category;
  $("q-text").textContent = question.text;
  const box = $("choices");
  box.replaceChildren();
  for (const choice of question.choices) {
    const tile = document.createElement(onChoice ? "button" : "div");
    tile.className = `tile tile-${choice.key}`;
    tile.dataset.key = choice.key;
    // The shape is an image named in words, so the tile's accessible name is "triangle A) Mozart": its visible
    // text with the shape's name in front (WCAG 2.5.3, label in name).
    const shape = document.createElement("span");
    shape.className = "shape";
    shape.setAttribute("role", "img");
    shape.setAttribute("aria-label", SHAPES[choice.key] ? t(`shape-${choice.key}`) : "");
    shape.textContent = SHAPES[choice.key] || "";
    const label = document.createElement("span");
    label.textContent = `${choice.key}) ${choice.text}`;
    tile.append(shape, label);
    if (onChoice) {
      tile.type = "button";
      tile.addEventListener("click", () => onChoice(tile.dataset.key, tile));
    }
    box.appendChild(tile);
  }
  show("answer-form", Boolean(onChoice) && question.choices.length === 0);
  lockAnswers(false);
  $("answer").type = "text";
  $("answer").inputMode = question.kind === "number" ? "decimal" : "text";
  $("answer").value = "";
  if (onChoice) {
    if (question.choices.length) box.firstChild.focus(); else $("answer").focus();
  }
  startCountdown(question.deadline, question.duration);
}

// "N of M answered", from the bot's <progress/>.
export function showProgress(progress) {
  if (progress.answered === null || progress.players === null) return;
  $("progress").textContent = t("answered", { a: progress.answered, n: progress.players });
}

// What the reveal meant for this player (protocol.ownResult), then its total and place (protocol.ownStanding):
// "… You: 120 points, place 734 of 2,000" when it is not on the board. A counted answer whose <result/> has not
// come yet shows nothing more than "answer received" until it comes.
function standingLine(standing) {
  if (!standing) return "";
  const values = { p: standing.points, r: formatCount(standing.rank), n: formatCount(standing.players) };
  return standing.onBoard ? t("result-total", values) : t("result-total-of", values);
}

export function ownResult(result, standing) {
  const line = result.kind === "pending" ? ""
    : result.kind === "correct" ? t("result-correct", { p: result.points, s: result.streak }) : t(`result-${result.kind}`);
  $("own-result").textContent = line && [line, standingLine(standing)].filter(Boolean).join(" ");
  $("own-result").dataset.kind = result.kind;
}

// Below the board, the player's own place when the bounded board does not show it.
export function ownStanding(standing) {
  $("own-standing").textContent = standing && !standing.onBoard ? standingLine(standing) : "";
}

// One answer per question: after it (or the reveal) the choices, the text box and its button are locked.
export function lockAnswers(locked) {
  for (const control of [...$("choices").children, ...$("answer-form").elements]) control.disabled = locked;
}

// The choice button for a key ("ABCD" or "1234" typed), or undefined.
export function choiceButton(index) { return $("choices").children[index]; }

export function hideQuestion() { show("question", false); }

function startCountdown(deadline, duration) {
  clearInterval(countdown);
  const bar = $("countdown");
  const tick = () => {
    const left = Math.max(0, deadline - Date.now());
    const share = Math.min(100, (100 * left) / (duration * 1000));
    $("seconds").textContent = t("seconds-left", { s: Math.ceil(left / 1000) });
    bar.style.width = `${share}%`;
    bar.parentElement.setAttribute("aria-valuenow", String(Math.round(share)));
    if (left <= 0) clearInterval(countdown);
  };
  tick();
  countdown = setInterval(tick, 200);
}

export function hint(text) { $("hint").textContent = text; }

export function received(text) { $("received").textContent = text; }

export function markChosen(button) { if (button) button.classList.add("chosen"); }

export function showReveal(reveal) {
  clearInterval(countdown);
  lockAnswers(true);
  // Each tile: how many picked it (live and sixbreak), and a tick on the right one (not colour alone).
  for (const tile of $("choices").children) {
    const choice = reveal.choices.find((c) => c.key === tile.dataset.key);
    if (!choice) continue;
    if (choice.correct) {
      tile.classList.add("correct");
      const tick = document.createElement("span");
      tick.className = "tick";
      tick.textContent = " ✓";
      tile.appendChild(tick);
    }
    if (choice.count !== null) {
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = t("picked", { c: choice.count });
      tile.appendChild(count);
    }
  }
  const box = $("reveal");
  box.replaceChildren();
  const head = document.createElement("p");
  head.className = "answer";
  head.textContent = t("answer", { a: reveal.answer });
  box.appendChild(head);
  const list = document.createElement("ul");
  list.className = "scorers";
  for (const scorer of reveal.scorers) {
    const li = document.createElement("li");
    li.textContent = `${scorer.nick}: +${t("points", { p: scorer.points })}`;
    list.appendChild(li);
  }
  const more = moreScorers(reveal);
  if (more) {
    const li = document.createElement("li");
    li.className = "more";
    li.textContent = t("more-scorers", { k: formatCount(more) });
    list.appendChild(li);
  }
  if (!list.children.length) list.textContent = t("nobody");
  box.appendChild(list);
  show("reveal");
}

function fillRanking(list, players) {
  list.replaceChildren();
  for (const player of players.filter((p) => p.nick !== notAPlayer)) {
    const li = document.createElement("li");
    li.dataset.nick = player.nick;
    li.dataset.points = String(player.points);
    // The bot ranks: equal points share a rank (1, 2, 2, 4); the list shows its number, not the position.
    if (Number.isInteger(player.rank) && player.rank > 0) {
      li.value = player.rank;
      li.dataset.rank = String(player.rank);
    }
    li.textContent = `${player.nick} — ${t("points", { p: player.points })}`;
    list.appendChild(li);
  }
}

export function showScores(scores) {
  fillRanking($("scores"), scores.players);
  // The board is the top few (the bot's board_size); how many play in all.
  const n = scores.playerCount;
  $("board-count").textContent = Number.isInteger(n) ? t("players-count", { n: formatCount(n) }) : "";
  show("scoreboard");
  if (scores.final) {
    fillRanking($("podium-list"), scores.players);
    hideQuestion();
    show("podium");
  }
}

export function showTop(top) { fillRanking($("top-list"), top.players); }

// The categories of the question language chosen in the start form.
export function showCategories(categories) {
  const select = $("category");
  select.replaceChildren(select.firstElementChild); // keep "any"
  const language = $("quiz-language").value;
  for (const category of categories.filter((c) => c.language === language)) {
    const option = document.createElement("option");
    option.value = option.textContent = category.name;
    select.appendChild(option);
  }
}

export function chatLine(nick, text) {
  const li = document.createElement("li");
  li.textContent = nick ? `${nick}: ${text}` : text;
  const log = $("chat-log");
  log.appendChild(li);
  while (log.childElementCount > CHAT_LINES) log.firstElementChild.remove();
  li.scrollIntoView({ block: "nearest" });
}
