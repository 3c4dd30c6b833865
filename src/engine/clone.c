/*
 * clone: making one new VM (reference §4.5, transition T1/T2).
 *
 * The VM is recorded pending in Redis (with its hash) BEFORE the provider
 * is asked to create it, so a crash in between leaves a pending VM that the
 * next start reconciles. The name is reserved by that same atomic step
 * (it fails when a VM hash of that name exists), up to 3 attempts. The
 * clone holds its VM from the moment its name is chosen until it hands it
 * to the immediate pending check. The clone counters are taken when the
 * task is made and given back when it ends, whatever happens (unlike
 * vmpooler, a failed name search does not leak a slot).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/engine_internal.h"
#include "log.h"

eng_task *eng_clone_task_new(vmp_engine *e, eng_pool *pool, bool ondemand)
{
    eng_task *t = eng_task_new(e, ENG_T_CLONE, pool, NULL, pool->prov);
    if (!t)
        return NULL;
    t->ondemand = ondemand;
    t->epoch = pool->tmpl_epoch;
    pool->unrecorded++;
    pool->clones++;
    if (ondemand)
        e->od_clones++;
    else
        e->clones++;
    e->mirror_delta[ondemand ? 1 : 0]++;
    return t;
}

/* "a…b" somewhere in s, case-insensitively. */
static bool match2(const char *s, const char *a, const char *b)
{
    const char *p = strcasestr(s, a);
    return p && strcasestr(p + strlen(a), b);
}

bool eng_error_permanent(int code, const char *msg)
{
    /* vmpooler: ArgumentError, NoMethodError, NameError are permanent; our
     * nearest codes are a bad argument and an unsupported operation */
    if (code == VMP_EINVAL || code == VMP_ENOTSUP)
        return true;
    if (!msg || !msg[0])
        return false;
    static const char *const pats[][2] = {
        {"template", "not found"},  {"template", "does not exist"}, {"invalid", "path"},
        {"folder", "not found"},    {"datastore", "not found"},     {"resource pool", "not found"},
        {"permission", "denied"},   {"authentication", "failed"},   {"invalid", "credentials"},
        {"configuration", "error"},
    };
    for (size_t i = 0; i < VMP_ARRAY_LEN(pats); i++)
        if (match2(msg, pats[i][0], pats[i][1]))
            return true;
    return false;
}

void eng_ondemand_vm_failed(vmp_engine *e, vmp_store *st, const char *pool, const char *vm,
                            const char *request_id, const char *alias, int code, const char *msg)
{
    vmp_strlist kv = VMP_STRLIST_INIT;
    vmp_err err = {0};
    if (!request_id || !request_id[0])
        return;
    if (vmp_store_od_request_get(st, request_id, &kv, &err) != 0)
        goto out;
    const char *status = vmp_store_kv_get(&kv, "status");
    if (status && (strcmp(status, "failed") == 0 || strcmp(status, "deleted") == 0))
        goto out;
    long long retries = 0;
    const char *rcs = vmp_store_kv_get(&kv, "retry_count");
    if (rcs)
        vmp_parse_long(rcs, &retries);
    pthread_mutex_lock(&e->lock);
    long long max = e->cur->cfg->global.max_vm_retries > 0 ? e->cur->cfg->global.max_vm_retries : 3;
    pthread_mutex_unlock(&e->lock);
    bool permanent = eng_error_permanent(code, msg);
    if (permanent || retries >= max) {
        char reason[VMP_ERR_MSG_MAX + 64];
        snprintf(reason, sizeof reason, "%s: %s",
                 permanent ? "permanent error" : "retries exhausted",
                 msg && msg[0] ? msg : "unknown error");
        vmp_store_od_request_fail(st, request_id, reason, &err);
        vmp_metrics_increment(e->metrics, "vmpooler_errors.permanently_failed.%s", pool);
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, pool, vm, "on-demand request %s failed: %s",
                   request_id, reason);
    } else {
        char member[VMP_NAME_MAX * 3 + 64];
        snprintf(member, sizeof member, "%s:%s:1:%s", alias && alias[0] ? alias : pool, pool,
                 request_id);
        vmp_store_od_request_retry(st, request_id, NULL, &err);
        vmp_store_od_task_add(st, 1, member, &err);
        vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, pool, vm,
                   "on-demand request %s: retrying one VM (attempt %lld of %lld)", request_id,
                   retries + 1, max);
    }
out:
    vmp_strlist_clear(&kv);
}

/* Chooses and reserves a name: records the VM pending. 0 with *recp held,
 * or an error (name search exhausted: VMP_EEXIST). */
static int reserve_name(vmp_engine *e, eng_task *t, const vmp_pool_cfg *pc, vmp_store *st,
                        char *name, size_t len, eng_vm **recp, vmp_err *err)
{
    eng_pool *p = t->pool;
    const vmp_config *cfg = t->gen->cfg;
    const char *prefix = cfg->global.prefix ? cfg->global.prefix : "";
    unsigned seed;
    pthread_mutex_lock(&e->lock);
    e->rnd = e->rnd * 1103515245u + 12345u;
    seed = e->rnd ^ (unsigned)(uintptr_t)t;
    pthread_mutex_unlock(&e->lock);
    int rc = VMP_EEXIST;
    for (int attempt = 0; attempt < 3; attempt++) {
        char gen[VMP_NAME_MAX];
        if (!eng_hook_vm_name(e, p->name, gen, sizeof gen)) {
            if (attempt == 0)
                eng_name_generate(&seed, gen, sizeof gen);
            else
                eng_name_generate_numbered(&seed, gen, sizeof gen);
        }
        snprintf(name, len, "%s%s", prefix, gen);
        double now = eng_now(e);
        pthread_mutex_lock(&e->lock);
        eng_vm *rec = eng_vmtab_get(&p->vms, name);
        if (rec) {
            pthread_mutex_unlock(&e->lock);
            vmp_metrics_increment(e->metrics, "vmpooler_errors.duplicatehostname.%s", p->name);
            continue;
        }
        rec = eng_vmtab_add(&p->vms, name);
        if (rec) {
            rec->busy = true;
            rec->clone_t = now;
            rec->state = VMP_VM_PENDING;
        }
        pthread_mutex_unlock(&e->lock);
        if (!rec)
            return vmp_err_set(err, VMP_ENOMEM, "out of memory");
        rc = vmp_store_clone_start(st, p->name, name, pc->domain, t->ondemand ? t->arg : NULL,
                                   t->ondemand ? t->arg2 : NULL, now, err);
        if (rc == 0) {
            *recp = rec;
            return 0;
        }
        pthread_mutex_lock(&e->lock);
        rec->busy = false;
        eng_vmtab_del(&p->vms, rec);
        pthread_mutex_unlock(&e->lock);
        if (rc != VMP_EEXIST)
            return rc;
        vmp_metrics_increment(e->metrics, "vmpooler_errors.duplicatehostname.%s", p->name);
    }
    return vmp_err_set(err, VMP_EEXIST, "unable to generate a unique hostname after 3 attempts");
}

void eng_task_clone(vmp_engine *e, eng_task *t, vmp_store *st)
{
    eng_pool *p = t->pool;
    vmp_err err = {0};
    char name[VMP_NAME_MAX] = "";
    eng_vm *rec = NULL;
    const vmp_pool_cfg *pc = eng_pool_cfg(t->gen, p->name);
    if (!pc || !t->prov) {
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, NULL,
                   "clone skipped: pool or its provider is no longer configured");
        return;
    }

    int rc = reserve_name(e, t, pc, st, name, sizeof name, &rec, &err);
    pthread_mutex_lock(&e->lock);
    if (p->unrecorded > 0)
        p->unrecorded--;
    t->n = 1; /* the unrecorded count is settled */
    if (rc == 0)
        t->vm = rec;
    pthread_mutex_unlock(&e->lock);
    if (rc != 0) {
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, NULL, "clone failed: %s", err.msg);
        eng_event(e, VMP_ENGINE_EV_CLONE_FAILED, p->name, NULL, 0, err.msg);
        if (t->ondemand)
            eng_ondemand_vm_failed(e, st, p->name, NULL, t->arg, t->arg2, rc, err.msg);
        return;
    }

    vmp_log_vm(VMP_LOG_DEBUG, ENG_SUBSYS, p->name, name, "starting clone");
    double t0 = vmp_monotonic();
    vmp_err perr = {0};
    rc = vmp_provider_create_vm(t->prov->p, p->name, name, NULL, &perr);
    char ip[VMP_IP_MAX] = "";
    if (rc == 0) {
        int irc = vmp_provider_get_vm_ip_address(t->prov->p, p->name, name, ip, sizeof ip, &perr);
        if (irc == VMP_ENOTSUP) {
            ip[0] = '\0';
        } else if (irc != 0 || !ip[0]) {
            rc = irc ? irc : VMP_EFAILED;
            if (!perr.msg[0] || irc == 0)
                vmp_err_set(&perr, rc, "failed to obtain IP address for %s", name);
            else
                vmp_err_prefix(&perr, "failed to obtain IP address");
        }
    }
    double secs = vmp_monotonic() - t0;
    if (rc != 0) {
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, name, "clone failed after %.2f s: %s", secs,
                   perr.msg);
        vmp_err ferr = {0};
        if (vmp_store_clone_failed(st, p->name, name, perr.msg, vmp_strerror(rc), &ferr) != 0)
            vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, name, "recording the failure: %s",
                       ferr.msg);
        eng_event(e, VMP_ENGINE_EV_CLONE_FAILED, p->name, name, secs, perr.msg);
        if (t->ondemand)
            eng_ondemand_vm_failed(e, st, p->name, name, t->arg, t->arg2, rc, perr.msg);
        pthread_mutex_lock(&e->lock);
        rec->state = -1; /* gone from pending: forget it at the next pass */
        pthread_mutex_unlock(&e->lock);
        return;
    }
    double now = eng_now(e);
    pthread_mutex_lock(&e->lock);
    bool stale = t->epoch != p->tmpl_epoch;
    bool stopping = e->stopping;
    pthread_mutex_unlock(&e->lock);

    /* Check it at once, still holding it, rather than at the next pass
     * (not while stopping: nothing new starts then). When it is ready,
     * recording the clone and moving it to ready go to Redis in one
     * round trip. */
    bool ready = false;
    if (!stale && !stopping) {
        vmp_err rerr = {0};
        if (vmp_provider_vm_ready(t->prov->p, p->name, name, &ready, &rerr) != 0) {
            vmp_log_vm(VMP_LOG_DEBUG, ENG_SUBSYS, p->name, name, "not ready: %s", rerr.msg);
            ready = false;
        }
    }
    vmp_store_clone_step cs = {
        .pool = p->name,
        .vm = name,
        .seconds = secs,
        .ip = ip[0] ? ip : NULL,
        .now = now,
        .ready = ready,
        .lifetime_auth = t->gen->cfg->global.vm_lifetime_auth,
    };
    vmp_err cerr = {0};
    int src = vmp_store_clone_step_run(st, &cs, &cerr);
    if (src != 0)
        cs.done_rc = cs.ready_rc = src;
    if (cs.done_rc != 0)
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, name, "recording the clone: %s", cerr.msg);
    vmp_metrics_gauge(e->metrics, secs, "vmpooler_clone.%s", p->name);
    vmp_metrics_timing(e->metrics, secs, "clone.%s", p->name);
    vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, name, "cloned in %.2f seconds", secs);
    eng_event(e, VMP_ENGINE_EV_CLONE_DONE, p->name, name, secs, NULL);

    if (stale) {
        /* the template changed while it was cloning: not worth keeping */
        vmp_err merr = {0};
        if (vmp_store_move(st, p->name, name, VMP_VM_PENDING, VMP_VM_COMPLETED, &merr) == 0)
            vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, name,
                       "cloned from the previous template; moved to completed");
    } else if (!stopping) {
        if (ready && cs.ready_rc == 0)
            eng_pending_ready_apply(e, p, rec, cs.outcome, cs.boot, now);
        else if (ready && cs.ready_rc != VMP_ESTATE) /* ESTATE: moved away meanwhile */
            vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, p->name, name, "moving to ready: %s", cerr.msg);
        else if (!ready)
            eng_fail_pending(e, p, pc, t->gen, rec, name, true, st);
    }
}
