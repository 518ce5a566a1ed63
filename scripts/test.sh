#!/usr/bin/env bash
# Set up (Python packages, npm packages, Prosody, ejabberd, Chromium and nginx from Debian) and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test

# The static checks and the page's JavaScript unit tests (quizbot/web/*.js: eslint with eslint.config.js, the pure
# modules under node's test runner, tests/js/*.test.mjs) run beside pytest: they use the CPU while the browser and
# interop tests wait. Their output follows pytest's; any failure fails the run.
checks_log=$(mktemp)
trap 'rm -f "$checks_log"' EXIT
( .venv/bin/ruff check boshcm quizbot tests && .venv/bin/mypy \
  && npm run --silent lint:js && npm run --silent test:js && echo "checks: ruff, mypy, eslint, node tests passed" ) \
  >"$checks_log" 2>&1 &
checks=$!

# Compiled once, here, and kept: every pytest worker and every `boshcm serve` or bot process a test starts would
# otherwise compile boshcm, quizbot and the test modules from source again (and pytest rewrite the tests' asserts
# again), which was a tenth of the suite's CPU where PYTHONDONTWRITEBYTECODE is set.
unset PYTHONDONTWRITEBYTECODE
.venv/bin/python -m compileall -q -j 0 boshcm quizbot tests >/dev/null

# Two workers per core (the browser and interop tests spend most of their time waiting); a file's tests stay
# together (they share fixtures such as a running Prosody or ejabberd cluster).
# tests/packaging builds the sdist and wheel (python -m build) and smoke-tests the wheel in a fresh venv.
status=0
.venv/bin/pytest -q -n "$(( $(nproc) * 2 ))" --dist loadfile "$@" || status=$?
wait "$checks" || status=1
cat "$checks_log"
exit "$status"
