#!/usr/bin/env bash
# The Sluice demo across the three Vagrant VMs: run on the machine that ran `vagrant up`, from the
# checkout. The scenario is scripts/demo-lib.sh, the one the local demo (scripts/demo.sh) runs.
# Usage: bash vagrant/demo.sh [--keep]    (--keep leaves the demo's containers and network)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
keep=0
[[ ${1:-} == --keep ]] && keep=1

# shellcheck source=scripts/demo-lib.sh
source scripts/demo-lib.sh
DEMO_HOSTS=(node1 node2 node3)

# One ssh config for all calls: much faster than a `vagrant ssh` per command.
SSH_CFG=$(mktemp)
trap 'rm -f "$SSH_CFG"' EXIT
vagrant ssh-config "${DEMO_HOSTS[@]}" >"$SSH_CFG"
on_vm() { local h=$1; shift; ssh -F "$SSH_CFG" -q "$h" "$@"; }
on_docker() { local h=$1; shift; on_vm "$h" "sudo docker $(printf '%q ' "$@")"; }
# The CLI with the agent's etcd settings (CA and client certificate) from /etc/default/sluice-agent.
on_sluice() { local h=$1; shift; on_vm "$h" "sudo env \$(grep ^SLUICE_ETCD_ /etc/default/sluice-agent) SLUICE_STORE=etcd://192.168.56.11:2379 node --disable-warning=DEP0123 /vagrant/bin/sluice $(printf '%q ' "$@")"; }
DEMO_POLICY=/vagrant/scripts/demo-policy.yaml

demo_heading "Cluster status (sluice status on node1)"
if ! out=$(on_sluice node1 status 2>&1); then
  demo_note "(sluice status is not available yet: $(printf '%s' "$out" | head -n 1))"
else
  printf '%s\n' "$out" | sed 's/^/   /'
fi

rc=0
demo_scenario || rc=1
if ((keep)); then
  demo_note "kept: containers client-node1, intruder-node1, web-node2, web-node3, network $DEMO_NET, policy web-from-client"
else
  demo_heading "Removing the demo's containers and network"
  demo_clean
fi
demo_summary
exit "$rc"
