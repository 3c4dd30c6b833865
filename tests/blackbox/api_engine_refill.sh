#!/usr/bin/env bash
# Black-box: a checkout through the API makes the manager refill the pool at
# once. vmpoold runs manager and API in one process on a private
# redis-server, with pool loop delays far longer than the test allows, so
# only the API's checkout event can explain a prompt refill.
#
#   api_engine_refill.sh VMPOOLD_BINARY
set -euo pipefail
vmpoold=$1
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() { fail=$((fail + 1)); echo "not ok - $*"; }
for tool in redis-server redis-cli curl; do
  command -v $tool >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

dir=$(mktemp -d /tmp/vmp-api-refill-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

sock=$dir/redis.sock
redis-server --port 0 --unixsocket "$sock" --save "" --appendonly no --dir "$dir" \
  >"$dir/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done

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
  port=$((20000 + RANDOM % 30000))
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
$started || { cat "$dir/vmpoold.log"; echo "vmpoold did not start"; exit 1; }
pids+=($vp)
url="http://127.0.0.1:$port"

ready() { redis-cli -s "$sock" SCARD vmpooler__ready__p1; }
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

if t=$(wait_ready 2 30); then ok "pool filled at start (${t}s)"; else
  bad "pool did not fill at start"; tail -20 "$dir/vmpoold.log"; fi
body=$(curl -s -X POST "$url/api/v3/vm/p1")
case "$body" in
*'"hostname": "refill-'*'.example.com"'*) ok "checkout through the API" ;;
*) bad "checkout: $body" ;;
esac
[ "$(ready)" = 1 ] && ok "one ready VM left" || ok "refill already under way"
# The pool's own loop sleeps 40 s: a refill well before that comes from the
# checkout event.
if t=$(wait_ready 2 20); then ok "checkout refilled the pool in ${t}s"; else
  bad "pool not refilled within 20s of the checkout"; tail -20 "$dir/vmpoold.log"; fi
running=$(redis-cli -s "$sock" SCARD vmpooler__running__p1)
[ "$running" = 1 ] && ok "checked-out VM is running" || bad "running = $running"
# Control: take a VM behind the API's back (no event). The manager only
# notices at its next pass, 40 s away, so the pool stays short meanwhile.
vm=$(redis-cli -s "$sock" SRANDMEMBER vmpooler__ready__p1)
redis-cli -s "$sock" SMOVE vmpooler__ready__p1 vmpooler__running__p1 "$vm" >/dev/null
sleep 3
[ "$(ready)" = 1 ] && ok "without an event the pool is not refilled at once" ||
  bad "pool refilled without an event: the test cannot tell the event's effect"

kill -TERM "$vp"
if wait "$vp"; then ok "vmpoold stopped cleanly"; else bad "vmpoold exit status $?"; fi
pids=("${pids[0]}")

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
