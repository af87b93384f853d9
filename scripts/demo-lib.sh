# shellcheck shell=bash
# The demo scenario, shared by the local demo (scripts/demo.sh, hosts are lab namespaces) and the
# Vagrant demo (vagrant/demo.sh, hosts are VMs), so running the local one exercises both.
#
# The caller sources this file and defines:
#   on_docker HOST ARGS…   run the docker CLI on HOST (stdout/stderr through, its exit code back)
#   on_sluice HOST ARGS…   run the sluice CLI on HOST, with the cluster's store
#   DEMO_HOSTS=(A B C)     three host names: the client runs on A, web servers on B and C
#   DEMO_POLICY=PATH       scripts/demo-policy.yaml as HOST sees it
# then calls demo_scenario; it returns non-zero if any check failed.

DEMO_NET=${DEMO_NET:-demo}
DEMO_SUBNET=${DEMO_SUBNET:-10.96.0.0/16}
DEMO_SUBNET6=${DEMO_SUBNET6:-fd00:96::/64}
DEMO_IMAGE=${DEMO_IMAGE:-sluice-test/busybox:local}
DEMO_STEP=0
DEMO_PASSED=0
DEMO_FAILED=0

if [[ -t 1 ]]; then
  _B=$'\e[1m' _G=$'\e[32m' _R=$'\e[31m' _D=$'\e[2m' _N=$'\e[0m'
else
  _B='' _G='' _R='' _D='' _N=''
fi

demo_heading() {
  DEMO_STEP=$((DEMO_STEP + 1))
  printf '\n%s== %d. %s%s\n' "$_B" "$DEMO_STEP" "$*" "$_N"
}

demo_note() { printf '   %s%s%s\n' "$_D" "$*" "$_N"; }

# demo_run HOST docker ARGS…: show the command as typed on HOST, run it, print its output
# indented (IDs shortened as docker ps shows them).
demo_run() {
  local host=$1; shift
  [[ $1 == docker ]] && shift
  printf '%s[%s]$ docker %s%s\n' "$_D" "$host" "$*" "$_N"
  local out rc=0
  out=$(on_docker "$host" "$@" 2>&1) || rc=$?
  [[ -z $out ]] || printf '%s\n' "$out" | sed -E 's/^([0-9a-f]{12})[0-9a-f]{52}$/\1/; s/^/   /'
  if ((rc != 0)); then
    printf '   %sFAIL%s  exit %d\n' "$_R" "$_N" "$rc"
    DEMO_FAILED=$((DEMO_FAILED + 1))
  fi
  return "$rc"
}

# demo_check WHAT TRIES CMD…: a check that may need a few tries while the cluster converges.
demo_check() {
  local what=$1 tries=$2 i out=''; shift 2
  for ((i = 1; i <= tries; i++)); do
    if out=$("$@" 2>&1); then
      printf '   %sok%s    %s\n' "$_G" "$_N" "$what"
      DEMO_PASSED=$((DEMO_PASSED + 1))
      return 0
    fi
    sleep 1
  done
  printf '   %sFAIL%s  %s\n' "$_R" "$_N" "$what"
  [[ -z $out ]] || printf '%s\n' "$out" | tail -n 3 | sed 's/^/         /'
  DEMO_FAILED=$((DEMO_FAILED + 1))
  return 1
}

demo_ip() { # HOST CONTAINER [IPAddress|GlobalIPv6Address] -> its address on the demo network
  on_docker "$1" inspect -f "{{(index .NetworkSettings.Networks \"$DEMO_NET\").${3:-IPAddress}}}" "$2"
}

# Remove what an earlier run left on the hosts (quietly; nothing there is fine).
demo_clean() {
  local h
  on_sluice "${DEMO_HOSTS[0]}" policy rm web-from-client >/dev/null 2>&1 || true
  for h in "${DEMO_HOSTS[@]}"; do
    on_docker "$h" rm -f "client-$h" "web-$h" "intruder-$h" >/dev/null 2>&1 || true
    on_docker "$h" network rm "$DEMO_NET" >/dev/null 2>&1 || true
  done
}

demo_scenario() {
  local a=${DEMO_HOSTS[0]} b=${DEMO_HOSTS[1]} c=${DEMO_HOSTS[2]} h ip page
  demo_clean

  demo_heading "One dual-stack network, created on every host (same subnets = one cluster network)"
  for h in "${DEMO_HOSTS[@]}"; do
    demo_run "$h" docker network create -d sluice --ipam-driver sluice --ipv6 --subnet "$DEMO_SUBNET" --subnet "$DEMO_SUBNET6" "$DEMO_NET" || return 1
  done

  demo_heading "Web servers on $b and $c, a client on $a"
  for h in "$b" "$c"; do
    demo_run "$h" docker run -d --name "web-$h" --network "$DEMO_NET" --label role=web "$DEMO_IMAGE" httpd -f -p 80 -h /www || return 1
  done
  demo_run "$a" docker run -d --name "client-$a" --network "$DEMO_NET" --label role=client "$DEMO_IMAGE" sleep 3600 || return 1

  demo_heading "Addresses (docker inspect)"
  declare -gA DEMO_ADDR=() DEMO_ADDR6=()
  for h in "$a" "$b" "$c"; do
    local name=web-$h
    [[ $h == "$a" ]] && name=client-$h
    ip=$(demo_ip "$h" "$name" 2>&1) || ip="?"
    DEMO_ADDR[$h]=$ip
    DEMO_ADDR6[$h]=$(demo_ip "$h" "$name" GlobalIPv6Address 2>&1) || DEMO_ADDR6[$h]="?"
    printf '   %-14s on %-6s %-14s %s\n' "$name" "$h" "$ip" "${DEMO_ADDR6[$h]}"
  done

  demo_heading "Across hosts, from client-$a on $a"
  for h in "$b" "$c"; do
    ip=${DEMO_ADDR[$h]}
    demo_check "ping web-$h ($ip) on $h" 10 on_docker "$a" exec "client-$a" ping -c1 -W1 "$ip" || true
    demo_check "GET http://$ip/ answers \"hello from $h\"" 5 demo_fetch "$a" "$ip" "hello from $h" "client-$a" || true
    demo_check "GET http://web-$h/ by name (sluice DNS) answers \"hello from $h\"" 5 demo_fetch "$a" "web-$h" "hello from $h" "client-$a" || true
  done
  ip=${DEMO_ADDR6[$b]}
  demo_check "ping IPv6 web-$b ($ip) on $b" 10 on_docker "$a" exec "client-$a" ping -c1 -W1 "$ip" || true

  demo_heading "Policy by label: web servers take HTTP from role=client only"
  demo_run "$a" docker run -d --name "intruder-$a" --network "$DEMO_NET" --label role=other "$DEMO_IMAGE" sleep 3600 || return 1
  printf '%s[%s]$ sluice policy apply -f scripts/demo-policy.yaml%s\n' "$_D" "$a" "$_N"
  on_sluice "$a" policy apply -f "$DEMO_POLICY" 2>&1 | sed 's/^/   /'
  for h in "$b" "$c"; do
    ip=${DEMO_ADDR[$h]}
    demo_check "client-$a still gets http://$ip/ on $h" 5 demo_fetch "$a" "$ip" "hello from $h" "client-$a" || true
    demo_check "intruder-$a (role=other) is refused by web-$h" 5 demo_refused "$a" "$ip" "intruder-$a" || true
  done
  ip=${DEMO_ADDR6[$b]}
  demo_check "intruder-$a is refused by web-$b over IPv6 too" 5 demo_refused "$a" "[$ip]" "intruder-$a" || true
  ((DEMO_FAILED == 0))
}

demo_refused() { # HOST IP CONTAINER: the fetch must fail
  if on_docker "$1" exec "$3" timeout 2 wget -q -O- "http://$2/" >/dev/null 2>&1; then
    echo "the connection went through"
    return 1
  fi
}

demo_fetch() { # HOST IP EXPECTED CONTAINER: fetch the page from the container, compare
  local page
  page=$(on_docker "$1" exec "$4" timeout 3 wget -q -O- "http://$2/") || return 1
  [[ $page == *"$3"* ]] || { echo "got: $page"; return 1; }
}

demo_summary() {
  local total=$((DEMO_PASSED + DEMO_FAILED))
  if ((DEMO_FAILED == 0)); then
    printf '\n%s%sAll %d checks passed.%s\n' "$_B" "$_G" "$total" "$_N"
  else
    printf '\n%s%s%d of %d checks failed.%s\n' "$_B" "$_R" "$DEMO_FAILED" "$total" "$_N"
  fi
}
