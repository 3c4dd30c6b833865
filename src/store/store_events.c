/*
 * store_events.c: vmpool's extensions to the schema: the event channel
 * (`<prefix>__events`, so a manager wakes a pool at once on a checkout, a
 * return or a config change) and pool leases (`<prefix>__lease__<pool>`, so
 * several managers can share one Redis, each pool owned by one of them).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

/* ---- publishing --------------------------------------------------------------- */

int vmp_store_publish(vmp_store *s, const char *type, const char *pool, vmp_err *err)
{
    if (!type || !type[0] || strchr(type, ' '))
        return vmp_err_set(err, VMP_EINVAL, "event type must be one word");
    st_args a = {0};
    st_args_add(&a, "PUBLISH");
    st_args_addf(&a, "%s__events", s->prefix);
    if (pool && pool[0])
        st_args_addf(&a, "%s %s", type, pool);
    else
        st_args_add(&a, type);
    int rc = st_run_int(s, false, &a, NULL, err);
    st_args_free(&a);
    return rc;
}

/* ---- subscriber ---------------------------------------------------------------- */

struct vmp_store_sub {
    vmp_store *conn; /* connection settings and context; no scripts */
    char *channel;
    bool subscribed;
};

int vmp_store_sub_open(const vmp_store_opts *opts, vmp_store_sub **out, vmp_err *err)
{
    vmp_store_sub *sub = calloc(1, sizeof *sub);
    if (!sub)
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    int rc = st_new(opts, &sub->conn, err);
    if (rc < 0)
        goto out;
    sub->conn->no_scripts = true;
    sub->channel = vmp_asprintf("%s__events", sub->conn->prefix);
    if (!sub->channel) {
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
        goto out;
    }
    /* Subscribe now so no event published after open is missed. */
    char *t = NULL, *p = NULL;
    rc = vmp_store_sub_wait(sub, 0, &t, &p, err);
    free(t);
    free(p);
    if (rc == VMP_ETIMEDOUT || rc == 0) {
        rc = 0;
        vmp_err_clear(err);
    }
    if (rc < 0)
        goto out;
    *out = sub;
    sub = NULL;
out:
    vmp_store_sub_free(sub);
    return rc;
}

void vmp_store_sub_free(vmp_store_sub *sub)
{
    if (!sub)
        return;
    vmp_store_free(sub->conn);
    free(sub->channel);
    free(sub);
}

static int sub_broken(vmp_store_sub *sub, vmp_err *err)
{
    vmp_store *s = sub->conn;
    int rc = vmp_err_set(err, VMP_EREDIS, "redis %s: %s", s->addr,
                         s->c && s->c->errstr[0] ? s->c->errstr : "connection lost");
    st_drop(s);
    sub->subscribed = false;
    return rc;
}

static int sub_connect(vmp_store_sub *sub, vmp_err *err)
{
    vmp_store *s = sub->conn;
    int rc = st_ensure(s, err);
    if (rc < 0)
        return rc;
    const char *argv[] = {"SUBSCRIBE", sub->channel};
    if (redisAppendCommandArgv(s->c, 2, argv, NULL) != REDIS_OK)
        return sub_broken(sub, err);
    void *r = NULL;
    if (redisGetReply(s->c, &r) != REDIS_OK || !r)
        return sub_broken(sub, err);
    redisReply *x = r;
    bool ok = x->type == REDIS_REPLY_ARRAY && x->elements >= 1 &&
              x->element[0]->type == REDIS_REPLY_STRING &&
              strcmp(x->element[0]->str, "subscribe") == 0;
    if (!ok)
        rc = vmp_err_set(err, VMP_EREDIS, "redis %s: SUBSCRIBE: %s", s->addr,
                         x->type == REDIS_REPLY_ERROR ? x->str : "unexpected reply");
    freeReplyObject(r);
    if (rc < 0) {
        st_drop(s);
        return rc;
    }
    sub->subscribed = true;
    return 0;
}

/* A "message" push for our channel: split the payload into type and pool. */
static int take_message(const redisReply *x, char **type, char **pool, bool *got, vmp_err *err)
{
    *got = false;
    if (x->type != REDIS_REPLY_ARRAY || x->elements != 3 ||
        x->element[0]->type != REDIS_REPLY_STRING || strcmp(x->element[0]->str, "message") != 0 ||
        x->element[2]->type != REDIS_REPLY_STRING)
        return 0;
    const char *payload = x->element[2]->str;
    const char *sp = strchr(payload, ' ');
    char *t = sp ? strndup(payload, (size_t)(sp - payload)) : strdup(payload);
    char *p = strdup(sp ? sp + 1 : "");
    if (!t || !p) {
        free(t);
        free(p);
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    }
    *type = t;
    *pool = p;
    *got = true;
    return 0;
}

static int sub_wait(vmp_store_sub *sub, double timeout, char **type, char **pool, vmp_err *err);

int vmp_store_sub_wait(vmp_store_sub *sub, double timeout, char **type, char **pool, vmp_err *err)
{
    st_sigpipe g;
    st_sigpipe_enter(&g);
    int rc = sub_wait(sub, timeout, type, pool, err);
    st_sigpipe_leave(&g);
    return rc;
}

static int sub_wait(vmp_store_sub *sub, double timeout, char **type, char **pool, vmp_err *err)
{
    int rc;
    if (!sub->subscribed && (rc = sub_connect(sub, err)) < 0)
        return rc;
    redisContext *c = sub->conn->c;
    double deadline = vmp_monotonic() + (timeout > 0 ? timeout : 0);
    for (;;) {
        void *r = NULL;
        if (redisGetReplyFromReader(c, &r) != REDIS_OK)
            return sub_broken(sub, err);
        if (r) {
            bool got = false;
            rc = take_message(r, type, pool, &got, err);
            freeReplyObject(r);
            if (rc < 0 || got)
                return rc;
            continue;
        }
        double left = deadline - vmp_monotonic();
        if (left < 0)
            left = 0;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int n = poll(&p, 1, (int)(left * 1000 + 0.999));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return vmp_err_set(err, VMP_EIO, "poll: %s", strerror(errno));
        }
        if (n == 0)
            return vmp_err_set(err, VMP_ETIMEDOUT, "no event");
        if (redisBufferRead(c) != REDIS_OK)
            return sub_broken(sub, err);
    }
}

/* ---- leases ---------------------------------------------------------------------- */

static int lease_script(vmp_store *s, st_script id, const char *pool, const char *owner,
                        long long ttl_ms, bool *ok, vmp_err *err)
{
    if (id != SCR_LEASE_RELEASE && ttl_ms <= 0)
        return vmp_err_set(err, VMP_EINVAL, "lease ttl must be positive");
    st_args a = {0};
    st_args_add(&a, pool);
    st_args_add(&a, owner);
    if (id != SCR_LEASE_RELEASE)
        st_args_addf(&a, "%lld", ttl_ms);
    long long v = 0;
    int rc = st_eval_int(s, id, &a, &v, err);
    st_args_free(&a);
    if (rc == 0 && ok)
        *ok = v == 1;
    return rc;
}

int vmp_store_lease_acquire(vmp_store *s, const char *pool, const char *owner, long long ttl_ms,
                            bool *held, vmp_err *err)
{
    return lease_script(s, SCR_LEASE_ACQUIRE, pool, owner, ttl_ms, held, err);
}

int vmp_store_lease_renew(vmp_store *s, const char *pool, const char *owner, long long ttl_ms,
                          bool *held, vmp_err *err)
{
    return lease_script(s, SCR_LEASE_RENEW, pool, owner, ttl_ms, held, err);
}

int vmp_store_lease_release(vmp_store *s, const char *pool, const char *owner, bool *released,
                            vmp_err *err)
{
    return lease_script(s, SCR_LEASE_RELEASE, pool, owner, 0, released, err);
}

int vmp_store_lease_owner(vmp_store *s, const char *pool, char **owner, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, "GET");
    st_args_key(&a, s, "lease", pool);
    int rc = st_run_str(s, true, &a, owner, err);
    st_args_free(&a);
    return rc;
}
