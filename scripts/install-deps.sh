#!/usr/bin/env bash
# Install what Sluice, its tests, the lab and the demos need on Debian 12, idempotently and
# quietly: Debian's docker.io (dockerd 20.10), etcd-server (3.4), iptables, ipset, iproute2,
# busybox-static, iputils-ping, iperf3, openssl and curl (a TLS etcd's certificates and users),
# wireguard-tools and wireguard-go (--encryption wireguard: `wg`, and userspace WireGuard where
# the kernel has no module) (and Node.js + npm from Debian where there is no node), with --tests
# also vagrant (the tests validate the Vagrantfile), prometheus (the metrics e2e test scrapes the
# agents with a real server), dnsmasq and docker-compose (the names e2e tests), tcpdump (the
# encryption e2e test looks at what crosses the underlay), then `npm ci` (only when
# package-lock.json changed) and `npm run build` in the checkout.
# The one install script: used by .ci/run, scripts/demo.sh and the Vagrant provisioning.
#
# Usage: install-deps.sh [--system-only] [--no-build] [--tests]
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG=${TMPDIR:-/tmp}/sluice-install-deps.log
system_only=0
build=1
tests=0
for arg in "$@"; do
  case $arg in
    --system-only) system_only=1 ;;
    --no-build) build=0 ;;
    --tests) tests=1 ;;
    *) echo "usage: $0 [--system-only] [--no-build] [--tests]" >&2; exit 2 ;;
  esac
done

fail() {
  echo "install-deps: FAILED: $1 (log: $LOG)" >&2
  tail -n 20 "$LOG" >&2 || true
  exit 1
}

# Debian package for each command the project runs.
declare -A PKG=(
  [dockerd]=docker.io [docker]=docker.io [etcd]=etcd-server [iptables]=iptables [ipset]=ipset
  [ip]=iproute2 [ping]=iputils-ping [iperf3]=iperf3 [nsenter]=util-linux [unshare]=util-linux
  [flock]=util-linux [openssl]=openssl [curl]=curl [wg]=wireguard-tools [wireguard-go]=wireguard-go
)

: >"$LOG"
missing=()
for cmd in "${!PKG[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${PKG[$cmd]}")
done
# The test image needs the static busybox (Debian's plain `busybox` package is dynamic).
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
  missing+=(busybox-static)
fi
if ((tests)) && ! command -v vagrant >/dev/null 2>&1; then
  missing+=(vagrant)
fi
if ((tests)) && ! command -v prometheus >/dev/null 2>&1; then
  missing+=(prometheus)
fi
# The names e2e test's upstream DNS server.
if ((tests)) && ! command -v dnsmasq >/dev/null 2>&1; then
  missing+=(dnsmasq-base)
fi
# Compose files in the e2e tests: Docker's options from driver_opts, service names across hosts.
if ((tests)) && ! command -v docker-compose >/dev/null 2>&1; then
  missing+=(docker-compose)
fi
if ((tests)) && ! command -v tcpdump >/dev/null 2>&1; then
  missing+=(tcpdump)
fi
if ((!system_only)) && ! command -v node >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  [[ $(id -u) == 0 ]] || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Without systemd (a CI container), keep the packages' init scripts from starting a dockerd or
  # etcd in the machine's own namespace: the lab starts its own, inside namespaces.
  if [[ ! -d /run/systemd/system && ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq >>"$LOG" 2>&1 || fail "apt-get update"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1 ||
    fail "apt-get install ${missing[*]}"
fi

((system_only)) && exit 0

node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 18)); then
  echo "install-deps: Node.js $(node --version) is too old (need 18 or newer)" >&2
  exit 1
fi

cd "$REPO"
# npm ci wipes node_modules: run it only when the lock file changed since the last run.
stamp=node_modules/.sluice-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f $stamp || $(<"$stamp") != "$want" ]]; then
  echo "install-deps: npm ci"
  npm ci --no-audit --no-fund --loglevel=error >>"$LOG" 2>&1 || fail "npm ci"
  echo "$want" >"$stamp"
fi
if ((build)); then
  npm run build --silent >>"$LOG" 2>&1 || fail "npm run build"
fi
