/*
 * api: the HTTP server, request parsing, routing, responses, per-thread
 * Redis connections, config swaps, the rate limiter and the request logger.
 *
 * Threads: `threads` workers share one listen socket; each runs its own
 * libmicrohttpd daemon from its own event loop. One loop turn: wait for
 * sockets, let the daemon read every request that is ready and run the
 * handlers; handlers of the hot routes (checkout, return) only queue their
 * script in the worker's batch and leave the request unanswered; the loop
 * then sends the whole batch to Redis as one pipeline, the callbacks set the
 * replies, and the next run of the daemon writes them out. Under
 * load, requests that arrive together share one Redis round trip and one
 * wake-up of each side, which is where a request's time went. Other routes
 * call Redis directly.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/api_internal.h"
#include "log.h"

#define API_PREFIX "/api/v3"

/* ---- lifecycle ----------------------------------------------------------- */

static void store_destructor(void *p) { vmp_store_free(p); }
static void events_stop(vmp_api *api);

/* One worker per two CPUs: a worker is an event loop that gathers the
 * requests arriving together into one Redis round trip, and fewer, fuller
 * loops do better than more, emptier ones while Redis (and the manager)
 * need cores of their own (bench/README.md: on 2 CPUs one worker serves
 * ~20 % more checkouts than two). */
static unsigned default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN) / 2;
    return n < 1 ? 1 : n > 16 ? 16 : (unsigned)n;
}

int vmp_api_new(const vmp_api_opts *opts, vmp_api **out, vmp_err *err)
{
    int rc = 0;
    vmp_api *api = NULL;
    if (!opts || !opts->config || !opts->store || !out || *out)
        return vmp_err_set(err, VMP_EINVAL, "api: config and store options are required");
    api = calloc(1, sizeof(*api));
    if (!api)
        return vmp_err_set(err, VMP_ENOMEM, "api: out of memory");
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* A reload must not starve behind a steady stream of requests. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&api->cfg_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&api->cache_lock, NULL);
    pthread_mutex_init(&api->ev_lock, NULL);
    pthread_cond_init(&api->ev_cond, NULL);
    api->listen_fd = api->stop_pipe[0] = api->stop_pipe[1] = -1;
    api->store_opts = *opts->store;
    /* A request must not hang while Redis is away: fail after a few quick
     * attempts and answer 503 (the next request tries again). */
    if (api->store_opts.reconnect_attempts <= 0 || api->store_opts.reconnect_attempts > 3)
        api->store_opts.reconnect_attempts = 3;
    if (api->store_opts.reconnect_delay_max <= 0 || api->store_opts.reconnect_delay_max > 0.2)
        api->store_opts.reconnect_delay_max = 0.2;
    if (api->store_opts.timeout <= 0 || api->store_opts.timeout > 5)
        api->store_opts.timeout = 5;
    const char *host = opts->listen_host;
    if (!host || !*host)
        host = opts->config->api.listen_host;
    if (!host || !*host)
        host = "127.0.0.1";
    api->host = vmp_strdup(host);
    api->port_opt = opts->listen_port;
    if (api->port_opt == 0)
        api->port_opt = opts->config->api.listen_port > 0 ? opts->config->api.listen_port
                                                          : VMP_API_DEFAULT_PORT;
    if (api->port_opt < VMP_API_PORT_ANY || api->port_opt > 65535) {
        rc = vmp_err_set(err, VMP_EINVAL, "api: bad listen port %d", opts->listen_port);
        goto out;
    }
    api->threads = opts->threads ? opts->threads : default_threads();
    api->clock = opts->clock ? opts->clock : vmp_clock_system();
    api->metrics = opts->metrics ? opts->metrics : vmp_metrics_null();
    api->body_limit = opts->body_limit ? opts->body_limit : VMP_API_DEFAULT_BODY_LIMIT;
    api->status_cache_seconds = opts->status_cache_seconds;
    if (!api->host) {
        rc = vmp_err_set(err, VMP_ENOMEM, "api: out of memory");
        goto out;
    }
    if (pthread_key_create(&api->store_key, store_destructor) != 0) {
        rc = vmp_err_set(err, VMP_ENOMEM, "api: cannot create a thread key");
        goto out;
    }
    api->key_made = true;
    rc = api_cfgstate_build(opts->config, &api->state, err);
    if (rc)
        goto out;
    *out = api;
    api = NULL;
out:
    vmp_api_free(api);
    return rc;
}

int vmp_api_set_config(vmp_api *api, const vmp_config *cfg, vmp_err *err)
{
    api_cfgstate *st = NULL;
    if (!api || !cfg)
        return vmp_err_set(err, VMP_EINVAL, "api: no config");
    int rc = api_cfgstate_build(cfg, &st, err);
    if (rc)
        return rc;
    pthread_rwlock_wrlock(&api->cfg_lock);
    api_cfgstate *old = api->state;
    api->state = st;
    pthread_rwlock_unlock(&api->cfg_lock);
    api_cfgstate_free(old);
    api_cache_clear(api);
    return 0;
}

const char *vmp_api_host(const vmp_api *api) { return api ? api->host : NULL; }
int vmp_api_port(const vmp_api *api) { return api && api->started ? api->port : 0; }

static void workers_stop(vmp_api *api)
{
    /* Closing the write end wakes every loop at once (the read end turns
     * readable for good); each finishes its turn and ends. Each thread's
     * store is freed by the thread key destructor as the thread ends. */
    __atomic_store_n(&api->stopping, true, __ATOMIC_RELEASE);
    if (api->stop_pipe[1] >= 0)
        close(api->stop_pipe[1]);
    api->stop_pipe[1] = -1;
    for (unsigned i = 0; api->workers && i < api->threads; i++) {
        api_worker *w = &api->workers[i];
        if (w->running)
            pthread_join(w->thread, NULL);
        w->running = false;
        /* The listen socket is shared: take it back from the daemon so
         * that stopping the daemon does not close it under the others. */
        if (w->daemon) {
            MHD_quiesce_daemon(w->daemon);
            MHD_stop_daemon(w->daemon);
        }
        w->daemon = NULL;
        vmp_store_batch_free(w->batch);
        w->batch = NULL;
    }
    free(api->workers);
    api->workers = NULL;
    if (api->stop_pipe[0] >= 0)
        close(api->stop_pipe[0]);
    api->stop_pipe[0] = -1;
    if (api->listen_fd >= 0)
        close(api->listen_fd);
    api->listen_fd = -1;
}

void vmp_api_stop(vmp_api *api)
{
    if (!api || !api->started)
        return;
    workers_stop(api);
    api->started = false;
    api->port = 0;
    events_stop(api);
}

void vmp_api_free(vmp_api *api)
{
    if (!api)
        return;
    vmp_api_stop(api);
    if (api->key_made)
        pthread_key_delete(api->store_key);
    api_cfgstate_free(api->state);
    api_cache_clear(api);
    pthread_rwlock_destroy(&api->cfg_lock);
    pthread_mutex_destroy(&api->cache_lock);
    pthread_mutex_destroy(&api->ev_lock);
    pthread_cond_destroy(&api->ev_cond);
    free(api->cache);
    free(api->host);
    free(api);
}

int vmp_api_parse_listen(const char *text, char **host, int *port, vmp_err *err)
{
    if (!text || !*text || !host || *host || !port)
        return vmp_err_set(err, VMP_EINVAL, "listen: empty address");
    const char *portstr = text;
    const char *h = NULL;
    size_t hlen = 0;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return vmp_err_set(err, VMP_EINVAL, "listen: bad address '%s' (want [V6]:PORT)", text);
        h = text + 1;
        hlen = (size_t)(close - h);
        portstr = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon) {
            if (strchr(text, ':') != colon)
                return vmp_err_set(err, VMP_EINVAL,
                                   "listen: bad address '%s' (write IPv6 as [V6]:PORT)", text);
            h = text;
            hlen = (size_t)(colon - text);
            portstr = colon + 1;
        }
    }
    long long p;
    if (vmp_parse_long(portstr, &p) != 0 || p < 1 || p > 65535)
        return vmp_err_set(err, VMP_EINVAL, "listen: bad port in '%s'", text);
    if (h && hlen > 0) {
        *host = strndup(h, hlen);
        if (!*host)
            return vmp_err_set(err, VMP_ENOMEM, "listen: out of memory");
    }
    *port = (int)p;
    return 0;
}

/* ---- events ------------------------------------------------------------- */

#define API_MAX_PENDING_EVENTS 10000
#define API_EVENT_GATHER_NS 5000000L /* 5 ms */

void api_event(vmp_api *api, const char *type, const char *pool)
{
    char *e = vmp_asprintf("%s %s", type, pool ? pool : "");
    if (!e)
        return;
    pthread_mutex_lock(&api->ev_lock);
    bool dup = false;
    for (size_t i = 0; i < api->nev && !dup; i++)
        dup = !strcmp(api->ev[i], e);
    if (!dup && api->ev_running && api->nev < API_MAX_PENDING_EVENTS) {
        if (api->nev == api->capev) {
            size_t cap = api->capev ? api->capev * 2 : 16;
            char **v = realloc(api->ev, cap * sizeof(*v));
            if (v) {
                api->ev = v;
                api->capev = cap;
            }
        }
        if (api->nev < api->capev) {
            api->ev[api->nev++] = e;
            e = NULL;
            /* While the thread gathers a batch it will find this event
             * when its wait ends: waking it would cost a context switch
             * on the request path for nothing. */
            if (api->ev_idle)
                pthread_cond_signal(&api->ev_cond);
        }
    }
    pthread_mutex_unlock(&api->ev_lock);
    free(e);
}

static void *event_thread(void *ud)
{
    vmp_api *api = ud;
    vmp_store *s = NULL;
    bool failing = false;
    char **batch = NULL;
    size_t nbatch = 0;
    pthread_mutex_lock(&api->ev_lock);
    while (1) {
        api->ev_idle = true;
        while (api->nev == 0 && !api->ev_stop)
            pthread_cond_wait(&api->ev_cond, &api->ev_lock);
        api->ev_idle = false;
        if (api->nev == 0 && api->ev_stop)
            break;
        /* take everything pending: events that piled up meanwhile go out
         * once each */
        batch = api->ev;
        nbatch = api->nev;
        api->ev = NULL;
        api->nev = api->capev = 0;
        pthread_mutex_unlock(&api->ev_lock);
        vmp_err err = {0};
        int rc = 0;
        if (!s)
            rc = vmp_store_open(&api->store_opts, &s, &err);
        for (size_t i = 0; i < nbatch; i++) {
            char *sp = strchr(batch[i], ' ');
            if (rc == 0 && sp) {
                *sp = '\0';
                rc = vmp_store_publish(s, batch[i], sp + 1, &err);
            }
            free(batch[i]);
        }
        free(batch);
        batch = NULL;
        if (rc != 0 && !failing)
            vmp_log(VMP_LOG_WARN, "api", "events not published: %s", err.msg);
        failing = rc != 0;
        pthread_mutex_lock(&api->ev_lock);
        /* Under load, gather what comes in the next few milliseconds into
         * one batch (a manager only needs to know "look at pool p now");
         * when idle the next event still goes out at once. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += API_EVENT_GATHER_NS;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!api->ev_stop &&
               pthread_cond_timedwait(&api->ev_cond, &api->ev_lock, &until) != ETIMEDOUT)
            ; /* only events_stop signals here */
    }
    pthread_mutex_unlock(&api->ev_lock);
    vmp_store_free(s);
    return NULL;
}

static int events_start(vmp_api *api, vmp_err *err)
{
    api->ev_stop = false;
    api->ev_running = true;
    if (pthread_create(&api->ev_thread, NULL, event_thread, api) != 0) {
        api->ev_running = false;
        return vmp_err_set(err, VMP_EIO, "api: cannot start the event thread");
    }
    return 0;
}

/* Publishes what is pending, then ends the thread. */
static void events_stop(vmp_api *api)
{
    if (!api->ev_running)
        return;
    pthread_mutex_lock(&api->ev_lock);
    api->ev_stop = true;
    pthread_cond_signal(&api->ev_cond);
    pthread_mutex_unlock(&api->ev_lock);
    pthread_join(api->ev_thread, NULL);
    pthread_mutex_lock(&api->ev_lock);
    api->ev_running = false;
    for (size_t i = 0; i < api->nev; i++)
        free(api->ev[i]);
    free(api->ev);
    api->ev = NULL;
    api->nev = api->capev = 0;
    pthread_mutex_unlock(&api->ev_lock);
}

/* ---- the listen socket ----------------------------------------------------- */

static int open_listener(vmp_api *api, int *fd_out, bool *v6, vmp_err *err)
{
    char host[256];
    size_t hl = strlen(api->host);
    if (api->host[0] == '[' && hl > 2 && api->host[hl - 1] == ']') {
        memcpy(host, api->host + 1, hl - 2);
        host[hl - 2] = '\0';
    } else {
        vmp_strlcpy(host, api->host, sizeof(host));
    }
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", api->port_opt == VMP_API_PORT_ANY ? 0 : api->port_opt);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0)
        return vmp_err_set(err, VMP_EIO, "api: listen address %s: %s", api->host,
                           gai_strerror(gai));
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 512) == 0) {
            *v6 = ai->ai_family == AF_INET6;
            break;
        }
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return vmp_err_set(err, VMP_EIO, "api: %s:%s: %s", api->host, portstr, strerror(saved));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            api->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else
            api->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    *fd_out = fd;
    return 0;
}

/* ---- per-request state ------------------------------------------------------- */

typedef struct conn_ctx {
    vmp_buf body;
    bool too_big;
    /* A deferred request (req.deferred) lives here between its handler and
     * its reply; waiting until the batch callback has set the reply. */
    bool waiting;
    /* The connection closed while the request waited: the batch callback
     * frees this context; path and method are copies by then. */
    bool orphaned;
    char *path_copy, *method_copy;
    api_req req;
} conn_ctx;

static void ctx_free(conn_ctx *ctx)
{
    vmp_buf_free(&ctx->body);
    free(ctx->path_copy);
    free(ctx->method_copy);
    free(ctx);
}

/* Frees what a request owns (not its connection context). */
static void req_clear(api_req *r)
{
    json_decref(r->json);
    r->json = NULL;
    free(r->text);
    r->text = NULL;
    for (size_t i = 0; i < r->nsegs; i++)
        free(r->segs[i]);
    r->nsegs = 0;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    conn_ctx *ctx = *con_cls;
    if (!ctx)
        return;
    *con_cls = NULL;
    if (ctx->waiting) {
        /* The client went away (a reset) while its request waits in the
         * batch: the callback still comes, this turn, and frees it. What
         * pointed into the connection's memory is copied first. */
        ctx->orphaned = true;
        ctx->path_copy = vmp_strdup(ctx->req.path ? ctx->req.path : "");
        ctx->method_copy = vmp_strdup(ctx->req.method_str ? ctx->req.method_str : "");
        ctx->req.path = ctx->path_copy ? ctx->path_copy : "";
        ctx->req.method_str = ctx->method_copy ? ctx->method_copy : "";
        ctx->req.token = NULL;
        ctx->req.conn = NULL;
        return;
    }
    if (ctx->req.deferred)
        req_clear(&ctx->req);
    ctx_free(ctx);
}

/* Keep the path as sent: routes decode each segment themselves, so that
 * "%2F" stays inside its segment and bad encodings can be refused. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s) { return strlen(s); }

vmp_store_batch *api_batch(api_req *r)
{
    return r->worker && !r->worker->batch_closed ? r->worker->batch : NULL;
}

void api_defer(api_req *r) { r->deferred = true; }

vmp_store *api_store(api_req *r)
{
    if (r->store_)
        return r->store_;
    vmp_store *s = pthread_getspecific(r->api->store_key);
    if (!s) {
        vmp_err err = {0};
        if (vmp_store_open(&r->api->store_opts, &s, &err) != 0) {
            vmp_log(VMP_LOG_WARN, "api", "redis: %s", err.msg);
            api_reply_store_error(r, &err);
            return NULL;
        }
        pthread_setspecific(r->api->store_key, s);
    }
    r->store_ = s;
    return s;
}

void api_reply(api_req *r, int status, json_t *body)
{
    json_decref(r->json);
    free(r->text);
    r->text = NULL;
    r->json = body;
    r->status = status;
}

void api_reply_fail(api_req *r, int status)
{
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_false());
    api_reply(r, status, o);
}

void api_reply_error(api_req *r, int status, const char *msg)
{
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_false());
    json_object_set_new(o, "error", api_jstr(msg));
    api_reply(r, status, o);
}

void api_reply_store_error(api_req *r, const vmp_err *err)
{
    char msg[VMP_ERR_MSG_MAX + 32];
    snprintf(msg, sizeof(msg), "redis unavailable: %s", err ? err->msg : "");
    api_reply_error(r, 503, msg);
}

void api_add_header(api_req *r, const char *name, const char *fmt, ...)
{
    if (r->nheaders >= VMP_ARRAY_LEN(r->headers))
        return;
    api_header *h = &r->headers[r->nheaders++];
    h->name = name;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->value, sizeof(h->value), fmt, ap);
    va_end(ap);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes src[0..len) into a new string; plus_space turns '+' into
 * ' ' (query strings). NULL on a bad escape or an encoded NUL. */
static char *decode(const char *src, size_t len, bool plus_space)
{
    char *d = malloc(len + 1);
    if (!d)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            int hi = i + 2 < len ? hexval(src[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(src[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(d);
                return NULL;
            }
            d[o++] = (char)(hi * 16 + lo);
            i += 2;
            continue;
        }
        d[o++] = (plus_space && c == '+') ? ' ' : c;
    }
    d[o] = '\0';
    return d;
}

const char *api_query(api_req *r, const char *name, char *buf, size_t n, bool *no_value)
{
    if (no_value)
        *no_value = false;
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v) {
        /* "?name" without '=' is recorded with a NULL value. */
        if (MHD_lookup_connection_value_n(r->conn, MHD_GET_ARGUMENT_KIND, name, strlen(name), NULL,
                                          NULL) == MHD_YES)
        {
            if (no_value)
                *no_value = true;
            buf[0] = '\0';
            return buf;
        }
        return NULL;
    }
    char *d = decode(v, strlen(v), true);
    if (!d) {
        vmp_strlcpy(buf, v, n);
        return buf;
    }
    vmp_strlcpy(buf, d, n);
    free(d);
    return buf;
}

/* ---- rate limiter (§9.4) ------------------------------------------------------ */

static const char *const rl_class_names[4] = {"global_per_ip", "authenticated", "vm_creation",
                                              "vm_deletion"};

bool api_rate_limit(api_req *r)
{
    if (!r->cfg->global.rate_limiting_enabled)
        return true;
    int cls;
    if (r->method == API_POST && strstr(r->path, "/vm"))
        cls = 2;
    else if (r->method == API_DELETE && strstr(r->path, "/vm"))
        cls = 3;
    else if (r->token)
        cls = 1;
    else
        cls = 0;
    char client[160];
    if (r->token && *r->token) {
        snprintf(client, sizeof(client), "token:%s", r->token);
    } else {
        char ip[INET6_ADDRSTRLEN] = "unknown";
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
        }
        snprintf(client, sizeof(client), "ip:%s", ip);
    }
    long long limit = r->st->rate_limits[cls][0], period = r->st->rate_limits[cls][1];
    vmp_store *s = api_store(r);
    if (!s) {
        /* Redis errors let the request through, as vmpooler does; the
         * handler will answer 503 itself if Redis is still away. */
        api_reply(r, 0, NULL);
        return true;
    }
    bool allowed = true;
    long long ttl = 0;
    vmp_err err = {0};
    if (vmp_store_ratelimit_hit(s, rl_class_names[cls], client, limit, period, &allowed, &ttl,
                                &err) != 0)
    {
        vmp_log(VMP_LOG_WARN, "api", "rate limiter: %s", err.msg);
        return true;
    }
    if (allowed)
        return true;
    if (ttl < 0)
        ttl = period;
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_false());
    json_object_set_new(o, "error", json_string("Rate limit exceeded"));
    json_object_set_new(o, "limit", json_integer(limit));
    json_object_set_new(o, "period", json_integer(period));
    json_object_set_new(o, "retry_after", json_integer(ttl));
    api_reply(r, 429, o);
    api_add_header(r, "X-RateLimit-Limit", "%lld", limit);
    api_add_header(r, "X-RateLimit-Remaining", "0");
    api_add_header(r, "X-RateLimit-Reset", "%lld", (long long)r->now + ttl);
    api_add_header(r, "Retry-After", "%lld", ttl);
    return false;
}

/* ---- routing -------------------------------------------------------------------- */

static bool seg_is(const api_req *r, size_t i, const char *s)
{
    return i < r->nsegs && strcmp(r->segs[i], s) == 0;
}

static void dispatch_v3(api_req *r)
{
    api_method m = r->method;
    size_t n = r->nsegs;
    if (n == 0) {
        api_reply_fail(r, 404);
        return;
    }
    if (seg_is(r, 0, "status") && n == 1 && m == API_GET)
        api_route_status(r);
    else if (seg_is(r, 0, "poolstat") && n == 1 && m == API_GET)
        api_route_poolstat(r);
    else if (seg_is(r, 0, "totalrunning") && n == 1 && m == API_GET)
        api_route_totalrunning(r);
    else if (seg_is(r, 0, "summary") && n <= 3 && m == API_GET)
        api_route_summary(r);
    else if (seg_is(r, 0, "token") && n <= 2)
        api_route_token(r);
    else if (seg_is(r, 0, "vm"))
        api_route_vm(r);
    else if (seg_is(r, 0, "ondemandvm") && n <= 2)
        api_route_ondemand(r);
    else if (seg_is(r, 0, "config") && n == 1 && m == API_GET)
        api_route_config_get(r);
    else if (seg_is(r, 0, "full_config") && n == 1 && m == API_GET)
        api_route_full_config(r);
    else if (seg_is(r, 0, "config") && n >= 2 && n <= 3)
        api_route_config_change(r);
    else if (seg_is(r, 0, "poolreset") && n == 1 && m == API_POST)
        api_route_poolreset(r);
    else
        api_reply_fail(r, 404);
    /* A handler that matched nothing leaves no reply: 404. */
    if (r->status == 0)
        api_reply_fail(r, 404);
}

/* Splits the raw path into decoded segments (empty segments dropped, as
 * Sinatra's optional trailing slash). Returns false on bad encoding. */
static bool split_path(api_req *r, const char *p, bool *too_many)
{
    *too_many = false;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (r->nsegs >= API_MAX_SEGS) {
            *too_many = true;
            return true;
        }
        char *d = decode(p, len, false);
        if (!d)
            return false;
        r->segs[r->nsegs++] = d;
        p += len;
    }
    return true;
}

static void route(api_req *r)
{
    const char *url = r->path;
    if (r->method == API_OTHER) {
        api_reply_fail(r, 404);
        return;
    }
    if (!strcmp(url, "/")) {
        if (r->method == API_GET) {
            r->status = 302;
            r->text = vmp_strdup("");
            r->content_type = "text/html;charset=utf-8";
            api_add_header(r, "Location", "/dashboard/");
            return;
        }
        api_reply_fail(r, 404);
        return;
    }
    if ((!strcmp(url, "/healthcheck") || !strcmp(url, "/healthcheck/")) && r->method == API_GET) {
        json_t *o = json_object();
        json_object_set_new(o, "ok", json_true());
        api_reply(r, 200, o);
        return;
    }
    if (!strncmp(url, "/dashboard", 10) && (url[10] == '/' || url[10] == '\0')) {
        api_route_dashboard(r, url + 10);
        return;
    }
    size_t pl = strlen(API_PREFIX);
    if (strncmp(url, API_PREFIX, pl) != 0 || (url[pl] != '/' && url[pl] != '\0')) {
        api_reply_fail(r, 404);
        return;
    }
    bool too_many = false;
    if (!split_path(r, url + pl, &too_many)) {
        api_reply_error(r, 400, "Invalid path encoding");
        return;
    }
    if (too_many) {
        api_reply_fail(r, 404);
        return;
    }
    if (!api_rate_limit(r))
        return;
    dispatch_v3(r);
}

static api_method parse_method(const char *m)
{
    if (!strcmp(m, "GET"))
        return API_GET;
    if (!strcmp(m, "POST"))
        return API_POST;
    if (!strcmp(m, "PUT"))
        return API_PUT;
    if (!strcmp(m, "DELETE"))
        return API_DELETE;
    if (!strcmp(m, "HEAD"))
        return API_GET; /* as Sinatra: HEAD runs the GET route, body dropped */
    return API_OTHER;
}

static enum MHD_Result send_reply(struct MHD_Connection *c, api_req *r)
{
    vmp_buf b = VMP_BUF_INIT;
    if (r->json) {
        api_json_pretty(r->json, &b);
    } else if (r->text) {
        vmp_buf_puts(&b, r->text);
    }
    size_t len = b.len;
    char *data = vmp_buf_take(&b);
    if (!data && len == 0)
        data = NULL;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, data ? data : (void *)"", data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type ? r->content_type : "application/json");
    if (r->www_auth)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Basic realm=\"Authentication required\"");
    for (size_t i = 0; i < r->nheaders; i++)
        MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void log_request(const api_req *r)
{
    vmp_log(VMP_LOG_INFO, "api", "API: Method: %s, Status: %d, Path: %s, Body: %.*s", r->method_str,
            r->status, r->path, (int)(r->body_len > 1024 ? 1024 : r->body_len),
            r->body ? r->body : "");
}

/* What every request does once its reply is set: the 404 default, the
 * request log, the pools snapshot given back. Runs in the loop turn that
 * read the request, while the config it used is still held. */
static void req_finish(api_req *r)
{
    if (r->status == 0)
        api_reply_fail(r, 404);
    if (r->cfg->global.request_logger)
        log_request(r);
    api_pools_release(r->api->state, r->snap);
    r->snap = NULL;
}

void api_answer(api_req *r)
{
    conn_ctx *ctx = r->ctx;
    req_finish(r);
    ctx->waiting = false;
    if (ctx->orphaned) {
        /* Redis already carried the request out (a checkout leaves its VM
         * running until its lifetime ends, as in vmpooler); say so, since
         * nobody will read the reply. */
        vmp_log(VMP_LOG_INFO, "api",
                "%s %s: the client closed its connection before the reply (%d)", r->method_str,
                r->path, r->status);
        req_clear(r);
        ctx_free(ctx);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    api_worker *w = cls;
    vmp_api *api = w->api;
    /* The first request of a loop turn takes the config's read lock; the
     * loop lets it go when the turn ends (a reload waits at most a turn). */
    if (!w->cfg_locked) {
        pthread_rwlock_rdlock(&api->cfg_lock);
        w->cfg_locked = true;
    }
    conn_ctx *ctx = *con_cls;
    if (!ctx) {
        ctx = calloc(1, sizeof(*ctx));
        if (!ctx)
            return MHD_NO;
        *con_cls = ctx;
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        long long n;
        if (cl && vmp_parse_long(cl, &n) == 0 && (n < 0 || (unsigned long long)n > api->body_limit))
        {
            /* Answer at once rather than read a body we will refuse; MHD
             * closes the connection after this reply. */
            ctx->too_big = true;
            char body[160];
            int len = snprintf(body, sizeof(body),
                               "{\n  \"ok\": false,\n  \"error\": \"Request body too large "
                               "(limit %zu bytes)\"\n}",
                               api->body_limit);
            struct MHD_Response *resp =
                MHD_create_response_from_buffer((size_t)len, body, MHD_RESPMEM_MUST_COPY);
            if (!resp)
                return MHD_NO;
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
            enum MHD_Result ret = MHD_queue_response(c, 413, resp);
            MHD_destroy_response(resp);
            return ret;
        }
        return MHD_YES;
    }
    if (ctx->req.deferred) {
        /* A request fully read and not answered is called again on each
         * run of the daemon: answer once the batch has set the reply. */
        if (ctx->waiting)
            return MHD_YES;
        enum MHD_Result ret = send_reply(c, &ctx->req);
        req_clear(&ctx->req);
        ctx->req.deferred = false;
        return ret;
    }
    if (*upload_data_size) {
        if (!ctx->too_big) {
            if (ctx->body.len + *upload_data_size > api->body_limit) {
                ctx->too_big = true;
                vmp_buf_free(&ctx->body);
            } else {
                vmp_buf_append(&ctx->body, upload_data, *upload_data_size);
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    api_req *r = &ctx->req;
    memset(r, 0, sizeof(*r));
    r->api = api;
    r->worker = w;
    r->ctx = ctx;
    r->conn = c;
    r->method_str = method;
    r->method = parse_method(method);
    r->path = url;
    r->body = ctx->body.s ? ctx->body.s : "";
    r->body_len = ctx->body.len;
    r->token = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-AUTH-TOKEN");
    r->now = vmp_clock_now(api->clock);
    /* The loop holds the config's read lock for the whole turn. */
    r->st = api->state;
    r->cfg = api->state->cfg;
    if (r->cfg->n_pools == 0) {
        /* no :pools: in the config: the ones the manager published */
        r->snap = api_pools_acquire(r);
        if (r->snap)
            r->cfg = api_pools_config(r->snap);
    }
    if (ctx->too_big || ctx->body.oom) {
        char msg[96];
        snprintf(msg, sizeof(msg), "Request body too large (limit %zu bytes)", api->body_limit);
        api_reply_error(r, 413, msg);
    } else {
        route(r);
    }
    if (r->deferred) {
        /* No reply yet: libmicrohttpd keeps the connection and calls
         * again (documented for a request fully read, neither answered
         * nor suspended). Suspending instead would cost two epoll_ctl
         * calls per request; the loop never ends a turn with a request
         * waiting, so this never busy-waits. */
        ctx->waiting = true;
        return MHD_YES;
    }
    req_finish(r);
    enum MHD_Result ret = send_reply(c, r);
    req_clear(r);
    return ret;
}

/* Batch rounds in one loop turn before the config lock is let go (a reload
 * waits at most that long under a steady stream of requests). */
#define API_MAX_BATCH_ROUNDS 8

static void *worker_main(void *ud)
{
    api_worker *w = ud;
    vmp_api *api = w->api;
    for (;;) {
        /* Waits in the daemon's own epoll set, which holds the stop pipe
         * too (as an event libmicrohttpd skips): one system call per wake-up. */
        if (MHD_run_wait(w->daemon, -1) != MHD_YES) {
            /* Only a broken epoll set gets here (libmicrohttpd retries an
             * interrupted wait itself): say so once, and do not spin. */
            if (!w->loop_failing)
                vmp_log(VMP_LOG_ERROR, "api", "the HTTP event loop failed: %s", strerror(errno));
            w->loop_failing = true;
            struct timespec pause = {0, 100 * 1000 * 1000};
            nanosleep(&pause, NULL);
        } else {
            w->loop_failing = false;
        }
        /* Queued only by handlers that opened this thread's store. */
        vmp_store *s = pthread_getspecific(api->store_key);
        vmp_store_batch *b = w->batch;
        for (int round = 1; vmp_store_batch_size(b) + vmp_store_batch_in_flight(b) > 0; round++) {
            /* First round, when requests have been coming together: one
             * more run of the daemon gathers those that arrived while this
             * turn began into the same group (a lone client would only pay
             * for the extra look). */
            if (round == 1 && w->last_group > 1)
                MHD_run(w->daemon);
            if (vmp_store_batch_size(b) > 0)
                w->last_group = vmp_store_batch_size(b);
            /* Replies of the group sent last round (Redis ran it while the
             * daemon ran), then the next group out at once; the daemon
             * then writes the replies and reads what came meanwhile. In
             * the last round nothing new is sent and new requests are
             * answered directly: the turn ends with nothing waiting. */
            vmp_store_batch_finish(s, b);
            w->batch_closed = round >= API_MAX_BATCH_ROUNDS;
            if (w->batch_closed)
                vmp_store_batch_run(s, b);
            else
                vmp_store_batch_send(s, b);
            MHD_run(w->daemon);
        }
        w->batch_closed = false;
        if (w->cfg_locked)
            pthread_rwlock_unlock(&api->cfg_lock);
        w->cfg_locked = false;
        /* After the turn: whatever it took in has had its reply. */
        if (__atomic_load_n(&api->stopping, __ATOMIC_ACQUIRE))
            break;
    }
    return NULL;
}

static int worker_start(vmp_api *api, api_worker *w, bool v6, vmp_err *err)
{
    w->api = api;
    w->batch = vmp_store_batch_new();
    if (!w->batch)
        return vmp_err_set(err, VMP_ENOMEM, "api: out of memory");
    /* No internal thread: this worker's loop runs the daemon. */
    unsigned flags = MHD_USE_EPOLL | MHD_USE_TURBO;
    if (v6)
        flags |= MHD_USE_IPv6;
    w->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, w, MHD_OPTION_LISTEN_SOCKET, api->listen_fd,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, w, MHD_OPTION_UNESCAPE_CALLBACK, no_unescape,
        NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(32 * 1024), MHD_OPTION_END);
    if (!w->daemon)
        return vmp_err_set(err, VMP_EIO, "api: cannot start the HTTP server on %s:%d", api->host,
                           api->port);
    /* The stop pipe joins the daemon's epoll set with a NULL pointer,
     * which libmicrohttpd takes for a wake-up and skips: MHD_run_wait then
     * returns once the pipe's write end is closed. */
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(w->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    struct epoll_event stop = {.events = EPOLLIN, .data.ptr = NULL};
    if (!di || epoll_ctl(di->epoll_fd, EPOLL_CTL_ADD, api->stop_pipe[0], &stop) != 0)
        return vmp_err_set(err, VMP_EIO, "api: epoll: %s", strerror(errno));
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
        return vmp_err_set(err, VMP_EIO, "api: cannot start a server thread");
    w->running = true;
    return 0;
}

int vmp_api_start(vmp_api *api, vmp_err *err)
{
    if (!api)
        return vmp_err_set(err, VMP_EINVAL, "api: no server");
    if (api->started)
        return vmp_err_set(err, VMP_EINVAL, "api: already started");
    int fd = -1;
    bool v6 = false;
    int rc = open_listener(api, &fd, &v6, err);
    if (rc)
        return rc;
    api->listen_fd = fd;
    /* Every worker's daemon accepts on it: whichever wakes first takes a
     * new connection, the others find nothing (EAGAIN). */
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 ||
        pipe2(api->stop_pipe, O_CLOEXEC) != 0)
    {
        rc = vmp_err_set(err, VMP_EIO, "api: %s", strerror(errno));
        workers_stop(api);
        return rc;
    }
    __atomic_store_n(&api->stopping, false, __ATOMIC_RELEASE); /* after an earlier stop */
    rc = events_start(api, err);
    if (rc) {
        workers_stop(api);
        return rc;
    }
    api->started = true;
    api->workers = calloc(api->threads, sizeof(*api->workers));
    if (!api->workers)
        rc = vmp_err_set(err, VMP_ENOMEM, "api: out of memory");
    for (unsigned i = 0; rc == 0 && i < api->threads; i++)
        rc = worker_start(api, &api->workers[i], v6, err);
    if (rc) {
        vmp_api_stop(api);
        return rc;
    }
    vmp_log(VMP_LOG_INFO, "api", "listening on %s:%d (%u worker%s)", api->host, api->port,
            api->threads, api->threads == 1 ? "" : "s");
    return 0;
}
