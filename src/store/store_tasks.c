/*
 * store_tasks.c: what the API writes about a VM (lifetime, tags) and the
 * task workers' queues and results (disk, snapshot), auth tokens, and the
 * on-demand request keys (reference §2.4, §4.10).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

static int no_hash(vmp_err *err, const char *vm)
{
    return vmp_err_set(err, VMP_ENOENT, "vm %s: no such VM", vm);
}

/* ---- VM details ------------------------------------------------------------ */

static int hset_if_exists(vmp_store *s, const char *vm, const char *field, const char *value,
                          vmp_err *err)
{
    st_args a = {0};
    st_args_key(&a, s, "vm", vm);
    st_args_add(&a, field);
    st_args_add(&a, value);
    long long v = 0;
    int rc = st_eval_int(s, SCR_HSET_IF_EXISTS, &a, &v, err);
    st_args_free(&a);
    if (rc == 0 && v == 0)
        rc = no_hash(err, vm);
    return rc;
}

int vmp_store_vm_lifetime_set(vmp_store *s, const char *vm, long long hours, vmp_err *err)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", hours);
    return hset_if_exists(s, vm, "lifetime", buf, err);
}

int vmp_store_vm_tag_set(vmp_store *s, const char *vm, const char *name, const char *value,
                         double now, vmp_err *err)
{
    char date[16];
    st_date(now, date);
    st_args a = {0};
    st_args_add(&a, vm);
    st_args_add(&a, name);
    st_args_add(&a, value);
    st_args_add(&a, date);
    long long v = 0;
    int rc = st_eval_int(s, SCR_TAG_SET, &a, &v, err);
    st_args_free(&a);
    if (rc == 0 && v == 0)
        rc = no_hash(err, vm);
    return rc;
}

int vmp_store_vm_disk_add(vmp_store *s, const char *vm, long long gb, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, vm);
    st_args_addf(&a, "%lld", gb);
    long long v = 0;
    int rc = st_eval_int(s, SCR_DISK_ADD, &a, &v, err);
    st_args_free(&a);
    if (rc == 0 && v == 0)
        rc = no_hash(err, vm);
    return rc;
}

int vmp_store_vm_snapshot_set(vmp_store *s, const char *vm, const char *name, double now,
                              vmp_err *err)
{
    char ts[VMP_TIME_STR_MAX];
    st_time(now, ts);
    char *field = vmp_asprintf("snapshot:%s", name);
    if (!field)
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    int rc = hset_if_exists(s, vm, field, ts, err);
    free(field);
    return rc;
}

/* ---- task queues ------------------------------------------------------------ */

static const char *task_key(vmp_store_task q)
{
    switch (q) {
    case VMP_TASK_DISK:
        return "disk";
    case VMP_TASK_SNAPSHOT:
        return "snapshot";
    case VMP_TASK_SNAPSHOT_REVERT:
        return "snapshot-revert";
    }
    return NULL;
}

int vmp_store_task_push(vmp_store *s, vmp_store_task q, const char *vm, const char *arg,
                        vmp_err *err)
{
    const char *k = task_key(q);
    if (!k)
        return vmp_err_set(err, VMP_EINVAL, "invalid task queue %d", (int)q);
    st_args a = {0};
    st_args_add(&a, "SADD");
    st_args_key(&a, s, "tasks", k);
    st_args_addf(&a, "%s:%s", vm, arg);
    int rc = st_run_int(s, true, &a, NULL, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_task_pop(vmp_store *s, vmp_store_task q, char **vm, char **arg, vmp_err *err)
{
    const char *k = task_key(q);
    if (!k)
        return vmp_err_set(err, VMP_EINVAL, "invalid task queue %d", (int)q);
    st_args a = {0};
    st_args_add(&a, "SPOP");
    st_args_key(&a, s, "tasks", k);
    char *m = NULL;
    int rc = st_run_str(s, false, &a, &m, err);
    st_args_free(&a);
    if (rc < 0 || !m)
        return rc;
    char *colon = strchr(m, ':');
    char *v = colon ? strndup(m, (size_t)(colon - m)) : strdup(m);
    char *g = strdup(colon ? colon + 1 : "");
    free(m);
    if (!v || !g) {
        free(v);
        free(g);
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    }
    *vm = v;
    *arg = g;
    return 0;
}

/* ---- tokens ------------------------------------------------------------------ */

int vmp_store_token_create(vmp_store *s, const char *token, const char *user, double now,
                           vmp_err *err)
{
    char ts[VMP_TIME_STR_MAX];
    st_time(now, ts);
    st_args a = {0};
    st_args_add(&a, token);
    st_args_add(&a, user);
    st_args_add(&a, ts);
    long long v = 0;
    int rc = st_eval_int(s, SCR_TOKEN_CREATE, &a, &v, err);
    st_args_free(&a);
    if (rc == 0 && v == 0)
        rc = vmp_err_set(err, VMP_EEXIST, "token exists");
    return rc;
}

int vmp_store_token_get(vmp_store *s, const char *token, vmp_strlist *kv, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, "HGETALL");
    st_args_key(&a, s, "token", token);
    size_t before = kv->n;
    int rc = st_run_list(s, true, &a, kv, err);
    st_args_free(&a);
    if (rc == 0 && kv->n == before)
        rc = vmp_err_set(err, VMP_ENOENT, "no such token");
    return rc;
}

int vmp_store_token_touch(vmp_store *s, const char *token, double now, char **user_out,
                          vmp_err *err)
{
    char ts[VMP_TIME_STR_MAX];
    st_time(now, ts);
    st_args a = {0};
    st_args_add(&a, token);
    st_args_add(&a, ts);
    redisReply *r = NULL;
    int rc = st_eval(s, SCR_TOKEN_TOUCH, &a, &r, err);
    st_args_free(&a);
    if (rc < 0)
        return rc;
    long long code = 0;
    rc = st_reply_code(s, r, "token_touch", &code, err);
    if (rc < 0)
        goto out;
    if (code == 0) {
        rc = vmp_err_set(err, VMP_ENOENT, "no such token");
        goto out;
    }
    if (user_out && r->elements > 1)
        rc = st_reply_str(s, r->element[1], user_out, err);
out:
    freeReplyObject(r);
    return rc;
}

int vmp_store_token_delete(vmp_store *s, const char *token, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, "DEL");
    st_args_key(&a, s, "token", token);
    long long v = 0;
    int rc = st_run_int(s, false, &a, &v, err);
    st_args_free(&a);
    if (rc == 0 && v == 0)
        rc = vmp_err_set(err, VMP_ENOENT, "no such token");
    return rc;
}

/* Escapes glob characters so the prefix matches itself in SCAN MATCH. */
static void add_glob_escaped(vmp_buf *b, const char *s)
{
    for (; *s; s++) {
        if (strchr("*?[]\\", *s))
            vmp_buf_append(b, "\\", 1);
        vmp_buf_append(b, s, 1);
    }
}

int vmp_store_token_list_by_user(vmp_store *s, const char *user, vmp_strlist *out, vmp_err *err)
{
    vmp_buf pat = VMP_BUF_INIT;
    add_glob_escaped(&pat, s->prefix);
    vmp_buf_puts(&pat, "__token__*");
    char *cursor = strdup("0");
    vmp_strlist keys = VMP_STRLIST_INIT;
    st_args *cmds = NULL;
    redisReply **rs = NULL;
    int rc = 0;
    if (pat.oom || !cursor) {
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
        goto out;
    }
    /* Collect the token keys with SCAN (never KEYS: it blocks the server). */
    do {
        st_args a = {0};
        st_args_add(&a, "SCAN");
        st_args_add(&a, cursor);
        st_args_add(&a, "MATCH");
        st_args_add(&a, vmp_buf_str(&pat));
        st_args_add(&a, "COUNT");
        st_args_add(&a, "500");
        redisReply *r = NULL;
        rc = st_run(s, true, &a, &r, err);
        st_args_free(&a);
        if (rc < 0)
            goto out;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING) {
            freeReplyObject(r);
            rc = st_bad_reply(s, "SCAN", err);
            goto out;
        }
        free(cursor);
        cursor = strdup(r->element[0]->str);
        rc = st_reply_list(s, r->element[1], &keys, err);
        freeReplyObject(r);
        if (rc < 0)
            goto out;
        if (!cursor) {
            rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
            goto out;
        }
    } while (strcmp(cursor, "0") != 0);
    if (keys.n == 0)
        goto out;
    cmds = calloc(keys.n, sizeof *cmds);
    rs = calloc(keys.n, sizeof *rs);
    if (!cmds || !rs) {
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < keys.n; i++) {
        st_args_add(&cmds[i], "HGET");
        st_args_add(&cmds[i], keys.v[i]);
        st_args_add(&cmds[i], "user");
    }
    if ((rc = st_pipeline(s, true, cmds, keys.n, rs, err)) < 0)
        goto out;
    size_t plen = strlen(s->prefix) + strlen("__token__");
    for (size_t i = 0; i < keys.n; i++) {
        if (rs[i]->type == REDIS_REPLY_STRING && strcmp(rs[i]->str, user) == 0 &&
            vmp_strlist_push(out, keys.v[i] + plen) < 0)
        {
            rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
            goto out;
        }
    }
out:
    if (cmds) {
        for (size_t i = 0; i < keys.n; i++) {
            st_args_free(&cmds[i]);
            if (rs && rs[i])
                freeReplyObject(rs[i]);
        }
    }
    free(cmds);
    free(rs);
    vmp_strlist_clear(&keys);
    free(cursor);
    vmp_buf_free(&pat);
    return rc;
}

/* ---- on-demand ----------------------------------------------------------------- */

static const char *odzset_key(vmp_store_odzset z)
{
    switch (z) {
    case VMP_OD_REQUEST:
        return "provisioning__request";
    case VMP_OD_PROCESSING:
        return "provisioning__processing";
    case VMP_OD_TASK:
        return "odcreate__task";
    }
    return NULL;
}

static int no_request(vmp_err *err, const char *id)
{
    return vmp_err_set(err, VMP_ENOENT, "no request found for request_id '%s'", id);
}

void vmp_store_zlist_clear(vmp_store_zlist *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].member);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

int vmp_store_od_request_create(vmp_store *s, const char *id, const char *requested,
                                const char *token, const char *user, double now, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, id);
    st_args_add(&a, requested);
    st_args_add(&a, token);
    st_args_add(&a, token ? user : NULL);
    st_args_addf(&a, "%lld", (long long)now);
    long long v = 0;
    int rc = st_eval_int(s, SCR_OD_CREATE, &a, &v, err);
    st_args_free(&a);
    if (rc == 0 && v == 0)
        rc = vmp_err_set(err, VMP_EEXIST, "request_id '%s' has already been created", id);
    return rc;
}

int vmp_store_od_request_get(vmp_store *s, const char *id, vmp_strlist *kv, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, "HGETALL");
    st_args_key(&a, s, "odrequest", id);
    size_t before = kv->n;
    int rc = st_run_list(s, true, &a, kv, err);
    st_args_free(&a);
    if (rc == 0 && kv->n == before)
        rc = no_request(err, id);
    return rc;
}

int vmp_store_od_zrange(vmp_store *s, vmp_store_odzset z, vmp_store_zlist *out, vmp_err *err)
{
    const char *k = odzset_key(z);
    if (!k)
        return vmp_err_set(err, VMP_EINVAL, "invalid zset %d", (int)z);
    st_args a = {0};
    st_args_add(&a, "ZRANGE");
    st_args_addf(&a, "%s__%s", s->prefix, k);
    st_args_add(&a, "0");
    st_args_add(&a, "-1");
    st_args_add(&a, "WITHSCORES");
    redisReply *r = NULL;
    int rc = st_run(s, true, &a, &r, err);
    st_args_free(&a);
    if (rc < 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2) {
        rc = st_bad_reply(s, "ZRANGE", err);
        goto out;
    }
    size_t n = r->elements / 2;
    if (n == 0)
        goto out;
    vmp_store_zitem *v = realloc(out->v, (out->n + n) * sizeof *v);
    if (!v) {
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
        goto out;
    }
    out->v = v;
    for (size_t i = 0; i < n; i++) {
        char *m = NULL;
        if ((rc = st_reply_str(s, r->element[2 * i], &m, err)) < 0)
            goto out;
        double score = 0;
        if (r->element[2 * i + 1]->type != REDIS_REPLY_STRING ||
            vmp_parse_double(r->element[2 * i + 1]->str, &score) < 0)
        {
            free(m);
            rc = st_bad_reply(s, "ZRANGE", err);
            goto out;
        }
        if (!m) {
            rc = st_bad_reply(s, "ZRANGE", err);
            goto out;
        }
        out->v[out->n].member = m;
        out->v[out->n].score = score;
        out->n++;
    }
out:
    freeReplyObject(r);
    return rc;
}

int vmp_store_od_zcard(vmp_store *s, vmp_store_odzset z, long long *out, vmp_err *err)
{
    const char *k = odzset_key(z);
    if (!k)
        return vmp_err_set(err, VMP_EINVAL, "invalid zset %d", (int)z);
    st_args a = {0};
    st_args_add(&a, "ZCARD");
    st_args_addf(&a, "%s__%s", s->prefix, k);
    int rc = st_run_int(s, true, &a, out, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_od_zrem(vmp_store *s, vmp_store_odzset z, const char *member, vmp_err *err)
{
    const char *k = odzset_key(z);
    if (!k)
        return vmp_err_set(err, VMP_EINVAL, "invalid zset %d", (int)z);
    st_args a = {0};
    st_args_add(&a, "ZREM");
    st_args_addf(&a, "%s__%s", s->prefix, k);
    st_args_add(&a, member);
    long long v = 0;
    int rc = st_run_int(s, false, &a, &v, err);
    st_args_free(&a);
    if (rc == 0 && v == 0)
        rc = vmp_err_set(err, VMP_ESTATE, "%s: %s is not a member", k, member);
    return rc;
}

int vmp_store_od_request_start(vmp_store *s, const char *id, const char *const *tasks,
                               size_t ntasks, double now, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, id);
    st_args_addf(&a, "%lld", (long long)now);
    for (size_t i = 0; i < ntasks; i++)
        st_args_add(&a, tasks[i]);
    long long v = 0;
    int rc = st_eval_int(s, SCR_OD_START, &a, &v, err);
    st_args_free(&a);
    if (rc == 0 && v == 0)
        rc = vmp_err_set(err, VMP_ESTATE, "request %s is not waiting", id);
    return rc;
}

int vmp_store_od_task_add(vmp_store *s, double score, const char *member, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, "ZADD");
    st_args_addf(&a, "%s__odcreate__task", s->prefix);
    st_args_addf(&a, "%.17g", score);
    st_args_add(&a, member);
    int rc = st_run_int(s, true, &a, NULL, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_od_task_replace(vmp_store *s, const char *old_member, const char *new_member,
                              vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, old_member);
    st_args_add(&a, new_member);
    long long v = 0;
    int rc = st_eval_int(s, SCR_OD_TASK_REPLACE, &a, &v, err);
    st_args_free(&a);
    if (rc == 0 && v == 0)
        rc = vmp_err_set(err, VMP_ESTATE, "odcreate task %s is not queued", old_member);
    return rc;
}

static int od_vms_cmd(vmp_store *s, const char *cmd, const char *id, const char *alias,
                      const char *pool, const char *vm, st_args *a)
{
    st_args_add(a, cmd);
    st_args_addf(a, "%s__%s__%s__%s", s->prefix, id, alias, pool);
    if (vm)
        st_args_add(a, vm);
    return 0;
}

int vmp_store_od_vms_add(vmp_store *s, const char *id, const char *alias, const char *pool,
                         const char *vm, vmp_err *err)
{
    st_args a = {0};
    od_vms_cmd(s, "SADD", id, alias, pool, vm, &a);
    int rc = st_run_int(s, true, &a, NULL, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_od_vms_count(vmp_store *s, const char *id, const char *alias, const char *pool,
                           long long *out, vmp_err *err)
{
    st_args a = {0};
    od_vms_cmd(s, "SCARD", id, alias, pool, NULL, &a);
    int rc = st_run_int(s, true, &a, out, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_od_vms_members(vmp_store *s, const char *id, const char *alias, const char *pool,
                             vmp_strlist *out, vmp_err *err)
{
    st_args a = {0};
    od_vms_cmd(s, "SMEMBERS", id, alias, pool, NULL, &a);
    int rc = st_run_list(s, true, &a, out, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_od_request_retry(vmp_store *s, const char *id, long long *out, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, "HINCRBY");
    st_args_key(&a, s, "odrequest", id);
    st_args_add(&a, "retry_count");
    st_args_add(&a, "1");
    int rc = st_run_int(s, false, &a, out, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_od_request_fail(vmp_store *s, const char *id, const char *reason, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, id);
    st_args_add(&a, reason);
    long long v = 0;
    int rc = st_eval_int(s, SCR_OD_FAIL, &a, &v, err);
    st_args_free(&a);
    if (rc == 0 && v == 0)
        rc = no_request(err, id);
    return rc;
}

int vmp_store_od_request_check_ready(vmp_store *s, const char *id, bool *ready, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, id);
    long long v = 0;
    int rc = st_eval_int(s, SCR_OD_CHECK_READY, &a, &v, err);
    st_args_free(&a);
    if (rc < 0)
        return rc;
    if (v < 0)
        return no_request(err, id);
    if (ready)
        *ready = v == 1;
    return 0;
}

int vmp_store_od_request_expire(vmp_store *s, const char *id, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, id);
    st_args_addf(&a, "%lld", s->data_ttl * 3600);
    long long v = 0;
    int rc = st_eval_int(s, SCR_OD_EXPIRE, &a, &v, err);
    st_args_free(&a);
    if (rc == 0 && v < 0)
        rc = no_request(err, id);
    return rc;
}

int vmp_store_od_request_delete(vmp_store *s, const char *id, bool *already, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, id);
    long long v = 0;
    int rc = st_eval_int(s, SCR_OD_DELETE, &a, &v, err);
    st_args_free(&a);
    if (rc < 0)
        return rc;
    if (v < 0)
        return no_request(err, id);
    if (already)
        *already = v == 0;
    return 0;
}
