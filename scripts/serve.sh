#!/usr/bin/env bash
# Set up and run the whole stack on its embedded defaults (domain localhost, c2s 127.0.0.1:5222).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/boshcm serve "$@"
