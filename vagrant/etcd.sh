#!/usr/bin/env bash
# Configure and start etcd on the Vagrant etcd VM, listening on IP (and 127.0.0.1), as the
# systemd service sluice-etcd. The command line is scripts/etcd-run.sh, the one the local lab
# runs in its underlay namespace. Clients need TLS and a client certificate: a PKI made by
# scripts/etcd-certs.sh in /etc/sluice/etcd-pki, whose CA and client certificate the other VMs
# get through the synced folder (.vagrant/sluice-etcd-pki, a demo's shortcut).
# Usage: vagrant/etcd.sh IP
set -euo pipefail
ip=${1:?usage: vagrant/etcd.sh IP}
REPO=/vagrant
PKI=/etc/sluice/etcd-pki

bash "$REPO/scripts/etcd-certs.sh" "$PKI" "$ip"
mkdir -p "$REPO/.vagrant/sluice-etcd-pki"
cp "$PKI/ca.crt" "$PKI/client.crt" "$PKI/client.key" "$REPO/.vagrant/sluice-etcd-pki/"

# Debian's own etcd.service would hold 127.0.0.1:2379.
systemctl disable --now etcd.service >/dev/null 2>&1 || true

cat >/etc/systemd/system/sluice-etcd.service <<UNIT
[Unit]
Description=etcd for Sluice (scripts/etcd-run.sh)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/bin/bash $REPO/scripts/etcd-run.sh --name sluice --data-dir /var/lib/sluice-etcd --ip $ip --tls-dir $PKI
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now sluice-etcd.service
# With TLS, /health is served in plain on 127.0.0.1:2381.
bash "$REPO/scripts/etcd-run.sh" --wait http://127.0.0.1:2381 --timeout 60 || {
  journalctl -u sluice-etcd -n 30 --no-pager >&2
  exit 1
}
echo "etcd: up on https://$ip:2379 (client certificates required)"
