/* Policy hooks: the engine's vmp_engine_hooks, answered by the
 * vmpool.policy{...} functions of the configuration's Lua files.
 *
 * One state runs every hook (the engine serialises hook calls); a mutex
 * only guards it against a reload swapping it. A hook that raises, runs
 * past its limits or answers nonsense is logged with its traceback and the
 * engine falls back to its built-in behaviour. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "lua/script_internal.h"

#define SUBSYS "lua.policy"
#define POLICY_TIME_LIMIT 2.0 /* seconds per hook call, unless :config: lua_time_limit */
#define SIZE_MAX_SANE 100000
#define LIFETIME_MAX_SANE (24LL * 365 * 10)
#define QUIET_SECONDS 600.0 /* a repeated failure is logged at debug level this long */
#define SEEN_MAX 32

enum {
    H_POOL_SIZE = 1 << 0,
    H_VM_NAME = 1 << 1,
    H_CHOOSE_HOST = 1 << 2,
    H_LIFETIME = 1 << 3,
    H_ON_EVENT = 1 << 4,
};

static const struct {
    const char *name;
    unsigned bit;
} hook_names[] = {{"pool_size", H_POOL_SIZE},
                  {"vm_name", H_VM_NAME},
                  {"choose_host", H_CHOOSE_HOST},
                  {"lifetime", H_LIFETIME},
                  {"on_event", H_ON_EVENT}};

typedef struct pstate {
    vmp_lua *l;
    int call_ref, emit_ref;
    unsigned defined;
} pstate;

/* A failure logged at warning level: hook and pool, and its message's hash. */
typedef struct seen {
    char key[128];
    unsigned long hash;
    double at;
} seen;

struct vmp_lua_policy {
    pthread_mutex_t lock;
    pstate st;
    unsigned at_start; /* hooks given to the engine */
    vmp_metrics *metrics;
    seen seen[SEEN_MAX]; /* under lock */
    size_t next_seen;
};

/* The level for a failure: warning the first time, debug for the same
 * failure (hook, pool, message) again within QUIET_SECONDS, so a broken
 * hook called at every pass does not flood the log. Under p->lock. */
static vmp_log_level failure_level(vmp_lua_policy *p, const char *hook, const char *pool,
                                   const char *msg)
{
    unsigned long h = 5381;
    for (const char *c = msg; *c; c++)
        h = h * 33 + (unsigned char)*c;
    char key[128];
    snprintf(key, sizeof key, "%s/%s", hook, pool ? pool : "");
    double now = vmp_monotonic();
    for (size_t i = 0; i < SEEN_MAX; i++) {
        seen *s = &p->seen[i];
        if (s->hash == h && strcmp(s->key, key) == 0) {
            if (now - s->at < QUIET_SECONDS)
                return VMP_LOG_DEBUG;
            s->at = now;
            return VMP_LOG_WARN;
        }
    }
    seen *s = &p->seen[p->next_seen++ % SEEN_MAX];
    snprintf(s->key, sizeof s->key, "%s", key);
    s->hash = h;
    s->at = now;
    return VMP_LOG_WARN;
}

/* ---- states -------------------------------------------------------------------- */

typedef struct init_args {
    pstate *st;
} init_args;

/* Takes the refs to vmpool.policy's call and emit, reads which hooks are
 * defined, and makes vmpool.config() keep the configuration as it is now. */
static int init_state(lua_State *L)
{
    init_args *a = lua_touserdata(L, 1);
    lua_getglobal(L, "vmpool");
    lua_getfield(L, -1, "config");
    lua_call(L, 0, 0);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "vmpool.policy");
    lua_call(L, 1, 1); /* [ud, vmpool, M] */
    lua_getfield(L, -1, "defined");
    lua_call(L, 0, 1);
    for (size_t i = 0; i < VMP_ARRAY_LEN(hook_names); i++) {
        if (lua_getfield(L, -1, hook_names[i].name) != LUA_TNIL)
            a->st->defined |= hook_names[i].bit;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "call");
    a->st->call_ref = vmp_lua_ref(L);
    lua_getfield(L, -1, "emit");
    a->st->emit_ref = vmp_lua_ref(L);
    return 0;
}

static void pstate_clear(pstate *st)
{
    if (st->l) {
        vmp_lua_unref(st->l->L, st->call_ref);
        vmp_lua_unref(st->l->L, st->emit_ref);
        vmp_lua_free(st->l);
    }
    *st = (pstate){NULL, LUA_NOREF, LUA_NOREF, 0};
}

static int pstate_make(const vmp_config *cfg, const vmp_strlist *files, bool unsandboxed,
                       vmp_metrics *metrics, pstate *st, vmp_err *err)
{
    *st = (pstate){NULL, LUA_NOREF, LUA_NOREF, 0};
    if (!files || files->n == 0)
        return 0;
    const vmp_cfg_node *global = vmp_cfg_get(cfg ? cfg->root : NULL, "config");
    vmp_lua_opts o = {
        .role = VMP_LUA_POLICY,
        .unsandboxed = unsandboxed,
        .instruction_limit = vmp_cfg_get_int(global, "lua_instruction_limit", 0),
        .time_limit = vmp_cfg_get_double(global, "lua_time_limit", POLICY_TIME_LIMIT),
        .subsys = SUBSYS,
        .metrics = metrics,
        .config = cfg,
        .lua_files = files,
    };
    int rc = vmp_lua_new(&o, &st->l, err);
    if (rc == 0 && (rc = vmp_lua_run_files(st->l, files, err)) != 0)
        vmp_log(VMP_LOG_WARN, SUBSYS, "%s", vmp_lua_last_error(st->l));
    if (rc == 0) {
        init_args a = {st};
        lua_pushcfunction(st->l->L, init_state);
        lua_pushlightuserdata(st->l->L, &a);
        rc = vmp_lua_pcall(st->l->L, 1, 0, err);
    }
    if (rc != 0)
        pstate_clear(st);
    return rc;
}

int vmp_lua_policy_new(const vmp_config *cfg, const vmp_strlist *files, bool unsandboxed,
                       vmp_metrics *metrics, vmp_lua_policy **out, vmp_err *err)
{
    if (!out || *out)
        return vmp_err_set(err, VMP_EINVAL, "vmp_lua_policy_new: bad arguments");
    vmp_lua_policy *p = calloc(1, sizeof *p);
    if (!p)
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    pthread_mutex_init(&p->lock, NULL);
    p->metrics = metrics;
    int rc = pstate_make(cfg, files, unsandboxed, metrics, &p->st, err);
    if (rc != 0) {
        vmp_err_prefix(err, "policy");
        pthread_mutex_destroy(&p->lock);
        free(p);
        return rc;
    }
    p->at_start = p->st.defined;
    *out = p;
    return 0;
}

void vmp_lua_policy_free(vmp_lua_policy *p)
{
    if (!p)
        return;
    pstate_clear(&p->st);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

bool vmp_lua_policy_any(const vmp_lua_policy *p) { return p && p->st.defined != 0; }

int vmp_lua_policy_reload(vmp_lua_policy *p, const vmp_config *cfg, const vmp_strlist *files,
                          bool unsandboxed, vmp_err *err)
{
    if (!p)
        return vmp_err_set(err, VMP_EINVAL, "vmp_lua_policy_reload: no policy");
    pstate next, old;
    int rc = pstate_make(cfg, files, unsandboxed, p->metrics, &next, err);
    if (rc != 0)
        return vmp_err_prefix(err, "policy");
    for (size_t i = 0; i < VMP_ARRAY_LEN(hook_names); i++)
        if ((next.defined & hook_names[i].bit) && !(p->at_start & hook_names[i].bit))
            vmp_log(VMP_LOG_WARN, SUBSYS,
                    "the %s hook was not defined at start; it takes effect after a restart",
                    hook_names[i].name);
    pthread_mutex_lock(&p->lock);
    old = p->st;
    p->st = next;
    pthread_mutex_unlock(&p->lock);
    pstate_clear(&old);
    return 0;
}

/* ---- calls ------------------------------------------------------------------------- */

typedef struct hook_call {
    pstate *st;
    const char *hook, *pool;
    /* arguments, by hook */
    const vmp_engine_pool_stats *stats;
    double now;
    const char *vm, *current, *proposed, *user;
    long long hours_in;
    const vmp_engine_event *ev;
    /* answer */
    bool decided; /* a policy answered (non-nil) */
    lua_Integer num;
    char text[VMP_NAME_MAX];
    char bad[200]; /* what was wrong with the answer */
} hook_call;

static void set_num(lua_State *L, const char *k, long long v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static void set_str(lua_State *L, const char *k, const char *v)
{
    if (v) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, k);
    }
}

static void describe(lua_State *L, int idx, char *buf, size_t len)
{
    if (lua_type(L, idx) == LUA_TSTRING)
        snprintf(buf, len, "\"%.60s\"", lua_tostring(L, idx));
    else if (lua_type(L, idx) == LUA_TNUMBER)
        snprintf(buf, len, "%.14g", (double)lua_tonumber(L, idx));
    else
        snprintf(buf, len, "a %s", luaL_typename(L, idx));
}

static bool good_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '-')
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-'))
            return false;
    return true;
}

/* Runs under vmp_lua_pcall: M.call(hook, pool, ...) and checks the answer. */
static int do_hook(lua_State *L)
{
    hook_call *c = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->st->call_ref);
    lua_pushstring(L, c->hook);
    lua_pushstring(L, c->pool);
    int n = 2;
    if (strcmp(c->hook, "pool_size") == 0) { /* (pool, stats, now) */
        const vmp_engine_pool_stats *s = c->stats;
        lua_createtable(L, 0, 9);
        set_num(L, "ready", s->ready);
        set_num(L, "pending", s->pending);
        set_num(L, "running", s->running);
        set_num(L, "completed", s->completed);
        set_num(L, "size", s->size);
        set_num(L, "config_size", s->config_size);
        set_num(L, "checkouts_10m", s->checkouts_10m);
        set_num(L, "checkouts_1h", s->checkouts_1h);
        lua_pushnumber(L, s->last_checkout);
        lua_setfield(L, -2, "last_checkout");
        lua_pushnumber(L, c->now);
        n += 2;
    } else if (strcmp(c->hook, "choose_host") == 0) { /* (pool, vm, hosts) */
        lua_pushstring(L, c->vm);
        lua_createtable(L, 0, 2);
        set_str(L, "current", c->current);
        set_str(L, "proposed", c->proposed);
        n += 2;
    } else if (strcmp(c->hook, "lifetime") == 0) { /* (pool, vm, request) */
        lua_pushstring(L, c->vm);
        lua_createtable(L, 0, 2);
        if (c->hours_in >= 0)
            set_num(L, "lifetime", c->hours_in);
        set_str(L, "user", c->user);
        n += 2;
    }
    lua_call(L, n, 2); /* [found, answer] */
    c->decided = lua_toboolean(L, -2) && !lua_isnil(L, -1);
    if (!c->decided)
        return 0;
    char got[80];
    describe(L, -1, got, sizeof got);
    if (strcmp(c->hook, "pool_size") == 0 || strcmp(c->hook, "lifetime") == 0) {
        bool size = c->hook[0] == 'p';
        lua_Integer v = 0;
        int isnum = 0;
        v = lua_tointegerx(L, -1, &isnum);
        if (lua_type(L, -1) != LUA_TNUMBER || !isnum || (size ? v < 0 : v <= 0) ||
            v > (size ? SIZE_MAX_SANE : LIFETIME_MAX_SANE))
            snprintf(c->bad, sizeof c->bad, "returned %s; expected %s integer", got,
                     size ? "a non-negative" : "a positive");
        c->num = v;
    } else {
        const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        bool name = strcmp(c->hook, "vm_name") == 0;
        if (!s || !s[0] || vmp_strlcpy(c->text, s, sizeof c->text) != 0 || (name && !good_name(s)))
            snprintf(c->bad, sizeof c->bad, "returned %s; expected %s", got,
                     name ? "a VM name (letters, digits and '-', at most 63)" : "a host name");
    }
    return 0;
}

/* Runs a hook; 0 with c->decided telling whether a policy answered, or
 * non-zero (logged, err set) when it failed or answered nonsense. */
static int run_hook(vmp_lua_policy *p, hook_call *c, vmp_err *err)
{
    pthread_mutex_lock(&p->lock);
    int rc = 0;
    if (!p->st.l)
        goto out;
    c->st = &p->st;
    lua_State *L = p->st.l->L;
    int top = lua_gettop(L);
    lua_pushcfunction(L, do_hook);
    lua_pushlightuserdata(L, c);
    rc = vmp_lua_pcall(L, 1, 0, err);
    lua_settop(L, top);
    if (rc != 0) {
        const char *why = vmp_lua_last_error(p->st.l);
        vmp_log_vm(failure_level(p, c->hook, c->pool, why), SUBSYS, c->pool, c->vm,
                   "%s hook failed, built-in behaviour used: %s", c->hook, why);
        vmp_err_prefix(err, "policy %s", c->hook);
    } else if (c->bad[0]) {
        rc = vmp_err_set(err, VMP_EINVAL, "policy %s %s", c->hook, c->bad);
        vmp_log_vm(failure_level(p, c->hook, c->pool, c->bad), SUBSYS, c->pool, c->vm,
                   "%s hook %s; built-in behaviour used", c->hook, c->bad);
    }
out:
    pthread_mutex_unlock(&p->lock);
    return rc;
}

static int hook_pool_size(void *ud, const char *pool, const vmp_engine_pool_stats *stats,
                          double now, long long *size, vmp_err *err)
{
    hook_call c = {.hook = "pool_size", .pool = pool, .stats = stats, .now = now};
    int rc = run_hook(ud, &c, err);
    if (rc == 0)
        *size = c.decided ? (long long)c.num : stats->size;
    return rc;
}

static int hook_vm_name(void *ud, const char *pool, char *name, size_t len, vmp_err *err)
{
    hook_call c = {.hook = "vm_name", .pool = pool};
    int rc = run_hook(ud, &c, err);
    if (rc != 0)
        return rc;
    if (!c.decided) /* no policy names this pool's VMs: the engine's own names */
        return vmp_err_set(err, VMP_ENOTSUP, "no vm_name policy for pool %s", pool);
    if (vmp_strlcpy(name, c.text, len) != 0)
        return vmp_err_set(err, VMP_EINVAL, "policy vm_name: \"%s\" is too long", c.text);
    return 0;
}

static int hook_choose_host(void *ud, const char *pool, const char *vm, const char *current,
                            const char *proposed, char *host, size_t len, vmp_err *err)
{
    hook_call c = {.hook = "choose_host",
                   .pool = pool,
                   .vm = vm,
                   .current = current ? current : "",
                   .proposed = proposed ? proposed : ""};
    int rc = run_hook(ud, &c, err);
    if (rc != 0)
        return rc;
    const char *pick = c.decided ? c.text : proposed ? proposed : current ? current : "";
    if (vmp_strlcpy(host, pick, len) != 0)
        return vmp_err_set(err, VMP_EINVAL, "policy choose_host: \"%s\" is too long", pick);
    return 0;
}

static int hook_lifetime(void *ud, const char *pool, const char *vm, long long hours_in,
                         const char *user, long long *hours, vmp_err *err)
{
    hook_call c = {.hook = "lifetime", .pool = pool, .vm = vm, .hours_in = hours_in, .user = user};
    int rc = run_hook(ud, &c, err);
    if (rc == 0)
        *hours = c.decided ? (long long)c.num : hours_in;
    return rc;
}

typedef struct event_call {
    pstate *st;
    const vmp_engine_event *ev;
} event_call;

static int do_event(lua_State *L)
{
    event_call *c = lua_touserdata(L, 1);
    const vmp_engine_event *ev = c->ev;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->st->emit_ref);
    lua_createtable(L, 0, 6);
    set_str(L, "kind", vmp_engine_event_name(ev->kind));
    set_str(L, "pool", ev->pool);
    set_str(L, "vm", ev->vm);
    set_str(L, "error", ev->error);
    lua_pushnumber(L, ev->time);
    lua_setfield(L, -2, "time");
    lua_pushnumber(L, ev->duration);
    lua_setfield(L, -2, "duration");
    lua_call(L, 1, 0);
    return 0;
}

static void hook_on_event(void *ud, const vmp_engine_event *ev)
{
    vmp_lua_policy *p = ud;
    pthread_mutex_lock(&p->lock);
    if (p->st.l && (p->st.defined & H_ON_EVENT)) {
        lua_State *L = p->st.l->L;
        int top = lua_gettop(L);
        event_call c = {&p->st, ev};
        lua_pushcfunction(L, do_event);
        lua_pushlightuserdata(L, &c);
        vmp_err err = {0};
        if (vmp_lua_pcall(L, 1, 0, &err) != 0) {
            const char *why = vmp_lua_last_error(p->st.l);
            vmp_log_vm(failure_level(p, "on_event", ev->pool, why), SUBSYS, ev->pool, ev->vm,
                       "on_event(%s) failed: %s", vmp_engine_event_name(ev->kind), why);
        }
        lua_settop(L, top);
    }
    pthread_mutex_unlock(&p->lock);
}

void vmp_lua_policy_hooks(vmp_lua_policy *p, vmp_engine_hooks *hooks)
{
    memset(hooks, 0, sizeof *hooks);
    if (!p)
        return;
    hooks->ud = p;
    if (p->at_start & H_POOL_SIZE)
        hooks->pool_size = hook_pool_size;
    if (p->at_start & H_VM_NAME)
        hooks->vm_name = hook_vm_name;
    if (p->at_start & H_CHOOSE_HOST)
        hooks->choose_host = hook_choose_host;
    if (p->at_start & H_LIFETIME)
        hooks->lifetime = hook_lifetime;
    if (p->at_start & H_ON_EVENT)
        hooks->on_event = hook_on_event;
}

/* vmpool.policy = require("vmpool.policy").register */
void vmp_lua_open_policy(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "vmpool.policy");
    lua_call(L, 1, 1); /* [vmpool, M] */
    lua_getfield(L, -1, "register");
    lua_setfield(L, -3, "policy");
    lua_pop(L, 1);
}
