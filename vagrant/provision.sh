#!/usr/bin/env bash
# Provision one Vagrant VM (run by the Vagrantfile as root):
#   every VM: Docker and Sluice via scripts/install-deps.sh (the same script CI and the local
#             demo use), the test image, the sluice agent as a systemd service;
#   role etcd: etcd too (vagrant/etcd.sh).
# Usage: vagrant/provision.sh NAME IP ETCD_IP etcd|node
set -euo pipefail
name=${1:?NAME} ip=${2:?IP} etcd_ip=${3:?ETCD_IP} role=${4:?ROLE}
REPO=/vagrant

echo "provision $name ($ip, role $role)"
bash "$REPO/scripts/install-deps.sh"

# Debian's etcd-server package starts an etcd of its own on every VM: not used.
systemctl disable --now etcd.service >/dev/null 2>&1 || true
# Containers' lookups Docker does not answer itself go to the sluice agent's resolver.
mkdir -p /etc/docker
printf '{ "dns": ["169.254.53.53"] }\n' >/etc/docker/daemon.json
systemctl enable docker.service
systemctl restart docker.service

if [[ $role == etcd ]]; then
  bash "$REPO/vagrant/etcd.sh" "$ip"
fi

# The image the demo runs (no registry needed), serving "hello from <name>".
bash "$REPO/scripts/busybox-image.sh" "$name" docker

# etcd's CA and the client certificate, published by vagrant/etcd.sh on the etcd VM (provisioned first).
pki=/etc/sluice/etcd-pki
for file in ca.crt client.crt client.key; do
  [[ -s $pki/$file ]] || install -D -m 0600 "$REPO/.vagrant/sluice-etcd-pki/$file" "$pki/$file"
done

cat >/etc/default/sluice-agent <<ENV
SLUICE_NODE=$name
SLUICE_NODE_IP=$ip
SLUICE_ETCD_CA=$pki/ca.crt
SLUICE_ETCD_CERT=$pki/client.crt
SLUICE_ETCD_KEY=$pki/client.key
ENV
install -m 0644 "$REPO/vagrant/sluice-agent.service" /etc/systemd/system/sluice-agent.service
if [[ $etcd_ip != 192.168.56.11 ]]; then
  sed -i "s|etcd://192.168.56.11:2379|etcd://$etcd_ip:2379|" /etc/systemd/system/sluice-agent.service
fi
systemctl daemon-reload
systemctl enable sluice-agent.service
systemctl restart sluice-agent.service

for _ in $(seq 60); do
  [[ -S /run/docker/plugins/sluice.sock ]] && { echo "sluice agent: up on $name"; exit 0; }
  sleep 0.5
done
echo "sluice agent did not come up on $name" >&2
journalctl -u sluice-agent -n 30 --no-pager >&2
exit 1
