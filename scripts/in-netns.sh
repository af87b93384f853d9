#!/usr/bin/env bash
# Runs a command inside a throwaway network namespace, so integration tests can
# create links, routes, iptables chains and ipsets without touching the host's
# own network. The namespace is deleted on exit, also when the command fails.
#
# Usage: bash scripts/in-netns.sh COMMAND [ARGS...]
#
# Namespaces are named sluice-it-PID[-...], PID being the process that made
# them (this script, or a test creating "containers" inside). Leftovers of a
# dead PID are deleted before and after the run: those of an earlier run that
# was killed, and those a test made and could not delete. The command gets
# the namespace's name in SLUICE_IT_NETNS.
set -euo pipefail

delete_orphans() {
  local ns pid
  for ns in $(ip netns list | awk '{print $1}'); do
    case "$ns" in
      sluice-it-*)
        pid=${ns#sluice-it-}
        pid=${pid%%-*}
        if [[ "$pid" =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null; then
          ip netns delete "$ns" || echo "in-netns: could not delete leftover netns $ns" >&2
        fi
        ;;
    esac
  done
}

delete_orphans
ns="sluice-it-$$"
ip netns add "$ns"
trap 'ip netns delete "$ns"; delete_orphans' EXIT

# nsenter, not `ip netns exec`: the latter remounts /sys, which breaks tools
# that expect the host's mounts.
nsenter --net="/run/netns/$ns" ip link set lo up

# In the background, so a signal to this script is handled at once (bash
# defers traps while a foreground child runs): it is passed on as TERM
# (background children ignore INT), and the namespace goes once the child
# has exited. Tests check they run in this namespace before changing anything.
SLUICE_IT_NETNS="$ns" nsenter --net="/run/netns/$ns" -- "$@" 0<&0 &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true' INT TERM
set +e
while :; do
  wait "$child"
  status=$?
  kill -0 "$child" 2>/dev/null || break
done
exit "$status"
