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

# The demo: a replicated service the user can watch converge from any manager.
name=lab
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --name) name="${args[$((i + 1))]:-lab}" ;;
    --name=*) name="${args[$i]#--name=}" ;;
  esac
done
echo "== demo service"
bin/shoal lab exec --name "$name" "$name-m1" -- shoal service create --name demo --replicas 3 busybox sleep 3600

cat <<TXT

A service "demo" with 3 replicas of busybox was created. Watch it (any manager host answers):
  bin/shoal lab exec --name $name $name-m1 -- docker service ps demo
  bin/shoal lab exec --name $name $name-m1 -- docker node ls
Remove everything with: bin/shoal lab down --name $name
TXT
