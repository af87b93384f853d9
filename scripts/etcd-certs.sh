#!/usr/bin/env bash
# A small PKI for a TLS etcd, made with openssl: a CA, a server certificate for the given
# addresses (SANs, plus 127.0.0.1 and localhost) and a client certificate for Sluice. Used by
# the local lab, the Vagrant demo and the tests; a real cluster should use its own PKI.
#
# Usage: etcd-certs.sh DIR IP[,IP…]
#   writes DIR/ca.crt, DIR/server.{crt,key}, DIR/client.{crt,key} (and DIR/ca.key); keeps an
#   existing DIR/ca.crt, so running it again (e.g. a re-provisioned VM) changes nothing.
set -euo pipefail

dir=${1:?usage: etcd-certs.sh DIR IP[,IP…]}
ips=${2:?usage: etcd-certs.sh DIR IP[,IP…]}
[[ -s $dir/ca.crt ]] && exit 0
mkdir -p "$dir"
chmod 700 "$dir"

san="DNS:localhost,IP:127.0.0.1"
IFS=, read -ra list <<<"$ips"
for ip in "${list[@]}"; do san+=",IP:$ip"; done

# 10 years: a lab or demo certificate must not expire under a long-lived VM.
days=3650
openssl req -x509 -newkey rsa:2048 -nodes -days "$days" -subj "/CN=sluice-etcd-ca" \
  -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null

# issue NAME CN EXTENSIONS
issue() {
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$dir/$1.key" -out "$dir/$1.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$1.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days "$days" \
    -extfile <(printf '%s\n' "$3") -out "$dir/$1.crt" 2>/dev/null
  rm -f "$dir/$1.csr"
}
issue server etcd "subjectAltName=$san
extendedKeyUsage=serverAuth,clientAuth"
issue client sluice "extendedKeyUsage=clientAuth"
chmod 600 "$dir"/*.key
# Readable by the agent's user; the keys stay private.
chmod 644 "$dir"/*.crt
