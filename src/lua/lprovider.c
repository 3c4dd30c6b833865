/* The Lua provider adapter: a provider class whose ops call a Lua table
 * registered with vmpool.provider(name, impl). The engine sees an ordinary
 * vmp_provider_ops table.
 *
 * An instance has `lua_states` interpreter states (provider config key,
 * default 1), each running the class's Lua files and holding one object of
 * the class. Each state sits behind its own mutex; a call takes a free one
 * (waiting while all are busy), so calls on one state never overlap. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "lua/script_internal.h"

#define MAX_STATES 64

/* ---- classes --------------------------------------------------------------- */

/* One registered version of a Lua class. Kept until shutdown: instances
 * opened from it reach it through their ops pointer. */
typedef struct lua_class {
    vmp_provider_ops ops; /* first: the ops pointer is the class */
    char *name;
    vmp_strlist files;
    vmp_strlist methods;
    bool unsandboxed;
    bool registered;
    struct lua_class *next;
} lua_class;

static pthread_mutex_t classes_lock = PTHREAD_MUTEX_INITIALIZER;
static lua_class *classes;

/* ---- instances ----------------------------------------------------------------- */

typedef struct slot {
    pthread_mutex_t lock;
    vmp_lua *l;
    int obj_ref;      /* the instance object */
    int dispatch_ref; /* vmpool.provider's dispatch */
} slot;

typedef struct lua_provider {
    vmp_provider *p;
    const lua_class *cls;
    pthread_mutex_t lock; /* guards free_slots */
    pthread_cond_t cond;
    size_t free_slots, n, next;
    slot slots[];
} lua_provider;

static slot *acquire(lua_provider *lp)
{
    pthread_mutex_lock(&lp->lock);
    while (lp->free_slots == 0)
        pthread_cond_wait(&lp->cond, &lp->lock);
    lp->free_slots--; /* one slot is ours: free_slots never exceeds the unlocked ones */
    size_t start = lp->next++;
    pthread_mutex_unlock(&lp->lock);
    for (size_t i = 0;; i++) {
        slot *s = &lp->slots[(start + i) % lp->n];
        if (pthread_mutex_trylock(&s->lock) == 0)
            return s;
    }
}

static void release(lua_provider *lp, slot *s)
{
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_lock(&lp->lock);
    lp->free_slots++;
    pthread_cond_signal(&lp->cond);
    pthread_mutex_unlock(&lp->lock);
}

/* ---- the host table given to instances ------------------------------------------- */

static int host_pool_config(lua_State *L)
{
    const char *pool = luaL_checkstring(L, 1);
    vmp_lua *l = vmp_lua_from(L);
    const vmp_pool_cfg *pc = l && l->provider ? vmp_provider_pool_config(l->provider, pool) : NULL;
    if (!pc || !pc->node)
        return 0;
    vmp_lua_push_node(L, pc->node, true);
    return 1;
}

static int push_names(lua_State *L)
{
    const vmp_strlist *names = lua_touserdata(L, 1);
    lua_createtable(L, (int)names->n, 0);
    for (size_t i = 0; i < names->n; i++) {
        lua_pushstring(L, names->v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int host_provided_pools(lua_State *L)
{
    vmp_lua *l = vmp_lua_from(L);
    vmp_strlist names = VMP_STRLIST_INIT;
    int rc = l && l->provider ? vmp_provider_provided_pools(l->provider, &names) : 0;
    int st = rc == 0 ? vmp_lua_protect(L, push_names, &names, 1) : LUA_OK;
    vmp_strlist_clear(&names);
    if (rc != 0)
        return luaL_error(L, "provided_pools: out of memory");
    if (st != LUA_OK)
        return lua_error(L);
    return 1;
}

static int host_log(lua_State *L)
{
    /* (level, fmt, ...) -> vmpool.log(level, fmt, ...) */
    lua_getglobal(L, "vmpool");
    lua_getfield(L, -1, "log");
    lua_remove(L, -2);
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 0);
    return 0;
}

/* [impl] -> [host] */
static void push_host(lua_State *L, vmp_provider *p)
{
    lua_createtable(L, 0, 8);
    lua_pushstring(L, vmp_provider_name(p));
    lua_setfield(L, -2, "name");
    lua_pushstring(L, vmp_provider_class_name(p));
    lua_setfield(L, -2, "class");
    vmp_lua_push_node(L, vmp_provider_config(p), true);
    lua_setfield(L, -2, "config");
    if (vmp_provider_options(p)) {
        vmp_lua_push_node(L, vmp_provider_options(p), true);
        lua_setfield(L, -2, "options");
    }
    lua_pushcfunction(L, host_pool_config);
    lua_setfield(L, -2, "pool_config");
    lua_pushcfunction(L, host_provided_pools);
    lua_setfield(L, -2, "provided_pools");
    lua_getglobal(L, "vmpool");
    lua_getfield(L, -1, "config");
    lua_setfield(L, -3, "global_config");
    lua_pop(L, 1);
    lua_pushcfunction(L, host_log);
    lua_setfield(L, -2, "log");
}

typedef struct open_args {
    lua_provider *lp;
    slot *s;
} open_args;

/* Makes the slot's object: Provider.new(class, host), then obj:open() when
 * the class has one. Runs under vmp_lua_pcall. */
static int instantiate(lua_State *L)
{
    open_args *a = lua_touserdata(L, 1);
    const char *cls = a->lp->cls->name;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "vmpool.provider");
    lua_call(L, 1, 1); /* [ud, Provider] */
    lua_getfield(L, -1, "class");
    lua_pushstring(L, cls);
    lua_call(L, 1, 1); /* [ud, Provider, impl] */
    if (lua_isnil(L, -1))
        return luaL_error(L,
                          "the Lua files define no provider class \"%s\" (vmpool.provider(\"%s\", "
                          "impl) did not run in this state)",
                          cls, cls);
    lua_getfield(L, -2, "new");
    lua_insert(L, -2);
    push_host(L, a->lp->p);
    lua_call(L, 2, 1); /* [ud, Provider, obj] */
    if (lua_getfield(L, -1, "open") == LUA_TFUNCTION) {
        lua_pushvalue(L, -2);
        lua_call(L, 1, 0);
    } else {
        lua_pop(L, 1);
    }
    lua_getfield(L, -2, "dispatch"); /* [ud, Provider, obj, dispatch] */
    a->s->dispatch_ref = vmp_lua_ref(L);
    a->s->obj_ref = vmp_lua_ref(L);
    return 0;
}

static void log_lua_failure(vmp_provider *p, vmp_lua *l, const char *what)
{
    vmp_provider_log(p, VMP_LOG_DEBUG, NULL, NULL, "%s failed: %s", what, vmp_lua_last_error(l));
}

static void close_slot(lua_provider *lp, slot *s)
{
    if (!s->l)
        return;
    lua_State *L = s->l->L;
    if (s->obj_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->obj_ref);
        if (lua_getfield(L, -1, "close") == LUA_TFUNCTION) {
            lua_insert(L, -2);
            vmp_err err = {0};
            if (vmp_lua_pcall(L, 1, 0, &err) != 0)
                vmp_provider_log(lp->p, VMP_LOG_WARN, NULL, NULL, "close: %s",
                                 vmp_lua_last_error(s->l));
        } else {
            lua_pop(L, 2);
        }
    }
    vmp_lua_unref(L, s->obj_ref);
    vmp_lua_unref(L, s->dispatch_ref);
    s->obj_ref = s->dispatch_ref = LUA_NOREF;
    vmp_lua_free(s->l);
    s->l = NULL;
}

static void lp_close(void *self)
{
    lua_provider *lp = self;
    if (!lp)
        return;
    for (size_t i = 0; i < lp->n; i++) {
        close_slot(lp, &lp->slots[i]);
        pthread_mutex_destroy(&lp->slots[i].lock);
    }
    pthread_mutex_destroy(&lp->lock);
    pthread_cond_destroy(&lp->cond);
    free(lp);
}

static int lp_open(vmp_provider *p, void **self, vmp_err *err)
{
    int rc = 0;
    const lua_class *cls = (const lua_class *)vmp_provider_ops_of(p);
    const vmp_cfg_node *pc = vmp_provider_config(p);
    const vmp_config *cfg = vmp_provider_global_config(p);
    const vmp_cfg_node *global = vmp_cfg_get(cfg ? cfg->root : NULL, "config");
    long long n = vmp_cfg_get_int(pc, "lua_states", 1);
    if (n < 1 || n > MAX_STATES)
        return vmp_err_set(err, VMP_EINVAL, "lua_states must be between 1 and %d, got %lld",
                           MAX_STATES, n);
    lua_provider *lp = calloc(1, sizeof *lp + (size_t)n * sizeof(slot));
    if (!lp)
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    lp->p = p;
    lp->cls = cls;
    lp->n = lp->free_slots = (size_t)n;
    pthread_mutex_init(&lp->lock, NULL);
    pthread_cond_init(&lp->cond, NULL);
    for (size_t i = 0; i < lp->n; i++) {
        pthread_mutex_init(&lp->slots[i].lock, NULL);
        lp->slots[i].obj_ref = lp->slots[i].dispatch_ref = LUA_NOREF;
    }

    vmp_lua_opts o = {
        .role = VMP_LUA_PROVIDER,
        .unsandboxed = cls->unsandboxed,
        .instruction_limit = vmp_cfg_get_int(pc, "lua_instruction_limit",
                                             vmp_cfg_get_int(global, "lua_instruction_limit", 0)),
        .time_limit = vmp_cfg_get_double(pc, "lua_time_limit", 0),
        .provider = p,
        .config = cfg,
        .lua_files = &cls->files,
    };
    for (size_t i = 0; i < lp->n; i++) {
        slot *s = &lp->slots[i];
        if ((rc = vmp_lua_new(&o, &s->l, err)) != 0)
            goto out;
        if ((rc = vmp_lua_run_files(s->l, &cls->files, err)) != 0) {
            log_lua_failure(p, s->l, "loading the Lua files");
            goto out;
        }
        open_args a = {lp, s};
        lua_pushcfunction(s->l->L, instantiate);
        lua_pushlightuserdata(s->l->L, &a);
        if ((rc = vmp_lua_pcall(s->l->L, 1, 0, err)) != 0) {
            log_lua_failure(p, s->l, "open");
            goto out;
        }
    }
    *self = lp;
    lp = NULL;
out:
    lp_close(lp);
    return rc;
}

int vmp_lua_provider_debug_top(void *self, size_t i)
{
    lua_provider *lp = self;
    if (!lp || i >= lp->n || !lp->slots[i].l)
        return -1;
    pthread_mutex_lock(&lp->slots[i].lock);
    int top = lua_gettop(lp->slots[i].l->L);
    pthread_mutex_unlock(&lp->slots[i].lock);
    return top;
}

/* ---- calls ---------------------------------------------------------------------------- */

enum { R_NAMES, R_VM, R_ACTION, R_BOOL, R_STRING };

typedef struct call {
    slot *s;
    const char *method;
    int answer;
    const char *args[3]; /* pool, vm, host/snapshot (NULL: not passed) */
    int nargs;
    long long num; /* create_disk size_gb (passed after args) */
    bool has_num;
    const vmp_strlist *list; /* purge allowlist (the only argument) */
    /* answers */
    vmp_strlist names;
    vmp_vm_info *info;
    bool flag;
    char *buf;
    size_t len;
    char status[8]; /* "ok", "failed", "absent" */
} call;

static void copy_field(lua_State *L, int t, const char *key, char *dst, size_t len)
{
    lua_getfield(L, t, key);
    if (lua_type(L, -1) == LUA_TSTRING)
        vmp_strlcpy(dst, lua_tostring(L, -1), len);
    lua_pop(L, 1);
}

/* [vm table] -> *info. Allocates only the snapshot list, which the caller
 * clears on failure. */
static void read_vm(lua_State *L, vmp_vm_info *info)
{
    int t = lua_gettop(L);
    copy_field(L, t, "name", info->name, sizeof info->name);
    copy_field(L, t, "hostname", info->hostname, sizeof info->hostname);
    copy_field(L, t, "template", info->template_path, sizeof info->template_path);
    copy_field(L, t, "poolname", info->poolname, sizeof info->poolname);
    copy_field(L, t, "powerstate", info->powerstate, sizeof info->powerstate);
    copy_field(L, t, "host", info->host, sizeof info->host);
    copy_field(L, t, "ip", info->ip, sizeof info->ip);
    lua_getfield(L, t, "boottime");
    info->boottime = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, t, "snapshots") == LUA_TTABLE) {
        for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
            if (vmp_strlist_push(&info->snapshots, lua_tostring(L, -1)) != 0)
                luaL_error(L, "out of memory");
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* Runs under vmp_lua_pcall: dispatch(obj, method, args...) and reads the
 * answer into the call. */
static int do_call(lua_State *L)
{
    call *c = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->s->dispatch_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->s->obj_ref);
    lua_pushstring(L, c->method);
    int n = 2;
    for (int i = 0; i < c->nargs; i++, n++)
        lua_pushstring(L, c->args[i]);
    if (c->has_num) {
        lua_pushinteger(L, (lua_Integer)c->num);
        n++;
    }
    if (c->list) {
        lua_createtable(L, (int)c->list->n, 0);
        for (size_t i = 0; i < c->list->n; i++) {
            lua_pushstring(L, c->list->v[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        n++;
    }
    lua_call(L, n, 2); /* [value, status] */
    vmp_strlcpy(c->status, luaL_optstring(L, -1, "ok"), sizeof c->status);
    lua_pop(L, 1);
    if (strcmp(c->status, "ok") != 0)
        return 0;
    switch (c->answer) {
    case R_NAMES:
        for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
            if (vmp_strlist_push(&c->names, lua_tostring(L, -1)) != 0)
                return luaL_error(L, "out of memory");
            lua_pop(L, 1);
        }
        break;
    case R_VM:
        if (c->info && lua_istable(L, -1))
            read_vm(L, c->info);
        break;
    case R_BOOL:
        c->flag = lua_toboolean(L, -1);
        break;
    case R_STRING:
        if (c->buf && lua_type(L, -1) == LUA_TSTRING &&
            vmp_strlcpy(c->buf, lua_tostring(L, -1), c->len) != 0)
            return luaL_error(L, "%s: the answer is longer than %I bytes", c->method,
                              (lua_Integer)c->len - 1);
        break;
    }
    return 0;
}

static int run(void *self, call *c, vmp_err *err)
{
    lua_provider *lp = self;
    c->s = acquire(lp);
    lua_State *L = c->s->l->L;
    int top = lua_gettop(L);
    lua_pushcfunction(L, do_call);
    lua_pushlightuserdata(L, c);
    int rc = vmp_lua_pcall(L, 1, 0, err);
    if (rc != 0) {
        log_lua_failure(lp->p, c->s->l, c->method);
        if (rc == VMP_EFAILED) { /* the Lua code raised: a provider failure */
            rc = VMP_EPROVIDER;
            if (err)
                err->code = rc;
        }
    } else if (strcmp(c->status, "failed") == 0) {
        rc = vmp_err_set(err, VMP_EFAILED, "%s: %s returned false", c->args[1] ? c->args[1] : "",
                         c->method);
    } else if (strcmp(c->status, "absent") == 0) {
        rc = c->args[1]
                 ? vmp_err_set(err, VMP_ENOENT, "%s: %s found nothing", c->args[1], c->method)
                 : vmp_err_set(err, VMP_ENOENT, "%s found nothing", c->method);
    }
    lua_settop(L, top);
    release(lp, c->s);
    return rc;
}

#define CALL(m, ans, ...)                                                                          \
    {                                                                                              \
        .method = m, .answer = ans, .args = { __VA_ARGS__ }                                        \
    }

static int count_args(call *c)
{
    int n = 0;
    while (n < 3 && c->args[n])
        n++;
    return c->nargs = n;
}

static int op_vms_in_pool(void *self, const char *pool, vmp_strlist *out, vmp_err *err)
{
    call c = CALL("vms_in_pool", R_NAMES, pool);
    count_args(&c);
    int rc = run(self, &c, err);
    for (size_t i = 0; rc == 0 && i < c.names.n; i++)
        if (vmp_strlist_push(out, c.names.v[i]) != 0)
            rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
    vmp_strlist_clear(&c.names);
    return rc;
}

static int vm_answer(void *self, const char *method, const char *pool, const char *vm,
                     vmp_vm_info *out, vmp_err *err)
{
    vmp_vm_info tmp;
    memset(&tmp, 0, sizeof tmp);
    call c = CALL(method, R_VM, pool, vm);
    c.info = out ? &tmp : NULL;
    count_args(&c);
    int rc = run(self, &c, err);
    if (rc == 0 && out) {
        vmp_vm_info_clear(out);
        *out = tmp;
    } else {
        vmp_vm_info_clear(&tmp);
    }
    return rc;
}

static int op_get_vm(void *self, const char *pool, const char *vm, vmp_vm_info *out, vmp_err *err)
{
    return vm_answer(self, "get_vm", pool, vm, out, err);
}

static int op_create_vm(void *self, const char *pool, const char *vm, vmp_vm_info *out,
                        vmp_err *err)
{
    return vm_answer(self, "create_vm", pool, vm, out, err);
}

static int action(void *self, const char *method, const char *pool, const char *vm, const char *arg,
                  vmp_err *err)
{
    call c = CALL(method, R_ACTION, pool, vm, arg);
    count_args(&c);
    return run(self, &c, err);
}

static int op_destroy_vm(void *self, const char *pool, const char *vm, vmp_err *err)
{
    return action(self, "destroy_vm", pool, vm, NULL, err);
}

static int bool_answer(void *self, const char *method, const char *pool, const char *vm, bool *out,
                       vmp_err *err)
{
    call c = CALL(method, R_BOOL, pool, vm);
    count_args(&c);
    int rc = run(self, &c, err);
    if (rc == 0)
        *out = c.flag;
    return rc;
}

static int op_vm_ready(void *self, const char *pool, const char *vm, bool *ready, vmp_err *err)
{
    return bool_answer(self, "vm_ready", pool, vm, ready, err);
}

static int op_vm_exists(void *self, const char *pool, const char *vm, bool *exists, vmp_err *err)
{
    return bool_answer(self, "vm_exists", pool, vm, exists, err);
}

static int string_answer(void *self, const char *method, const char *pool, const char *vm,
                         char *buf, size_t len, vmp_err *err)
{
    if (!buf || len == 0)
        return vmp_err_set(err, VMP_EINVAL, "%s: no buffer", method);
    call c = CALL(method, R_STRING, pool, vm);
    c.buf = buf;
    c.len = len;
    count_args(&c);
    return run(self, &c, err);
}

static int op_get_vm_ip_address(void *self, const char *pool, const char *vm, char *ip, size_t len,
                                vmp_err *err)
{
    return string_answer(self, "get_vm_ip_address", pool, vm, ip, len, err);
}

static int op_get_vm_host(void *self, const char *pool, const char *vm, char *host, size_t len,
                          vmp_err *err)
{
    return string_answer(self, "get_vm_host", pool, vm, host, len, err);
}

static int op_find_least_used(void *self, const char *pool, const char *vm, char *host, size_t len,
                              vmp_err *err)
{
    return string_answer(self, "find_least_used_compatible_host", pool, vm, host, len, err);
}

static int op_migrate_vm_to_host(void *self, const char *pool, const char *vm, const char *host,
                                 vmp_err *err)
{
    return action(self, "migrate_vm_to_host", pool, vm, host, err);
}

static int op_migrate_vm(void *self, const char *pool, const char *vm, vmp_err *err)
{
    return action(self, "migrate_vm", pool, vm, NULL, err);
}

static int op_create_disk(void *self, const char *pool, const char *vm, int size_gb, vmp_err *err)
{
    call c = CALL("create_disk", R_ACTION, pool, vm);
    c.num = size_gb;
    c.has_num = true;
    count_args(&c);
    return run(self, &c, err);
}

static int op_create_snapshot(void *self, const char *pool, const char *vm, const char *snapshot,
                              vmp_err *err)
{
    return action(self, "create_snapshot", pool, vm, snapshot, err);
}

static int op_revert_snapshot(void *self, const char *pool, const char *vm, const char *snapshot,
                              vmp_err *err)
{
    return action(self, "revert_snapshot", pool, vm, snapshot, err);
}

static int op_create_template_delta_disks(void *self, const char *pool, vmp_err *err)
{
    return action(self, "create_template_delta_disks", pool, NULL, NULL, err);
}

static int op_purge(void *self, const vmp_strlist *allowlist, vmp_err *err)
{
    static const vmp_strlist empty = VMP_STRLIST_INIT;
    call c = CALL("purge_unconfigured_resources", R_ACTION, NULL);
    c.list = allowlist ? allowlist : &empty;
    count_args(&c);
    return run(self, &c, err);
}

static int op_tag_vm_user(void *self, const char *pool, const char *vm, vmp_err *err)
{
    return action(self, "tag_vm_user", pool, vm, NULL, err);
}

/* ---- registration ------------------------------------------------------------------------ */

static bool has(const vmp_strlist *methods, const char *m)
{
    return vmp_strlist_contains(methods, m);
}

static void fill_ops(lua_class *c)
{
    vmp_provider_ops *o = &c->ops;
    const vmp_strlist *m = &c->methods;
    o->abi = VMP_PROVIDER_ABI;
    o->name = c->name;
    o->open = lp_open;
    o->close = lp_close;
    /* a method the class lacks is a NULL op: "not supported", or the
     * contract's default (vm_exists, tag_vm_user, delta disks) */
    o->vms_in_pool = has(m, "vms_in_pool") ? op_vms_in_pool : NULL;
    o->get_vm = has(m, "get_vm") ? op_get_vm : NULL;
    o->create_vm = has(m, "create_vm") ? op_create_vm : NULL;
    o->destroy_vm = has(m, "destroy_vm") ? op_destroy_vm : NULL;
    o->vm_ready = has(m, "vm_ready") ? op_vm_ready : NULL;
    o->vm_exists = has(m, "vm_exists") ? op_vm_exists : NULL;
    o->get_vm_ip_address = has(m, "get_vm_ip_address") ? op_get_vm_ip_address : NULL;
    o->get_vm_host = has(m, "get_vm_host") ? op_get_vm_host : NULL;
    o->find_least_used_compatible_host =
        has(m, "find_least_used_compatible_host") ? op_find_least_used : NULL;
    o->migrate_vm_to_host = has(m, "migrate_vm_to_host") ? op_migrate_vm_to_host : NULL;
    o->migrate_vm = has(m, "migrate_vm") ? op_migrate_vm : NULL;
    o->create_disk = has(m, "create_disk") ? op_create_disk : NULL;
    o->create_snapshot = has(m, "create_snapshot") ? op_create_snapshot : NULL;
    o->revert_snapshot = has(m, "revert_snapshot") ? op_revert_snapshot : NULL;
    o->create_template_delta_disks =
        has(m, "create_template_delta_disks") ? op_create_template_delta_disks : NULL;
    o->purge_unconfigured_resources = has(m, "purge_unconfigured_resources") ? op_purge : NULL;
    o->tag_vm_user = has(m, "tag_vm_user") ? op_tag_vm_user : NULL;
}

static void class_free(lua_class *c)
{
    if (!c)
        return;
    free(c->name);
    vmp_strlist_clear(&c->files);
    vmp_strlist_clear(&c->methods);
    free(c);
}

static bool same_list(const vmp_strlist *a, const vmp_strlist *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0)
            return false;
    return true;
}

static lua_class *find_registered(const char *name)
{
    for (lua_class *c = classes; c; c = c->next)
        if (c->registered && strcasecmp(c->name, name) == 0)
            return c;
    return NULL;
}

int vmp_lua_provider_register(const char *name, const vmp_strlist *files, bool unsandboxed,
                              const vmp_strlist *methods, vmp_err *err)
{
    int rc = 0;
    lua_class *c = NULL;
    static const vmp_strlist none = VMP_STRLIST_INIT;
    if (!name || !name[0] || !files)
        return vmp_err_set(err, VMP_EINVAL, "vmp_lua_provider_register: bad arguments");
    methods = methods ? methods : &none;
    pthread_mutex_lock(&classes_lock);
    lua_class *old = find_registered(name);
    if (old && old->unsandboxed == unsandboxed && same_list(&old->files, files) &&
        same_list(&old->methods, methods))
        goto out; /* unchanged: instances keep using it */
    if (!old && vmp_provider_class_find(name)) {
        rc = vmp_err_set(err, VMP_EEXIST,
                         "provider class \"%s\" exists already (built in); give the Lua provider "
                         "another name",
                         name);
        goto out;
    }
    c = calloc(1, sizeof *c);
    if (!c || !(c->name = strdup(name)))
        goto oom;
    for (size_t i = 0; i < files->n; i++)
        if (vmp_strlist_push(&c->files, files->v[i]) != 0)
            goto oom;
    for (size_t i = 0; i < methods->n; i++)
        if (vmp_strlist_push(&c->methods, methods->v[i]) != 0)
            goto oom;
    c->unsandboxed = unsandboxed;
    fill_ops(c);
    if (old) {
        vmp_provider_unregister(old->name);
        old->registered = false;
    }
    if ((rc = vmp_provider_register(&c->ops, err)) != 0) {
        if (old && vmp_provider_register(&old->ops, NULL) == 0)
            old->registered = true;
        goto out;
    }
    c->registered = true;
    c->next = classes;
    classes = c;
    c = NULL;
    vmp_log(VMP_LOG_INFO, "lua", "provider class %s registered (%s)", name,
            old ? "updated" : "new");
    goto out;
oom:
    rc = vmp_err_set(err, VMP_ENOMEM, "out of memory registering provider class %s", name);
out:
    pthread_mutex_unlock(&classes_lock);
    class_free(c);
    return rc;
}

bool vmp_lua_provider_is_lua(const char *name)
{
    pthread_mutex_lock(&classes_lock);
    bool found = name && find_registered(name) != NULL;
    pthread_mutex_unlock(&classes_lock);
    return found;
}

void vmp_lua_provider_shutdown(void)
{
    pthread_mutex_lock(&classes_lock);
    while (classes) {
        lua_class *c = classes;
        classes = c->next;
        if (c->registered)
            vmp_provider_unregister(c->name);
        class_free(c);
    }
    pthread_mutex_unlock(&classes_lock);
}

/* ---- vmpool.provider ----------------------------------------------------------------------- */

/* vmpool.provider = require("vmpool.provider").register */
void vmp_lua_open_provider(lua_State *L)
{
    /* [vmpool] */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "vmpool.provider");
    lua_call(L, 1, 1); /* [vmpool, Provider] */
    lua_getfield(L, -1, "register");
    lua_setfield(L, -3, "provider");
    lua_pop(L, 1);
}
