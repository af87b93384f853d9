#!/usr/bin/env bash
# Sluice in two minutes, on one machine: three Docker hosts (network namespaces with their own
# dockerd and sluice agent, etcd on their underlay), one network across them, containers on
# different hosts talking. Needs root on Debian 12; installs what it needs.
#
# Usage: bash scripts/demo.sh [--keep] [--no-install]
#            --keep: leave the lab up to play with; --no-install: skip scripts/install-deps.sh
#        bash scripts/demo.sh down         tear down a kept demo lab
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB_SH=$REPO/scripts/lab.sh
LAB=demo
keep=0
install=1

# shellcheck source=scripts/demo-lib.sh
source "$REPO/scripts/demo-lib.sh"

[[ ${1:-} == down ]] && exec bash "$LAB_SH" --lab "$LAB" down
for arg in "$@"; do
  case $arg in
    --keep) keep=1 ;;
    --no-install) install=0 ;;
    -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: bash scripts/demo.sh [--keep] [--no-install] | down" >&2; exit 2 ;;
  esac
done

[[ $(id -u) == 0 ]] || { echo "demo: run as root (it makes network namespaces and runs dockerd)" >&2; exit 1; }

DEMO_HOSTS=(h1 h2 h3)
on_docker() { bash "$LAB_SH" --lab "$LAB" docker "$@"; }
on_sluice() { bash "$LAB_SH" --lab "$LAB" sluice "$@"; }
DEMO_POLICY=$REPO/scripts/demo-policy.yaml
lab() { bash "$LAB_SH" --lab "$LAB" "$@"; }

teardown() {
  demo_heading "Tearing down"
  lab down | sed 's/^/   /'
}

show_logs() {
  local h
  printf '\n%sAgent logs (last lines):%s\n' "$_B" "$_N"
  for h in "${DEMO_HOSTS[@]}"; do
    printf '%s-- %s: /run/sluice-lab/%s/%s/agent.log%s\n' "$_D" "$h" "$LAB" "$h" "$_N"
    tail -n 8 "/run/sluice-lab/$LAB/$h/agent.log" 2>/dev/null | sed 's/^/   /' || true
  done
}

finish() {
  local rc=$?
  trap - EXIT
  if ((rc != 0 || DEMO_FAILED > 0)); then
    [[ -d /run/sluice-lab/$LAB ]] && show_logs
    rc=1
  fi
  if ((keep)); then
    printf '\nThe lab is still up. Try:\n'
    printf '  bash scripts/lab.sh --lab %s docker h1 exec client-h1 ping -c1 %s\n' "$LAB" "${DEMO_ADDR[h2]:-IP}"
    printf '  bash scripts/lab.sh --lab %s status\n' "$LAB"
    printf 'Tear it down with: bash scripts/demo.sh down\n'
  else
    teardown || rc=1
  fi
  demo_summary
  exit "$rc"
}
trap finish EXIT

if ((install)); then
  demo_heading "Installing dependencies (scripts/install-deps.sh)"
  bash "$REPO/scripts/install-deps.sh"
  demo_note "Debian packages, npm ci and npm run build: done"
fi

demo_heading "Starting 3 Docker hosts, etcd and a sluice agent on each (scripts/lab.sh up)"
lab up --hosts 3 | sed 's/^/   /'
lab status | sed 's/^/   /'

demo_heading "Cluster status (sluice status)"
if ! out=$(lab sluice h1 status 2>&1); then
  demo_note "(sluice status is not available yet: $(printf '%s' "$out" | head -n 1))"
else
  printf '%s\n' "$out" | sed 's/^/   /'
fi

demo_scenario || true
((DEMO_FAILED == 0))
