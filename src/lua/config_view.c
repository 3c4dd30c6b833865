/* Configuration trees as Lua values and back: typed scalars, vmpool.null,
 * read-only proxies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lua/script_internal.h"

#define MAX_DEPTH 64

static const char null_key = 0; /* its address is vmpool.null */

void vmp_lua_push_null(lua_State *L) { lua_pushlightuserdata(L, (void *)&null_key); }

bool vmp_lua_is_null(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == &null_key;
}

/* ---- read-only proxies ------------------------------------------------------ */

static int ro_newindex(lua_State *L)
{
    return luaL_error(L, "configuration values are read-only (change the configuration with "
                         "vmpool.pool{...}, vmpool.provider_config{...} or vmpool.global{...})");
}

/* The real table of proxy at idx (its metatable's __index). */
static void push_real(lua_State *L, int idx)
{
    lua_getmetatable(L, idx);
    lua_getfield(L, -1, "__index");
    lua_remove(L, -2);
}

static int ro_next(lua_State *L)
{
    /* [real, key] */
    lua_settop(L, 2);
    if (lua_next(L, 1))
        return 2;
    lua_pushnil(L);
    return 1;
}

static int ro_pairs(lua_State *L)
{
    lua_pushcfunction(L, ro_next);
    push_real(L, 1);
    lua_pushnil(L);
    return 3;
}

static int ro_len(lua_State *L)
{
    push_real(L, 1);
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
    return 1;
}

void vmp_lua_push_readonly(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_newtable(L);          /* [proxy] */
    lua_createtable(L, 0, 5); /* [proxy, mt]: one per proxy, it holds the real table */
    lua_pushcfunction(L, ro_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, ro_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushcfunction(L, ro_len);
    lua_setfield(L, -2, "__len");
    lua_pushvalue(L, idx);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "read-only");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2); /* [proxy] */
}

/* ---- node -> Lua --------------------------------------------------------------- */

static void push_scalar(lua_State *L, const vmp_cfg_node *n)
{
    const char *s = vmp_cfg_scalar(n);
    long long i;
    double d;
    bool b;
    if (vmp_cfg_scalar_quoted(n) || vmp_cfg_scalar_is_symbol(n)) {
        lua_pushstring(L, s);
    } else if (vmp_parse_long(s, &i) == 0) {
        lua_pushinteger(L, (lua_Integer)i);
    } else if (s[0] && strchr("0123456789+-.", s[0]) && vmp_parse_double(s, &d) == 0) {
        lua_pushnumber(L, d);
    } else if (vmp_cfg_as_bool(n, &b) == 0) {
        lua_pushboolean(L, b);
    } else {
        lua_pushstring(L, s);
    }
}

static void push_node(lua_State *L, const vmp_cfg_node *n, bool readonly, int depth)
{
    luaL_checkstack(L, 4, "configuration too deep");
    switch (vmp_cfg_kind_of(n)) {
    case VMP_CFG_SCALAR:
        push_scalar(L, n);
        return;
    case VMP_CFG_MAP:
    case VMP_CFG_SEQ:
        break;
    default:
        vmp_lua_push_null(L);
        return;
    }
    bool map = vmp_cfg_kind_of(n) == VMP_CFG_MAP;
    size_t len = vmp_cfg_len(n);
    lua_createtable(L, map ? 0 : (int)len, map ? (int)len : 0);
    for (size_t i = 0; i < len; i++) {
        if (depth >= MAX_DEPTH)
            vmp_lua_push_null(L);
        else
            push_node(L, vmp_cfg_at(n, i), readonly, depth + 1);
        if (map)
            lua_setfield(L, -2, vmp_cfg_key_at(n, i));
        else
            lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    if (readonly) {
        vmp_lua_push_readonly(L, -1);
        lua_remove(L, -2);
    }
}

void vmp_lua_push_node(lua_State *L, const vmp_cfg_node *n, bool readonly)
{
    push_node(L, n, readonly, 0);
}

/* ---- Lua -> node ------------------------------------------------------------------ */

static vmp_cfg_node *scalar(const char *text, bool quoted, vmp_cfg_mark mark)
{
    vmp_cfg_node *n = vmp_cfg_scalar_new(text);
    if (n) {
        vmp_cfg_set_mark(n, mark);
        vmp_cfg_set_quoted(n, quoted);
    }
    return n;
}

typedef struct keyed {
    const char *key; /* anchored by the table */
    vmp_cfg_node *node;
} keyed;

/* Sorted with "name" first: stable output, and a pool reads naturally. */
static int keyed_cmp(const void *a, const void *b)
{
    const char *x = ((const keyed *)a)->key, *y = ((const keyed *)b)->key;
    bool nx = strcmp(x, "name") == 0, ny = strcmp(y, "name") == 0;
    if (nx != ny)
        return nx ? -1 : 1;
    return strcmp(x, y);
}

static vmp_cfg_node *to_node(lua_State *L, int idx, vmp_cfg_mark mark, char *msg, size_t len,
                             int depth);

/* Only raw accesses (lua_next, lua_rawgeti): nothing here raises, so the
 * nodes made so far are always freed. */
static vmp_cfg_node *table_to_node(lua_State *L, int idx, vmp_cfg_mark mark, char *msg, size_t len,
                                   int depth)
{
    vmp_cfg_node *n = NULL;
    keyed *kv = NULL;
    size_t nkeys = 0, nints = 0, nkv = 0;
    bool bad_key = false;

    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING)
            nkeys++;
        else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1)
            nints++;
        else
            bad_key = true;
    }
    size_t rawlen = lua_rawlen(L, idx);
    if (bad_key || (nkeys && nints) || (nints && nints != rawlen)) {
        snprintf(msg, len, "a table must be either a list or a map with string keys");
        return NULL;
    }
    if (nints) {
        if (!(n = vmp_cfg_seq_new()))
            goto oom;
        vmp_cfg_set_mark(n, mark);
        for (size_t i = 1; i <= rawlen; i++) {
            lua_rawgeti(L, idx, (lua_Integer)i);
            vmp_cfg_node *v = to_node(L, -1, mark, msg, len, depth + 1);
            lua_pop(L, 1);
            if (!v)
                goto fail;
            if (vmp_cfg_seq_push(n, v) != 0)
                goto oom;
        }
        return n;
    }
    if (!(n = vmp_cfg_map_new()) || (nkeys && !(kv = calloc(nkeys, sizeof *kv))))
        goto oom;
    vmp_cfg_set_mark(n, mark);
    lua_pushnil(L);
    while (lua_next(L, idx)) { /* [key, value] */
        char inner[200];
        const char *key = lua_tostring(L, -2);
        vmp_cfg_node *v = to_node(L, -1, mark, inner, sizeof inner, depth + 1);
        lua_pop(L, 1);
        if (!v) {
            lua_pop(L, 1);
            if (strncmp(inner, "nested", 6) == 0) /* no path 64 keys long */
                snprintf(msg, len, "%s", inner);
            else
                snprintf(msg, len, "%s: %s", key, inner);
            goto fail;
        }
        kv[nkv++] = (keyed){key, v};
    }
    if (nkv > 1)
        qsort(kv, nkv, sizeof *kv, keyed_cmp);
    for (size_t i = 0; i < nkv; i++) {
        vmp_cfg_node *v = kv[i].node;
        kv[i].node = NULL;
        if (vmp_cfg_map_set_marked(n, kv[i].key, false, mark, v) != 0)
            goto oom; /* v was freed by the failed set */
    }
    free(kv);
    return n;
oom:
    snprintf(msg, len, "out of memory");
fail:
    for (size_t i = 0; i < nkv; i++)
        vmp_cfg_free(kv[i].node);
    free(kv);
    vmp_cfg_free(n);
    return NULL;
}

static vmp_cfg_node *to_node(lua_State *L, int idx, vmp_cfg_mark mark, char *msg, size_t len,
                             int depth)
{
    char num[64];
    idx = lua_absindex(L, idx);
    if (depth > MAX_DEPTH || !lua_checkstack(L, 4)) {
        snprintf(msg, len, "nested too deeply (a table that contains itself?)");
        return NULL;
    }
    vmp_cfg_node *n = NULL;
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        n = scalar(lua_toboolean(L, idx) ? "true" : "false", false, mark);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
        else
            snprintf(num, sizeof num, "%.14g", (double)lua_tonumber(L, idx));
        n = scalar(num, false, mark);
        break;
    case LUA_TSTRING:
        n = scalar(lua_tostring(L, idx), true, mark);
        break;
    case LUA_TTABLE:
        return table_to_node(L, idx, mark, msg, len, depth);
    case LUA_TLIGHTUSERDATA:
        if (vmp_lua_is_null(L, idx)) {
            n = vmp_cfg_null_new();
            if (n)
                vmp_cfg_set_mark(n, mark);
            break;
        }
        /* fall through */
    default:
        snprintf(msg, len, "a %s value has no configuration form", luaL_typename(L, idx));
        return NULL;
    }
    if (!n)
        snprintf(msg, len, "out of memory");
    return n;
}

vmp_cfg_node *vmp_lua_to_node(lua_State *L, int idx, vmp_cfg_mark mark, char *msg, size_t len)
{
    msg[0] = 0;
    return to_node(L, idx, mark, msg, len, 0);
}
