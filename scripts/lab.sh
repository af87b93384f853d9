#!/usr/bin/env bash
# Sluice multi-host lab: several Docker hosts on one machine (recipes: docs/test-lab.md).
#
# A host is a network namespace with its own dockerd (and sluice agent) in a persistent mount
# namespace of its own, so each host has its own /run/docker/plugins, /etc/docker,
# /run/containerd, /var/lib/sluice, /run/sluice and /run/wireguard (wireguard-go's sockets). Hosts hang off an underlay bridge that lives
# in an "underlay" namespace, which also runs etcd. Every address is inside these namespaces: the
# machine's own network configuration is never touched.
#
#   flat:   underlay 10.250.0.0/24, etcd 10.250.0.1, host hN = 10.250.0.(10+N)
#   routed: two subnets 10.250.1.0/24 (odd hosts) and 10.250.2.0/24 (even hosts), the underlay
#           namespace routes between them (etcd 10.250.1.1): hosts on different subnets share no
#           link, so host-gw cannot work between them.
#   IPv6:   every segment also has a ULA /64 that mirrors its IPv4 /24: fd00:250:S::/64 next to
#           10.250.S.0/24, the underlay namespace at fd00:250:S::1, host hN at fd00:250:S::(10+N)
#           (the IPv4 host number written as hex digits: h1 = 10.250.0.11 = fd00:250::11); the
#           routed topology routes IPv6 between its segments as it does IPv4. etcd stays on IPv4.
#
# Every agent serves Prometheus metrics on its host address, port 9453 (http://IP:9453/metrics),
# reachable from the underlay namespace.
#
# State: /run/sluice-lab/<lab>/ (pidfiles, logs, sockets, etcd data), docker data-roots under
# /var/lib/sluice-lab/<lab>/<host>. Run `lab.sh help` for the commands.
set -Eeuo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPTS=$REPO/scripts
SELF=$SCRIPTS/lab.sh
RUN_ROOT=/run/sluice-lab
DATA_ROOT=/var/lib/sluice-lab
IMAGE=sluice-test/busybox:local
MAX_HOSTS=50
# The agents' metrics port (--metrics-addr HOST_IP:METRICS_PORT).
METRICS_PORT=9453
# Where each host's agent serves container names (its --dns-address default); dockerd sends containers' lookups there.
DNS_ADDRESS=169.254.53.53
# The sluice entry point the agents run (tests may point it at another build).
SLUICE_BIN=${SLUICE_LAB_SLUICE_BIN:-$REPO/bin/sluice}

usage() {
  cat <<'EOF'
usage: lab.sh [--lab NAME] COMMAND [ARGS…]        (NAME defaults to $SLUICE_LAB or "lab")

  up [--hosts N] [--topology flat|routed] [--backend auto|host-gw|vxlan] [--store etcd|file] [--no-agent]
     [--etcd-tls] [--etcd-auth] [--encryption none|wireguard]
                              clean leftovers of this lab, then start it (default 2 hosts, flat);
                              --etcd-tls: etcd wants TLS and client certificates (a PKI in
                              /run/sluice-lab/NAME/pki), --etcd-auth: auth on, agents and CLI log in
                              as user sluice, limited to /sluice/; --encryption: the agents'
                              --encryption (wireguard: userspace wireguard-go where the kernel has no module)
  down                        tear everything of this lab down (safe to run twice)
  status                      what runs, with pids and addresses
  docker HOST ARGS…           docker CLI against HOST's dockerd
  exec HOST CMD…              run CMD on HOST (its network and mount namespaces); HOST may be
                              "underlay" for the underlay/router namespace
  sluice HOST ARGS…           the sluice CLI on HOST, with SLUICE_STORE set to the lab's etcd
  ip HOST                     HOST's underlay address
  ip6 HOST                    HOST's IPv6 underlay address
  etcd-endpoint               the store URL (etcd://IP:2379), reachable from every host
  store-env                   SLUICE_ETCD_* settings for a client of the lab's etcd, NAME=VALUE a line
  netns HOST                  HOST's network namespace name (for ip -n / ip netns)
  hosts                       the host names, one a line
  agent-stop HOST [TERM|KILL] stop HOST's agent (TERM waits for it to exit)
  agent-start HOST [FLAGS…]   start HOST's agent (FLAGS override the lab's) and wait for its socket
  dockerd-restart HOST        stop HOST's dockerd (containers stop with it) and start it again
  dockerd-stop HOST [TERM|KILL]
                              stop HOST's dockerd; KILL is a crash of the host's Docker: dockerd, its
                              containerd, the shims and the containers all die at once
  dockerd-start HOST          start HOST's dockerd and wait until it answers (after a crash, with
                              the agent not yet back, that takes 15 s per container it had)
  etcd-stop [TERM|KILL]       stop etcd
  etcd-start                  start etcd and wait until healthy

Logs: /run/sluice-lab/NAME/etcd.log, /run/sluice-lab/NAME/hN/{dockerd,agent}.log.
Environment: SLUICE_LAB (lab name), SLUICE_LAB_SLUICE_BIN (the sluice entry point the agents
run, default bin/sluice, which needs `npm run build`).
EOF
}

# ---------------------------------------------------------------------------- helpers

say() { printf 'lab: %s\n' "$*"; }
warn() { printf 'lab: %s\n' "$*" >&2; }

# die MESSAGE [LOGFILE]: print what failed and the tail of the relevant log, exit 1.
die() {
  warn "FAILED: $1"
  if [[ -n ${2:-} && -s ${2:-} ]]; then
    warn "---- last lines of $2 ----"
    tail -n 25 "$2" >&2 || true
    warn "----"
  fi
  exit 1
}

on_err() {
  local rc=$? line=$1 cmd=$2
  warn "FAILED (exit $rc) at scripts/lab.sh line $line: $cmd"
  exit "$rc"
}
trap 'on_err "$LINENO" "$BASH_COMMAND"' ERR

set_lab() {
  LAB=$1
  [[ $LAB =~ ^[a-z0-9][a-z0-9-]{0,23}$ ]] || die "bad lab name '$LAB' (want [a-z0-9-], at most 24 characters)"
  LAB_DIR=$RUN_ROOT/$LAB
  LAB_DATA=$DATA_ROOT/$LAB
  NS_PREFIX=sluice-$LAB-
  UL_NS=${NS_PREFIX}ul
  ENV_FILE=$LAB_DIR/lab.env
}

docker_bin() {
  if [[ -x /usr/bin/docker ]]; then echo /usr/bin/docker; else command -v docker; fi
}

host_index() {
  [[ $1 =~ ^h([1-9][0-9]*)$ ]] || die "bad host name '$1' (hosts are h1, h2, …)"
  echo "${BASH_REMATCH[1]}"
}
host_ns() { echo "${NS_PREFIX}$1"; }
host_dir() { echo "$LAB_DIR/$1"; }

# Lab configuration written by `up`: LAB_HOSTS, LAB_TOPOLOGY, LAB_AGENT, LAB_BACKEND, LAB_STORE.
LAB_HOSTS=0 LAB_TOPOLOGY=flat LAB_AGENT=0 LAB_BACKEND=auto LAB_STORE=etcd LAB_ETCD_TLS=0 LAB_ETCD_AUTH=0 LAB_ENCRYPTION=none
load_env() {
  [[ -f $ENV_FILE ]] || die "lab '$LAB' is not up (no $ENV_FILE); run: scripts/lab.sh --lab $LAB up"
  # shellcheck disable=SC1090
  source "$ENV_FILE"
}

subnet_of() { # host index -> third octet of its underlay subnet
  if [[ $LAB_TOPOLOGY == routed ]]; then echo $(( ($1 - 1) % 2 + 1 )); else echo 0; fi
}
host_ip() { local i; i=$(host_index "$1"); echo "10.250.$(subnet_of "$i").$((10 + i))"; }
# Canonical (RFC 5952) text, as the agents store addresses: segment 0 is fd00:250::/64, not fd00:250:0::/64.
segment_ip6() { # segment, host part -> address
  if (($1 == 0)); then echo "fd00:250::$2"; else echo "fd00:250:$1::$2"; fi
}
host_ip6() { local i; i=$(host_index "$1"); segment_ip6 "$(subnet_of "$i")" "$((10 + i))"; }
etcd_ip() { if [[ $LAB_TOPOLOGY == routed ]]; then echo 10.250.1.1; else echo 10.250.0.1; fi; }

check_host() {
  local i; i=$(host_index "$1")
  ((i <= LAB_HOSTS)) || die "lab '$LAB' has hosts h1..h$LAB_HOSTS, not $1"
}

# A pid from a pidfile, if that process is alive and really one of this lab's (its command line
# names the lab's directory): a stale pidfile never makes us signal somebody else's process.
lab_pid() {
  local file=$1 pid cmd
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *"$LAB_DIR/"* ]] || return 1
  echo "$pid"
}

# fresh_pidfile FILE WHAT: before starting WHAT, refuse if it still runs, and drop the pidfile a
# crash left: waiting for the new pidfile must never read the old pid (and call the new process exited).
fresh_pidfile() {
  if lab_pid "$1" >/dev/null; then die "$2 already running"; fi
  rm -f "$1"
}

alive() { # running and not a zombie
  local state
  state=$(sed -E 's/^[0-9]+ \(.*\) (.).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

# stop_pid PID WHAT [TERM|KILL] [SECONDS]: signal, wait for exit, KILL after the grace time.
stop_pid() {
  local pid=$1 what=$2 sig=${3:-TERM} grace=${4:-20} deadline
  kill "-$sig" "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + grace))
  while alive "$pid"; do
    if ((SECONDS >= deadline)); then
      warn "$what (pid $pid) still running ${grace}s after SIG$sig: sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      deadline=$((SECONDS + 5))
      sig=KILL
    fi
    sleep 0.1
  done
}

# stop_pidfile FILE WHAT [SIG] [GRACE]: stop the lab process named in FILE, if any.
stop_pidfile() {
  local pid
  if pid=$(lab_pid "$1"); then
    stop_pid "$pid" "$2" "${3:-TERM}" "${4:-20}"
  fi
  rm -f "$1"
}

# Run a command in a host's (or the underlay's) network namespace and the host's mount namespace.
in_host() {
  local h=$1; shift
  local d; d=$(host_dir "$h")
  nsenter --mount="$d/mntns" --net="/run/netns/$(host_ns "$h")" --wd="$PWD" -- "$@"
}
in_ul() { nsenter --net="/run/netns/$UL_NS" -- "$@"; }

# --------------------------------------------------------------------------- underlay

make_underlay() {
  ip netns add "$UL_NS"
  ip -n "$UL_NS" link set lo up
  if [[ $LAB_TOPOLOGY == routed ]]; then
    make_segment 1
    make_segment 2
    in_ul sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward; echo 1 > /proc/sys/net/ipv6/conf/all/forwarding'
  else
    make_segment 0
  fi
}

# make_segment S: the bridge brS of segment S, with the underlay namespace's addresses on it.
make_segment() {
  local s=$1
  ip -n "$UL_NS" link add "br$s" type bridge
  ip -n "$UL_NS" addr add "10.250.$s.1/24" dev "br$s"
  # nodad: usable at once (duplicate address detection would hold it "tentative" for a second or
  # two, and a ping right after `up` would fail); nobody else on the segment could have it anyway.
  ip -n "$UL_NS" addr add "$(segment_ip6 "$s" 1)/64" dev "br$s" nodad
  ip -n "$UL_NS" link set "br$s" up
}

make_host_net() {
  local h=$1 i s ns ip
  i=$(host_index "$h"); s=$(subnet_of "$i"); ns=$(host_ns "$h"); ip=$(host_ip "$h")
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  # Made inside the namespaces: the veth never exists in the machine's own namespace.
  ip -n "$UL_NS" link add "v$h" type veth peer name eth0 netns "$ns"
  ip -n "$UL_NS" link set "v$h" master "br$s" up
  ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" addr add "$(host_ip6 "$h")/64" dev eth0 nodad
  ip -n "$ns" link set eth0 up
  if [[ $LAB_TOPOLOGY == routed ]]; then
    ip -n "$ns" route add default via "10.250.$s.1"
    ip -n "$ns" -6 route add default via "$(segment_ip6 "$s" 1)"
  fi
}

# A persistent mount namespace per host, shared by its dockerd, its agent and `lab.sh exec`.
make_host_mntns() {
  local h=$1 d; d=$(host_dir "$h")
  mkdir -p "$d"/{plugins,etc-docker,containerd,sluice-lib,sluice-run,wireguard,exec}
  : >"$d/mntns"
  unshare --mount="$d/mntns" --propagation private "$SELF" --lab "$LAB" _mntns-setup "$h"
}

# Runs inside the new mount namespace (internal command).
mntns_setup() {
  local h=$1 d; d=$(host_dir "$h")
  # Drop the copies of namespace files (other netns/mntns bind mounts): held here they would keep
  # namespaces of other labs or programs alive after their owners delete them.
  local target
  while read -r target; do
    umount -l "$target" 2>/dev/null || true
  done < <(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "nsfs") print $5; break } }' \
    /proc/self/mountinfo | sort -r)
  mount --bind "$d/plugins" /run/docker/plugins
  mount --bind "$d/etc-docker" /etc/docker            # own key.json (engine ID), no daemon.json
  mount --bind "$d/containerd" /run/containerd        # no system containerd: dockerd runs its own
  mount --bind "$d/sluice-lib" /var/lib/sluice
  mount --bind "$d/sluice-run" /run/sluice
  mount --bind "$d/wireguard" /run/wireguard        # wireguard-go's control sockets, one set per host
}

# --------------------------------------------------------------------------------- etcd

start_etcd() {
  local ip; ip=$(etcd_ip)
  fresh_pidfile "$LAB_DIR/etcd.pid" etcd
  # shellcheck disable=SC2016 # $$ and $1 are the inner shell's
  setsid nsenter --net="/run/netns/$UL_NS" -- sh -c 'echo $$ > "$1"; shift; exec "$@"' sh \
    "$LAB_DIR/etcd.pid" "$SCRIPTS/etcd-run.sh" --name "lab-$LAB" --data-dir "$LAB_DIR/etcd.data" --ip "$ip" \
    $( ((LAB_ETCD_TLS)) && echo --tls-dir "$LAB_DIR/pki") </dev/null >>"$LAB_DIR/etcd.log" 2>&1 9>&- &
}

wait_etcd() {
  local ip; ip=$(etcd_ip)
  wait_pidfile "$LAB_DIR/etcd.pid" etcd "$LAB_DIR/etcd.log"
  # A TLS etcd serves /health in plain on 127.0.0.1:2381 (of the underlay namespace).
  in_ul "$SCRIPTS/etcd-run.sh" --wait "$( ((LAB_ETCD_TLS)) && echo http://127.0.0.1:2381 || echo "http://$ip:2379")" \
    --timeout 30 2>>"$LAB_DIR/etcd.log" || die "etcd did not become healthy" "$LAB_DIR/etcd.log"
}

# --etcd-tls / --etcd-auth: a PKI and passwords before etcd starts (the lab's dir is private).
make_etcd_secrets() {
  if ((LAB_ETCD_TLS)); then "$SCRIPTS/etcd-certs.sh" "$LAB_DIR/pki" "$(etcd_ip)"; fi
  if ((LAB_ETCD_AUTH)); then
    (umask 077; openssl rand -hex 16 >"$LAB_DIR/etcd-root.password"; openssl rand -hex 16 >"$LAB_DIR/etcd-sluice.password")
  fi
}

enable_etcd_auth() {
  ((LAB_ETCD_AUTH)) || return 0
  in_ul "$SCRIPTS/etcd-run.sh" --enable-auth "$( ((LAB_ETCD_TLS)) && echo https || echo http)://$(etcd_ip):2379" \
    --root-password-file "$LAB_DIR/etcd-root.password" --sluice-password-file "$LAB_DIR/etcd-sluice.password" \
    $( ((LAB_ETCD_TLS)) && echo --tls-dir "$LAB_DIR/pki") 2>>"$LAB_DIR/etcd.log" ||
    die "could not turn etcd's authentication on" "$LAB_DIR/etcd.log"
}

# The settings for the lab's etcd as SLUICE_* variables, one NAME=VALUE a line: the CA and client
# certificate, the login (the password itself for the CLI; agents get it as a file).
store_access_env() {
  if ((LAB_ETCD_TLS)); then
    echo "SLUICE_ETCD_CA=$LAB_DIR/pki/ca.crt"
    echo "SLUICE_ETCD_CERT=$LAB_DIR/pki/client.crt"
    echo "SLUICE_ETCD_KEY=$LAB_DIR/pki/client.key"
  fi
  if ((LAB_ETCD_AUTH)); then echo "SLUICE_ETCD_USER=sluice"; fi
}

# wait_pidfile FILE WHAT LOG: the launcher writes the pidfile almost at once.
wait_pidfile() {
  local i
  for i in $(seq 50); do
    [[ -s $1 ]] && return 0
    sleep 0.1
  done
  die "$2 did not start (no pidfile $1)" "$3"
}

# ------------------------------------------------------------------------------ dockerd

start_dockerd() {
  local h=$1 d; d=$(host_dir "$h")
  mkdir -p "$LAB_DATA/$h"
  fresh_pidfile "$d/dockerd.pid" "dockerd on $h"
  rm -f "$d/docker.sock" "$d/docker.pid"
  # shellcheck disable=SC2016 # $$ and $1 are the inner shell's
  setsid nsenter --mount="$d/mntns" --net="/run/netns/$(host_ns "$h")" -- sh -c 'echo $$ > "$1"; shift; exec "$@"' sh \
    "$d/dockerd.pid" dockerd \
    --data-root "$LAB_DATA/$h" --exec-root "$d/exec" --pidfile "$d/docker.pid" \
    -H "unix://$d/docker.sock" --bridge none --iptables=false --ip-masq=false --dns "$DNS_ADDRESS" \
    --cgroup-parent "/sluice-lab-$LAB-$h" \
    </dev/null >>"$d/dockerd.log" 2>&1 9>&- &
}

# wait_dockerd HOST [SECONDS]: dockerd answers once it restored its containers.
wait_dockerd() {
  local h=$1 limit=${2:-60} d pid deadline; d=$(host_dir "$h")
  wait_pidfile "$d/dockerd.pid" "dockerd on $h" "$d/dockerd.log"
  deadline=$((SECONDS + limit))
  while :; do
    pid=$(lab_pid "$d/dockerd.pid") || die "dockerd on $h exited" "$d/dockerd.log"
    if [[ -S $d/docker.sock ]] &&
      timeout 5 "$(docker_bin)" -H "unix://$d/docker.sock" version --format '{{.Server.Version}}' >/dev/null 2>&1; then
      return 0
    fi
    ((SECONDS < deadline)) || die "dockerd on $h (pid $pid) did not answer within ${limit}s" "$d/dockerd.log"
    sleep 0.2
  done
}

# stop_dockerd HOST [TERM|KILL]: KILL leaves nothing of the host's Docker running (shims and
# containers outlive a killed dockerd and containerd), as if the host itself had died.
stop_dockerd() {
  local h=$1 sig=${2:-TERM} d; d=$(host_dir "$h")
  stop_pidfile "$d/dockerd.pid" "dockerd on $h" "$sig" 30
  # dockerd stops the containerd it started; if dockerd died hard, that one is left running.
  stop_pidfile "$d/exec/containerd/containerd.pid" "containerd on $h" "$sig" 10
  if [[ $sig == KILL ]]; then kill_docker_leftovers "$h"; fi
}

# The shims and containers of HOST: its leftovers, less its agent.
kill_docker_leftovers() {
  local h=$1 d agent p pids=(); d=$(host_dir "$h")
  agent=$(lab_pid "$d/agent.pid") || agent=
  for p in $(host_leftovers "$d"); do
    [[ $p != "$agent" && $p != "$$" ]] && alive "$p" && pids+=("$p")
  done
  ((${#pids[@]})) || return 0
  kill -KILL "${pids[@]}" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  for p in "${pids[@]}"; do
    while alive "$p" && ((SECONDS < deadline)); do sleep 0.1; done
  done
}

import_image() {
  local h=$1 d; d=$(host_dir "$h")
  "$SCRIPTS/busybox-image.sh" "$h" "$(docker_bin)" -H "unix://$d/docker.sock" >>"$d/dockerd.log" 2>&1 ||
    die "importing $IMAGE into $h" "$d/dockerd.log"
}

# -------------------------------------------------------------------------------- agent

# Extra arguments go after the lab's own flags, so they override them (e.g. --docker-host).
start_agent() {
  local h=$1 d ip; d=$(host_dir "$h"); ip=$(host_ip "$h"); shift
  need_build
  fresh_pidfile "$d/agent.pid" "agent on $h"
  touch "$d/agent.start"
  # shellcheck disable=SC2016 # $$ and $1 are the inner shell's
  setsid nsenter --mount="$d/mntns" --net="/run/netns/$(host_ns "$h")" -- sh -c 'echo $$ > "$1"; shift; exec "$@"' sh \
    "$d/agent.pid" env $(store_access_env) "$SLUICE_BIN" agent \
    $( ((LAB_ETCD_AUTH)) && echo --etcd-password-file "$LAB_DIR/etcd-sluice.password") \
    --store "$(agent_store)" --socket /run/docker/plugins/sluice.sock \
    --node "$h" --node-ip "$ip" --docker-host "unix://$d/docker.sock" --backend "$LAB_BACKEND" --encryption "$LAB_ENCRYPTION" --metrics-addr "$ip:$METRICS_PORT" "$@" \
    </dev/null >>"$d/agent.log" 2>&1 9>&- &
}

# etcd for a cluster; the embedded store (its default path, private to the host's mount namespace) for one host.
agent_store() {
  if [[ $LAB_STORE == file ]]; then echo file:/var/lib/sluice/state.json; else echo "etcd://$(etcd_ip):2379"; fi
}

# Ready when its socket is newer than the start marker (a socket left by a killed agent is older).
wait_agent() {
  local h=$1 d deadline; d=$(host_dir "$h")
  wait_pidfile "$d/agent.pid" "agent on $h" "$d/agent.log"
  deadline=$((SECONDS + 30))
  while :; do
    lab_pid "$d/agent.pid" >/dev/null || die "agent on $h exited" "$d/agent.log"
    [[ -S $d/plugins/sluice.sock && $d/plugins/sluice.sock -nt $d/agent.start ]] && return 0
    ((SECONDS < deadline)) || die "agent on $h made no socket $d/plugins/sluice.sock within 30s" "$d/agent.log"
    sleep 0.1
  done
}

need_build() {
  if [[ $SLUICE_BIN == "$REPO/bin/sluice" && ! -f $REPO/dist/cli/main.js ]]; then
    die "no build: run 'npm run build' in $REPO first (or use --no-agent)"
  fi
}

stop_agent() {
  local h=$1 sig=${2:-TERM} d; d=$(host_dir "$h")
  stop_pidfile "$d/agent.pid" "agent on $h" "$sig" 20
}

# ---------------------------------------------------------------------------------- up

cmd_up() {
  local hosts=2 topology=flat agent=1 backend=auto store=etcd etcd_tls=0 etcd_auth=0 encryption=none
  while [[ $# -gt 0 ]]; do
    case $1 in
      --hosts) hosts=$2; shift 2 ;;
      --store) store=$2; shift 2 ;;
      --topology) topology=$2; shift 2 ;;
      --backend) backend=$2; shift 2 ;;
      --no-agent) agent=0; shift ;;
      --etcd-tls) etcd_tls=1; shift ;;
      --etcd-auth) etcd_auth=1; shift ;;
      --encryption) encryption=$2; shift 2 ;;
      --lab) set_lab "$2"; shift 2 ;;
      *) die "up: unknown argument '$1'" ;;
    esac
  done
  if ! [[ $hosts =~ ^[1-9][0-9]*$ ]] || ((hosts > MAX_HOSTS)); then die "--hosts wants 1..$MAX_HOSTS"; fi
  [[ $topology == flat || $topology == routed ]] || die "--topology wants flat or routed"
  [[ $backend =~ ^(auto|host-gw|vxlan)$ ]] || die "--backend wants auto, host-gw or vxlan"
  [[ $store == etcd || $store == file ]] || die "--store wants etcd or file"
  [[ $encryption == none || $encryption == wireguard ]] || die "--encryption wants none or wireguard"
  require_tools
  if ((agent)); then need_build; fi

  local t0=$SECONDS h i pids=()
  lock
  teardown quiet

  mkdir -p "$LAB_DIR" "$LAB_DATA" /run/docker/plugins /etc/docker /run/containerd /var/lib/sluice /run/sluice /run/wireguard
  # Persistent mount namespaces need a private parent mount; on systemd machines / is shared.
  mount --bind "$LAB_DIR" "$LAB_DIR"
  mount --make-private "$LAB_DIR"
  cat >"$ENV_FILE" <<EOF
LAB_HOSTS=$hosts
LAB_TOPOLOGY=$topology
LAB_AGENT=$agent
LAB_BACKEND=$backend
LAB_STORE=$store
LAB_ETCD_TLS=$etcd_tls
LAB_ETCD_AUTH=$etcd_auth
LAB_ENCRYPTION=$encryption
EOF
  load_env

  say "starting lab '$LAB': $hosts hosts, $topology underlay"
  make_underlay
  make_etcd_secrets
  start_etcd
  for i in $(seq "$hosts"); do
    h=h$i
    make_host_net "$h"
    make_host_mntns "$h"
    start_dockerd "$h"
  done
  wait_etcd
  enable_etcd_auth
  for i in $(seq "$hosts"); do wait_dockerd "h$i"; done
  for i in $(seq "$hosts"); do import_image "h$i" & pids+=($!); done
  for i in "${pids[@]}"; do wait "$i" || exit 1; done
  if ((agent)); then
    for i in $(seq "$hosts"); do start_agent "h$i"; done
    for i in $(seq "$hosts"); do wait_agent "h$i"; done
  fi
  say "lab '$LAB' up in $((SECONDS - t0))s: etcd etcd://$(etcd_ip):2379, hosts:$(for i in $(seq "$hosts"); do printf ' h%s=%s,%s' "$i" "$(host_ip "h$i")" "$(host_ip6 "h$i")"; done)$( ((agent)) || echo ' (no agents)')"
}

require_tools() {
  local t missing=()
  for t in ip nsenter unshare setsid dockerd etcd busybox flock; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  docker_bin >/dev/null 2>&1 || missing+=(docker)
  ((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (run scripts/install-deps.sh)"
  [[ $(id -u) == 0 ]] || die "the lab needs root (network namespaces, dockerd)"
}

lock() {
  mkdir -p "$RUN_ROOT"
  exec 9>"$RUN_ROOT/.$LAB.lock"
  flock -w 300 9 || die "another lab.sh holds the lock for lab '$LAB'"
}

# -------------------------------------------------------------------------------- down

# teardown [quiet]: everything of this lab, in reverse order; tolerates any half-made state.
teardown() {
  local quiet=${1:-} d h
  if [[ ! -d $LAB_DIR && ! -d $LAB_DATA && -z $(lab_netns) ]]; then
    [[ -n $quiet ]] || say "lab '$LAB' is not up: nothing to do"
    return 0
  fi
  if [[ -n $quiet ]]; then say "cleaning up leftovers of lab '$LAB'"; else say "tearing down lab '$LAB'"; fi

  local hostdirs=()
  if [[ -d $LAB_DIR ]]; then
    for d in "$LAB_DIR"/h*/; do [[ -d $d ]] && hostdirs+=("${d%/}"); done
  fi

  # 1. containers, while dockerd and the agents still answer (the agent frees their addresses)
  local pids=()
  for d in "${hostdirs[@]}"; do
    if lab_pid "$d/dockerd.pid" >/dev/null && [[ -S $d/docker.sock ]]; then
      remove_containers "$d" & pids+=($!)
    fi
  done
  for h in "${pids[@]}"; do wait "$h" || true; done
  pids=()

  # 2. agents, 3. dockerd (and its containerd)
  for d in "${hostdirs[@]}"; do stop_pidfile "$d/agent.pid" "agent on ${d##*/}" TERM 15 & pids+=($!); done
  for h in "${pids[@]}"; do wait "$h" || true; done
  pids=()
  pids=()
  for d in "${hostdirs[@]}"; do
    { stop_pidfile "$d/dockerd.pid" "dockerd on ${d##*/}" TERM 30
      stop_pidfile "$d/exec/containerd/containerd.pid" "containerd on ${d##*/}" TERM 10; } & pids+=($!)
  done
  for h in "${pids[@]}"; do wait "$h" || true; done

  # 4. whatever those left: processes inside this lab's namespaces and cgroups are the lab's own
  local leftovers=()
  for d in "${hostdirs[@]}"; do
    mapfile -t -O "${#leftovers[@]}" leftovers < <(host_leftovers "$d")
  done
  reap_pids "the hosts" "${leftovers[@]}"

  # 5. etcd
  [[ -d $LAB_DIR ]] && stop_pidfile "$LAB_DIR/etcd.pid" etcd TERM 15

  # 6. namespaces (their veths, bridges, routes and iptables state die with them)
  local ns
  for ns in $(lab_netns); do
    local nspids=()
    mapfile -t nspids < <(ip netns pids "$ns" 2>/dev/null || true)
    reap_pids "netns $ns" "${nspids[@]}"
    ip netns del "$ns" 2>/dev/null || warn "could not delete netns $ns"
  done

  # 7. mounts and directories
  for d in "${hostdirs[@]}"; do
    if [[ -e $d/mntns ]]; then umount "$d/mntns" 2>/dev/null || true; fi
  done
  unmount_under "$LAB_DIR"
  unmount_under "$LAB_DATA"
  remove_cgroups
  rm -rf --one-file-system "$LAB_DIR" "$LAB_DATA"
  rmdir "$RUN_ROOT" "$DATA_ROOT" 2>/dev/null || true
  [[ -n $quiet ]] || say "lab '$LAB' is down"
}

remove_containers() {
  local d=$1 dk ids
  dk=$(docker_bin)
  ids=$(timeout 20 "$dk" -H "unix://$d/docker.sock" ps -aq 2>/dev/null) || return 0
  [[ -n $ids ]] || return 0
  # shellcheck disable=SC2086 # one id a word
  timeout 60 "$dk" -H "unix://$d/docker.sock" rm -f $ids >/dev/null 2>&1 ||
    warn "could not remove all containers on ${d##*/}"
}

# Names of this lab's network namespaces (exactly ours: other labs share the sluice- prefix).
lab_netns() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^sluice-${LAB}-(ul|h[0-9]+)\$" || true
}

# Pids left in a host's mount namespace or its containers' cgroup (a containerd-shim, or a
# container whose dockerd died hard): started by this lab, so stopped by it.
host_leftovers() {
  local d=$1 h ino cg
  h=${d##*/}
  {
    if [[ -e $d/mntns ]] && ino=$(stat -L -c %i "$d/mntns" 2>/dev/null); then
      find /proc/[0-9]*/ns/mnt -maxdepth 0 -printf '%p %l\n' 2>/dev/null |
        awk -v t="mnt:[$ino]" '$2 == t { split($1, a, "/"); print a[3] }' || true
    fi
    for cg in /sys/fs/cgroup/*/"sluice-lab-$LAB-$h" /sys/fs/cgroup/"sluice-lab-$LAB-$h"; do
      if [[ -d $cg ]]; then find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null || true; fi
    done
  } | sort -un
}

reap_pids() {
  local what=$1; shift
  local p live=()
  for p in "$@"; do
    [[ $p =~ ^[0-9]+$ && $p != "$$" ]] && alive "$p" && live+=("$p")
  done
  ((${#live[@]})) || return 0
  warn "stopping ${#live[@]} leftover process(es) of $what: ${live[*]}"
  kill -TERM "${live[@]}" 2>/dev/null || true
  for _ in $(seq 15); do
    local still=()
    for p in "${live[@]}"; do alive "$p" && still+=("$p"); done
    ((${#still[@]})) || return 0
    sleep 0.1
  done
  kill -KILL "${live[@]}" 2>/dev/null || true
  sleep 0.2
}

unmount_under() {
  local dir=$1 target
  [[ -n $dir ]] || return 0
  while read -r target; do
    umount -l "$target" 2>/dev/null || warn "could not unmount $target"
  done < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r)
}

remove_cgroups() {
  local cg
  for cg in /sys/fs/cgroup/*/sluice-lab-"$LAB"-h* /sys/fs/cgroup/sluice-lab-"$LAB"-h*; do
    [[ -d $cg && $cg =~ /sluice-lab-${LAB}-h[0-9]+$ ]] || continue
    find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

cmd_down() {
  while [[ $# -gt 0 ]]; do
    case $1 in
      --lab) set_lab "$2"; shift 2 ;;
      *) die "down: unknown argument '$1'" ;;
    esac
  done
  [[ $(id -u) == 0 ]] || die "the lab needs root"
  lock
  teardown
}

# ------------------------------------------------------------------------------ status

cmd_status() {
  load_env
  local pid i h d up=1
  printf 'lab %s: %s hosts, %s underlay, backend %s, encryption %s\n' "$LAB" "$LAB_HOSTS" "$LAB_TOPOLOGY" "$LAB_BACKEND" "$LAB_ENCRYPTION"
  if pid=$(lab_pid "$LAB_DIR/etcd.pid"); then
    printf '  etcd  etcd://%s:2379  pid %s\n' "$(etcd_ip)" "$pid"
  else
    printf '  etcd  etcd://%s:2379  STOPPED\n' "$(etcd_ip)"; up=0
  fi
  for i in $(seq "$LAB_HOSTS"); do
    h=h$i; d=$(host_dir "$h")
    printf '  %-4s  %-12s  %-16s  netns %-20s' "$h" "$(host_ip "$h")" "$(host_ip6 "$h")" "$(host_ns "$h")"
    if pid=$(lab_pid "$d/dockerd.pid"); then printf '  dockerd pid %-7s' "$pid"; else printf '  dockerd STOPPED    '; up=0; fi
    if pid=$(lab_pid "$d/agent.pid"); then printf '  agent pid %s' "$pid"
    elif ((LAB_AGENT)); then printf '  agent STOPPED'; up=0
    else printf '  agent -'; fi
    printf '\n'
  done
  if ((up)); then return 0; fi
  exit 1
}

# --------------------------------------------------------------------------- dispatch

# stop_signal COMMAND SIG: SIG, if it is one the stop commands take.
stop_signal() {
  [[ $2 == TERM || $2 == KILL ]] || die "$1: signal TERM or KILL"
  echo "$2"
}

main() {
  set_lab "${SLUICE_LAB:-lab}"
  while [[ ${1:-} == --lab ]]; do set_lab "${2:?--lab needs a name}"; shift 2; done
  local cmd=${1:-help}
  [[ $# -gt 0 ]] && shift
  while [[ ${1:-} == --lab ]]; do set_lab "${2:?--lab needs a name}"; shift 2; done

  case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status ;;
    docker)
      load_env; check_host "${1:?docker needs HOST}"
      local d; d=$(host_dir "$1"); shift
      exec "$(docker_bin)" -H "unix://$d/docker.sock" "$@" ;;
    exec)
      load_env
      local h=${1:?exec needs HOST}; shift
      [[ $# -gt 0 ]] || die "exec needs a command"
      if [[ $h == underlay ]]; then
        exec nsenter --net="/run/netns/$UL_NS" --wd="$PWD" -- "$@"
      fi
      check_host "$h"
      exec nsenter --mount="$(host_dir "$h")/mntns" --net="/run/netns/$(host_ns "$h")" --wd="$PWD" -- "$@" ;;
    sluice)
      load_env; check_host "${1:?sluice needs HOST}"
      local h=$1; shift
      # shellcheck disable=SC2046 # one NAME=VALUE a word; lab paths have no spaces
      SLUICE_STORE="$(agent_store)" exec env $(store_access_env) \
        $( ((LAB_ETCD_AUTH)) && echo "SLUICE_ETCD_PASSWORD=$(<"$LAB_DIR/etcd-sluice.password")") nsenter --mount="$(host_dir "$h")/mntns" \
        --net="/run/netns/$(host_ns "$h")" --wd="$PWD" -- node "$SLUICE_BIN" "$@" ;;
    ip) load_env; check_host "${1:?ip needs HOST}"; host_ip "$1" ;;
    ip6) load_env; check_host "${1:?ip6 needs HOST}"; host_ip6 "$1" ;;
    netns) load_env; check_host "${1:?netns needs HOST}"; host_ns "$1" ;;
    hosts) load_env; for i in $(seq "$LAB_HOSTS"); do echo "h$i"; done ;;
    etcd-endpoint) load_env; echo "etcd://$(etcd_ip):2379" ;;
    store-env)
      load_env; store_access_env
      if ((LAB_ETCD_AUTH)); then echo "SLUICE_ETCD_PASSWORD_FILE=$LAB_DIR/etcd-sluice.password"; fi ;;
    agent-stop)
      load_env; check_host "${1:?agent-stop needs HOST}"
      local sig; sig=$(stop_signal agent-stop "${2:-TERM}")
      stop_agent "$1" "$sig" ;;
    agent-start)
      load_env; check_host "${1:?agent-start needs HOST}"
      start_agent "$@"; wait_agent "$1" ;;
    dockerd-restart)
      load_env; check_host "${1:?dockerd-restart needs HOST}"
      stop_dockerd "$1"; start_dockerd "$1"; wait_dockerd "$1" ;;
    dockerd-stop)
      load_env; check_host "${1:?dockerd-stop needs HOST}"
      local sig; sig=$(stop_signal dockerd-stop "${2:-TERM}")
      stop_dockerd "$1" "$sig" ;;
    dockerd-start)
      load_env; check_host "${1:?dockerd-start needs HOST}"
      # After a crash, dockerd retries an absent network plugin for 15 s per endpoint it cleans up.
      start_dockerd "$1"; wait_dockerd "$1" 300 ;;
    etcd-stop)
      load_env
      local sig; sig=$(stop_signal etcd-stop "${1:-TERM}")
      stop_pidfile "$LAB_DIR/etcd.pid" etcd "$sig" 15 ;;
    etcd-start) load_env; start_etcd; wait_etcd ;;
    _mntns-setup) mntns_setup "$1" ;;
    help | -h | --help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
