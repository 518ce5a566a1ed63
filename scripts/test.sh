#!/usr/bin/env bash
# Set up (Python packages, npm packages, Prosody and Chromium from Debian) and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
.venv/bin/ruff check boshcm quizbot tests
.venv/bin/mypy
exec .venv/bin/pytest -q "$@"
