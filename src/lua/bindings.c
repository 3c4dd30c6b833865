/* The `vmpool` Lua module: log, metrics, exec, sleep, now, role, null, and
 * the parts defined in the other files (config, http, provider, policy). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "lua/script_internal.h"

extern char **environ;

static const char *const role_names[] = {"plain", "config", "policy", "provider"};

/* ---- vmpool.log -------------------------------------------------------------- */

static int parse_level(lua_State *L, int idx)
{
    const char *name = luaL_checkstring(L, idx);
    vmp_log_level level;
    if (vmp_log_level_parse(name, &level) != 0 || level == VMP_LOG_OFF)
        return luaL_argerror(L, idx, "expected debug, info, warn or error");
    return (int)level;
}

/* Formats the message from args first..top: one value is used as is
 * (tostring), more go through string.format. Leaves it on the stack. */
static const char *format_message(lua_State *L, int first)
{
    int top = lua_gettop(L);
    if (first > top)
        return lua_pushliteral(L, "");
    if (first == top)
        return luaL_tolstring(L, first, NULL);
    lua_pushvalue(L, lua_upvalueindex(1)); /* string.format */
    for (int i = first; i <= top; i++)
        lua_pushvalue(L, i);
    lua_call(L, top - first + 1, 1);
    return lua_tostring(L, -1);
}

static void emit(lua_State *L, vmp_log_level level, const char *pool, const char *vm,
                 const char *msg)
{
    vmp_lua *l = vmp_lua_from(L);
    if (l && l->provider)
        vmp_provider_log(l->provider, level, pool, vm, "%s", msg);
    else
        vmp_log_vm(level, l ? l->subsys : "lua", pool, vm, "%s", msg);
}

/* vmpool.log(level, fmt, ...) */
static int log_call(lua_State *L)
{
    /* [self, level, fmt, ...] */
    vmp_log_level level = (vmp_log_level)parse_level(L, 2);
    if (!vmp_log_enabled(level))
        return 0;
    emit(L, level, NULL, NULL, format_message(L, 3));
    return 0;
}

/* vmpool.log.vm(level, pool, vm, fmt, ...) */
static int log_vm(lua_State *L)
{
    vmp_log_level level = (vmp_log_level)parse_level(L, 1);
    const char *pool = luaL_optstring(L, 2, NULL);
    const char *vm = luaL_optstring(L, 3, NULL);
    if (!vmp_log_enabled(level))
        return 0;
    emit(L, level, pool, vm, format_message(L, 4));
    return 0;
}

/* vmpool.log.info(fmt, ...) etc.: the level is upvalue 2 */
static int log_level_fn(lua_State *L)
{
    vmp_log_level level = (vmp_log_level)lua_tointeger(L, lua_upvalueindex(2));
    if (!vmp_log_enabled(level))
        return 0;
    emit(L, level, NULL, NULL, format_message(L, 1));
    return 0;
}

static void open_log(lua_State *L)
{
    /* [vmpool] */
    static const struct {
        const char *name;
        vmp_log_level level;
    } levels[] = {{"debug", VMP_LOG_DEBUG},
                  {"info", VMP_LOG_INFO},
                  {"warn", VMP_LOG_WARN},
                  {"warning", VMP_LOG_WARN},
                  {"error", VMP_LOG_ERROR}};
    lua_newtable(L); /* [vmpool, log] */
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "format"); /* [vmpool, log, string, format] */
    lua_remove(L, -2);
    for (size_t i = 0; i < VMP_ARRAY_LEN(levels); i++) {
        lua_pushvalue(L, -1);
        lua_pushinteger(L, levels[i].level);
        lua_pushcclosure(L, log_level_fn, 2);
        lua_setfield(L, -3, levels[i].name);
    }
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, log_vm, 1);
    lua_setfield(L, -3, "vm");
    lua_createtable(L, 0, 1); /* [vmpool, log, format, mt] */
    lua_insert(L, -2);
    lua_pushcclosure(L, log_call, 1);
    lua_setfield(L, -2, "__call");
    lua_setmetatable(L, -2); /* [vmpool, log] */
    lua_setfield(L, -2, "log");
}

/* ---- vmpool.metrics --------------------------------------------------------------- */

static vmp_metrics *metrics_of(lua_State *L)
{
    vmp_lua *l = vmp_lua_from(L);
    if (l && l->provider)
        return vmp_provider_metrics(l->provider);
    return l ? l->metrics : NULL;
}

static int metrics_increment(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    vmp_metrics_increment(metrics_of(L), "%s", name);
    return 0;
}

static int metrics_gauge(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    double v = luaL_checknumber(L, 2);
    vmp_metrics_gauge(metrics_of(L), v, "%s", name);
    return 0;
}

static int metrics_timing(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    double ms = luaL_checknumber(L, 2);
    vmp_metrics_timing(metrics_of(L), ms, "%s", name);
    return 0;
}

/* ---- vmpool.sleep, vmpool.now ---------------------------------------------------------- */

static int l_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s >= 0 && isfinite(s), 1, "expected a non-negative number of seconds");
    if (s > vmp_lua_time_left(L))
        return luaL_error(L, "vmpool.sleep(%f) would pass the call's time limit", (lua_Number)s);
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

static int l_now(lua_State *L)
{
    lua_pushnumber(L, vmp_now());
    return 1;
}

/* ---- vmpool.exec ---------------------------------------------------------------------------- */

static int push_exec_result(lua_State *L)
{
    const vmp_exec_result *res = lua_touserdata(L, 1);
    lua_createtable(L, 0, 7);
    if (res->signal)
        lua_pushnil(L);
    else
        lua_pushinteger(L, res->status);
    lua_setfield(L, -2, "status");
    lua_pushboolean(L, !res->signal && !res->timed_out && res->status == 0);
    lua_setfield(L, -2, "ok");
    if (res->signal) {
        lua_pushinteger(L, res->signal);
        lua_setfield(L, -2, "signal");
    }
    lua_pushboolean(L, res->timed_out);
    lua_setfield(L, -2, "timed_out");
    lua_pushboolean(L, res->truncated);
    lua_setfield(L, -2, "truncated");
    lua_pushlstring(L, res->out, res->out_len);
    lua_setfield(L, -2, "stdout");
    lua_pushlstring(L, res->err, res->err_len);
    lua_setfield(L, -2, "stderr");
    return 1;
}

/* Reads a list of strings (numbers are converted) at idx into a NULL-ended
 * array with extra spare slots. Pushes two values that keep it alive: a
 * table anchoring the strings and the array's userdata, collected by Lua
 * (no leak when an error follows). */
static const char **string_array(lua_State *L, int idx, size_t extra, const char *what)
{
    idx = lua_absindex(L, idx);
    size_t n = lua_rawlen(L, idx);
    lua_createtable(L, (int)n, 0); /* [anchor] */
    int anchor = lua_gettop(L);
    const char **v = lua_newuserdatauv(L, (n + extra + 1) * sizeof *v, 0); /* [anchor, ud] */
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "%s[%d]: expected a string, got %s", what, (int)i + 1,
                       luaL_typename(L, -1));
        v[i] = lua_tostring(L, -1);
        lua_rawseti(L, anchor, (lua_Integer)i + 1);
    }
    v[n] = NULL;
    return v;
}

/* vmpool.exec(argv [, {timeout=, stdin=, cwd=, env=, output_max=}])
 * -> {status, ok, signal, timed_out, truncated, stdout, stderr} | nil, msg, code */
static int l_exec(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argcheck(L, lua_rawlen(L, 1) >= 1, 1, "expected a non-empty argv list");
    vmp_exec_opts o = {0};
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "timeout");
        o.timeout = luaL_optnumber(L, -1, 0);
        lua_getfield(L, 2, "stdin");
        o.input = luaL_optlstring(L, -1, NULL, &o.input_len);
        lua_getfield(L, 2, "cwd");
        o.cwd = luaL_optstring(L, -1, NULL);
        lua_getfield(L, 2, "output_max");
        lua_Integer max = luaL_optinteger(L, -1, 0);
        luaL_argcheck(L, max >= 0, 2, "output_max must be >= 0");
        o.output_max = (size_t)max;
        lua_getfield(L, 2, "env"); /* extra variables, added to the environment */
        if (!lua_isnil(L, -1)) {
            luaL_checktype(L, -1, LUA_TTABLE);
            int envt = lua_gettop(L);
            size_t n = 0;
            while (environ[n])
                n++;
            lua_newtable(L);
            int list = lua_gettop(L);
            lua_Integer k = 0;
            lua_pushnil(L);
            while (lua_next(L, envt)) {
                if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
                    return luaL_error(L, "env: expected string names and string values");
                lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
                lua_rawseti(L, list, ++k);
                lua_pop(L, 1);
            }
            const char **env = string_array(L, list, n, "env");
            for (size_t i = 0; i < n; i++)
                env[k + (lua_Integer)i] = environ[i];
            env[k + (lua_Integer)n] = NULL;
            o.env = env;
        }
    }
    o.argv = string_array(L, 1, 0, "argv");
    double left = vmp_lua_time_left(L);
    if (left < HUGE_VAL && (o.timeout <= 0 || o.timeout > left))
        o.timeout = left > 0 ? left : 0.001;

    /* Nothing below raises until the result is pushed. */
    vmp_exec_result res;
    vmp_err err = {0};
    int rc = vmp_exec_run(&o, &res, &err);
    if (rc != 0)
        return vmp_lua_fail(L, rc, &err);
    int st = vmp_lua_protect(L, push_exec_result, &res, 1);
    vmp_exec_result_clear(&res);
    if (st != LUA_OK)
        return lua_error(L);
    return 1;
}

/* ---- the module ---------------------------------------------------------------------------- */

int vmp_lua_open_vmpool(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"sleep", l_sleep},
        {"now", l_now},
        {"exec", l_exec},
        {NULL, NULL},
    };
    static const luaL_Reg metrics[] = {
        {"increment", metrics_increment},
        {"gauge", metrics_gauge},
        {"timing", metrics_timing},
        {NULL, NULL},
    };
    vmp_lua *l = vmp_lua_from(L);
    luaL_newlib(L, fns); /* [vmpool] */
    luaL_newlib(L, metrics);
    lua_setfield(L, -2, "metrics");
    open_log(L);
    vmp_lua_push_null(L);
    lua_setfield(L, -2, "null");
    lua_pushstring(L, role_names[vmp_lua_role_of(l)]);
    lua_setfield(L, -2, "role");
    lua_pushstring(L, VMP_VERSION);
    lua_setfield(L, -2, "version");
    vmp_lua_open_http(L);
    vmp_lua_open_config(L);
    vmp_lua_open_provider(L);
    vmp_lua_open_policy(L);
    return 1;
}
