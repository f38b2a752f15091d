#!/usr/bin/env bash
# The main job on a fresh machine: install what mosaic needs, build it, create a fleet from the
# `general` preset (harnesses found on PATH, else the built-in demo agent), start it, show it.
# Idempotent: running it again keeps your roster edits and starts only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-/tmp}/.cache/mosaic-target}"
cargo build --quiet --bin mosaic
# Installed where a user's PATH usually looks (override with MOSAIC_BIN_DIR); the agents are
# given this absolute path (MOSAIC_BIN) either way.
bin_dir="${MOSAIC_BIN_DIR:-$HOME/.local/bin}"
mkdir -p "$bin_dir"
install -m 0755 "$CARGO_TARGET_DIR/debug/mosaic" "$bin_dir/mosaic.new"
mv -f "$bin_dir/mosaic.new" "$bin_dir/mosaic"
mosaic="$bin_dir/mosaic"
echo "Installed mosaic to $mosaic."
case ":$PATH:" in
  *":$bin_dir:"*) ;;
  *) echo "note: $bin_dir is not on your PATH; add it (e.g. in ~/.profile: export PATH=\"$bin_dir:\$PATH\") to type \`mosaic\`." ;;
esac
"$mosaic" fleet install --completions-dir "${XDG_DATA_HOME:-$HOME/.local/share}/mosaic/completions" >/dev/null
"$mosaic" fleet init --preset "${MOSAIC_PRESET:-general}" --yes
"$mosaic" fleet start
"$mosaic" fleet ps
state="${MOSAIC_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/mosaic}"
if [ ! -f "$state/daemon.json" ] || ! kill -0 "$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$state/daemon.json")" 2>/dev/null; then
  mkdir -p "$state"
  (umask 077 && touch "$state/up.log") # the daemon's log is private, like its state
  nohup "$mosaic" up >>"$state/up.log" 2>&1 &
  # daemon.json appears when the API is up, and says "started" once the fleet is.
  for _ in $(seq 1 300); do grep -qs '"fleet":"started"' "$state/daemon.json" && break; sleep 0.1; done
fi
echo
echo "The daemon runs (log: $state/up.log). mosaic is at $mosaic. Also try:"
echo "  $mosaic fleet send helper 'hello'  # type into an agent"
echo "  $mosaic fleet attach mos           # look in (detach with C-b d)"
echo "  $mosaic fleet stop                 # stop the fleet"
if [ -t 0 ]; then
  exec "$mosaic" chat
else
  echo "  $mosaic chat                       # talk to the orchestrator"
fi
