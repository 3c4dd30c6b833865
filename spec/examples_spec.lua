-- The examples in lua/vmpool/examples: the sizing policies under plain Lua
-- (with vmpool.policy captured), the providers through the real bindings
-- (vmpool.exec, the base class) and inside the engine (vmpool.core).
local H = require("helper")
local core, why = H.core()
local EX = H.root .. "/lua/vmpool/examples/"
local FAKECLOUD = H.root .. "/spec/fixtures/fakecloud.sh"

-- Runs an example with a vmpool whose policy() is captured.
local function load_policy(file)
  local got = {}
  local vmpool = { policy = function(t) got[#got + 1] = t end,
                   log = { debug = function() end } }
  local env = setmetatable({ vmpool = vmpool }, { __index = _G })
  local module = assert(loadfile(EX .. file, "t", env))()
  assert.equals(1, #got)
  return got[1], module
end

local function at(day, hour) -- local time, November 2026 (the 25th is a Wednesday)
  return os.time({ year = 2026, month = 11, day = day, hour = hour, min = 30 })
end

local function stats(t)
  local s = { ready = 0, pending = 0, running = 0, completed = 0, size = 8, config_size = 8,
              checkouts_10m = 0, checkouts_1h = 0, last_checkout = 0 }
  for k, v in pairs(t or {}) do s[k] = v end
  return s
end

describe("examples/business_hours.lua", function()
  local policy = load_policy("business_hours.lua")

  it("keeps the configured size during working hours", function()
    assert.equals(8, policy.pool_size("p", stats(), at(25, 10)))  -- Wednesday 10:30
    assert.equals(8, policy.pool_size("p", stats(), at(27, 17)))  -- Friday 17:30
  end)

  it("shrinks to a quarter at night and on weekends, never to zero", function()
    assert.equals(2, policy.pool_size("p", stats(), at(25, 18)))  -- Wednesday 18:30
    assert.equals(2, policy.pool_size("p", stats(), at(26, 7)))   -- Thursday 07:30
    assert.equals(2, policy.pool_size("p", stats(), at(28, 11)))  -- Saturday
    assert.equals(1, policy.pool_size("p", stats({ size = 1, config_size = 1 }), at(29, 11)))
    assert.equals(0, policy.pool_size("p", stats({ size = 0, config_size = 0 }), at(29, 11)))
  end)

  it("leaves a size overridden at run time alone", function()
    assert.is_nil(policy.pool_size("p", stats({ size = 20 }), at(28, 11)))
  end)
end)

describe("examples/demand.lua", function()
  local policy = load_policy("demand.lua")

  it("stays at the pool's size without demand", function()
    assert.equals(8, policy.pool_size("p", stats({ ready = 8 }), 0))
  end)

  it("grows with the checkouts, a few VMs per pass, up to a ceiling", function()
    local s = stats({ ready = 8, checkouts_10m = 10, checkouts_1h = 10 })
    assert.equals(13, policy.pool_size("p", s, 0))            -- wants 15, moves by 5
    s.ready, s.pending = 12, 3
    assert.equals(15, policy.pool_size("p", s, 0))            -- 10 * 1.5
    s.checkouts_10m, s.ready, s.pending = 100, 30, 0
    assert.equals(32, policy.pool_size("p", s, 0))            -- 4 * 8
  end)

  it("shrinks slowly after a burst, following the hour's rate", function()
    local s = stats({ ready = 30, checkouts_10m = 0, checkouts_1h = 60 })
    assert.equals(25, policy.pool_size("p", s, 0))            -- wants 15, moves by 5
    s.ready = 15
    assert.equals(15, policy.pool_size("p", s, 0))
  end)

  it("listens to checkouts", function()
    assert.is_function(policy.on_event)
    assert.has_no_error(function() policy.on_event({ kind = "checkout", pool = "p" }) end)
  end)
end)

-- The provider examples need the real vmpool module (vmpool.exec, sleep).
local function provider_example(file, class, host)
  local vmpool = require("vmpool")
  local Provider = require("vmpool.provider")
  Provider.reset()
  local env = setmetatable({ vmpool = vmpool }, { __index = _G })
  assert(loadfile(EX .. file, "t", env))()
  local obj = Provider.new(Provider.class(class), host)
  if obj.open then obj:open() end
  return function(method, ...) return Provider.dispatch(obj, method, ...) end
end

describe("examples/dummy_provider.lua", function()
  local function dummy(knobs)
    return provider_example("dummy_provider.lua", "lua_dummy", {
      name = "lua_dummy", config = knobs or {},
      pool_config = function(pool) return pool ~= "unknown" and { name = pool } or nil end,
    })
  end

  it("keeps VMs in memory and answers the contract", function()
    if not core then return pending(why) end
    local call = dummy()
    local vm = assert(call("create_vm", "p1", "vm1"))
    assert.equals("vm1", vm.name)
    assert.equals("PoweredOn", vm.powerstate)
    assert.matches("^192%.0%.2%.%d+$", vm.ip)
    assert.same({ { "vm1" }, "ok" }, { call("vms_in_pool", "p1") })
    assert.is_true((call("vm_ready", "p1", "vm1")))
    assert.equals("HOST1", (call("get_vm_host", "p1", "vm1")))
    assert.equals("HOST1", (call("find_least_used_compatible_host", "p1", "vm1")))
    call("migrate_vm_to_host", "p1", "vm1", "HOST4")
    assert.equals("HOST4", (call("get_vm_host", "p1", "vm1")))
    call("create_snapshot", "p1", "vm1", "snap")
    assert.same({ nil, "ok" }, { call("revert_snapshot", "p1", "vm1", "snap") })
    assert.same({ nil, "failed" }, { call("revert_snapshot", "p1", "vm1", "other") })
    call("create_disk", "p1", "vm1", 20)
    assert.has_error(function() call("get_vm_host", "p1", "nope") end)
    call("destroy_vm", "p1", "vm1")
    call("destroy_vm", "p1", "vm1") -- gone already: fine
    assert.same({ nil, "absent" }, { call("get_vm", "p1", "vm1") })
    assert.has_error(function() call("create_vm", "unknown", "vm2") end)
  end)

  it("fails on request, leaving nothing behind", function()
    if not core then return pending(why) end
    local call = dummy({ createvm_fail_percent = 100, migratevm_couldmove_percent = 100 })
    local ok, err = pcall(call, "create_vm", "p1", "vm1")
    assert.is_false(ok)
    assert.matches("dummy failure for createvm_fail_percent", err)
    assert.same({ {}, "ok" }, { call("vms_in_pool", "p1") })
  end)
end)

describe("examples/command_provider.lua", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmdir(dir) end)

  local function cloud(command)
    return provider_example("command_provider.lua", "command", {
      name = "mycloud",
      config = { command = command or { "sh", FAKECLOUD, "--dir", dir }, command_timeout = 10 },
      pool_config = function(pool) return { name = pool, template = "t/" .. pool } end,
    })
  end

  local function calls()
    local f = io.open(dir .. "/calls.log")
    local text = f and f:read("a") or ""
    if f then f:close() end
    return text
  end

  it("drives the tool for every method", function()
    if not core then return pending(why) end
    local call = cloud()
    local vm = assert(call("create_vm", "p1", "vm1"))
    assert.same({ "vm1", "192.0.2.10", "rack1", "PoweredOn", "t/p1" },
      { vm.name, vm.ip, vm.host, vm.powerstate, vm.template })
    assert.is_number(vm.boottime)
    call("create_vm", "p1", "vm2")
    assert.same({ { "vm1", "vm2" }, "ok" }, { call("vms_in_pool", "p1") })
    assert.is_true((call("vm_ready", "p1", "vm2")))
    assert.is_false((call("vm_ready", "p1", "vm9")))
    assert.equals("192.0.2.11", (call("get_vm_ip_address", "p1", "vm2")))
    assert.same({ nil, "absent" }, { call("get_vm", "p1", "vm9") })
    call("destroy_vm", "p1", "vm1")
    assert.same({ { "vm2" }, "ok" }, { call("vms_in_pool", "p1") })
    assert.matches("create p1 vm1 t/p1\n", calls(), 1, true)
    assert.matches("destroy p1 vm1\n", calls(), 1, true)
  end)

  it("raises the tool's own message when it fails", function()
    if not core then return pending(why) end
    local call = cloud()
    H.write(dir .. "/fail-create", "")
    local ok, err = pcall(call, "create_vm", "p1", "vm1")
    assert.is_false(ok)
    assert.matches("create failed %(exit 1%): quota exceeded for p1", err)
  end)

  it("refuses a missing command and reports a tool that is not there", function()
    if not core then return pending(why) end
    assert.has_error(function() cloud({}) end)
    local call = cloud({ dir .. "/no-such-tool" })
    local ok, err = pcall(call, "vms_in_pool", "p1")
    assert.is_false(ok)
    assert.matches("no%-such%-tool", err)
  end)
end)

describe("the provider examples inside the engine", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmdir(dir) end)

  it("fill their pools and hand out VMs", function()
    if not core then return pending(why) end
    core.log_level("error")
    H.write(dir .. "/vmpool.yaml", table.concat({
      ":config:",
      "  lua:",
      "    - " .. EX .. "dummy_provider.lua",
      "    - " .. EX .. "command_provider.lua",
      "    - " .. EX .. "business_hours.lua",
      ":redis:",
      "  state_dir: " .. dir .. "/state",
      ":providers:",
      "  lua_dummy:",
      "    createvm_fail_percent: 20",
      "  fake:",
      "    provider_class: command",
      "    command: [sh, " .. FAKECLOUD .. ", --dir, " .. dir .. "/cloud]",
      ":pools:",
      "  - { name: ld, template: t/ld, size: 3, provider: lua_dummy }",
      "  - { name: cmd, template: t/cmd, size: 2, provider: fake }",
      "",
    }, "\n"))
    local vp <close> = assert(core.open(dir .. "/vmpool.yaml", { no_env = true, stop_timeout = 5 }))
    assert(vp:start())
    -- business hours may shrink the pools: one VM each is enough here
    assert(vp:wait_ready("ld", 1, 60))
    assert(vp:wait_ready("cmd", 1, 60))
    local vm = assert(vp:checkout("cmd"))
    assert.is_true(vp:return_vm(vm))
    local f = assert(io.open(dir .. "/cloud/calls.log"))
    local log = f:read("a")
    f:close()
    assert.matches("create cmd " .. vm:gsub("%-", "%%-") .. " t/cmd", log)
    vp:close()
  end)
end)
