/*
 * ondemand: the on-demand provisioner (reference §4.10).
 *
 * One iteration: new requests become clone work items, work items become
 * clones within ondemand_clone_limit, and requests being filled are
 * checked for completion or expiry. Only the manager holding the
 * provisioner's lease runs it. The clones themselves are ordinary clone
 * tasks carrying the request id and alias; their VMs join the request
 * through the pending check (T3').
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "log.h"

/* Splits "<alias>:<pool>:<n>:<id>" in place. */
static bool parse_task(char *s, char **alias, char **pool, long long *n, char **id)
{
    char *a = s, *p = strchr(a, ':');
    if (!p)
        return false;
    *p++ = '\0';
    char *c = strchr(p, ':');
    if (!c)
        return false;
    *c++ = '\0';
    char *i = strchr(c, ':');
    if (!i)
        return false;
    *i++ = '\0';
    if (vmp_parse_long(c, n) != 0 || *n < 0 || !*i || !*p)
        return false;
    *alias = a;
    *pool = p;
    *id = i;
    return true;
}

/* Step 1: requests -> work items. */
static int accept_requests(vmp_engine *e, vmp_store *st, double now, long long *count, vmp_err *err)
{
    vmp_store_zlist reqs = {0};
    int rc = vmp_store_od_zrange(st, VMP_OD_REQUEST, &reqs, err);
    if (rc != 0)
        return rc;
    *count += (long long)reqs.n;
    for (size_t i = 0; i < reqs.n; i++) {
        const char *id = reqs.v[i].member;
        vmp_strlist kv = VMP_STRLIST_INIT, tasks = VMP_STRLIST_INIT;
        vmp_err rerr = {0};
        int grc = vmp_store_od_request_get(st, id, &kv, &rerr);
        const char *requested = grc == 0 ? vmp_store_kv_get(&kv, "requested") : NULL;
        const char *status = grc == 0 ? vmp_store_kv_get(&kv, "status") : NULL;
        if (grc != 0 && grc != VMP_ENOENT) {
            vmp_strlist_clear(&kv);
            continue;
        }
        if (!requested || !requested[0]) {
            vmp_log(VMP_LOG_WARN, ENG_SUBSYS, "on-demand request %s has no requested VMs; dropped",
                    id);
            vmp_store_od_zrem(st, VMP_OD_REQUEST, id, &rerr);
        } else if (status && strcmp(status, "failed") == 0) {
            vmp_store_od_zrem(st, VMP_OD_REQUEST, id, &rerr);
        } else {
            char *copy = strdup(requested);
            for (char *save = NULL, *part = copy ? strtok_r(copy, ",", &save) : NULL; part;
                 part = strtok_r(NULL, ",", &save))
            {
                char *m = vmp_asprintf("%s:%s", part, id);
                if (m)
                    vmp_strlist_push_owned(&tasks, m);
            }
            free(copy);
            if (vmp_store_od_request_start(st, id, (const char *const *)tasks.v, tasks.n, now,
                                           &rerr) == 0)
                vmp_log(VMP_LOG_INFO, ENG_SUBSYS, "on-demand request %s accepted (%s)", id,
                        requested);
        }
        vmp_strlist_clear(&kv);
        vmp_strlist_clear(&tasks);
    }
    vmp_store_zlist_clear(&reqs);
    return 0;
}

/* Step 2: work items -> clones, within the on-demand clone limit. */
static int start_clones(vmp_engine *e, vmp_store *st, long long *count, vmp_err *err)
{
    vmp_store_zlist items = {0};
    int rc = vmp_store_od_zrange(st, VMP_OD_TASK, &items, err);
    if (rc != 0)
        return rc;
    *count += (long long)items.n;
    for (size_t i = 0; i < items.n; i++) {
        const char *member = items.v[i].member;
        char *copy = strdup(member);
        char *alias, *pool, *id;
        long long n;
        vmp_err terr = {0};
        if (!copy)
            break;
        if (!parse_task(copy, &alias, &pool, &n, &id)) {
            vmp_log(VMP_LOG_WARN, ENG_SUBSYS, "malformed on-demand task '%s'; dropped", member);
            vmp_store_od_zrem(st, VMP_OD_TASK, member, &terr);
            free(copy);
            continue;
        }
        pthread_mutex_lock(&e->lock);
        if (e->od_clones >= e->od_limit || e->stopping) {
            pthread_mutex_unlock(&e->lock);
            free(copy);
            break;
        }
        eng_pool *p = eng_pool_find(e, pool);
        if (!p || !p->configured || !p->prov) {
            pthread_mutex_unlock(&e->lock);
            vmp_log(VMP_LOG_WARN, ENG_SUBSYS, "on-demand task for unknown pool %s; dropped", pool);
            vmp_store_od_zrem(st, VMP_OD_TASK, member, &terr);
            free(copy);
            continue;
        }
        long long slots = e->od_limit - e->od_clones;
        long long k = n < slots ? n : slots, made = 0;
        for (long long j = 0; j < k; j++) {
            eng_task *t = eng_clone_task_new(e, p, true);
            if (!t)
                break;
            t->arg = strdup(id);
            t->arg2 = strdup(alias);
            eng_task_push(e, t);
            made++;
        }
        pthread_mutex_unlock(&e->lock);
        if (made >= n) {
            vmp_store_od_zrem(st, VMP_OD_TASK, member, &terr);
        } else {
            char *rest = vmp_asprintf("%s:%s:%lld:%s", alias, pool, n - made, id);
            if (rest)
                vmp_store_od_task_replace(st, member, rest, &terr);
            free(rest);
        }
        if (made)
            vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, pool, NULL,
                       "on-demand request %s: %lld clones started", id, made);
        free(copy);
    }
    vmp_store_zlist_clear(&items);
    return 0;
}

/* Step 3: requests being filled: done, or expired. */
static int check_processing(vmp_engine *e, vmp_store *st, double now, long long ttl_min,
                            long long *count, vmp_err *err)
{
    vmp_store_zlist procs = {0};
    int rc = vmp_store_od_zrange(st, VMP_OD_PROCESSING, &procs, err);
    if (rc != 0)
        return rc;
    *count += (long long)procs.n;
    for (size_t i = 0; i < procs.n; i++) {
        const char *id = procs.v[i].member;
        vmp_err perr = {0};
        if (now - procs.v[i].score > (double)ttl_min * 60) {
            if (vmp_store_od_request_expire(st, id, &perr) == 0)
                vmp_log(VMP_LOG_WARN, ENG_SUBSYS,
                        "on-demand request %s not filled within %lld minutes; failed", id, ttl_min);
            else if (perr.code == VMP_ENOENT)
                vmp_store_od_zrem(st, VMP_OD_PROCESSING, id, &perr);
            continue;
        }
        bool ready = false;
        int crc = vmp_store_od_request_check_ready(st, id, &ready, &perr);
        if (crc == 0 && ready)
            vmp_log(VMP_LOG_INFO, ENG_SUBSYS, "on-demand request %s is ready", id);
        else if (crc == VMP_ENOENT)
            vmp_store_od_zrem(st, VMP_OD_PROCESSING, id, &perr);
    }
    vmp_store_zlist_clear(&procs);
    return 0;
}

int eng_ondemand_step(vmp_engine *e, vmp_store *st, long long *activity, vmp_err *err)
{
    long long n = 0;
    pthread_mutex_lock(&e->lock);
    long long ttl =
        e->cur->cfg->global.ondemand_request_ttl > 0 ? e->cur->cfg->global.ondemand_request_ttl : 5;
    pthread_mutex_unlock(&e->lock);
    double now = eng_now(e);
    int rc = accept_requests(e, st, now, &n, err);
    if (rc == 0)
        rc = start_clones(e, st, &n, err);
    if (rc == 0)
        rc = check_processing(e, st, now, ttl, &n, err);
    if (activity)
        *activity = n;
    return rc;
}

void eng_task_ondemand(vmp_engine *e, eng_task *t, vmp_store *st)
{
    vmp_err err = {0};
    long long activity = 0;
    if (eng_ondemand_step(e, st, &activity, &err) != 0)
        vmp_log(VMP_LOG_WARN, ENG_SUBSYS, "on-demand provisioner: %s", err.msg);
    const vmp_global_cfg *g = &t->gen->cfg->global;
    double dmin = g->check_loop_delay_min > 0 ? g->check_loop_delay_min : 5;
    double dmax = g->check_loop_delay_max >= dmin ? g->check_loop_delay_max : dmin;
    double decay = g->check_loop_delay_decay > 1.0 ? g->check_loop_delay_decay : 2.0;
    pthread_mutex_lock(&e->lock);
    if (activity > 0 || e->od_delay <= 0)
        e->od_delay = dmin;
    else if ((e->od_delay *= decay) > dmax)
        e->od_delay = dmax;
    e->od_due = eng_now(e) + e->od_delay;
    pthread_mutex_unlock(&e->lock);
}
