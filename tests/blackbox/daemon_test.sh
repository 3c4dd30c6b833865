#!/usr/bin/env bash
# Black-box tests of the vmpoold daemon: --check-config, --version/--help,
# filling pools on a real redis-server, SIGHUP reload (good and bad
# configurations), SIGTERM, the embedded redis-server, and the pid file.
#   daemon_test.sh /path/to/vmpoold
set -u
VMPOOLD=$1
. "$(dirname "$0")/lib.sh"
bb_init daemon

# ---- --check-config, --version, --help, bad arguments --------------------
cat >"$BB_TMP/bad.yaml" <<'YAML'
:pools:
  - name: 'debian'
    size: five
    provider: dummy
  - name: 'debian'
    size: 1
YAML
out=$("$VMPOOLD" --config "$BB_TMP/bad.yaml" --check-config 2>&1)
bb_eq "--check-config exits 1 on a bad config" 1 $?
bb_check "--check-config names file:line:col and key path" \
  grep -qx "$BB_TMP/bad.yaml:3:5: pools\[0\].size: expected a non-negative integer, got \"five\"" <<<"$out"
bb_check "--check-config reports every error (duplicate pool too)" \
  grep -q "pools\[1\].name: duplicate pool name \"debian\"" <<<"$out"

cat >"$BB_TMP/good.yaml" <<YAML
:redis:
  socket: '$BB_TMP/redis.sock'
:config:
  task_limit: 4
  check_loop_delay_min: 1
  check_loop_delay_max: 2
:providers:
  :dummy:
    connection_pool_size: 4
    filename: '$BB_TMP/dummy.yaml'
:pools:
  - name: 'alpha'
    template: 'Templates/alpha'
    size: 3
    provider: dummy
  - name: 'beta'
    alias: ['b']
    template: 'Templates/beta'
    size: 2
    provider: dummy
YAML
out=$("$VMPOOLD" --config "$BB_TMP/good.yaml" --check-config 2>&1)
bb_eq "--check-config exits 0 on a good config" 0 $?
bb_check "--check-config summary" grep -q "OK (2 pools" <<<"$out"
out=$("$VMPOOLD" --version)
bb_check "--version prints the version" grep -Eq '^vmpoold [0-9]+\.[0-9]+\.[0-9]+$' <<<"$out"
bb_check "--help prints usage" bash -c "'$VMPOOLD' --help | grep -q -- '--check-config'"
"$VMPOOLD" --bogus >/dev/null 2>&1
bb_eq "an unknown option exits 2" 2 $?
"$VMPOOLD" --config "$BB_TMP/good.yaml" fly >/dev/null 2>&1
bb_eq "an unknown component word exits 2" 2 $?
out=$("$VMPOOLD" --config "$BB_TMP/good.yaml" --api-threads 0 2>&1)
bb_eq "--api-threads 0 exits 2" 2 $?
bb_check "--api-threads names the bad value" grep -q 'api-threads: expected 1-64, got "0"' <<<"$out"
"$VMPOOLD" --config "$BB_TMP/missing.yaml" --check-config >/dev/null 2>&1
bb_eq "a missing config file exits 1" 1 $?

# ---- fill, reload, stop on a real redis-server -----------------------------
bb_start_redis || { bb_fail "redis-server did not start"; bb_finish; exit 1; }
port=$(bb_free_port)
"$VMPOOLD" --config "$BB_TMP/good.yaml" --listen "127.0.0.1:$port" --api-threads 3 \
  --pidfile "$BB_TMP/vmpoold.pid" --log-file "$BB_TMP/vmpoold.log" &
daemon=$!
BB_PIDS+=("$daemon")
bb_check "pool alpha fills to 3" bb_wait_for "alpha full" 30 bb_pool_full alpha 3
bb_check "pool beta fills to 2" bb_wait_for "beta full" 30 bb_pool_full beta 2
bb_eq "pid file holds the daemon's pid" "$daemon" "$(cat "$BB_TMP/vmpoold.pid" 2>/dev/null)"
bb_check "API answers on --listen" bash -c "curl -sf http://127.0.0.1:$port/api/v3/status | grep -q '\"alpha\"'"
bb_check "the API runs --api-threads workers" grep -q "listening on 127.0.0.1:$port (3 workers)" "$BB_TMP/vmpoold.log"
bb_eq "vmpooler__pools lists the pools" "alpha beta" "$(bb_redis SMEMBERS vmpooler__pools | sort | xargs)"

# A checkout over the API; the engine refills the pool at once.
vm=$(curl -sf -X POST "http://127.0.0.1:$port/api/v3/vm/alpha" |
  sed -n 's/.*"hostname": "\([^".]*\).*/\1/p')
bb_check "checkout returned a VM name" test -n "$vm"
bb_eq "the VM is running" 1 "$(bb_redis SISMEMBER vmpooler__running__alpha "$vm")"
bb_check "alpha is refilled after the checkout" bb_wait_for "alpha refilled" 15 bb_pool_full alpha 3

# Reload: grow alpha, add gamma, drop beta.
sed -e 's/size: 3/size: 5/' -e "s/- name: 'beta'/- name: 'gamma'/" "$BB_TMP/good.yaml" \
  >"$BB_TMP/next.yaml"
cp "$BB_TMP/next.yaml" "$BB_TMP/good.yaml"
kill -HUP "$daemon"
bb_check "SIGHUP: alpha grows to 5" bb_wait_for "alpha 5" 30 bb_pool_full alpha 5
bb_check "SIGHUP: new pool gamma fills" bb_wait_for "gamma full" 30 bb_pool_full gamma 2
bb_check "SIGHUP: gamma is published" bb_wait_for "gamma published" 10 \
  bash -c "redis-cli -s '$BB_REDIS_SOCK' SISMEMBER vmpooler__pools gamma | grep -qx 1"

# A bad configuration is rejected and the old one stays in force.
cp "$BB_TMP/good.yaml" "$BB_TMP/keep.yaml"
printf ':pools:\n  - name: alpha\n    size: -4\n' >"$BB_TMP/good.yaml"
kill -HUP "$daemon"
bb_check "SIGHUP with a bad config logs the error" bb_wait_for "rejection logged" 10 \
  grep -q "new configuration rejected" "$BB_TMP/vmpoold.log"
bb_check "the bad config's error is logged with its position" \
  grep -q "good.yaml:3:5: pools\[0\].size: expected a non-negative integer, got -4" "$BB_TMP/vmpoold.log"
sleep 2
bb_check "the daemon is still running" kill -0 "$daemon"
bb_check "alpha keeps its size 5" bb_pool_full alpha 5
cp "$BB_TMP/keep.yaml" "$BB_TMP/good.yaml"

kill -TERM "$daemon"
wait "$daemon"
bb_eq "SIGTERM: exit status 0" 0 $?
bb_check "SIGTERM: pid file removed" test ! -e "$BB_TMP/vmpoold.pid"
bb_eq "SIGTERM: no lease left behind" "" "$(bb_redis --scan --pattern 'vmpooler__lease__*' | xargs)"
# The rejected reload is the only thing that may log at ERROR level.
bb_check "the log has no other ERROR line" bash -c \
  "! grep ' ERROR ' '$BB_TMP/vmpoold.log' | grep -v -e ' ERROR config: ' -e 'new configuration rejected'"

# A restart resumes: the pools are still full and nothing is re-cloned.
clones=$(bb_redis HLEN "vmpooler__clone__$(date +%F)")
"$VMPOOLD" --config "$BB_TMP/good.yaml" --manager --log-file "$BB_TMP/vmpoold2.log" &
daemon=$!
BB_PIDS+=("$daemon")
sleep 3
bb_check "restart: alpha still full" bb_pool_full alpha 5
bb_eq "restart: no new clones" "$clones" "$(bb_redis HLEN "vmpooler__clone__$(date +%F)")"
kill -TERM "$daemon"
wait "$daemon"
bb_eq "manager-only SIGTERM: exit 0" 0 $?

# ---- --daemonize ---------------------------------------------------------------
"$VMPOOLD" --config "$BB_TMP/good.yaml" --manager --daemonize \
  --pidfile "$BB_TMP/daemon.pid" --log-file "$BB_TMP/daemonized.log"
bb_eq "--daemonize: the launcher exits 0 at once" 0 $?
bb_check "--daemonize: pid file written" bb_wait_for "pid file" 10 test -s "$BB_TMP/daemon.pid"
dpid=$(cat "$BB_TMP/daemon.pid" 2>/dev/null)
[ -n "$dpid" ] && BB_PIDS+=("$dpid")
bb_check "--daemonize: the daemon runs in the background" kill -0 "$dpid"
bb_check "--daemonize: it is a session leader's child, detached from this shell" \
  bash -c "[ \"\$(ps -o sid= -p $dpid | tr -d ' ')\" != \"\$(ps -o sid= -p $$ | tr -d ' ')\" ]"
bb_check "--daemonize: it logs to the file" bb_wait_for "daemon log" 10 \
  grep -q "running (manager)" "$BB_TMP/daemonized.log"
kill -TERM "$dpid"
bb_check "--daemonize: SIGTERM stops it" bb_wait_for "daemon gone" 30 \
  bash -c "! kill -0 $dpid 2>/dev/null"
bb_check "--daemonize: pid file removed" test ! -e "$BB_TMP/daemon.pid"

# ---- embedded redis-server ---------------------------------------------------
mkdir -p "$BB_TMP/emb"
cat >"$BB_TMP/emb.yaml" <<YAML
:redis:
  state_dir: '$BB_TMP/emb/state'
:config:
  check_loop_delay_min: 1
:pools:
  - name: 'solo'
    template: 'Templates/solo'
    size: 2
YAML
"$VMPOOLD" --config "$BB_TMP/emb.yaml" --manager --log-file "$BB_TMP/emb.log" &
daemon=$!
BB_PIDS+=("$daemon")
BB_REDIS_SOCK=$BB_TMP/emb/state/redis.sock
bb_check "embedded: redis socket appears" bb_wait_for "embedded socket" 15 bb_redis PING
bb_check "embedded: pool fills" bb_wait_for "solo full" 30 bb_pool_full solo 2
rpid=$(cat "$BB_TMP/emb/state/redis.pid" 2>/dev/null)
bb_check "embedded: redis-server pid known" test -n "$rpid"
bb_check "embedded: state dir is private (0700)" \
  bash -c "[ \"\$(stat -c %a '$BB_TMP/emb/state')\" = 700 ]"
kill -TERM "$daemon"
wait "$daemon"
bb_eq "embedded: exit 0" 0 $?
bb_check "embedded: redis-server stopped with the daemon" \
  bb_wait_for "redis gone" 10 bash -c "! kill -0 $rpid 2>/dev/null"

bb_finish
