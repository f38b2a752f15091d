#!/usr/bin/env bash
# The main job on a fresh machine: install what mosaic needs, build it, create a fleet from the
# `general` preset (harnesses found on PATH, else the built-in demo agent), start it, show it.
# Idempotent: running it again keeps your roster edits and starts only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mosaic-target}"
cargo build --quiet --bin mosaic
mosaic="$CARGO_TARGET_DIR/debug/mosaic"
"$mosaic" fleet install --completions-dir "${XDG_DATA_HOME:-$HOME/.local/share}/mosaic/completions" >/dev/null
"$mosaic" fleet init --preset "${MOSAIC_PRESET:-general}" --yes
"$mosaic" fleet start
"$mosaic" fleet ps
echo
echo "mosaic is at $mosaic. Try:"
echo "  $mosaic fleet send mos 'hello'    # type into the orchestrator"
echo "  $mosaic fleet logs mos            # read its pane"
echo "  $mosaic fleet attach mos          # look in (detach with C-b d)"
echo "  $mosaic fleet stop                # stop the fleet"
