/* Lua states: allocator with a cap, sandbox, protected calls with limits,
 * counted registry references, the embedded modules in package.preload. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "log.h"
#include "lua/script_internal.h"

#define HOOK_STEP 1000

static atomic_long live_refs;

/* ---- allocator ------------------------------------------------------------ */

/* Every state vmpool makes uses this allocator with its vmp_lua as ud, which
 * is also how vmp_lua_from finds the vmp_lua of a lua_State (coroutines
 * included) without touching the stack. */
static void *state_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    vmp_lua *l = ud;
    if (!ptr)
        osize = 0;
    if (nsize == 0) {
        free(ptr);
        l->mem -= osize;
        return NULL;
    }
    if (nsize > osize) {
        if (l->mem_limit && l->mem + (nsize - osize) > l->mem_limit)
            return NULL;
        if (l->fail_after == 0)
            return NULL;
        if (l->fail_after > 0)
            l->fail_after--;
    }
    void *p = realloc(ptr, nsize);
    if (!p)
        return NULL;
    l->mem = l->mem - osize + nsize;
    return p;
}

vmp_lua *vmp_lua_from(lua_State *L)
{
    void *ud = NULL;
    if (!L || lua_getallocf(L, &ud) != state_alloc)
        return NULL;
    return ud;
}

lua_State *vmp_lua_state(vmp_lua *l) { return l ? l->L : NULL; }

vmp_lua_role vmp_lua_role_of(const vmp_lua *l) { return l ? l->role : VMP_LUA_PLAIN; }

void vmp_lua_fail_alloc_after(vmp_lua *l, long n)
{
    if (l)
        l->fail_after = n;
}

size_t vmp_lua_memory(const vmp_lua *l) { return l ? l->mem : 0; }

/* ---- limits ----------------------------------------------------------------- */

/* Installed for the whole life of the state (so coroutines made at any time
 * inherit it); counts only while a protected call runs. Once a limit is hit
 * it fires at every instruction, so a script that catches the error with
 * its own pcall cannot keep looping. */
static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    vmp_lua *l = vmp_lua_from(L);
    if (!l || l->depth == 0)
        return;
    if (!l->over) {
        if (lua_gethookcount(L) != HOOK_STEP) /* left at 1 by an earlier call */
            lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_STEP);
        l->instructions += HOOK_STEP;
    }
    const char *why = NULL;
    if (l->instruction_limit > 0 && l->instructions > l->instruction_limit)
        why = "instruction limit";
    else if (l->deadline > 0 && vmp_monotonic() > l->deadline)
        why = "time limit";
    if (!why)
        return;
    if (!l->over) {
        l->over = true;
        lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    }
    /* level 0: inside a hook that is the function that was running, the
     * one to blame (luaL_error would name its caller) */
    luaL_where(L, 0);
    if (why[0] == 'i')
        lua_pushfstring(L, "instruction limit exceeded (%I instructions)",
                        (lua_Integer)l->instruction_limit);
    else
        lua_pushfstring(L, "time limit exceeded (%f s)", (lua_Number)l->time_limit);
    lua_concat(L, 2);
    lua_error(L);
}

double vmp_lua_time_left(lua_State *L)
{
    vmp_lua *l = vmp_lua_from(L);
    if (!l || l->depth == 0 || l->deadline <= 0)
        return HUGE_VAL;
    double left = l->deadline - vmp_monotonic();
    return left > 0 ? left : 0;
}

/* ---- protected calls --------------------------------------------------------- */

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* err gets the message without its traceback. */
static void set_error(vmp_err *err, int code, const char *full)
{
    const char *tb = strstr(full, "\nstack traceback:");
    int n = tb ? (int)(tb - full) : (int)strlen(full);
    vmp_err_set(err, code, "%.*s", n, full);
}

int vmp_lua_pcall(lua_State *L, int nargs, int nresults, vmp_err *err)
{
    vmp_lua *l = vmp_lua_from(L);
    int base = lua_gettop(L) - nargs; /* the function */
    if (!lua_checkstack(L, 2))
        return vmp_err_set(err, VMP_ENOMEM, "lua: stack overflow");
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    if (l && l->depth++ == 0) {
        l->instructions = 0;
        l->over = false;
        l->deadline = l->time_limit > 0 ? vmp_monotonic() + l->time_limit : 0;
    }
    int st = lua_pcall(L, nargs, nresults, base);
    bool over = false;
    if (l && --l->depth == 0) {
        over = l->over;
        l->over = false;
        l->deadline = 0;
    }
    lua_remove(L, base);
    if (st == LUA_OK)
        return 0;

    int code = st == LUA_ERRMEM ? VMP_ENOMEM : over ? VMP_ETIMEDOUT : VMP_EFAILED;
    const char *msg = lua_tostring(L, -1);
    if (!msg)
        msg = st == LUA_ERRMEM ? "not enough memory" : "error in error handling";
    set_error(err, code, msg);
    if (l)
        snprintf(l->last_error, sizeof l->last_error, "%s", msg);
    lua_pop(L, 1);
    return code;
}

const char *vmp_lua_last_error(vmp_lua *l) { return l ? l->last_error : ""; }

int vmp_lua_protect(lua_State *L, int (*fn)(lua_State *L), void *ud, int nresults)
{
    if (!lua_checkstack(L, 2))
        return LUA_ERRMEM;
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, ud);
    return lua_pcall(L, 1, nresults, 0);
}

/* ---- expected failures ---------------------------------------------------------- */

const char *vmp_lua_code_name(int code)
{
    switch (code) {
    case VMP_EINVAL:
        return "EINVAL";
    case VMP_ENOMEM:
        return "ENOMEM";
    case VMP_ENOTSUP:
        return "ENOTSUP";
    case VMP_ENOENT:
        return "ENOENT";
    case VMP_EEXIST:
        return "EEXIST";
    case VMP_EIO:
        return "EIO";
    case VMP_ETIMEDOUT:
        return "ETIMEDOUT";
    case VMP_EREDIS:
        return "EREDIS";
    case VMP_EPROVIDER:
        return "EPROVIDER";
    case VMP_EFAILED:
        return "EFAILED";
    case VMP_EAGAIN:
        return "EAGAIN";
    case VMP_ESTATE:
        return "ESTATE";
    default:
        return "EUNKNOWN";
    }
}

int vmp_lua_fail(lua_State *L, int rc, const vmp_err *err)
{
    lua_pushnil(L);
    lua_pushstring(L, err && err->msg[0] ? err->msg : vmp_strerror(rc));
    lua_pushstring(L, vmp_lua_code_name(rc));
    return 3;
}

/* ---- references --------------------------------------------------------------- */

int vmp_lua_ref(lua_State *L)
{
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (ref != LUA_NOREF && ref != LUA_REFNIL)
        atomic_fetch_add(&live_refs, 1);
    return ref;
}

void vmp_lua_unref(lua_State *L, int ref)
{
    if (ref == LUA_NOREF || ref == LUA_REFNIL)
        return;
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    atomic_fetch_sub(&live_refs, 1);
}

long vmp_lua_live_refs(void) { return atomic_load(&live_refs); }

void vmp_lua_registry_table(lua_State *L, const char *name)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, "vmp.lua"); /* [vmp.lua] */
    luaL_getsubtable(L, -1, name);                     /* [vmp.lua, t] */
    lua_remove(L, -2);                                 /* [t] */
}

/* ---- preload ---------------------------------------------------------------------- */

static int embedded_loader(lua_State *L)
{
    const vmp_lua_embedded *m = lua_touserdata(L, lua_upvalueindex(1));
    if (luaL_loadbufferx(L, m->source, m->len, m->chunkname, "t") != LUA_OK)
        return lua_error(L);
    lua_pushstring(L, m->module);
    lua_call(L, 1, 1);
    return 1;
}

void vmp_lua_preload(lua_State *L)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE); /* [preload] */
    for (const vmp_lua_embedded *m = vmp_lua_embedded_modules; m->module; m++) {
        lua_pushlightuserdata(L, (void *)m);
        lua_pushcclosure(L, embedded_loader, 1);
        lua_setfield(L, -2, m->module);
    }
    lua_pushcfunction(L, vmp_lua_open_vmpool);
    lua_setfield(L, -2, "vmpool");
    lua_pop(L, 1);
}

/* ---- sandbox ------------------------------------------------------------------------- */

/* load() of text chunks only: the mode argument is forced to "t". */
static int text_load(lua_State *L)
{
    int n = lua_gettop(L);
    lua_settop(L, n < 4 ? 4 : n);
    lua_pushstring(L, "t");
    lua_replace(L, 3);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static void keep_fields(lua_State *L, const char *lib, const char *const *keep)
{
    /* [] */
    lua_getglobal(L, lib); /* [old] */
    lua_newtable(L);       /* [old, new] */
    for (const char *const *k = keep; *k; k++) {
        lua_getfield(L, -2, *k);
        lua_setfield(L, -2, *k);
    }
    lua_pushvalue(L, -1);
    lua_setglobal(L, lib);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE); /* [old, new, loaded] */
    lua_insert(L, -2);
    lua_setfield(L, -2, lib); /* [old, loaded] */
    lua_pop(L, 2);
}

static void remove_lib(lua_State *L, const char *lib)
{
    lua_pushnil(L);
    lua_setglobal(L, lib);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushnil(L);
    lua_setfield(L, -2, lib);
    lua_pop(L, 1);
}

static void sandbox(lua_State *L)
{
    static const char *const os_keep[] = {"clock", "date", "difftime", "getenv", "time", NULL};
    static const char *const debug_keep[] = {"traceback", NULL};
    lua_pushnil(L);
    lua_setglobal(L, "dofile");
    lua_pushnil(L);
    lua_setglobal(L, "loadfile");
    lua_getglobal(L, "load");
    lua_pushcclosure(L, text_load, 1);
    lua_setglobal(L, "load");
    keep_fields(L, "os", os_keep);
    keep_fields(L, "debug", debug_keep);
    remove_lib(L, "io");
    lua_getglobal(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);

    /* require: only what package.preload / package.loaded hold */
    lua_getglobal(L, "package"); /* [package] */
    lua_getfield(L, -1, "searchers");
    lua_createtable(L, 1, 0);
    lua_rawgeti(L, -2, 1);
    lua_rawseti(L, -2, 1); /* [package, searchers, {preload}] */
    lua_setfield(L, -3, "searchers");
    lua_pop(L, 1);
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pushnil(L);
    lua_setfield(L, -2, "loadlib");
    lua_pushnil(L);
    lua_setfield(L, -2, "searchpath");
    lua_pop(L, 1);
}

/* package.path gets <dir>/?.lua;<dir>/?/init.lua for the directory of each
 * file (a file without one: the working directory, already there). */
static void add_paths(lua_State *L, const vmp_strlist *files)
{
    if (!files || files->n == 0)
        return;
    lua_getglobal(L, "package"); /* [package] */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < files->n; i++) {
        const char *slash = strrchr(files->v[i], '/');
        if (!slash)
            continue;
        for (int k = 0; k < 2; k++) {
            luaL_addlstring(&b, files->v[i], (size_t)(slash - files->v[i]));
            luaL_addstring(&b, k == 0 ? "/?.lua;" : "/?/init.lua;");
        }
    }
    lua_getfield(L, -2, "path");
    luaL_addvalue(&b);
    luaL_pushresult(&b);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
}

/* ---- states ------------------------------------------------------------------------------ */

typedef struct setup_args {
    vmp_lua *l;
    const vmp_strlist *files;
} setup_args;

static int setup(lua_State *L)
{
    setup_args *a = lua_touserdata(L, 1);
    luaL_openlibs(L);
    if (a->l->unsandboxed)
        add_paths(L, a->files);
    else
        sandbox(L);
    vmp_lua_preload(L);
    luaL_requiref(L, "vmpool", vmp_lua_open_vmpool, 1);
    lua_pop(L, 1);
    return 0;
}

int vmp_lua_new(const vmp_lua_opts *opts, vmp_lua **out, vmp_err *err)
{
    int rc = 0;
    vmp_lua *l = NULL;
    if (!opts || !out || *out)
        return vmp_err_set(err, VMP_EINVAL, "vmp_lua_new: bad arguments");
    l = calloc(1, sizeof *l);
    if (!l || !(l->subsys = strdup(opts->subsys ? opts->subsys : "lua"))) {
        rc = vmp_err_set(err, VMP_ENOMEM, "lua: out of memory");
        goto out;
    }
    l->role = opts->role;
    l->unsandboxed = opts->unsandboxed;
    l->metrics = opts->metrics;
    l->provider = opts->provider;
    l->config = opts->config;
    l->instruction_limit =
        opts->instruction_limit == 0 ? VMP_LUA_DEFAULT_INSTRUCTIONS : opts->instruction_limit;
    l->time_limit = opts->time_limit;
    l->mem_limit = opts->memory_limit ? opts->memory_limit : VMP_LUA_DEFAULT_MEMORY;
    l->fail_after = -1;
    l->L = lua_newstate(state_alloc, l);
    if (!l->L) {
        rc = vmp_err_set(err, VMP_ENOMEM, "lua: cannot create a state");
        goto out;
    }
    lua_sethook(l->L, count_hook, LUA_MASKCOUNT, HOOK_STEP);
    setup_args a = {l, opts->lua_files};
    int st = vmp_lua_protect(l->L, setup, &a, 0);
    if (st != LUA_OK) {
        rc = vmp_err_set(err, st == LUA_ERRMEM ? VMP_ENOMEM : VMP_EFAILED, "lua: setup: %s",
                         st == LUA_ERRMEM ? "not enough memory" : lua_tostring(l->L, -1));
        goto out;
    }
    *out = l;
    l = NULL;
out:
    vmp_lua_free(l);
    return rc;
}

void vmp_lua_free(vmp_lua *l)
{
    if (!l)
        return;
    if (l->L)
        lua_close(l->L);
    free(l->subsys);
    free(l);
}

/* ---- running code ------------------------------------------------------------------------- */

static int load_file(lua_State *L)
{
    const char *path = lua_touserdata(L, 1);
    if (luaL_loadfilex(L, path, "t") != LUA_OK)
        return lua_error(L);
    return 1;
}

typedef struct string_chunk {
    const char *code, *name;
} string_chunk;

static int load_string(lua_State *L)
{
    string_chunk *c = lua_touserdata(L, 1);
    const char *name = lua_pushfstring(L, "=%s", c->name ? c->name : "?");
    if (luaL_loadbufferx(L, c->code, strlen(c->code), name, "t") != LUA_OK)
        return lua_error(L);
    return 1;
}

static int run_loaded(vmp_lua *l, int st, vmp_err *err)
{
    if (st != LUA_OK) {
        const char *msg = st == LUA_ERRMEM ? "not enough memory" : lua_tostring(l->L, -1);
        if (!msg)
            msg = "cannot load the chunk";
        snprintf(l->last_error, sizeof l->last_error, "%s", msg);
        int code = st == LUA_ERRMEM                       ? VMP_ENOMEM
                   : strncmp(msg, "cannot open", 11) == 0 ? VMP_ENOENT
                                                          : VMP_EINVAL;
        set_error(err, code, msg);
        lua_pop(l->L, 1);
        return code;
    }
    return vmp_lua_pcall(l->L, 0, 0, err);
}

int vmp_lua_run_file(vmp_lua *l, const char *path, vmp_err *err)
{
    if (!l || !path)
        return vmp_err_set(err, VMP_EINVAL, "vmp_lua_run_file: bad arguments");
    return run_loaded(l, vmp_lua_protect(l->L, load_file, (void *)path, 1), err);
}

int vmp_lua_run_string(vmp_lua *l, const char *code, const char *name, vmp_err *err)
{
    if (!l || !code)
        return vmp_err_set(err, VMP_EINVAL, "vmp_lua_run_string: bad arguments");
    string_chunk c = {code, name};
    return run_loaded(l, vmp_lua_protect(l->L, load_string, &c, 1), err);
}

int vmp_lua_run_files(vmp_lua *l, const vmp_strlist *files, vmp_err *err)
{
    for (size_t i = 0; files && i < files->n; i++) {
        int rc = vmp_lua_run_file(l, files->v[i], err);
        if (rc != 0)
            return rc;
    }
    return 0;
}
