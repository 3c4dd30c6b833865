/*
 * api_internal: what the API's .c files share and nobody else sees: the
 * server struct, the per-request context, the per-config derived state, the
 * JSON printer, the auth helpers and the route handlers.
 */
#ifndef VMP_API_INTERNAL_H
#define VMP_API_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "api/api.h"
#include "util.h"

/* ---- derived config state ------------------------------------------- */

/* A compiled `:tagfilter:` entry. */
typedef struct api_tagfilter {
    char *tag;
    void *code; /* pcre2_code * */
} api_tagfilter;

typedef enum api_auth_kind {
    API_AUTH_NONE = 0, /* no :auth: section: tokens are not checked */
    API_AUTH_DUMMY,    /* login succeeds when username != password */
    API_AUTH_LDAP,
    API_AUTH_REFUSE /* configured but unusable (unknown provider, dummy
                       without VMPOOLER_DEBUG): every login fails */
} api_auth_kind;

typedef struct api_poolsnap api_poolsnap;

/* What a config implies for the API, built once per config. */
typedef struct api_cfgstate {
    const vmp_config *cfg;
    bool auth_configured; /* a truthy :auth: section */
    api_auth_kind auth_kind;
    api_tagfilter *tagfilters;
    size_t n_tagfilters;
    long long rate_limits[4][2]; /* per class: limit, period */
    /* Pools read from Redis when the config has none (api_pools.c). */
    pthread_mutex_t snap_lock;
    api_poolsnap *snap;
    bool snap_loading;
} api_cfgstate;

int api_cfgstate_build(const vmp_config *cfg, api_cfgstate **out, vmp_err *err);
void api_cfgstate_free(api_cfgstate *st);

/* ---- the server --------------------------------------------------------- */

/* One server thread: its own libmicrohttpd daemon (on the shared listen
 * socket, run by this thread's event loop), its own Redis connection (the
 * thread's store) and the batch that gathers its requests' hot scripts. */
typedef struct api_worker {
    struct vmp_api *api;
    void *daemon; /* struct MHD_Daemon * */
    vmp_store_batch *batch;
    bool cfg_locked;   /* this loop turn holds the config's read lock */
    bool loop_failing; /* the daemon's last run failed (logged once) */
    pthread_t thread;
    bool running;
    bool batch_closed; /* handlers call Redis directly (last round of a turn) */
    size_t last_group; /* ops in the last group sent */
} api_worker;

struct vmp_api {
    vmp_store_opts store_opts;
    char *host;
    int port_opt; /* as asked */
    int port;     /* bound */
    unsigned threads;
    vmp_clock *clock;
    vmp_metrics *metrics;
    size_t body_limit;
    double status_cache_seconds;
    bool started;
    int listen_fd;
    int stop_pipe[2];    /* closing the write end stops every worker */
    bool stopping;       /* set (atomically) before it is closed */
    api_worker *workers; /* `threads` of them while started */
    pthread_key_t store_key;
    bool key_made;
    pthread_rwlock_t cfg_lock;
    api_cfgstate *state;
    pthread_mutex_t cache_lock;
    struct api_cache_entry *cache;
    size_t ncache;
    /* Events for the manager, published by a thread of their own so a
     * request never waits on them; repeats pending at once are sent once. */
    pthread_mutex_t ev_lock;
    pthread_cond_t ev_cond;
    pthread_t ev_thread;
    bool ev_running, ev_stop;
    bool ev_idle; /* the event thread waits for a first event */
    char **ev;    /* "type\0pool" pairs as "type pool" strings */
    size_t nev, capev;
};

/* Queues the event "<type> <pool>" for publishing (vmp_store_publish). */
void api_event(vmp_api *api, const char *type, const char *pool);

/* ---- a request ------------------------------------------------------------ */

typedef enum api_method {
    API_GET = 0,
    API_POST,
    API_PUT,
    API_DELETE,
    API_HEAD,
    API_OTHER
} api_method;

#define API_MAX_SEGS 16

typedef struct api_header {
    const char *name;
    char value[96];
} api_header;

typedef struct api_req {
    vmp_api *api;
    api_worker *worker;
    void *ctx; /* the connection's conn_ctx (api.c) */
    const api_cfgstate *st;
    const vmp_config *cfg;
    void *conn; /* struct MHD_Connection * */
    api_method method;
    const char *method_str;
    /* Path after "/api/v3", split and percent-decoded. */
    char *segs[API_MAX_SEGS];
    size_t nsegs;
    const char *path; /* the raw path */
    const char *body;
    size_t body_len;
    const char *token;  /* X-AUTH-TOKEN, NULL when absent */
    api_poolsnap *snap; /* pools from Redis in use, or NULL */
    double now;
    vmp_store *store_; /* lazily opened, see api_store */
    /* response */
    int status;
    json_t *json; /* response body as JSON (owned) */
    char *text;   /* or as plain text (owned) */
    const char *content_type;
    bool www_auth; /* add WWW-Authenticate */
    api_header headers[6];
    size_t nheaders;
    /* The reply waits for Redis work queued in the worker's batch: the
     * handler returned without one; the batch callback sets it and calls
     * api_answer. */
    bool deferred;
} api_req;

/* The batch of this request's thread, for Redis work that can wait for the
 * other requests that arrived together (see store.h, batches); NULL when
 * the work must run at once. After queueing, the handler calls api_defer
 * and returns; the op's callback sets the reply and calls api_answer. */
vmp_store_batch *api_batch(api_req *r);
void api_defer(api_req *r);
void api_answer(api_req *r);

/* This thread's store (opened on first use). NULL with the request answered
 * 503 when Redis cannot be reached. */
vmp_store *api_store(api_req *r);

/* Sets the response: status and a JSON body (takes ownership of body). */
void api_reply(api_req *r, int status, json_t *body);
/* {"ok": false} with status. */
void api_reply_fail(api_req *r, int status);
/* {"ok": false, "error": msg} with status. */
void api_reply_error(api_req *r, int status, const char *msg);
/* 503 {"ok": false, "error": "redis unavailable: ..."} after a store error. */
void api_reply_store_error(api_req *r, const vmp_err *err);
void api_add_header(api_req *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A query-string argument, percent-decoded into buf; NULL when absent.
 * *present_no_value is set when given as "?name" without '='. */
const char *api_query(api_req *r, const char *name, char *buf, size_t n, bool *no_value);

/* ---- JSON ------------------------------------------------------------------ */

/* Ruby's JSON.pretty_generate: 2-space indent, "key": value, {} and [] for
 * empty containers, floats as Ruby prints them. Appends to b. */
void api_json_pretty(const json_t *v, vmp_buf *b);
/* Parses a request body. Returns NULL with msg set (Ruby-like wording) on
 * malformed input. Duplicate keys: the last wins, as in Ruby. */
json_t *api_json_parse(const char *body, size_t len, char *msg, size_t msgn);
/* Nesting depth as vmpooler counts it (an empty container counts 1). */
int api_json_depth(const json_t *v);
/* A config node as JSON: scalars typed as YAML would (unquoted 5 -> 5,
 * true -> true, quoted '5' -> "5"); with redact, values under secret-looking
 * keys become "<redacted>". */
json_t *api_json_from_node(const vmp_cfg_node *n, bool redact);
/* Whether a config key names a secret (password, token, ...). */
bool api_is_secret_key(const char *key);
/* A JSON string of s (NULL -> null); bytes that are not UTF-8 become
 * U+FFFD instead of failing. */
json_t *api_jstr(const char *s);

/* ---- auth ------------------------------------------------------------------- */

/* need_token: the request's X-AUTH-TOKEN names an existing token; touches
 * `last`. On failure answers 401 (or 503) and returns false. *user_out may
 * be NULL. */
bool api_need_token(api_req *r, char **user_out);
/* need_auth: valid Basic credentials for the :auth: provider. On success
 * *user_out (may be NULL) gets the login; else 401 answered. */
bool api_need_auth(api_req *r, char **user_out);
/* Checks a login against the configured provider. */
bool api_authenticate(const api_cfgstate *st, const char *user, const char *password);
/* LDAP login (api_ldap.c). */
bool api_ldap_authenticate(const vmp_cfg_node *ldap, const char *user, const char *password);

/* ---- shared helpers ---------------------------------------------------------- */

/* Config pools by name; NULL if absent. */
const vmp_pool_cfg *api_pool(const vmp_config *cfg, const char *name);
/* A pool name or an alias of at least one pool. */
bool api_pool_exists(const vmp_config *cfg, const char *name);
/* The domain of a pool (its dns_plugin's), or NULL. */
const char *api_pool_domain(const vmp_config *cfg, const char *pool);
/* Hostname validation of GET/PUT/DELETE /vm/<hostname>; NULL when valid,
 * else the error message. */
const char *api_hostname_error(const char *h);
/* Text before the first '.', into buf. */
void api_hostname_short(const char *h, char *buf, size_t n);
/* 32 random chars, first a-y, rest [a-z0-9] (tokens, snapshot names). */
void api_random_name(char out[33]);
void api_uuid(char out[37]);
/* Applies :tagfilter: to one value; returns a malloc'd string. */
char *api_tagfilter_apply(const api_cfgstate *st, const char *tag, const char *value);

/* ---- route handlers ---------------------------------------------------------- */

void api_route_status(api_req *r);
void api_route_poolstat(api_req *r);
void api_route_totalrunning(api_req *r);
void api_route_summary(api_req *r);
void api_route_vm_list(api_req *r);
void api_route_config_get(api_req *r);
void api_route_full_config(api_req *r);
void api_route_token(api_req *r);
void api_route_vm(api_req *r);
void api_route_ondemand(api_req *r);
void api_route_config_change(api_req *r);
void api_route_poolreset(api_req *r);
/* GET /dashboard<rest> */
void api_route_dashboard(api_req *r, const char *rest);

/* Pools from Redis (api_pools.c): a counted reference to the current list
 * (refreshed every few seconds; NULL when none could be read), the config
 * copy that carries it, one pool's published hash, and dropping the cache
 * when the state is freed. */
api_poolsnap *api_pools_acquire(api_req *r);
void api_pools_release(api_cfgstate *st, api_poolsnap *s);
const vmp_config *api_pools_config(const api_poolsnap *s);
const vmp_strlist *api_pools_kv(const api_poolsnap *s, const char *pool);
void api_pools_drop(api_cfgstate *st);

/* Status cache (api_status.c). */
void api_cache_clear(vmp_api *api);

/* Rate limiter (api.c); true when the request may go on. */
bool api_rate_limit(api_req *r);

#endif
