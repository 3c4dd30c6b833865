/*
 * vmpool.core: the engine as a Lua C module, for a plain lua5.4
 * (require "vmpool.core" with <build>/lua on package.cpath).
 *
 *   local core = require "vmpool.core"
 *   local vp = assert(core.open("vmpool.yaml"))
 *   assert(vp:start())
 *   assert(vp:wait_ready("debian-12", 1, 60))
 *   local vm = assert(vp:checkout("debian-12"))
 *   vp:return_vm(vm)
 *   vp:close()
 *
 * A thin layer over vmpool.h. Loading it also puts the vmpool Lua modules
 * (vmpool, vmpool.provider, vmpool.policy) in package.preload.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "log.h"
#include "lua/script_internal.h"
#include "vmpool.h"

#define HANDLE "vmp.handle"

typedef struct handle {
    vmpool *vp; /* NULL once closed */
} handle;

static handle *check_handle(lua_State *L, int i)
{
    handle *h = luaL_checkudata(L, i, HANDLE);
    if (!h->vp)
        luaL_error(L, "attempt to use a closed vmpool handle");
    return h;
}

/* core.open(path [, {lua = {files}, no_env = bool, stop_timeout = s, owner = id}]) */
static int l_open(lua_State *L)
{
    const char *path = luaL_optstring(L, 1, NULL);
    vmp_open_opts o = {0};
    const char **files = NULL;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "no_env");
        o.no_env = lua_toboolean(L, -1);
        lua_getfield(L, 2, "stop_timeout");
        o.stop_timeout = luaL_optnumber(L, -1, 0);
        lua_getfield(L, 2, "owner");
        o.owner = luaL_optstring(L, -1, NULL);
        if (lua_getfield(L, 2, "lua") == LUA_TSTRING) { /* one file */
            lua_createtable(L, 1, 0);
            lua_insert(L, -2);
            lua_rawseti(L, -2, 1);
        }
        if (!lua_isnil(L, -1)) {
            luaL_checktype(L, -1, LUA_TTABLE);
            size_t n = lua_rawlen(L, -1);
            files = lua_newuserdatauv(L, (n + 1) * sizeof *files, 0); /* collected by Lua */
            for (size_t i = 0; i < n; i++) {
                lua_rawgeti(L, -2, (lua_Integer)i + 1);
                if (lua_type(L, -1) != LUA_TSTRING)
                    return luaL_error(L, "lua[%d]: expected a file name", (int)i + 1);
                files[i] = lua_tostring(L, -1); /* anchored by the table */
                lua_pop(L, 1);
            }
            files[n] = NULL;
            o.lua_files = files;
        }
    }
    /* the userdata exists before the handle does: no leak if Lua raises */
    handle *h = lua_newuserdatauv(L, sizeof *h, 0);
    h->vp = NULL;
    luaL_setmetatable(L, HANDLE);
    vmp_err err = {0};
    int rc = vmp_open(path, &o, &h->vp, &err);
    if (rc != 0)
        return vmp_lua_fail(L, rc, &err);
    return 1;
}

static int l_start(lua_State *L)
{
    handle *h = check_handle(L, 1);
    vmp_err err = {0};
    int rc = vmp_start(h->vp, &err);
    if (rc != 0)
        return vmp_lua_fail(L, rc, &err);
    lua_pushboolean(L, 1);
    return 1;
}

static int push_string(lua_State *L)
{
    lua_pushstring(L, lua_touserdata(L, 1));
    return 1;
}

/* vp:checkout(pool [, {token =, user =, lifetime =}]) -> vm | nil, msg, code */
static int l_checkout(lua_State *L)
{
    handle *h = check_handle(L, 1);
    const char *pool = luaL_checkstring(L, 2);
    vmp_checkout_opts co = {0};
    bool with = !lua_isnoneornil(L, 3);
    if (with) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_getfield(L, 3, "token");
        co.token = luaL_optstring(L, -1, NULL);
        lua_getfield(L, 3, "user");
        co.user = luaL_optstring(L, -1, NULL);
        lua_getfield(L, 3, "lifetime");
        co.lifetime = (long long)luaL_optinteger(L, -1, 0);
    }
    char *vm = NULL;
    vmp_err err = {0};
    int rc = vmp_checkout(h->vp, pool, with ? &co : NULL, &vm, &err);
    if (rc != 0)
        return vmp_lua_fail(L, rc, &err);
    /* push the name protected, free it, then raise if pushing failed */
    int st = vmp_lua_protect(L, push_string, vm, 1);
    free(vm);
    if (st != LUA_OK)
        return lua_error(L);
    return 1;
}

static int l_return(lua_State *L)
{
    handle *h = check_handle(L, 1);
    const char *vm = luaL_checkstring(L, 2);
    vmp_err err = {0};
    int rc = vmp_return(h->vp, vm, &err);
    if (rc != 0)
        return vmp_lua_fail(L, rc, &err);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_counts(lua_State *L)
{
    handle *h = check_handle(L, 1);
    const char *pool = luaL_checkstring(L, 2);
    vmp_pool_counts c;
    vmp_err err = {0};
    int rc = vmp_counts(h->vp, pool, &c, &err);
    if (rc != 0)
        return vmp_lua_fail(L, rc, &err);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, c.ready);
    lua_setfield(L, -2, "ready");
    lua_pushinteger(L, c.pending);
    lua_setfield(L, -2, "pending");
    lua_pushinteger(L, c.running);
    lua_setfield(L, -2, "running");
    lua_pushinteger(L, c.completed);
    lua_setfield(L, -2, "completed");
    return 1;
}

/* vp:wait_ready(pool, n, timeout) -> true | nil, msg, code */
static int l_wait_ready(lua_State *L)
{
    handle *h = check_handle(L, 1);
    const char *pool = luaL_checkstring(L, 2);
    lua_Integer n = luaL_optinteger(L, 3, 1);
    double timeout = luaL_optnumber(L, 4, 60);
    vmp_err err = {0};
    int rc = vmp_wait_ready(h->vp, pool, (long long)n, timeout, &err);
    if (rc != 0)
        return vmp_lua_fail(L, rc, &err);
    lua_pushboolean(L, 1);
    return 1;
}

/* vp:config() -> read-only view of the configuration in force */
static int l_config(lua_State *L)
{
    handle *h = check_handle(L, 1);
    vmp_lua_push_node(L, vmp_config_of(h->vp)->root, true);
    return 1;
}

static int l_stop(lua_State *L)
{
    handle *h = check_handle(L, 1);
    double timeout = luaL_optnumber(L, 2, -1);
    int rc = vmp_stop(h->vp, timeout);
    lua_pushboolean(L, rc == 0);
    return 1;
}

/* close, __gc and __close: idempotent */
static int l_close(lua_State *L)
{
    handle *h = luaL_checkudata(L, 1, HANDLE);
    vmpool *vp = h->vp;
    h->vp = NULL;
    vmp_close(vp);
    return 0;
}

static int l_tostring(lua_State *L)
{
    handle *h = luaL_checkudata(L, 1, HANDLE);
    if (h->vp)
        lua_pushfstring(L, "vmpool handle (%s)", vmp_config_of(h->vp)->path);
    else
        lua_pushliteral(L, "vmpool handle (closed)");
    return 1;
}

/* core.log_level("warn") */
static int l_log_level(lua_State *L)
{
    vmp_log_level level;
    if (vmp_log_level_parse(luaL_checkstring(L, 1), &level) != 0)
        return luaL_argerror(L, 1, "expected debug, info, warn, error or off");
    vmp_log_set_level(level);
    return 0;
}

int luaopen_vmpool_core(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"start", l_start},   {"checkout", l_checkout},     {"return_vm", l_return},
        {"counts", l_counts}, {"wait_ready", l_wait_ready}, {"config", l_config},
        {"stop", l_stop},     {"close", l_close},           {NULL, NULL},
    };
    static const luaL_Reg fns[] = {
        {"open", l_open},
        {"log_level", l_log_level},
        {NULL, NULL},
    };
    vmp_lua_preload(L);
    if (luaL_newmetatable(L, HANDLE)) {
        luaL_newlib(L, methods);
        lua_pushcfunction(L, l_return);
        lua_setfield(L, -2, "return"); /* vp["return"](vp, vm) reads as the API's word */
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    lua_pushstring(L, VMP_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
