#!/usr/bin/env bash
# Black-box tests of Lua in vmpoold: configuration in Lua (--check-config,
# --lua), a Lua provider filling its pool on a real redis-server, a Lua
# sizing and naming policy, and policies that raise, loop forever or answer
# garbage without stopping the engine; SIGHUP reloads the policy.
#   lua_test.sh /path/to/vmpoold /path/to/source
set -u
VMPOOLD=$1
SRC=$2
. "$(dirname "$0")/lib.sh"
bb_init lua

# ---- configuration in Lua ---------------------------------------------------
cat >"$BB_TMP/bad.lua" <<'LUA'
for i = 1, 2 do
  vmpool.pool{ name = "gen-" .. i, size = i == 2 and "two" or 1 }
end
LUA
cat >"$BB_TMP/min.yaml" <<'YAML'
:pools:
  - name: 'plain'
    size: 1
YAML
out=$("$VMPOOLD" --config "$BB_TMP/min.yaml" --lua "$BB_TMP/bad.lua" --check-config 2>&1)
bb_eq "--check-config exits 1 on a bad Lua pool" 1 $?
bb_check "the error names the Lua file and line" \
  grep -q "$BB_TMP/bad.lua:2:0: pools\[2\].size: expected a non-negative integer" <<<"$out"

echo 'vmpool.pool{ name = "gen", size = 1 } error("stop here")' >"$BB_TMP/raise.lua"
out=$("$VMPOOLD" --config "$BB_TMP/min.yaml" --lua "$BB_TMP/raise.lua" --check-config 2>&1)
bb_eq "--check-config exits 1 when the Lua file raises" 1 $?
bb_check "the error carries a traceback" grep -q "stack traceback" <<<"$out"
bb_check "... and the file:line" grep -q "raise.lua:1: stop here" <<<"$out"

echo 'for i = 1, 3 do vmpool.pool{ name = "gen-" .. i, size = i } end' >"$BB_TMP/gen.lua"
out=$("$VMPOOLD" --config "$BB_TMP/min.yaml" --lua "$BB_TMP/gen.lua" --check-config 2>&1)
bb_eq "--check-config accepts generated pools" 0 $?
bb_check "generated pools are counted" grep -q "OK (4 pools" <<<"$out"

# ---- a Lua provider and Lua policies on a real redis-server --------------------
cat >"$BB_TMP/policy.lua" <<'LUA'
local n = 0
vmpool.policy{ pools = "luap", vm_name = function(pool) n = n + 1 return ("lua-%05d"):format(n) end }
vmpool.policy{ pools = "sized", pool_size = function(pool, stats) return SIZED or 4 end }
vmpool.policy{ pools = "raiser", pool_size = function() error("sizing service down") end }
vmpool.policy{ pools = "looper", pool_size = function() while true do end end }
vmpool.policy{ pools = "garbage", pool_size = function() return "lots" end,
               lifetime = function() return {} end }
vmpool.policy{ on_event = function(ev) if ev.kind == "ready" then error("listener broke") end end }
LUA
cat >"$BB_TMP/vmpool.yaml" <<YAML
:redis:
  socket: '$BB_TMP/redis.sock'
:config:
  task_limit: 8
  check_loop_delay_min: 1
  check_loop_delay_max: 2
  lua_instruction_limit: 2000000
  lua:
    - '$SRC/lua/vmpool/examples/dummy_provider.lua'
    - '$BB_TMP/policy.lua'
:providers:
  :dummy:
    connection_pool_size: 8
:pools:
  - { name: 'luap', template: 't/luap', size: 3, provider: lua_dummy }
  - { name: 'sized', template: 't/sized', size: 1, provider: dummy }
  - { name: 'raiser', template: 't/raiser', size: 2, provider: dummy }
  - { name: 'looper', template: 't/looper', size: 2, provider: dummy }
  - { name: 'garbage', template: 't/garbage', size: 2, provider: dummy }
YAML
bb_start_redis || { bb_fail "redis-server did not start"; bb_finish; exit 1; }
port=$(bb_free_port)
log=$BB_TMP/vmpoold.log
"$VMPOOLD" --config "$BB_TMP/vmpool.yaml" --listen "127.0.0.1:$port" --log-file "$log" &
daemon=$!
BB_PIDS+=("$daemon")

bb_check "the Lua provider fills its pool" bb_wait_for "luap full" 60 bb_pool_full luap 3
bb_check "the sizing policy grows 'sized' to 4" bb_wait_for "sized at 4" 60 bb_pool_full sized 4
bb_check "a raising pool_size: built-in size" bb_wait_for "raiser full" 60 bb_pool_full raiser 2
bb_check "a looping pool_size: built-in size" bb_wait_for "looper full" 60 bb_pool_full looper 2
bb_check "a garbage pool_size: built-in size" bb_wait_for "garbage full" 60 bb_pool_full garbage 2
names=$(bb_redis SMEMBERS vmpooler__ready__luap | sort | xargs)
bb_check "the naming policy named the VMs ($names)" \
  bash -c "[[ '$names' =~ ^lua-[0-9]{5}\ lua-[0-9]{5}\ lua-[0-9]{5}$ ]]"
bb_check "the raise is logged with its traceback" \
  bash -c "grep -A3 'WARN  lua.policy: pool=raiser' '$log' | grep -q 'stack traceback'"
bb_check "... and its message" grep -q "policy.lua:4: sizing service down" "$log"
bb_check "the endless loop is cut off" grep -q "pool=looper.*instruction limit exceeded" "$log"
bb_check "the garbage answer is named" grep -q "pool=garbage.*returned \"lots\"" "$log"
bb_check "a failing on_event is logged" grep -q "listener broke" "$log"

# the engine keeps working: a checkout over the API is refilled
vm=$(curl -sf -X POST "http://127.0.0.1:$port/api/v3/vm/luap" |
  sed -n 's/.*"hostname": "\([^".]*\).*/\1/p')
bb_check "checkout of a Lua provider's VM ($vm)" bash -c "[[ '$vm' =~ ^lua-[0-9]{5}$ ]]"
bb_check "luap is refilled" bb_wait_for "luap refilled" 30 bb_pool_full luap 3
curl -sf -X DELETE "http://127.0.0.1:$port/api/v3/vm/$vm" >/dev/null
bb_check "the returned VM is destroyed" bb_wait_for "luap destroyed" 30 \
  bash -c "[ \"\$(redis-cli -s '$BB_REDIS_SOCK' SISMEMBER vmpooler__completed__luap '$vm')\" = 0 ] &&
           [ \"\$(redis-cli -s '$BB_REDIS_SOCK' SISMEMBER vmpooler__running__luap '$vm')\" = 0 ]"

# SIGHUP: the policy file changed, the pool follows
sed -i 's/return SIZED or 4/return 2/' "$BB_TMP/policy.lua"
kill -HUP "$daemon"
bb_check "after SIGHUP 'sized' shrinks to 2" bb_wait_for "sized at 2" 60 bb_pool_full sized 2
bb_check "the daemon is still running" kill -0 "$daemon"

kill -TERM "$daemon"
wait "$daemon"
bb_eq "SIGTERM: exit status 0" 0 $?
bb_check "no ERROR line in the log" bash -c "! grep -q ' ERROR ' '$log'"
bb_finish
