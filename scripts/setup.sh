#!/usr/bin/env bash
# Shared set-up: a virtual environment in .venv with boshcm installed (editable).
# Usage: scripts/setup.sh [--test]   (--test adds the test extra, Debian peers and npm packages)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=false
[ "${1:-}" = "--test" ] && want_test=true

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=false
apt_install() {  # apt_install PACKAGE... : only what is missing
  local missing=()
  for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || { echo "setup: please install: ${missing[*]}" >&2; exit 1; }
  if ! $apt_updated; then as_root apt-get update -qq; apt_updated=true; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

python=${PYTHON:-python3}
"$python" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' 2>/dev/null || {
  echo "setup: boshcm needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv 2>/dev/null || { apt_install python3-venv; rm -rf .venv; "$python" -m venv .venv; }
fi
.venv/bin/python -m pip install -q --upgrade pip
if $want_test; then
  # Real peers for the interop tests: Prosody and ejabberd (reference servers; ejabberd also as the off-board
  # cluster), Chromium (browser), nginx (the documented reverse-proxy site and the round-robin front), Node.
  if command -v dpkg >/dev/null; then
    apt_install prosody ejabberd chromium go-sendxmpp nginx-light openssl
    # Node may come from elsewhere (e.g. NodeSource, which bundles npm); only install Debian's when absent.
    command -v npm >/dev/null || apt_install nodejs npm
  fi
  # JavaScript clients for the interop tests (StanzaJS needs a browser bundle built from it), installed while pip
  # works: the two are independent and each spends much of its time waiting on files.
  ( npm install --silent --no-audit --no-fund && npm run --silent build:test-clients ) &
  npm_install=$!
  .venv/bin/python -m pip install -q -e '.[test]'
  wait "$npm_install"
else
  # With the `fast` extra: `boshcm serve` runs on uvloop where it is installed (boshcm/app.py), as the benchmarks do.
  .venv/bin/python -m pip install -q -e '.[fast]'
  # Strophe.js for the browser quiz page, from package.json/package-lock.json.
  if ! command -v npm >/dev/null && command -v dpkg >/dev/null; then apt_install nodejs npm; fi
  npm install --silent --no-audit --no-fund --omit=dev
fi
# The quiz page's Strophe.js, the QR code generator and their licences become package data (quizbot/web/vendor/,
# not in git): served from there in a checkout and shipped in the wheel (`python -m build` after this script).
mkdir -p quizbot/web/vendor
cp node_modules/strophe.js/dist/strophe.umd.min.js quizbot/web/vendor/
cp node_modules/strophe.js/LICENSE.txt quizbot/web/vendor/strophe.js-LICENSE.txt
# The host view's QR code generator (an ES module); its licence is the notice at the top of the file.
cp node_modules/qrcode-generator/dist/qrcode.mjs quizbot/web/vendor/
sed -n '1,16p' node_modules/qrcode-generator/dist/qrcode.mjs > quizbot/web/vendor/qrcode-generator-LICENSE.txt
