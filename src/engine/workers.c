/*
 * workers: the bounded pool of worker threads and the task queues.
 *
 * Two FIFO queues: high (pool passes, clones, destroys, the global queue and
 * on-demand steps) and low (per-VM checks, migrations, disk and snapshot
 * work). A worker takes from high first, so a pass is never stuck behind a
 * long list of checks. Each worker opens its own store connection.
 *
 * A task holds a reference on the configuration generation it was made
 * under, on its provider instance, and (when it concerns one VM) that VM's
 * busy flag; finishing or dropping the task releases all three.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine_internal.h"
#include "log.h"

eng_task *eng_task_new(vmp_engine *e, eng_task_kind kind, eng_pool *pool, eng_vm *vm,
                       eng_prov *prov)
{
    eng_task *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->kind = kind;
    t->pool = pool;
    t->vm = vm;
    t->gen = eng_gen_ref(e);
    t->prov = prov;
    if (prov)
        prov->refs++;
    switch (kind) {
    case ENG_T_PASS:
    case ENG_T_CLONE:
    case ENG_T_DESTROY:
    case ENG_T_QUEUES:
    case ENG_T_ONDEMAND:
    case ENG_T_PENDING:
        t->high = true;
        break;
    default:
        t->high = false;
    }
    return t;
}

static void task_release(vmp_engine *e, eng_task *t);

void eng_task_push(vmp_engine *e, eng_task *t)
{
    t->next = NULL;
    if (e->stopping) {
        /* stopping: nothing new starts */
        task_release(e, t);
        return;
    }
    if (t->high) {
        if (e->q_high_tail)
            e->q_high_tail->next = t;
        else
            e->q_high = t;
        e->q_high_tail = t;
    } else {
        if (e->q_low_tail)
            e->q_low_tail->next = t;
        else
            e->q_low = t;
        e->q_low_tail = t;
    }
    e->queued++;
    /* wake a sleeping worker only when the ones already woken are fewer
     * than the queued tasks: a burst of short tasks is then taken by the
     * workers that are running, without a wake-up each */
    if (e->idle_workers > e->wakeups && e->wakeups < e->queued) {
        e->wakeups++;
        pthread_cond_signal(&e->work_cond);
    }
}

static eng_task *pop(vmp_engine *e)
{
    eng_task *t = e->q_high;
    if (t) {
        e->q_high = t->next;
        if (!e->q_high)
            e->q_high_tail = NULL;
    } else if ((t = e->q_low)) {
        e->q_low = t->next;
        if (!e->q_low)
            e->q_low_tail = NULL;
    }
    if (t) {
        t->next = NULL;
        e->queued--;
    }
    return t;
}

/* Releases what a finished or dropped task holds and the counters its kind
 * took (e->lock held). */
static void task_release(vmp_engine *e, eng_task *t)
{
    eng_pool *p = t->pool;
    switch (t->kind) {
    case ENG_T_PASS:
        if (p)
            p->pass_busy = false;
        break;
    case ENG_T_CLONE:
        /* a clone dropped before it ran never recorded its VM */
        if (t->vm == NULL && p && p->unrecorded > 0 && t->n == 0)
            p->unrecorded--;
        if (t->ondemand) {
            if (e->od_clones > 0)
                e->od_clones--;
        } else if (e->clones > 0) {
            e->clones--;
        }
        e->mirror_delta[t->ondemand ? 1 : 0]--;
        if (p && p->clones > 0)
            p->clones--;
        eng_dispatch_clones(e);
        break;
    case ENG_T_MIGRATE:
        if (e->migrations > 0)
            e->migrations--;
        break;
    case ENG_T_DISK:
    case ENG_T_SNAPSHOT:
    case ENG_T_REVERT:
        if (e->io_tasks > 0)
            e->io_tasks--;
        break;
    case ENG_T_QUEUES:
        e->queues_busy = false;
        break;
    case ENG_T_ONDEMAND:
        e->od_busy = false;
        break;
    default:
        break;
    }
    if (t->vm && p)
        eng_vm_unlock(e, p, t->vm);
    t->vm = NULL;
    for (size_t i = 0; p && i < t->nbatch; i++)
        eng_vm_unlock(e, p, t->batch[i]);
    free(t->batch);
    if (t->prov)
        eng_prov_unref(e, t->prov);
    if (t->gen)
        eng_gen_unref(e, t->gen);
    free(t->arg);
    free(t->arg2);
    free(t);
}

void eng_task_drop(vmp_engine *e, eng_task *t)
{
    if (t)
        task_release(e, t);
}

static void drop_waiters(eng_vm *rec, void *ud)
{
    vmp_engine *e = ud;
    while (rec->waiters) {
        eng_task *w = rec->waiters;
        rec->waiters = w->next;
        w->vm = NULL; /* the holder still owns the busy flag */
        task_release(e, w);
    }
}

void eng_queue_flush(vmp_engine *e)
{
    eng_task *t;
    while ((t = pop(e)))
        task_release(e, t);
    for (size_t i = 0; i < e->npools; i++)
        eng_vmtab_each(&e->pools[i]->vms, drop_waiters, e);
}

static void run_task(vmp_engine *e, eng_task *t, vmp_store *st)
{
    switch (t->kind) {
    case ENG_T_PASS: {
        vmp_err err = {0};
        int rc = eng_pass_run(e, t->pool, t->gen, t->prov, st, NULL, &err);
        if (rc != 0 && rc != VMP_EAGAIN)
            vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, t->pool->name, NULL, "pass failed: %s", err.msg);
        break;
    }
    case ENG_T_CLONE:
        eng_task_clone(e, t, st);
        break;
    case ENG_T_PENDING:
        eng_task_pending(e, t, st);
        break;
    case ENG_T_READY:
        eng_task_ready(e, t, st);
        break;
    case ENG_T_RUNNING:
        eng_task_running(e, t, st);
        break;
    case ENG_T_DESTROY:
        eng_task_destroy(e, t, st);
        break;
    case ENG_T_MIGRATE:
        eng_task_migrate(e, t, st);
        break;
    case ENG_T_DISK:
        eng_task_disk(e, t, st);
        break;
    case ENG_T_SNAPSHOT:
    case ENG_T_REVERT:
        eng_task_snapshot(e, t, st);
        break;
    case ENG_T_QUEUES:
        eng_task_queues(e, t, st);
        break;
    case ENG_T_ONDEMAND:
        eng_task_ondemand(e, t, st);
        break;
    case ENG_T_PURGE:
        eng_task_purge(e, t, st);
        break;
    default:
        break;
    }
}

static void *worker_main(void *arg)
{
    vmp_engine *e = arg;
    vmp_store *st = NULL;
    vmp_err err = {0};
    if (vmp_store_open(e->opts.store, &st, &err) != 0) {
        /* keep going: the store reconnects on use; without a handle every
         * task would fail, so retry opening before each task */
        vmp_log(VMP_LOG_WARN, ENG_SUBSYS, "worker: cannot connect to redis yet: %s", err.msg);
    }
    pthread_mutex_lock(&e->lock);
    for (;;) {
        while (!e->stopping && !e->q_high && !e->q_low) {
            e->idle_workers++;
            pthread_cond_wait(&e->work_cond, &e->lock);
            e->idle_workers--;
            if (e->wakeups > 0)
                e->wakeups--;
        }
        if (e->stopping)
            break;
        eng_task *t = pop(e);
        if (!t)
            continue;
        e->running++;
        pthread_mutex_unlock(&e->lock);
        if (!st) {
            vmp_err_clear(&err);
            if (vmp_store_open(e->opts.store, &st, &err) != 0)
                vmp_log(VMP_LOG_WARN, ENG_SUBSYS, "worker: redis: %s", err.msg);
        }
        if (st)
            run_task(e, t, st);
        pthread_mutex_lock(&e->lock);
        e->running--;
        bool sched = t->kind == ENG_T_PASS || t->kind == ENG_T_QUEUES || t->kind == ENG_T_ONDEMAND;
        task_release(e, t);
        pthread_cond_broadcast(&e->idle_cond);
        if (sched)
            pthread_cond_signal(&e->sched_cond);
    }
    pthread_mutex_unlock(&e->lock);
    vmp_store_free(st);
    return NULL;
}

int eng_workers_start(vmp_engine *e, vmp_err *err)
{
    int n = e->opts.workers;
    if (n <= 0) {
        long long want =
            e->task_limit + (e->migration_limit > 0 ? e->migration_limit : 0) + e->od_limit + 4;
        n = want > 256 ? 256 : (int)want;
    }
    if (n < 2)
        n = 2;
    e->threads = calloc((size_t)n, sizeof *e->threads);
    if (!e->threads)
        return vmp_err_set(err, VMP_ENOMEM, "out of memory starting workers");
    e->nthreads = n;
    for (int i = 0; i < n; i++) {
        int rc = pthread_create(&e->threads[i], NULL, worker_main, e);
        if (rc != 0) {
            vmp_err_set(err, VMP_EIO, "cannot start worker thread: %s", strerror(rc));
            pthread_mutex_lock(&e->lock);
            e->stopping = true;
            pthread_cond_broadcast(&e->work_cond);
            pthread_mutex_unlock(&e->lock);
            for (int j = 0; j < i; j++)
                pthread_join(e->threads[j], NULL);
            e->nthreads_started = 0;
            return VMP_EIO;
        }
        e->nthreads_started = i + 1;
    }
    return 0;
}

static void deadline_in(struct timespec *ts, double seconds)
{
    clock_gettime(CLOCK_REALTIME, ts);
    if (seconds < 0)
        seconds = 0;
    long long ns = ts->tv_nsec + (long long)((seconds - (long long)seconds) * 1e9);
    ts->tv_sec += (time_t)seconds + ns / 1000000000LL;
    ts->tv_nsec = ns % 1000000000LL;
}

int eng_workers_stop(vmp_engine *e, double timeout)
{
    struct timespec ts;
    deadline_in(&ts, timeout);
    int rc = 0;
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    eng_queue_flush(e);
    pthread_cond_broadcast(&e->work_cond);
    while (e->running > 0) {
        if (pthread_cond_timedwait(&e->idle_cond, &e->lock, &ts) == ETIMEDOUT) {
            if (e->running > 0)
                rc = VMP_ETIMEDOUT;
            break;
        }
    }
    eng_queue_flush(e);
    pthread_mutex_unlock(&e->lock);
    if (rc == 0) {
        for (int i = 0; i < e->nthreads_started; i++)
            pthread_join(e->threads[i], NULL);
    } else {
        /* a provider call is stuck: leave those workers behind */
        for (int i = 0; i < e->nthreads_started; i++)
            pthread_detach(e->threads[i]);
        e->abandoned = true;
    }
    e->nthreads_started = 0;
    return rc;
}

void eng_mirror_flush(vmp_engine *e, vmp_store *st)
{
    /* the counts changed, or the heartbeat is due (manual mode has no
     * scheduler to renew it) */
    pthread_mutex_lock(&e->lock);
    bool dirty = e->mirror_delta[0] || e->mirror_delta[1];
    pthread_mutex_unlock(&e->lock);
    pthread_mutex_lock(&e->beat_lock);
    double last = e->last_beat;
    pthread_mutex_unlock(&e->beat_lock);
    if (dirty || vmp_monotonic() - last >= (double)e->lease_ttl_ms / 3000.0)
        eng_managers_sync(e, st, 0);
}

int vmp_engine_wait_idle(vmp_engine *e, double timeout)
{
    if (!e)
        return VMP_EINVAL;
    struct timespec ts;
    deadline_in(&ts, timeout);
    int rc = 0;
    pthread_mutex_lock(&e->lock);
    while (e->queued > 0 || e->running > 0) {
        if (pthread_cond_timedwait(&e->idle_cond, &e->lock, &ts) == ETIMEDOUT) {
            if (e->queued > 0 || e->running > 0)
                rc = VMP_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&e->lock);
    /* driven by hand: the caller's thread owns e->store */
    if (e->opts.manual && e->started && !e->stopped)
        eng_mirror_flush(e, e->store);
    return rc;
}
