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

name=lab
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --name) name="${args[$((i + 1))]:-lab}" ;;
    --name=*) name="${args[$i]#--name=}" ;;
  esac
done
flag=""
[ "$name" = lab ] || flag=" --name $name"

cat <<TXT

What to try (bin/shoal is the shoal CLI; add it to PATH with: export PATH=\$PWD/bin:\$PATH):
  bin/shoal lab ls$flag                        hosts, addresses, daemons
  bin/shoal lab exec$flag $name-m1 -- docker info   the real docker CLI against that host's shoald
  eval "\$(bin/shoal lab env$flag $name-m1)"        point this shell at $name-m1, then: docker version, shoal info
  bin/shoal lab partition$flag $name-m1 -- $name-m2 ...; bin/shoal lab heal$flag
  bin/shoal lab kill$flag $name-m1; bin/shoal lab start$flag $name-m1
  bin/shoal lab down$flag                      remove everything the lab made
Swarm mode (swarm init/join, services) arrives with the manager; the demo service will be deployed here then.
TXT
