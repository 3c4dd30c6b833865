/*
 * store_api: store primitives only the HTTP API needs (declared in the API
 * section of store.h).
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

int vmp_store_ratelimit_hit(vmp_store *s, const char *cls, const char *client, long long limit,
                            long long period, bool *allowed, long long *ttl, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, cls);
    st_args_add(&a, client);
    st_args_addf(&a, "%lld", limit);
    st_args_addf(&a, "%lld", period > 0 ? period : 1);
    redisReply *r = NULL;
    int rc = st_eval(s, SCR_RATELIMIT, &a, &r, err);
    st_args_free(&a);
    if (rc < 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER)
    {
        freeReplyObject(r);
        return st_bad_reply(s, "rate limit", err);
    }
    if (allowed)
        *allowed = r->element[0]->integer == 1;
    if (ttl)
        *ttl = r->element[1]->integer;
    freeReplyObject(r);
    return 0;
}

void st_return_args(const char *vm, const char *token, double now, st_args *a)
{
    char ts[VMP_TIME_STR_MAX];
    st_time(now, ts);
    st_args_add(a, vm);
    st_args_add(a, token ? token : "");
    st_args_add(a, ts);
}

int st_return_parse(vmp_store *s, const redisReply *r, const char *vm, char **pool_out,
                    char **user_out, vmp_err *err)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        return st_bad_reply(s, "vm return", err);
    long long code = r->element[0]->integer;
    if (r->elements >= 3) {
        if (pool_out && r->element[1]->type == REDIS_REPLY_STRING && r->element[1]->len)
            *pool_out = strndup(r->element[1]->str, r->element[1]->len);
        if (user_out && r->element[2]->type == REDIS_REPLY_STRING && r->element[2]->len)
            *user_out = strndup(r->element[2]->str, r->element[2]->len);
    }
    switch (code) {
    case 1:
        return 0;
    case -1:
        return vmp_err_set(err, VMP_ESTATE, "vm %s is not running", vm);
    case -2:
        return vmp_err_set(err, VMP_ENOENT, "no vm %s", vm);
    default:
        return vmp_err_set(err, VMP_EFAILED, "vm %s: token refused", vm);
    }
}

int vmp_store_vm_return_checked(vmp_store *s, const char *vm, const char *token, double now,
                                char **pool_out, char **user_out, vmp_err *err)
{
    st_args a = {0};
    st_return_args(vm, token, now, &a);
    redisReply *r = NULL;
    int rc = st_eval(s, SCR_VM_RETURN_CHECKED, &a, &r, err);
    st_args_free(&a);
    if (rc < 0)
        return rc;
    rc = st_return_parse(s, r, vm, pool_out, user_out, err);
    freeReplyObject(r);
    return rc;
}
