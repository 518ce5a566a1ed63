#!/usr/bin/env bash
# Set up (Python packages, npm packages, Prosody, Chromium and nginx from Debian) and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
.venv/bin/ruff check boshcm quizbot tests
.venv/bin/mypy
# The quiz page's own JavaScript modules (quizbot/web/*.js): eslint (eslint.config.js), then the pure ones under
# node's test runner: tests/js/*.test.mjs.
npm run --silent lint:js
npm run --silent test:js
# One worker per core and one more (the browser and interop tests spend much of their time waiting); a file's
# tests stay together (they share fixtures such as a running Prosody).
# tests/packaging builds the sdist and wheel (python -m build) and smoke-tests the wheel in a fresh venv.
exec .venv/bin/pytest -q -n "$(( $(nproc) + 1 ))" --dist loadfile "$@"
