/*
 * scheduler: the thread that decides what runs when, the event subscriber,
 * pool leases, clone dispatch, and the calls that drive the engine by hand.
 *
 * The scheduler never talks to a provider. Each round it renews leases
 * when due, polls Redis cheaply for changes made by API processes that do
 * not publish events (one pipelined SCARD of every pool and one HGETALL of
 * the template overrides every check_loop_delay_min seconds), and queues a
 * pass for every pool that was woken or whose adaptive delay is over, the
 * disk/snapshot queue drain and the on-demand provisioner. It then sleeps
 * until the earliest deadline or until woken.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine_internal.h"
#include "log.h"

#define OD_LEASE "@ondemand"
#define QUEUES_POLL 5.0

void eng_wake_locked(vmp_engine *e, eng_pool *pool)
{
    if (pool) {
        pool->wake = true;
    } else {
        for (size_t i = 0; i < e->npools; i++)
            e->pools[i]->wake = true;
    }
    pthread_cond_signal(&e->sched_cond);
}

void eng_dispatch_clones(vmp_engine *e)
{
    if (e->stopping || !e->npools)
        return;
    size_t n = e->npools;
    bool progress = true;
    while (e->clones < e->task_limit && progress) {
        progress = false;
        for (size_t k = 0; k < n && e->clones < e->task_limit; k++) {
            eng_pool *p = e->pools[(e->rr + k) % n];
            if (p->deficit <= 0 || !p->configured || !p->leased || !p->prov)
                continue;
            eng_task *t = eng_clone_task_new(e, p, false);
            if (!t)
                return;
            p->deficit--;
            eng_task_push(e, t);
            progress = true;
        }
        e->rr = (e->rr + 1) % n;
    }
}

/* ---- leases ------------------------------------------------------------------ */

static void lease_one(vmp_engine *e, vmp_store *st, const char *name, bool was, bool *held)
{
    vmp_err err = {0};
    bool h = false;
    int rc = was ? vmp_store_lease_renew(st, name, e->owner, e->lease_ttl_ms, &h, &err)
                 : vmp_store_lease_acquire(st, name, e->owner, e->lease_ttl_ms, &h, &err);
    if (rc == 0 && was && !h)
        rc = vmp_store_lease_acquire(st, name, e->owner, e->lease_ttl_ms, &h, &err);
    if (rc != 0) {
        /* Redis unreachable: keep what we believed; the lease will lapse
         * on its own if we really lost it */
        *held = was;
        return;
    }
    *held = h;
}

void eng_leases_renew(vmp_engine *e, vmp_store *st)
{
    vmp_strlist names = VMP_STRLIST_INIT;
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->npools; i++)
        if (e->pools[i]->configured)
            vmp_strlist_push(&names, e->pools[i]->name);
    pthread_mutex_unlock(&e->lock);
    for (size_t i = 0; i < names.n; i++) {
        pthread_mutex_lock(&e->lock);
        eng_pool *p = eng_pool_find(e, names.v[i]);
        bool was = p && p->leased;
        pthread_mutex_unlock(&e->lock);
        if (!p)
            continue;
        bool held = false;
        lease_one(e, st, names.v[i], was, &held);
        pthread_mutex_lock(&e->lock);
        if (held && !p->leased) {
            p->leased = true;
            p->first_pass_done = false; /* reconcile as at start-up */
            eng_wake_locked(e, p);
            vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, NULL, "lease acquired");
        } else if (!held && p->leased) {
            p->leased = false;
            p->deficit = 0;
            vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, NULL,
                       "lease lost: another manager works this pool now");
        }
        pthread_mutex_unlock(&e->lock);
    }
    vmp_strlist_clear(&names);
    bool held = false;
    lease_one(e, st, OD_LEASE, e->od_leased, &held);
    pthread_mutex_lock(&e->lock);
    if (held && !e->od_leased)
        e->od_wake = true;
    e->od_leased = held;
    pthread_mutex_unlock(&e->lock);
}

void eng_leases_release(vmp_engine *e, vmp_store *st)
{
    vmp_strlist names = VMP_STRLIST_INIT;
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->npools; i++) {
        if (e->pools[i]->leased)
            vmp_strlist_push(&names, e->pools[i]->name);
        e->pools[i]->leased = false;
    }
    bool od = e->od_leased;
    e->od_leased = false;
    pthread_mutex_unlock(&e->lock);
    vmp_err err = {0};
    for (size_t i = 0; i < names.n; i++)
        vmp_store_lease_release(st, names.v[i], e->owner, NULL, &err);
    if (od)
        vmp_store_lease_release(st, OD_LEASE, e->owner, NULL, &err);
    vmp_strlist_clear(&names);
}

/* ---- polling for changes from API processes that publish no events ------------ */

static void poll_changes(vmp_engine *e, vmp_store *st)
{
    vmp_strlist names = VMP_STRLIST_INIT, over = VMP_STRLIST_INIT;
    vmp_store_pool_counts *counts = NULL;
    vmp_err err = {0};
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->npools; i++)
        if (e->pools[i]->configured && e->pools[i]->leased)
            vmp_strlist_push(&names, e->pools[i]->name);
    pthread_mutex_unlock(&e->lock);
    if (!names.n)
        goto out;
    counts = calloc(names.n, sizeof *counts);
    if (!counts)
        goto out;
    if (vmp_store_pools_counts_get(st, (const char *const *)names.v, names.n, counts, &err) != 0)
        goto out;
    vmp_store_override_all(st, VMP_OVERRIDE_TEMPLATE, &over, &err);
    long long nreq = 0;
    pthread_mutex_lock(&e->lock);
    bool od = e->od_leased;
    pthread_mutex_unlock(&e->lock);
    if (od)
        vmp_store_od_zcard(st, VMP_OD_REQUEST, &nreq, &err);
    pthread_mutex_lock(&e->lock);
    if (nreq > 0)
        e->od_wake = true;
    for (size_t i = 0; i < names.n; i++) {
        eng_pool *p = eng_pool_find(e, names.v[i]);
        if (!p)
            continue;
        long long r = counts[i].n[VMP_VM_READY];
        if (p->polled_ready >= 0 && r != p->polled_ready)
            p->wake = true;
        if (counts[i].n[VMP_VM_MIGRATING] > 0)
            p->wake = true; /* a checkout to evaluate */
        p->polled_ready = r;
        const char *t = vmp_store_kv_get(&over, p->name);
        const vmp_pool_cfg *bc = vmp_config_pool(e->opts.config, p->name);
        const char *inforce = p->tmpl ? p->tmpl : (bc ? bc->template_path : NULL);
        if (t && (!inforce || strcmp(t, inforce) != 0)) {
            p->wake = true;
            p->slow_due = true;
        }
    }
    pthread_mutex_unlock(&e->lock);
out:
    free(counts);
    vmp_strlist_clear(&names);
    vmp_strlist_clear(&over);
}

/* ---- the scheduler thread --------------------------------------------------------- */

static double global_min_delay(vmp_engine *e)
{
    double d = e->cur->cfg->global.check_loop_delay_min;
    return d > 0 ? d : 5;
}

/* One round (e->lock held); returns the earliest deadline. */
static double sched_round(vmp_engine *e, double now)
{
    double next = now + 1.0;
    for (size_t i = 0; i < e->npools; i++) {
        eng_pool *p = e->pools[i];
        if (!p->configured || !p->leased || !p->prov)
            continue;
        if (!p->pass_busy && (p->wake || now >= p->next_due)) {
            eng_task *t = eng_task_new(e, ENG_T_PASS, p, NULL, p->prov);
            if (t) {
                p->pass_busy = true;
                p->wake = false;
                eng_task_push(e, t);
            }
        }
        if (!p->pass_busy && p->next_due < next)
            next = p->next_due;
    }
    if (!e->queues_busy && (e->queues_wake || now >= e->queues_due)) {
        eng_task *t = eng_task_new(e, ENG_T_QUEUES, NULL, NULL, NULL);
        if (t) {
            e->queues_busy = true;
            e->queues_wake = false;
            e->queues_due = now + QUEUES_POLL;
            eng_task_push(e, t);
        }
    }
    if (!e->queues_busy && e->queues_due < next)
        next = e->queues_due;
    if (e->od_leased && !e->od_busy && (e->od_wake || now >= e->od_due)) {
        eng_task *t = eng_task_new(e, ENG_T_ONDEMAND, NULL, NULL, NULL);
        if (t) {
            e->od_busy = true;
            e->od_wake = false;
            eng_task_push(e, t);
        }
    }
    if (e->od_leased && !e->od_busy && e->od_due < next)
        next = e->od_due;
    if (e->lease_due < next)
        next = e->lease_due;
    if (e->poll_due < next)
        next = e->poll_due;
    return next;
}

static void *sched_main(void *arg)
{
    vmp_engine *e = arg;
    vmp_store *st = e->sched_store;
    pthread_mutex_lock(&e->lock);
    while (!e->stopping) {
        double now = eng_now(e);
        if (now >= e->lease_due) {
            e->lease_due = now + (double)e->lease_ttl_ms / 3000.0;
            pthread_mutex_unlock(&e->lock);
            eng_managers_sync(e, st, 0);
            eng_leases_renew(e, st);
            pthread_mutex_lock(&e->lock);
            continue;
        }
        if (now >= e->poll_due) {
            e->poll_due = now + global_min_delay(e);
            pthread_mutex_unlock(&e->lock);
            poll_changes(e, st);
            pthread_mutex_lock(&e->lock);
            continue;
        }
        if (e->mirror_delta[0] || e->mirror_delta[1]) {
            pthread_mutex_unlock(&e->lock);
            eng_mirror_flush(e, st);
            pthread_mutex_lock(&e->lock);
        }
        double next = sched_round(e, now);
        double wait = next - eng_now(e);
        if (wait > 1.0)
            wait = 1.0;
        if (wait <= 0)
            continue;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long ns = ts.tv_nsec + (long long)(wait * 1e9);
        ts.tv_sec += ns / 1000000000LL;
        ts.tv_nsec = ns % 1000000000LL;
        pthread_cond_timedwait(&e->sched_cond, &e->lock, &ts);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

/* ---- the event subscriber ----------------------------------------------------------- */

static void on_event(vmp_engine *e, const char *type, const char *pool)
{
    bool ret = false;
    pthread_mutex_lock(&e->lock);
    eng_pool *p = pool && pool[0] ? eng_pool_find(e, pool) : NULL;
    if (strcmp(type, "task") == 0) {
        e->queues_wake = true;
        pthread_cond_signal(&e->sched_cond);
    } else if (strcmp(type, "ondemand") == 0) {
        e->od_wake = true;
        pthread_cond_signal(&e->sched_cond);
    } else if (strcmp(type, "config") == 0 || strcmp(type, "reset") == 0) {
        for (size_t i = 0; i < e->npools; i++)
            if (!p || e->pools[i] == p)
                e->pools[i]->slow_due = true;
        eng_wake_locked(e, p);
    } else if (p) {
        eng_wake_locked(e, p);
        ret = strcmp(type, "return") == 0;
    } else if (!pool || !pool[0]) {
        eng_wake_locked(e, NULL);
    }
    pthread_mutex_unlock(&e->lock);
    if (ret)
        eng_event(e, VMP_ENGINE_EV_RETURN, pool, NULL, 0, NULL);
}

static void *sub_main(void *arg)
{
    vmp_engine *e = arg;
    vmp_store_sub *sub = NULL;
    bool lost = false;
    for (;;) {
        pthread_mutex_lock(&e->lock);
        bool stop = e->stopping;
        pthread_mutex_unlock(&e->lock);
        if (stop)
            break;
        vmp_err err = {0};
        if (!sub && vmp_store_sub_open(e->opts.store, &sub, &err) != 0) {
            if (!lost)
                vmp_log(VMP_LOG_WARN, ENG_SUBSYS, "event channel: %s", err.msg);
            lost = true;
            struct timespec ts = {0, 500000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        char *type = NULL, *pool = NULL;
        int rc = vmp_store_sub_wait(sub, 0.5, &type, &pool, &err);
        if (rc == 0) {
            if (lost) {
                /* events were missed while away: look at everything */
                pthread_mutex_lock(&e->lock);
                eng_wake_locked(e, NULL);
                pthread_mutex_unlock(&e->lock);
                lost = false;
            }
            on_event(e, type, pool);
        } else if (rc == VMP_EREDIS) {
            lost = true;
            struct timespec ts = {0, 200000000L};
            nanosleep(&ts, NULL);
        }
        free(type);
        free(pool);
    }
    vmp_store_sub_free(sub);
    return NULL;
}

int eng_scheduler_start(vmp_engine *e, vmp_err *err)
{
    int rc = vmp_store_open(e->opts.store, &e->sched_store, err);
    if (rc != 0)
        return rc;
    double now = eng_now(e);
    e->lease_due = now + (double)e->lease_ttl_ms / 3000.0;
    e->poll_due = now + global_min_delay(e);
    e->queues_due = now;
    e->od_due = now;
    if (pthread_create(&e->sched_thread, NULL, sched_main, e) != 0)
        return vmp_err_set(err, VMP_EIO, "cannot start the scheduler thread");
    e->sched_started = true;
    if (pthread_create(&e->sub_thread, NULL, sub_main, e) != 0) {
        eng_scheduler_stop(e);
        return vmp_err_set(err, VMP_EIO, "cannot start the event thread");
    }
    e->sub_started = true;
    return 0;
}

void eng_scheduler_stop(vmp_engine *e)
{
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    pthread_cond_broadcast(&e->sched_cond);
    pthread_cond_broadcast(&e->work_cond);
    pthread_mutex_unlock(&e->lock);
    if (e->sched_started)
        pthread_join(e->sched_thread, NULL);
    if (e->sub_started)
        pthread_join(e->sub_thread, NULL);
    e->sched_started = e->sub_started = false;
}

/* ---- driving by hand ------------------------------------------------------------------ */

int vmp_engine_run_pass(vmp_engine *e, const char *pool, vmp_engine_pass_result *res, vmp_err *err)
{
    if (res)
        memset(res, 0, sizeof *res);
    if (!e || !pool)
        return vmp_err_set(err, VMP_EINVAL, "vmp_engine_run_pass: bad arguments");
    if (!e->started || e->stopping)
        return vmp_err_set(err, VMP_EINVAL, "the engine is not running");
    pthread_mutex_lock(&e->lock);
    eng_pool *p = eng_pool_find(e, pool);
    if (!p || !p->configured || !p->prov) {
        pthread_mutex_unlock(&e->lock);
        return vmp_err_set(err, VMP_ENOENT, "no pool named %s", pool);
    }
    if (p->pass_busy) {
        pthread_mutex_unlock(&e->lock);
        return vmp_err_set(err, VMP_EAGAIN, "a pass of %s is running", pool);
    }
    p->pass_busy = true;
    bool was = p->leased;
    pthread_mutex_unlock(&e->lock);

    bool held = false;
    lease_one(e, e->store, pool, was, &held);
    pthread_mutex_lock(&e->lock);
    if (held && !was)
        p->first_pass_done = false; /* newly held: reconcile as at start-up */
    p->leased = held;
    eng_gen *g = held ? eng_gen_ref(e) : NULL;
    eng_prov *pv = held ? p->prov : NULL;
    if (pv)
        pv->refs++;
    pthread_mutex_unlock(&e->lock);

    int rc;
    if (!held)
        rc = vmp_err_set(err, VMP_EAGAIN, "pool %s is leased by another manager", pool);
    else
        rc = eng_pass_run(e, p, g, pv, e->store, res, err);
    eng_mirror_flush(e, e->store);

    pthread_mutex_lock(&e->lock);
    p->pass_busy = false;
    p->wake = false;
    if (pv)
        eng_prov_unref(e, pv);
    if (g)
        eng_gen_unref(e, g);
    pthread_mutex_unlock(&e->lock);
    return rc;
}

int vmp_engine_run_queues(vmp_engine *e, int max, long long *started, vmp_err *err)
{
    if (started)
        *started = 0;
    if (!e || !e->started || e->stopping)
        return vmp_err_set(err, VMP_EINVAL, "the engine is not running");
    return eng_queues_drain(e, e->store, max, started, err);
}

int vmp_engine_run_ondemand(vmp_engine *e, vmp_err *err)
{
    if (!e || !e->started || e->stopping)
        return vmp_err_set(err, VMP_EINVAL, "the engine is not running");
    bool held = false;
    lease_one(e, e->store, OD_LEASE, e->od_leased, &held);
    pthread_mutex_lock(&e->lock);
    e->od_leased = held;
    pthread_mutex_unlock(&e->lock);
    if (!held)
        return vmp_err_set(err, VMP_EAGAIN, "the on-demand provisioner runs in another manager");
    int rc = eng_ondemand_step(e, e->store, NULL, err);
    eng_mirror_flush(e, e->store);
    return rc;
}
