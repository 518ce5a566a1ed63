// The page's words in English and German, and t() to fill them in. Pure (no DOM): tests/js/i18n.test.mjs checks
// that both languages have every key and the same {placeholders}.

export const TEXT = {
  en: {
    title: "Quiz", language: "Language", welcome: "Play along", nickname: "Nickname", "play-guest": "Play as guest",
    "with-account": "Log in with an account", jid: "Address (name@server)", password: "Password", login: "Log in",
    choose: "Choose a game", create: "Create a game for friends", public: "Join the public quiz room",
    share: "Invite friends with this link:", copy: "Copy", lobby: "Players here", questions: "Questions",
    category: "Category", any: "any", "quiz-language": "Questions in", start: "Start the game",
    waiting: "Waiting for the room's owner to start a game…", "your-answer": "Your answer", send: "Send",
    scores: "Scores", podium: "Final podium", top: "All-time top list", chat: "Chat", message: "Message",
    connecting: "Connecting…", failed: "Could not connect.", authfail: "Login failed.",
    reconnecting: "Connection lost — reconnecting…", connected: "Connected.", received: "Answer received ✓",
    "logged-out": "Logged out — log in again to play on.",
    "sent-answer": "Answer sent…", question: "Question {i} of {n}", answer: "The answer: {a}",
    nobody: "Nobody scored.", points: "{p} points", "hint-label": "Hint: {h}", out: "{n} is out!",
    "pause-label": "Break until {t}", creating: "Creating your room…", "nick-taken": "That nickname is taken here.",
    "share-label": "Share link", copied: "Link copied.", "time-left": "Time left", choices: "Choices",
    pin: "Game PIN", "pin-optional": "Game PIN (if you have one)", "join-pin": "Join with the PIN",
    "pin-looking": "Looking for the game with PIN {pin}…", "pin-unknown": "No game has the PIN {pin}.",
    "pin-shown": "Game PIN: {pin}", answered: "{a} of {n} answered", "seconds-left": "{s} s left",
    "result-correct": "Correct! +{p} points · streak {s}", "result-wrong": "Not right this time.",
    "result-none": "No answer this time.", "result-total": "You: {p} points, place {r}", picked: "{c}×",
    "result-total-of": "You: {p} points, place {r} of {n}", "players-count": "{n} players",
    "more-scorers": "and {k} more",
    "shape-A": "triangle", "shape-B": "diamond", "shape-C": "circle",
    "shape-D": "square", "host-title": "Host view", "join-at": "Join at {url}", scan: "Scan to join",
    "open-host": "Host view for a projector", "game-running": "The game is on.", "game-ended": "The game is over.",
    "game-lobby": "A game is about to start.", "forget-me": "Log out and forget me",
    "get-ready": "Get ready: the first question comes in {s} s.",
  },
  de: {
    title: "Quiz", language: "Sprache", welcome: "Spiel mit", nickname: "Spitzname", "play-guest": "Als Gast spielen",
    "with-account": "Mit Konto anmelden", jid: "Adresse (name@server)", password: "Passwort", login: "Anmelden",
    choose: "Spiel wählen", create: "Spiel für Freunde erstellen", public: "Öffentlichem Quizraum beitreten",
    share: "Lade Freunde mit diesem Link ein:", copy: "Kopieren", lobby: "Mitspieler hier", questions: "Fragen",
    category: "Kategorie", any: "alle", "quiz-language": "Fragen auf", start: "Spiel starten",
    waiting: "Warte, bis der Raumbesitzer ein Spiel startet…", "your-answer": "Deine Antwort", send: "Senden",
    scores: "Punktestand", podium: "Siegertreppchen", top: "Ewige Bestenliste", chat: "Chat", message: "Nachricht",
    connecting: "Verbinde…", failed: "Verbindung fehlgeschlagen.", authfail: "Anmeldung fehlgeschlagen.",
    reconnecting: "Verbindung unterbrochen — verbinde neu…", connected: "Verbunden.",
    "logged-out": "Abgemeldet — melde dich wieder an, um weiterzuspielen.",
    received: "Antwort angekommen ✓", "sent-answer": "Antwort gesendet…", question: "Frage {i} von {n}",
    answer: "Die Antwort: {a}", nobody: "Niemand hat gepunktet.", points: "{p} Punkte", "hint-label": "Tipp: {h}",
    out: "{n} ist raus!", "pause-label": "Pause bis {t}", creating: "Dein Raum wird erstellt…",
    "nick-taken": "Dieser Spitzname ist hier schon vergeben.",
    "share-label": "Einladungslink", copied: "Link kopiert.", "time-left": "Verbleibende Zeit", choices: "Antworten",
    pin: "Spiel-PIN", "pin-optional": "Spiel-PIN (falls du eine hast)", "join-pin": "Mit der PIN beitreten",
    "pin-looking": "Suche das Spiel mit der PIN {pin}…", "pin-unknown": "Kein Spiel hat die PIN {pin}.",
    "pin-shown": "Spiel-PIN: {pin}", answered: "{a} von {n} haben geantwortet", "seconds-left": "noch {s} s",
    "result-correct": "Richtig! +{p} Punkte · Serie {s}", "result-wrong": "Diesmal nicht richtig.",
    "result-none": "Diesmal keine Antwort.", "result-total": "Du: {p} Punkte, Platz {r}", picked: "{c}×",
    "result-total-of": "Du: {p} Punkte, Platz {r} von {n}", "players-count": "{n} Spieler",
    "more-scorers": "und {k} weitere",
    "shape-A": "Dreieck", "shape-B": "Raute", "shape-C": "Kreis",
    "shape-D": "Quadrat", "host-title": "Host-Ansicht", "join-at": "Mitspielen unter {url}",
    scan: "Zum Mitspielen scannen", "open-host": "Host-Ansicht für den Beamer", "game-running": "Das Spiel läuft.",
    "game-ended": "Das Spiel ist vorbei.", "game-lobby": "Gleich beginnt ein Spiel.",
    "forget-me": "Abmelden und vergessen", "get-ready": "Gleich geht's los: Die erste Frage kommt in {s} s.",
  },
};

export const LANGUAGES = Object.keys(TEXT);
let current = "en";

// Switches to a language the page has ("de", "en"); English for any other.
export function setLanguage(lang) {
  current = Object.hasOwn(TEXT, lang) ? lang : "en";
  return current;
}

export const language = () => current;

// Counts as the language writes them: "2,000" / "2.000" (what Intl.NumberFormat writes for integers in both
// languages). Not with Intl itself: a tab's first NumberFormat loads the locale's data, 100-180 ms of Chromium's
// main thread on a slow machine, and the first count comes with the first scoreboard, just before a question.
const GROUP_SEPARATOR = { en: ",", de: "." };

export function formatCount(n) {
  const digits = String(Math.trunc(Math.abs(Number(n))));
  return `${Number(n) < 0 ? "-" : ""}${digits.replace(/\B(?=(\d{3})+$)/g, GROUP_SEPARATOR[current])}`;
}

export function t(key, values = {}) {
  const text = TEXT[current][key] || TEXT.en[key] || key;
  return text.replace(/\{(\w+)\}/g, (_, name) => values[name] ?? "");
}
