-- lua/vmpool/provider.lua under plain Lua: the base class of Lua providers.
local Provider = require("vmpool.provider")

describe("vmpool.provider", function()
  before_each(function()
    Provider.reset()
  end)

  describe("register", function()
    it("returns the class, which inherits the base", function()
      local P = Provider.register("mine", {})
      assert.equals(P, Provider.class("mine"))
      assert.equals(P, Provider.class("MINE"))
      assert.equals("mine", P.class_name)
      assert.equals(Provider.vm_exists, P.vm_exists)
    end)

    it("checks the name and the table", function()
      assert.has_error(function() Provider.register("a b", {}) end)
      assert.has_error(function() Provider.register("", {}) end)
      assert.has_error(function() Provider.register(nil, {}) end)
      assert.has_error(function() Provider.register("p", "x") end,
        'vmpool.provider("p", impl): impl must be a table, got string')
      assert.has_error(function() Provider.register("p", { get_vm = true }) end,
        'vmpool.provider("p"): get_vm must be a function, got boolean')
    end)

    it("refuses a class defined twice, in any case", function()
      Provider.register("twice", {})
      assert.has_error(function() Provider.register("Twice", {}) end,
        'vmpool.provider: class "Twice" is defined twice')
    end)

    it("keeps a class's own metatable", function()
      local Base = setmetatable({ create_vm = function() return true end }, Provider)
      Base.__index = Base
      local Sub = setmetatable({}, Base)
      Provider.register("sub", Sub)
      assert.same({ "create_vm" }, Provider.implemented(Sub))
    end)
  end)

  describe("implemented", function()
    it("lists the contract methods a class defines, added before or after registering", function()
      local P = Provider.register("p", { get_vm = function() end })
      function P:create_vm() end
      P.helper = function() end -- not a contract method
      assert.same({ "create_vm", "get_vm" }, Provider.implemented(P))
      assert.same({ { name = "p", methods = { "create_vm", "get_vm" } } }, Provider.classes())
    end)
  end)

  describe("instances", function()
    it("carry what the host gives and reach it through the helpers", function()
      local logged
      local P = Provider.register("p", {})
      local obj = Provider.new(P, {
        name = "inst", class = "p", config = { region = "eu" }, options = { x = 1 },
        pool_config = function(pool) return { name = pool, size = 3 } end,
        provided_pools = function() return { "a", "b" } end,
        global_config = function() return { config = { prefix = "px" } } end,
        log = function(level, fmt, ...) logged = level .. ":" .. fmt:format(...) end,
      })
      assert.equals("inst", obj.name)
      assert.equals("eu", obj.config.region)
      assert.equals(1, obj.options.x)
      assert.equals(3, obj:pool_config("a").size)
      assert.same({ "a", "b" }, obj:provided_pools())
      assert.equals("px", obj:global_config().config.prefix)
      obj:log("info", "n=%d", 4)
      assert.equals("info:n=4", logged)
    end)

    it("work without a host", function()
      local obj = Provider.new(Provider.register("p", {}))
      assert.equals("p", obj.name)
      assert.is_nil(obj:pool_config("x"))
      assert.same({}, obj:provided_pools())
      obj:log("info", "nowhere")
    end)
  end)

  describe("dispatch", function()
    local obj, calls
    before_each(function()
      calls = {}
      local P = Provider.register("cloud", {})
      local vms = { p1 = { vm1 = true } }
      function P:vms_in_pool(pool)
        local l = {}
        for name in pairs(vms[pool] or {}) do l[#l + 1] = { name = name } end
        return l
      end
      function P:get_vm(pool, vm)
        if not (vms[pool] or {})[vm] then return nil end
        return { name = vm, hostname = vm, template = pool, boottime = 12.5, ip = 10,
                 snapshots = { "a", 2 } }
      end
      function P:create_vm(pool, vm)
        calls[#calls + 1] = vm
        if vm == "no" then return false end
        if vm == "odd" then return 42 end
        return true
      end
      function P:destroy_vm() end
      function P:create_disk(_, _, size) return size < 10 end
      function P:get_vm_host(_, vm) if vm == "vm1" then return "host1" end end
      obj = Provider.new(P, { name = "cloud" })
    end)

    it("checks the arguments before calling", function()
      assert.has_error(function() Provider.dispatch(obj, "create_vm", "", "vm") end,
        'create_vm: pool must be a non-empty string, got ""')
      assert.has_error(function() Provider.dispatch(obj, "create_vm", "p1", nil) end,
        "create_vm: vm must be a non-empty string, got nil")
      assert.has_error(function() Provider.dispatch(obj, "create_disk", "p1", "vm1", 1.5) end,
        "create_disk: size_gb must be a positive integer, got 1.5")
      assert.has_error(function() Provider.dispatch(obj, "purge_unconfigured_resources", { 1 }) end,
        "purge_unconfigured_resources: allowlist[1] must be a string")
      assert.has_error(function() Provider.dispatch(obj, "create_vm", "p1", "v", "extra") end,
        "create_vm: 3 arguments given, 2 expected")
      assert.has_error(function() Provider.dispatch(obj, "reboot", "p1") end,
        'unknown provider method "reboot"')
      assert.same({}, calls)
    end)

    it("says which method a class does not implement", function()
      assert.has_error(function() Provider.dispatch(obj, "migrate_vm", "p1", "vm1") end,
        "cloud does not implement migrate_vm")
    end)

    it("reads each kind of answer", function()
      assert.same({ { "vm1" }, "ok" }, { Provider.dispatch(obj, "vms_in_pool", "p1") })
      assert.same({ {}, "ok" }, { Provider.dispatch(obj, "vms_in_pool", "none") })
      local vm, st = Provider.dispatch(obj, "get_vm", "p1", "vm1")
      assert.equals("ok", st)
      assert.same({ name = "vm1", hostname = "vm1", template = "p1", boottime = 12.5, ip = "10",
                    snapshots = { "a", "2" } }, vm)
      assert.same({ nil, "absent" }, { Provider.dispatch(obj, "get_vm", "p1", "nope") })
      assert.same({ nil, "ok" }, { Provider.dispatch(obj, "create_vm", "p1", "new") })
      assert.same({ nil, "failed" }, { Provider.dispatch(obj, "create_vm", "p1", "no") })
      assert.same({ nil, "ok" }, { Provider.dispatch(obj, "destroy_vm", "p1", "vm1") })
      assert.same({ nil, "failed" }, { Provider.dispatch(obj, "create_disk", "p1", "vm1", 20) })
      assert.same({ "host1", "ok" }, { Provider.dispatch(obj, "get_vm_host", "p1", "vm1") })
      assert.same({ nil, "absent" }, { Provider.dispatch(obj, "get_vm_host", "p1", "vm2") })
    end)

    it("rejects answers of the wrong shape", function()
      assert.has_error(function() Provider.dispatch(obj, "create_vm", "p1", "odd") end,
        "create_vm returned a number; expected a table describing the VM, or nil")
      local P = Provider.class("cloud")
      function P:vms_in_pool() return { { id = 1 } } end
      assert.has_error(function() Provider.dispatch(obj, "vms_in_pool", "p1") end,
        "vms_in_pool: item 1 has no name")
      function P:get_vm() return { boottime = "yesterday" } end
      assert.has_error(function() Provider.dispatch(obj, "get_vm", "p1", "x") end,
        "get_vm: boottime must be seconds since the epoch, got string")
    end)

    it("supplies the contract's defaults", function()
      assert.same({ true, "ok" }, { Provider.dispatch(obj, "vm_exists", "p1", "vm1") })
      assert.same({ false, "ok" }, { Provider.dispatch(obj, "vm_exists", "p1", "zz") })
      assert.same({ nil, "ok" }, { Provider.dispatch(obj, "tag_vm_user", "p1", "vm1") })
      assert.same({ nil, "ok" }, { Provider.dispatch(obj, "create_template_delta_disks", "p1") })
    end)
  end)
end)
