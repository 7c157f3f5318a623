#!/usr/bin/env bash
# Installs what Baton needs on a Debian/Ubuntu machine with Node 20: redis-server through apt
# when it is missing (as root; otherwise says how), and the npm dependencies from the lock
# when node_modules is missing or older than package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing redis-server with apt-get..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is missing; install it with: sudo apt-get install -y redis-server" >&2
    exit 1
  fi
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "Installing npm dependencies from package-lock.json..." >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
