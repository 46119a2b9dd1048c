// ESLint flat config for the static site (web/): recommended rules, browser globals, ES modules.
// `make lint` runs it; the site has no bundler, so what is linted is what ships.
import js from "@eslint/js";
import globals from "globals";

export default [
  // Only the site is ours to lint: virtualenvs and build output hold third-party bundles.
  { ignores: ["web/vendor/**", "node_modules/**", ".venv/**", ".venv-*/**", "build/**", "bench/**", "test-artifacts/**", ".aws-sam/**"] },
  js.configs.recommended,
  {
    files: ["web/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: { ...globals.browser },
    },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      // The site builds DOM with dom.js's h(): parsing HTML strings would bypass the CSP's intent.
      "no-restricted-properties": ["error",
        { property: "innerHTML", message: "Build nodes with h() (dom.js); never parse HTML." },
        { property: "outerHTML", message: "Build nodes with h() (dom.js); never parse HTML." },
        { property: "insertAdjacentHTML", message: "Build nodes with h() (dom.js); never parse HTML." },
        { object: "document", property: "write", message: "Build nodes with h() (dom.js)." }],
      "no-eval": "error",
      "no-implied-eval": "error",
      "eqeqeq": ["error", "always"],
      "no-unused-vars": ["error", { args: "after-used", caughtErrors: "none" }],
      "prefer-const": "error",
      "no-var": "error",
    },
  },
  {
    files: ["eslint.config.js"],
    languageOptions: { sourceType: "module", globals: { ...globals.node } },
  },
];
