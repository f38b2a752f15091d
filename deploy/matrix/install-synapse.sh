#!/usr/bin/env bash
# Installs Synapse (the Matrix homeserver, from PyPI) into a virtualenv outside the clone, for
# the Matrix tests and for a small self-hosted setup (see docs/connectors/matrix.md). Idempotent
# and fast when it is already there. Prints the venv's bin directory.
#   MOSAIC_SYNAPSE_VENV   where the venv goes (default ~/.cache/mosaic-synapse; a homeserver you
#                         keep running is better given its own, so a version change for the
#                         tests never replaces it under you)
#   MOSAIC_SYNAPSE_VERSION the pinned version
set -euo pipefail
version="${MOSAIC_SYNAPSE_VERSION:-1.163.2}"
venv="${MOSAIC_SYNAPSE_VENV:-${HOME:-/tmp}/.cache/mosaic-synapse}"
bin="$venv/bin"
installed() {
  [ -x "$bin/synapse_homeserver" ] && [ "$(cat "$venv/.mosaic-version" 2>/dev/null)" = "$version" ]
}
if installed; then
  echo "$bin"
  exit 0
fi
# One installer at a time (tests start homeservers in parallel on a fresh machine).
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if installed; then
  echo "$bin"
  exit 0
fi
echo "installing Synapse $version into $venv (about a minute)" >&2
made=""
for p in python3 python3.13 python3.12 python3.11 python3.10; do
  # A usable interpreter: 3.10 or newer, with venv (pyenv shims of versions not selected fail here).
  if "$p" -c 'import sys, venv; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1; then
    rm -rf "$venv"
    if "$p" -m venv "$venv" >/dev/null 2>&1; then made="$p"; break; fi
  fi
done
[ -n "$made" ] || { echo "Synapse needs Python 3.10 or newer with venv (apt-get install python3-venv)" >&2; exit 1; }
"$bin/pip" install --quiet --disable-pip-version-check "matrix-synapse==$version" >&2
echo "$version" > "$venv/.mosaic-version"
echo "$bin"
