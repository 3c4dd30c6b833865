/*
 * pass: one check pass of a pool, in vmpooler's order (reference §4.3):
 * inventory, running, ready, pending, completed, discovered and migrating
 * VMs, template evaluation, size and clone-target overrides, reset and undo
 * requests, repopulation, excess removal.
 *
 * Cost: the pass reads the provider's inventory and every set of the pool
 * in one pipelined round trip; per-VM work is only dispatched when due (a
 * ready VM every vm_checktime, a running VM at its lifetime's end or every
 * vm_checktime), as tasks on the workers. Overrides and requests are read
 * at most every check_loop_delay_min seconds (at once after a config
 * event), the set sizes once more for repopulation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "log.h"

#define ENG_READY_BATCH 64

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool in_inventory(const vmp_strlist *inv, const char *name)
{
    return inv->n && bsearch(&name, inv->v, inv->n, sizeof *inv->v, cmp_str) != NULL;
}

/* Work collected under the lock, done after it. */
typedef struct pass_work {
    vmp_strlist running_gone, ready_gone, pending_gone, completed_gone, migrating_gone;
} pass_work;

static void work_clear(pass_work *w)
{
    vmp_strlist_clear(&w->running_gone);
    vmp_strlist_clear(&w->ready_gone);
    vmp_strlist_clear(&w->pending_gone);
    vmp_strlist_clear(&w->completed_gone);
    vmp_strlist_clear(&w->migrating_gone);
}

static void dispatch(vmp_engine *e, eng_pool *p, eng_task_kind kind, eng_vm *rec, eng_prov *pv,
                     long long *count)
{
    if (!eng_vm_trylock(rec))
        return;
    eng_task *t = eng_task_new(e, kind, p, rec, pv);
    if (!t) {
        rec->busy = false;
        return;
    }
    if (kind == ENG_T_MIGRATE)
        e->migrations++;
    eng_task_push(e, t);
    if (count)
        (*count)++;
}

/* Ready checks go out in batches: one task checks several VMs and records
 * their check times in one round trip. Batches are sized so the work still
 * spreads over every worker (a provider's readiness probe may be slow).
 * The VMs are already held. Returns how many were dispatched. */
static long long dispatch_ready(vmp_engine *e, eng_pool *p, eng_prov *pv, eng_vm **recs, size_t n)
{
    size_t workers = e->nthreads > 0 ? (size_t)e->nthreads : 1;
    size_t per = n / workers;
    if (per < 1)
        per = 1;
    if (per > ENG_READY_BATCH)
        per = ENG_READY_BATCH;
    long long done = 0;
    for (size_t i = 0; i < n; i += per) {
        size_t k = n - i < per ? n - i : per;
        eng_task *t = eng_task_new(e, ENG_T_READY, p, NULL, pv);
        eng_vm **b = t ? malloc(k * sizeof *b) : NULL;
        if (!b) {
            eng_task_drop(e, t);
            for (size_t j = i; j < n; j++)
                recs[j]->busy = false;
            break;
        }
        memcpy(b, recs + i, k * sizeof *b);
        t->batch = b;
        t->nbatch = k;
        eng_task_push(e, t);
        done += (long long)k;
    }
    return done;
}

static void gc_rec(eng_vm *rec, void *ud)
{
    eng_pool *p = ud;
    if (rec->seen_pass != p->pass_no && !rec->busy && !rec->waiters)
        eng_vmtab_del(&p->vms, rec);
}

static void checkout_seen(eng_pool *p, eng_vm *rec, double now)
{
    if (rec->checkout_seen)
        return;
    rec->checkout_seen = true;
    p->co_ring[p->co_head] = now;
    p->co_head = (p->co_head + 1) % ENG_CHECKOUT_RING;
    if (p->co_n < ENG_CHECKOUT_RING)
        p->co_n++;
}

static void checkout_stats(eng_pool *p, double now, vmp_engine_pool_stats *s)
{
    for (unsigned i = 0; i < p->co_n; i++) {
        double t = p->co_ring[i];
        if (now - t <= 600)
            s->checkouts_10m++;
        if (now - t <= 3600)
            s->checkouts_1h++;
        if (t > s->last_checkout)
            s->last_checkout = t;
    }
}

/* ---- template, size, clone target, requests (§4.3.8, §4.3.9, §4.3.12) --- */

static const char *config_template(vmp_engine *e, const char *pool)
{
    const vmp_pool_cfg *bc = vmp_config_pool(e->opts.config, pool);
    return bc ? bc->template_path : NULL;
}

/* Prepares tmpl for pool: template delta disks once when configured, then
 * records it as prepared. */
static void prepare_template(vmp_engine *e, eng_pool *p, const vmp_config *cfg, eng_prov *pv,
                             const char *tmpl, vmp_store *st)
{
    vmp_err err = {0};
    if (!tmpl)
        return;
    if (cfg->global.create_template_delta_disks) {
        bool done = false;
        if (vmp_store_template_delta_has(st, tmpl, &done, &err) == 0 && !done) {
            vmp_err perr = {0};
            int rc = vmp_provider_create_template_delta_disks(pv->p, p->name, &perr);
            if (rc == 0) {
                vmp_store_template_delta_add(st, tmpl, &err);
                vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, NULL,
                           "created template delta disks for %s", tmpl);
            } else {
                vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, NULL,
                           "creating template delta disks for %s failed: %s", tmpl, perr.msg);
            }
        }
    }
    if (vmp_store_override_set(st, VMP_TEMPLATE_PREPARED, p->name, tmpl, &err) != 0)
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, NULL, "recording the prepared template: %s",
                   err.msg);
}

static void drain(vmp_engine *e, eng_pool *p, vmp_store *st, const char *why)
{
    vmp_err err = {0};
    long long moved = 0;
    if (vmp_store_drain(st, p->name, &moved, &err) != 0) {
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, NULL, "drain: %s", err.msg);
        return;
    }
    pthread_mutex_lock(&e->lock);
    p->tmpl_epoch++;
    pthread_mutex_unlock(&e->lock);
    vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, NULL,
               "%s: %lld ready and pending VMs moved to completed", why, moved);
}

/* Sets the template override in force (NULL: back to the configuration). */
static void set_template(vmp_engine *e, eng_pool *p, const char *tmpl)
{
    pthread_mutex_lock(&e->lock);
    free(p->tmpl);
    const char *cfgt = config_template(e, p->name);
    p->tmpl = tmpl && (!cfgt || strcmp(tmpl, cfgt) != 0) ? vmp_strdup(tmpl) : NULL;
    pthread_mutex_unlock(&e->lock);
}

static void slow_steps(vmp_engine *e, eng_pool *p, const vmp_pool_cfg *pc, eng_gen *g, eng_prov *pv,
                       vmp_store *st, bool *drained)
{
    vmp_err err = {0};
    char *prepared = NULL, *over = NULL, *size_s = NULL, *ct = NULL;
    bool changed = false;
    const vmp_config *cfg = g->cfg;

    pthread_mutex_lock(&e->lock);
    char *inforce = vmp_strdup(p->tmpl ? p->tmpl : config_template(e, p->name));
    char *ct_inforce = vmp_strdup(p->clone_target ? p->clone_target : pc->clone_target);
    pthread_mutex_unlock(&e->lock);

    /* template evaluation (§4.3.8) */
    if (vmp_store_override_get(st, VMP_TEMPLATE_PREPARED, p->name, &prepared, &err) != 0 ||
        vmp_store_override_get(st, VMP_OVERRIDE_TEMPLATE, p->name, &over, &err) != 0)
        goto requests;
    if (!prepared || (!over && inforce && strcmp(prepared, inforce) != 0)) {
        prepare_template(e, p, cfg, pv, inforce, st);
        free(prepared);
        prepared = vmp_strdup(inforce);
    }
    if (over && (!prepared || strcmp(over, prepared) != 0)) {
        vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, NULL, "template changed to %s", over);
        set_template(e, p, over);
        changed = true;
        drain(e, p, st, "template change");
        *drained = true;
        eng_overrides_apply(e, &err);
        prepare_template(e, p, cfg, pv, over, st);
    }

    /* size override (§4.3.9) */
    if (vmp_store_override_get(st, VMP_OVERRIDE_POOLSIZE, p->name, &size_s, &err) == 0) {
        long long v;
        pthread_mutex_lock(&e->lock);
        if (size_s && vmp_parse_long(size_s, &v) == 0 && v >= 0) {
            if (v != p->size)
                vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, NULL,
                           "pool size changed from %lld to %lld", p->size, v);
            p->size_override = v;
            p->size = v;
        }
        pthread_mutex_unlock(&e->lock);
    }

    /* clone target override */
    if (vmp_store_override_get(st, VMP_OVERRIDE_CLONE_TARGET, p->name, &ct, &err) == 0 && ct &&
        (!ct_inforce || strcmp(ct, ct_inforce) != 0))
    {
        pthread_mutex_lock(&e->lock);
        free(p->clone_target);
        p->clone_target = vmp_strdup(ct);
        pthread_mutex_unlock(&e->lock);
        vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, NULL, "clone target changed to %s", ct);
        drain(e, p, st, "clone target change");
        *drained = true;
        changed = true;
    }
    if (changed)
        eng_overrides_apply(e, &err);

requests:
    /* reset and undo requests (§4.3.12) */
    {
        bool was = false;
        if (vmp_store_pool_request_take(st, VMP_POOLREQ_RESET, p->name, &was, &err) == 0 && was) {
            drain(e, p, st, "pool reset");
            *drained = true;
        }
        was = false;
        if (vmp_store_pool_request_take(st, VMP_POOLREQ_UNDO_TEMPLATE, p->name, &was, &err) == 0 &&
            was) {
            const char *cfgt = config_template(e, p->name);
            vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, NULL,
                       "template override undone; back to %s", cfgt ? cfgt : "(none)");
            set_template(e, p, NULL);
            drain(e, p, st, "template change");
            *drained = true;
            eng_overrides_apply(e, &err);
            prepare_template(e, p, cfg, pv, cfgt, st);
        }
        was = false;
        if (vmp_store_pool_request_take(st, VMP_POOLREQ_UNDO_SIZE, p->name, &was, &err) == 0 && was)
        {
            pthread_mutex_lock(&e->lock);
            p->size_override = -1;
            const vmp_pool_cfg *bc = vmp_config_pool(e->opts.config, p->name);
            p->size = bc ? bc->size : pc->size;
            long long sz = p->size;
            pthread_mutex_unlock(&e->lock);
            vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, NULL,
                       "size override undone; back to %lld", sz);
        }
    }
    free(prepared);
    free(over);
    free(size_s);
    free(ct);
    free(inforce);
    free(ct_inforce);
}

/* ---- the pass ----------------------------------------------------------------- */

int eng_pass_run(vmp_engine *e, eng_pool *p, eng_gen *g, eng_prov *pv, vmp_store *st,
                 vmp_engine_pass_result *res, vmp_err *err)
{
    vmp_engine_pass_result r = {0};
    vmp_strlist inv = VMP_STRLIST_INIT, found = VMP_STRLIST_INIT, discovered = VMP_STRLIST_INIT;
    vmp_store_pool_sets sets;
    memset(&sets, 0, sizeof sets);
    pass_work w;
    memset(&w, 0, sizeof w);
    const vmp_pool_cfg *pc = eng_pool_cfg(g, p->name);
    const vmp_config *cfg = g->cfg;
    int rc = 0;
    if (!pc || !pv) {
        rc = vmp_err_set(err, VMP_ENOENT, "pool %s is not configured", p->name);
        goto out;
    }
    double t0 = vmp_monotonic();
    double now = eng_now(e);
    double checktime = (double)(cfg->global.vm_checktime > 0 ? cfg->global.vm_checktime : 1) * 60;
    bool keep_discovered =
        e->opts.keep_discovered_vms || eng_opt_bool(cfg, pc, "keep_discovered_vms", false);
    double dmin = pc->check_loop_delay_min > 0 ? pc->check_loop_delay_min : 5;
    double dmax = pc->check_loop_delay_max >= dmin ? pc->check_loop_delay_max : dmin;
    double decay = pc->check_loop_delay_decay > 1.0 ? pc->check_loop_delay_decay : 2.0;

    /* 1. inventory: the provider first, then Redis, so a VM created in
     * between is never taken for an unknown one (discover re-checks) */
    vmp_err perr = {0};
    rc = vmp_provider_vms_in_pool(pv->p, p->name, &inv, &perr);
    if (rc != 0) {
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, NULL, "inventory failed, pass skipped: %s",
                   perr.msg);
        vmp_err_set(err, rc, "inventory: %s", perr.msg);
        pthread_mutex_lock(&e->lock);
        p->next_due = now + dmin;
        pthread_mutex_unlock(&e->lock);
        goto out;
    }
    if (inv.n > 1)
        qsort(inv.v, inv.n, sizeof *inv.v, cmp_str);
    rc = vmp_store_pool_sets_get(st, p->name, &sets, err);
    if (rc != 0) {
        pthread_mutex_lock(&e->lock);
        p->next_due = now + dmin;
        pthread_mutex_unlock(&e->lock);
        goto out;
    }

    pthread_mutex_lock(&e->lock);
    bool startup = !p->first_pass_done;
    unsigned long pass_no = ++p->pass_no;
    e->passes++;
    for (int s = 0; s < VMP_VM_NSTATES; s++) {
        for (size_t i = 0; i < sets.set[s].n; i++) {
            eng_vm *rec = eng_vmtab_add(&p->vms, sets.set[s].v[i]);
            if (!rec)
                continue;
            /* discovered/migrating are markers: a lifecycle set wins */
            if (s < VMP_VM_DISCOVERED || rec->seen_pass != pass_no)
                rec->state = s;
            rec->seen_pass = pass_no;
        }
    }
    for (size_t i = 0; i < inv.n; i++) {
        eng_vm *rec = eng_vmtab_get(&p->vms, inv.v[i]);
        if (!rec || (rec->seen_pass != pass_no && !rec->busy))
            vmp_strlist_push(&found, inv.v[i]);
    }
    pthread_mutex_unlock(&e->lock);

    for (size_t i = 0; i < found.n; i++) {
        vmp_err derr = {0};
        if (vmp_store_discover(st, p->name, found.v[i], &derr) == 0) {
            r.discovered++;
            vmp_strlist_push(&discovered, found.v[i]);
            vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, found.v[i],
                       "discovered: in the provider but unknown to redis");
        }
    }

    /* 2-5, 7: per-VM steps, dispatched under one lock */
    pthread_mutex_lock(&e->lock);
    vmp_strlist *running = &sets.set[VMP_VM_RUNNING];
    for (size_t i = 0; i < running->n; i++) {
        const char *vm = running->v[i];
        if (!in_inventory(&inv, vm)) {
            vmp_strlist_push(&w.running_gone, vm);
            continue;
        }
        eng_vm *rec = eng_vmtab_get(&p->vms, vm);
        if (!rec)
            continue;
        bool due = rec->check_t <= 0 || now - rec->check_t >= checktime ||
                   (rec->deadline > 0 && now >= rec->deadline);
        if (due)
            dispatch(e, p, ENG_T_RUNNING, rec, pv, &r.checked_running);
    }
    vmp_strlist *ready = &sets.set[VMP_VM_READY];
    long long ttl = pc->ready_ttl;
    eng_vm **due_ready = ready->n ? calloc(ready->n, sizeof *due_ready) : NULL;
    size_t ndue = 0;
    for (size_t i = 0; i < ready->n; i++) {
        const char *vm = ready->v[i];
        if (!in_inventory(&inv, vm)) {
            vmp_strlist_push(&w.ready_gone, vm);
            continue;
        }
        eng_vm *rec = eng_vmtab_get(&p->vms, vm);
        if (!rec)
            continue;
        bool due = rec->check_t <= 0 || now - rec->check_t >= checktime ||
                   (ttl > 0 && rec->ready_t > 0 && now - rec->ready_t > (double)ttl * 60);
        if (due && due_ready && eng_vm_trylock(rec))
            due_ready[ndue++] = rec;
    }
    r.checked_ready = dispatch_ready(e, p, pv, due_ready, ndue);
    free(due_ready);
    vmp_strlist *pending = &sets.set[VMP_VM_PENDING];
    for (size_t i = 0; i < pending->n; i++) {
        const char *vm = pending->v[i];
        eng_vm *rec = eng_vmtab_get(&p->vms, vm);
        if (!in_inventory(&inv, vm)) {
            if (!rec || !rec->busy)
                vmp_strlist_push(&w.pending_gone, vm);
            continue;
        }
        if (rec)
            dispatch(e, p, ENG_T_PENDING, rec, pv, &r.checked_pending);
    }
    vmp_strlist *completed = &sets.set[VMP_VM_COMPLETED];
    for (size_t i = 0; i < completed->n; i++) {
        const char *vm = completed->v[i];
        eng_vm *rec = eng_vmtab_get(&p->vms, vm);
        if (!in_inventory(&inv, vm)) {
            if (!rec || !rec->busy)
                vmp_strlist_push(&w.completed_gone, vm);
            continue;
        }
        if (rec)
            dispatch(e, p, ENG_T_DESTROY, rec, pv, &r.destroyed);
    }
    vmp_strlist *migrating = &sets.set[VMP_VM_MIGRATING];
    const vmp_provider_ops *ops = vmp_provider_ops_of(pv->p);
    bool limited = e->migration_limit > 0 && !(ops && ops->migrate_vm);
    for (size_t i = 0; i < migrating->n; i++) {
        const char *vm = migrating->v[i];
        if (!in_inventory(&inv, vm)) {
            /* returned and destroyed before it was evaluated: vmpooler
             * leaves it in the set for ever */
            eng_vm *rec = eng_vmtab_get(&p->vms, vm);
            if (!rec || rec->state != VMP_VM_RUNNING)
                vmp_strlist_push(&w.migrating_gone, vm);
            continue;
        }
        eng_vm *rec = eng_vmtab_get(&p->vms, vm);
        if (!rec)
            continue;
        checkout_seen(p, rec, now);
        if (limited && e->migrations >= e->migration_limit)
            continue; /* evaluated at a later pass */
        dispatch(e, p, ENG_T_MIGRATE, rec, pv, &r.migrated);
    }
    pthread_mutex_unlock(&e->lock);

    /* moves decided above, outside the lock */
    for (size_t i = 0; i < w.running_gone.n; i++) {
        vmp_err merr = {0};
        if (vmp_store_move(st, p->name, w.running_gone.v[i], VMP_VM_RUNNING, VMP_VM_COMPLETED,
                           &merr) == 0)
            vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, w.running_gone.v[i],
                       "running VM not in the provider's inventory; moved to completed");
    }
    for (size_t i = 0; i < w.ready_gone.n; i++) {
        vmp_err merr = {0};
        if (vmp_store_move(st, p->name, w.ready_gone.v[i], VMP_VM_READY, VMP_VM_COMPLETED, &merr) ==
            0)
            vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, w.ready_gone.v[i],
                       "ready VM not in the provider's inventory; moved to completed");
    }
    for (size_t i = 0; i < w.pending_gone.n; i++) {
        const char *vm = w.pending_gone.v[i];
        if (startup) {
            /* recorded pending but never made (a crash mid-clone): drop it
             * now instead of waiting for the pending timeout */
            vmp_err merr = {0};
            int mrc = vmp_store_clone_failed(st, p->name, vm,
                                             "not found in the provider at start-up", NULL, &merr);
            if (mrc == VMP_ESTATE)
                mrc = vmp_store_remove(st, p->name, vm, VMP_VM_PENDING, &merr);
            if (mrc == 0)
                vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, vm,
                           "pending VM not in the provider at start-up; removed");
            continue;
        }
        pthread_mutex_lock(&e->lock);
        eng_vm *rec = eng_vmtab_get(&p->vms, vm);
        bool mine = rec && eng_vm_trylock(rec);
        pthread_mutex_unlock(&e->lock);
        if (rec && !mine)
            continue;
        eng_fail_pending(e, p, pc, g, rec, vm, false, st);
        if (mine) {
            pthread_mutex_lock(&e->lock);
            eng_vm_unlock(e, p, rec);
            pthread_mutex_unlock(&e->lock);
        }
    }
    for (size_t i = 0; i < w.completed_gone.n; i++) {
        const char *vm = w.completed_gone.v[i];
        vmp_err merr = {0};
        if (vmp_store_forget(st, p->name, vm, &merr) == 0) {
            vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, vm,
                       "completed VM not in the provider's inventory; forgotten");
            pthread_mutex_lock(&e->lock);
            eng_vm *rec = eng_vmtab_get(&p->vms, vm);
            if (rec)
                rec->state = -1;
            pthread_mutex_unlock(&e->lock);
        }
    }

    for (size_t i = 0; i < w.migrating_gone.n; i++) {
        vmp_err merr = {0};
        vmp_store_remove(st, p->name, w.migrating_gone.v[i], VMP_VM_MIGRATING, &merr);
    }

    /* 6. discovered VMs */
    for (size_t i = 0; i < sets.set[VMP_VM_DISCOVERED].n; i++)
        if (!vmp_strlist_contains(&discovered, sets.set[VMP_VM_DISCOVERED].v[i]))
            vmp_strlist_push(&discovered, sets.set[VMP_VM_DISCOVERED].v[i]);
    if (keep_discovered && discovered.n) {
        vmp_log_vm(VMP_LOG_DEBUG, ENG_SUBSYS, p->name, NULL,
                   "%zu discovered VMs kept (keep_discovered_vms)", discovered.n);
    } else {
        for (size_t i = 0; i < discovered.n; i++) {
            bool to_completed = false;
            vmp_err derr = {0};
            int drc =
                vmp_store_discovered_resolve(st, p->name, discovered.v[i], &to_completed, &derr);
            if (drc == 0)
                vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, discovered.v[i], "%s",
                           to_completed ? "discovered VM moved to completed"
                                        : "discovered VM is known after all; no longer discovered");
            else if (drc != VMP_ESTATE)
                vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, discovered.v[i], "%s", derr.msg);
        }
    }

    /* 8, 9, 12: overrides and requests, at most every dmin seconds */
    bool drained = false;
    pthread_mutex_lock(&e->lock);
    bool slow = p->slow_due || now - p->slow_read_t >= dmin || now < p->slow_read_t;
    if (slow) {
        p->slow_due = false;
        p->slow_read_t = now;
    }
    pthread_mutex_unlock(&e->lock);
    if (slow)
        slow_steps(e, p, pc, g, pv, st, &drained);

    /* 10. repopulate */
    vmp_store_pool_counts counts;
    memset(&counts, 0, sizeof counts);
    rc = vmp_store_pool_counts_get(st, p->name, &counts, err);
    if (rc != 0)
        goto out;
    long long nready = counts.n[VMP_VM_READY], npending = counts.n[VMP_VM_PENDING];
    vmp_metrics_gauge(e->metrics, (double)nready, "ready.%s", p->name);
    vmp_metrics_gauge(e->metrics, (double)counts.n[VMP_VM_RUNNING], "running.%s", p->name);

    pthread_mutex_lock(&e->lock);
    long long size = p->size;
    vmp_engine_pool_stats stats = {
        .ready = nready,
        .pending = npending,
        .running = counts.n[VMP_VM_RUNNING],
        .completed = counts.n[VMP_VM_COMPLETED],
        .size = size,
        .config_size = pc->size,
    };
    checkout_stats(p, now, &stats);
    int empty_flag = p->empty_flag;
    p->polled_ready = nready;
    pthread_mutex_unlock(&e->lock);
    long long hsize;
    if (eng_hook_pool_size(e, p->name, &stats, &hsize))
        size = hsize;

    if (size > 0) {
        int want = nready == 0 ? 1 : 0;
        if (want != empty_flag) {
            bool changed = false;
            vmp_err ferr = {0};
            if (vmp_store_pool_empty_mark(st, p->name, want == 1, &changed, &ferr) == 0) {
                if (want == 1 && changed)
                    vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, NULL, "pool is empty");
                pthread_mutex_lock(&e->lock);
                p->empty_flag = want;
                pthread_mutex_unlock(&e->lock);
            }
        }
    }

    pthread_mutex_lock(&e->lock);
    long long need = size - (nready + npending + p->unrecorded);
    p->deficit = need > 0 && p->leased && p->configured ? need : 0;
    long long before = p->deficit;
    eng_dispatch_clones(e);
    r.cloned = before - p->deficit;
    pthread_mutex_unlock(&e->lock);

    /* 11. excess removal */
    if (nready + npending > 0 && nready > size) {
        long long moved = 0;
        vmp_err xerr = {0};
        if (vmp_store_remove_excess(st, p->name, nready - size, npending > 0, &moved, &xerr) == 0)
            vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, NULL,
                       "%lld excess VMs moved to completed (size %lld)", moved, size);
        else
            vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, NULL, "excess removal: %s", xerr.msg);
    }

    /* adaptive delay (§4.2) and record upkeep */
    double elapsed = vmp_monotonic() - t0;
    pthread_mutex_lock(&e->lock);
    if (r.cloned > 0 || r.checked_pending > 0 || r.discovered > 0 || drained || p->deficit > 0 ||
        p->unrecorded > 0)
        p->delay = dmin;
    else {
        p->delay = p->delay * decay;
        if (p->delay < dmin)
            p->delay = dmin;
        if (p->delay > dmax)
            p->delay = dmax;
    }
    p->next_due = eng_now(e) + p->delay;
    p->first_pass_done = true;
    eng_vmtab_each(&p->vms, gc_rec, p);
    pthread_mutex_unlock(&e->lock);
    vmp_metrics_gauge(e->metrics, elapsed, "vmpooler_performance.check_pool.%s", p->name);
    if (elapsed > 5)
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, NULL, "pass took %.2f seconds", elapsed);
out:
    if (res)
        *res = r;
    vmp_strlist_clear(&inv);
    vmp_strlist_clear(&found);
    vmp_strlist_clear(&discovered);
    vmp_store_pool_sets_clear(&sets);
    work_clear(&w);
    return rc;
}
