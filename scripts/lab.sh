#!/usr/bin/env bash
# npm run lab [-- --name NAME --managers N --workers N]: set up what is missing, build, and bring a
# lab up (hosts as network namespaces on this machine, each with its own shoald; a registry seeded
# with busybox). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "npm run lab: needs root (network namespaces, a bridge, iptables); try: sudo npm run lab" >&2
  exit 1
fi

bash scripts/setup.sh
echo "== build"
if ! npx tsc -p tsconfig.build.json; then
  if [ -f dist/cli/shoal.js ] && [ -f dist/cli/shoald.js ]; then
    echo "lab: the build reported type errors (see above); continuing with what it emitted" >&2
  else
    exit 1
  fi
fi

echo "== lab up"
bin/shoal lab up "$@"

cat <<'TXT'

bin/shoal is the shoal CLI (inside `shoal lab exec` it is on PATH; elsewhere: export PATH=$PWD/bin:$PATH).
Swarm mode (swarm init/join, services) arrives with the manager; the demo service will be deployed here then.
TXT
