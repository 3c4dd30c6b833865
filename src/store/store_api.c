/*
 * store_api: store primitives only the HTTP API needs (declared in the API
 * section of store.h).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

/* Runs a script of this file by its SHA1 (loaded once per process with
 * SCRIPT LOAD; the digest is the same on every server), falling back to
 * EVAL, which also caches it, when a server does not know it yet. args
 * holds what follows the key count. */
static int run_script(vmp_store *s, const char *src, char sha[41], const st_args *args,
                      redisReply **out, vmp_err *err)
{
    static pthread_mutex_t sha_lock = PTHREAD_MUTEX_INITIALIZER;
    if (!__atomic_load_n(&sha[0], __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&sha_lock);
        if (!sha[0]) {
            st_args l = {0};
            st_args_add(&l, "SCRIPT");
            st_args_add(&l, "LOAD");
            st_args_add(&l, src);
            char *digest = NULL;
            vmp_err e = {0};
            /* on failure EVAL below still works (and reports the error) */
            if (st_run_str(s, true, &l, &digest, &e) == 0 && digest && strlen(digest) == 40) {
                memcpy(sha + 1, digest + 1, 40);
                __atomic_store_n(&sha[0], digest[0], __ATOMIC_RELEASE);
            }
            st_args_free(&l);
            free(digest);
        }
        pthread_mutex_unlock(&sha_lock);
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        st_args a = {0};
        bool by_sha = attempt == 0 && __atomic_load_n(&sha[0], __ATOMIC_ACQUIRE);
        st_args_add(&a, by_sha ? "EVALSHA" : "EVAL");
        st_args_add(&a, by_sha ? sha : src);
        for (size_t i = 0; i < args->n; i++)
            st_args_addn(&a, args->v[i], args->len[i]);
        vmp_err e = {0};
        int rc = st_run(s, false, &a, out, &e);
        st_args_free(&a);
        if (rc == 0)
            return 0;
        if (!by_sha || !strstr(e.msg, "NOSCRIPT")) {
            if (err)
                *err = e;
            return rc;
        }
    }
    return vmp_err_set(err, VMP_EREDIS, "script not runnable");
}

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
    static char sha[41];
    st_args a = {0};
    st_args_add(&a, "0");
    st_args_add(&a, s->prefix);
    st_args_add(&a, vm);
    st_args_add(&a, token ? token : "");
    st_args_add(&a, ts);
    redisReply *r = NULL;
    int rc = a.oom ? vmp_err_set(err, VMP_ENOMEM, "out of memory")
                   : run_script(s, return_checked_lua, sha, &a, &r, err);
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
