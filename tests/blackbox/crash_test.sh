#!/usr/bin/env bash
# Crash test: vmpoold with a file-backed dummy provider and a real
# redis-server is killed with SIGKILL at random moments while its pools
# fill and churn (20+ times), and restarted each time. At the end the pools
# reach their size, and the dummy's file and Redis agree exactly: every VM
# the backend holds is known to Redis and every VM Redis tracks exists in
# the backend. No VM is lost or leaked.
#   crash_test.sh /path/to/vmpoold [rounds]
set -u
VMPOOLD=$1
ROUNDS=${2:-${VMP_CRASH_ROUNDS:-20}}
. "$(dirname "$0")/lib.sh"
bb_init crash

bb_start_redis || { bb_fail "redis-server did not start"; bb_finish; exit 1; }
cat >"$BB_TMP/crash.yaml" <<YAML
:redis:
  socket: '$BB_TMP/redis.sock'
:config:
  task_limit: 6
  check_loop_delay_min: 1
  check_loop_delay_max: 2
  vm_checktime: 0
  prefix: 'crash-'
:providers:
  :dummy:
    filename: '$BB_TMP/dummy.yaml'
    connection_pool_size: 6
    createvm_max_time: 0.3
    destroyvm_max_time: 0.2
    createvm_fail_percent: 10
    destroyvm_fail_percent: 10
    vmready_fail_percent: 10
:pools:
  - name: 'one'
    template: 'Templates/one'
    size: 6
  - name: 'two'
    template: 'Templates/two'
    size: 4
YAML
# Ready VMs are checked on every pass (vm_checktime 0) and one check in ten
# fails, so VMs keep moving to completed and being replaced: the manager
# clones and destroys all the time, and the kills land in the middle of both.

start_daemon() {
  "$VMPOOLD" --config "$BB_TMP/$1" --manager --log-file "$BB_TMP/vmpoold.log" &
  DAEMON=$!
  BB_PIDS+=("$DAEMON")
}

for round in $(seq "$ROUNDS"); do
  start_daemon crash.yaml
  # 0.2 .. 2.5 s into the run.
  sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.2 + (r % 231) / 100 }')"
  kill -KILL "$DAEMON" 2>/dev/null
  wait "$DAEMON" 2>/dev/null
done
bb_ok "$ROUNDS SIGKILLs during fill and churn"

# Settle: no more expiry and no failures, so the pools can become stable.
sed -e 's/_fail_percent: 10/_fail_percent: 0/' \
  "$BB_TMP/crash.yaml" >"$BB_TMP/settle.yaml"
start_daemon settle.yaml
bb_check "pool one reaches its size after the crashes" \
  bb_wait_for "one full" 90 bb_pool_full one 6
bb_check "pool two reaches its size after the crashes" \
  bb_wait_for "two full" 90 bb_pool_full two 4
for pool in one two; do
  echo "# $pool: ready $(bb_scard ready $pool) pending $(bb_scard pending $pool)" \
    "running $(bb_scard running $pool) completed $(bb_scard completed $pool)" \
    "discovered $(bb_scard discovered $pool)"
done
kill -TERM "$DAEMON"
wait "$DAEMON"
bb_eq "graceful stop after the crashes" 0 $?

# The dummy's file, in vmpooler's format: "  - name: <vm>" per record.
backend=$(sed -n 's/^ *- *name: *["'"'"']\{0,1\}\([^"'"'"']*\).*/\1/p' "$BB_TMP/dummy.yaml" | sort)
tracked=$(for pool in one two; do
  for state in pending ready running completed discovered; do
    bb_redis SMEMBERS "vmpooler__${state}__$pool"
  done
done | grep -v '^$' | sort)
bb_eq "backend holds 10 VMs" 10 "$(grep -c . <<<"$backend")"
bb_eq "every VM in the backend is in Redis and every VM in Redis is in the backend" \
  "$backend" "$tracked"
orphans=$(comm -13 <(echo "$tracked") \
  <(bb_redis --scan --pattern 'vmpooler__vm__*' | sed 's/^vmpooler__vm__//' | sort) |
  while read -r vm; do
    [ -n "$vm" ] && [ "$(bb_redis TTL "vmpooler__vm__$vm")" = "-1" ] && echo "$vm"
  done)
bb_eq "every VM hash without a pool set is on its way out (has a TTL)" "" "$orphans"
bb_eq "no replenishment clone is counted in flight" 0 "$(bb_redis GET vmpooler__tasks__clone)"
bb_check "no temporary dummy file left behind" \
  bash -c "! ls '$BB_TMP'/dummy.yaml.tmp.* >/dev/null 2>&1"
bb_finish
