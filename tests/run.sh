#!/usr/bin/env bash
# The whole test suite: installs what the tests need, checks formatting and lints, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
# The real harnesses (Claude Code, Codex, pi) from npm, cached outside the clone, for the
# real-harness tests (they run against mosaic's scripted model server: no account, no internet).
bash deploy/install-harnesses.sh >/dev/null
# Synapse (the Matrix homeserver) from PyPI into a cached virtualenv, for the Matrix tests (each
# starts a private homeserver on 127.0.0.1).
bash deploy/matrix/install-synapse.sh >/dev/null
# strace, for a test that watches the daemon sync a chat message before its 202 (tests/adv_s8.rs).
if ! command -v strace >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq strace >/dev/null
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-/tmp}/.cache/mosaic-target}"
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all -- --check
else
  echo "warning: rustfmt is not installed; skipping the format check" >&2
fi
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
else
  echo "warning: clippy is not installed; skipping the lints" >&2
fi
cargo test --workspace --all-features
