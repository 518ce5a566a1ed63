// The page's words (quizbot/web/i18n.js): both languages complete, and every word the page uses exists.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { test } from "node:test";

import { LANGUAGES, TEXT, formatCount, language, setLanguage, t } from "../../quizbot/web/i18n.js";

const WEB = new URL("../../quizbot/web/", import.meta.url);
const placeholders = (text) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

test("English and German have the same keys and the same placeholders", () => {
  assert.deepEqual(LANGUAGES, ["en", "de"]);
  assert.deepEqual(Object.keys(TEXT.de).sort(), Object.keys(TEXT.en).sort());
  for (const key of Object.keys(TEXT.en)) {
    assert.deepEqual(placeholders(TEXT.de[key]), placeholders(TEXT.en[key]), key);
    assert.ok(TEXT.de[key].trim() && TEXT.en[key].trim(), key);
  }
});

test("every word index.html and the modules ask for exists", () => {
  const html = readFileSync(new URL("index.html", WEB), "utf-8");
  const used = [...html.matchAll(/data-t(?:-label)?="([^"]+)"/g)].map((m) => m[1]);
  for (const file of readdirSync(WEB).filter((name) => name.endsWith(".js"))) {
    const source = readFileSync(new URL(file, WEB), "utf-8");
    used.push(...[...source.matchAll(/\bt\("([^"]+)"/g)].map((m) => m[1]));
    used.push(...[...source.matchAll(/\b(?:loginStatus|connectionStatus|homeStatus)\("([^"]+)"/g)].map((m) => m[1]));
    // Keys built from a prefix: `result-${kind}` and `shape-${key}` need every kind and every tile.
    if (source.includes("`result-${")) used.push("result-correct", "result-wrong", "result-none");
    if (source.includes("`shape-${")) used.push("shape-A", "shape-B", "shape-C", "shape-D");
  }
  assert.ok(used.length > 40, used);
  for (const key of new Set(used)) assert.ok(Object.hasOwn(TEXT.en, key), `no text for "${key}"`);
});

test("placeholders are filled, and missing values leave nothing behind", () => {
  setLanguage("de");
  assert.equal(language(), "de");
  assert.equal(t("question", { i: 2, n: 10 }), "Frage 2 von 10");
  assert.equal(t("points", {}), " Punkte");
  setLanguage("en");
  assert.equal(t("answer", { a: "Tom's <b>" }), "The answer: Tom's <b>");
  assert.equal(t("no-such-key"), "no-such-key");
});

test("a language the page does not have falls back to English", () => {
  for (const wish of ["fr", "", "constructor", "__proto__", undefined]) {
    assert.equal(setLanguage(wish), "en");
    assert.equal(t("send"), "Send");
  }
});

test("counts are written as Intl writes them in each language, without Intl", () => {
  const RealNumberFormat = Intl.NumberFormat;
  const expected = Object.fromEntries(LANGUAGES.map((lang) => [lang, new RealNumberFormat(lang)]));
  let made = 0;
  Intl.NumberFormat = function (...args) { made += 1; return new RealNumberFormat(...args); };
  try {
    for (const lang of LANGUAGES) {
      setLanguage(lang);
      for (const n of [0, 7, 42, 999, 1000, 2000, 12345, 999999, 1000000, 123456789, -2000]) {
        assert.equal(formatCount(n), expected[lang].format(n), `${lang} ${n}`);
      }
      assert.equal(formatCount("2000"), expected[lang].format(2000), `${lang} "2000"`);
    }
  } finally {
    Intl.NumberFormat = RealNumberFormat;
    setLanguage("en");
  }
  // A tab's first formatter costs 100-180 ms of its main thread, at the first scoreboard, before a question.
  assert.equal(made, 0);
});
