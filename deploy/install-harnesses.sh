#!/usr/bin/env bash
# TEST SUPPORT: installs the real harnesses (Claude Code, Codex, pi) from npm into a cache outside
# the clone, pinned to the versions the real-harness tests were written against, and prints the
# folder holding their executables. Idempotent and fast when they are there. The tests run them
# against mosaic's scripted model server (crates/scripted-model): no account, no internet.
#
#   bash deploy/install-harnesses.sh        # -> prints e.g. /root/.cache/mosaic-harnesses/node_modules/.bin
set -euo pipefail

PREFIX="${MOSAIC_HARNESS_CACHE:-${HOME:-/tmp}/.cache/mosaic-harnesses}"
PACKAGES=(
  "@anthropic-ai/claude-code@2.1.332"
  "@openai/codex@0.171.0"
  "@mariozechner/pi-coding-agent@0.73.1"
)

command -v npm >/dev/null 2>&1 || {
  echo "the real-harness tests need Node.js 20+ with npm (apt-get install nodejs npm, or nodesource)" >&2
  exit 1
}

stamp="$PREFIX/.installed"
want="${PACKAGES[*]}"
if [ -r "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$PREFIX/node_modules/.bin/claude" ] &&
  [ -x "$PREFIX/node_modules/.bin/codex" ] && [ -x "$PREFIX/node_modules/.bin/pi" ]; then
  echo "$PREFIX/node_modules/.bin"
  exit 0
fi

mkdir -p "$PREFIX"
echo "installing ${PACKAGES[*]} into $PREFIX" >&2
npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "${PACKAGES[@]}" >&2
printf '%s' "$want" >"$stamp"
echo "$PREFIX/node_modules/.bin"
