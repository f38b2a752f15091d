#!/usr/bin/env bash
# Installs the system tools mosaic and its tests need (tmux 3.2+) when they are missing.
set -euo pipefail
need=()
command -v tmux >/dev/null 2>&1 || need+=(tmux)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${need[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "please install: ${need[*]} (no sudo available)" >&2; exit 1; }
  sudo="sudo"
fi
if command -v apt-get >/dev/null 2>&1; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
elif command -v dnf >/dev/null 2>&1; then
  $sudo dnf install -y "${need[@]}"
elif command -v pacman >/dev/null 2>&1; then
  $sudo pacman -S --noconfirm "${need[@]}"
else
  echo "please install: ${need[*]}" >&2
  exit 1
fi
