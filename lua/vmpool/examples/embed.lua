-- Runs vmpool's pools inside a plain Lua program: open a configuration,
-- start the engine in-process, take a VM, give it back.
--
--   VMP_BUILD_DIR=build lua5.4 lua/vmpool/examples/embed.lua vmpool.yaml debian-12
--
-- vmpool.core is the C module built as <build>/lua/vmpool/core.so.
local build = os.getenv("VMP_BUILD_DIR") or "build"
package.cpath = build .. "/lua/?.so;" .. package.cpath

local core = require("vmpool.core")
core.log_level(os.getenv("VMP_LOG_LEVEL") or "warn")

local config, pool = arg[1], arg[2]
if not config or not pool then
  io.stderr:write("usage: embed.lua CONFIG POOL\n")
  os.exit(2)
end

local vp <close> = assert(core.open(config))
assert(vp:start())
assert(vp:wait_ready(pool, 1, 60))

local vm = assert(vp:checkout(pool, { user = "embed-example", lifetime = 1 }))
print("checked out " .. vm)
local counts = vp:counts(pool)
print(("%s: %d ready, %d running"):format(pool, counts.ready, counts.running))

assert(vp:return_vm(vm))
print("returned " .. vm)
vp:stop()
