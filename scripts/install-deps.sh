#!/usr/bin/env bash
# Installs what Baton needs on a Debian/Ubuntu machine with Node 20: the Debian packages below
# through apt when one is missing (as root; otherwise says how), and the npm dependencies from
# the lock when node_modules is missing or older than package-lock.json.
#   redis-server            the one stateful dependency (baton dev, tests)
#   redis-tools             redis-cli, which forms the tests' Redis Cluster (`redis-cli --cluster create`);
#                           a dependency of Debian's redis-server, listed for systems where it is not
#   protobuf-compiler       protoc, generates the Python client stubs in test/interop
#   protobuf-compiler-grpc  grpc_python_plugin for those stubs
#   python3-grpcio, python3-protobuf   run the Python client with Debian's /usr/bin/python3
#     (PyPI's grpcio-tools is not needed; a pyenv python3 first on PATH does not see these)
#   prometheus              for promtool: every process's /metrics must pass `promtool check metrics`
#   golang-go, golang-google-grpc-dev, golang-google-protobuf-dev, protoc-gen-go, protoc-gen-go-grpc
#                           build and run the Go client of test/interop offline (Debian's Go modules)
#   zsh                     the completion tests load `baton completion zsh` in a real zsh
#   lua-check               luacheck, which `npm run lint` runs over the Redis scripts (*.lua)
# All but redis-server and redis-tools serve only the interop, telemetry and completion tests and the lint:
# without root they are reported, and the rest goes on.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
interop=()
[ -x /usr/bin/protoc ] || interop+=(protobuf-compiler)
[ -x /usr/bin/grpc_python_plugin ] || interop+=(protobuf-compiler-grpc)
/usr/bin/python3 -c 'import grpc' >/dev/null 2>&1 || interop+=(python3-grpcio)
/usr/bin/python3 -c 'import google.protobuf' >/dev/null 2>&1 || interop+=(python3-protobuf)
[ -x /usr/bin/promtool ] || interop+=(prometheus)
[ -x /usr/bin/go ] || interop+=(golang-go)
[ -d /usr/share/gocode/src/google.golang.org/grpc ] || interop+=(golang-google-grpc-dev)
[ -d /usr/share/gocode/src/google.golang.org/protobuf ] || interop+=(golang-google-protobuf-dev)
[ -x /usr/bin/protoc-gen-go ] || interop+=(protoc-gen-go)
[ -x /usr/bin/protoc-gen-go-grpc ] || interop+=(protoc-gen-go-grpc)
command -v zsh >/dev/null 2>&1 || interop+=(zsh)
command -v luacheck >/dev/null 2>&1 || interop+=(lua-check)
if [ $((${#missing[@]} + ${#interop[@]})) -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing ${missing[*]} ${interop[*]} with apt-get..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # No recommends: prometheus would otherwise bring a web UI and node exporters nobody runs here.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" "${interop[@]}" >/dev/null
  elif [ ${#missing[@]} -gt 0 ]; then
    echo "missing: ${missing[*]} ${interop[*]}; install with: sudo apt-get install -y ${missing[*]} ${interop[*]}" >&2
    exit 1
  else
    echo "note: the interop, telemetry and completion tests and the lint need ${interop[*]}; install with: sudo apt-get install -y ${interop[*]}" >&2
  fi
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "Installing npm dependencies from package-lock.json..." >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
