#!/usr/bin/env bash
# Installs what Shoal's tests need on a fresh Debian machine, and nothing when it is all there.
# Debian packages are installed only when their command is missing; npm packages when
# node_modules is missing or older than package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package. Later parts add rows here (runc, iptables, docker-registry, ...).
declare -A NEED=(
  [openssl]=openssl
  [ip]=iproute2
  [docker-registry]=docker-registry  # worker/image tests: a real registry on loopback
  [busybox]=busybox-static           # worker/image tests: the test images' contents
  [htpasswd]=apache2-utils           # worker/image tests: bcrypt htpasswd for registry basic auth
  [setfattr]=attr                    # worker/image: opaque-dir xattrs on unpacked layers
  [iptables]=iptables                # overlay: VIP DNAT/REJECT chains in container netns (iptables-restore)
  [bridge]=iproute2                  # overlay: static FDB entries on the vxlan
  [nsenter]=util-linux               # overlay: enter only a netns (ip netns exec remounts /sys)
  [iperf3]=iperf3                    # bench/overlay: throughput over the overlay vs a veth
  [ping]=iputils-ping                # overlay tests and bench/overlay: latency
  [runc]=runc                        # worker/executor: containers (OCI bundles, runc run/kill/delete/exec)
  [docker]=docker.io                 # e2e: the real docker CLI against shoald (its daemon is never started)
  [umount]=mount                     # lab down: unmount what a killed daemon left under the lab dir
  [gcc]=gcc                          # worker/executor: builds the native container shim (shim/shoal-shim.c)
)

missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
# worker/executor's shim also needs libc's headers and libc.a (gcc only recommends them).
[ -e /usr/include/stdio.h ] || missing+=(libc6-dev)
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then echo "setup: need root to install ${missing[*]}" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=warn
fi
