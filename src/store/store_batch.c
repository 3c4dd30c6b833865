/*
 * store_batch: the API's checkouts and returns from several requests sent
 * to Redis as one pipeline (see the batches section of store.h).
 *
 * Why: on a loaded API server, each request's own round trip costs more in
 * wake-ups (of the API thread and of Redis) than Redis spends running the
 * script. Requests that arrive together share one write and one read.
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

typedef struct batch_op {
    st_script script; /* SCR_CHECKOUT or SCR_VM_RETURN_CHECKED */
    st_args args;     /* the script's arguments after the prefix */
    void *ud;
    char *token, *user; /* copies: the caller's may not outlive the request */
    /* checkout */
    const vmp_store_want *wants;
    size_t nwants;
    vmp_store_checkout_opts opts; /* its token and user are the copies */
    vmp_store_checkout_done checkout_done;
    /* return */
    char *vm;
    double now;
    vmp_store_return_done return_done;
} batch_op;

struct vmp_store_batch {
    batch_op *ops;
    size_t n, cap;
    /* the first nsent ops are in flight: sent, replies not read yet */
    size_t nsent;
    int send_rc;
    vmp_err send_err;
    /* scratch for reading replies, kept between runs */
    redisReply **replies;
    size_t scratch_cap;
};

vmp_store_batch *vmp_store_batch_new(void) { return calloc(1, sizeof(vmp_store_batch)); }

size_t vmp_store_batch_size(const vmp_store_batch *b) { return b ? b->n - b->nsent : 0; }

size_t vmp_store_batch_in_flight(const vmp_store_batch *b) { return b ? b->nsent : 0; }

static batch_op *push(vmp_store_batch *b, vmp_err *err)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        batch_op *v = realloc(b->ops, cap * sizeof(*v));
        if (!v) {
            vmp_err_set(err, VMP_ENOMEM, "out of memory");
            return NULL;
        }
        b->ops = v;
        b->cap = cap;
    }
    batch_op *op = &b->ops[b->n];
    memset(op, 0, sizeof(*op));
    return op;
}

static void op_free(batch_op *op)
{
    st_args_free(&op->args);
    free(op->vm);
    free(op->token);
    free(op->user);
}

int vmp_store_batch_checkout(vmp_store_batch *b, const vmp_store_want *wants, size_t nwants,
                             const vmp_store_checkout_opts *opts, vmp_store_checkout_done done,
                             void *ud, vmp_err *err)
{
    batch_op *op = push(b, err);
    if (!op)
        return VMP_ENOMEM;
    op->script = SCR_CHECKOUT;
    op->wants = wants;
    op->nwants = nwants;
    op->opts = *opts;
    op->token = opts->token ? strdup(opts->token) : NULL;
    op->user = opts->user ? strdup(opts->user) : NULL;
    op->opts.token = op->token;
    op->opts.user = op->user;
    op->checkout_done = done;
    op->ud = ud;
    st_checkout_args(wants, nwants, opts, &op->args);
    if (op->args.oom || (opts->token && !op->token) || (opts->user && !op->user)) {
        op_free(op);
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    }
    b->n++;
    return 0;
}

int vmp_store_batch_vm_return_checked(vmp_store_batch *b, const char *vm, const char *token,
                                      double now, vmp_store_return_done done, void *ud,
                                      vmp_err *err)
{
    batch_op *op = push(b, err);
    if (!op)
        return VMP_ENOMEM;
    op->script = SCR_VM_RETURN_CHECKED;
    op->vm = strdup(vm);
    op->token = token ? strdup(token) : NULL;
    op->now = now;
    op->return_done = done;
    op->ud = ud;
    st_return_args(vm, token, now, &op->args);
    if (!op->vm || (token && !op->token) || op->args.oom) {
        op_free(op);
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    }
    b->n++;
    return 0;
}

/* Calls op's callback with a failure. */
static void fail(batch_op *op, int rc, const vmp_err *err)
{
    if (op->script == SCR_CHECKOUT) {
        vmp_store_checkout_result res = {NULL, 0, -1};
        op->checkout_done(op->ud, rc, &res, err);
    } else {
        op->return_done(op->ud, rc, NULL, NULL, err);
    }
}

/* Calls op's callback with what its script answered; r NULL: the script
 * cache did not have it, run it again on its own. */
static void finish(vmp_store *s, batch_op *op, redisReply *r)
{
    vmp_err err = {0};
    int rc = 0;
    if (r && r->type == REDIS_REPLY_ERROR) {
        rc = st_script_error(s, st_script_name(op->script), r, &err);
        fail(op, rc, &err);
        return;
    }
    if (op->script == SCR_CHECKOUT) {
        vmp_store_checkout_result res = {NULL, 0, -1};
        if (!r)
            rc = vmp_store_checkout(s, op->wants, op->nwants, &op->opts, &res, &err);
        else
            rc = st_checkout_parse(s, r, op->wants, op->nwants, &res, &err);
        op->checkout_done(op->ud, rc, &res, &err);
        return;
    }
    char *pool = NULL, *user = NULL;
    if (!r)
        rc = vmp_store_vm_return_checked(s, op->vm, op->token, op->now, &pool, &user, &err);
    else
        rc = st_return_parse(s, r, op->vm, &pool, &user, &err);
    op->return_done(op->ud, rc, pool, user, &err);
    free(pool);
    free(user);
}

/* Moves the ops after the first n to the front. */
static void drop_front(vmp_store_batch *b, size_t n)
{
    memmove(b->ops, b->ops + n, (b->n - n) * sizeof(*b->ops));
    b->n -= n;
}

static int grow_scratch(vmp_store_batch *b, size_t n)
{
    if (n <= b->scratch_cap)
        return 0;
    redisReply **r = realloc(b->replies, n * sizeof(*r));
    if (!r)
        return VMP_ENOMEM;
    b->replies = r;
    b->scratch_cap = n;
    return 0;
}

void vmp_store_batch_send(vmp_store *s, vmp_store_batch *b)
{
    if (b->nsent > 0 || b->n == 0)
        return;
    size_t n = b->n;
    b->nsent = n;
    b->send_rc = 0;
    memset(&b->send_err, 0, sizeof(b->send_err));
    if (grow_scratch(b, n) != 0) {
        b->send_rc = vmp_err_set(&b->send_err, VMP_ENOMEM, "out of memory");
        return;
    }
    st_sigpipe g;
    st_sigpipe_enter(&g);
    /* Connect first: the SHAs come from this connection's script load.
     * A request that meets a connection that died a moment ago gets 503,
     * as when Redis is away. */
    int rc = st_ensure_fresh(s, &b->send_err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        batch_op *op = &b->ops[i];
        st_args a = {0};
        st_eval_command(s, "EVALSHA", s->sha[op->script], &op->args, &a);
        if (a.oom)
            rc = vmp_err_set(&b->send_err, VMP_ENOMEM, "out of memory");
        else if (redisAppendCommandArgv(s->c, (int)a.n, (const char **)a.v, a.len) != REDIS_OK)
            rc = st_broken(s, &b->send_err);
        st_args_free(&a);
    }
    /* Out the door now, so that Redis works while the caller does. */
    int done = 0;
    while (rc == 0 && !done)
        if (redisBufferWrite(s->c, &done) != REDIS_OK)
            rc = st_broken(s, &b->send_err);
    st_sigpipe_leave(&g);
    /* Commands appended before a failure were not sent or their replies
     * are lost with the connection: the whole group fails. */
    if (rc < 0 && s->c)
        st_drop(s);
    b->send_rc = rc;
}

void vmp_store_batch_finish(vmp_store *s, vmp_store_batch *b)
{
    size_t n = b->nsent;
    if (n == 0)
        return;
    vmp_err err = b->send_err;
    int rc = b->send_rc;
    if (rc < 0) {
        /* never sent (or lost with the connection): nothing to read */
        for (size_t i = 0; i < n; i++) {
            fail(&b->ops[i], rc, &err);
            op_free(&b->ops[i]);
        }
        b->nsent = 0;
        drop_front(b, n);
        return;
    }
    /* Every reply first, in order; an op that must run again on its own
     * (script cache flushed) does so only after the group is read. */
    for (size_t i = 0; i < n; i++) {
        b->replies[i] = NULL;
        if (rc < 0)
            continue;
        void *r = NULL;
        if (redisGetReply(s->c, &r) != REDIS_OK || !r) {
            if (r)
                freeReplyObject(r);
            rc = st_broken(s, &err);
            continue;
        }
        b->replies[i] = r;
    }
    if (rc == 0)
        st_replied(s);
    for (size_t i = 0; i < n; i++) {
        batch_op *op = &b->ops[i];
        redisReply *r = b->replies[i];
        if (!r)
            fail(op, rc < 0 ? rc : VMP_EREDIS, &err);
        else
            finish(s, op, st_noscript(r) ? NULL : r);
        if (r)
            freeReplyObject(r);
        b->replies[i] = NULL;
        op_free(op);
    }
    b->nsent = 0;
    drop_front(b, n);
}

void vmp_store_batch_run(vmp_store *s, vmp_store_batch *b)
{
    vmp_store_batch_finish(s, b);
    vmp_store_batch_send(s, b);
    vmp_store_batch_finish(s, b);
}

void vmp_store_batch_free(vmp_store_batch *b)
{
    if (!b)
        return;
    vmp_err err = {0};
    vmp_err_set(&err, VMP_EREDIS, "request dropped before it reached redis");
    for (size_t i = 0; i < b->n; i++) {
        fail(&b->ops[i], VMP_EREDIS, &err);
        op_free(&b->ops[i]);
    }
    free(b->ops);
    free(b->replies);
    free(b);
}
