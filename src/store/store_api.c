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
