/* The embedding API (vmpool.h): the daemon's manager side as a library. */
#include "vmpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dummy/dummy.h"
#include "engine/engine.h"
#include "log.h"
#include "lua/script.h"
#include "provider.h"
#include "store/redis_embedded.h"
#include "store/store.h"
#include "util.h"
#include "vsphere/vsphere.h"

struct vmpool {
    pthread_mutex_t lock;
    vmp_lua_config *lua;
    vmp_lua_policy *policy;
    vmp_engine_hooks hooks;
    vmp_config *cfg;
    double stop_timeout;
    char *owner;
    /* while started */
    vmp_redis_embedded *redis;
    vmp_store_opts store_opts;
    vmp_store *store; /* checkout, return, counts */
    vmp_engine *engine;
};

static int prepare(vmpool *vp, const char *path, const vmp_open_opts *o, vmp_strlist *errors,
                   vmp_err *err)
{
    int rc = vmp_lua_config_new(o->lua_files, &vp->lua, err);
    if (rc != 0)
        return rc;
    vmp_config_opts co = {.no_env = o->no_env};
    vmp_lua_config_apply(vp->lua, &co);
    rc = vmp_config_load_default(path, &co, &vp->cfg, errors, err);
    if (rc != 0)
        return rc;
    /* Named here, not only found through the registry's weak references: a
     * static link keeps only what is referenced. */
    if ((rc = vmp_dummy_register(err)) != 0 || (rc = vmp_vsphere_register(err)) != 0 ||
        (rc = vmp_provider_register_builtins(err)) != 0 ||
        (rc = vmp_lua_config_register(vp->lua, err)) != 0)
        return rc;
    rc = vmp_lua_policy_new(vp->cfg, vmp_lua_config_files(vp->lua),
                            vmp_lua_config_unsandboxed(vp->lua), NULL, &vp->policy, err);
    if (rc != 0)
        return rc;
    vmp_lua_policy_hooks(vp->policy, &vp->hooks);
    return 0;
}

int vmp_open(const char *config_path, const vmp_open_opts *opts, vmpool **out, vmp_err *err)
{
    static const vmp_open_opts none = {0};
    if (!out || *out)
        return vmp_err_set(err, VMP_EINVAL, "vmp_open: *out must point to NULL");
    const vmp_open_opts *o = opts ? opts : &none;
    vmpool *vp = calloc(1, sizeof *vp);
    if (!vp)
        return vmp_err_set(err, VMP_ENOMEM, "vmp_open: out of memory");
    pthread_mutex_init(&vp->lock, NULL);
    vp->stop_timeout = o->stop_timeout > 0 ? o->stop_timeout : 30;
    if (o->owner && !(vp->owner = strdup(o->owner))) {
        vmp_close(vp);
        return vmp_err_set(err, VMP_ENOMEM, "vmp_open: out of memory");
    }
    vmp_strlist errors = VMP_STRLIST_INIT;
    int rc = prepare(vp, config_path, o, &errors, err);
    if (rc != 0 && errors.n > 0) /* the first problem, with where it is */
        vmp_err_set(err, rc, "%s%s", errors.v[0], errors.n > 1 ? " (and more)" : "");
    for (size_t i = 1; rc != 0 && i < errors.n; i++)
        vmp_log(VMP_LOG_WARN, "vmpool", "configuration: %s", errors.v[i]);
    vmp_strlist_clear(&errors);
    if (rc != 0) {
        vmp_close(vp);
        return rc;
    }
    *out = vp;
    return 0;
}

const vmp_config *vmp_config_of(const vmpool *vp) { return vp ? vp->cfg : NULL; }

/* ---- start and stop -------------------------------------------------------------- */

static void stop_locked(vmpool *vp, double timeout, int *rc)
{
    if (vp->engine) {
        if (vmp_engine_stop(vp->engine, timeout < 0 ? vp->stop_timeout : timeout) != 0)
            *rc = VMP_ETIMEDOUT;
        vmp_engine_free(vp->engine);
        vp->engine = NULL;
    }
    vmp_store_free(vp->store);
    vp->store = NULL;
    vmp_redis_embedded_stop(vp->redis);
    vp->redis = NULL;
}

int vmp_start(vmpool *vp, vmp_err *err)
{
    if (!vp)
        return vmp_err_set(err, VMP_EINVAL, "vmp_start: no handle");
    int rc = 0;
    pthread_mutex_lock(&vp->lock);
    if (vp->engine)
        goto out; /* started already */
    const vmp_redis_cfg *rcfg = &vp->cfg->redis;
    const char *socket = NULL;
    if (!rcfg->server && !rcfg->socket) {
        vmp_redis_embedded_opts eo = {.state_dir = rcfg->state_dir};
        if ((rc = vmp_redis_embedded_start(&eo, &vp->redis, err)) != 0)
            goto out;
        socket = vmp_redis_embedded_socket(vp->redis);
    }
    vmp_store_opts_from_cfg(rcfg, socket, &vp->store_opts);
    if ((rc = vmp_store_open(&vp->store_opts, &vp->store, err)) != 0)
        goto out;
    vmp_engine_opts eo = {
        .config = vp->cfg,
        .store = &vp->store_opts,
        .hooks = &vp->hooks,
        .stop_timeout = vp->stop_timeout,
        .owner = vp->owner,
    };
    if ((rc = vmp_engine_new(&eo, &vp->engine, err)) != 0 ||
        (rc = vmp_engine_start(vp->engine, err)) != 0)
        goto out;
out:
    if (rc != 0) {
        int ignored = 0;
        stop_locked(vp, 0, &ignored);
    }
    pthread_mutex_unlock(&vp->lock);
    return rc;
}

int vmp_stop(vmpool *vp, double timeout)
{
    if (!vp)
        return 0;
    int rc = 0;
    pthread_mutex_lock(&vp->lock);
    stop_locked(vp, timeout, &rc);
    pthread_mutex_unlock(&vp->lock);
    return rc;
}

void vmp_close(vmpool *vp)
{
    if (!vp)
        return;
    vmp_stop(vp, -1);
    vmp_lua_policy_free(vp->policy);
    vmp_config_free(vp->cfg);
    vmp_lua_config_free(vp->lua);
    free(vp->owner);
    pthread_mutex_destroy(&vp->lock);
    free(vp);
}

/* ---- checkout and return ------------------------------------------------------------- */

static int not_started(vmp_err *err)
{
    return vmp_err_set(err, VMP_ESTATE, "vmpool is not started (vmp_start)");
}

int vmp_checkout(vmpool *vp, const char *pool, const vmp_checkout_opts *opts, char **vm,
                 vmp_err *err)
{
    if (!vp || !pool || !vm || *vm)
        return vmp_err_set(err, VMP_EINVAL, "vmp_checkout: bad arguments");
    int rc = 0;
    vmp_strlist pools = VMP_STRLIST_INIT;
    vmp_store_checkout_result res = {0};
    pthread_mutex_lock(&vp->lock);
    if (!vp->store) {
        rc = not_started(err);
        goto out;
    }
    if (vmp_config_resolve_alias(vp->cfg, pool, &pools) == 0) {
        rc = vmp_err_set(err, VMP_ENOENT, "no pool or alias named %s", pool);
        goto out;
    }
    vmp_store_want want = {.name = pool, .pools = (const char *const *)pools.v, .npools = pools.n};
    vmp_store_checkout_opts co = {.now = vmp_now()};
    if (opts) {
        co.token = opts->token;
        co.user = opts->user;
        co.lifetime = opts->lifetime;
    }
    rc = vmp_store_checkout(vp->store, &want, 1, &co, &res, err);
    if (rc == VMP_EAGAIN) {
        vmp_err_set(err, rc, "no ready VM in %s", pool);
        goto out;
    }
    if (rc != 0)
        goto out;
    if (res.nvms != 1 || !(*vm = strdup(res.vms[0].vm))) {
        rc = vmp_err_set(err, VMP_ENOMEM, "vmp_checkout: out of memory");
        goto out;
    }
    /* wake this engine, and any other manager of the pool */
    vmp_engine_wake(vp->engine, res.vms[0].pool);
    vmp_err ignored = {0};
    vmp_store_publish(vp->store, "checkout", res.vms[0].pool, &ignored);
out:
    pthread_mutex_unlock(&vp->lock);
    vmp_store_checkout_result_clear(&res);
    vmp_strlist_clear(&pools);
    return rc;
}

int vmp_return(vmpool *vp, const char *vm, vmp_err *err)
{
    if (!vp || !vm)
        return vmp_err_set(err, VMP_EINVAL, "vmp_return: bad arguments");
    int rc;
    char *pool = NULL;
    pthread_mutex_lock(&vp->lock);
    if (!vp->store) {
        rc = not_started(err);
    } else if ((rc = vmp_store_vm_return(vp->store, vm, &pool, err)) == 0) {
        vmp_engine_wake(vp->engine, pool);
        vmp_err ignored = {0};
        vmp_store_publish(vp->store, "return", pool, &ignored);
    }
    pthread_mutex_unlock(&vp->lock);
    free(pool);
    return rc;
}

int vmp_counts(vmpool *vp, const char *pool, vmp_pool_counts *out, vmp_err *err)
{
    if (!vp || !pool || !out)
        return vmp_err_set(err, VMP_EINVAL, "vmp_counts: bad arguments");
    int rc;
    vmp_store_pool_counts c;
    pthread_mutex_lock(&vp->lock);
    if (!vp->store)
        rc = not_started(err);
    else if (!vmp_config_pool(vp->cfg, pool))
        rc = vmp_err_set(err, VMP_ENOENT, "no pool named %s", pool);
    else
        rc = vmp_store_pool_counts_get(vp->store, pool, &c, err);
    pthread_mutex_unlock(&vp->lock);
    if (rc == 0)
        *out = (vmp_pool_counts){c.n[VMP_VM_READY], c.n[VMP_VM_PENDING], c.n[VMP_VM_RUNNING],
                                 c.n[VMP_VM_COMPLETED]};
    return rc;
}

int vmp_wait_ready(vmpool *vp, const char *pool, long long n, double timeout, vmp_err *err)
{
    double end = vmp_monotonic() + timeout;
    vmp_pool_counts c;
    for (;;) {
        int rc = vmp_counts(vp, pool, &c, err);
        if (rc != 0)
            return rc;
        if (c.ready >= n)
            return 0;
        if (vmp_monotonic() >= end)
            return vmp_err_set(err, VMP_ETIMEDOUT, "pool %s: %lld of %lld VMs ready after %.0f s",
                               pool, c.ready, n, timeout);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
