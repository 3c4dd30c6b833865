/*
 * store_pool.c: pool-wide keys: the published pool configuration, runtime
 * overrides, pending pool requests, the empty flag, lastboot, the daily
 * clone/boot/tag hashes and the global migration set.
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

/* A one-command helper: cmd key [extra...]. */
static int simple_int(vmp_store *s, bool idem, const char *cmd, const char *key_kind,
                      const char *key_name, const char *a1, const char *a2, long long *out,
                      vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, cmd);
    if (key_name)
        st_args_key(&a, s, key_kind, key_name);
    else
        st_args_addf(&a, "%s__%s", s->prefix, key_kind);
    if (a1)
        st_args_add(&a, a1);
    if (a2)
        st_args_add(&a, a2);
    int rc = st_run_int(s, idem, &a, out, err);
    st_args_free(&a);
    return rc;
}

static int simple_list(vmp_store *s, const char *cmd, const char *key_kind, const char *key_name,
                       vmp_strlist *out, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, cmd);
    if (key_name)
        st_args_key(&a, s, key_kind, key_name);
    else
        st_args_addf(&a, "%s__%s", s->prefix, key_kind);
    int rc = st_run_list(s, true, &a, out, err);
    st_args_free(&a);
    return rc;
}

/* ---- published pools ----------------------------------------------------- */

int vmp_store_pools_publish(vmp_store *s, const vmp_store_pool_pub *pools, size_t npools,
                            vmp_err *err)
{
    st_args a = {0};
    st_args_addf(&a, "%zu", npools);
    for (size_t i = 0; i < npools; i++) {
        size_t nkv = pools[i].kv ? pools[i].kv->n & ~(size_t)1 : 0;
        st_args_add(&a, pools[i].name);
        st_args_addf(&a, "%zu", nkv);
        for (size_t j = 0; j < nkv; j++)
            st_args_add(&a, pools[i].kv->v[j]);
    }
    int rc = st_eval_int(s, SCR_POOLS_PUBLISH, &a, NULL, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_pools_list(vmp_store *s, vmp_strlist *out, vmp_err *err)
{
    return simple_list(s, "SMEMBERS", "pools", NULL, out, err);
}

int vmp_store_pool_config_get(vmp_store *s, const char *pool, vmp_strlist *kv, vmp_err *err)
{
    return simple_list(s, "HGETALL", "pool", pool, kv, err);
}

/* ---- overrides ------------------------------------------------------------ */

static const char *override_key(vmp_store_override kind)
{
    switch (kind) {
    case VMP_OVERRIDE_POOLSIZE:
        return "config__poolsize";
    case VMP_OVERRIDE_TEMPLATE:
        return "config__template";
    case VMP_OVERRIDE_CLONE_TARGET:
        return "config__clone_target";
    case VMP_TEMPLATE_PREPARED:
        return "template__prepared";
    }
    return NULL;
}

int vmp_store_override_get(vmp_store *s, vmp_store_override kind, const char *pool, char **out,
                           vmp_err *err)
{
    const char *k = override_key(kind);
    if (!k)
        return vmp_err_set(err, VMP_EINVAL, "invalid override kind %d", (int)kind);
    st_args a = {0};
    st_args_add(&a, "HGET");
    st_args_addf(&a, "%s__%s", s->prefix, k);
    st_args_add(&a, pool);
    int rc = st_run_str(s, true, &a, out, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_override_set(vmp_store *s, vmp_store_override kind, const char *pool,
                           const char *value, vmp_err *err)
{
    const char *k = override_key(kind);
    if (!k)
        return vmp_err_set(err, VMP_EINVAL, "invalid override kind %d", (int)kind);
    return simple_int(s, true, "HSET", k, NULL, pool, value, NULL, err);
}

int vmp_store_override_del(vmp_store *s, vmp_store_override kind, const char *pool, bool *existed,
                           vmp_err *err)
{
    const char *k = override_key(kind);
    if (!k)
        return vmp_err_set(err, VMP_EINVAL, "invalid override kind %d", (int)kind);
    long long v = 0;
    int rc = simple_int(s, false, "HDEL", k, NULL, pool, NULL, &v, err);
    if (rc == 0 && existed)
        *existed = v > 0;
    return rc;
}

int vmp_store_override_all(vmp_store *s, vmp_store_override kind, vmp_strlist *kv, vmp_err *err)
{
    const char *k = override_key(kind);
    if (!k)
        return vmp_err_set(err, VMP_EINVAL, "invalid override kind %d", (int)kind);
    return simple_list(s, "HGETALL", k, NULL, kv, err);
}

int vmp_store_template_delta_has(vmp_store *s, const char *tmpl, bool *out, vmp_err *err)
{
    long long v = 0;
    int rc = simple_int(s, true, "SISMEMBER", "template__deltas", NULL, tmpl, NULL, &v, err);
    if (rc == 0)
        *out = v != 0;
    return rc;
}

int vmp_store_template_delta_add(vmp_store *s, const char *tmpl, vmp_err *err)
{
    return simple_int(s, true, "SADD", "template__deltas", NULL, tmpl, NULL, NULL, err);
}

/* ---- pending pool requests ------------------------------------------------ */

static const char *poolreq_key(vmp_store_pool_request kind)
{
    switch (kind) {
    case VMP_POOLREQ_RESET:
        return "poolreset";
    case VMP_POOLREQ_UNDO_TEMPLATE:
        return "pool__undo_template_override";
    case VMP_POOLREQ_UNDO_SIZE:
        return "pool__undo_size_override";
    }
    return NULL;
}

int vmp_store_pool_request_add(vmp_store *s, vmp_store_pool_request kind, const char *pool,
                               vmp_err *err)
{
    const char *k = poolreq_key(kind);
    if (!k)
        return vmp_err_set(err, VMP_EINVAL, "invalid pool request kind %d", (int)kind);
    return simple_int(s, true, "SADD", k, NULL, pool, NULL, NULL, err);
}

int vmp_store_pool_request_has(vmp_store *s, vmp_store_pool_request kind, const char *pool,
                               bool *out, vmp_err *err)
{
    const char *k = poolreq_key(kind);
    if (!k)
        return vmp_err_set(err, VMP_EINVAL, "invalid pool request kind %d", (int)kind);
    long long v = 0;
    int rc = simple_int(s, true, "SISMEMBER", k, NULL, pool, NULL, &v, err);
    if (rc == 0)
        *out = v != 0;
    return rc;
}

int vmp_store_pool_request_take(vmp_store *s, vmp_store_pool_request kind, const char *pool,
                                bool *was_present, vmp_err *err)
{
    const char *k = poolreq_key(kind);
    if (!k)
        return vmp_err_set(err, VMP_EINVAL, "invalid pool request kind %d", (int)kind);
    long long v = 0;
    int rc = simple_int(s, false, "SREM", k, NULL, pool, NULL, &v, err);
    if (rc == 0 && was_present)
        *was_present = v != 0;
    return rc;
}

/* ---- empty flag, lastboot, daily hashes ------------------------------------ */

int vmp_store_pool_empty_mark(vmp_store *s, const char *pool, bool empty, bool *changed,
                              vmp_err *err)
{
    st_args a = {0};
    int rc;
    bool ch = false;
    if (empty) {
        st_args_add(&a, "SET");
        st_args_key(&a, s, "empty", pool);
        st_args_add(&a, "true");
        st_args_add(&a, "NX");
        redisReply *r = NULL;
        rc = st_run(s, true, &a, &r, err);
        if (rc == 0) {
            ch = r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
        }
    } else {
        st_args_add(&a, "DEL");
        st_args_key(&a, s, "empty", pool);
        long long v = 0;
        rc = st_run_int(s, true, &a, &v, err);
        ch = v > 0;
    }
    st_args_free(&a);
    if (rc == 0 && changed)
        *changed = ch;
    return rc;
}

int vmp_store_lastboot_get(vmp_store *s, const char *pool, char **out, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, "HGET");
    st_args_addf(&a, "%s__lastboot", s->prefix);
    st_args_add(&a, pool);
    int rc = st_run_str(s, true, &a, out, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_lastboot_all(vmp_store *s, vmp_strlist *kv, vmp_err *err)
{
    return simple_list(s, "HGETALL", "lastboot", NULL, kv, err);
}

int vmp_store_daily_get(vmp_store *s, vmp_store_daily kind, const char *date, vmp_strlist *kv,
                        vmp_err *err)
{
    const char *k = kind == VMP_DAILY_CLONE  ? "clone"
                    : kind == VMP_DAILY_BOOT ? "boot"
                    : kind == VMP_DAILY_TAG  ? "tag"
                                             : NULL;
    if (!k)
        return vmp_err_set(err, VMP_EINVAL, "invalid daily kind %d", (int)kind);
    return simple_list(s, "HGETALL", k, date, kv, err);
}

/* ---- migration set -------------------------------------------------------- */

int vmp_store_migration_reset(vmp_store *s, vmp_err *err)
{
    return simple_int(s, true, "DEL", "migration", NULL, NULL, NULL, NULL, err);
}

int vmp_store_migration_add(vmp_store *s, const char *vm, vmp_err *err)
{
    return simple_int(s, true, "SADD", "migration", NULL, vm, NULL, NULL, err);
}

int vmp_store_migration_remove(vmp_store *s, const char *vm, vmp_err *err)
{
    return simple_int(s, true, "SREM", "migration", NULL, vm, NULL, NULL, err);
}

int vmp_store_migration_count(vmp_store *s, long long *out, vmp_err *err)
{
    return simple_int(s, true, "SCARD", "migration", NULL, NULL, NULL, out, err);
}
