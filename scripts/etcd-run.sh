#!/usr/bin/env bash
# One etcd member for Sluice's store: the single command line shared by the local lab
# (scripts/lab.sh runs it inside the lab's underlay namespace) and the Vagrant demo
# (vagrant/etcd.sh runs it as a systemd service on node1).
#
# Usage: etcd-run.sh --name NAME --data-dir DIR --ip IP [--client-port 2379] [--peer-port 2380]
#                    [--tls-dir DIR] [-- ETCD_ARGS…]
#          execs etcd (the pid stays the caller's) listening for clients on IP and 127.0.0.1,
#          for peers on IP. With --tls-dir (made by etcd-certs.sh) clients must speak TLS and show
#          a certificate of DIR/ca.crt; /health is then served in plain on 127.0.0.1:2381 too.
#        etcd-run.sh --wait http://IP:PORT [--timeout SECONDS]
#          waits until that etcd answers /health with true; exits 1 on timeout.
#        etcd-run.sh --enable-auth URL --root-password-file FILE --sluice-password-file FILE [--tls-dir DIR]
#          creates user root and user sluice, whose role "sluice" may read and write /sluice/ only,
#          then turns authentication on (through etcd's JSON gateway, with curl).
set -euo pipefail

name=sluice
data_dir=
ip=
client_port=2379
peer_port=2380
wait_url=
auth_url=
root_password_file=
sluice_password_file=
tls_dir=
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
    --enable-auth) auth_url=$2; shift 2 ;;
    --root-password-file) root_password_file=$2; shift 2 ;;
    --sluice-password-file) sluice_password_file=$2; shift 2 ;;
    --tls-dir) tls_dir=$2; shift 2 ;;
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

if [[ -n $auth_url ]]; then
  [[ -s $root_password_file && -s $sluice_password_file ]] ||
    { echo "etcd-run.sh: --enable-auth needs --root-password-file and --sluice-password-file" >&2; exit 2; }
  tls=()
  [[ -n $tls_dir ]] && tls=(--cacert "$tls_dir/ca.crt" --cert "$tls_dir/client.crt" --key "$tls_dir/client.key")
  b64() { printf '%s' "$1" | base64 -w0; }
  # call PATH JSON: one gateway request, which must succeed (etcd answers with a "header").
  call() {
    local out
    out=$(curl -sS --max-time 5 "${tls[@]}" -X POST "$auth_url/v3/$1" -d "$2") || exit 1
    if [[ $out != *'"header"'* ]]; then
      echo "etcd-run.sh: $1: $out" >&2
      exit 1
    fi
  }
  call auth/role/add '{"name":"root"}'
  call auth/user/add "{\"name\":\"root\",\"password\":\"$(<"$root_password_file")\"}"
  call auth/user/grant '{"user":"root","role":"root"}'
  call auth/role/add '{"name":"sluice"}'
  # Read-write on the range [/sluice/, /sluice0): every key under /sluice/.
  call auth/role/grant "{\"name\":\"sluice\",\"perm\":{\"permType\":\"READWRITE\",\"key\":\"$(b64 /sluice/)\",\"range_end\":\"$(b64 /sluice0)\"}}"
  call auth/user/add "{\"name\":\"sluice\",\"password\":\"$(<"$sluice_password_file")\"}"
  call auth/user/grant '{"user":"sluice","role":"sluice"}'
  call auth/enable '{}'
  exit 0
fi

[[ -n $data_dir && -n $ip ]] || { echo "usage: $0 --name NAME --data-dir DIR --ip IP" >&2; exit 2; }
mkdir -p "$data_dir"
chmod 700 "$data_dir"

scheme=http
tls=()
if [[ -n $tls_dir ]]; then
  scheme=https
  tls=(--cert-file "$tls_dir/server.crt" --key-file "$tls_dir/server.key" --trusted-ca-file "$tls_dir/ca.crt"
    --client-cert-auth --listen-metrics-urls http://127.0.0.1:2381)
fi

exec etcd \
  --name "$name" \
  --data-dir "$data_dir" \
  --listen-client-urls "$scheme://$ip:$client_port,$scheme://127.0.0.1:$client_port" \
  --advertise-client-urls "$scheme://$ip:$client_port" \
  --listen-peer-urls "http://$ip:$peer_port" \
  --initial-advertise-peer-urls "http://$ip:$peer_port" \
  --initial-cluster "$name=http://$ip:$peer_port" \
  --initial-cluster-token "sluice-$name" \
  --initial-cluster-state new \
  --auto-compaction-mode periodic --auto-compaction-retention 1h \
  --logger zap --log-outputs stderr \
  "${tls[@]}" "${extra[@]}"
