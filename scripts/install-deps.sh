#!/usr/bin/env bash
# Installs what Baton needs on a Debian/Ubuntu machine with Node 20: the Debian packages below
# through apt when one is missing (as root; otherwise says how), and the npm dependencies from
# the lock when node_modules is missing or older than package-lock.json.
#   redis-server  the one stateful dependency (baton dev, tests)
#   openssl       makes throwaway certificates for the TLS tests
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing ${missing[*]} with apt-get..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing: ${missing[*]}; install with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "Installing npm dependencies from package-lock.json..." >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
