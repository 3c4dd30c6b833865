--- vmpool.provider: the base class of providers written in Lua.
--
-- A provider class is a table of methods registered by name:
--
--   local P = vmpool.provider("mycloud", {})
--   function P:create_vm(pool, vm) ... return self:get_vm(pool, vm) end
--
-- vmpool makes instances of it (Provider.new) and calls its methods through
-- Provider.dispatch, which checks the arguments, reports a method the class
-- does not have as "<class> does not implement <method>", and checks and
-- normalises what the method returned. The base class supplies the helpers
-- (pool_config, provided_pools, global_config, log) and the defaults of the
-- contract (vm_exists from get_vm, tag_vm_user and
-- create_template_delta_disks doing nothing).

local Provider = {}
Provider.__index = Provider

-- The contract: each method's arguments after self, in order.
Provider.contract = {
  vms_in_pool = { "pool" },
  get_vm = { "pool", "vm" },
  create_vm = { "pool", "vm" },
  destroy_vm = { "pool", "vm" },
  vm_ready = { "pool", "vm" },
  vm_exists = { "pool", "vm" },
  get_vm_ip_address = { "pool", "vm" },
  get_vm_host = { "pool", "vm" },
  find_least_used_compatible_host = { "pool", "vm" },
  migrate_vm_to_host = { "pool", "vm", "host" },
  migrate_vm = { "pool", "vm" },
  create_disk = { "pool", "vm", "size_gb" },
  create_snapshot = { "pool", "vm", "snapshot" },
  revert_snapshot = { "pool", "vm", "snapshot" },
  create_template_delta_disks = { "pool" },
  purge_unconfigured_resources = { "allowlist" },
  tag_vm_user = { "pool", "vm" },
}

-- How each method's answer is read: "names" (list of VM names), "vm" (a
-- get_vm table or nil), "action" (false = did not work, anything else =
-- done), "bool", "string" (nil = not found).
local answer = {
  vms_in_pool = "names", get_vm = "vm", create_vm = "vm", destroy_vm = "action",
  vm_ready = "bool", vm_exists = "bool", get_vm_ip_address = "string",
  get_vm_host = "string", find_least_used_compatible_host = "string",
  migrate_vm_to_host = "action", migrate_vm = "action", create_disk = "action",
  create_snapshot = "action", revert_snapshot = "action",
  create_template_delta_disks = "action", purge_unconfigured_resources = "action",
  tag_vm_user = "action",
}

Provider.method_names = {}
for name in pairs(Provider.contract) do
  Provider.method_names[#Provider.method_names + 1] = name
end
table.sort(Provider.method_names)

local function class_name(self)
  return rawget(self, "class") or self.class_name or "provider"
end

local function not_implemented(method)
  return function(self)
    error(("%s does not implement %s"):format(class_name(self), method), 2)
  end
end

for name in pairs(Provider.contract) do
  Provider[name] = not_implemented(name)
end

function Provider:vm_exists(pool, vm)
  return self:get_vm(pool, vm) ~= nil
end

function Provider:tag_vm_user()
  return true
end

function Provider:create_template_delta_disks()
  return true
end

-- ---- helpers ---------------------------------------------------------------

-- The pool's configuration (read-only table), or nil.
function Provider:pool_config(pool)
  local f = self._host and self._host.pool_config
  return f and f(pool) or nil
end

-- Names of the pools this instance serves.
function Provider:provided_pools()
  local f = self._host and self._host.provided_pools
  return f and f() or {}
end

-- The whole configuration (read-only table).
function Provider:global_config()
  local f = self._host and self._host.global_config
  return f and f() or nil
end

-- self:log(level, fmt, ...), logged as provider.<name>.
function Provider:log(level, fmt, ...)
  local f = self._host and self._host.log
  if f then f(level, fmt, ...) end
end

-- ---- classes -----------------------------------------------------------------

local registry, order = {}, {}

local function check_name(name)
  if type(name) ~= "string" or not name:match("^[%w_%-%.]+$") then
    error("vmpool.provider: the class name must be a non-empty string of letters, digits, "
      .. "'_', '-' or '.'", 3)
  end
end

--- Registers impl as provider class name (vmpool.provider). impl inherits
-- the base class; methods may be added to it after this call.
function Provider.register(name, impl)
  check_name(name)
  if type(impl) ~= "table" then
    error(("vmpool.provider(%q, impl): impl must be a table, got %s"):format(name, type(impl)), 2)
  end
  for method in pairs(Provider.contract) do
    local f = rawget(impl, method)
    if f ~= nil and type(f) ~= "function" then
      error(("vmpool.provider(%q): %s must be a function, got %s"):format(name, method, type(f)), 2)
    end
  end
  local key = name:lower()
  if registry[key] then
    error(("vmpool.provider: class %q is defined twice"):format(name), 2)
  end
  if getmetatable(impl) == nil then
    setmetatable(impl, Provider)
  end
  impl.__index = impl
  impl.class_name = name
  registry[key] = { name = name, impl = impl }
  order[#order + 1] = key
  return impl
end

--- The class registered as name (any case), or nil.
function Provider.class(name)
  local c = registry[tostring(name):lower()]
  return c and c.impl or nil
end

--- Contract methods impl implements itself (not the base defaults).
function Provider.implemented(impl)
  local list = {}
  for _, m in ipairs(Provider.method_names) do
    local f = impl[m]
    if f ~= nil and f ~= Provider[m] then
      list[#list + 1] = m
    end
  end
  return list
end

--- Every registered class as { name = ..., methods = {...} }, in order.
function Provider.classes()
  local list = {}
  for _, key in ipairs(order) do
    local c = registry[key]
    list[#list + 1] = { name = c.name, methods = Provider.implemented(c.impl) }
  end
  return list
end

--- Forgets every class (tests).
function Provider.reset()
  registry, order = {}, {}
end

--- An instance of class impl. host carries what vmpool gives it: name,
-- class, config (its :providers: entry), options, and the functions
-- pool_config, provided_pools, global_config, log.
function Provider.new(impl, host)
  host = host or {}
  local obj = setmetatable({}, impl)
  obj.name = host.name or impl.class_name
  obj.class = host.class or impl.class_name
  obj.config = host.config or {}
  obj.options = host.options or {}
  obj._host = host
  return obj
end

-- ---- calls ---------------------------------------------------------------------

local function check_arg(method, kind, v)
  if kind == "size_gb" then
    if math.type(v) ~= "integer" or v <= 0 then
      error(("%s: size_gb must be a positive integer, got %s"):format(method, tostring(v)), 3)
    end
  elseif kind == "allowlist" then
    if type(v) ~= "table" then
      error(("%s: allowlist must be a list of names, got %s"):format(method, type(v)), 3)
    end
    for i, s in ipairs(v) do
      if type(s) ~= "string" then
        error(("%s: allowlist[%d] must be a string"):format(method, i), 3)
      end
    end
  elseif type(v) ~= "string" or v == "" then
    error(("%s: %s must be a non-empty string, got %s"):format(method, kind,
      type(v) == "string" and '""' or type(v)), 3)
  end
end

local vm_fields = { "name", "hostname", "template", "poolname", "powerstate", "host", "ip" }

local function check_vm(method, r, vm)
  if r == nil then return nil end
  if type(r) ~= "table" then
    error(("%s returned a %s; expected a table describing the VM, or nil"):format(method,
      type(r)), 3)
  end
  local out = {}
  for _, k in ipairs(vm_fields) do
    local v = r[k]
    if v ~= nil then
      if type(v) ~= "string" and type(v) ~= "number" then
        error(("%s: field %s must be a string, got %s"):format(method, k, type(v)), 3)
      end
      out[k] = tostring(v)
    end
  end
  out.name = out.name or vm
  if r.boottime ~= nil then
    if type(r.boottime) ~= "number" then
      error(("%s: boottime must be seconds since the epoch, got %s"):format(method,
        type(r.boottime)), 3)
    end
    out.boottime = r.boottime
  end
  if r.snapshots ~= nil then
    out.snapshots = {}
    for i, s in ipairs(r.snapshots) do out.snapshots[i] = tostring(s) end
  end
  return out
end

--- Calls obj:method(...) as vmpool does: checks the arguments, then reads
-- the answer. Returns the normalised value and a status: "ok", "failed"
-- (the method answered false) or "absent" (nothing found).
function Provider.dispatch(obj, method, ...)
  local sig = Provider.contract[method]
  if not sig then
    error(("unknown provider method %q"):format(tostring(method)), 2)
  end
  local n = select("#", ...)
  for i, kind in ipairs(sig) do
    check_arg(method, kind, (select(i, ...)))
  end
  if n > #sig then
    error(("%s: %d arguments given, %d expected"):format(method, n, #sig), 2)
  end
  local r = obj[method](obj, ...)
  local kind = answer[method]
  if kind == "names" then
    if type(r) ~= "table" then
      error(("%s returned a %s; expected a list of VM names"):format(method, type(r)), 2)
    end
    local names = {}
    for i, v in ipairs(r) do
      local name = type(v) == "table" and v.name or v
      if type(name) ~= "string" or name == "" then
        error(("%s: item %d has no name"):format(method, i), 2)
      end
      names[i] = name
    end
    return names, "ok"
  elseif kind == "vm" then
    if method == "create_vm" and (r == true or r == nil) then return nil, "ok" end
    if r == false then return nil, "failed" end
    local vm = check_vm(method, r, select(2, ...))
    return vm, vm and "ok" or "absent"
  elseif kind == "action" then
    return nil, r == false and "failed" or "ok"
  elseif kind == "bool" then
    return r and true or false, "ok"
  else -- string
    if r == nil then return nil, "absent" end
    if type(r) ~= "string" then
      error(("%s returned a %s; expected a string or nil"):format(method, type(r)), 2)
    end
    return r, "ok"
  end
end

return Provider
