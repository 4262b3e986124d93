#!/usr/bin/env bash
# Installs the system packages nncourse needs beyond Python: bubblewrap (bwrap), the sandbox
# that `nncourse grade` runs students' code in (Linux only). Without it, grading refuses to
# run unless told --no-sandbox.
set -uo pipefail
[ "$(uname -s)" = Linux ] || exit 0
command -v bwrap >/dev/null && exit 0
if [ "$(id -u)" = 0 ]; then
  sudo=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo="sudo -n"
else
  echo "warning: bubblewrap is not installed and cannot be installed without root;" \
       "install it (apt-get install bubblewrap) to grade in the sandbox" >&2
  exit 0
fi
if command -v apt-get >/dev/null; then
  echo "installing bubblewrap (the grading sandbox)"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq bubblewrap >/dev/null 2>&1 \
    || { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq bubblewrap >/dev/null; } \
    || echo "warning: could not install bubblewrap" >&2
elif command -v dnf >/dev/null; then
  $sudo dnf install -y -q bubblewrap || echo "warning: could not install bubblewrap" >&2
else
  echo "warning: install bubblewrap with your package manager to grade in the sandbox" >&2
fi
