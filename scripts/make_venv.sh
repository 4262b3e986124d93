#!/usr/bin/env bash
# Builds .venv/ from requirements.lock. The built environment (about 6 GB, mostly torch) is
# cached outside the repository under a name derived from the lock file's hash, so a fresh
# clone on the same machine only links it; .venv is then a symlink to the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), "nncourse needs Python 3.11"' \
  || { echo "error: nncourse needs Python 3.11 (found $("$python" --version 2>&1))" >&2; exit 1; }
hash=$(cat requirements.lock | sha256sum | cut -c1-16)
cache=${NNCOURSE_VENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nncourse}/venv-$hash
if [ ! -x "$cache/bin/python" ] || [ ! -f "$cache/.complete" ]; then
  echo "building the Python environment in $cache (first time only, a few minutes)"
  rm -rf "$cache"
  "$python" -m venv "$cache"
  # (pip warns about every local index folder it skips on some machines: not useful here)
  "$cache/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  "$cache/bin/python" -m pip install --quiet -r requirements.lock 2>&1 | grep -v "^WARNING: Location" || true
  "$cache/bin/python" -c "import nbgrader, torch, torchvision, mlxtend" \
    || { echo "error: installing requirements.lock failed" >&2; exit 1; }
  touch "$cache/.complete"
fi
if [ -e .venv ] && [ ! -L .venv ]; then
  echo "error: .venv exists and is not the cached environment; remove it and run make again" >&2
  exit 1
fi
ln -sfn "$cache" .venv
# The package itself is installed in editable mode, pointing at this checkout (the cache may be
# shared by several clones, so check where it points rather than trusting a stamp).
here=$(pwd -P)
where=$(cd / && "$here/.venv/bin/python" -c 'import nncourse, os; print(os.path.dirname(os.path.dirname(os.path.realpath(nncourse.__file__))))' 2>/dev/null || true)
# The `nncourse` program names the interpreter of the clone that installed it last (a clone
# since deleted, perhaps): it must be this one's.
shebang=$(head -1 .venv/bin/nncourse 2>/dev/null | cut -c3- || true)
if [ "$where" != "$here" ] || [ "$shebang" != "$here/.venv/bin/python" ]; then
  .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1 \
    | grep -vE "^WARNING: Location|!!|^ *$|wheel_obj|SetuptoolsDeprecationWarning|\*\*\*|^ {2,}" || true
  (cd / && "$here/.venv/bin/python" -c 'import nncourse') \
    || { echo "error: installing nncourse into .venv failed" >&2; exit 1; }
fi
