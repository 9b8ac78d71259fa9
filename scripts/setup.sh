#!/usr/bin/env bash
# Installs what building and testing Vigie needs on a fresh Debian machine, only when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

missing=()
for pkg in libssl-dev pkg-config curl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "setup: a Rust toolchain (cargo) is required" >&2; exit 1; }
