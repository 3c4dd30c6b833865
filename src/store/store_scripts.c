/*
 * store_scripts.c: the server-side Lua scripts that make each state move one
 * atomic step, and their loading (SCRIPT LOAD once per connection, EVALSHA,
 * reload on NOSCRIPT).
 *
 * Conventions: ARGV[1] is the key prefix; `k(kind, name)` builds
 * "<prefix>__<kind>__<name>". An optional string argument is "" when absent.
 * Scripts return small integers (1 done, 0 / -1 precondition not met) or
 * arrays whose first element is such a code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define PRE                                                                                        \
    "local P = ARGV[1]\n"                                                                          \
    "local function k(kind, name) return P .. '__' .. kind .. '__' .. name end\n"

/* Scripts that pick random members: effects replication (no-op on 7.x). */
#define RANDOM_OK "if redis.replicate_commands then pcall(redis.replicate_commands) end\n"

/* Parses what vmp_time_format writes ("YYYY-MM-DD HH:MM:SS +ZZZZ"), ISO-8601
 * with a zone, or plain epoch seconds. Returns epoch seconds or nil. */
#define PARSE_TIME                                                                                 \
    "local function parse_time(s)\n"                                                               \
    "  if not s then return nil end\n"                                                             \
    "  local n = tonumber(s)\n"                                                                    \
    "  if n then return n end\n"                                                                   \
    "  local Y, M, D, h, m, sec, rest = string.match(s,\n"                                         \
    "    '^(%d%d%d%d)-(%d%d)-(%d%d)[ T](%d%d):(%d%d):(%d%d)%.?%d*%s*(.*)$')\n"                     \
    "  if not Y then return nil end\n"                                                             \
    "  local off = 0\n"                                                                            \
    "  if rest ~= 'Z' and rest ~= 'UTC' then\n"                                                    \
    "    local sign, zh, zm = string.match(rest, '^([%+%-])(%d%d):?(%d%d)$')\n"                    \
    "    if not sign then return nil end\n"                                                        \
    "    off = tonumber(zh) * 3600 + tonumber(zm) * 60\n"                                          \
    "    if sign == '-' then off = -off end\n"                                                     \
    "  end\n"                                                                                      \
    "  local y, mo, d = tonumber(Y), tonumber(M), tonumber(D)\n"                                   \
    "  if mo <= 2 then y = y - 1 end\n"                                                            \
    "  local era = math.floor(y / 400)\n"                                                          \
    "  local yoe = y - era * 400\n"                                                                \
    "  local mp = (mo + 9) % 12\n"                                                                 \
    "  local doy = math.floor((153 * mp + 2) / 5) + d - 1\n"                                       \
    "  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy\n"                \
    "  local days = era * 146097 + doe - 719468\n"                                                 \
    "  return days * 86400 + tonumber(h) * 3600 + tonumber(m) * 60 + tonumber(sec) - off\n"        \
    "end\n"

/* Iterates the `<alias>:<pool>:<n>` parts of an on-demand `requested`. */
#define OD_PARTS                                                                                   \
    "local function od_parts(req)\n"                                                               \
    "  local parts = {}\n"                                                                         \
    "  for part in string.gmatch(req or '', '[^,]+') do\n"                                         \
    "    local a, p, n = string.match(part, '^(.*):([^:]*):(%d+)$')\n"                             \
    "    if a then parts[#parts + 1] = {a, p, tonumber(n)} end\n"                                  \
    "  end\n"                                                                                      \
    "  return parts\n"                                                                             \
    "end\n"                                                                                        \
    "local function od_set(id, a, p) return P .. '__' .. id .. '__' .. a .. '__' .. p end\n"

typedef struct script_def {
    const char *name;
    const char *src;
} script_def;

/* Drops the migration entries whose owner no longer beats. */
#define MIG_PRUNE                                                                                  \
    "local function mig_prune(only)\n"                                                             \
    "  local mig, mo = P .. '__migration', P .. '__migration__owner'\n"                            \
    "  local owners = redis.call('HGETALL', mo)\n"                                                 \
    "  for i = 1, #owners, 2 do\n"                                                                 \
    "    local ow = owners[i + 1]\n"                                                               \
    "    if (only and ow == only) or\n"                                                            \
    "       (not only and redis.call('EXISTS', k('manager', ow)) == 0) then\n"                     \
    "      redis.call('HDEL', mo, owners[i])\n"                                                    \
    "      redis.call('SREM', mig, owners[i])\n"                                                   \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "end\n"

/* clang-format off */
static const script_def scripts[SCR_COUNT] = {
    [SCR_CLONE_START] = {"clone_start",
                         /* pool, vm, now, domain, request_id, pool_alias */
                         PRE "local vk = k('vm', ARGV[3])\n"
                             "if redis.call('EXISTS', vk) == 1 then return 0 end\n"
                             "redis.call('SADD', k('pending', ARGV[2]), ARGV[3])\n"
                             "redis.call('HSET', vk, 'clone', ARGV[4], 'template', ARGV[2],\n"
                             "           'pool', ARGV[2])\n"
                             "if ARGV[5] ~= '' then redis.call('HSET', vk, 'domain', ARGV[5]) end\n"
                             "if ARGV[6] ~= '' then redis.call('HSET', vk, 'request_id', ARGV[6]) end\n"
                             "if ARGV[7] ~= '' then redis.call('HSET', vk, 'pool_alias', ARGV[7]) end\n"
                             "return 1\n"},
    [SCR_CLONE_DONE] = {"clone_done",
                        /* pool, vm, date, seconds, ip */
                        PRE "local vk = k('vm', ARGV[3])\n"
                            "if redis.call('EXISTS', vk) == 0 then return 0 end\n"
                            "redis.call('HSET', k('clone', ARGV[4]), ARGV[2] .. ':' .. ARGV[3], ARGV[5])\n"
                            "redis.call('HSET', vk, 'clone_time', ARGV[5])\n"
                            "if ARGV[6] ~= '' then redis.call('HSET', vk, 'ip', ARGV[6]) end\n"
                            "return 1\n"},
    [SCR_CLONE_FAILED] = {"clone_failed",
                          /* pool, vm, ttl seconds, message, class */
                          PRE "local vk = k('vm', ARGV[3])\n"
                              "local was = redis.call('SREM', k('pending', ARGV[2]), ARGV[3])\n"
                              "if redis.call('EXISTS', vk) == 0 then return was end\n"
                              "if ARGV[5] ~= '' then redis.call('HSET', vk, 'clone_error', ARGV[5]) end\n"
                              "if ARGV[6] ~= '' then redis.call('HSET', vk, 'clone_error_class', ARGV[6]) end\n"
                              "redis.call('EXPIRE', vk, ARGV[4])\n"
                              "return 1\n"},
    [SCR_PENDING_READY] = {
        "pending_ready",
        /* pool, vm, now (string), now (number), date, lifetime_auth
         * -> {-1} not pending | {outcome, boot seconds or "-1"} */
        PRE PARSE_TIME
        "local pool, vm, now = ARGV[2], ARGV[3], ARGV[4]\n"
        "local pend = k('pending', pool)\n"
        "if redis.call('SISMEMBER', pend, vm) == 0 then return {-1} end\n"
        "local vk = k('vm', vm)\n"
        "local rid = redis.call('HGET', vk, 'request_id')\n"
        "local outcome = 0\n"
        "if rid then\n"
        "  local rk = k('odrequest', rid)\n"
        "  local status = redis.call('HGET', rk, 'status')\n"
        "  if status == 'failed' or status == 'deleted' then\n"
        "    redis.call('SMOVE', pend, k('completed', pool), vm)\n"
        "    return {2, '-1'}\n"
        "  end\n"
        "  local alias = redis.call('HGET', vk, 'pool_alias') or ''\n"
        "  redis.call('SMOVE', pend, k('running', pool), vm)\n"
        "  redis.call('HSET', k('active', pool), vm, now)\n"
        "  redis.call('HSET', vk, 'checkout', now)\n"
        "  local tok = redis.call('HGET', rk, 'token:token')\n"
        "  if tok then\n"
        "    redis.call('HSET', vk, 'token:token', tok,\n"
        "               'token:user', redis.call('HGET', rk, 'token:user') or '')\n"
        "    if tonumber(ARGV[7]) > 0 then redis.call('HSET', vk, 'lifetime', ARGV[7]) end\n"
        "  end\n"
        "  redis.call('SADD', P .. '__' .. rid .. '__' .. alias .. '__' .. pool, vm)\n"
        "  outcome = 1\n"
        "else\n"
        "  redis.call('SMOVE', pend, k('ready', pool), vm)\n"
        "end\n"
        "local boot = '-1'\n"
        "local clone = parse_time(redis.call('HGET', vk, 'clone'))\n"
        "if clone then\n"
        "  boot = string.format('%.2f', tonumber(ARGV[5]) - clone)\n"
        "  redis.call('HSET', k('boot', ARGV[6]), pool .. ':' .. vm, boot)\n"
        "end\n"
        "redis.call('HSET', vk, 'ready', now)\n"
        "redis.call('HSET', P .. '__lastboot', pool, now)\n"
        "return {outcome, boot}\n"},
    [SCR_DISCOVER] = {"discover",
                      /* pool, vm */
                      PRE "for _, st in ipairs({'pending', 'ready', 'running', 'completed',\n"
                          "                     'discovered', 'migrating'}) do\n"
                          "  if redis.call('SISMEMBER', k(st, ARGV[2]), ARGV[3]) == 1 then\n"
                          "    return 0\n"
                          "  end\n"
                          "end\n"
                          "redis.call('SADD', k('discovered', ARGV[2]), ARGV[3])\n"
                          "return 1\n"},
    [SCR_DISCOVERED_RESOLVE] = {"discovered_resolve",
                                /* pool, vm -> -1 not discovered, 0 dropped, 1 completed */
                                PRE "local d = k('discovered', ARGV[2])\n"
                                    "if redis.call('SISMEMBER', d, ARGV[3]) == 0 then return -1 end\n"
                                    "for _, st in ipairs({'pending', 'ready', 'running', 'completed'}) do\n"
                                    "  if redis.call('SISMEMBER', k(st, ARGV[2]), ARGV[3]) == 1 then\n"
                                    "    redis.call('SREM', d, ARGV[3])\n"
                                    "    return 0\n"
                                    "  end\n"
                                    "end\n"
                                    "redis.call('SMOVE', d, k('completed', ARGV[2]), ARGV[3])\n"
                                    "return 1\n"},
    [SCR_DESTROY_START] = {"destroy_start",
                           /* pool, vm, now, ttl seconds */
                           PRE "if redis.call('SISMEMBER', k('completed', ARGV[2]), ARGV[3]) == 0 then\n"
                               "  return 0\n"
                               "end\n"
                               "local vk = k('vm', ARGV[3])\n"
                               "redis.call('HDEL', k('active', ARGV[2]), ARGV[3])\n"
                               "redis.call('HSET', vk, 'destroy', ARGV[4])\n"
                               "redis.call('EXPIRE', vk, ARGV[5])\n"
                               "return 1\n"},
    [SCR_FORGET] = {"forget",
                    /* pool, vm */
                    PRE "if redis.call('SREM', k('completed', ARGV[2]), ARGV[3]) == 0 then\n"
                        "  return 0\n"
                        "end\n"
                        "redis.call('HDEL', k('active', ARGV[2]), ARGV[3])\n"
                        "redis.call('DEL', k('vm', ARGV[3]))\n"
                        "return 1\n"},
    [SCR_DRAIN] = {"drain",
                   /* pool -> number moved */
                   PRE "local r, p, c = k('ready', ARGV[2]), k('pending', ARGV[2]),\n"
                       "                k('completed', ARGV[2])\n"
                       "local n = redis.call('SCARD', r) + redis.call('SCARD', p)\n"
                       "if n > 0 then\n"
                       "  redis.call('SUNIONSTORE', c, c, r, p)\n"
                       "  redis.call('DEL', r, p)\n"
                       "end\n"
                       "return n\n"},
    [SCR_REMOVE_EXCESS] = {"remove_excess",
                           /* pool, n, all_pending ("1"/"0") -> number moved */
                           RANDOM_OK PRE
                           "local r, p, c = k('ready', ARGV[2]), k('pending', ARGV[2]),\n"
                           "                k('completed', ARGV[2])\n"
                           "local moved = 0\n"
                           "for i = 1, tonumber(ARGV[3]) do\n"
                           "  local vm = redis.call('SRANDMEMBER', r)\n"
                           "  if not vm then break end\n"
                           "  redis.call('SMOVE', r, c, vm)\n"
                           "  moved = moved + 1\n"
                           "end\n"
                           "if ARGV[4] == '1' then\n"
                           "  local np = redis.call('SCARD', p)\n"
                           "  if np > 0 then\n"
                           "    redis.call('SUNIONSTORE', c, c, p)\n"
                           "    redis.call('DEL', p)\n"
                           "    moved = moved + np\n"
                           "  end\n"
                           "end\n"
                           "return moved\n"},
    [SCR_CHECKOUT] = {
        "checkout",
        /* now, token, user, lifetime, nwants, {npools, pool...}...
         * -> {0, index of the empty want} | {1, pool, vm, pool, vm, ...} */
        RANDOM_OK PRE
        "local now, tok, user, life = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])\n"
        "local nwants = tonumber(ARGV[6])\n"
        "local pos = 7\n"
        "local taken = {}\n"
        "for w = 1, nwants do\n"
        "  local np = tonumber(ARGV[pos])\n"
        "  pos = pos + 1\n"
        "  local got = nil\n"
        "  for i = 0, np - 1 do\n"
        "    local pool = ARGV[pos + i]\n"
        "    if not got then\n"
        "      local vm = redis.call('SRANDMEMBER', k('ready', pool))\n"
        "      if vm then\n"
        "        redis.call('SMOVE', k('ready', pool), k('running', pool), vm)\n"
        "        got = {pool, vm}\n"
        "      end\n"
        "    end\n"
        "  end\n"
        "  pos = pos + np\n"
        "  if not got then\n"
        "    for _, t in ipairs(taken) do\n"
        "      redis.call('SMOVE', k('running', t[1]), k('ready', t[1]), t[2])\n"
        "    end\n"
        "    return {0, w - 1}\n"
        "  end\n"
        "  taken[#taken + 1] = got\n"
        "end\n"
        "local out = {1}\n"
        "for _, t in ipairs(taken) do\n"
        "  local pool, vm = t[1], t[2]\n"
        "  local vk = k('vm', vm)\n"
        "  redis.call('SADD', k('migrating', pool), vm)\n"
        "  redis.call('HSET', k('active', pool), vm, now)\n"
        "  redis.call('HSET', vk, 'checkout', now)\n"
        "  if tok ~= '' then\n"
        "    redis.call('HSET', vk, 'token:token', tok, 'token:user', user)\n"
        "  end\n"
        "  if life > 0 then redis.call('HSET', vk, 'lifetime', ARGV[5]) end\n"
        "  out[#out + 1] = pool\n"
        "  out[#out + 1] = vm\n"
        "end\n"
        "return out\n"},
    [SCR_ROLLBACK] = {"checkout_rollback",
                      /* pool, vm */
                      PRE "local pool, vm = ARGV[2], ARGV[3]\n"
                          "if redis.call('SMOVE', k('running', pool), k('ready', pool), vm) == 0 then\n"
                          "  return 0\n"
                          "end\n"
                          "redis.call('SREM', k('migrating', pool), vm)\n"
                          "redis.call('HDEL', k('active', pool), vm)\n"
                          "redis.call('HDEL', k('vm', vm), 'checkout', 'token:token', 'token:user')\n"
                          "return 1\n"},
    [SCR_VM_RETURN] = {"vm_return",
                       /* vm -> {-2} no hash | {-1, pool} not running | {1, pool} */
                       PRE "local pool = redis.call('HGET', k('vm', ARGV[2]), 'template')\n"
                           "if not pool then return {-2} end\n"
                           "if redis.call('SMOVE', k('running', pool), k('completed', pool),\n"
                           "              ARGV[2]) == 0 then\n"
                           "  return {-1, pool}\n"
                           "end\n"
                           "return {1, pool}\n"},
    [SCR_COUNTER_TAKE] = {"counter_take",
                          /* counter name, limit */
                          PRE "local key = k('tasks', ARGV[2])\n"
                              "local v = tonumber(redis.call('GET', key)) or 0\n"
                              "if v < tonumber(ARGV[3]) then\n"
                              "  redis.call('INCR', key)\n"
                              "  return 1\n"
                              "end\n"
                              "return 0\n"},
    [SCR_POOLS_PUBLISH] = {"pools_publish",
                           /* npools, {name, nkv, k, v, ...}... */
                           PRE "local set = P .. '__pools'\n"
                               "local n = tonumber(ARGV[2])\n"
                               "local pos = 3\n"
                               "local pools, keep = {}, {}\n"
                               "for i = 1, n do\n"
                               "  local name, nkv = ARGV[pos], tonumber(ARGV[pos + 1])\n"
                               "  pools[#pools + 1] = {name, pos + 2, nkv}\n"
                               "  keep[name] = true\n"
                               "  pos = pos + 2 + nkv\n"
                               "end\n"
                               "for _, old in ipairs(redis.call('SMEMBERS', set)) do\n"
                               "  if not keep[old] then\n"
                               "    redis.call('SREM', set, old)\n"
                               "    redis.call('DEL', k('pool', old))\n"
                               "  end\n"
                               "end\n"
                               "for _, p in ipairs(pools) do\n"
                               "  local hk = k('pool', p[1])\n"
                               "  redis.call('SADD', set, p[1])\n"
                               "  redis.call('DEL', hk)\n"
                               "  for j = 0, p[3] - 1, 2 do\n"
                               "    redis.call('HSET', hk, ARGV[p[2] + j], ARGV[p[2] + j + 1])\n"
                               "  end\n"
                               "end\n"
                               "return n\n"},
    [SCR_HSET_IF_EXISTS] = {"hset_if_exists",
                            /* key (full), field, value */
                            PRE "if redis.call('EXISTS', ARGV[2]) == 0 then return 0 end\n"
                                "redis.call('HSET', ARGV[2], ARGV[3], ARGV[4])\n"
                                "return 1\n"},
    [SCR_TAG_SET] = {"tag_set",
                     /* vm, tag, value, date */
                     PRE "local vk = k('vm', ARGV[2])\n"
                         "if redis.call('EXISTS', vk) == 0 then return 0 end\n"
                         "redis.call('HSET', vk, 'tag:' .. ARGV[3], ARGV[4])\n"
                         "redis.call('HSET', k('tag', ARGV[5]), ARGV[2] .. ':' .. ARGV[3], ARGV[4])\n"
                         "return 1\n"},
    [SCR_DISK_ADD] = {"disk_add",
                      /* vm, gb */
                      PRE "local vk = k('vm', ARGV[2])\n"
                          "if redis.call('EXISTS', vk) == 0 then return 0 end\n"
                          "local add = '+' .. ARGV[3] .. 'gb'\n"
                          "local d = redis.call('HGET', vk, 'disk')\n"
                          "if d and d ~= '' then add = d .. ':' .. add end\n"
                          "redis.call('HSET', vk, 'disk', add)\n"
                          "return 1\n"},
    [SCR_TOKEN_CREATE] = {"token_create",
                          /* token, user, now */
                          PRE "local tk = k('token', ARGV[2])\n"
                              "if redis.call('EXISTS', tk) == 1 then return 0 end\n"
                              "redis.call('HSET', tk, 'user', ARGV[3], 'created', ARGV[4])\n"
                              "return 1\n"},
    [SCR_TOKEN_TOUCH] = {"token_touch",
                         /* token, now -> {0} | {1, user} */
                         PRE "local tk = k('token', ARGV[2])\n"
                             "if redis.call('EXISTS', tk) == 0 then return {0} end\n"
                             "redis.call('HSET', tk, 'last', ARGV[3])\n"
                             "return {1, redis.call('HGET', tk, 'user') or ''}\n"},
    [SCR_OD_CREATE] = {"od_request_create",
                       /* id, requested, token, user, score */
                       PRE "local rk = k('odrequest', ARGV[2])\n"
                           "if redis.call('EXISTS', rk) == 1 then return 0 end\n"
                           "redis.call('HSET', rk, 'requested', ARGV[3])\n"
                           "if ARGV[4] ~= '' then\n"
                           "  redis.call('HSET', rk, 'token:token', ARGV[4], 'token:user', ARGV[5])\n"
                           "end\n"
                           "redis.call('ZADD', P .. '__provisioning__request', ARGV[6], ARGV[2])\n"
                           "return 1\n"},
    [SCR_OD_START] = {"od_request_start",
                      /* id, score now, task... */
                      PRE "local req = P .. '__provisioning__request'\n"
                          "local score = redis.call('ZSCORE', req, ARGV[2])\n"
                          "if not score then return 0 end\n"
                          "redis.call('ZREM', req, ARGV[2])\n"
                          "redis.call('ZADD', P .. '__provisioning__processing', score, ARGV[2])\n"
                          "for i = 4, #ARGV do\n"
                          "  redis.call('ZADD', P .. '__odcreate__task', ARGV[3], ARGV[i])\n"
                          "end\n"
                          "return 1\n"},
    [SCR_OD_TASK_REPLACE] = {"od_task_replace",
                             /* old, new */
                             PRE "local z = P .. '__odcreate__task'\n"
                                 "local score = redis.call('ZSCORE', z, ARGV[2])\n"
                                 "if not score then return 0 end\n"
                                 "redis.call('ZREM', z, ARGV[2])\n"
                                 "redis.call('ZADD', z, score, ARGV[3])\n"
                                 "return 1\n"},
    [SCR_OD_FAIL] = {"od_request_fail",
                     /* id, reason */
                     PRE "local rk = k('odrequest', ARGV[2])\n"
                         "if redis.call('EXISTS', rk) == 0 then return 0 end\n"
                         "redis.call('HSET', rk, 'status', 'failed')\n"
                         "if ARGV[3] ~= '' then redis.call('HSET', rk, 'failure_reason', ARGV[3]) end\n"
                         "return 1\n"},
    [SCR_OD_CHECK_READY] = {"od_request_check_ready",
                            /* id -> -1 no request, 0 not yet, 1 ready */
                            PRE OD_PARTS
                            "local id = ARGV[2]\n"
                            "local rk = k('odrequest', id)\n"
                            "if redis.call('EXISTS', rk) == 0 then return -1 end\n"
                            "local parts = od_parts(redis.call('HGET', rk, 'requested'))\n"
                            "if #parts == 0 then return 0 end\n"
                            "for _, p in ipairs(parts) do\n"
                            "  if redis.call('SCARD', od_set(id, p[1], p[2])) < p[3] then return 0 end\n"
                            "end\n"
                            "redis.call('HSET', rk, 'status', 'ready')\n"
                            "redis.call('EXPIRE', rk, 2592000)\n"
                            "redis.call('ZREM', P .. '__provisioning__processing', id)\n"
                            "return 1\n"},
    [SCR_OD_EXPIRE] = {"od_request_expire",
                       /* id, ttl seconds */
                       PRE OD_PARTS
                       "local id = ARGV[2]\n"
                       "local rk = k('odrequest', id)\n"
                       "if redis.call('EXISTS', rk) == 0 then return -1 end\n"
                       "redis.call('ZREM', P .. '__provisioning__processing', id)\n"
                       "redis.call('HSET', rk, 'status', 'failed')\n"
                       "redis.call('EXPIRE', rk, ARGV[3])\n"
                       "for _, p in ipairs(od_parts(redis.call('HGET', rk, 'requested'))) do\n"
                       "  local sk = od_set(id, p[1], p[2])\n"
                       "  for _, vm in ipairs(redis.call('SMEMBERS', sk)) do\n"
                       "    redis.call('SMOVE', k('running', p[2]), k('completed', p[2]), vm)\n"
                       "  end\n"
                       "  redis.call('EXPIRE', sk, ARGV[3])\n"
                       "end\n"
                       "return 1\n"},
    [SCR_OD_DELETE] = {"od_request_delete",
                       /* id -> -1 no request, 0 already deleted, 1 deleted */
                       PRE OD_PARTS
                       "local id = ARGV[2]\n"
                       "local rk = k('odrequest', id)\n"
                       "local req = redis.call('HGET', rk, 'requested')\n"
                       "if not req then return -1 end\n"
                       "if redis.call('HGET', rk, 'status') == 'deleted' then return 0 end\n"
                       "redis.call('HSET', rk, 'status', 'deleted')\n"
                       "for _, p in ipairs(od_parts(req)) do\n"
                       "  local sk = od_set(id, p[1], p[2])\n"
                       "  for _, vm in ipairs(redis.call('SMEMBERS', sk)) do\n"
                       "    redis.call('SMOVE', k('running', p[2]), k('completed', p[2]), vm)\n"
                       "  end\n"
                       "  redis.call('DEL', sk)\n"
                       "end\n"
                       /* No more work for a deleted request (vmpool: vmpooler
                        * leaves it queued and discards its VMs later). */
                       "redis.call('ZREM', P .. '__provisioning__request', id)\n"
                       "redis.call('ZREM', P .. '__provisioning__processing', id)\n"
                       "local tz = P .. '__odcreate__task'\n"
                       "local suffix = ':' .. id\n"
                       "for _, t in ipairs(redis.call('ZRANGE', tz, 0, -1)) do\n"
                       "  if string.sub(t, -#suffix) == suffix then redis.call('ZREM', tz, t) end\n"
                       "end\n"
                       "redis.call('EXPIRE', rk, 1296000)\n"
                       "return 1\n"},
    [SCR_LEASE_ACQUIRE] = {"lease_acquire",
                           /* pool, owner, ttl ms */
                           PRE "local key = k('lease', ARGV[2])\n"
                               "local cur = redis.call('GET', key)\n"
                               "if not cur then\n"
                               "  redis.call('SET', key, ARGV[3], 'PX', ARGV[4])\n"
                               "  return 1\n"
                               "end\n"
                               "if cur == ARGV[3] then\n"
                               "  redis.call('PEXPIRE', key, ARGV[4])\n"
                               "  return 1\n"
                               "end\n"
                               "return 0\n"},
    [SCR_LEASE_RENEW] = {"lease_renew",
                         /* pool, owner, ttl ms */
                         PRE "local key = k('lease', ARGV[2])\n"
                             "if redis.call('GET', key) ~= ARGV[3] then return 0 end\n"
                             "redis.call('PEXPIRE', key, ARGV[4])\n"
                             "return 1\n"},
    [SCR_LEASE_RELEASE] = {"lease_release",
                           /* pool, owner */
                           PRE "local key = k('lease', ARGV[2])\n"
                               "if redis.call('GET', key) ~= ARGV[3] then return 0 end\n"
                               "redis.call('DEL', key)\n"
                               "return 1\n"},
    [SCR_RATELIMIT] = {"ratelimit_hit",
                       /* class, client, limit, period -> {1, 0} counted | {0, ttl} refused */
                       PRE "local key = k('ratelimit', ARGV[2] .. '__' .. ARGV[3])\n"
                           "local n = tonumber(redis.call('GET', key) or '0') or 0\n"
                           "if n >= tonumber(ARGV[4]) then return {0, redis.call('TTL', key)} end\n"
                           "redis.call('INCR', key)\n"
                           "redis.call('EXPIRE', key, ARGV[5])\n"
                           "return {1, 0}\n"},
    [SCR_VM_RETURN_CHECKED] = {
        "vm_return_checked",
        /* vm, token, now -> {-2} no hash | {-3} token refused
         * | {-1, pool, user} not running | {1, pool, user} returned.
         * A VM checked out with a token needs an existing token (any,
         * as vmpooler); that token's `last` is touched. */
        PRE "local vm, tok, now = ARGV[2], ARGV[3], ARGV[4]\n"
            "local vk = k('vm', vm)\n"
            "local f = redis.call('HMGET', vk, 'template', 'token:token', 'token:user')\n"
            "if not f[1] and redis.call('EXISTS', vk) == 0 then return {-2} end\n"
            "local pool, owner, user = f[1] or '', f[2], f[3] or ''\n"
            "if owner then\n"
            "  local tk = k('token', tok)\n"
            "  if tok == '' or redis.call('EXISTS', tk) == 0 then return {-3} end\n"
            "  redis.call('HSET', tk, 'last', now)\n"
            "end\n"
            "if pool == '' or redis.call('SMOVE', k('running', pool), k('completed', pool),\n"
            "                             vm) == 0 then\n"
            "  return {-1, pool, user}\n"
            "end\n"
            "return {1, pool, user}\n"},
    [SCR_MANAGER_BEAT] = {
        "manager_beat",
        /* owner, ttl_ms, node, pid, start, clone, ondemandclone, final, reset_legacy
         * -> {clone total, ondemandclone total, (owner, node, pid, start) per other manager} */
        PRE MIG_PRUNE
        "local owner = ARGV[2]\n"
        "local reg = P .. '__managers'\n"
        "local me = k('manager', owner)\n"
        "if ARGV[9] == '1' then\n"
        "  redis.call('DEL', me)\n"
        "  redis.call('SREM', reg, owner)\n"
        "else\n"
        "  redis.call('HSET', me, 'node', ARGV[4], 'pid', ARGV[5], 'start', ARGV[6],\n"
        "             'clone', ARGV[7], 'ondemandclone', ARGV[8])\n"
        "  redis.call('PEXPIRE', me, ARGV[3])\n"
        "  redis.call('SADD', reg, owner)\n"
        "end\n"
        "local c, o, out = 0, 0, {'', ''}\n"
        "for _, m in ipairs(redis.call('SMEMBERS', reg)) do\n"
        "  local v = redis.call('HMGET', k('manager', m), 'clone', 'ondemandclone', 'node',\n"
        "                       'pid', 'start')\n"
        "  if not v[3] then\n"
        "    redis.call('SREM', reg, m)\n"
        "  else\n"
        "    c = c + (tonumber(v[1]) or 0)\n"
        "    o = o + (tonumber(v[2]) or 0)\n"
        "    if m ~= owner then\n"
        "      out[#out + 1] = m\n"
        "      out[#out + 1] = v[3]\n"
        "      out[#out + 1] = v[4] or ''\n"
        "      out[#out + 1] = v[5] or ''\n"
        "    end\n"
        "  end\n"
        "end\n"
        "redis.call('SET', k('tasks', 'clone'), string.format('%d', c))\n"
        "redis.call('SET', k('tasks', 'ondemandclone'), string.format('%d', o))\n"
        "mig_prune(nil)\n"
        "if ARGV[10] == '1' and #out == 2 then\n"
        "  local mig, mo = P .. '__migration', P .. '__migration__owner'\n"
        "  for _, vm in ipairs(redis.call('SMEMBERS', mig)) do\n"
        "    if redis.call('HEXISTS', mo, vm) == 0 then redis.call('SREM', mig, vm) end\n"
        "  end\n"
        "end\n"
        "out[1] = string.format('%d', c)\n"
        "out[2] = string.format('%d', o)\n"
        "return out\n"},
    [SCR_MANAGER_REAP] = {
        "manager_reap",
        /* owner, lease names... -> leases freed */
        PRE MIG_PRUNE
        "local dead = ARGV[2]\n"
        "redis.call('DEL', k('manager', dead))\n"
        "redis.call('SREM', P .. '__managers', dead)\n"
        "local n = 0\n"
        "for i = 3, #ARGV do\n"
        "  local lk = k('lease', ARGV[i])\n"
        "  if redis.call('GET', lk) == dead then\n"
        "    redis.call('DEL', lk)\n"
        "    n = n + 1\n"
        "  end\n"
        "end\n"
        "mig_prune(dead)\n"
        "return n\n"},
    [SCR_MIGRATION_CLAIM] = {
        "migration_claim",
        /* vm, owner, limit -> 1 taken, 0 limit reached */
        PRE
        "local mig = P .. '__migration'\n"
        "if redis.call('SISMEMBER', mig, ARGV[2]) == 0 and\n"
        "   redis.call('SCARD', mig) >= tonumber(ARGV[4]) then return 0 end\n"
        "redis.call('SADD', mig, ARGV[2])\n"
        "redis.call('HSET', P .. '__migration__owner', ARGV[2], ARGV[3])\n"
        "return 1\n"},
    [SCR_MIGRATION_RELEASE] = {
        "migration_release",
        /* vm */
        PRE
        "redis.call('SREM', P .. '__migration', ARGV[2])\n"
        "redis.call('HDEL', P .. '__migration__owner', ARGV[2])\n"
        "return 1\n"},
};

/* clang-format on */

const char *st_script_name(st_script id) { return scripts[id].name; }
const char *st_script_source(st_script id) { return scripts[id].src; }

int st_scripts_load(vmp_store *s, vmp_err *err)
{
    st_args cmds[SCR_COUNT] = {{0}};
    redisReply *r[SCR_COUNT] = {0};
    int rc = 0;
    for (int i = 0; i < SCR_COUNT; i++) {
        st_args_add(&cmds[i], "SCRIPT");
        st_args_add(&cmds[i], "LOAD");
        st_args_add(&cmds[i], scripts[i].src);
        if (cmds[i].oom) {
            rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
            goto out;
        }
    }
    /* Runs directly on the fresh connection (st_pipeline would recurse into
     * st_ensure). */
    for (int i = 0; i < SCR_COUNT; i++) {
        if (redisAppendCommandArgv(s->c, (int)cmds[i].n, (const char **)cmds[i].v, cmds[i].len) !=
            REDIS_OK)
            goto broke;
    }
    for (int i = 0; i < SCR_COUNT; i++) {
        void *x = NULL;
        if (redisGetReply(s->c, &x) != REDIS_OK || !x)
            goto broke;
        r[i] = x;
    }
    for (int i = 0; i < SCR_COUNT; i++) {
        if (r[i]->type != REDIS_REPLY_STRING || r[i]->len != 40) {
            rc = vmp_err_set(err, VMP_EREDIS, "redis %s: SCRIPT LOAD %s: %s", s->addr,
                             scripts[i].name,
                             r[i]->type == REDIS_REPLY_ERROR ? r[i]->str : "unexpected reply");
            goto out;
        }
        memcpy(s->sha[i], r[i]->str, 40);
        s->sha[i][40] = '\0';
    }
    s->scripts_loaded = true;
    goto out;
broke:
    rc = vmp_err_set(err, VMP_EREDIS, "redis %s: %s", s->addr,
                     s->c->errstr[0] ? s->c->errstr : "connection lost");
out:
    for (int i = 0; i < SCR_COUNT; i++) {
        st_args_free(&cmds[i]);
        if (r[i])
            freeReplyObject(r[i]);
    }
    return rc;
}

void st_eval_command(const vmp_store *s, const char *cmd, const char *body, const st_args *args,
                     st_args *a)
{
    st_args_add(a, cmd);
    st_args_add(a, body);
    st_args_add(a, "0");
    st_args_add(a, s->prefix);
    for (size_t i = 0; args && i < args->n; i++)
        st_args_addn(a, args->v[i], args->len[i]);
    if (args && args->oom)
        a->oom = true;
}

bool st_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

int st_script_error(vmp_store *s, const char *name, const redisReply *r, vmp_err *err)
{
    return vmp_err_set(err, VMP_EREDIS, "redis %s: script %s: %s", s->addr, name, r->str);
}

int st_eval_send(vmp_store *s, const char *cmd, const char *body, const st_args *args,
                 redisReply **out, vmp_err *err)
{
    st_args a = {0};
    st_eval_command(s, cmd, body, args, &a);
    redisReply *r = NULL;
    int rc = st_pipeline(s, false, &a, 1, &r, err);
    st_args_free(&a);
    if (rc < 0)
        return rc;
    if (st_noscript(r)) {
        /* The script cache was flushed: it did not run. The caller runs it
         * by source (which caches it again). */
        freeReplyObject(r);
        r = NULL;
    }
    *out = r;
    return 0;
}

int st_eval_reply(vmp_store *s, const char *name, redisReply *r, redisReply **out, vmp_err *err)
{
    if (!r)
        return vmp_err_set(err, VMP_EREDIS, "redis %s: script %s not loaded", s->addr, name);
    if (r->type == REDIS_REPLY_ERROR) {
        int rc = st_script_error(s, name, r, err);
        freeReplyObject(r);
        return rc;
    }
    *out = r;
    return 0;
}

int st_eval(vmp_store *s, st_script id, const st_args *args, redisReply **out, vmp_err *err)
{
    int rc = 0;
    redisReply *r = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        /* Connect first: the script SHA comes from this connection's load. */
        st_sigpipe g;
        st_sigpipe_enter(&g);
        rc = st_ensure(s, err);
        st_sigpipe_leave(&g);
        if (rc < 0)
            return rc;
        if (attempt == 0)
            rc = st_eval_send(s, "EVALSHA", s->sha[id], args, &r, err);
        else
            rc = st_eval_send(s, "EVAL", scripts[id].src, args, &r, err);
        if (rc < 0)
            return rc;
        if (r)
            break;
    }
    return st_eval_reply(s, scripts[id].name, r, out, err);
}
