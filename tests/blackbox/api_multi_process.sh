#!/usr/bin/env bash
# Black-box: two API server processes share one private redis-server; 8
# concurrent clients check out two-pool sets through both. No VM may be
# handed out twice, no checkout may be partial, and Redis must end up with
# exactly the VMs handed out in running. Then a few endpoints over plain
# curl (shapes, byte-for-byte pretty printing, error paths, Redis unchanged).
#
#   api_multi_process.sh SERVER_BINARY RACE_CLIENT_BINARY
set -uo pipefail
server=$1
race=$2
for tool in redis-server redis-cli curl; do
  if ! command -v $tool >/dev/null; then
    echo "SKIP: $tool not installed"
    exit 77
  fi
done
. "$(dirname "$0")/lib.sh"
bb_init api_multi_process
bb_start_redis || { bb_fail "redis-server did not start"; bb_finish; exit 1; }
dir=$BB_TMP
sock=$BB_REDIS_SOCK
rc() { bb_redis "$@"; }

cat >"$dir/vmpool.yaml" <<YAML
---
:config:
  vm_lifetime: 12
:dns_configs:
  :example:
    dns_class: dynamic-dns
    domain: example.com
:pools:
  - name: pool1
    template: templates/pool1
    size: 40
    dns_plugin: example
  - name: pool3
    template: templates/pool3
    size: 25
    dns_plugin: example
YAML

now="2023-11-15 01:13:20 +0000"
{
  for i in $(seq -w 1 40); do
    echo "SADD vmpooler__ready__pool1 a$i"
    echo "HSET vmpooler__vm__a$i template pool1 pool pool1 clone \"$now\" ready \"$now\""
  done
  for i in $(seq -w 1 25); do
    echo "SADD vmpooler__ready__pool3 b$i"
    echo "HSET vmpooler__vm__b$i template pool3 pool pool3 clone \"$now\" ready \"$now\""
  done
} | rc >/dev/null

for n in 1 2; do
  "$server" --config "$dir/vmpool.yaml" --redis-socket "$sock" --threads 2 \
    --port-file "$dir/port$n" >"$dir/server$n.log" 2>&1 &
  BB_PIDS+=($!)
done
for n in 1 2; do
  for _ in $(seq 100); do [ -s "$dir/port$n" ] && break; sleep 0.05; done
  [ -s "$dir/port$n" ] || { bb_fail "server $n did not start"; bb_finish; exit 1; }
done
u1="http://127.0.0.1:$(cat "$dir/port1")"
u2="http://127.0.0.1:$(cat "$dir/port2")"

# --- concurrent multi-pool checkout across two processes ---
out=$("$race" 8 10 '{"pool1":"1","pool3":"1"}' "$u1" "$u2") && bb_ok "race client: $out" ||
  bb_fail "race client: $out"
bb_eq "25 two-pool checkouts succeed (50 VMs)" \
  "checked out 50 VMs in 25 checkouts, 0 duplicates, 0 partial, 0 errors" "$out"
bb_eq "pool3 ready empty" 0 "$(rc SCARD vmpooler__ready__pool3)"
bb_eq "pool3 running" 25 "$(rc SCARD vmpooler__running__pool3)"
bb_eq "pool1 running" 25 "$(rc SCARD vmpooler__running__pool1)"
bb_eq "pool1 ready left" 15 "$(rc SCARD vmpooler__ready__pool1)"
bb_eq "pool1 migrating" 25 "$(rc SCARD vmpooler__migrating__pool1)"
bb_eq "active hash" 25 "$(rc HLEN vmpooler__active__pool1)"

# --- a few endpoints as a client sees them ---
body=$(curl -s "$u1/api/v3/totalrunning")
bb_eq "totalrunning pretty" $'{\n  "running": 50\n}' "$body"
body=$(curl -s "$u2/api/v3/vm")
bb_eq "pool list pretty" $'[\n  "pool1",\n  "pool3"\n]' "$body"
code=$(curl -s -o "$dir/b" -w '%{http_code}' "$u1/api/v3/nope")
bb_eq "unknown route 404" $'404 {\n  "ok": false\n}' "$code $(cat "$dir/b")"
ctype=$(curl -s -o /dev/null -w '%{content_type}' "$u1/api/v3/status")
bb_eq "status content type" "application/json" "$ctype"
vm=$(rc SRANDMEMBER vmpooler__running__pool1)
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$u2/api/v3/vm/$vm.example.com")
bb_eq "return over the other process" 200 "$code"
bb_eq "returned VM completed" 1 "$(rc SISMEMBER vmpooler__completed__pool1 "$vm")"
# Every key with its serialized value (DUMP): equal text = unchanged Redis.
digest() {
  rc --scan | sort | while read -r k; do
    printf '%s ' "$k"
    rc --no-raw DUMP "$k"
  done | md5sum
}
before=$(digest)
[ "$(rc --scan | wc -l)" -gt 60 ] || bb_fail "digest sees the keys"
for req in "POST /api/v3/vm {bad" "POST /api/v3/vm {\"pool1\":\"1000\"}" \
  "POST /api/v3/vm {\"nosuch\":1}" "PUT /api/v3/vm/$vm {\"bogus\":1}" \
  "POST /api/v3/vm/pool1%ZZ -" "DELETE /api/v3/vm/nosuch -" "GET /api/v3/vm/bad_host -"; do
  set -- $req
  if [ "$3" = - ]; then
    curl -s -o /dev/null -X "$1" "$u1$2"
  else
    curl -s -o /dev/null -X "$1" --data-binary "$3" "$u1$2"
  fi
done
bb_eq "bad requests leave Redis unchanged" "$before" "$(digest)"
# and the digest does see a change
rc HSET vmpooler__vm__a01 probe 1 >/dev/null
[ "$before" != "$(digest)" ] && bb_ok "digest notices a change" || bb_fail "digest blind to a change"

bb_finish
