--- vmpool.policy: policy hooks the engine calls at its decision points.
--
--   vmpool.policy{
--     pools = { "debian-12" },            -- optional: only these pools
--     pool_size = function(pool, stats, now) return 5 end,
--     vm_name = function(pool) return "ci-" .. ... end,
--     choose_host = function(pool, vm, hosts) return hosts.proposed end,
--     lifetime = function(pool, vm, request) return 4 end,
--     on_event = function(event) ... end,
--   }
--
-- Several policies may be registered. For a decision about a pool, the
-- last registered policy that covers the pool and defines the hook
-- decides; every covering on_event hears the event. A hook that returns
-- nil leaves the decision to vmpool's built-in behaviour.

local M = {}

M.hooks = { "pool_size", "vm_name", "choose_host", "lifetime", "on_event" }
local known = {}
for _, h in ipairs(M.hooks) do known[h] = true end

local list = {}

local function pool_set(v)
  if v == nil then return nil end
  if type(v) == "string" then v = { v } end
  if type(v) ~= "table" then
    error("vmpool.policy: pools must be a pool name or a list of them", 3)
  end
  local set = {}
  for i, name in ipairs(v) do
    if type(name) ~= "string" then
      error(("vmpool.policy: pools[%d] must be a string"):format(i), 3)
    end
    set[name] = true
  end
  return set
end

--- Registers a policy (vmpool.policy). Returns the table given.
function M.register(t)
  if type(t) ~= "table" then
    error("vmpool.policy: expected a table of hooks, got " .. type(t), 2)
  end
  for k, v in pairs(t) do
    if k ~= "pools" and k ~= "name" then
      if not known[k] then
        error(("vmpool.policy: unknown hook %q (hooks: %s)"):format(tostring(k),
          table.concat(M.hooks, ", ")), 2)
      end
      if type(v) ~= "function" then
        error(("vmpool.policy: %s must be a function, got %s"):format(k, type(v)), 2)
      end
    end
  end
  list[#list + 1] = { hooks = t, pools = pool_set(t.pools) }
  return t
end

local function covers(p, pool)
  return p.pools == nil or (pool ~= nil and p.pools[pool] == true)
end

--- The set of hooks some policy defines: { pool_size = true, ... }.
function M.defined()
  local set = {}
  for _, p in ipairs(list) do
    for _, h in ipairs(M.hooks) do
      if p.hooks[h] then set[h] = true end
    end
  end
  return set
end

--- The function deciding hook for pool, or nil.
function M.find(hook, pool)
  for i = #list, 1, -1 do
    local p = list[i]
    if p.hooks[hook] and covers(p, pool) then return p.hooks[hook] end
  end
  return nil
end

--- Calls the deciding hook: returns true and its answer, or false when no
-- policy decides.
function M.call(hook, pool, ...)
  local f = M.find(hook, pool)
  if not f then return false end
  return true, f(pool, ...)
end

--- Gives event to every covering on_event hook, in registration order. One
-- that raises does not stop the others; the first error is raised at the
-- end, with its traceback.
function M.emit(event)
  local first
  for _, p in ipairs(list) do
    local f = p.hooks.on_event
    if f and covers(p, event.pool) then
      local ok, err = xpcall(f, debug.traceback, event)
      if not ok and not first then first = err end
    end
  end
  if first then error(first, 0) end
end

--- Forgets every policy (tests).
function M.reset()
  list = {}
end

return M
