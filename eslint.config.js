// ESLint (flat config): the recommended rules, no style rules. The quiz page's modules run in the browser, its
// tests and this file in node. `npm run lint:js`; scripts/test.sh runs it.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["quizbot/web/vendor/", "node_modules/", "tests/interop/js/"] },
  js.configs.recommended,
  {
    files: ["quizbot/web/**/*.js"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: { ...globals.browser } },
  },
  {
    files: ["tests/js/**/*.mjs", "eslint.config.js"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: { ...globals.node } },
  },
];
