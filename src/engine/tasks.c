/*
 * tasks: the disk, snapshot and snapshot-revert queues (reference §4.6).
 *
 * vmpooler pops one task per queue every 5 s. vmpool drains the queues as
 * tasks arrive (a "task" event from the API wakes the drain; without events
 * it polls every 5 s), at most a bounded number per round, and runs each
 * popped task as a task on the workers. A disk or snapshot task waits for
 * its VM to be free rather than being skipped, and at most ENG_IO_LIMIT of
 * them run or wait at once; the rest stay in Redis for the next round.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "log.h"

#define ENG_IO_LIMIT 4
#define DRAIN_PER_ROUND 32

static const char *const queue_names[] = {"disk", "snapshot", "snapshot-revert"};

int eng_queues_drain(vmp_engine *e, vmp_store *st, int max, long long *started, vmp_err *err)
{
    static const vmp_store_task queues[] = {VMP_TASK_DISK, VMP_TASK_SNAPSHOT,
                                            VMP_TASK_SNAPSHOT_REVERT};
    static const eng_task_kind kinds[] = {ENG_T_DISK, ENG_T_SNAPSHOT, ENG_T_REVERT};
    long long n = 0;
    int rc = 0;
    for (size_t q = 0; q < VMP_ARRAY_LEN(queues); q++) {
        for (int i = 0; max <= 0 || i < max; i++) {
            pthread_mutex_lock(&e->lock);
            bool full = e->io_tasks >= ENG_IO_LIMIT || e->stopping;
            pthread_mutex_unlock(&e->lock);
            if (full)
                goto out;
            char *vm = NULL, *arg = NULL, *pool = NULL;
            rc = vmp_store_task_pop(st, queues[q], &vm, &arg, err);
            if (rc != 0)
                goto out;
            if (!vm)
                break;
            vmp_err gerr = {0};
            if (vmp_store_vm_get(st, vm, "template", &pool, &gerr) != 0 || !pool) {
                vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, NULL, vm,
                           "%s task: unable to determine which pool %s is a member of",
                           queue_names[q], vm);
                free(vm);
                free(arg);
                continue;
            }
            pthread_mutex_lock(&e->lock);
            eng_pool *p = eng_pool_find(e, pool);
            eng_prov *pv = p && p->configured ? p->prov : NULL;
            eng_vm *rec = pv ? eng_vmtab_add(&p->vms, vm) : NULL;
            eng_task *t = rec ? eng_task_new(e, kinds[q], p, rec, pv) : NULL;
            if (t) {
                t->arg = arg;
                arg = NULL;
                e->io_tasks++;
                eng_vm_run_when_free(e, rec, t);
                n++;
            }
            pthread_mutex_unlock(&e->lock);
            if (!t)
                vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, pool, vm,
                           "%s task dropped: no provider for pool %s", queue_names[q], pool);
            free(vm);
            free(arg);
            free(pool);
        }
    }
out:
    if (started)
        *started = n;
    return rc;
}

void eng_task_queues(vmp_engine *e, eng_task *t, vmp_store *st)
{
    vmp_err err = {0};
    long long n = 0;
    if (eng_queues_drain(e, st, DRAIN_PER_ROUND, &n, &err) != 0)
        vmp_log(VMP_LOG_WARN, ENG_SUBSYS, "task queues: %s", err.msg);
    if (n >= DRAIN_PER_ROUND) {
        /* more may be waiting: come back at once */
        pthread_mutex_lock(&e->lock);
        e->queues_wake = true;
        pthread_mutex_unlock(&e->lock);
    }
}

void eng_task_disk(vmp_engine *e, eng_task *t, vmp_store *st)
{
    const char *pool = t->pool->name, *vm = t->vm->name;
    long long gb = 0;
    if (!t->arg || vmp_parse_long(t->arg, &gb) != 0 || gb <= 0 || gb > 1000000) {
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, pool, vm, "invalid disk size '%s'",
                   t->arg ? t->arg : "");
        return;
    }
    vmp_err err = {0};
    double t0 = vmp_monotonic();
    int rc = vmp_provider_create_disk(t->prov->p, pool, vm, (int)gb, &err);
    double secs = vmp_monotonic() - t0;
    if (rc != 0) {
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, pool, vm, "failed to add a %lld GB disk: %s", gb,
                   err.msg);
        return;
    }
    if (vmp_store_vm_disk_add(st, vm, gb, &err) != 0)
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, pool, vm, "recording the disk: %s", err.msg);
    vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, pool, vm, "added a %lld GB disk in %.2f seconds", gb,
               secs);
}

void eng_task_snapshot(vmp_engine *e, eng_task *t, vmp_store *st)
{
    const char *pool = t->pool->name, *vm = t->vm->name, *snap = t->arg ? t->arg : "";
    vmp_err err = {0};
    double t0 = vmp_monotonic();
    if (t->kind == ENG_T_SNAPSHOT) {
        int rc = vmp_provider_create_snapshot(t->prov->p, pool, vm, snap, &err);
        double secs = vmp_monotonic() - t0;
        if (rc != 0) {
            vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, pool, vm, "failed to snapshot '%s': %s", snap,
                       err.msg);
            return;
        }
        if (vmp_store_vm_snapshot_set(st, vm, snap, eng_now(e), &err) != 0)
            vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, pool, vm, "recording the snapshot: %s", err.msg);
        vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, pool, vm, "snapshot '%s' created in %.2f seconds",
                   snap, secs);
        return;
    }
    int rc = vmp_provider_revert_snapshot(t->prov->p, pool, vm, snap, &err);
    double secs = vmp_monotonic() - t0;
    if (rc != 0)
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, pool, vm, "failed to revert to snapshot '%s': %s",
                   snap, err.msg);
    else
        vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, pool, vm, "reverted to snapshot '%s' in %.2f seconds",
                   snap, secs);
}
