#!/usr/bin/env bash
# Regenerates requirements.lock: installs the project's direct dependencies (pyproject.toml,
# with the test extra) into a scratch environment and records every installed version.
# torch and torchvision are pinned here because newer releases are multi-GB downloads.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch" build' EXIT
"$python" -m venv "$scratch/venv"
"$scratch/venv/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
"$scratch/venv/bin/python" -m pip install --quiet torch==2.14.1 torchvision==0.29.1 ".[test]" 2>&1 \
  | grep -v "^WARNING: Location" || true
{
  echo "# Pinned environment of the course tools (instructor side). Regenerate with scripts/lock.sh"
  "$scratch/venv/bin/python" -m pip freeze --all --exclude nncourse --exclude pip
} > requirements.lock
echo "wrote requirements.lock ($(grep -vc '^#' requirements.lock) packages)"
