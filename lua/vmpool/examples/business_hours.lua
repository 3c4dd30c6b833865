-- Business-hours sizing: every pool keeps its configured size during
-- working hours and shrinks to a share of it at night and on weekends.
--
--   :config:
--     lua: [lua/vmpool/examples/business_hours.lua]
--
-- Times are the vmpool host's local time. A size set at run time through
-- the API (a pool size override) is left alone.

local DAY_START, DAY_END = 8, 18      -- working hours: [08:00, 18:00)
local WORKDAYS = { [2] = true, [3] = true, [4] = true, [5] = true, [6] = true } -- Mon..Fri
local OFF_HOURS_SHARE = 0.25          -- off hours: a quarter of the size (at least 1)
local POOLS = nil                     -- nil: every pool; or a list of pool names

local function working(now)
  local t = os.date("*t", math.floor(now))
  return WORKDAYS[t.wday] == true and t.hour >= DAY_START and t.hour < DAY_END
end

local function pool_size(pool, stats, now)
  if stats.size ~= stats.config_size then
    return nil -- overridden at run time: not ours to change
  end
  if working(now) then
    return stats.config_size
  end
  local off = math.ceil(stats.config_size * OFF_HOURS_SHARE)
  if stats.config_size > 0 and off < 1 then off = 1 end
  return off
end

vmpool.policy{ pools = POOLS, pool_size = pool_size }

return { working = working, pool_size = pool_size }
