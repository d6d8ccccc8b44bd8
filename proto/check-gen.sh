#!/usr/bin/env bash
# Fails when proto/gen is not what `npm run proto:gen` makes from the .proto files right now:
# regenerates into a temp dir and diffs. Run from anywhere; used by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npx buf generate --template proto/buf.gen.yaml -o "$tmp" proto
if ! diff -r "$tmp/proto/gen" proto/gen >"$tmp/diff.txt"; then
  echo "proto/gen is stale: run 'npm run proto:gen' and commit the result" >&2
  head -40 "$tmp/diff.txt" >&2
  exit 1
fi
echo "proto/gen is current"
