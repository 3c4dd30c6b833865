/*
 * store_internal: what the store's .c files share and nobody else sees: the
 * store struct, an argument-vector builder for binary-safe commands, the
 * command runner with reconnect, and the server-side scripts.
 */
#ifndef VMP_STORE_INTERNAL_H
#define VMP_STORE_INTERNAL_H

#include <signal.h>

#include <hiredis/hiredis.h>

#include "store/store.h"

/* Server-side scripts (store_scripts.c). Every script gets the key prefix as
 * ARGV[1] and builds its key names from it (no KEYS: several scripts touch
 * keys named by data they read, e.g. an on-demand request's sets). */
typedef enum st_script {
    SCR_CLONE_START = 0,
    SCR_CLONE_DONE,
    SCR_CLONE_FAILED,
    SCR_PENDING_READY,
    SCR_DISCOVER,
    SCR_DISCOVERED_RESOLVE,
    SCR_DESTROY_START,
    SCR_FORGET,
    SCR_DRAIN,
    SCR_REMOVE_EXCESS,
    SCR_CHECKOUT,
    SCR_ROLLBACK,
    SCR_VM_RETURN,
    SCR_COUNTER_TAKE,
    SCR_POOLS_PUBLISH,
    SCR_HSET_IF_EXISTS,
    SCR_TAG_SET,
    SCR_DISK_ADD,
    SCR_TOKEN_CREATE,
    SCR_TOKEN_TOUCH,
    SCR_OD_CREATE,
    SCR_OD_START,
    SCR_OD_TASK_REPLACE,
    SCR_OD_FAIL,
    SCR_OD_CHECK_READY,
    SCR_OD_EXPIRE,
    SCR_OD_DELETE,
    SCR_LEASE_ACQUIRE,
    SCR_LEASE_RENEW,
    SCR_LEASE_RELEASE,
    SCR_RATELIMIT,
    SCR_VM_RETURN_CHECKED,
    SCR_MANAGER_BEAT, /* store_engine.c's */
    SCR_MANAGER_REAP,
    SCR_MIGRATION_CLAIM,
    SCR_MIGRATION_RELEASE,
    SCR_COUNT
} st_script;

/* Name and Lua source of a script (for messages and SCRIPT LOAD). */
const char *st_script_name(st_script id);
const char *st_script_source(st_script id);

struct vmp_store {
    redisContext *c;
    char *host;
    int port;
    char *socket;
    char *password;
    int db;
    char *prefix;
    long long data_ttl;
    int attempts;
    double delay, delay_max, timeout;
    char addr[300];
    bool scripts_loaded;
    double last_reply; /* coarse monotonic seconds of the last reply read */
    bool no_scripts;   /* a subscriber's connection needs none */
    char sha[SCR_COUNT][41];
};

/* ---- argument vectors ---- */

/* A command's arguments, each an owned copy. An allocation failure sets oom
 * and later adds do nothing; the runner reports VMP_ENOMEM. */
typedef struct st_args {
    char **v;
    size_t *len;
    size_t n, cap;
    bool oom;
} st_args;

void st_args_add(st_args *a, const char *s);
void st_args_addn(st_args *a, const char *s, size_t len);
void st_args_addf(st_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds "<prefix>__<kind>__<name>". */
void st_args_key(st_args *a, const vmp_store *s, const char *kind, const char *name);
void st_args_free(st_args *a);

/* "<prefix>__<kind>__<name>" as a new string (NULL on OOM). */
char *st_key(const vmp_store *s, const char *kind, const char *name);

/* ---- running commands ---- */

/* hiredis writes with write(2): a server that went away would raise
 * SIGPIPE and kill a host that did not ignore it. Socket I/O runs between
 * enter and leave, with SIGPIPE blocked in the calling thread; a SIGPIPE
 * raised meanwhile is consumed. */
typedef struct st_sigpipe {
    sigset_t old;
    bool was_pending;
    bool ignored; /* the host ignores SIGPIPE (vmpoold does): nothing to guard */
} st_sigpipe;
void st_sigpipe_enter(st_sigpipe *g);
void st_sigpipe_leave(st_sigpipe *g);

/* Builds a store from opts without connecting. */
int st_new(const vmp_store_opts *opts, vmp_store **out, vmp_err *err);
/* Makes sure the connection is up (reconnecting with backoff). */
int st_ensure(vmp_store *s, vmp_err *err);
/* The same, but a connection that answered within the last few
 * milliseconds is taken as alive without asking the socket (a poll per
 * command under load). If it died in that moment, the command sent next
 * fails with VMP_EREDIS, having run nowhere, and the next call reconnects:
 * for callers that answer such a failure with a retryable error. */
int st_ensure_fresh(vmp_store *s, vmp_err *err);
/* Closes the connection (the next call reconnects). */
void st_drop(vmp_store *s);
/* Notes that the connection just answered (see st_ensure). */
void st_replied(vmp_store *s);
/* The connection failed under a command: VMP_EREDIS with hiredis's reason
 * in err, and the connection dropped. */
int st_broken(vmp_store *s, vmp_err *err);

/* Runs one command. *out receives the reply (freeReplyObject it); an error
 * reply is turned into VMP_EREDIS and no reply is returned. idempotent:
 * retried once on a connection that broke under it. */
int st_run(vmp_store *s, bool idempotent, const st_args *a, redisReply **out, vmp_err *err);

/* Runs n commands as one pipeline (one round trip). out has n slots; on
 * success every slot holds a reply (error replies included: check them). */
int st_pipeline(vmp_store *s, bool idempotent, const st_args *cmds, size_t n, redisReply **out,
                vmp_err *err);

/* EVALSHA of a script with args (prefix is prepended as ARGV[1]; no KEYS),
 * falling back to loading the script on NOSCRIPT. */
int st_eval(vmp_store *s, st_script id, const st_args *args, redisReply **out, vmp_err *err);
/* Appends to a the command that runs a script: cmd ("EVALSHA" or "EVAL"),
 * body (the SHA or the source), no keys, the prefix as ARGV[1], then args
 * (NULL: the caller appends them). */
void st_eval_command(const vmp_store *s, const char *cmd, const char *body, const st_args *args,
                     st_args *a);
/* Whether r is Redis's NOSCRIPT error: the script cache did not have the
 * script, so it did not run. */
bool st_noscript(const redisReply *r);
/* VMP_EREDIS for the error reply r of script name. */
int st_script_error(vmp_store *s, const char *name, const redisReply *r, vmp_err *err);
/* One attempt of a script: cmd ("EVALSHA" or "EVAL") with body (the SHA or
 * the source), the prefix as ARGV[1], then args. *out is NULL when Redis
 * answered NOSCRIPT (the script did not run). */
int st_eval_send(vmp_store *s, const char *cmd, const char *body, const st_args *args,
                 redisReply **out, vmp_err *err);
/* The outcome of a script run: *out = r, or VMP_EREDIS (r freed) when it
 * never ran (r NULL) or answered an error. */
int st_eval_reply(vmp_store *s, const char *name, redisReply *r, redisReply **out, vmp_err *err);

/* Loads every script on the current connection (called after connect). */
int st_scripts_load(vmp_store *s, vmp_err *err);

/* The two halves of the API's hot scripts, shared by the one-call
 * functions and by batches (store_batch.c): the script arguments, and the
 * reading of a reply (not freed). */
void st_checkout_args(const vmp_store_want *wants, size_t nwants,
                      const vmp_store_checkout_opts *opts, st_args *a);
int st_checkout_parse(vmp_store *s, const redisReply *r, const vmp_store_want *wants, size_t nwants,
                      vmp_store_checkout_result *res, vmp_err *err);
void st_return_args(const char *vm, const char *token, double now, st_args *a);
int st_return_parse(vmp_store *s, const redisReply *r, const char *vm, char **pool_out,
                    char **user_out, vmp_err *err);

/* ---- replies ---- */

/* Integer reply value (or an integer-looking string); -1 with VMP_EREDIS if
 * the reply has another shape. */
int st_reply_int(vmp_store *s, const redisReply *r, long long *out, vmp_err *err);
/* Copies a string reply into *out (NULL for a nil reply). */
int st_reply_str(vmp_store *s, const redisReply *r, char **out, vmp_err *err);
/* Appends every element of an array reply (strings) to out. */
int st_reply_list(vmp_store *s, const redisReply *r, vmp_strlist *out, vmp_err *err);
/* Error for a reply of an unexpected shape. */
int st_bad_reply(vmp_store *s, const char *what, vmp_err *err);
/* Reads an integer reply into *out (when out is not NULL) and frees r. */
int st_take_int(vmp_store *s, redisReply *r, long long *out, vmp_err *err);
/* The status code a script puts first in its array reply; st_bad_reply
 * naming what when the reply has another shape. */
int st_reply_code(vmp_store *s, const redisReply *r, const char *what, long long *code,
                  vmp_err *err);

/* A simple command that returns an integer. */
int st_run_int(vmp_store *s, bool idempotent, const st_args *a, long long *out, vmp_err *err);
/* A simple command that returns a string or nil. */
int st_run_str(vmp_store *s, bool idempotent, const st_args *a, char **out, vmp_err *err);
/* A simple command that returns an array of strings. */
int st_run_list(vmp_store *s, bool idempotent, const st_args *a, vmp_strlist *out, vmp_err *err);
/* A script that returns an integer. */
int st_eval_int(vmp_store *s, st_script id, const st_args *args, long long *out, vmp_err *err);

/* Now as vmpooler's time string / today's date from now. */
void st_time(double now, char buf[VMP_TIME_STR_MAX]);
void st_date(double now, char buf[16]);

#endif
