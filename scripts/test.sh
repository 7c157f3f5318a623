#!/usr/bin/env bash
# Quick start, part two: installs what is missing, builds, and runs the whole test suite
# (unit, service and end-to-end tests against real redis-server, gRPC servers and agents).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npm run build --silent
exec node scripts/run-tests.mjs "$@"
