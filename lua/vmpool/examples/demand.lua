-- Demand-following sizing: a pool grows to cover the checkouts it sees
-- (the rate of the last ten minutes, or of the last hour if that is
-- higher, so it shrinks slowly after a burst), with some headroom, between
-- its size and a ceiling, moving a few VMs per pass.
--
--   :config:
--     lua: [lua/vmpool/examples/demand.lua]

local HEADROOM = 1.5     -- ready VMs per checkout seen in the last 10 minutes
local MAX_FACTOR = 4     -- never more than 4 times the configured size
local MAX_STEP = 5       -- grow or shrink by at most 5 VMs per pass
local POOLS = nil        -- nil: every pool; or a list of pool names

local function pool_size(pool, stats, now)
  local floor = stats.size -- the configured size, or the API's override
  local per_10m = math.max(stats.checkouts_10m, stats.checkouts_1h / 6)
  local want = math.ceil(per_10m * HEADROOM)
  want = math.max(floor, math.min(floor * MAX_FACTOR, want))
  -- move gradually from what the pool holds now
  local have = stats.ready + stats.pending
  if want > have + MAX_STEP then want = have + MAX_STEP end
  if want < have - MAX_STEP then want = have - MAX_STEP end
  return math.max(floor, want)
end

local function on_event(ev)
  if ev.kind == "checkout" then
    vmpool.log.debug("demand: checkout from %s", ev.pool)
  end
end

vmpool.policy{ pools = POOLS, pool_size = pool_size, on_event = on_event }

return { pool_size = pool_size }
