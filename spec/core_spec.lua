-- The Lua API through the real C module (vmpool/core.so): embedding the
-- engine, and the vmpool bindings in a plain lua5.4.
local H = require("helper")
local core, why = H.core()

local function needs_core()
  if not core then
    pending(why)
    return false
  end
  return true
end

local provider_lua = [[
local P = vmpool.provider("memory", {})
local vms = {}
function P:vms_in_pool(pool)
  local l = {}
  for n in pairs(vms[pool] or {}) do l[#l + 1] = n end
  return l
end
function P:get_vm(pool, vm)
  if not (vms[pool] or {})[vm] then return nil end
  return { name = vm, hostname = vm, template = pool, poolname = pool, powerstate = "PoweredOn" }
end
function P:create_vm(pool, vm)
  vms[pool] = vms[pool] or {}
  vms[pool][vm] = true
  return self:get_vm(pool, vm)
end
function P:destroy_vm(pool, vm) if vms[pool] then vms[pool][vm] = nil end end
function P:vm_ready(pool, vm) return (vms[pool] or {})[vm] ~= nil end
function P:get_vm_ip_address() return "192.0.2.9" end
vmpool.pool{ name = "mem", size = 2, template = "m", provider = "memory", alias = { "m" } }
vmpool.policy{ pools = "mem", vm_name = function(pool) return "mem-" .. math.random(100000, 999999) end }
]]

local function write_config(dir)
  H.write(dir .. "/site.lua", provider_lua)
  H.write(dir .. "/vmpool.yaml", table.concat({
    ":config:",
    "  lua: site.lua",
    ":redis:",
    "  state_dir: " .. dir .. "/state",
    ":pools:",
    "  - name: dum",
    "    size: 1",
    "    template: t/dum",
    "    provider: dummy",
    "",
  }, "\n"))
  return dir .. "/vmpool.yaml"
end

describe("vmpool.core", function()
  local dir
  before_each(function()
    dir = H.tmpdir()
    if core then core.log_level("error") end
  end)
  after_each(function()
    H.rmdir(dir)
  end)

  it("opens a configuration, runs its pools, checks VMs out and takes them back", function()
    if not needs_core() then return end
    local vp <close> = assert(core.open(write_config(dir), { no_env = true, stop_timeout = 5 }))
    assert.matches("vmpool handle", tostring(vp))
    assert.same({ nil, "vmpool is not started (vmp_start)", "ESTATE" }, { vp:checkout("mem") })
    assert.is_true(vp:start())
    assert.is_true(vp:wait_ready("mem", 2, 30))
    assert.is_true(vp:wait_ready("dum", 1, 30))

    local vm = assert(vp:checkout("m", { token = "t1", user = "alice", lifetime = 2 }))
    assert.matches("^mem%-%d+$", vm)
    assert.equals(1, vp:counts("mem").running)
    assert.is_true(vp:return_vm(vm))
    local ok, msg, code = vp["return"](vp, vm)
    assert.is_nil(ok)
    assert.equals("ESTATE", code)
    assert.is_string(msg)

    local none, m2, c2 = vp:checkout("nope")
    assert.is_nil(none)
    assert.equals("ENOENT", c2)
    assert.matches("nope", m2)

    local cfg = vp:config()
    assert.equals("mem", cfg.pools[2].name)
    assert.has_error(function() cfg.pools[1].size = 9 end)

    assert.is_true(vp:stop(5))
    vp:close()
    vp:close() -- idempotent
    assert.has_error(function() vp:start() end, "attempt to use a closed vmpool handle")
  end)

  it("reports configuration errors with the Lua file and line", function()
    if not needs_core() then return end
    H.write(dir .. "/bad.lua", "vmpool.pool{ name = 'x', size = 'many' }\n")
    H.write(dir .. "/bad.yaml", ":config:\n  lua: bad.lua\n")
    local vp, msg, code = core.open(dir .. "/bad.yaml", { no_env = true })
    assert.is_nil(vp)
    assert.equals("EINVAL", code)
    assert.matches("bad.lua:1:", msg)
    local vp2, msg2, code2 = core.open(dir .. "/absent.yaml", { no_env = true })
    assert.is_nil(vp2)
    assert.equals("ENOENT", code2)
    assert.is_string(msg2)
  end)

  it("takes extra Lua files, like vmpoold --lua", function()
    if not needs_core() then return end
    H.write(dir .. "/plain.yaml", ":pools: []\n")
    H.write(dir .. "/more.lua", "vmpool.pool{ name = 'extra', size = 0 }\n")
    local vp <close> = assert(core.open(dir .. "/plain.yaml", { no_env = true, lua = dir .. "/more.lua" }))
    assert.equals("extra", vp:config().pools[1].name)
  end)

  it("runs the embedding example", function()
    if not needs_core() then return end
    local cfg = write_config(dir)
    local cmd = ("VMP_BUILD_DIR=%q lua5.4 lua/vmpool/examples/embed.lua %q mem 2>&1"):format(
      os.getenv("VMP_BUILD_DIR"), cfg)
    local p = io.popen(cmd)
    local out = p:read("a")
    local ok = p:close()
    assert.is_true(ok, out)
    assert.matches("checked out mem%-%d+", out)
    assert.matches("mem: %d ready, 1 running", out)
    assert.matches("returned mem%-%d+", out)
  end)
end)

describe("the vmpool module in a plain lua5.4", function()
  it("is preloaded by vmpool.core, with the bindings working", function()
    if not needs_core() then return end
    local vmpool = require("vmpool")
    assert.equals("plain", vmpool.role)
    assert.equals(core.version, vmpool.version)
    local r = assert(vmpool.exec({ "sh", "-c", "echo $0; exit 4", "argv0" }, { timeout = 5 }))
    assert.equals("argv0\n", r.stdout)
    assert.equals(4, r.status)
    local none, msg, code = vmpool.exec({ "vmp-no-such-command" })
    assert.is_nil(none)
    assert.equals("ENOENT", code)
    assert.matches("command not found", msg)
    assert.is_nil(vmpool.config())
    assert.same({}, { vmpool.pool({ name = "ignored", size = 1 }) }) -- not a configuration run
    local t0 = vmpool.now()
    vmpool.sleep(0.02)
    assert.is_true(vmpool.now() - t0 >= 0.02)
    vmpool.log.debug("a debug line nobody sees")
    local _, hmsg, hcode = vmpool.http({ url = "http://127.0.0.1:1/", timeout = 2 })
    assert.equals("EIO", hcode)
    assert.is_string(hmsg)
  end)
end)
