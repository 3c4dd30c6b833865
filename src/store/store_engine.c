/*
 * store_engine.c: what the lifecycle engine needs beyond the lifecycle
 * moves: manager heartbeats with their in-flight clone counts (from which
 * `tasks__clone` and `tasks__ondemandclone` are rewritten as the sum of the
 * live managers' counts), taking over what a dead manager held, and the
 * global migration set with the owner of each entry.
 *
 * Keys (vmpool extensions):
 *   <prefix>__managers            set of manager owner ids that beat
 *   <prefix>__manager__<owner>    hash node, pid, start, clone,
 *                                 ondemandclone; expires unless renewed
 *   <prefix>__migration__owner    hash vm -> owner of each entry of
 *                                 `<prefix>__migration`
 *
 * Their scripts are in store_scripts.c with the others.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

int vmp_store_manager_beat(vmp_store *s, const vmp_store_manager *m, long long ttl_ms,
                           unsigned flags, long long *clones_total, long long *od_total,
                           vmp_strlist *peers, vmp_err *err)
{
    if (!s || !m || !m->owner || !m->owner[0] || ttl_ms <= 0)
        return vmp_err_set(err, VMP_EINVAL, "vmp_store_manager_beat: bad arguments");
    st_args a = {0};
    st_args_add(&a, m->owner);
    st_args_addf(&a, "%lld", ttl_ms);
    st_args_add(&a, m->node ? m->node : "");
    st_args_addf(&a, "%lld", m->pid);
    st_args_add(&a, m->start ? m->start : "");
    st_args_addf(&a, "%lld", m->clones > 0 ? m->clones : 0);
    st_args_addf(&a, "%lld", m->ondemand_clones > 0 ? m->ondemand_clones : 0);
    st_args_add(&a, (flags & VMP_STORE_BEAT_FINAL) ? "1" : "0");
    st_args_add(&a, (flags & VMP_STORE_BEAT_RESET_LEGACY) ? "1" : "0");
    redisReply *r = NULL;
    int rc = st_eval(s, SCR_MANAGER_BEAT, &a, &r, err);
    st_args_free(&a);
    if (rc < 0)
        return rc;
    vmp_strlist l = VMP_STRLIST_INIT;
    rc = st_reply_list(s, r, &l, err);
    freeReplyObject(r);
    if (rc == 0 && (l.n < 2 || (l.n - 2) % 4 != 0))
        rc = st_bad_reply(s, "manager_beat", err);
    if (rc == 0) {
        long long c = 0, o = 0;
        vmp_parse_long(l.v[0], &c);
        vmp_parse_long(l.v[1], &o);
        if (clones_total)
            *clones_total = c;
        if (od_total)
            *od_total = o;
        for (size_t i = 2; peers && i < l.n; i++)
            vmp_strlist_push(peers, l.v[i]);
    }
    vmp_strlist_clear(&l);
    return rc;
}

int vmp_store_manager_reap(vmp_store *s, const char *owner, const char *const *leases,
                           size_t nleases, long long *freed, vmp_err *err)
{
    if (!s || !owner || !owner[0])
        return vmp_err_set(err, VMP_EINVAL, "vmp_store_manager_reap: bad arguments");
    st_args a = {0};
    st_args_add(&a, owner);
    for (size_t i = 0; i < nleases; i++)
        st_args_add(&a, leases[i]);
    int rc = st_eval_int(s, SCR_MANAGER_REAP, &a, freed, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_migration_claim(vmp_store *s, const char *vm, const char *owner, long long limit,
                              bool *taken, vmp_err *err)
{
    if (!s || !vm || !owner || !taken)
        return vmp_err_set(err, VMP_EINVAL, "vmp_store_migration_claim: bad arguments");
    st_args a = {0};
    st_args_add(&a, vm);
    st_args_add(&a, owner);
    st_args_addf(&a, "%lld", limit);
    long long v = 0;
    int rc = st_eval_int(s, SCR_MIGRATION_CLAIM, &a, &v, err);
    st_args_free(&a);
    if (rc == 0)
        *taken = v == 1;
    return rc;
}

int vmp_store_migration_release(vmp_store *s, const char *vm, vmp_err *err)
{
    if (!s || !vm)
        return vmp_err_set(err, VMP_EINVAL, "vmp_store_migration_release: bad arguments");
    st_args a = {0};
    st_args_add(&a, vm);
    int rc = st_eval_int(s, SCR_MIGRATION_RELEASE, &a, NULL, err);
    st_args_free(&a);
    return rc;
}

/* ---- a clone's bookkeeping in one round trip ---------------------------------- */

/* The pending_ready reply: 0, VMP_ESTATE, or a bad-reply error. */
static int parse_ready(vmp_store *s, vmp_store_clone_step *c, const redisReply *r, vmp_err *err)
{
    long long code = 0;
    int rc = st_reply_code(s, r, "pending_ready", &code, err);
    if (rc < 0)
        return rc;
    if (code < 0)
        return vmp_err_set(err, VMP_ESTATE, "pool %s: vm %s: not pending", c->pool, c->vm);
    if (r->elements < 2 || r->element[1]->type != REDIS_REPLY_STRING)
        return st_bad_reply(s, "pending_ready", err);
    c->outcome = code == 1 ? VMP_READY_ONDEMAND : code == 2 ? VMP_READY_ABANDONED : VMP_READY_POOL;
    double b = -1;
    if (vmp_parse_double(r->element[1]->str, &b) < 0)
        b = -1;
    c->boot = b;
    return 0;
}

/* An integer script reply: its value, or an error (VMP_EREDIS). */
static int reply_code(vmp_store *s, const char *what, const redisReply *r, long long *v,
                      vmp_err *err)
{
    if (r->type == REDIS_REPLY_ERROR)
        return st_script_error(s, what, r, err);
    return st_reply_int(s, r, v, err);
}

static void err_copy(vmp_err *dst, const vmp_err *src)
{
    if (dst)
        *dst = *src;
}

int vmp_store_clone_step_run(vmp_store *s, vmp_store_clone_step *c, vmp_err *err)
{
    if (!s || !c || !c->pool || !c->vm)
        return vmp_err_set(err, VMP_EINVAL, "vmp_store_clone_step_run: bad arguments");
    c->done_rc = c->ready_rc = 0;
    c->outcome = VMP_READY_POOL;
    c->boot = -1;
    st_sigpipe g;
    st_sigpipe_enter(&g);
    int rc = st_ensure(s, err); /* loads the scripts: their SHAs are known after */
    st_sigpipe_leave(&g);
    if (rc < 0)
        return rc;

    st_args cmds[2];
    memset(cmds, 0, sizeof cmds);
    size_t n = 0;
    char date[16], secs[32], ts[VMP_TIME_STR_MAX];
    st_date(c->now, date);
    st_time(c->now, ts);
    vmp_duration_format(c->seconds, secs, sizeof secs);
    /* clone done */
    st_eval_command(s, "EVALSHA", s->sha[SCR_CLONE_DONE], NULL, &cmds[n]);
    st_args_add(&cmds[n], c->pool);
    st_args_add(&cmds[n], c->vm);
    st_args_add(&cmds[n], date);
    st_args_add(&cmds[n], secs);
    st_args_add(&cmds[n], c->ip);
    n++;
    int i_ready = -1;
    if (c->ready) {
        i_ready = (int)n;
        st_eval_command(s, "EVALSHA", s->sha[SCR_PENDING_READY], NULL, &cmds[n]);
        st_args_add(&cmds[n], c->pool);
        st_args_add(&cmds[n], c->vm);
        st_args_add(&cmds[n], ts);
        st_args_addf(&cmds[n], "%.6f", c->now);
        st_args_add(&cmds[n], date);
        st_args_addf(&cmds[n], "%lld", c->lifetime_auth);
        n++;
    }
    redisReply *rep[2] = {NULL, NULL};
    rc = st_pipeline(s, false, cmds, n, rep, err);
    for (size_t i = 0; i < n; i++)
        st_args_free(&cmds[i]);
    if (rc < 0)
        return rc;

    /* each step on its own: a server that lost its script cache runs it
     * again through the ordinary call (which loads it) */
    long long v = 0;
    vmp_err e1 = {0};
    if (st_noscript(rep[0]))
        c->done_rc = vmp_store_clone_done(s, c->pool, c->vm, c->seconds, c->ip, c->now, &e1);
    else if ((c->done_rc = reply_code(s, "clone_done", rep[0], &v, &e1)) == 0 && v == 0)
        c->done_rc = vmp_err_set(&e1, VMP_ESTATE, "pool %s: vm %s: no VM hash", c->pool, c->vm);
    if (c->done_rc)
        err_copy(err, &e1);
    if (i_ready >= 0) {
        vmp_err e2 = {0};
        if (st_noscript(rep[i_ready]))
            c->ready_rc = vmp_store_pending_ready(s, c->pool, c->vm, c->lifetime_auth, c->now,
                                                  &c->outcome, &c->boot, &e2);
        else if (rep[i_ready]->type == REDIS_REPLY_ERROR)
            c->ready_rc = st_script_error(s, "pending_ready", rep[i_ready], &e2);
        else
            c->ready_rc = parse_ready(s, c, rep[i_ready], &e2);
        if (c->ready_rc && !c->done_rc)
            err_copy(err, &e2);
    }
    for (size_t i = 0; i < n; i++)
        if (rep[i])
            freeReplyObject(rep[i]);
    return 0;
}
