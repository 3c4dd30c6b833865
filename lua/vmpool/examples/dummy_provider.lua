-- A Lua port of vmpool's dummy provider: VMs in memory, the dummy's knobs (<step>_max_time,
-- <step>_fail_percent) from the provider's entry. Each Lua state has its own memory: keep
-- lua_states at 1.
--   :config:    { lua: [lua/vmpool/examples/dummy_provider.lua] }
--   :providers: { lua_dummy: { createvm_max_time: 3, createvm_fail_percent: 10 } }
--   :pools:     [ { name: debian-12, template: t/debian-12, size: 5, provider: lua_dummy } ]
local D = vmpool.provider("lua_dummy", {})

local function roll(self, key) -- true in `key` percent of the calls
  local p = tonumber(self.config[key])
  return p ~= nil and math.random(1, 100) <= p
end
local function step(self, what) -- waits up to <what>_max_time, may fail
  local max = tonumber(self.config[what .. "_max_time"])
  if max and max >= 1 then vmpool.sleep(math.random(1, math.floor(max))) end
  if roll(self, what .. "_fail_percent") then
    error(("dummy failure for %s_fail_percent"):format(what), 2)
  end
end
function D:open() self.pools = {} end
local function vms(self, pool)
  self.pools[pool] = self.pools[pool] or {}
  return self.pools[pool]
end
local function find(self, pool, vm)
  return vms(self, pool)[vm] or error(("VM %s does not exist in pool %s"):format(vm, pool), 2)
end

function D:vms_in_pool(pool)
  local names = {}
  for name in pairs(vms(self, pool)) do names[#names + 1] = name end
  return names
end

function D:get_vm(pool, vm)
  local v = vms(self, pool)[vm]
  return v and { name = vm, hostname = vm, template = pool, poolname = pool, host = v.host,
                 boottime = v.boottime, powerstate = "PoweredOn", ip = v.ip,
                 snapshots = v.snapshots }
end

function D:create_vm(pool, vm)
  if not self:pool_config(pool) then error("pool " .. pool .. " is not configured") end
  local v = { boottime = vmpool.now(), host = "HOST1", snapshots = {}, disks = {},
              ip = ("192.0.2.%d"):format(math.random(1, 254)) }
  vms(self, pool)[vm] = v -- the inventory sees it while it clones
  local ok, err = pcall(step, self, "createvm")
  if not ok then vms(self, pool)[vm] = nil error(err, 0) end
  v.running = true
  return self:get_vm(pool, vm)
end
function D:destroy_vm(pool, vm)
  if vms(self, pool)[vm] then step(self, "destroyvm") end
  vms(self, pool)[vm] = nil
end
function D:vm_ready(pool, vm)
  local v = vms(self, pool)[vm]
  if v and v.running and roll(self, "vmready_fail_percent") then error("dummy failure") end
  return v ~= nil and v.running == true
end
function D:get_vm_ip_address(pool, vm) return find(self, pool, vm).ip end
function D:get_vm_host(pool, vm) return find(self, pool, vm).host end
function D:find_least_used_compatible_host(pool, vm)
  local host = find(self, pool, vm).host
  return roll(self, "migratevm_couldmove_percent") and "HOST" .. math.random(2, 10) or host
end

local function change(what, f) -- find the VM, take the step's time and chance, change it
  return function(self, pool, vm, arg)
    local v = find(self, pool, vm); step(self, what); return f(v, arg)
  end
end
D.migrate_vm_to_host = change("migratevm", function(v, host) v.host = host end)
D.create_disk = change("createdisk", function(v, gb) table.insert(v.disks, gb) end)
D.create_snapshot = change("createsnapshot", function(v, name) table.insert(v.snapshots, name) end)
D.revert_snapshot = change("revertsnapshot", function(v, name)
  for _, s in ipairs(v.snapshots) do if s == name then return true end end
  return false
end)
