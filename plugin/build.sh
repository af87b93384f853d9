#!/usr/bin/env bash
# Builds the Sluice managed (v2) Docker plugin from this machine's own files: no registry, no
# base image. Assembles plugin/build/{config.json,rootfs} with
#   - node and the shared libraries it needs (ldd), its symbol table stripped when `strip` exists;
#   - the agent at /opt/sluice: bin/sluice, dist/ (run `npm run build` first)
#     (preloaded: why, see there) and the production node_modules, installed from
#     package-lock.json into a staging dir (`npm ci --omit=dev`; the checkout's own node_modules
#     is never touched), without type declarations, source maps and docs;
#   - ip and bridge (iproute2), iptables/iptables-save/iptables-restore and their ip6tables twins
#     (iptables-nft, one multi-call binary) with every xtables extension module, ipset, all with
#     their libraries;
#   - the /etc files they read (iproute2 tables, protocols, services, a files+dns nsswitch.conf), the
#     empty mount points /run/docker/plugins, /var/lib/sluice, /host/proc/sys/net, and /tmp.
# With --create NAME it then runs `docker [-H HOST] plugin create NAME plugin/build`: the plugin
# is created disabled, to be configured with `docker plugin set` and started with
# `docker plugin enable`.
#
# Usage: plugin/build.sh [--create NAME] [-H DOCKER_HOST]
#   e.g. plugin/build.sh --create sluice/sluice:latest
set -Eeuo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PLUGIN_DIR=$REPO/plugin
OUT=$PLUGIN_DIR/build
ROOTFS=$OUT/rootfs
APP=/opt/sluice                         # the agent's place inside the rootfs (see config.json)
XTABLES_MULTI=xtables-nft-multi         # iptables-nft: no /run/xtables.lock, no modprobe

usage() {
  echo "usage: $0 [--create NAME] [-H DOCKER_HOST]" >&2
  exit 2
}

die() {
  echo "plugin/build.sh: $*" >&2
  exit 1
}
trap 'die "failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

create_name=
docker_host=
while [[ $# -gt 0 ]]; do
  case $1 in
    --create) [[ $# -ge 2 ]] || usage; create_name=$2; shift 2 ;;
    -H | --host) [[ $# -ge 2 ]] || usage; docker_host=$2; shift 2 ;;
    -h | --help) usage ;;
    *) usage ;;
  esac
done

for tool in node npm ldd ip bridge ipset "$XTABLES_MULTI"; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/install-deps.sh installs what is missing)"
done
[[ -f $REPO/dist/cli/main.js ]] || die "no build: run 'npm run build' in $REPO first"

# ------------------------------------------------------------------------------ helpers

# copy_file SRC [DEST]: SRC's content (symlinks followed) at DEST inside the rootfs (default: SRC).
copy_file() {
  local src=$1 dest=${2:-$1}
  mkdir -p "$ROOTFS$(dirname "$dest")"
  cp -L --preserve=mode "$src" "$ROOTFS$dest"
}

# libs_of FILE…: the shared libraries (and the dynamic loader) the files load, one path a line.
libs_of() {
  local f
  for f in "$@"; do
    # "libx.so.1 => /lib/…/libx.so.1 (0x…)", "/lib64/ld-linux-x86-64.so.2 (0x…)"; static: none.
    ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' || true
  done | sort -u
}

# copy_with_libs FILE…: the files at their own paths, and every library they need.
copy_with_libs() {
  local f lib
  for f in "$@"; do copy_file "$f"; done
  while read -r lib; do
    [[ -e $ROOTFS$lib ]] || copy_file "$lib"
  done < <(libs_of "$@")
}

# ------------------------------------------------------------------------------- layout

rm -rf --one-file-system "$OUT"
mkdir -p "$ROOTFS"
# The same merged-/usr layout as this machine, so the paths ldd printed resolve alike inside.
for d in bin sbin lib lib64; do
  if [[ -L /$d ]]; then
    mkdir -p "$ROOTFS$(readlink -f "/$d")"
    ln -s "$(readlink "/$d")" "$ROOTFS/$d"
  fi
done
mkdir -p "$ROOTFS"/{usr/bin,usr/sbin,etc,proc,sys,dev,run/docker/plugins,var/lib/sluice,host/proc/sys/net,tmp,"$APP"}
chmod 1777 "$ROOTFS/tmp"
ln -s ../run "$ROOTFS/var/run"

# -------------------------------------------------------------------------------- tools

node_bin=$(command -v node)
# bin/sluice starts node through `env -S` with the agent's V8 flags.
env_bin=$(command -v env)
ip_bin=$(command -v ip)
bridge_bin=$(command -v bridge)
ipset_bin=$(command -v ipset)
xtables_bin=$(readlink -f "$(command -v "$XTABLES_MULTI")")
copy_with_libs "$node_bin" "$env_bin" "$ip_bin" "$bridge_bin" "$ipset_bin"
copy_file "$xtables_bin" "/usr/sbin/$XTABLES_MULTI"
copy_with_libs "$xtables_bin"
for name in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf "$XTABLES_MULTI" "$ROOTFS/usr/sbin/$name"
done

# iptables loads its matches and targets (conntrack, set, multiport, comment, DNAT, …) at run time.
xtables_dir=$(dirname "$(libs_of "$xtables_bin" | grep -m1 '/libxtables\.so')")/xtables
[[ -d $xtables_dir ]] || die "no xtables extension modules in $xtables_dir"
mkdir -p "$ROOTFS$xtables_dir"
cp -L --preserve=mode "$xtables_dir"/*.so "$ROOTFS$xtables_dir/"
copy_with_libs "$xtables_dir"/*.so

# The node binary ships with its symbol table and debug information: 13 of its ~99 MB.
# --strip-unneeded keeps the dynamic symbols that native add-ons link against.
if command -v strip >/dev/null 2>&1; then
  strip --strip-unneeded "$ROOTFS$node_bin"
fi

# ---------------------------------------------------------------------------- /etc files

for f in /etc/protocols /etc/services; do
  if [[ -f $f ]]; then copy_file "$f"; fi
done
# Not the machine's own: it may name NSS modules (systemd, sss, …) the rootfs does not have.
# /etc/hosts and /etc/resolv.conf are the host's, bind-mounted by dockerd (network type host).
printf 'hosts: files dns\nnetworks: files\nprotocols: files\nservices: files\npasswd: files\ngroup: files\n' \
  >"$ROOTFS/etc/nsswitch.conf"
for d in /etc/iproute2 /usr/share/iproute2 /usr/lib/iproute2; do  # iproute2 ≥ 6.5 keeps its tables in /usr/share
  if [[ -d $d ]]; then mkdir -p "$ROOTFS$d" && cp -rL "$d/." "$ROOTFS$d/"; fi
done
printf 'root:x:0:0:root:/root:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$ROOTFS/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$ROOTFS/etc/group"

# ------------------------------------------------------------------------------ the agent

cp "$REPO/package.json" "$ROOTFS$APP/"
mkdir -p "$ROOTFS$APP/bin"
cp "$REPO/bin/sluice" "$ROOTFS$APP/bin/"
cp -r "$REPO/dist" "$ROOTFS$APP/dist"
find "$ROOTFS$APP/dist" -name '*.map' -delete
rm -rf "$ROOTFS$APP/dist/bench"

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
cp "$REPO/package.json" "$REPO/package-lock.json" "$staging/"
# --ignore-scripts: the optional native add-ons (ssh2's, cpu-features) are not built; the agent
# speaks to Docker over a unix socket and never needs them.
(cd "$staging" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null) ||
  die "npm ci --omit=dev failed in $staging"
mv "$staging/node_modules" "$ROOTFS$APP/node_modules"
find "$ROOTFS$APP/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \
  -o -iname '*.md' -o -iname '*.markdown' \) -delete
find "$ROOTFS$APP/node_modules" -depth -type d -empty -delete

# ------------------------------------------------------------------------ config and check

node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$PLUGIN_DIR/config.json" ||
  die "plugin/config.json is not valid JSON"
cp "$PLUGIN_DIR/config.json" "$OUT/config.json"

# The rootfs must run the agent on its own: every tool finds its libraries and modules there.
check() { chroot "$ROOTFS" "$@" >/dev/null 2>&1 || die "in the rootfs, '$*' does not run"; }
if [[ $(id -u) == 0 ]] && command -v chroot >/dev/null 2>&1; then
  check "$APP/bin/sluice" agent --help
  check /usr/sbin/ip -V
  check /usr/sbin/bridge -V
  check /usr/sbin/ipset version
  check /usr/sbin/iptables-restore --version
  check /usr/sbin/iptables -m conntrack --help  # loads an extension module
  check /usr/sbin/ip6tables-restore --version
  check /usr/sbin/ip6tables -m icmp6 --help
fi

echo "plugin/build.sh: $OUT ready, rootfs $(du -sh "$ROOTFS" | cut -f1)"

# ---------------------------------------------------------------------------------- create

if [[ -n $create_name ]]; then
  docker=(docker)
  if [[ -n $docker_host ]]; then docker+=(-H "$docker_host"); fi
  if "${docker[@]}" plugin inspect "$create_name" >/dev/null 2>&1; then
    die "plugin $create_name already exists: 'docker plugin disable $create_name && docker plugin rm $create_name' first"
  fi
  "${docker[@]}" plugin create "$create_name" "$OUT" >/dev/null
  echo "plugin/build.sh: created $create_name (disabled): docker plugin set … then docker plugin enable $create_name"
fi
