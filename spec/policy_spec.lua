-- lua/vmpool/policy.lua under plain Lua: registering and choosing policy hooks.
local policy = require("vmpool.policy")

describe("vmpool.policy", function()
  before_each(function()
    policy.reset()
  end)

  it("checks what it is given", function()
    assert.has_error(function() policy.register(5) end,
      "vmpool.policy: expected a table of hooks, got number")
    assert.has_error(function() policy.register({ pool_size = 3 }) end,
      "vmpool.policy: pool_size must be a function, got number")
    assert.has_error(function() policy.register({ size = function() end }) end)
    assert.has_error(function() policy.register({ pools = 3, on_event = print }) end,
      "vmpool.policy: pools must be a pool name or a list of them")
    assert.has_error(function() policy.register({ pools = { 1 }, on_event = print }) end,
      "vmpool.policy: pools[1] must be a string")
    assert.same({}, policy.defined())
  end)

  it("lets the last policy covering a pool decide", function()
    policy.register({ pool_size = function() return 1 end })
    policy.register({ pools = "big", pool_size = function(pool, stats) return stats.size * 2 end })
    policy.register({ pools = { "other" }, vm_name = function(pool) return pool .. "-x" end })
    assert.same({ true, 1 }, { policy.call("pool_size", "small", { size = 3 }) })
    assert.same({ true, 6 }, { policy.call("pool_size", "big", { size = 3 }) })
    assert.same({ true, "other-x" }, { policy.call("vm_name", "other") })
    assert.same({ false }, { policy.call("vm_name", "big") })
    assert.same({ false }, { policy.call("lifetime", "big", "vm", {}) })
    assert.same({ pool_size = true, vm_name = true }, policy.defined())
  end)

  it("gives events to every covering on_event, even when one fails", function()
    local seen = {}
    policy.register({ on_event = function(ev) seen[#seen + 1] = "all:" .. ev.kind end })
    policy.register({ pools = "a", on_event = function() error("listener broke") end })
    policy.register({ pools = "a", on_event = function(ev) seen[#seen + 1] = "a:" .. ev.vm end })
    policy.register({ pools = "b", on_event = function() seen[#seen + 1] = "b" end })
    local ok, err = pcall(policy.emit, { kind = "checkout", pool = "a", vm = "vm1" })
    assert.is_false(ok)
    assert.matches("listener broke", err)
    assert.matches("stack traceback", err)
    assert.same({ "all:checkout", "a:vm1" }, seen)
    assert.has_no_error(function() policy.emit({ kind = "destroy", pool = "c" }) end)
    assert.same({ "all:checkout", "a:vm1", "all:destroy" }, seen)
  end)
end)
