#!/usr/bin/env bash
# Quick start, part one: installs what is missing, builds, starts a local fleet (redis-server,
# the three services, three agents), runs a sample task on all three agents, prints its
# summary, and stops everything again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npm run build --silent
exec node bin/baton dev --agents 3 --run "tasks run demo::echo --message hello-from-baton -I node1 -I node2 -I node3 --verbose"
