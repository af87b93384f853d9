#!/usr/bin/env bash
# Configure and start etcd on the Vagrant etcd VM, listening on IP (and 127.0.0.1), as the
# systemd service sluice-etcd. The command line is scripts/etcd-run.sh, the one the local lab
# runs in its underlay namespace.
# Usage: vagrant/etcd.sh IP
set -euo pipefail
ip=${1:?usage: vagrant/etcd.sh IP}
REPO=/vagrant

# Debian's own etcd.service would hold 127.0.0.1:2379.
systemctl disable --now etcd.service >/dev/null 2>&1 || true

cat >/etc/systemd/system/sluice-etcd.service <<UNIT
[Unit]
Description=etcd for Sluice (scripts/etcd-run.sh)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/bin/bash $REPO/scripts/etcd-run.sh --name sluice --data-dir /var/lib/sluice-etcd --ip $ip
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now sluice-etcd.service
bash "$REPO/scripts/etcd-run.sh" --wait "http://$ip:2379" --timeout 60 || {
  journalctl -u sluice-etcd -n 30 --no-pager >&2
  exit 1
}
echo "etcd: up on http://$ip:2379"
