/*
 * checks: the per-VM tasks of a pass (reference §4.3.2-§4.3.5): the
 * pending check (T3/T3'/T3'', T4, T5), the ready check (T8), the running
 * check (T11, T13) and destroy (T17). Each runs on a worker holding its VM.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/engine_internal.h"
#include "log.h"

static void set_state(vmp_engine *e, eng_vm *rec, int state)
{
    pthread_mutex_lock(&e->lock);
    rec->state = state;
    pthread_mutex_unlock(&e->lock);
}

/* Moves vm from -> completed and logs why. */
static void to_completed(vmp_engine *e, eng_pool *p, eng_vm *rec, vmp_store *st, vmp_vm_state from,
                         const char *why)
{
    vmp_err err = {0};
    int rc = vmp_store_move(st, p->name, rec->name, from, VMP_VM_COMPLETED, &err);
    if (rc == 0) {
        vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, rec->name, "moved from %s to completed: %s",
                   vmp_vm_state_name(from), why);
        set_state(e, rec, VMP_VM_COMPLETED);
    } else if (rc != VMP_ESTATE) {
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, rec->name, "moving to completed: %s",
                   err.msg);
    }
}

/* ---- pending ------------------------------------------------------------- */

static void handle_timed_out(vmp_engine *e, eng_pool *p, eng_vm *rec, vmp_store *st,
                             long long timeout)
{
    vmp_err err = {0};
    vmp_strlist kv = VMP_STRLIST_INIT;
    vmp_store_vm_getall(st, rec->name, &kv, &err);
    int rc = vmp_store_move(st, p->name, rec->name, VMP_VM_PENDING, VMP_VM_COMPLETED, &err);
    if (rc == 0) {
        set_state(e, rec, VMP_VM_COMPLETED);
        vmp_metrics_increment(e->metrics, "vmpooler_errors.markedasfailed.%s", p->name);
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, rec->name,
                   "marked as 'failed' after %lld minutes pending; moved to completed", timeout);
        const char *req = vmp_store_kv_get(&kv, "request_id");
        if (req && req[0]) {
            const char *cerr = vmp_store_kv_get(&kv, "clone_error");
            eng_ondemand_vm_failed(e, st, p->name, rec->name, req,
                                   vmp_store_kv_get(&kv, "pool_alias"), VMP_ETIMEDOUT,
                                   cerr ? cerr : NULL);
        }
    } else if (rc != VMP_ESTATE) {
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, rec->name, "moving to completed: %s",
                   err.msg);
    }
    vmp_strlist_clear(&kv);
}

void eng_fail_pending(vmp_engine *e, eng_pool *p, const vmp_pool_cfg *pc, eng_gen *g, eng_vm *rec,
                      const char *vm, bool exists, vmp_store *st)
{
    vmp_err err = {0};
    double clone_t = rec ? rec->clone_t : 0;
    if (clone_t <= 0) {
        bool found = false;
        if (vmp_store_vm_get_time(st, vm, "clone", &clone_t, &found, &err) != 0 || !found) {
            vmp_log_vm(VMP_LOG_DEBUG, ENG_SUBSYS, p->name, vm,
                       "pending VM has no clone time; left alone");
            return;
        }
        if (rec) {
            pthread_mutex_lock(&e->lock);
            rec->clone_t = clone_t;
            pthread_mutex_unlock(&e->lock);
        }
    }
    double now = eng_now(e);
    double age_min = (now - clone_t) / 60.0;
    long long timeout = pc && pc->timeout > 0 ? pc->timeout : 15;
    if (age_min > (double)timeout) {
        if (!exists) {
            char msg[128];
            snprintf(msg, sizeof msg, "not found in the provider after %lld minutes", timeout);
            int rc = vmp_store_clone_failed(st, p->name, vm, msg, NULL, &err);
            if (rc == VMP_ESTATE)
                rc = vmp_store_remove(st, p->name, vm, VMP_VM_PENDING, &err);
            if (rc == 0) {
                vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, vm,
                           "pending VM %s; removed from pending", msg);
                if (rec)
                    set_state(e, rec, -1);
            }
            return;
        }
        if (rec)
            handle_timed_out(e, p, rec, st, timeout);
        return;
    }
    long long notify = pc && pc->timeout_notification > 0 ? pc->timeout_notification : 5;
    (void)g;
    if (exists && rec && !rec->notified && age_min > (double)notify) {
        pthread_mutex_lock(&e->lock);
        rec->notified = true;
        pthread_mutex_unlock(&e->lock);
        vmp_store_vm_set(st, vm, "timeout_notification", "1", &err);
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, vm,
                   "pending for %.0f minutes; it times out in %.0f minutes", age_min,
                   (double)timeout - age_min);
    }
}

void eng_pending_ready_apply(vmp_engine *e, eng_pool *p, eng_vm *rec, vmp_ready_outcome oc,
                             double boot, double now)
{
    pthread_mutex_lock(&e->lock);
    rec->ready_t = now;
    rec->check_t = now; /* just found ready: counts as checked */
    rec->state = oc == VMP_READY_POOL       ? VMP_VM_READY
                 : oc == VMP_READY_ONDEMAND ? VMP_VM_RUNNING
                                            : VMP_VM_COMPLETED;
    if (oc == VMP_READY_ONDEMAND) {
        rec->checkout_t = now;
        rec->checkout_seen = true;
        e->od_wake = true;
        pthread_cond_signal(&e->sched_cond);
    }
    pthread_mutex_unlock(&e->lock);
    if (boot >= 0)
        vmp_metrics_timing(e->metrics, boot, "time_to_ready_state.%s", p->name);
    switch (oc) {
    case VMP_READY_POOL:
        vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, rec->name,
                   "moved from pending to ready (boot %.2f s)", boot);
        break;
    case VMP_READY_ONDEMAND:
        vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, rec->name,
                   "ready and allocated to its on-demand request");
        break;
    case VMP_READY_ABANDONED:
        vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, rec->name,
                   "ready, but its on-demand request is gone; moved to completed");
        break;
    }
    eng_event(e, VMP_ENGINE_EV_READY, p->name, rec->name, boot > 0 ? boot : 0, NULL);
}

void eng_task_pending(vmp_engine *e, eng_task *t, vmp_store *st)
{
    eng_pool *p = t->pool;
    eng_vm *rec = t->vm;
    const vmp_pool_cfg *pc = eng_pool_cfg(t->gen, p->name);
    if (!pc || !t->prov || !rec)
        return;
    vmp_err err = {0};
    bool ready = false;
    int rc = vmp_provider_vm_ready(t->prov->p, p->name, rec->name, &ready, &err);
    if (rc == 0 && ready) {
        vmp_ready_outcome oc = VMP_READY_POOL;
        double boot = -1;
        double now = eng_now(e);
        vmp_err serr = {0};
        rc = vmp_store_pending_ready(st, p->name, rec->name, t->gen->cfg->global.vm_lifetime_auth,
                                     now, &oc, &boot, &serr);
        if (rc == VMP_ESTATE)
            return; /* moved away meanwhile (drained, removed) */
        if (rc != 0) {
            vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, rec->name, "moving to ready: %s",
                       serr.msg);
            return;
        }
        eng_pending_ready_apply(e, p, rec, oc, boot, now);
        return;
    }
    if (rc != 0)
        vmp_log_vm(VMP_LOG_DEBUG, ENG_SUBSYS, p->name, rec->name, "not ready: %s", err.msg);
    eng_fail_pending(e, p, pc, t->gen, rec, rec->name, true, st);
}

/* ---- ready ------------------------------------------------------------------ */

/* One ready check (§4.3.3). Returns true when the VM stays ready and its
 * check time is to be recorded. */
static bool check_ready(vmp_engine *e, eng_task *t, const vmp_pool_cfg *pc, eng_vm *rec,
                        vmp_store *st, double now)
{
    eng_pool *p = t->pool;
    const vmp_config *cfg = t->gen->cfg;
    vmp_err err = {0};
    double checktime = (double)(cfg->global.vm_checktime > 0 ? cfg->global.vm_checktime : 1) * 60;

    pthread_mutex_lock(&e->lock);
    double ready_t = rec->ready_t, check_t = rec->check_t;
    pthread_mutex_unlock(&e->lock);
    if (ready_t <= 0) {
        /* first look at this VM: what Redis knows */
        vmp_strlist kv = VMP_STRLIST_INIT;
        if (vmp_store_vm_getall(st, rec->name, &kv, &err) != 0) {
            vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, rec->name, "ready check: %s", err.msg);
            return false;
        }
        const char *r = vmp_store_kv_get(&kv, "ready");
        const char *c = vmp_store_kv_get(&kv, "check");
        double v;
        if (r && vmp_time_parse(r, &v) == 0)
            ready_t = v;
        if (c && vmp_time_parse(c, &v) == 0)
            check_t = v;
        vmp_strlist_clear(&kv);
        pthread_mutex_lock(&e->lock);
        rec->ready_t = ready_t;
        rec->check_t = check_t;
        pthread_mutex_unlock(&e->lock);
        if (check_t > 0 && now - check_t < checktime)
            return false;
    }

    /* ready TTL; 0 means unlimited (vmpooler 3.x expires at once). Tested
     * before the check is recorded, as vmpooler 2017 does: an expired VM
     * needs no check stamp */
    long long ttl = pc->ready_ttl;
    if (ttl > 0 && now - ready_t > (double)ttl * 60) {
        to_completed(e, p, rec, st, VMP_VM_READY, "reached the end of its ready TTL");
        return false;
    }

    vmp_vm_info info;
    memset(&info, 0, sizeof info);
    vmp_err gerr = {0};
    int rc = vmp_provider_get_vm(t->prov->p, p->name, rec->name, &info, &gerr);
    if (rc == VMP_ENOENT) {
        vmp_vm_info_clear(&info);
        to_completed(e, p, rec, st, VMP_VM_READY, "no longer exists in the provider");
        return false;
    }
    if (rc == 0) {
        bool off = info.powerstate[0] && strcasecmp(info.powerstate, "poweredon") != 0;
        bool mismatch = pc->check_hostname_for_mismatch && ready_t > 0 && now - ready_t > 60 &&
                        info.hostname[0] && strcmp(info.hostname, rec->name) != 0;
        char why[VMP_HOST_MAX + 64];
        snprintf(why, sizeof why, "hostname mismatch (%s)", info.hostname);
        vmp_vm_info_clear(&info);
        if (off) {
            to_completed(e, p, rec, st, VMP_VM_READY, "powered off");
            return false;
        }
        if (mismatch) {
            to_completed(e, p, rec, st, VMP_VM_READY, why);
            return false;
        }
    } else {
        vmp_vm_info_clear(&info);
        if (rc != VMP_ENOTSUP)
            vmp_log_vm(VMP_LOG_DEBUG, ENG_SUBSYS, p->name, rec->name, "get_vm: %s", gerr.msg);
    }

    bool ready = false;
    vmp_err rerr = {0};
    rc = vmp_provider_vm_ready(t->prov->p, p->name, rec->name, &ready, &rerr);
    if (rc != 0 || !ready) {
        if (rc != 0)
            vmp_store_vm_set(st, rec->name, "open_socket_error", rerr.msg, &err);
        to_completed(e, p, rec, st, VMP_VM_READY,
                     rc != 0 ? rerr.msg : "is unreachable (not ready)");
        return false;
    }
    return true;
}

void eng_task_ready(vmp_engine *e, eng_task *t, vmp_store *st)
{
    eng_pool *p = t->pool;
    const vmp_pool_cfg *pc = eng_pool_cfg(t->gen, p->name);
    if (!pc || !t->prov)
        return;
    eng_vm *one[1] = {t->vm};
    eng_vm **recs = t->nbatch ? t->batch : one;
    size_t n = t->nbatch ? t->nbatch : (t->vm ? 1 : 0);
    const char **checked = n ? malloc(n * sizeof *checked) : NULL;
    size_t nchecked = 0;
    double now = eng_now(e);
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&e->lock);
        bool stop = e->stopping;
        pthread_mutex_unlock(&e->lock);
        if (stop)
            break;
        if (check_ready(e, t, pc, recs[i], st, now) && checked)
            checked[nchecked++] = recs[i]->name;
    }
    if (nchecked) {
        /* the check times, all in one round trip */
        vmp_err err = {0};
        if (vmp_store_vms_mark_checked(st, checked, nchecked, now, &err) != 0)
            vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, NULL, "recording check times: %s",
                       err.msg);
        pthread_mutex_lock(&e->lock);
        for (size_t i = 0; i < n; i++)
            recs[i]->check_t = now; /* checked or moved out: not due again soon */
        pthread_mutex_unlock(&e->lock);
    }
    free(checked);
}

/* ---- running ---------------------------------------------------------------- */

void eng_task_running(vmp_engine *e, eng_task *t, vmp_store *st)
{
    eng_pool *p = t->pool;
    eng_vm *rec = t->vm;
    const vmp_pool_cfg *pc = eng_pool_cfg(t->gen, p->name);
    if (!pc || !t->prov || !rec)
        return;
    const vmp_config *cfg = t->gen->cfg;
    vmp_err err = {0};
    double now = eng_now(e);
    double checkout = 0;
    bool found = false;
    vmp_strlist kv = VMP_STRLIST_INIT;
    if (vmp_store_active_get_time(st, p->name, rec->name, &checkout, &found, &err) != 0 ||
        vmp_store_vm_getall(st, rec->name, &kv, &err) != 0)
    {
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, rec->name, "running check: %s", err.msg);
        goto out;
    }
    if (!found) {
        to_completed(e, p, rec, st, VMP_VM_RUNNING, "no checkout time recorded");
        goto out;
    }
    long long lifetime = cfg->global.vm_lifetime > 0 ? cfg->global.vm_lifetime : 12;
    const char *lf = vmp_store_kv_get(&kv, "lifetime");
    double lfd;
    if (lf && vmp_parse_double(lf, &lfd) == 0)
        lifetime = (long long)floor(lfd);
    if (lifetime > 0) {
        double hours = floor((now - checkout) / 3600.0);
        if (hours >= (double)lifetime) {
            char why[96];
            snprintf(why, sizeof why, "reached the end of its lifetime after %.0f hours", hours);
            to_completed(e, p, rec, st, VMP_VM_RUNNING, why);
            goto out;
        }
    }
    pthread_mutex_lock(&e->lock);
    rec->checkout_t = checkout;
    rec->deadline = lifetime > 0 ? checkout + (double)lifetime * 3600 : 0;
    rec->check_t = now;
    pthread_mutex_unlock(&e->lock);

    const vmp_provider_ops *ops = vmp_provider_ops_of(t->prov->p);
    if (ops && ops->tag_vm_user && !vmp_store_kv_get(&kv, "user_tagged")) {
        vmp_err terr = {0};
        if (vmp_provider_tag_vm_user(t->prov->p, p->name, rec->name, &terr) == 0)
            vmp_store_vm_set(st, rec->name, "user_tagged", "true", &err);
    }

    bool ready = false;
    if (vmp_provider_vm_ready(t->prov->p, p->name, rec->name, &ready, &err) == 0 && ready)
        goto out;
    vmp_vm_info info;
    memset(&info, 0, sizeof info);
    int rc = vmp_provider_get_vm(t->prov->p, p->name, rec->name, &info, &err);
    vmp_vm_info_clear(&info);
    if (rc == VMP_ENOENT)
        to_completed(e, p, rec, st, VMP_VM_RUNNING, "no longer exists in the provider");
out:
    vmp_strlist_clear(&kv);
}

/* ---- destroy -------------------------------------------------------------- */

void eng_task_destroy(vmp_engine *e, eng_task *t, vmp_store *st)
{
    eng_pool *p = t->pool;
    eng_vm *rec = t->vm;
    if (!t->prov || !rec)
        return;
    vmp_err err = {0};
    double now = eng_now(e);
    int rc = vmp_store_destroy_start(st, p->name, rec->name, now, &err);
    if (rc == VMP_ESTATE)
        return;
    if (rc != 0) {
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, rec->name, "destroy: %s", err.msg);
        return;
    }
    double t0 = vmp_monotonic();
    vmp_err perr = {0};
    rc = vmp_provider_destroy_vm(t->prov->p, p->name, rec->name, &perr);
    double secs = vmp_monotonic() - t0;
    if (rc != 0) {
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, rec->name,
                   "destroy failed (retried at the next pass): %s", perr.msg);
        return;
    }
    rc = vmp_store_destroy_done(st, p->name, rec->name, &err);
    if (rc != 0 && rc != VMP_ESTATE)
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, rec->name, "recording the destroy: %s",
                   err.msg);
    set_state(e, rec, -1);
    vmp_metrics_gauge(e->metrics, secs, "vmpooler_destroy.%s", p->name);
    vmp_metrics_timing(e->metrics, secs, "destroy.%s", p->name);
    vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, rec->name, "destroyed in %.2f seconds", secs);
    eng_event(e, VMP_ENGINE_EV_DESTROY, p->name, rec->name, secs, NULL);
}
