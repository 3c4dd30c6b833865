#!/usr/bin/env bash
# Black-box: a checkout through the API makes the manager refill the pool at
# once. vmpoold runs manager and API in one process on a private
# redis-server, with pool loop delays far longer than the test allows, so
# only the API's checkout event can explain a prompt refill.
#
#   api_engine_refill.sh VMPOOLD_BINARY
set -uo pipefail
vmpoold=$1
for tool in redis-server redis-cli curl; do
  command -v $tool >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
. "$(dirname "$0")/lib.sh"
bb_init api_engine_refill
bb_start_redis || { bb_fail "redis-server did not start"; bb_finish; exit 1; }
dir=$BB_TMP
sock=$BB_REDIS_SOCK

cat >"$dir/vmpool.yaml" <<YAML
---
:providers:
  :dummy:
    filename: '$dir/dummy.yaml'
    createvm_max_time: 0
    destroyvm_max_time: 0
:redis:
  socket: '$sock'
:config:
  vm_checktime: 1
  check_loop_delay_min: 40
  check_loop_delay_max: 40
  prefix: 'refill-'
:dns_configs:
  :example:
    dns_class: dynamic-dns
    domain: example.com
:pools:
  - name: p1
    template: templates/p1
    size: 2
    provider: dummy
    dns_plugin: example
YAML

started=false
for _ in 1 2 3 4 5; do
  port=$(bb_free_port)
  "$vmpoold" --config "$dir/vmpool.yaml" --listen "127.0.0.1:$port" >"$dir/vmpoold.log" 2>&1 &
  vp=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/api/v3/vm" && { started=true; break; }
    kill -0 "$vp" 2>/dev/null || break
    sleep 0.1
  done
  $started && break
  kill "$vp" 2>/dev/null || true
  wait "$vp" 2>/dev/null || true
done
$started || { bb_fail "vmpoold did not start"; bb_finish; exit 1; }
BB_PIDS+=("$vp")
url="http://127.0.0.1:$port"

ready() { bb_scard ready p1; }
wait_ready() { # wait_ready N SECONDS -> prints elapsed seconds or fails
  local start=$(date +%s.%N)
  local deadline=$(( $(date +%s) + $2 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if [ "$(ready)" -ge "$1" ]; then
      awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
      return 0
    fi
    sleep 0.1
  done
  return 1
}

if t=$(wait_ready 2 30); then bb_ok "pool filled at start (${t}s)"; else
  bb_fail "pool did not fill at start"; fi
body=$(curl -s -X POST "$url/api/v3/vm/p1")
case "$body" in
*'"hostname": "refill-'*'.example.com"'*) bb_ok "checkout through the API" ;;
*) bb_fail "checkout: $body" ;;
esac
[ "$(ready)" = 1 ] && bb_ok "one ready VM left" || bb_ok "refill already under way"
# The pool's own loop sleeps 40 s: a refill well before that comes from the
# checkout event.
if t=$(wait_ready 2 20); then bb_ok "checkout refilled the pool in ${t}s"; else
  bb_fail "pool not refilled within 20s of the checkout"; fi
running=$(bb_scard running p1)
[ "$running" = 1 ] && bb_ok "checked-out VM is running" || bb_fail "running = $running"
# Control: take a VM behind the API's back (no event). The manager only
# notices at its next pass, 40 s away, so the pool stays short meanwhile.
vm=$(bb_redis SRANDMEMBER vmpooler__ready__p1)
bb_redis SMOVE vmpooler__ready__p1 vmpooler__running__p1 "$vm" >/dev/null
sleep 3
[ "$(ready)" = 1 ] && bb_ok "without an event the pool is not refilled at once" ||
  bb_fail "pool refilled without an event: the test cannot tell the event's effect"

kill -TERM "$vp"
if wait "$vp"; then bb_ok "vmpoold stopped cleanly"; else bb_fail "vmpoold exit status $?"; fi
BB_PIDS=("$BB_REDIS_PID")

bb_finish
