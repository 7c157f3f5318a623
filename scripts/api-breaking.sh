#!/usr/bin/env bash
# API compatibility check (CI): `buf breaking` fails when proto/ as it is in the working tree would
# break clients generated from the API at a base commit (rules: buf.yaml `breaking`, FILE).
# The base, in this order:
#   $BATON_API_BASE       any git revision, e.g. the commit before a CI push (GitHub: event.before)
#   merge-base with main  on any other branch or detached HEAD not at main: what the change would merge into
#   HEAD~1                on main itself: the commit before; each commit on main is checked against its parent
# A base that is not in the clone (a shallow clone) is an error naming the fix, never a silent skip.
set -euo pipefail
cd "$(dirname "$0")/.."

base="${BATON_API_BASE:-}"
if [ -z "$base" ]; then
  main_ref=""
  for r in main origin/main; do
    if git rev-parse -q --verify "$r^{commit}" >/dev/null; then main_ref=$r; break; fi
  done
  if [ -n "$main_ref" ] && [ "$(git rev-parse HEAD)" != "$(git rev-parse "$main_ref")" ] && [ "$(git rev-parse --abbrev-ref HEAD)" != main ]; then
    base=$(git merge-base HEAD "$main_ref")
  else
    base=HEAD~1
  fi
fi
if ! sha=$(git rev-parse -q --verify "$base^{commit}"); then
  echo "api-breaking: base '$base' is not a commit in this clone; fetch more history (git fetch --deepen=50) or set BATON_API_BASE" >&2
  exit 1
fi
if ! git cat-file -e "$sha:buf.yaml" 2>/dev/null; then
  echo "api-breaking: $base (${sha:0:12}) has no buf.yaml, so no API to compare with" >&2
  exit 0
fi
echo "api-breaking: proto/ compared with $base (${sha:0:12})" >&2
exec node_modules/.bin/buf breaking --against ".git#ref=$sha"
