/*
 * store.c: the connection (connect, AUTH, SELECT, reconnect with backoff),
 * the command runner, reply helpers and the plain reads.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store/store_internal.h"

/* ---- argument vectors --------------------------------------------------- */

void st_args_addn(st_args *a, const char *s, size_t len)
{
    if (a->oom)
        return;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        char **v = realloc(a->v, cap * sizeof *v);
        if (!v) {
            a->oom = true;
            return;
        }
        a->v = v;
        size_t *len2 = realloc(a->len, cap * sizeof *len2);
        if (!len2) {
            a->oom = true;
            return;
        }
        a->len = len2;
        a->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        a->oom = true;
        return;
    }
    memcpy(copy, s, len);
    copy[len] = '\0';
    a->v[a->n] = copy;
    a->len[a->n] = len;
    a->n++;
}

void st_args_add(st_args *a, const char *s) { st_args_addn(a, s ? s : "", s ? strlen(s) : 0); }

void st_args_addf(st_args *a, const char *fmt, ...)
{
    if (a->oom)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        a->oom = true;
        return;
    }
    st_args_addn(a, s, (size_t)n);
    free(s);
}

void st_args_key(st_args *a, const vmp_store *s, const char *kind, const char *name)
{
    st_args_addf(a, "%s__%s__%s", s->prefix, kind, name);
}

void st_args_free(st_args *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    free(a->len);
    memset(a, 0, sizeof *a);
}

char *st_key(const vmp_store *s, const char *kind, const char *name)
{
    return vmp_asprintf("%s__%s__%s", s->prefix, kind, name);
}

void st_time(double now, char buf[VMP_TIME_STR_MAX])
{
    vmp_time_format(now, buf, VMP_TIME_STR_MAX);
}

void st_date(double now, char buf[16]) { vmp_date_format(now, buf, 16); }

/* ---- SIGPIPE ------------------------------------------------------------ */

/* Seconds on a clock that costs no system call (coarse, ~ms). */
static double coarse_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Whether the process ignores SIGPIPE, asked at most once a second per
 * thread: a host sets that once at start, and the query is a system call
 * that would otherwise come with every command. */
static bool sigpipe_ignored(void)
{
    static __thread double asked_at = -10;
    static __thread bool ignored;
    double now = coarse_now();
    if (now - asked_at >= 1.0) {
        struct sigaction sa;
        ignored = sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN;
        asked_at = now;
    }
    return ignored;
}

void st_sigpipe_enter(st_sigpipe *g)
{
    /* nothing to guard when the host already ignores SIGPIPE: saves four
     * signal-mask system calls per command */
    g->ignored = sigpipe_ignored();
    if (g->ignored)
        return;
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set, &g->old);
}

void st_sigpipe_leave(st_sigpipe *g)
{
    if (g->ignored)
        return;
    if (!g->was_pending) {
        sigset_t pipe_set, pending;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        sigemptyset(&pending);
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE) == 1) {
            struct timespec zero = {0, 0};
            while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
                ;
        }
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* ---- connection --------------------------------------------------------- */

static void sleep_seconds(double secs)
{
    if (secs <= 0)
        return;
    struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static struct timeval to_timeval(double secs)
{
    struct timeval tv = {(time_t)secs, (suseconds_t)((secs - (double)(time_t)secs) * 1e6)};
    return tv;
}

void st_drop(vmp_store *s)
{
    if (s->c) {
        redisFree(s->c);
        s->c = NULL;
    }
    s->scripts_loaded = false;
}

void st_replied(vmp_store *s) { s->last_reply = coarse_now(); }

/* Within this many seconds of a reply, a connection is taken as alive
 * without asking the socket. */
#define ST_FRESH_SECONDS 0.05

/* A connection is stale when the server closed it: with no request in
 * flight, anything readable on the socket is an EOF or an error. With
 * trust_fresh, one that answered a moment ago is not asked. */
static bool stale(vmp_store *s, bool trust_fresh)
{
    redisContext *c = s->c;
    if (c->err)
        return true;
    if (trust_fresh && coarse_now() - s->last_reply < ST_FRESH_SECONDS)
        return false;
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int r = poll(&p, 1, 0);
    if (r < 0)
        return errno != EINTR;
    return r > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL));
}

/* Runs one command on a fresh context during the handshake. */
static int handshake_cmd(vmp_store *s, const char *what, int argc, const char **argv, bool *fatal,
                         vmp_err *err)
{
    redisReply *r = redisCommandArgv(s->c, argc, argv, NULL);
    if (!r)
        return vmp_err_set(err, VMP_EREDIS, "redis %s: %s", s->addr,
                           s->c->errstr[0] ? s->c->errstr : "no reply");
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        /* A wrong password or db is a configuration error: retrying it
         * would only delay the message. A loading server is transient. */
        *fatal = strncmp(r->str, "LOADING", 7) != 0;
        rc = vmp_err_set(err, VMP_EREDIS, "redis %s: %s: %s", s->addr, what, r->str);
    }
    freeReplyObject(r);
    return rc;
}

static int connect_once(vmp_store *s, bool *fatal, vmp_err *err)
{
    struct timeval tv = to_timeval(s->timeout);
    if (s->socket)
        s->c = redisConnectUnixWithTimeout(s->socket, tv);
    else
        s->c = redisConnectWithTimeout(s->host, s->port, tv);
    if (!s->c)
        return vmp_err_set(err, VMP_ENOMEM, "redis %s: out of memory", s->addr);
    if (s->c->err) {
        int rc = vmp_err_set(err, VMP_EREDIS, "redis %s: %s", s->addr, s->c->errstr);
        st_drop(s);
        return rc;
    }
    redisSetTimeout(s->c, tv);
    int rc = 0;
    if (s->password && s->password[0]) {
        const char *argv[] = {"AUTH", s->password};
        if ((rc = handshake_cmd(s, "AUTH", 2, argv, fatal, err)) < 0)
            goto out;
    }
    if (s->db > 0) {
        char db[24];
        snprintf(db, sizeof db, "%d", s->db);
        const char *argv[] = {"SELECT", db};
        if ((rc = handshake_cmd(s, "SELECT", 2, argv, fatal, err)) < 0)
            goto out;
    }
    {
        const char *argv[] = {"PING"};
        if ((rc = handshake_cmd(s, "PING", 1, argv, fatal, err)) < 0)
            goto out;
    }
out:
    if (rc < 0)
        st_drop(s);
    return rc;
}

static int ensure(vmp_store *s, bool trust_fresh, vmp_err *err)
{
    if (s->c && !stale(s, trust_fresh))
        return 0;
    if (s->c) {
        vmp_log(VMP_LOG_WARN, "store", "redis %s: connection lost, reconnecting", s->addr);
        st_drop(s);
    }
    double delay = s->delay;
    int rc = VMP_EREDIS;
    for (int attempt = 0; attempt < s->attempts; attempt++) {
        if (attempt > 0) {
            sleep_seconds(delay);
            delay *= 2;
            if (delay > s->delay_max)
                delay = s->delay_max;
        }
        bool fatal = false;
        rc = connect_once(s, &fatal, err);
        if (rc == 0) {
            rc = s->no_scripts ? 0 : st_scripts_load(s, err);
            if (rc == 0)
                return 0;
            st_drop(s);
        }
        if (fatal || rc == VMP_ENOMEM)
            break;
    }
    return rc;
}

int st_ensure(vmp_store *s, vmp_err *err) { return ensure(s, false, err); }
int st_ensure_fresh(vmp_store *s, vmp_err *err) { return ensure(s, true, err); }

void vmp_store_opts_from_cfg(const vmp_redis_cfg *cfg, const char *socket_override,
                             vmp_store_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->host = cfg->server;
    opts->port = cfg->port;
    opts->socket = cfg->socket;
    if (!cfg->server && !cfg->socket)
        opts->socket = socket_override;
    opts->password = cfg->password;
    opts->db = cfg->db;
    opts->prefix = cfg->prefix;
    opts->data_ttl_hours = cfg->data_ttl;
    opts->reconnect_attempts = cfg->reconnect_attempts;
    opts->timeout = cfg->connection_pool_timeout;
}

int st_new(const vmp_store_opts *opts, vmp_store **out, vmp_err *err)
{
    vmp_store *s = calloc(1, sizeof *s);
    if (!s)
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    int rc = 0;
    const char *host = opts->host && opts->host[0] ? opts->host : "127.0.0.1";
    s->host = vmp_strdup(host);
    s->port = opts->port > 0 ? opts->port : 6379;
    s->socket = opts->socket && opts->socket[0] ? vmp_strdup(opts->socket) : NULL;
    s->password = vmp_strdup(opts->password);
    s->db = opts->db;
    s->prefix = vmp_strdup(opts->prefix && opts->prefix[0] ? opts->prefix : "vmpooler");
    s->data_ttl = opts->data_ttl_hours > 0 ? opts->data_ttl_hours : 168;
    s->attempts = opts->reconnect_attempts > 0 ? opts->reconnect_attempts : 10;
    s->delay = opts->reconnect_delay > 0 ? opts->reconnect_delay : 0.05;
    s->delay_max = opts->reconnect_delay_max > 0 ? opts->reconnect_delay_max : 2.0;
    s->timeout = opts->timeout > 0 ? opts->timeout : 10.0;
    if (!s->host || !s->prefix || (opts->socket && opts->socket[0] && !s->socket) ||
        (opts->password && !s->password))
    {
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
        goto out;
    }
    if (s->socket)
        snprintf(s->addr, sizeof s->addr, "%s", s->socket);
    else
        snprintf(s->addr, sizeof s->addr, "%s:%d", s->host, s->port);
    *out = s;
    s = NULL;
out:
    vmp_store_free(s);
    return rc;
}

int vmp_store_open(const vmp_store_opts *opts, vmp_store **out, vmp_err *err)
{
    vmp_store *s = NULL;
    int rc = st_new(opts, &s, err);
    if (rc < 0)
        goto out;
    st_sigpipe g;
    st_sigpipe_enter(&g);
    rc = st_ensure(s, err);
    st_sigpipe_leave(&g);
    if (rc < 0)
        goto out;
    *out = s;
    s = NULL;
out:
    vmp_store_free(s);
    return rc;
}

void vmp_store_free(vmp_store *s)
{
    if (!s)
        return;
    st_drop(s);
    free(s->host);
    free(s->socket);
    if (s->password)
        explicit_bzero(s->password, strlen(s->password));
    free(s->password);
    free(s->prefix);
    free(s);
}

const char *vmp_store_prefix(const vmp_store *s) { return s->prefix; }
long long vmp_store_data_ttl(const vmp_store *s) { return s->data_ttl; }
const char *vmp_store_address(const vmp_store *s) { return s->addr; }

/* ---- running commands ---------------------------------------------------- */

static void free_replies(redisReply **out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (out[i])
            freeReplyObject(out[i]);
        out[i] = NULL;
    }
}

/* One attempt: append every command, read every reply. *broken is set when
 * the connection failed (it is dropped then). */
static int exec_once(vmp_store *s, const st_args *cmds, size_t n, redisReply **out, bool *broken,
                     vmp_err *err)
{
    *broken = false;
    for (size_t i = 0; i < n; i++) {
        if (redisAppendCommandArgv(s->c, (int)cmds[i].n, (const char **)cmds[i].v, cmds[i].len) !=
            REDIS_OK)
            goto broke;
    }
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(s->c, &r) != REDIS_OK || !r) {
            if (r)
                freeReplyObject(r);
            free_replies(out, i);
            goto broke;
        }
        out[i] = r;
    }
    st_replied(s);
    return 0;
broke:
    *broken = true;
    return st_broken(s, err);
}

int st_broken(vmp_store *s, vmp_err *err)
{
    int rc = vmp_err_set(err, VMP_EREDIS, "redis %s: %s", s->addr,
                         s->c && s->c->errstr[0] ? s->c->errstr : "connection lost");
    st_drop(s);
    return rc;
}

int st_pipeline(vmp_store *s, bool idempotent, const st_args *cmds, size_t n, redisReply **out,
                vmp_err *err)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = NULL;
        if (cmds[i].oom)
            return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    }
    int rc;
    st_sigpipe g;
    st_sigpipe_enter(&g);
    for (int tries = 0;; tries++) {
        if ((rc = st_ensure(s, err)) < 0)
            break;
        bool broken = false;
        rc = exec_once(s, cmds, n, out, &broken, err);
        if (rc == 0 || !broken || !idempotent || tries > 0)
            break;
    }
    st_sigpipe_leave(&g);
    return rc;
}

int st_run(vmp_store *s, bool idempotent, const st_args *a, redisReply **out, vmp_err *err)
{
    redisReply *r = NULL;
    int rc = st_pipeline(s, idempotent, a, 1, &r, err);
    if (rc < 0)
        return rc;
    if (r->type == REDIS_REPLY_ERROR) {
        rc =
            vmp_err_set(err, VMP_EREDIS, "redis %s: %s: %s", s->addr, a->n ? a->v[0] : "?", r->str);
        freeReplyObject(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* ---- replies ------------------------------------------------------------- */

int st_bad_reply(vmp_store *s, const char *what, vmp_err *err)
{
    return vmp_err_set(err, VMP_EREDIS, "redis %s: unexpected reply to %s", s->addr, what);
}

int st_reply_int(vmp_store *s, const redisReply *r, long long *out, vmp_err *err)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return 0;
    }
    if (r->type == REDIS_REPLY_NIL) {
        *out = 0;
        return 0;
    }
    if ((r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
        vmp_parse_long(r->str, out) == 0)
        return 0;
    return st_bad_reply(s, "an integer request", err);
}

int st_take_int(vmp_store *s, redisReply *r, long long *out, vmp_err *err)
{
    long long v = 0;
    int rc = st_reply_int(s, r, &v, err);
    freeReplyObject(r);
    if (rc == 0 && out)
        *out = v;
    return rc;
}

int st_reply_code(vmp_store *s, const redisReply *r, const char *what, long long *code,
                  vmp_err *err)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        st_reply_int(s, r->element[0], code, err) < 0)
        return st_bad_reply(s, what, err);
    return 0;
}

int st_reply_str(vmp_store *s, const redisReply *r, char **out, vmp_err *err)
{
    if (r->type == REDIS_REPLY_NIL) {
        *out = NULL;
        return 0;
    }
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) {
        char *c = malloc(r->len + 1);
        if (!c)
            return vmp_err_set(err, VMP_ENOMEM, "out of memory");
        memcpy(c, r->str, r->len);
        c[r->len] = '\0';
        *out = c;
        return 0;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = vmp_asprintf("%lld", r->integer);
        return *out ? 0 : vmp_err_set(err, VMP_ENOMEM, "out of memory");
    }
    return st_bad_reply(s, "a string request", err);
}

int st_reply_list(vmp_store *s, const redisReply *r, vmp_strlist *out, vmp_err *err)
{
    if (r->type == REDIS_REPLY_NIL)
        return 0;
    if (r->type != REDIS_REPLY_ARRAY)
        return st_bad_reply(s, "a list request", err);
    for (size_t i = 0; i < r->elements; i++) {
        char *c = NULL;
        int rc = st_reply_str(s, r->element[i], &c, err);
        if (rc < 0)
            return rc;
        if (!c && !(c = vmp_strdup("")))
            return vmp_err_set(err, VMP_ENOMEM, "out of memory");
        if (vmp_strlist_push_owned(out, c) < 0)
            return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    }
    return 0;
}

int st_run_int(vmp_store *s, bool idempotent, const st_args *a, long long *out, vmp_err *err)
{
    redisReply *r = NULL;
    int rc = st_run(s, idempotent, a, &r, err);
    if (rc < 0)
        return rc;
    return st_take_int(s, r, out, err);
}

int st_run_str(vmp_store *s, bool idempotent, const st_args *a, char **out, vmp_err *err)
{
    redisReply *r = NULL;
    int rc = st_run(s, idempotent, a, &r, err);
    if (rc < 0)
        return rc;
    rc = st_reply_str(s, r, out, err);
    freeReplyObject(r);
    return rc;
}

int st_run_list(vmp_store *s, bool idempotent, const st_args *a, vmp_strlist *out, vmp_err *err)
{
    redisReply *r = NULL;
    int rc = st_run(s, idempotent, a, &r, err);
    if (rc < 0)
        return rc;
    rc = st_reply_list(s, r, out, err);
    freeReplyObject(r);
    return rc;
}

int st_eval_int(vmp_store *s, st_script id, const st_args *args, long long *out, vmp_err *err)
{
    redisReply *r = NULL;
    int rc = st_eval(s, id, args, &r, err);
    if (rc < 0)
        return rc;
    return st_take_int(s, r, out, err);
}

/* ---- generic reads ------------------------------------------------------- */

int vmp_store_ping(vmp_store *s, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, "PING");
    redisReply *r = NULL;
    int rc = st_run(s, true, &a, &r, err);
    if (r)
        freeReplyObject(r);
    st_args_free(&a);
    return rc;
}

static const char *const state_names[VMP_VM_NSTATES] = {
    "pending", "ready", "running", "completed", "discovered", "migrating",
};

const char *vmp_vm_state_name(vmp_vm_state st)
{
    return (unsigned)st < VMP_VM_NSTATES ? state_names[st] : "?";
}

int vmp_vm_state_parse(const char *name, vmp_vm_state *out)
{
    for (int i = 0; i < VMP_VM_NSTATES; i++) {
        if (name && strcmp(name, state_names[i]) == 0) {
            *out = (vmp_vm_state)i;
            return 0;
        }
    }
    return -1;
}

static int check_state(vmp_vm_state st, vmp_err *err)
{
    if ((unsigned)st >= VMP_VM_NSTATES)
        return vmp_err_set(err, VMP_EINVAL, "invalid VM state %d", (int)st);
    return 0;
}

int vmp_store_pool_sets_get(vmp_store *s, const char *pool, vmp_store_pool_sets *out, vmp_err *err)
{
    st_args cmds[VMP_VM_NSTATES] = {{0}};
    redisReply *r[VMP_VM_NSTATES] = {0};
    int rc = 0;
    for (int i = 0; i < VMP_VM_NSTATES; i++) {
        st_args_add(&cmds[i], "SMEMBERS");
        st_args_key(&cmds[i], s, state_names[i], pool);
    }
    if ((rc = st_pipeline(s, true, cmds, VMP_VM_NSTATES, r, err)) < 0)
        goto out;
    for (int i = 0; i < VMP_VM_NSTATES; i++) {
        if (r[i]->type == REDIS_REPLY_ERROR) {
            rc = vmp_err_set(err, VMP_EREDIS, "redis %s: SMEMBERS: %s", s->addr, r[i]->str);
            goto out;
        }
        if ((rc = st_reply_list(s, r[i], &out->set[i], err)) < 0)
            goto out;
    }
out:
    for (int i = 0; i < VMP_VM_NSTATES; i++) {
        st_args_free(&cmds[i]);
        if (r[i])
            freeReplyObject(r[i]);
    }
    return rc;
}

void vmp_store_pool_sets_clear(vmp_store_pool_sets *sets)
{
    for (int i = 0; i < VMP_VM_NSTATES; i++)
        vmp_strlist_clear(&sets->set[i]);
}

int vmp_store_pools_counts_get(vmp_store *s, const char *const *pools, size_t npools,
                               vmp_store_pool_counts *out, vmp_err *err)
{
    size_t n = npools * VMP_VM_NSTATES;
    if (n == 0)
        return 0;
    st_args *cmds = calloc(n, sizeof *cmds);
    redisReply **r = calloc(n, sizeof *r);
    int rc = 0;
    if (!cmds || !r) {
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t p = 0; p < npools; p++) {
        for (int i = 0; i < VMP_VM_NSTATES; i++) {
            st_args_add(&cmds[p * VMP_VM_NSTATES + i], "SCARD");
            st_args_key(&cmds[p * VMP_VM_NSTATES + i], s, state_names[i], pools[p]);
        }
    }
    if ((rc = st_pipeline(s, true, cmds, n, r, err)) < 0)
        goto out;
    for (size_t p = 0; p < npools; p++) {
        for (int i = 0; i < VMP_VM_NSTATES; i++) {
            const redisReply *x = r[p * VMP_VM_NSTATES + i];
            if (x->type == REDIS_REPLY_ERROR) {
                rc = vmp_err_set(err, VMP_EREDIS, "redis %s: SCARD: %s", s->addr, x->str);
                goto out;
            }
            if ((rc = st_reply_int(s, x, &out[p].n[i], err)) < 0)
                goto out;
        }
    }
out:
    if (cmds) {
        for (size_t i = 0; i < n; i++)
            st_args_free(&cmds[i]);
    }
    if (r)
        free_replies(r, n);
    free(cmds);
    free(r);
    return rc;
}

int vmp_store_pool_counts_get(vmp_store *s, const char *pool, vmp_store_pool_counts *out,
                              vmp_err *err)
{
    return vmp_store_pools_counts_get(s, &pool, 1, out, err);
}

int vmp_store_set_members(vmp_store *s, const char *pool, vmp_vm_state st, vmp_strlist *out,
                          vmp_err *err)
{
    int rc = check_state(st, err);
    if (rc < 0)
        return rc;
    st_args a = {0};
    st_args_add(&a, "SMEMBERS");
    st_args_key(&a, s, state_names[st], pool);
    rc = st_run_list(s, true, &a, out, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_is_member(vmp_store *s, const char *pool, vmp_vm_state st, const char *vm, bool *out,
                        vmp_err *err)
{
    int rc = check_state(st, err);
    if (rc < 0)
        return rc;
    st_args a = {0};
    st_args_add(&a, "SISMEMBER");
    st_args_key(&a, s, state_names[st], pool);
    st_args_add(&a, vm);
    long long v = 0;
    rc = st_run_int(s, true, &a, &v, err);
    st_args_free(&a);
    if (rc == 0)
        *out = v != 0;
    return rc;
}

int vmp_store_vm_get(vmp_store *s, const char *vm, const char *field, char **out, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, "HGET");
    st_args_key(&a, s, "vm", vm);
    st_args_add(&a, field);
    int rc = st_run_str(s, true, &a, out, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_vm_getall(vmp_store *s, const char *vm, vmp_strlist *kv, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, "HGETALL");
    st_args_key(&a, s, "vm", vm);
    int rc = st_run_list(s, true, &a, kv, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_vm_exists(vmp_store *s, const char *vm, bool *out, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, "EXISTS");
    st_args_key(&a, s, "vm", vm);
    long long v = 0;
    int rc = st_run_int(s, true, &a, &v, err);
    st_args_free(&a);
    if (rc == 0)
        *out = v > 0;
    return rc;
}

int vmp_store_vm_set(vmp_store *s, const char *vm, const char *field, const char *value,
                     vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, "HSET");
    st_args_key(&a, s, "vm", vm);
    st_args_add(&a, field);
    st_args_add(&a, value);
    int rc = st_run_int(s, false, &a, NULL, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_vm_del_field(vmp_store *s, const char *vm, const char *field, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, "HDEL");
    st_args_key(&a, s, "vm", vm);
    st_args_add(&a, field);
    int rc = st_run_int(s, false, &a, NULL, err);
    st_args_free(&a);
    return rc;
}

static int parse_found(char *str, double *out, bool *found)
{
    *found = false;
    if (str && vmp_time_parse(str, out) == 0)
        *found = true;
    free(str);
    return 0;
}

int vmp_store_vm_get_time(vmp_store *s, const char *vm, const char *field, double *out, bool *found,
                          vmp_err *err)
{
    char *str = NULL;
    int rc = vmp_store_vm_get(s, vm, field, &str, err);
    if (rc < 0)
        return rc;
    return parse_found(str, out, found);
}

int vmp_store_active_get(vmp_store *s, const char *pool, const char *vm, char **out, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, "HGET");
    st_args_key(&a, s, "active", pool);
    st_args_add(&a, vm);
    int rc = st_run_str(s, true, &a, out, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_active_get_time(vmp_store *s, const char *pool, const char *vm, double *out,
                              bool *found, vmp_err *err)
{
    char *str = NULL;
    int rc = vmp_store_active_get(s, pool, vm, &str, err);
    if (rc < 0)
        return rc;
    return parse_found(str, out, found);
}

const char *vmp_store_kv_get(const vmp_strlist *kv, const char *key)
{
    for (size_t i = 0; i + 1 < kv->n; i += 2) {
        if (strcmp(kv->v[i], key) == 0)
            return kv->v[i + 1];
    }
    return NULL;
}

/* ---- counters ------------------------------------------------------------ */

static const char *counter_key(vmp_store_counter c)
{
    return c == VMP_COUNTER_ONDEMAND_CLONE ? "ondemandclone" : "clone";
}

int vmp_store_counter_set(vmp_store *s, vmp_store_counter c, long long v, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, "SET");
    st_args_key(&a, s, "tasks", counter_key(c));
    st_args_addf(&a, "%lld", v);
    redisReply *r = NULL;
    int rc = st_run(s, true, &a, &r, err);
    if (r)
        freeReplyObject(r);
    st_args_free(&a);
    return rc;
}

static int counter_step(vmp_store *s, vmp_store_counter c, const char *cmd, long long *out,
                        vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, cmd);
    st_args_key(&a, s, "tasks", counter_key(c));
    int rc = st_run_int(s, false, &a, out, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_counter_incr(vmp_store *s, vmp_store_counter c, long long *out, vmp_err *err)
{
    return counter_step(s, c, "INCR", out, err);
}

int vmp_store_counter_decr(vmp_store *s, vmp_store_counter c, long long *out, vmp_err *err)
{
    return counter_step(s, c, "DECR", out, err);
}

int vmp_store_counter_add(vmp_store *s, vmp_store_counter c, long long delta, long long *out,
                          vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, "INCRBY");
    st_args_key(&a, s, "tasks", counter_key(c));
    st_args_addf(&a, "%lld", delta);
    int rc = st_run_int(s, false, &a, out, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_counter_get(vmp_store *s, vmp_store_counter c, long long *out, vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, "GET");
    st_args_key(&a, s, "tasks", counter_key(c));
    int rc = st_run_int(s, true, &a, out, err);
    st_args_free(&a);
    return rc;
}

int vmp_store_counter_take(vmp_store *s, vmp_store_counter c, long long limit, bool *taken,
                           vmp_err *err)
{
    st_args a = {0};
    st_args_add(&a, counter_key(c));
    st_args_addf(&a, "%lld", limit);
    long long v = 0;
    int rc = st_eval_int(s, SCR_COUNTER_TAKE, &a, &v, err);
    st_args_free(&a);
    if (rc == 0 && taken)
        *taken = v == 1;
    return rc;
}
