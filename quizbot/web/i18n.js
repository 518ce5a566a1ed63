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
    "sent-answer": "Answer sent…", question: "Question {i} of {n}", answer: "The answer: {a}",
    nobody: "Nobody scored.", points: "{p} points", "hint-label": "Hint: {h}", out: "{n} is out!",
    "pause-label": "Break until {t}", creating: "Creating your room…", "nick-taken": "That nickname is taken here.",
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
    received: "Antwort angekommen ✓", "sent-answer": "Antwort gesendet…", question: "Frage {i} von {n}",
    answer: "Die Antwort: {a}", nobody: "Niemand hat gepunktet.", points: "{p} Punkte", "hint-label": "Tipp: {h}",
    out: "{n} ist raus!", "pause-label": "Pause bis {t}", creating: "Dein Raum wird erstellt…",
    "nick-taken": "Dieser Spitzname ist hier schon vergeben.",
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

export function t(key, values = {}) {
  const text = TEXT[current][key] || TEXT.en[key] || key;
  return text.replace(/\{(\w+)\}/g, (_, name) => values[name] ?? "");
}
