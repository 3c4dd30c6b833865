/*
 * store_api: store primitives only the HTTP API needs (declared in the API
 * section of store.h).
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

/* One round trip, atomic: refuse when the class counter of the client has
 * reached limit (reporting its TTL), else INCR it and (re)arm its expiry. */
static const char ratelimit_lua[] =
    "local key = ARGV[1] .. '__ratelimit__' .. ARGV[2] .. '__' .. ARGV[3]\n"
    "local n = tonumber(redis.call('GET', key) or '0') or 0\n"
    "if n >= tonumber(ARGV[4]) then return {0, redis.call('TTL', key)} end\n"
    "redis.call('INCR', key)\n"
    "redis.call('EXPIRE', key, ARGV[5])\n"
    "return {1, 0}\n";

int vmp_store_ratelimit_hit(vmp_store *s, const char *cls, const char *client, long long limit,
                            long long period, bool *allowed, long long *ttl, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, "EVAL");
    st_args_add(&a, ratelimit_lua);
    st_args_add(&a, "0");
    st_args_add(&a, s->prefix);
    st_args_add(&a, cls);
    st_args_add(&a, client);
    st_args_addf(&a, "%lld", limit);
    st_args_addf(&a, "%lld", period > 0 ? period : 1);
    redisReply *r = NULL;
    int rc = st_run(s, false, &a, &r, err);
    st_args_free(&a);
    if (rc < 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER) {
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
