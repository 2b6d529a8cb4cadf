#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine.
#
# Installs what the tests need when it is missing (redis-server, from Debian's packages), then runs
# `cargo test --workspace`. The tests start their own redis-server processes on free loopback
# ports; nothing needs to be running beforehand. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to install: $*" >&2; return 1
  fi
}

need_packages=()
command -v redis-server >/dev/null || need_packages+=(redis-server)
if [ ${#need_packages[@]} -gt 0 ]; then
  echo "installing: ${need_packages[*]}" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_packages[@]}"
fi
# Debian's package may start a system-wide redis-server on 6379; the tests do not use it.

exec cargo test --workspace "$@"
