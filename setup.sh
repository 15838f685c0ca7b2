#!/usr/bin/env bash
# Creates .venv with everything the workflow and its tests need (CPU build of torch).
# Idempotent: when requirements.txt and pyproject.toml are unchanged it does nothing.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup.sh: Python 3.11 or newer is needed ($PY is $("$PY" -V 2>&1)); set PYTHON=..." >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.motionedit-installed
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup.sh: installing into .venv (first run takes about a minute)" >&2
  .venv/bin/python -m pip install --disable-pip-version-check -q -r requirements.txt 2> >(grep -v "is ignored: it is neither" >&2)
  .venv/bin/python -m pip install --disable-pip-version-check -q --no-deps -e .
  echo "$want" > "$stamp"
fi
