#!/usr/bin/env bash
# One etcd member for Sluice's store: the single command line shared by the local lab
# (scripts/lab.sh runs it inside the lab's underlay namespace) and the Vagrant demo
# (vagrant/etcd.sh runs it as a systemd service on node1).
#
# Usage: etcd-run.sh --name NAME --data-dir DIR --ip IP [--client-port 2379] [--peer-port 2380] [-- ETCD_ARGS…]
#          execs etcd (the pid stays the caller's) listening for clients on IP and 127.0.0.1,
#          for peers on IP.
#        etcd-run.sh --wait http://IP:PORT [--timeout SECONDS]
#          waits until that etcd answers /health with true; exits 1 on timeout.
set -euo pipefail

name=sluice
data_dir=
ip=
client_port=2379
peer_port=2380
wait_url=
timeout=30
extra=()

while [[ $# -gt 0 ]]; do
  case $1 in
    --name) name=$2; shift 2 ;;
    --data-dir) data_dir=$2; shift 2 ;;
    --ip) ip=$2; shift 2 ;;
    --client-port) client_port=$2; shift 2 ;;
    --peer-port) peer_port=$2; shift 2 ;;
    --wait) wait_url=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "etcd-run.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

# GET URL: prints the body; busybox wget (no -T: it crashes, so bound it with timeout) or curl.
http_get() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 2 "$1"
  else
    timeout 3 busybox wget -q -O- "$1"
  fi
}

if [[ -n $wait_url ]]; then
  deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    if http_get "$wait_url/health" 2>/dev/null | grep -q '"health": *"true"'; then
      exit 0
    fi
    sleep 0.3
  done
  echo "etcd-run.sh: etcd at $wait_url not healthy after ${timeout}s" >&2
  exit 1
fi

[[ -n $data_dir && -n $ip ]] || { echo "usage: $0 --name NAME --data-dir DIR --ip IP" >&2; exit 2; }
mkdir -p "$data_dir"
chmod 700 "$data_dir"

exec etcd \
  --name "$name" \
  --data-dir "$data_dir" \
  --listen-client-urls "http://$ip:$client_port,http://127.0.0.1:$client_port" \
  --advertise-client-urls "http://$ip:$client_port" \
  --listen-peer-urls "http://$ip:$peer_port" \
  --initial-advertise-peer-urls "http://$ip:$peer_port" \
  --initial-cluster "$name=http://$ip:$peer_port" \
  --initial-cluster-token "sluice-$name" \
  --initial-cluster-state new \
  --auto-compaction-mode periodic --auto-compaction-retention 1h \
  --logger zap --log-outputs stderr \
  "${extra[@]}"
