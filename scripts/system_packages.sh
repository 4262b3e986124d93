#!/usr/bin/env bash
# Installs the system packages nncourse needs beyond Python (Linux only):
# - bubblewrap (bwrap): the sandbox that `nncourse grade` runs students' code in; without it,
#   grading refuses to run unless told --no-sandbox;
# - postgresql: the server programs (initdb, pg_ctl) that the tests start a throwaway
#   PostgreSQL gradebook with (tests/test_database.py). Grading itself needs no server;
# - chromium: the browser that Playwright drives in tests/test_browser.py (Formgrader,
#   feedback and JupyterLab pages, offline).
set -uo pipefail
[ "$(uname -s)" = Linux ] || exit 0

missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
{ command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } \
  || missing+=(postgresql)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ]; then
  sudo=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo="sudo -n"
else
  echo "warning: ${missing[*]} not installed and cannot be installed without root; install" \
       "them with your package manager (bubblewrap to grade in the sandbox, postgresql for" \
       "the database tests, chromium for the browser tests)" >&2
  exit 0
fi
echo "installing ${missing[*]}"
if command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
    || { $sudo apt-get update -qq >/dev/null 2>&1 \
         && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null; } \
    || echo "warning: could not install ${missing[*]}" >&2
elif command -v dnf >/dev/null; then
  packages=("${missing[@]/postgresql/postgresql-server}")
  $sudo dnf install -y -q "${packages[@]}" || echo "warning: could not install ${missing[*]}" >&2
else
  echo "warning: install ${missing[*]} with your package manager" >&2
fi
