/* Configuration in Lua: the tree-editing functions of the `vmpool` module
 * (pool, provider_config, global, remove_pool; config and pools to read)
 * and the loader hook that runs the configured Lua files. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "lua/script_internal.h"

#define MAX_CLASSES 64
#define CONFIG_TIME_LIMIT 60.0

/* The CONFIG role's data (vmp_lua.role_ud). */
typedef struct edit_ctx {
    vmp_cfg_node *root;
    const char **names; /* file names handed to root (for marks) */
    size_t n_names, cap_names;
} edit_ctx;

static edit_ctx *ctx_of(lua_State *L)
{
    vmp_lua *l = vmp_lua_from(L);
    return l && l->role == VMP_LUA_CONFIG ? l->role_ud : NULL;
}

/* The tree vmpool.config() shows in this state, or NULL. */
static const vmp_cfg_node *current_root(lua_State *L)
{
    vmp_lua *l = vmp_lua_from(L);
    if (!l)
        return NULL;
    if (l->role == VMP_LUA_CONFIG)
        return l->role_ud ? ((edit_ctx *)l->role_ud)->root : NULL;
    if (l->provider) {
        const vmp_config *cfg = vmp_provider_global_config(l->provider);
        return cfg ? cfg->root : NULL;
    }
    return l->config ? l->config->root : NULL;
}

/* Where the Lua code calling us is, as a node mark whose file name lives as
 * long as the tree. Returns -1 on allocation failure. */
static int mark_here(lua_State *L, edit_ctx *ctx, vmp_cfg_mark *mark)
{
    lua_Debug ar;
    *mark = (vmp_cfg_mark){NULL, 0, 0};
    if (!lua_getstack(L, 1, &ar) || !lua_getinfo(L, "Sl", &ar))
        return 0;
    const char *src = ar.source && ar.source[0] == '@' ? ar.source + 1 : ar.short_src;
    mark->line = ar.currentline > 0 ? ar.currentline : 0;
    for (size_t i = 0; i < ctx->n_names; i++) {
        if (strcmp(ctx->names[i], src) == 0) {
            mark->file = ctx->names[i];
            return 0;
        }
    }
    if (ctx->n_names == ctx->cap_names) {
        size_t cap = ctx->cap_names ? ctx->cap_names * 2 : 4;
        const char **v = realloc(ctx->names, cap * sizeof *v);
        if (!v)
            return -1;
        ctx->names = v;
        ctx->cap_names = cap;
    }
    char *copy = strdup(src);
    if (!copy || vmp_cfg_set_file_owner(ctx->root, copy) != 0)
        return -1; /* set_file_owner frees copy on failure */
    ctx->names[ctx->n_names++] = copy;
    mark->file = copy;
    return 0;
}

/* Converts the table at idx into a map node marked at the caller. Raises
 * (holding nothing) on a value with no configuration form. */
static vmp_cfg_node *table_node(lua_State *L, edit_ctx *ctx, int idx, const char *what)
{
    vmp_cfg_mark mark;
    if (mark_here(L, ctx, &mark) != 0)
        luaL_error(L, "%s: out of memory", what);
    char msg[256];
    vmp_cfg_node *n = vmp_lua_to_node(L, idx, mark, msg, sizeof msg);
    if (!n)
        luaL_error(L, "%s: %s", what, msg);
    if (vmp_cfg_kind_of(n) != VMP_CFG_MAP) {
        vmp_cfg_free(n);
        luaL_error(L, "%s: expected a table of keys and values", what);
    }
    return n;
}

/* Merges n (consumed) into map[key], or sets it when absent or not a map. */
static int merge_into(vmp_cfg_node *map, const char *key, vmp_cfg_node *n)
{
    vmp_cfg_node *cur = vmp_cfg_get_mut(map, key);
    if (vmp_cfg_kind_of(cur) != VMP_CFG_MAP)
        return vmp_cfg_map_set(map, key, n);
    int rc = vmp_cfg_merge(cur, n);
    vmp_cfg_free(n);
    return rc;
}

static const char *check_name(lua_State *L, int idx, const char *what)
{
    const char *name = lua_tostring(L, idx);
    if (lua_type(L, idx) != LUA_TSTRING || !name[0])
        luaL_error(L, "%s: name must be a non-empty string", what);
    return name;
}

/* The pools list of the tree, made when absent; NULL when it is something
 * else than a list. */
static vmp_cfg_node *pools_seq(vmp_cfg_node *root, int *rc)
{
    vmp_cfg_node *pools = vmp_cfg_get_mut(root, "pools");
    *rc = 0;
    if (vmp_cfg_kind_of(pools) == VMP_CFG_SEQ)
        return pools;
    if (pools && vmp_cfg_kind_of(pools) != VMP_CFG_NULL)
        return NULL;
    pools = vmp_cfg_seq_new();
    if (!pools || vmp_cfg_map_set(root, "pools", pools) != 0) {
        *rc = VMP_ENOMEM;
        return NULL;
    }
    return pools;
}

/* vmpool.pool{name = ..., key = value, ...}: adds the pool, or merges the
 * keys into the pool of that name. */
static int l_pool(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "name");
    const char *name = check_name(L, -1, "vmpool.pool");
    edit_ctx *ctx = ctx_of(L);
    if (!ctx)
        return 0;
    vmp_cfg_node *n = table_node(L, ctx, 1, "vmpool.pool");
    int rc = 0;
    vmp_cfg_node *pools = pools_seq(ctx->root, &rc);
    if (!pools) {
        vmp_cfg_free(n);
        if (rc)
            return luaL_error(L, "vmpool.pool: out of memory");
        return luaL_error(L, "vmpool.pool: the configuration's pools is not a list");
    }
    for (size_t i = 0; i < vmp_cfg_len(pools); i++) {
        vmp_cfg_node *p = vmp_cfg_at_mut(pools, i);
        const char *pn = vmp_cfg_get_str(p, "name", NULL);
        if (pn && strcmp(pn, name) == 0) {
            rc = vmp_cfg_merge(p, n);
            vmp_cfg_free(n);
            goto out;
        }
    }
    rc = vmp_cfg_seq_push(pools, n);
out:
    if (rc)
        return luaL_error(L, "vmpool.pool: out of memory");
    return 0;
}

/* vmpool.remove_pool(name) -> whether a pool was removed */
static int l_remove_pool(lua_State *L)
{
    const char *name = check_name(L, 1, "vmpool.remove_pool");
    edit_ctx *ctx = ctx_of(L);
    vmp_cfg_node *pools = ctx ? vmp_cfg_get_mut(ctx->root, "pools") : NULL;
    if (vmp_cfg_kind_of(pools) != VMP_CFG_SEQ) {
        lua_pushboolean(L, 0);
        return 1;
    }
    /* no removal from a sequence in the tree API: rebuild it without the pool */
    vmp_cfg_node *keep = vmp_cfg_seq_new();
    bool found = false, oom = !keep;
    for (size_t i = 0; !oom && i < vmp_cfg_len(pools); i++) {
        const vmp_cfg_node *p = vmp_cfg_at(pools, i);
        const char *pn = vmp_cfg_get_str(p, "name", NULL);
        if (pn && strcmp(pn, name) == 0) {
            found = true;
            continue;
        }
        vmp_cfg_node *c = vmp_cfg_clone(p);
        oom = !c || vmp_cfg_seq_push(keep, c) != 0;
    }
    if (!oom && found) {
        vmp_cfg_set_mark(keep, vmp_cfg_mark_of(pools));
        oom = vmp_cfg_map_set(ctx->root, "pools", keep) != 0;
        keep = NULL;
    }
    vmp_cfg_free(keep);
    if (oom)
        return luaL_error(L, "vmpool.remove_pool: out of memory");
    lua_pushboolean(L, found);
    return 1;
}

/* vmpool.provider_config{name = ..., ...} or vmpool.provider_config(name, {...}) */
static int l_provider_config(lua_State *L)
{
    int t = 1;
    if (lua_type(L, 1) == LUA_TSTRING) {
        luaL_checktype(L, 2, LUA_TTABLE);
        t = 2;
        lua_pushvalue(L, 1);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_getfield(L, 1, "name");
    }
    const char *name = check_name(L, -1, "vmpool.provider_config");
    edit_ctx *ctx = ctx_of(L);
    if (!ctx)
        return 0;
    if (t == 1) { /* the name is the entry's key, not one of its options */
        lua_newtable(L);
        int copy = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, 1)) {
            if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "name") == 0) {
                lua_pop(L, 1);
                continue;
            }
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, copy);
        }
        t = copy;
    }
    vmp_cfg_node *n = table_node(L, ctx, t, "vmpool.provider_config");
    vmp_cfg_node *providers = vmp_cfg_get_mut(ctx->root, "providers");
    if (vmp_cfg_kind_of(providers) != VMP_CFG_MAP) {
        vmp_cfg_free(n);
        return luaL_error(L, "vmpool.provider_config: the configuration's providers is not a map");
    }
    if (merge_into(providers, name, n) != 0)
        return luaL_error(L, "vmpool.provider_config: out of memory");
    return 0;
}

/* vmpool.global{key = value, ...}: merged into :config: */
static int l_global(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    edit_ctx *ctx = ctx_of(L);
    if (!ctx)
        return 0;
    vmp_cfg_node *n = table_node(L, ctx, 1, "vmpool.global");
    if (merge_into(ctx->root, "config", n) != 0)
        return luaL_error(L, "vmpool.global: out of memory");
    return 0;
}

/* vmpool.config() -> read-only view of the whole configuration, or nil.
 * States whose configuration cannot change (policy, plain) keep the first
 * view. */
static int l_config(lua_State *L)
{
    vmp_lua *l = vmp_lua_from(L);
    bool cache = l && l->role != VMP_LUA_CONFIG && !l->provider;
    if (cache) {
        vmp_lua_registry_table(L, "cache");
        if (lua_getfield(L, -1, "config") != LUA_TNIL)
            return 1;
        lua_pop(L, 1);
    }
    const vmp_cfg_node *root = current_root(L);
    if (!root) {
        lua_pushnil(L);
        return 1;
    }
    vmp_lua_push_node(L, root, true);
    if (cache) {
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "config");
    }
    return 1;
}

/* vmpool.pools() -> read-only list of the pools */
static int l_pools(lua_State *L)
{
    lua_settop(L, 0);
    l_config(L);
    if (lua_isnil(L, -1) || lua_getfield(L, -1, "pools") != LUA_TTABLE) {
        lua_newtable(L);
        vmp_lua_push_readonly(L, -1);
    }
    return 1;
}

void vmp_lua_open_config(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"pool", l_pool},
        {"remove_pool", l_remove_pool},
        {"provider_config", l_provider_config},
        {"global", l_global},
        {"config", l_config},
        {"pools", l_pools},
        {NULL, NULL},
    };
    luaL_setfuncs(L, fns, 0);
}

/* ---- the loader hook ------------------------------------------------------------- */

struct vmp_lua_config {
    vmp_strlist extra; /* --lua files, as given */
    vmp_strlist files; /* resolved files of the last edit */
    bool unsandboxed;
    vmp_strlist classes;                     /* Lua provider classes of the last edit */
    vmp_strlist *methods;                    /* their methods, parallel to classes */
    const char *class_ptrs[MAX_CLASSES + 1]; /* vmp_config_opts.provider_classes */
};

int vmp_lua_config_new(const char *const *extra_files, vmp_lua_config **out, vmp_err *err)
{
    if (!out || *out)
        return vmp_err_set(err, VMP_EINVAL, "vmp_lua_config_new: bad arguments");
    vmp_lua_config *lc = calloc(1, sizeof *lc);
    if (!lc)
        return vmp_err_set(err, VMP_ENOMEM, "lua: out of memory");
    for (const char *const *f = extra_files; f && *f; f++) {
        if (vmp_strlist_push(&lc->extra, *f) != 0) {
            vmp_lua_config_free(lc);
            return vmp_err_set(err, VMP_ENOMEM, "lua: out of memory");
        }
    }
    *out = lc;
    return 0;
}

static void clear_classes(vmp_strlist *classes, vmp_strlist **methods)
{
    for (size_t i = 0; *methods && i < classes->n; i++)
        vmp_strlist_clear(&(*methods)[i]);
    free(*methods);
    *methods = NULL;
    vmp_strlist_clear(classes);
}

void vmp_lua_config_free(vmp_lua_config *lc)
{
    if (!lc)
        return;
    clear_classes(&lc->classes, &lc->methods);
    vmp_strlist_clear(&lc->extra);
    vmp_strlist_clear(&lc->files);
    free(lc);
}

void vmp_lua_config_apply(vmp_lua_config *lc, vmp_config_opts *opts)
{
    opts->edit_tree = vmp_lua_config_edit;
    opts->edit_ud = lc;
    opts->provider_classes = lc->class_ptrs;
}

const vmp_strlist *vmp_lua_config_files(const vmp_lua_config *lc) { return lc ? &lc->files : NULL; }

bool vmp_lua_config_unsandboxed(const vmp_lua_config *lc) { return lc && lc->unsandboxed; }

/* A file named in the configuration: as given when it exists there, else
 * next to the configuration file; made absolute so later states (and a
 * daemon that changed directory) find it. */
static int resolve_file(const char *file, const char *config_name, vmp_strlist *out)
{
    char buf[PATH_MAX];
    const char *use = file;
    char *rel = NULL;
    if (file[0] != '/' && access(file, R_OK) != 0 && config_name && strchr(config_name, '/')) {
        char *dir = strdup(config_name);
        if (!dir)
            return VMP_ENOMEM;
        rel = vmp_asprintf("%s/%s", dirname(dir), file);
        free(dir);
        if (!rel)
            return VMP_ENOMEM;
        if (access(rel, R_OK) == 0)
            use = rel;
    }
    int rc = vmp_strlist_push(out, realpath(use, buf) ? buf : use);
    free(rel);
    return rc;
}

static int collect_files(const vmp_cfg_node *root, const char *name, const vmp_lua_config *lc,
                         vmp_strlist *files, vmp_strlist *errors)
{
    const vmp_cfg_node *list = vmp_cfg_get(vmp_cfg_get(root, "config"), "lua");
    vmp_strlist named = VMP_STRLIST_INIT;
    int rc = 0;
    if (vmp_cfg_kind_of(list) == VMP_CFG_SCALAR) {
        rc = vmp_strlist_push(&named, vmp_cfg_scalar(list));
    } else if (vmp_cfg_kind_of(list) == VMP_CFG_SEQ) {
        for (size_t i = 0; rc == 0 && i < vmp_cfg_len(list); i++) {
            const char *f = vmp_cfg_scalar(vmp_cfg_at(list, i));
            if (!f) {
                vmp_cfg_mark m = vmp_cfg_mark_of(vmp_cfg_at(list, i));
                vmp_strlist_push_owned(errors,
                                       vmp_asprintf("%s:%d:%d: config.lua[%zu]: expected a file "
                                                    "name",
                                                    m.file ? m.file : name, m.line, m.column, i));
                rc = VMP_EINVAL;
                break;
            }
            rc = vmp_strlist_push(&named, f);
        }
    }
    for (size_t i = 0; rc == 0 && i < named.n; i++)
        rc = resolve_file(named.v[i], name, files);
    for (size_t i = 0; rc == 0 && i < lc->extra.n; i++)
        rc = resolve_file(lc->extra.v[i], NULL, files);
    vmp_strlist_clear(&named);
    return rc;
}

typedef struct classes_out {
    vmp_strlist names;
    vmp_strlist *methods;
} classes_out;

/* [] -> reads require("vmpool.provider").classes() into out */
static int read_classes(lua_State *L)
{
    classes_out *out = lua_touserdata(L, 1);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "vmpool.provider");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "classes");
    lua_call(L, 0, 1); /* [provider, list] */
    size_t n = lua_rawlen(L, -1);
    if (n > MAX_CLASSES)
        return luaL_error(L, "more than %d Lua provider classes", MAX_CLASSES);
    out->methods = calloc(n ? n : 1, sizeof *out->methods);
    if (!out->methods)
        return luaL_error(L, "out of memory");
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i); /* [.., {name, methods}] */
        lua_getfield(L, -1, "name");
        if (vmp_strlist_push(&out->names, lua_tostring(L, -1)) != 0)
            return luaL_error(L, "out of memory");
        lua_pop(L, 1);
        lua_getfield(L, -1, "methods");
        for (size_t j = 1; j <= lua_rawlen(L, -1); j++) {
            lua_rawgeti(L, -1, (lua_Integer)j);
            if (vmp_strlist_push(&out->methods[i - 1], lua_tostring(L, -1)) != 0)
                return luaL_error(L, "out of memory");
            lua_pop(L, 1);
        }
        lua_pop(L, 2);
    }
    return 0;
}

int vmp_lua_config_edit(vmp_cfg_node *root, const char *name, void *ud, vmp_strlist *errors,
                        vmp_err *err)
{
    vmp_lua_config *lc = ud;
    vmp_strlist files = VMP_STRLIST_INIT;
    classes_out classes = {VMP_STRLIST_INIT, NULL};
    edit_ctx ctx = {root, NULL, 0, 0};
    vmp_lua *l = NULL;
    int rc = 0;
    if (!lc || !root)
        return vmp_err_set(err, VMP_EINVAL, "lua config: bad arguments");

    const vmp_cfg_node *config = vmp_cfg_get(root, "config");
    bool unsandboxed = !vmp_cfg_get_bool(config, "lua_sandbox", true);
    rc = collect_files(root, name, lc, &files, errors);
    if (rc != 0) {
        vmp_err_set(err, rc, "lua: cannot list the Lua files");
        goto out;
    }
    if (files.n > 0) {
        vmp_lua_opts o = {
            .role = VMP_LUA_CONFIG,
            .unsandboxed = unsandboxed,
            .instruction_limit = vmp_cfg_get_int(config, "lua_instruction_limit", 0),
            .time_limit = CONFIG_TIME_LIMIT,
            .subsys = "lua.config",
        };
        o.lua_files = &files;
        if ((rc = vmp_lua_new(&o, &l, err)) != 0)
            goto out;
        l->role_ud = &ctx;
        for (size_t i = 0; i < files.n; i++) {
            rc = vmp_lua_run_file(l, files.v[i], err);
            if (rc != 0) {
                vmp_strlist_push_owned(errors, vmp_asprintf("lua: %s", vmp_lua_last_error(l)));
                goto out;
            }
        }
        int st = vmp_lua_protect(l->L, read_classes, &classes, 0);
        if (st != LUA_OK) {
            rc = vmp_err_set(err, VMP_EINVAL, "lua: %s",
                             st == LUA_ERRMEM ? "not enough memory" : lua_tostring(l->L, -1));
            vmp_strlist_push(errors, err->msg);
            goto out;
        }
    }
    /* success: this edit's files and classes replace the last ones */
    clear_classes(&lc->classes, &lc->methods);
    lc->classes = classes.names;
    lc->methods = classes.methods;
    classes.names = (vmp_strlist)VMP_STRLIST_INIT;
    classes.methods = NULL;
    vmp_strlist_clear(&lc->files);
    lc->files = files;
    files = (vmp_strlist)VMP_STRLIST_INIT;
    lc->unsandboxed = unsandboxed;
    memset(lc->class_ptrs, 0, sizeof lc->class_ptrs);
    for (size_t i = 0; i < lc->classes.n && i < MAX_CLASSES; i++)
        lc->class_ptrs[i] = lc->classes.v[i];
out:
    if (rc != 0 && err && !err->msg[0])
        vmp_err_set(err, rc, "lua configuration failed");
    clear_classes(&classes.names, &classes.methods);
    vmp_lua_free(l);
    free(ctx.names);
    vmp_strlist_clear(&files);
    return rc;
}

int vmp_lua_config_register(vmp_lua_config *lc, vmp_err *err)
{
    if (!lc)
        return 0;
    for (size_t i = 0; i < lc->classes.n; i++) {
        int rc = vmp_lua_provider_register(lc->classes.v[i], &lc->files, lc->unsandboxed,
                                           &lc->methods[i], err);
        if (rc != 0)
            return rc;
    }
    return 0;
}
