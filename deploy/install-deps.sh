#!/usr/bin/env bash
# Installs the system tools mosaic and its tests need: tmux 3.5 or newer. Idempotent and fast when
# they are already there (tests/run.sh calls it on every run).
#
# Why 3.5: tmux 3.3a (Debian 12's default) crashes (SIGSEGV, every agent lost) when a pane whose
# program turned on focus reporting (Claude Code, Codex) dies while a control client is attached and
# its session is killed. tmux 3.5a does not. Debian 12 ships 3.5a in bookworm-backports.
set -euo pipefail

TMUX_MIN_MAJOR=3
TMUX_MIN_MINOR=5

# "tmux 3.3a" / "tmux next-3.6" / "tmux 3.5a" -> 0 when at least TMUX_MIN, else 1.
tmux_new_enough() {
  local v major minor
  v=$(tmux -V 2>/dev/null) || return 1
  v=${v#tmux }
  v=${v#next-}
  major=${v%%.*}
  minor=${v#*.}
  minor=${minor%%[!0-9]*}
  [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] || return 1
  ((major > TMUX_MIN_MAJOR || (major == TMUX_MIN_MAJOR && minor >= TMUX_MIN_MINOR)))
}

if tmux_new_enough; then
  exit 0
fi

have=$(tmux -V 2>/dev/null || echo "no tmux")
echo "mosaic needs tmux ${TMUX_MIN_MAJOR}.${TMUX_MIN_MINOR} or newer (found: ${have}); installing it" >&2

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "please install tmux ${TMUX_MIN_MAJOR}.${TMUX_MIN_MINOR}+ (no sudo available)" >&2
    exit 1
  }
  sudo="sudo"
fi

os_id="" os_codename=""
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  . /etc/os-release
  os_id=${ID:-}
  os_codename=${VERSION_CODENAME:-}
fi

if [ "$os_id" = debian ] && [ "$os_codename" = bookworm ]; then
  # Debian 12: tmux 3.5a from bookworm-backports.
  if ! grep -rqsE '^[^#]*(bookworm-backports)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" |
      $sudo tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -t bookworm-backports tmux
elif command -v apt-get >/dev/null 2>&1; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq tmux
elif command -v dnf >/dev/null 2>&1; then
  $sudo dnf install -y tmux
elif command -v pacman >/dev/null 2>&1; then
  $sudo pacman -S --noconfirm tmux
elif command -v brew >/dev/null 2>&1; then
  brew install tmux
fi

if ! tmux_new_enough; then
  echo "mosaic needs tmux ${TMUX_MIN_MAJOR}.${TMUX_MIN_MINOR} or newer; this system's package manager gives $(tmux -V 2>/dev/null || echo 'no tmux')." >&2
  echo "Install tmux ${TMUX_MIN_MAJOR}.${TMUX_MIN_MINOR}+ from your distribution's backports or from source (https://github.com/tmux/tmux/releases): older tmux crashes when a focus-reporting pane dies under a control client." >&2
  exit 1
fi
echo "installed $(tmux -V)" >&2
