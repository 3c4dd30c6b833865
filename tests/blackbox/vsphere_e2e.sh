#!/usr/bin/env bash
# End to end: vmpoold with vSphere pools on vcsim (a private simulator) and a
# real redis-server. Covers, through the daemon, its HTTP API and vcsim's
# SOAP inventory:
#   - filling pools by cloning a template made in the simulator;
#   - readiness by what VMware Tools reports (ready_check: ip, the address
#     set through extra_config) on a port this test listens on: clones stay
#     pending until the port answers;
#   - checkout with migration (migration_limit): the VM moves to the least
#     used host of its cluster, with migration_time / checkout_to_migration
#     in Redis; a second checkout whose host is already the least used stays;
#   - a disk, two snapshots and a revert on the checked-out VM, queued
#     through the API and carried out by the engine;
#   - return (DELETE): running -> completed -> destroyed in vcsim, refill;
#   - a clone that outlives task_timeout: the VM vcsim made anyway is
#     discovered and destroyed by the engine's reconcile;
#   - ready_ttl: a ready VM expires after a minute, is destroyed, replaced.
# Skipped (77) when vcsim cannot start, failed when VMP_REQUIRE_VCSIM=1.
#
#   vsphere_e2e.sh VMPOOLD SOURCE_DIR
set -u
VMPOOLD=$1
SRC=$2
here=$(dirname "$0")
. "$here/lib.sh"
. "$here/vsphere_lib.sh"
bb_init vsphere-e2e
t_start=$SECONDS

for tool in redis-server redis-cli curl perl; do
  command -v $tool >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

# ---- vcsim, a template, host loads ------------------------------------------
vs_start_vcsim "$SRC"
bb_check "vcsim: login" vs_login
bb_check "vcsim: template DC0/vm/templates/base made from DC0_C0_RP0_VM0" \
  vs_make_template DC0_C0_RP0_VM0 templates base DC0_C0
tmpl_host=$(vs_vm_host DC0/vm/templates/base)
bb_check "the template has a host ($tmpl_host)" test -n "$tmpl_host"
# Clones sit on the template's host (vcsim ignores location.host). Make that
# host busy and another one the least used, so a checkout has to move.
hosts=$(vs_control GET host-stats | awk '$1 ~ /^DC0_C0_H/ {print $1}' | sort)
target=""
for h in $hosts; do
  if [ "$h" != "$tmpl_host" ] && [ -z "$target" ]; then target=$h; fi
done
bb_check "the cluster has another host to move to ($target)" test -n "$target"
for h in $hosts; do
  if [ "$h" = "$tmpl_host" ]; then cpu=3000; elif [ "$h" = "$target" ]; then cpu=150; else cpu=1500; fi
  vs_host_cpu "$h" "$cpu" || bb_fail "host-stats for $h"
done

# ---- redis, config, vmpoold ---------------------------------------------------
bb_start_redis || { bb_fail "redis-server did not start"; bb_finish; exit 1; }
ready_port=$(bb_free_port)
api_port=$(bb_free_port)
cat >"$BB_TMP/vmpool.yaml" <<YAML
:redis:
  socket: '$BB_TMP/redis.sock'
:config:
  task_limit: 6
  migration_limit: 2
  vm_checktime: 1
  check_loop_delay_min: 1
  check_loop_delay_max: 2
  create_folders: true
:providers:
  :vsphere:
    server: '$VCSIM_URL'
    username: '$VCSIM_USERNAME'
    password: '$VCSIM_PASSWORD'
    ca_file: '$VCSIM_CACERT'
    datacenter: DC0
    ready_check: ip
    ready_port: $ready_port
    ready_timeout: 2
  :vcslow:
    provider_class: vsphere
    server: '$VCSIM_URL'
    username: '$VCSIM_USERNAME'
    password: '$VCSIM_PASSWORD'
    ca_file: '$VCSIM_CACERT'
    datacenter: DC0
    ready_check: ip
    ready_port: $ready_port
    task_timeout: 1
:pools:
  - name: alpha
    template: templates/base
    folder: vmpool/alpha
    clone_target: DC0_C0
    size: 3
    provider: vsphere
    extra_config:
      SET.guest.ipAddress: 127.0.0.1
  - name: ttl
    template: templates/base
    folder: vmpool/ttl
    clone_target: DC0_C0
    size: 1
    ready_ttl: 1
    provider: vsphere
    extra_config:
      SET.guest.ipAddress: 127.0.0.1
  - name: slow
    template: templates/base
    folder: vmpool/slow
    clone_target: DC0_C0
    size: 1
    provider: vcslow
    extra_config:
      SET.guest.ipAddress: 127.0.0.1
YAML
out=$("$VMPOOLD" --config "$BB_TMP/vmpool.yaml" --check-config 2>&1)
bb_eq "--check-config accepts the vsphere configuration" 0 $?
[ -n "$out" ] && echo "# $out" | head -n 3

"$VMPOOLD" --config "$BB_TMP/vmpool.yaml" --listen "127.0.0.1:$api_port" \
  --log-level debug --log-file "$BB_TMP/vmpoold.log" &
daemon=$!
BB_PIDS+=("$daemon")
api=http://127.0.0.1:$api_port/api/v3

# The folder's VMs in vcsim and the pool's VMs in Redis (sorted lines).
vcsim_vms() { vs_folder_vms "DC0/vm/vmpool/$1"; }
redis_vms() {
  { bb_redis SMEMBERS "vmpooler__pending__$1"; bb_redis SMEMBERS "vmpooler__ready__$1"
    bb_redis SMEMBERS "vmpooler__running__$1"; } | sed '/^$/d' | sort
}
# same_vms POOL: vcsim's folder and Redis's pending/ready/running sets name
# the same VMs, within 10 s (vcsim's folder listing can miss a VM while
# others are destroyed; the engine's next pass puts that right).
same_vms_now() { [ "$(redis_vms "$1")" = "$(vcsim_vms "$1")" ]; }
same_vms() {
  bb_wait_for "$1: same VMs in Redis and vcsim" 10 same_vms_now "$1" && return 0
  echo "# Redis: $(redis_vms "$1" | xargs); vcsim: $(vcsim_vms "$1" | xargs)"
  return 1
}
vcsim_count_is() { [ "$(vcsim_vms "$1" | grep -c .)" = "$2" ]; }
scard_is() { [ "$(bb_scard "$1" "$2")" = "$3" ]; }
vm_exists() { [ -n "$(vs_find_id "DC0/vm/vmpool/$1/$2")" ]; }
vm_gone() { [ -z "$(vs_find_id "DC0/vm/vmpool/$1/$2")" ]; }
hget() { bb_redis HGET "vmpooler__vm__$1" "$2"; }
hget_is() { [ "$(hget "$1" "$2")" = "$3" ]; }
hget_set() { [ -n "$(hget "$1" "$2")" ]; }
member_is() { [ "$(bb_redis SISMEMBER "vmpooler__$1__$2" "$3")" = "$4" ]; }

# ---- fill without readiness: the clones exist, none is ready -----------------
bb_check "alpha: 3 clones pending" bb_wait_for "alpha pending" 60 scard_is pending alpha 3
bb_check "alpha: the 3 clones exist in vcsim (folder vmpool/alpha created)" \
  bb_wait_for "alpha clones in vcsim" 20 vcsim_count_is alpha 3
bb_check "alpha: vcsim and Redis name the same VMs" same_vms alpha
# Concurrent clones race to create the folders; one wins, the others use it.
for f in DC0/vm/vmpool DC0/vm/vmpool/alpha; do
  bb_eq "folder $f created once" 1 "$(grep -c "created folder $f\$" "$BB_TMP/vmpoold.log")"
done
some=$(bb_redis SRANDMEMBER vmpooler__pending__alpha)
bb_eq "a clone is powered on" poweredOn \
  "$(vs_prop VirtualMachine "$(vs_find_id "DC0/vm/vmpool/alpha/$some")" runtime.powerState)"
bb_eq "a clone reports the guest IP from extra_config" 127.0.0.1 \
  "$(vs_prop VirtualMachine "$(vs_find_id "DC0/vm/vmpool/alpha/$some")" guest.ipAddress)"
bb_eq "Redis records its pool (template field)" alpha "$(hget "$some" template)"
sleep 3 # several passes with pending checks, nothing listens on the port
bb_eq "no VM is ready while nothing listens on ready_port" 0 "$(bb_scard ready alpha)"
refused=$(grep -c "vm=$some not ready: connecting to 127.0.0.1 port $ready_port: Connection refused" \
  "$BB_TMP/vmpoold.log")
bb_check "its pending checks ran and found the port closed ($refused times)" test "$refused" -ge 2

# ---- the port answers: the pools become ready ----------------------------------
bb_start_listener "$ready_port" || bb_fail "listener on $ready_port"
bb_check "alpha fills to 3 ready" bb_wait_for "alpha full" 30 bb_pool_full alpha 3
bb_check "ttl fills to 1 ready" bb_wait_for "ttl full" 30 bb_pool_full ttl 1
bb_check "slow fills to 1 ready" bb_wait_for "slow full" 30 bb_pool_full slow 1
ttl_vm=$(bb_redis SMEMBERS vmpooler__ready__ttl)
ttl_ready_at=$SECONDS
bb_check "the ready VMs have a ready time" test -n "$(hget "$some" ready)"
bb_check "vcsim holds exactly alpha's ready VMs" same_vms alpha

# ---- checkout with migration to the least used host ---------------------------
hosts_of_ready=$(for vm in $(bb_redis SMEMBERS vmpooler__ready__alpha); do
  vs_vm_host "DC0/vm/vmpool/alpha/$vm"; echo; done | sed '/^$/d' | sort -u)
bb_eq "the ready VMs all run on the template's host" "$tmpl_host" "$hosts_of_ready"
resp=$(curl -sf -X POST "$api/vm/alpha")
vm1=$(sed -n 's/.*"hostname": *"\([^".]*\).*/\1/p' <<<"$resp")
bb_check "checkout of alpha returned a VM ($vm1)" test -n "$vm1"
bb_eq "the VM is running in Redis" 1 "$(bb_redis SISMEMBER vmpooler__running__alpha "$vm1")"
bb_check "the engine records the migration" bb_wait_for "migration of $vm1" 20 \
  hget_is "$vm1" migrated true
bb_eq "vcsim: the VM now runs on the least used host" "$target" \
  "$(vs_vm_host "DC0/vm/vmpool/alpha/$vm1")"
bb_eq "Redis: host is the new host" "$target" "$(hget "$vm1" host)"
bb_check "Redis: migration_time is a duration ($(hget "$vm1" migration_time))" \
  grep -Eq '^[0-9]+\.[0-9]{2}$' <<<"$(hget "$vm1" migration_time)"
bb_check "Redis: checkout_to_migration is a duration ($(hget "$vm1" checkout_to_migration))" \
  grep -Eq '^[0-9]+\.[0-9]{2}$' <<<"$(hget "$vm1" checkout_to_migration)"
bb_eq "the VM left the migrating set" 0 "$(bb_redis SISMEMBER vmpooler__migrating__alpha "$vm1")"
bb_eq "the global migration set is empty again" 0 "$(bb_redis SCARD vmpooler__migration)"
bb_check "the API reports host and migrated" bash -c \
  "curl -sf '$api/vm/$vm1' | grep -q '\"host\": *\"$target\"' &&
   curl -sf '$api/vm/$vm1' | grep -q '\"migrated\": *\"\\?true'"

# ---- disk and snapshot tasks on the checked-out VM (API -> engine -> vcsim) ----
vm1_path=DC0/vm/vmpool/alpha/$vm1
bb_eq "vcsim: the clone has one disk" 1 "$(vs_vm_disks "$vm1_path")"
bb_check "POST /vm/$vm1/disk/1 is accepted" \
  bash -c "curl -sf -X POST '$api/vm/$vm1/disk/1' | grep -q '\"ok\": *true'"
bb_check "the engine records the disk (+1gb)" bb_wait_for "disk of $vm1" 20 hget_is "$vm1" disk +1gb
bb_eq "vcsim: the VM has a second disk" 2 "$(vs_vm_disks "$vm1_path")"
snapshot_of() { curl -sf -X POST "$api/vm/$vm1/snapshot" | sed -n 's/.*"snapshot": *"\([^"]*\)".*/\1/p'; }
snap1=$(snapshot_of)
bb_check "POST /vm/$vm1/snapshot names a snapshot ($snap1)" test -n "$snap1"
bb_check "the engine records snapshot 1" bb_wait_for "snapshot 1" 20 hget_set "$vm1" "snapshot:$snap1"
snap2=$(snapshot_of)
bb_check "the engine records snapshot 2" bb_wait_for "snapshot 2" 20 hget_set "$vm1" "snapshot:$snap2"
bb_eq "vcsim: the VM has both snapshots" "$(printf '%s\n' "$snap1" "$snap2" | sort)" \
  "$(vs_vm_snapshots "$vm1_path")"
bb_eq "vcsim: the current snapshot is the second" "$snap2" "$(vs_vm_current_snapshot "$vm1_path")"
bb_check "POST /vm/$vm1/snapshot/<first> queues a revert" \
  bash -c "curl -sf -X POST '$api/vm/$vm1/snapshot/$snap1' | grep -q '\"ok\": *true'"
bb_check "the engine reverts (logged)" bb_wait_for "revert logged" 20 \
  grep -q "vm=$vm1 reverted to snapshot '$snap1'" "$BB_TMP/vmpoold.log"
bb_eq "vcsim: the current snapshot is the first again" "$snap1" \
  "$(vs_vm_current_snapshot "$vm1_path")"

# Now the template's host is the least used: a checkout stays where it is.
vs_host_cpu "$tmpl_host" 50
resp=$(curl -sf -X POST "$api/vm/alpha")
vm2=$(sed -n 's/.*"hostname": *"\([^".]*\).*/\1/p' <<<"$resp")
bb_check "second checkout returned a VM ($vm2)" test -n "$vm2"
bb_check "the engine records its host" bb_wait_for "host of $vm2" 20 hget_set "$vm2" host
bb_eq "Redis: host is the template's host" "$tmpl_host" "$(hget "$vm2" host)"
bb_eq "Redis: not migrated" "" "$(hget "$vm2" migrated)"
bb_eq "vcsim: the VM did not move" "$tmpl_host" "$(vs_vm_host "DC0/vm/vmpool/alpha/$vm2")"
bb_check "alpha is refilled after the checkouts" bb_wait_for "alpha refilled" 30 bb_pool_full alpha 3

# ---- return: completed, destroyed in vcsim -------------------------------------
for vm in "$vm1" "$vm2"; do
  bb_check "DELETE /vm/$vm answers ok" bash -c "curl -sf -X DELETE '$api/vm/$vm' | grep -q '\"ok\": *true'"
done
bb_check "returned VM $vm1 is destroyed in vcsim" bb_wait_for "$vm1 gone" 30 vm_gone alpha "$vm1"
bb_check "returned VM $vm2 is destroyed in vcsim" bb_wait_for "$vm2 gone" 30 vm_gone alpha "$vm2"
bb_check "returned VMs leave completed" bb_wait_for "completed empty" 20 scard_is completed alpha 0
bb_check "the destroy time is recorded" test -n "$(hget "$vm1" destroy)"
bb_eq "running is empty" 0 "$(bb_scard running alpha)"
bb_check "alpha is full" bb_wait_for "alpha full" 20 bb_pool_full alpha 3
bb_check "vcsim holds exactly alpha's VMs after the returns" same_vms alpha

# ---- a clone outliving task_timeout: the VM it leaves is reconciled ------------
# vcsim makes the clone at once but reports the task running for 4 s; the
# provider of pool slow waits 1 s (task_timeout) and fails the clone.
vs_control POST task-delay "spec=CloneVM_Task:4000" >/dev/null || bb_fail "task-delay"
slow1=$(bb_redis SMEMBERS vmpooler__ready__slow)
curl -sf -X POST "$api/vm/slow" >/dev/null || bb_fail "checkout of slow"
timed_out() {
  local k
  for k in $(bb_redis --scan --pattern 'vmpooler__vm__*'); do
    if bb_redis HGET "$k" clone_error | grep -q 'still running after'; then
      echo "${k#vmpooler__vm__}"
      return 0
    fi
  done
  return 1
}
bb_check "a clone of slow fails on task_timeout" bb_wait_for "clone timeout" 30 timed_out
lost=$(timed_out)
bb_eq "the timed-out clone is a VM of pool slow" slow "$(hget "$lost" template)"
bb_check "the timed-out clone's error names the task timeout: $(hget "$lost" clone_error)" \
  grep -q "task .* still running after 1 s" <<<"$(hget "$lost" clone_error)"
bb_eq "it is not pending any more" 0 "$(bb_redis SISMEMBER vmpooler__pending__slow "$lost")"
bb_check "the engine discovers the VM vcsim made anyway" bb_wait_for "$lost discovered" 20 \
  grep -q "vm=$lost discovered: in the provider but unknown to redis" "$BB_TMP/vmpoold.log"
bb_check "and destroys it in vcsim" bb_wait_for "$lost destroyed" 20 vm_gone slow "$lost"
vs_control DELETE task-delay >/dev/null || bb_fail "task-delay cleared"
bb_check "slow refills once clones are quick again" bb_wait_for "slow full" 30 bb_pool_full slow 1
slow_clean() { scard_is discovered slow 0 && scard_is completed slow 0; }
bb_check "slow: nothing discovered or completed is left" bb_wait_for "slow clean" 20 slow_clean
bb_check "vcsim holds exactly slow's VMs (the checked-out one too)" same_vms slow
bb_eq "slow's checked-out VM is still running" 1 "$(bb_redis SISMEMBER vmpooler__running__slow "$slow1")"

# ---- ready_ttl: the ttl pool's VM expires after a minute ------------------------
left=$((ttl_ready_at + 62 - SECONDS))
[ "$left" -gt 0 ] && echo "# waiting ${left}s for ready_ttl (1 minute)"
bb_check "ttl: the ready VM is not expired before a minute" \
  bash -c "[ $((SECONDS - ttl_ready_at)) -ge 58 ] || [ '$(bb_redis SISMEMBER vmpooler__ready__ttl "$ttl_vm")' = 1 ]"
bb_check "ttl: the VM leaves ready after ready_ttl" bb_wait_for "ttl expiry" $((left + 20)) \
  member_is ready ttl "$ttl_vm" 0
bb_check "ttl: expiry logged" bb_wait_for "ttl logged" 5 \
  grep -q "$ttl_vm.*ready TTL" "$BB_TMP/vmpoold.log"
bb_check "ttl: the expired VM is destroyed in vcsim" bb_wait_for "ttl destroyed" 20 vm_gone ttl "$ttl_vm"
bb_check "ttl: refilled with another VM" bb_wait_for "ttl refilled" 30 bb_pool_full ttl 1
bb_check "ttl: the new VM differs" \
  test "$(bb_redis SMEMBERS vmpooler__ready__ttl)" != "$ttl_vm"
bb_check "ttl: vcsim holds exactly the new VM" same_vms ttl

# ---- stop ---------------------------------------------------------------------
kill -TERM "$daemon"
wait "$daemon"
bb_eq "SIGTERM: exit status 0" 0 $?
bb_check "the log has no ERROR line" bash -c "! grep -q ' ERROR ' '$BB_TMP/vmpoold.log'"
echo "# run time $((SECONDS - t_start)) s"
if [ "$BB_FAILED" -gt 0 ]; then
  echo "# vmpoold log (last 60 lines):"
  tail -n 60 "$BB_TMP/vmpoold.log" | sed 's/^/#   /'
fi
bb_finish
