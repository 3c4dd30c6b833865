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

/* DELETE /vm/<host> in one round trip: the VM hash must exist; when it was
 * checked out with a token, the caller's token must exist (and is touched);
 * then running -> completed for the pool in `template`. Returns
 * {-2} no hash, {-3} token refused, {-1, pool, user} not running,
 * {1, pool, user} returned. */
static const char return_checked_lua[] =
    "local p, vm, tok, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]\n"
    "local vk = p .. '__vm__' .. vm\n"
    "if redis.call('EXISTS', vk) == 0 then return {-2} end\n"
    "local f = redis.call('HMGET', vk, 'template', 'token:token', 'token:user')\n"
    "local pool, owner, user = f[1] or '', f[2], f[3] or ''\n"
    "if owner then\n"
    "  local tk = p .. '__token__' .. tok\n"
    "  if tok == '' or redis.call('EXISTS', tk) == 0 then return {-3} end\n"
    "  redis.call('HSET', tk, 'last', now)\n"
    "end\n"
    "if pool == '' or redis.call('SMOVE', p .. '__running__' .. pool,\n"
    "                             p .. '__completed__' .. pool, vm) == 0 then\n"
    "  return {-1, pool, user}\n"
    "end\n"
    "return {1, pool, user}\n";

int vmp_store_vm_return_checked(vmp_store *s, const char *vm, const char *token, double now,
                                char **pool_out, char **user_out, vmp_err *err)
{
    char ts[VMP_TIME_STR_MAX];
    st_time(now, ts);
    st_args a = {0};
    st_args_add(&a, "EVAL");
    st_args_add(&a, return_checked_lua);
    st_args_add(&a, "0");
    st_args_add(&a, s->prefix);
    st_args_add(&a, vm);
    st_args_add(&a, token ? token : "");
    st_args_add(&a, ts);
    redisReply *r = NULL;
    int rc = st_run(s, false, &a, &r, err);
    st_args_free(&a);
    if (rc < 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(r);
        return st_bad_reply(s, "vm return", err);
    }
    long long code = r->element[0]->integer;
    if (r->elements >= 3) {
        if (pool_out && r->element[1]->type == REDIS_REPLY_STRING && r->element[1]->len)
            *pool_out = strndup(r->element[1]->str, r->element[1]->len);
        if (user_out && r->element[2]->type == REDIS_REPLY_STRING && r->element[2]->len)
            *user_out = strndup(r->element[2]->str, r->element[2]->len);
    }
    freeReplyObject(r);
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
