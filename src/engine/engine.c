/*
 * engine: the engine object, its lifecycle (new, start, stop, free), the
 * configuration generations and provider instances behind a reload, and
 * the thread-safe queries.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine_internal.h"
#include "log.h"

#define DEFAULT_PROVIDER "dummy"

double eng_now(vmp_engine *e) { return vmp_clock_now(e->clock); }

eng_pool *eng_pool_find(vmp_engine *e, const char *name)
{
    for (size_t i = 0; i < e->npools; i++)
        if (strcmp(e->pools[i]->name, name) == 0)
            return e->pools[i];
    return NULL;
}

const vmp_pool_cfg *eng_pool_cfg(const eng_gen *g, const char *pool)
{
    return g ? vmp_config_pool(g->cfg, pool) : NULL;
}

static const char *pool_provider_name(const vmp_pool_cfg *pc)
{
    return pc->provider && pc->provider[0] ? pc->provider : DEFAULT_PROVIDER;
}

long long eng_opt_int(const vmp_config *cfg, const vmp_pool_cfg *pool, const char *key,
                      long long def)
{
    if (pool && vmp_cfg_get(pool->node, key))
        return vmp_cfg_get_int(pool->node, key, def);
    if (cfg && vmp_cfg_get(cfg->global.node, key))
        return vmp_cfg_get_int(cfg->global.node, key, def);
    return def;
}

bool eng_opt_bool(const vmp_config *cfg, const vmp_pool_cfg *pool, const char *key, bool def)
{
    if (pool && vmp_cfg_get(pool->node, key))
        return vmp_cfg_get_bool(pool->node, key, def);
    if (cfg && vmp_cfg_get(cfg->global.node, key))
        return vmp_cfg_get_bool(cfg->global.node, key, def);
    return def;
}

/* ---- generations -------------------------------------------------------- */

static eng_gen *gen_new(vmp_engine *e, const vmp_config *cfg, bool owned)
{
    eng_gen *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->cfg = cfg;
    g->owned = owned;
    eng_gen **pp = &e->gens;
    while (*pp)
        pp = &(*pp)->next;
    *pp = g;
    return g;
}

static bool cfg_in_use(vmp_engine *e, const vmp_config *cfg, const eng_gen *except)
{
    for (eng_gen *g = e->gens; g; g = g->next)
        if (g != except && g->cfg == cfg)
            return true;
    return false;
}

/* Frees what nothing uses any more. A generation goes when it is not
 * current, no task holds it, no provider instance pins it, and no older
 * generation is still held by a task (such a task may be reading a newer
 * configuration through a provider rebound to it). */
static void gens_retire(vmp_engine *e)
{
    bool older_busy = false;
    eng_gen **pp = &e->gens;
    while (*pp) {
        eng_gen *g = *pp;
        bool base = !g->owned && g->cfg == e->opts.config;
        if (g != e->cur && !base && g->refs == 0 && g->pins == 0 && !older_busy) {
            *pp = g->next;
            if (g->owned) {
                vmp_config_free((vmp_config *)g->cfg);
            } else if (!cfg_in_use(e, g->cfg, g) && e->opts.config_retired) {
                e->opts.config_retired(g->cfg, e->opts.config_retired_ud);
            }
            free(g);
            continue;
        }
        if (g->refs > 0)
            older_busy = true;
        pp = &g->next;
    }
}

eng_gen *eng_gen_ref(vmp_engine *e)
{
    e->cur->refs++;
    return e->cur;
}

void eng_gen_unref(vmp_engine *e, eng_gen *g)
{
    if (!g)
        return;
    g->refs--;
    if (g->refs <= 0)
        gens_retire(e);
}

/* ---- provider instances -------------------------------------------------- */

static eng_prov *prov_find(vmp_engine *e, const char *name)
{
    for (eng_prov *pv = e->provs; pv; pv = pv->next)
        if (!pv->retired && strcmp(pv->name, name) == 0)
            return pv;
    return NULL;
}

static void prov_close(vmp_engine *e, eng_prov *pv)
{
    eng_prov **pp = &e->provs;
    while (*pp && *pp != pv)
        pp = &(*pp)->next;
    if (*pp)
        *pp = pv->next;
    vmp_provider_close(pv->p);
    if (pv->gen) {
        pv->gen->pins--;
        gens_retire(e);
    }
    free(pv->name);
    free(pv);
}

void eng_prov_unref(vmp_engine *e, eng_prov *pv)
{
    if (!pv)
        return;
    pv->refs--;
    if (pv->refs <= 0 && pv->retired)
        prov_close(e, pv);
}

/* Deep equality of two config nodes (values and shape, not marks). */
static bool node_equal(const vmp_cfg_node *a, const vmp_cfg_node *b)
{
    vmp_cfg_kind ka = vmp_cfg_kind_of(a), kb = vmp_cfg_kind_of(b);
    if (ka != kb)
        return false;
    switch (ka) {
    case VMP_CFG_NULL:
        return true;
    case VMP_CFG_SCALAR:
        return strcmp(vmp_cfg_scalar(a), vmp_cfg_scalar(b)) == 0;
    case VMP_CFG_SEQ:
        if (vmp_cfg_len(a) != vmp_cfg_len(b))
            return false;
        for (size_t i = 0; i < vmp_cfg_len(a); i++)
            if (!node_equal(vmp_cfg_at(a, i), vmp_cfg_at(b, i)))
                return false;
        return true;
    case VMP_CFG_MAP:
        if (vmp_cfg_len(a) != vmp_cfg_len(b))
            return false;
        for (size_t i = 0; i < vmp_cfg_len(a); i++) {
            const char *k = vmp_cfg_key_at(a, i);
            const vmp_cfg_node *bv = vmp_cfg_get(b, k);
            if (!bv || !node_equal(vmp_cfg_at(a, i), bv))
                return false;
        }
        return true;
    }
    return false;
}

static const vmp_cfg_node *provider_entry(const vmp_config *cfg, const char *name)
{
    const vmp_provider_cfg *pc = vmp_config_provider(cfg, name);
    return pc ? pc->node : NULL;
}

/* Names of the provider instances cfg needs: every provider a pool names,
 * then every :providers: entry (as vmp_provider_set_open). */
static int provider_names(const vmp_config *cfg, vmp_strlist *out)
{
    for (size_t i = 0; i < cfg->n_pools; i++) {
        const char *n = pool_provider_name(&cfg->pools[i]);
        if (!vmp_strlist_contains(out, n) && vmp_strlist_push(out, n) != 0)
            return VMP_ENOMEM;
    }
    for (size_t i = 0; i < cfg->n_providers; i++) {
        const char *n = cfg->providers[i].name;
        if (n && !vmp_strlist_contains(out, n) && vmp_strlist_push(out, n) != 0)
            return VMP_ENOMEM;
    }
    return 0;
}

/* Opens the instances cfg needs that are not already open with the same
 * entry, into *fresh (not yet linked). e->lock not held (opening may take
 * time); the caller links them under the lock. */
static int providers_prepare(vmp_engine *e, const vmp_config *cfg, eng_prov **fresh, vmp_err *err)
{
    vmp_strlist names = VMP_STRLIST_INIT;
    int rc = provider_names(cfg, &names);
    if (rc != 0) {
        vmp_err_set(err, rc, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < names.n; i++) {
        pthread_mutex_lock(&e->lock);
        eng_prov *old = prov_find(e, names.v[i]);
        bool keep = old && node_equal(provider_entry(old->gen->cfg, names.v[i]),
                                      provider_entry(cfg, names.v[i]));
        pthread_mutex_unlock(&e->lock);
        if (keep)
            continue;
        eng_prov *pv = calloc(1, sizeof *pv);
        if (!pv || !(pv->name = strdup(names.v[i]))) {
            free(pv);
            rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
            goto out;
        }
        rc = vmp_provider_open(cfg, names.v[i], e->opts.provider_options, e->metrics, &pv->p, err);
        if (rc != 0) {
            free(pv->name);
            free(pv);
            goto out;
        }
        pv->next = *fresh;
        *fresh = pv;
    }
out:
    vmp_strlist_clear(&names);
    return rc;
}

static void providers_discard(eng_prov *fresh)
{
    while (fresh) {
        eng_prov *n = fresh->next;
        vmp_provider_close(fresh->p);
        free(fresh->name);
        free(fresh);
        fresh = n;
    }
}

/* ---- pools ---------------------------------------------------------------- */

static eng_pool *pool_new(const char *name)
{
    eng_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->name = strdup(name))) {
        free(p);
        return NULL;
    }
    p->size_override = -1;
    p->empty_flag = -1;
    p->polled_ready = -1;
    p->wake = true;
    p->slow_due = true;
    return p;
}

static void pool_free(eng_pool *p)
{
    if (!p)
        return;
    eng_vmtab_clear(&p->vms);
    free(p->name);
    free(p->tmpl);
    free(p->clone_target);
    free(p);
}

/* Points every pool at generation g's configuration and providers, adding
 * new pools and marking removed ones (e->lock held). */
static int pools_bind(vmp_engine *e, eng_gen *g)
{
    const vmp_config *cfg = g->cfg;
    for (size_t i = 0; i < e->npools; i++) {
        e->pools[i]->cfg = NULL;
        e->pools[i]->prov = NULL;
    }
    for (size_t i = 0; i < cfg->n_pools; i++) {
        const vmp_pool_cfg *pc = &cfg->pools[i];
        eng_pool *p = eng_pool_find(e, pc->name);
        if (!p) {
            eng_pool **v = realloc(e->pools, (e->npools + 1) * sizeof *v);
            if (!v)
                return VMP_ENOMEM;
            e->pools = v;
            if (!(p = pool_new(pc->name)))
                return VMP_ENOMEM;
            e->pools[e->npools++] = p;
        }
        p->cfg = pc;
        p->prov = prov_find(e, pool_provider_name(pc));
        if (!p->configured) {
            p->configured = true;
            p->wake = true;
            p->slow_due = true;
            p->first_pass_done = false;
        }
        /* the size in force follows the configuration unless an override
         * is in force (the template: see overrides.c) */
        if (p->size_override < 0)
            p->size = pc->size;
        p->delay = pc->check_loop_delay_min > 0 ? pc->check_loop_delay_min : 5;
        p->wake = true;
        p->slow_due = true;
    }
    for (size_t i = 0; i < e->npools; i++) {
        eng_pool *p = e->pools[i];
        if (!p->cfg && p->configured) {
            p->configured = false;
            p->deficit = 0;
            vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, NULL,
                       "pool is no longer configured; not managed any more");
        }
    }
    return 0;
}

static void limits_from(vmp_engine *e, const vmp_config *cfg)
{
    e->task_limit = cfg->global.task_limit > 0 ? cfg->global.task_limit : 10;
    e->migration_limit = cfg->global.migration_limit;
    e->od_limit = cfg->global.ondemand_clone_limit > 0 ? cfg->global.ondemand_clone_limit : 10;
}

/* Makes gen g current: links fresh providers, rebinds kept ones, retires
 * unused ones, binds pools (e->lock held). */
static int gen_install(vmp_engine *e, eng_gen *g, eng_prov *fresh)
{
    vmp_strlist names = VMP_STRLIST_INIT;
    if (provider_names(g->cfg, &names) != 0)
        return VMP_ENOMEM;
    /* retire instances that are replaced or no longer used */
    for (eng_prov *pv = e->provs; pv; pv = pv->next) {
        if (pv->retired)
            continue;
        bool replaced = false;
        for (eng_prov *f = fresh; f; f = f->next)
            if (strcmp(f->name, pv->name) == 0)
                replaced = true;
        if (replaced || !vmp_strlist_contains(&names, pv->name))
            pv->retired = true;
        else
            vmp_provider_rebind(pv->p, g->cfg);
    }
    while (fresh) {
        eng_prov *n = fresh->next;
        fresh->gen = g;
        g->pins++;
        fresh->next = e->provs;
        e->provs = fresh;
        fresh = n;
    }
    vmp_strlist_clear(&names);
    eng_gen *old = e->cur;
    e->cur = g;
    g->refs++;
    if (old)
        old->refs--;
    int rc = pools_bind(e, g);
    limits_from(e, g->cfg);
    /* close retired instances nobody uses */
    for (eng_prov *pv = e->provs, *n; pv; pv = n) {
        n = pv->next;
        if (pv->retired && pv->refs <= 0)
            prov_close(e, pv);
    }
    gens_retire(e);
    return rc;
}

/* ---- lifecycle -------------------------------------------------------------- */

static void make_owner(vmp_engine *e)
{
    if (e->opts.owner && e->opts.owner[0]) {
        vmp_strlcpy(e->owner, e->opts.owner, sizeof e->owner);
        return;
    }
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned r = (unsigned)ts.tv_nsec ^ (unsigned)getpid() * 2654435761u;
    snprintf(e->owner, sizeof e->owner, "%s:%d:%08x", host, (int)getpid(), r);
}

int vmp_engine_new(const vmp_engine_opts *opts, vmp_engine **out, vmp_err *err)
{
    int rc = 0;
    vmp_engine *e = NULL;
    eng_prov *fresh = NULL;
    if (!opts || !opts->config || !opts->store || !out || *out)
        return vmp_err_set(err, VMP_EINVAL, "vmp_engine_new: config and store are required");

    e = calloc(1, sizeof *e);
    if (!e)
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    e->opts = *opts;
    if (opts->hooks) {
        e->hooks = *opts->hooks;
        e->has_hooks = true;
    }
    e->clock = opts->clock ? opts->clock : vmp_clock_system();
    e->metrics = opts->metrics ? opts->metrics : vmp_metrics_null();
    e->lease_ttl_ms = opts->lease_ttl_ms > 0 ? opts->lease_ttl_ms : 30000;
    if (e->opts.stop_timeout <= 0)
        e->opts.stop_timeout = 30;
    make_owner(e);
    eng_node_init(e);
    e->rnd = (unsigned)(uintptr_t)e ^ (unsigned)getpid();
    pthread_mutex_init(&e->lock, NULL);
    pthread_mutex_init(&e->hook_lock, NULL);
    pthread_mutex_init(&e->cfg_lock, NULL);
    pthread_mutex_init(&e->beat_lock, NULL);
    pthread_cond_init(&e->work_cond, NULL);
    pthread_cond_init(&e->idle_cond, NULL);
    pthread_cond_init(&e->sched_cond, NULL);

    rc = vmp_store_open(opts->store, &e->store, err);
    if (rc != 0)
        goto out;
    rc = providers_prepare(e, opts->config, &fresh, err);
    if (rc != 0)
        goto out;
    pthread_mutex_lock(&e->lock);
    eng_gen *g = gen_new(e, opts->config, false);
    if (!g) {
        pthread_mutex_unlock(&e->lock);
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
        goto out;
    }
    rc = gen_install(e, g, fresh);
    fresh = NULL;
    pthread_mutex_unlock(&e->lock);
    if (rc != 0) {
        vmp_err_set(err, rc, "out of memory");
        goto out;
    }
    *out = e;
    e = NULL;
out:
    providers_discard(fresh);
    vmp_engine_free(e);
    return rc;
}

int vmp_engine_start(vmp_engine *e, vmp_err *err)
{
    if (!e)
        return vmp_err_set(err, VMP_EINVAL, "no engine");
    if (e->started)
        return 0;
    int rc = eng_startup(e, err);
    if (rc != 0)
        return rc;
    rc = eng_workers_start(e, err);
    if (rc != 0)
        return rc;
    e->started = true;
    if (!e->opts.manual) {
        rc = eng_scheduler_start(e, err);
        if (rc != 0) {
            eng_workers_stop(e, 0);
            e->started = false;
            return rc;
        }
    }
    vmp_log(VMP_LOG_INFO, ENG_SUBSYS, "manager started (owner %s, %zu pools, %d workers)", e->owner,
            e->npools, e->nthreads);
    return 0;
}

int vmp_engine_stop(vmp_engine *e, double timeout)
{
    if (!e || e->stopped)
        return 0;
    if (timeout < 0)
        timeout = e->opts.stop_timeout;
    int rc = 0;
    if (e->started) {
        vmp_log(VMP_LOG_INFO, ENG_SUBSYS, "manager stopping");
        eng_scheduler_stop(e);
        rc = eng_workers_stop(e, timeout);
        if (rc != 0)
            vmp_log(VMP_LOG_WARN, ENG_SUBSYS,
                    "tasks still running after %.0f s; leaving them behind", timeout);
        /* leave: this manager's clones stop counting in Redis */
        eng_managers_sync(e, e->store, VMP_STORE_BEAT_FINAL);
        eng_leases_release(e, e->store);
    }
    e->stopped = true;
    return rc;
}

void vmp_engine_free(vmp_engine *e)
{
    if (!e)
        return;
    vmp_engine_stop(e, -1);
    if (e->abandoned) {
        /* a worker is still inside a provider call and will touch the
         * engine when it returns: keep the memory (the process is exiting) */
        return;
    }
    pthread_mutex_lock(&e->lock);
    eng_queue_flush(e);
    while (e->provs) {
        eng_prov *pv = e->provs;
        e->provs = pv->next;
        vmp_provider_close(pv->p);
        free(pv->name);
        free(pv);
    }
    while (e->gens) {
        eng_gen *g = e->gens;
        e->gens = g->next;
        if (g->owned)
            vmp_config_free((vmp_config *)g->cfg);
        else if (g->cfg != e->opts.config && !cfg_in_use(e, g->cfg, g) && e->opts.config_retired)
            e->opts.config_retired(g->cfg, e->opts.config_retired_ud);
        free(g);
    }
    pthread_mutex_unlock(&e->lock);
    for (size_t i = 0; i < e->npools; i++)
        pool_free(e->pools[i]);
    free(e->pools);
    free(e->threads);
    vmp_store_free(e->store);
    vmp_store_free(e->sched_store);
    pthread_mutex_destroy(&e->lock);
    pthread_mutex_destroy(&e->hook_lock);
    pthread_mutex_destroy(&e->cfg_lock);
    pthread_mutex_destroy(&e->beat_lock);
    pthread_cond_destroy(&e->work_cond);
    pthread_cond_destroy(&e->idle_cond);
    pthread_cond_destroy(&e->sched_cond);
    free(e);
}

int eng_install_config(vmp_engine *e, const vmp_config *cfg, bool owned, vmp_err *err)
{
    eng_prov *fresh = NULL;
    int rc = providers_prepare(e, cfg, &fresh, err);
    if (rc != 0) {
        providers_discard(fresh);
        return rc;
    }
    pthread_mutex_lock(&e->lock);
    eng_gen *g = gen_new(e, cfg, owned);
    if (!g) {
        pthread_mutex_unlock(&e->lock);
        providers_discard(fresh);
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    }
    rc = gen_install(e, g, fresh);
    eng_wake_locked(e, NULL);
    pthread_mutex_unlock(&e->lock);
    if (rc != 0)
        vmp_err_set(err, rc, "out of memory applying the configuration");
    return rc;
}

int vmp_engine_reload(vmp_engine *e, const vmp_config *cfg, vmp_err *err)
{
    if (!e || !cfg)
        return vmp_err_set(err, VMP_EINVAL, "vmp_engine_reload: bad arguments");
    pthread_mutex_lock(&e->cfg_lock);
    pthread_mutex_lock(&e->lock);
    const vmp_config *old_base = e->opts.config;
    /* a configuration with a live generation is handed back when that
     * generation retires; one without (a derived copy was in force) now */
    bool had_gen = cfg_in_use(e, old_base, NULL);
    e->opts.config = cfg;
    /* runtime overrides are re-read by the next passes */
    for (size_t i = 0; i < e->npools; i++)
        e->pools[i]->slow_due = true;
    pthread_mutex_unlock(&e->lock);
    int rc = eng_overrides_apply_locked(e, true, err);
    pthread_mutex_lock(&e->lock);
    if (rc != 0)
        e->opts.config = old_base;
    bool retire_old = rc == 0 && old_base != cfg && !had_gen;
    gens_retire(e);
    pthread_mutex_unlock(&e->lock);
    pthread_mutex_unlock(&e->cfg_lock);
    if (rc != 0)
        return rc;
    if (retire_old && e->opts.config_retired)
        e->opts.config_retired(old_base, e->opts.config_retired_ud);
    if (e->started) {
        vmp_err perr = {0};
        if (eng_publish_pools(e, e->store, cfg, &perr) != 0)
            vmp_log(VMP_LOG_WARN, ENG_SUBSYS, "reload: publishing pools: %s", perr.msg);
    }
    vmp_log(VMP_LOG_INFO, ENG_SUBSYS, "configuration reloaded (%zu pools)", cfg->n_pools);
    return 0;
}

void vmp_engine_wake(vmp_engine *e, const char *pool)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    eng_pool *p = pool ? eng_pool_find(e, pool) : NULL;
    if (!pool || p)
        eng_wake_locked(e, p);
    pthread_mutex_unlock(&e->lock);
}

/* ---- queries ------------------------------------------------------------------ */

const char *vmp_engine_owner(const vmp_engine *e) { return e ? e->owner : NULL; }

bool vmp_engine_pool_leased(vmp_engine *e, const char *pool)
{
    if (!e || !pool)
        return false;
    pthread_mutex_lock(&e->lock);
    eng_pool *p = eng_pool_find(e, pool);
    bool held = p && p->leased;
    pthread_mutex_unlock(&e->lock);
    return held;
}

vmp_provider *vmp_engine_provider(vmp_engine *e, const char *name)
{
    if (!e || !name)
        return NULL;
    pthread_mutex_lock(&e->lock);
    eng_prov *pv = prov_find(e, name);
    vmp_provider *p = pv ? pv->p : NULL;
    pthread_mutex_unlock(&e->lock);
    return p;
}

void vmp_engine_status_get(vmp_engine *e, vmp_engine_status *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    out->clones = e->clones;
    out->ondemand_clones = e->od_clones;
    out->migrations = e->migrations;
    out->tasks_running = e->running;
    out->tasks_queued = e->queued;
    out->passes = e->passes;
    for (size_t i = 0; i < e->npools; i++) {
        if (!e->pools[i]->configured)
            continue;
        out->pools++;
        if (e->pools[i]->leased)
            out->pools_leased++;
    }
    pthread_mutex_unlock(&e->lock);
}

const char *vmp_engine_event_name(vmp_engine_event_kind k)
{
    switch (k) {
    case VMP_ENGINE_EV_CLONE_DONE:
        return "clone_done";
    case VMP_ENGINE_EV_CLONE_FAILED:
        return "clone_failed";
    case VMP_ENGINE_EV_READY:
        return "ready";
    case VMP_ENGINE_EV_CHECKOUT:
        return "checkout";
    case VMP_ENGINE_EV_RETURN:
        return "return";
    case VMP_ENGINE_EV_DESTROY:
        return "destroy";
    }
    return "unknown";
}

/* ---- publishing pools (§4.1 step 5) ------------------------------------------- */

static void node_text(const vmp_cfg_node *n, vmp_buf *b)
{
    switch (vmp_cfg_kind_of(n)) {
    case VMP_CFG_SCALAR:
        vmp_buf_puts(b, vmp_cfg_scalar(n));
        break;
    case VMP_CFG_SEQ:
        for (size_t i = 0; i < vmp_cfg_len(n); i++) {
            if (i)
                vmp_buf_puts(b, ",");
            node_text(vmp_cfg_at(n, i), b);
        }
        break;
    case VMP_CFG_MAP:
        for (size_t i = 0; i < vmp_cfg_len(n); i++) {
            vmp_buf_printf(b, "%s%s=", i ? "," : "", vmp_cfg_key_at(n, i));
            node_text(vmp_cfg_at(n, i), b);
        }
        break;
    default:
        break;
    }
}

int eng_publish_pools(vmp_engine *e, vmp_store *st, const vmp_config *cfg, vmp_err *err)
{
    int rc = 0;
    size_t n = cfg->n_pools;
    vmp_strlist *kvs = calloc(n ? n : 1, sizeof *kvs);
    vmp_store_pool_pub *pubs = calloc(n ? n : 1, sizeof *pubs);
    if (!kvs || !pubs) {
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const vmp_pool_cfg *pc = &cfg->pools[i];
        const vmp_cfg_node *node = pc->node;
        bool has_name = false, has_domain = false;
        for (size_t k = 0; k < vmp_cfg_len(node); k++) {
            const char *key = vmp_cfg_key_at(node, k);
            vmp_buf b = VMP_BUF_INIT;
            node_text(vmp_cfg_at(node, k), &b);
            if (b.oom || vmp_strlist_push(&kvs[i], key) != 0 ||
                vmp_strlist_push(&kvs[i], vmp_buf_str(&b)) != 0) {
                vmp_buf_free(&b);
                rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
                goto out;
            }
            vmp_buf_free(&b);
            if (strcmp(key, "name") == 0)
                has_name = true;
            if (strcmp(key, "domain") == 0)
                has_domain = true;
        }
        if (!has_name && (vmp_strlist_push(&kvs[i], "name") || vmp_strlist_push(&kvs[i], pc->name)))
            rc = VMP_ENOMEM;
        if (!has_domain && pc->domain &&
            (vmp_strlist_push(&kvs[i], "domain") || vmp_strlist_push(&kvs[i], pc->domain)))
            rc = VMP_ENOMEM;
        if (rc != 0) {
            vmp_err_set(err, rc, "out of memory");
            goto out;
        }
        pubs[i].name = pc->name;
        pubs[i].kv = &kvs[i];
    }
    rc = vmp_store_pools_publish(st, pubs, n, err);
out:
    for (size_t i = 0; kvs && i < n; i++)
        vmp_strlist_clear(&kvs[i]);
    free(kvs);
    free(pubs);
    return rc;
}
