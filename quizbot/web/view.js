// What the page shows: DOM rendering of index.html's sections from plain objects (protocol.js reads the
// payloads), in the words of i18n.js. Text is text: everything goes in with textContent, never markup.
import { setLanguage, t } from "./i18n.js";

const CHAT_LINES = 200; // a phone keeps the last ones; a long evening's chat does not pile up in the DOM

export const $ = (id) => document.getElementById(id);

export function show(id, visible = true) { $(id).hidden = !visible; }

export function applyLanguage(lang) {
  const chosen = setLanguage(lang);
  document.documentElement.lang = chosen;
  $("language").value = chosen;
  $("quiz-language").value = chosen;
  for (const element of document.querySelectorAll("[data-t]")) element.textContent = t(element.dataset.t);
  return chosen;
}

export function loginStatus(key) { $("login-status").textContent = t(key); }

export function connectionStatus(key) { $("connection").textContent = t(key); }

// "up" or "reconnecting", for the styles and the tests.
export function connectionState(value) { document.body.dataset.connection = value; }

export function showRoom(room) {
  show("login", false);
  show("home", false);
  show("room");
  $("room-title").textContent = room.split("@")[0];
  const link = new URL(location.href);
  link.search = "?room=" + encodeURIComponent(room);
  $("share-link").value = link.toString();
}

// The lobby's controls: owners start games, others wait for them.
export function showStartForm(owner) {
  show("start-form", owner);
  show("waiting", !owner);
}

// --- players in the room -----------------------------------------------------------------------------------

export function addOccupant(nick) {
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
  if (state === "running") {
    show("lobby", false);
    show("podium", false);
  }
  if (state === "ended" || state === "none") show("lobby");
}

let countdown = null;

// onChoice(key, button) when a choice is clicked.
export function showQuestion(question, onChoice) {
  show("question");
  show("reveal", false);
  $("received").textContent = "";
  $("hint").textContent = "";
  $("q-index").textContent = t("question", { i: question.index, n: question.total });
  $("q-category").textContent = question.category;
  $("q-text").textContent = question.text;
  const box = $("choices");
  box.replaceChildren();
  for (const choice of question.choices) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.key = choice.key;
    button.textContent = `${choice.key}) ${choice.text}`;
    button.addEventListener("click", () => onChoice(button.dataset.key, button));
    box.appendChild(button);
  }
  show("answer-form", question.choices.length === 0);
  lockAnswers(false);
  $("answer").type = "text";
  $("answer").inputMode = question.kind === "number" ? "decimal" : "text";
  $("answer").value = "";
  if (question.choices.length) box.firstChild.focus(); else $("answer").focus();
  startCountdown(question.deadline, question.duration);
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
  for (const b of $("choices").children) {
    const choice = reveal.choices.find((c) => c.key === b.dataset.key);
    if (choice && choice.correct) b.classList.add("correct");
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
  if (!reveal.scorers.length) list.textContent = t("nobody");
  box.appendChild(list);
  show("reveal");
}

function fillRanking(list, players) {
  list.replaceChildren();
  for (const player of players) {
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
  for (const category of categories.filter((c) => c.language === $("quiz-language").value)) {
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
