#!/usr/bin/env bash
# The Sluice test image without a registry: busybox-static plus /www/index.html naming the host,
# so `httpd -f -p 80 -h /www` serves something that tells which host answered. Busybox as a
# container's PID 1 ignores SIGTERM: `docker stop` (and a dockerd restart) then waits the stop
# timeout; run with `--stop-timeout 1` or `--init` where that matters.
# Shared by the local lab (scripts/lab.sh) and the Vagrant VMs (vagrant/provision.sh).
#
# Usage: busybox-image.sh TITLE                 write the image as a tar stream on stdout
#        busybox-image.sh TITLE DOCKER [ARGS…]  import it as sluice-test/busybox:local with the
#                                               given docker command (e.g. docker -H unix:///x.sock)
set -euo pipefail

IMAGE=sluice-test/busybox:local
APPLETS=(sh ash ip ping nc wget httpd sleep cat hostname ifconfig route timeout echo printf
  ls ps kill grep sed awk head tail wc tr seq env true false test '[' id date mkdir rm touch
  netstat arping traceroute nslookup which top uname)

[[ $# -ge 1 ]] || { echo "usage: $0 TITLE [DOCKER ARGS…]" >&2; exit 2; }
title=$1; shift

busybox=$(command -v busybox || true)
[[ -n $busybox ]] || { echo "busybox-image.sh: busybox not found (apt-get install busybox-static)" >&2; exit 1; }
if ldd "$busybox" >/dev/null 2>&1; then
  echo "busybox-image.sh: $busybox is dynamically linked; the image needs busybox-static" >&2
  exit 1
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,www,tmp,proc,sys,dev,root}
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for a in "${APPLETS[@]}"; do ln -s busybox "$root/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf 'hello from %s\n' "$title" >"$root/www/index.html"

if [[ $# -eq 0 ]]; then
  tar -C "$root" --owner=0 --group=0 -c .
else
  tar -C "$root" --owner=0 --group=0 -c . |
    "$@" import --change 'CMD ["sh"]' --change 'ENV PATH=/bin' - "$IMAGE" >/dev/null
fi
