/*
 * store_vm.c: VM lifecycle moves (reference §3.1), each one atomic round
 * trip, and the API's checkout / rollback / return.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

static int estate(vmp_err *err, const char *pool, const char *vm, const char *why)
{
    return vmp_err_set(err, VMP_ESTATE, "pool %s: vm %s: %s", pool, vm, why);
}

int vmp_store_clone_start(vmp_store *s, const char *pool, const char *vm, const char *domain,
                          const char *request_id, const char *pool_alias, double now, vmp_err *err)
{
    char ts[VMP_TIME_STR_MAX];
    st_time(now, ts);
    st_args a = {0};
    st_args_add(&a, pool);
    st_args_add(&a, vm);
    st_args_add(&a, ts);
    st_args_add(&a, domain);
    st_args_add(&a, request_id);
    st_args_add(&a, pool_alias);
    long long v = 0;
    int rc = st_eval_int(s, SCR_CLONE_START, &a, &v, err);
    st_args_free(&a);
    if (rc == 0 && v == 0)
        rc = vmp_err_set(err, VMP_EEXIST, "pool %s: vm %s: a VM of that name exists", pool, vm);
    return rc;
}

int vmp_store_clone_done(vmp_store *s, const char *pool, const char *vm, double seconds,
                         const char *ip, double now, vmp_err *err)
{
    char date[16], secs[32];
    st_date(now, date);
    vmp_duration_format(seconds, secs, sizeof secs);
    st_args a = {0};
    st_args_add(&a, pool);
    st_args_add(&a, vm);
    st_args_add(&a, date);
    st_args_add(&a, secs);
    st_args_add(&a, ip);
    long long v = 0;
    int rc = st_eval_int(s, SCR_CLONE_DONE, &a, &v, err);
    st_args_free(&a);
    if (rc == 0 && v == 0)
        rc = estate(err, pool, vm, "no VM hash (forgotten while cloning)");
    return rc;
}

int vmp_store_clone_failed(vmp_store *s, const char *pool, const char *vm, const char *error_msg,
                           const char *error_class, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, pool);
    st_args_add(&a, vm);
    st_args_addf(&a, "%lld", s->data_ttl * 3600);
    st_args_add(&a, error_msg);
    st_args_add(&a, error_class);
    long long v = 0;
    int rc = st_eval_int(s, SCR_CLONE_FAILED, &a, &v, err);
    st_args_free(&a);
    if (rc == 0 && v == 0)
        rc = estate(err, pool, vm, "neither pending nor recorded");
    return rc;
}

int vmp_store_pending_ready(vmp_store *s, const char *pool, const char *vm, long long lifetime_auth,
                            double now, vmp_ready_outcome *outcome, double *boot_seconds,
                            vmp_err *err)
{
    char ts[VMP_TIME_STR_MAX], date[16];
    st_time(now, ts);
    st_date(now, date);
    st_args a = {0};
    st_args_add(&a, pool);
    st_args_add(&a, vm);
    st_args_add(&a, ts);
    st_args_addf(&a, "%.6f", now);
    st_args_add(&a, date);
    st_args_addf(&a, "%lld", lifetime_auth);
    redisReply *r = NULL;
    int rc = st_eval(s, SCR_PENDING_READY, &a, &r, err);
    st_args_free(&a);
    if (rc < 0)
        return rc;
    long long code = 0;
    rc = st_reply_code(s, r, "pending_ready", &code, err);
    if (rc < 0)
        goto out;
    if (code < 0) {
        rc = estate(err, pool, vm, "not pending");
        goto out;
    }
    if (r->elements < 2 || r->element[1]->type != REDIS_REPLY_STRING) {
        rc = st_bad_reply(s, "pending_ready", err);
        goto out;
    }
    if (outcome)
        *outcome = code == 1   ? VMP_READY_ONDEMAND
                   : code == 2 ? VMP_READY_ABANDONED
                               : VMP_READY_POOL;
    if (boot_seconds) {
        double b = -1;
        if (vmp_parse_double(r->element[1]->str, &b) < 0)
            b = -1;
        *boot_seconds = b;
    }
out:
    freeReplyObject(r);
    return rc;
}

int vmp_store_move(vmp_store *s, const char *pool, const char *vm, vmp_vm_state from,
                   vmp_vm_state to, vmp_err *err)
{
    if ((unsigned)from >= VMP_VM_NSTATES || (unsigned)to >= VMP_VM_NSTATES || from == to)
        return vmp_err_set(err, VMP_EINVAL, "invalid move %d -> %d", (int)from, (int)to);
    st_args a = {0};
    st_args_add(&a, "SMOVE");
    st_args_key(&a, s, vmp_vm_state_name(from), pool);
    st_args_key(&a, s, vmp_vm_state_name(to), pool);
    st_args_add(&a, vm);
    long long v = 0;
    int rc = st_run_int(s, false, &a, &v, err);
    st_args_free(&a);
    if (rc == 0 && v == 0)
        rc = vmp_err_set(err, VMP_ESTATE, "pool %s: vm %s: not %s", pool, vm,
                         vmp_vm_state_name(from));
    return rc;
}

int vmp_store_remove(vmp_store *s, const char *pool, const char *vm, vmp_vm_state st, vmp_err *err)
{
    if ((unsigned)st >= VMP_VM_NSTATES)
        return vmp_err_set(err, VMP_EINVAL, "invalid VM state %d", (int)st);
    st_args a = {0};
    st_args_add(&a, "SREM");
    st_args_key(&a, s, vmp_vm_state_name(st), pool);
    st_args_add(&a, vm);
    long long v = 0;
    int rc = st_run_int(s, false, &a, &v, err);
    st_args_free(&a);
    if (rc == 0 && v == 0)
        rc =
            vmp_err_set(err, VMP_ESTATE, "pool %s: vm %s: not %s", pool, vm, vmp_vm_state_name(st));
    return rc;
}

int vmp_store_vm_mark_checked(vmp_store *s, const char *vm, double now, vmp_err *err)
{
    char ts[VMP_TIME_STR_MAX];
    st_time(now, ts);
    return vmp_store_vm_set(s, vm, "check", ts, err);
}

int vmp_store_vms_mark_checked(vmp_store *s, const char *const *vms, size_t n, double now,
                               vmp_err *err)
{
    if (n == 0)
        return 0;
    char ts[VMP_TIME_STR_MAX];
    st_time(now, ts);
    st_args *cmds = calloc(n, sizeof *cmds);
    redisReply **r = calloc(n, sizeof *r);
    int rc = 0;
    if (!cmds || !r) {
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        st_args_add(&cmds[i], "HSET");
        st_args_key(&cmds[i], s, "vm", vms[i]);
        st_args_add(&cmds[i], "check");
        st_args_add(&cmds[i], ts);
    }
    if ((rc = st_pipeline(s, true, cmds, n, r, err)) < 0)
        goto out;
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (r[i]->type == REDIS_REPLY_ERROR)
            rc = vmp_err_set(err, VMP_EREDIS, "redis %s: HSET: %s", s->addr, r[i]->str);
out:
    for (size_t i = 0; cmds && i < n; i++) {
        st_args_free(&cmds[i]);
        if (r && r[i])
            freeReplyObject(r[i]);
    }
    free(cmds);
    free(r);
    return rc;
}

/* Runs a script taking (pool, vm [, extra]) that returns 1 when done. */
static int pool_vm_script(vmp_store *s, st_script id, const char *pool, const char *vm,
                          const char *extra1, const char *extra2, long long *v, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, pool);
    st_args_add(&a, vm);
    if (extra1)
        st_args_add(&a, extra1);
    if (extra2)
        st_args_add(&a, extra2);
    int rc = st_eval_int(s, id, &a, v, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_discover(vmp_store *s, const char *pool, const char *vm, vmp_err *err)
{
    long long v = 0;
    int rc = pool_vm_script(s, SCR_DISCOVER, pool, vm, NULL, NULL, &v, err);
    if (rc == 0 && v == 0)
        rc = estate(err, pool, vm, "already known");
    return rc;
}

int vmp_store_discovered_resolve(vmp_store *s, const char *pool, const char *vm, bool *completed,
                                 vmp_err *err)
{
    long long v = 0;
    int rc = pool_vm_script(s, SCR_DISCOVERED_RESOLVE, pool, vm, NULL, NULL, &v, err);
    if (rc < 0)
        return rc;
    if (v < 0)
        return estate(err, pool, vm, "not discovered");
    if (completed)
        *completed = v == 1;
    return 0;
}

int vmp_store_destroy_start(vmp_store *s, const char *pool, const char *vm, double now,
                            vmp_err *err)
{
    char ts[VMP_TIME_STR_MAX], ttl[32];
    st_time(now, ts);
    snprintf(ttl, sizeof ttl, "%lld", s->data_ttl * 3600);
    long long v = 0;
    int rc = pool_vm_script(s, SCR_DESTROY_START, pool, vm, ts, ttl, &v, err);
    if (rc == 0 && v == 0)
        rc = estate(err, pool, vm, "not completed");
    return rc;
}

int vmp_store_destroy_done(vmp_store *s, const char *pool, const char *vm, vmp_err *err)
{
    return vmp_store_remove(s, pool, vm, VMP_VM_COMPLETED, err);
}

int vmp_store_forget(vmp_store *s, const char *pool, const char *vm, vmp_err *err)
{
    long long v = 0;
    int rc = pool_vm_script(s, SCR_FORGET, pool, vm, NULL, NULL, &v, err);
    if (rc == 0 && v == 0)
        rc = estate(err, pool, vm, "not completed");
    return rc;
}

int vmp_store_drain(vmp_store *s, const char *pool, long long *moved, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, pool);
    int rc = st_eval_int(s, SCR_DRAIN, &a, moved, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_remove_excess(vmp_store *s, const char *pool, long long n, bool all_pending,
                            long long *moved, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, pool);
    st_args_addf(&a, "%lld", n > 0 ? n : 0);
    st_args_add(&a, all_pending ? "1" : "0");
    int rc = st_eval_int(s, SCR_REMOVE_EXCESS, &a, moved, err);
    st_args_free(&a);
    return rc;
}

/* ---- checkout ------------------------------------------------------------ */

void vmp_store_checkout_result_clear(vmp_store_checkout_result *res)
{
    if (!res)
        return;
    for (size_t i = 0; i < res->nvms; i++) {
        free(res->vms[i].pool);
        free(res->vms[i].vm);
    }
    free(res->vms);
    res->vms = NULL;
    res->nvms = 0;
}

void st_checkout_args(const vmp_store_want *wants, size_t nwants,
                      const vmp_store_checkout_opts *opts, st_args *a)
{
    char ts[VMP_TIME_STR_MAX];
    st_time(opts->now, ts);
    st_args_add(a, ts);
    st_args_add(a, opts->token);
    st_args_add(a, opts->token ? opts->user : NULL);
    st_args_addf(a, "%lld", opts->lifetime > 0 ? opts->lifetime : 0);
    st_args_addf(a, "%zu", nwants);
    for (size_t i = 0; i < nwants; i++) {
        st_args_addf(a, "%zu", wants[i].npools);
        for (size_t j = 0; j < wants[i].npools; j++)
            st_args_add(a, wants[i].pools[j]);
    }
}

int st_checkout_parse(vmp_store *s, const redisReply *r, const vmp_store_want *wants,
                      size_t nwants, vmp_store_checkout_result *res, vmp_err *err)
{
    res->vms = NULL;
    res->nvms = 0;
    res->empty_want = -1;
    long long code = 0;
    int rc = st_reply_code(s, r, "checkout", &code, err);
    if (rc < 0)
        return rc;
    if (code == 0) {
        long long idx = 0;
        if (r->elements < 2 || st_reply_int(s, r->element[1], &idx, err) < 0 || idx < 0 ||
            (size_t)idx >= nwants)
            return st_bad_reply(s, "checkout", err);
        res->empty_want = (long)idx;
        return vmp_err_set(err, VMP_EAGAIN, "no ready VM for %s",
                           wants[idx].name ? wants[idx].name : "?");
    }
    if (r->elements != 1 + 2 * nwants)
        return st_bad_reply(s, "checkout", err);
    res->vms = calloc(nwants, sizeof *res->vms);
    if (!res->vms)
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    for (size_t i = 0; i < nwants; i++) {
        vmp_store_checked_out *c = &res->vms[i];
        c->want = i;
        res->nvms = i + 1;
        if ((rc = st_reply_str(s, r->element[1 + 2 * i], &c->pool, err)) < 0 ||
            (rc = st_reply_str(s, r->element[2 + 2 * i], &c->vm, err)) < 0)
            break;
        if (!c->pool || !c->vm) {
            rc = st_bad_reply(s, "checkout", err);
            break;
        }
    }
    /* A failure after the script ran leaves the VMs checked out in Redis;
     * only an out-of-memory can get here, and the VMs then expire through
     * their lifetime like any other checkout. */
    if (rc < 0)
        vmp_store_checkout_result_clear(res);
    return rc;
}

int vmp_store_checkout(vmp_store *s, const vmp_store_want *wants, size_t nwants,
                       const vmp_store_checkout_opts *opts, vmp_store_checkout_result *res,
                       vmp_err *err)
{
    res->vms = NULL;
    res->nvms = 0;
    res->empty_want = -1;
    if (nwants == 0)
        return 0;
    st_args a = {0};
    st_checkout_args(wants, nwants, opts, &a);
    redisReply *r = NULL;
    int rc = st_eval(s, SCR_CHECKOUT, &a, &r, err);
    st_args_free(&a);
    if (rc < 0)
        return rc;
    rc = st_checkout_parse(s, r, wants, nwants, res, err);
    freeReplyObject(r);
    return rc;
}

int vmp_store_checkout_rollback(vmp_store *s, const char *pool, const char *vm, vmp_err *err)
{
    long long v = 0;
    int rc = pool_vm_script(s, SCR_ROLLBACK, pool, vm, NULL, NULL, &v, err);
    if (rc == 0 && v == 0)
        rc = estate(err, pool, vm, "not running");
    return rc;
}

int vmp_store_vm_return(vmp_store *s, const char *vm, char **pool_out, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, vm);
    redisReply *r = NULL;
    int rc = st_eval(s, SCR_VM_RETURN, &a, &r, err);
    st_args_free(&a);
    if (rc < 0)
        return rc;
    long long code = 0;
    rc = st_reply_code(s, r, "vm_return", &code, err);
    if (rc < 0)
        goto out;
    if (code == -2) {
        rc = vmp_err_set(err, VMP_ENOENT, "vm %s: no such VM", vm);
        goto out;
    }
    if (r->elements < 2) {
        rc = st_bad_reply(s, "vm_return", err);
        goto out;
    }
    if (pool_out && (rc = st_reply_str(s, r->element[1], pool_out, err)) < 0)
        goto out;
    if (code < 0)
        rc = vmp_err_set(err, VMP_ESTATE, "pool %s: vm %s: not running", r->element[1]->str, vm);
out:
    freeReplyObject(r);
    return rc;
}
