#!/usr/bin/env bash
# The one test command (npm test): set-up, build, typecheck, lint, every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo "== proto";     bash proto/check-gen.sh
echo "== build";     npx tsc -p tsconfig.build.json
echo "== typecheck"; npx tsc -p tsconfig.json --noEmit
echo "== lint";      npx eslint .
echo "== tests"
mkdir -p .test-results
rc=0
npx vitest run --reporter=default --reporter=json --outputFile.json=.test-results/vitest.json "$@" || rc=$?
node scripts/summary.mjs .test-results/vitest.json || rc=1
exit $rc
