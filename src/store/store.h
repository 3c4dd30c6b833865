/*
 * store: vmpool's state in Redis, in vmpooler's key schema.
 *
 * This module is the only place that knows Redis key names, field names and
 * value formats (docs/redis-schema.md lists them all). Everything else asks
 * it for a move or a read in vmpool's own terms: "pending -> ready for VM x of
 * pool p", "counts of pool p", "push a disk task".
 *
 * Keys are `<prefix>__<kind>__<name>` with the prefix configurable (default
 * "vmpooler"), so a vmpooler API, dashboard or tool pointed at the same Redis
 * sees what it expects. Timestamps are written as vmpooler writes them (Ruby
 * Time#to_s in local time, vmp_time_format), durations as "%.2f" seconds,
 * dates in key names as the local "YYYY-MM-DD". Callers pass `now` (seconds
 * since the epoch, from a vmp_clock) so tests control time.
 *
 * Atomicity: every lifecycle move is one round trip that Redis runs
 * atomically (a server-side Lua script), so a crash between two commands
 * cannot lose a VM. A move whose precondition does not hold (the VM is not a
 * member of the source set, the hash does not exist, ...) changes nothing
 * and returns VMP_ESTATE with err saying why.
 *
 * Threads: a vmp_store owns one hiredis connection and is used by one thread
 * at a time (no internal lock). Give each thread that talks to Redis its own
 * vmp_store. A vmp_store_sub (event subscriber) has its own connection too.
 *
 * Connection loss: before each call the store checks its connection; a lost
 * connection is re-established with exponential backoff, up to
 * `reconnect_attempts` attempts, after which the call fails with VMP_EREDIS
 * and a message such as "redis 127.0.0.1:6379: Connection refused". A call
 * whose connection breaks after its command was sent is NOT retried when it
 * writes (it may have run; the caller retries on its next pass, moves are
 * conditional so a repeat is harmless); pure reads are retried once. The
 * store never crashes or aborts when Redis goes away.
 *
 * Server: Redis 5 or later, standalone (replicas / Sentinel are fine).
 * Scripts build some key names from data they read, so Redis Cluster is not
 * supported. Scripts are loaded (SCRIPT LOAD) on every new connection and
 * run with EVALSHA, falling back to EVAL when the server lost its cache.
 *
 * Return values: 0 on success or a negative VMP_E* code. VMP_ESTATE: the
 * precondition of a move was not met, nothing changed. VMP_ENOENT: a
 * requested object (token, request) does not exist. VMP_EREDIS: Redis
 * unreachable or answered an error. String outputs (`char **out`) must point
 * to NULL and receive a malloc'd string the caller frees, or stay NULL when
 * the key/field is absent (that is not an error). vmp_strlist outputs are
 * appended to; "kv" lists hold key, value, key, value, ... (HGETALL order).
 */
#ifndef VMP_STORE_H
#define VMP_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "err.h"
#include "util.h"

typedef struct vmp_store vmp_store;
typedef struct vmp_store_sub vmp_store_sub;

/* ---- connection -------------------------------------------------------- */

typedef struct vmp_store_opts {
    const char *host;           /* TCP host; ignored when socket is set */
    int port;                   /* 0: 6379 */
    const char *socket;         /* unix socket path (wins over host) */
    const char *password;       /* AUTH when non-NULL and non-empty */
    int db;                     /* SELECT when > 0 */
    const char *prefix;         /* key prefix; NULL or "": "vmpooler" */
    long long data_ttl_hours;   /* expiry of VM hashes etc.; <= 0: 168 */
    int reconnect_attempts;     /* connect attempts per call; <= 0: 10 */
    double reconnect_delay;     /* first backoff delay, seconds; <= 0: 0.05 */
    double reconnect_delay_max; /* backoff cap, seconds; <= 0: 2 */
    double timeout;             /* connect and command timeout, seconds; <= 0: 10
                                   (from the config: connection_pool_timeout) */
} vmp_store_opts;

/* Fills opts from the `:redis:` config (pointers borrow from cfg, which must
 * outlive the store). When cfg names no server and no socket, socket_override
 * (e.g. the embedded server's socket) is used. */
void vmp_store_opts_from_cfg(const vmp_redis_cfg *cfg, const char *socket_override,
                             vmp_store_opts *opts);

/* Connects (AUTH, SELECT, loads the scripts). *out must be NULL and receives
 * a new store. Fails with VMP_EREDIS when Redis cannot be reached after the
 * configured attempts. */
int vmp_store_open(const vmp_store_opts *opts, vmp_store **out, vmp_err *err);
void vmp_store_free(vmp_store *s);

/* The key prefix in use and data_ttl in hours. */
const char *vmp_store_prefix(const vmp_store *s);
long long vmp_store_data_ttl(const vmp_store *s);
/* "host:port" or the socket path, for messages. */
const char *vmp_store_address(const vmp_store *s);

/* PING (reconnecting when needed). */
int vmp_store_ping(vmp_store *s, vmp_err *err);

/* ---- VM states and reads ---------------------------------------------- */

/* The six per-pool sets of reference §2.1. */
typedef enum vmp_vm_state {
    VMP_VM_PENDING = 0,
    VMP_VM_READY,
    VMP_VM_RUNNING,
    VMP_VM_COMPLETED,
    VMP_VM_DISCOVERED,
    VMP_VM_MIGRATING,
    VMP_VM_NSTATES
} vmp_vm_state;

/* "pending", "ready", ... (the word used in key names). */
const char *vmp_vm_state_name(vmp_vm_state st);
/* Parses a state word; returns 0 and sets *out, or -1. */
int vmp_vm_state_parse(const char *name, vmp_vm_state *out);

/* Members of every set of a pool, one pipelined round trip. */
typedef struct vmp_store_pool_sets {
    vmp_strlist set[VMP_VM_NSTATES];
} vmp_store_pool_sets;
int vmp_store_pool_sets_get(vmp_store *s, const char *pool, vmp_store_pool_sets *out, vmp_err *err);
void vmp_store_pool_sets_clear(vmp_store_pool_sets *sets);

/* SCARD of every set of a pool, one round trip. */
typedef struct vmp_store_pool_counts {
    long long n[VMP_VM_NSTATES];
} vmp_store_pool_counts;
int vmp_store_pool_counts_get(vmp_store *s, const char *pool, vmp_store_pool_counts *out,
                              vmp_err *err);
/* Same for npools pools at once (out has npools entries), one round trip. */
int vmp_store_pools_counts_get(vmp_store *s, const char *const *pools, size_t npools,
                               vmp_store_pool_counts *out, vmp_err *err);

/* Members of one set. */
int vmp_store_set_members(vmp_store *s, const char *pool, vmp_vm_state st, vmp_strlist *out,
                          vmp_err *err);
/* Whether vm is a member of one set. */
int vmp_store_is_member(vmp_store *s, const char *pool, vmp_vm_state st, const char *vm, bool *out,
                        vmp_err *err);

/* VM hash (`<prefix>__vm__<vm>`). get: *out NULL when absent. getall: kv
 * pairs (empty when the hash does not exist). exists: hash has any field. */
int vmp_store_vm_get(vmp_store *s, const char *vm, const char *field, char **out, vmp_err *err);
int vmp_store_vm_getall(vmp_store *s, const char *vm, vmp_strlist *kv, vmp_err *err);
int vmp_store_vm_exists(vmp_store *s, const char *vm, bool *out, vmp_err *err);
/* Sets one field (for fields with no move of their own: user_tagged,
 * timeout_notification, host, migrated, migration_time, open_socket_error). */
int vmp_store_vm_set(vmp_store *s, const char *vm, const char *field, const char *value,
                     vmp_err *err);
int vmp_store_vm_del_field(vmp_store *s, const char *vm, const char *field, vmp_err *err);
/* A VM hash time field parsed to epoch seconds; *found false when absent or
 * unparsable. */
int vmp_store_vm_get_time(vmp_store *s, const char *vm, const char *field, double *out, bool *found,
                          vmp_err *err);

/* Checkout time from `<prefix>__active__<pool>`: *out NULL when absent. */
int vmp_store_active_get(vmp_store *s, const char *pool, const char *vm, char **out, vmp_err *err);
/* Same, parsed; *found false when absent or unparsable. */
int vmp_store_active_get_time(vmp_store *s, const char *pool, const char *vm, double *out,
                              bool *found, vmp_err *err);

/* Value of key in a kv list, or NULL. */
const char *vmp_store_kv_get(const vmp_strlist *kv, const char *key);

/* ---- lifecycle moves (each one atomic round trip) ---------------------- */

/* Clone started (T1): recorded before the provider is asked. Fails with
 * VMP_EEXIST (nothing written) when a hash for vm already exists, so a name
 * is reserved atomically. SADD pending; HSET clone=now, template=pool,
 * pool=pool, domain (if non-NULL), request_id and pool_alias (if non-NULL). */
int vmp_store_clone_start(vmp_store *s, const char *pool, const char *vm, const char *domain,
                          const char *request_id, const char *pool_alias, double now, vmp_err *err);

/* Clone finished: HSET `clone__<date>` "<pool>:<vm>" = seconds, vm
 * clone_time = seconds, ip (if non-NULL). VMP_ESTATE if the VM hash is gone. */
int vmp_store_clone_done(vmp_store *s, const char *pool, const char *vm, double seconds,
                         const char *ip, double now, vmp_err *err);

/* Clone failed (T2): SREM pending; when the VM hash exists, HSET
 * clone_error / clone_error_class (when non-NULL and non-empty) and EXPIRE
 * it data_ttl hours. VMP_ESTATE (nothing changed) if vm was neither pending
 * nor had a hash. */
int vmp_store_clone_failed(vmp_store *s, const char *pool, const char *vm, const char *error_msg,
                           const char *error_class, vmp_err *err);

/* What vmp_store_pending_ready did. */
typedef enum vmp_ready_outcome {
    VMP_READY_POOL = 0,  /* pending -> ready (T3) */
    VMP_READY_ONDEMAND,  /* pending -> running for its on-demand request (T3') */
    VMP_READY_ABANDONED, /* its request failed or was deleted: -> completed (T3'') */
} vmp_ready_outcome;

/* Pending VM became usable (T3/T3'/T3''). When the VM hash has no
 * request_id: SMOVE pending->ready. With a request_id whose request status is
 * failed/deleted: SMOVE pending->completed. Otherwise (on-demand): SMOVE
 * pending->running, HSET active__<pool> vm=now, checkout=now, SADD the
 * request's `<prefix>__<id>__<alias>__<pool>` set, and when the request
 * carries a token: token:token, token:user and lifetime=lifetime_auth (when
 * > 0). Except for T3'': HSET `boot__<date>` "<pool>:<vm>" = seconds since
 * `clone` ("%.2f"), ready=now, lastboot[pool]=now. *outcome and *boot_seconds
 * (-1 if `clone` was missing) may be NULL. VMP_ESTATE if vm is not pending. */
int vmp_store_pending_ready(vmp_store *s, const char *pool, const char *vm, long long lifetime_auth,
                            double now, vmp_ready_outcome *outcome, double *boot_seconds,
                            vmp_err *err);

/* Generic move between two sets of a pool (SMOVE): pending->completed (T4),
 * ready->completed (T8/T10/T19), running->completed (T11-T14), ... VMP_ESTATE
 * if vm is not a member of from. from == to is VMP_EINVAL. */
int vmp_store_move(vmp_store *s, const char *pool, const char *vm, vmp_vm_state from,
                   vmp_vm_state to, vmp_err *err);

/* SREM vm from one set (T5 pending vanished, T21 migrating evaluated).
 * VMP_ESTATE if it was not a member. */
int vmp_store_remove(vmp_store *s, const char *pool, const char *vm, vmp_vm_state st, vmp_err *err);

/* Mark a ready VM checked: HSET check=now (no precondition). */
int vmp_store_vm_mark_checked(vmp_store *s, const char *vm, double now, vmp_err *err);
/* Same for n VMs in one pipelined round trip. */
int vmp_store_vms_mark_checked(vmp_store *s, const char *const *vms, size_t n, double now,
                               vmp_err *err);

/* Inventory found vm (T15): SADD discovered only when vm is in none of the
 * six sets of the pool; VMP_ESTATE (nothing changed) otherwise. */
int vmp_store_discover(vmp_store *s, const char *pool, const char *vm, vmp_err *err);

/* Discovered VM evaluated (T16): if it is also in pending, ready, running or
 * completed, SREM discovered (*completed = false); otherwise SMOVE
 * discovered->completed (*completed = true). VMP_ESTATE if not discovered.
 * completed may be NULL. */
int vmp_store_discovered_resolve(vmp_store *s, const char *pool, const char *vm, bool *completed,
                                 vmp_err *err);

/* Destroy started: HDEL active__<pool> vm, HSET destroy=now, EXPIRE the VM
 * hash data_ttl hours. VMP_ESTATE if vm is not in completed. */
int vmp_store_destroy_start(vmp_store *s, const char *pool, const char *vm, double now,
                            vmp_err *err);
/* Destroy finished (T17): SREM completed. VMP_ESTATE if not a member. */
int vmp_store_destroy_done(vmp_store *s, const char *pool, const char *vm, vmp_err *err);
/* Forget (T18, VM gone from the provider): SREM completed, HDEL active, DEL
 * the VM hash. VMP_ESTATE (nothing changed) if vm is not in completed. */
int vmp_store_forget(vmp_store *s, const char *pool, const char *vm, vmp_err *err);

/* Drain (T19): all ready and pending VMs -> completed. *moved may be NULL. */
int vmp_store_drain(vmp_store *s, const char *pool, long long *moved, vmp_err *err);

/* Excess removal (T20): SPOP n ready VMs into completed; with all_pending
 * also every pending VM. *moved (may be NULL) = how many moved. */
int vmp_store_remove_excess(vmp_store *s, const char *pool, long long n, bool all_pending,
                            long long *moved, vmp_err *err);

/* ---- checkout (API, T6/T7) --------------------------------------------- */

/* One VM wanted: the name asked for (pool or alias, used in the reply and
 * to report a shortage) and the pools that may serve it, tried in order. */
typedef struct vmp_store_want {
    const char *name;
    const char *const *pools;
    size_t npools;
} vmp_store_want;

typedef struct vmp_store_checkout_opts {
    const char *token; /* NULL: none; else token:token / token:user */
    const char *user;
    long long lifetime; /* > 0: HSET lifetime (hours) */
    double now;
} vmp_store_checkout_opts;

/* One VM handed out: index into the wants array, pool used, VM name. */
typedef struct vmp_store_checked_out {
    size_t want;
    char *pool;
    char *vm;
} vmp_store_checked_out;

typedef struct vmp_store_checkout_result {
    vmp_store_checked_out *vms; /* nvms entries, in wants order */
    size_t nvms;
    long empty_want; /* on VMP_EAGAIN: index of the want that found no VM */
} vmp_store_checkout_result;

/* All-or-nothing checkout of nwants VMs in one script. For each want, the
 * first candidate pool with a ready VM gives one (a random member): SMOVE
 * ready->running, SADD migrating, HSET active__<pool> vm=now, HSET
 * checkout=now, token fields and lifetime as given. When any want finds no
 * ready VM, everything taken so far is put back and VMP_EAGAIN is returned
 * with res->empty_want set; nothing changed. res is filled on success; free
 * it with vmp_store_checkout_result_clear. */
int vmp_store_checkout(vmp_store *s, const vmp_store_want *wants, size_t nwants,
                       const vmp_store_checkout_opts *opts, vmp_store_checkout_result *res,
                       vmp_err *err);
void vmp_store_checkout_result_clear(vmp_store_checkout_result *res);

/* Undo one checkout (T7): SREM migrating, HDEL active, HDEL checkout,
 * token:token, token:user, SMOVE running->ready. VMP_ESTATE if not running. */
int vmp_store_checkout_rollback(vmp_store *s, const char *pool, const char *vm, vmp_err *err);

/* VM return (API DELETE, T12): SMOVE running->completed for the pool named
 * by the VM hash `template`. *pool_out (may be NULL) receives that pool.
 * VMP_ENOENT if there is no VM hash, VMP_ESTATE if it is not running. */
int vmp_store_vm_return(vmp_store *s, const char *vm, char **pool_out, vmp_err *err);

/* ---- counters and globals ---------------------------------------------- */

typedef enum vmp_store_counter {
    VMP_COUNTER_CLONE = 0,     /* tasks__clone */
    VMP_COUNTER_ONDEMAND_CLONE /* tasks__ondemandclone */
} vmp_store_counter;

int vmp_store_counter_set(vmp_store *s, vmp_store_counter c, long long v, vmp_err *err);
/* INCR / DECR; *out (may be NULL) = new value. */
int vmp_store_counter_incr(vmp_store *s, vmp_store_counter c, long long *out, vmp_err *err);
int vmp_store_counter_decr(vmp_store *s, vmp_store_counter c, long long *out, vmp_err *err);
/* INCRBY delta (negative to decrease); *out (may be NULL) = new value. */
int vmp_store_counter_add(vmp_store *s, vmp_store_counter c, long long delta, long long *out,
                          vmp_err *err);
/* Missing counts as 0. */
int vmp_store_counter_get(vmp_store *s, vmp_store_counter c, long long *out, vmp_err *err);
/* INCR only while the value is below limit (atomic); *taken says whether
 * it was incremented. */
int vmp_store_counter_take(vmp_store *s, vmp_store_counter c, long long limit, bool *taken,
                           vmp_err *err);

/* The global migration set (`<prefix>__migration`): DEL at manager start,
 * add/remove/count for migration limits. */
int vmp_store_migration_reset(vmp_store *s, vmp_err *err);
int vmp_store_migration_add(vmp_store *s, const char *vm, vmp_err *err);
int vmp_store_migration_remove(vmp_store *s, const char *vm, vmp_err *err);
int vmp_store_migration_count(vmp_store *s, long long *out, vmp_err *err);

/* Empty flag `<prefix>__empty__<pool>`: empty true SETs it to "true", false
 * DELs it. *changed (may be NULL) says whether it was not already so (log
 * "is empty" only once). */
int vmp_store_pool_empty_mark(vmp_store *s, const char *pool, bool empty, bool *changed,
                              vmp_err *err);

/* `<prefix>__lastboot`: one pool (*out NULL when absent) or every pool (kv). */
int vmp_store_lastboot_get(vmp_store *s, const char *pool, char **out, vmp_err *err);
int vmp_store_lastboot_all(vmp_store *s, vmp_strlist *kv, vmp_err *err);

/* Daily hashes `<prefix>__clone__<date>`, `__boot__<date>`, `__tag__<date>`
 * (date "YYYY-MM-DD"), as kv pairs. */
typedef enum vmp_store_daily { VMP_DAILY_CLONE = 0, VMP_DAILY_BOOT, VMP_DAILY_TAG } vmp_store_daily;
int vmp_store_daily_get(vmp_store *s, vmp_store_daily kind, const char *date, vmp_strlist *kv,
                        vmp_err *err);

/* ---- pools: published config, runtime overrides ------------------------ */

/* One pool's published config: its name and its config keys as kv pairs
 * (values already strings; `alias` joined with ","). */
typedef struct vmp_store_pool_pub {
    const char *name;
    const vmp_strlist *kv;
} vmp_store_pool_pub;

/* Rewrites `<prefix>__pools` to exactly these names and each
 * `<prefix>__pool__<name>` hash to exactly its kv; pools no longer listed
 * lose their hash. One atomic script. */
int vmp_store_pools_publish(vmp_store *s, const vmp_store_pool_pub *pools, size_t npools,
                            vmp_err *err);
/* Members of `<prefix>__pools`, and one published pool hash (kv). */
int vmp_store_pools_list(vmp_store *s, vmp_strlist *out, vmp_err *err);
int vmp_store_pool_config_get(vmp_store *s, const char *pool, vmp_strlist *kv, vmp_err *err);

typedef enum vmp_store_override {
    VMP_OVERRIDE_POOLSIZE = 0, /* config__poolsize */
    VMP_OVERRIDE_TEMPLATE,     /* config__template */
    VMP_OVERRIDE_CLONE_TARGET, /* config__clone_target */
    VMP_TEMPLATE_PREPARED      /* template__prepared (same pool -> value shape) */
} vmp_store_override;

/* *out NULL when the pool has none. */
int vmp_store_override_get(vmp_store *s, vmp_store_override kind, const char *pool, char **out,
                           vmp_err *err);
int vmp_store_override_set(vmp_store *s, vmp_store_override kind, const char *pool,
                           const char *value, vmp_err *err);
/* *existed may be NULL. */
int vmp_store_override_del(vmp_store *s, vmp_store_override kind, const char *pool, bool *existed,
                           vmp_err *err);
int vmp_store_override_all(vmp_store *s, vmp_store_override kind, vmp_strlist *kv, vmp_err *err);

/* `<prefix>__template__deltas` set. */
int vmp_store_template_delta_has(vmp_store *s, const char *tmpl, bool *out, vmp_err *err);
int vmp_store_template_delta_add(vmp_store *s, const char *tmpl, vmp_err *err);

/* Pending pool requests (sets of pool names). */
typedef enum vmp_store_pool_request {
    VMP_POOLREQ_RESET = 0,     /* poolreset */
    VMP_POOLREQ_UNDO_TEMPLATE, /* pool__undo_template_override */
    VMP_POOLREQ_UNDO_SIZE      /* pool__undo_size_override */
} vmp_store_pool_request;
int vmp_store_pool_request_add(vmp_store *s, vmp_store_pool_request kind, const char *pool,
                               vmp_err *err);
int vmp_store_pool_request_has(vmp_store *s, vmp_store_pool_request kind, const char *pool,
                               bool *out, vmp_err *err);
/* SREM; *was_present says whether the request was pending ("pop if member"). */
int vmp_store_pool_request_take(vmp_store *s, vmp_store_pool_request kind, const char *pool,
                                bool *was_present, vmp_err *err);

/* ---- VM details set by the API and the task workers -------------------- */

/* HSET lifetime (hours). VMP_ENOENT if the VM hash does not exist. */
int vmp_store_vm_lifetime_set(vmp_store *s, const char *vm, long long hours, vmp_err *err);
/* HSET `tag:<name>` = value and `<prefix>__tag__<date>` "<vm>:<name>" =
 * value. VMP_ENOENT if the VM hash does not exist. */
int vmp_store_vm_tag_set(vmp_store *s, const char *vm, const char *name, const char *value,
                         double now, vmp_err *err);
/* Appends "+<gb>gb" to the colon-joined `disk` field. VMP_ENOENT if no hash. */
int vmp_store_vm_disk_add(vmp_store *s, const char *vm, long long gb, vmp_err *err);
/* HSET `snapshot:<name>` = now. VMP_ENOENT if no hash. */
int vmp_store_vm_snapshot_set(vmp_store *s, const char *vm, const char *name, double now,
                              vmp_err *err);

/* Task queues: sets of "<vm>:<arg>". */
typedef enum vmp_store_task {
    VMP_TASK_DISK = 0,       /* tasks__disk, arg = size in GB */
    VMP_TASK_SNAPSHOT,       /* tasks__snapshot, arg = snapshot name */
    VMP_TASK_SNAPSHOT_REVERT /* tasks__snapshot-revert */
} vmp_store_task;
int vmp_store_task_push(vmp_store *s, vmp_store_task q, const char *vm, const char *arg,
                        vmp_err *err);
/* SPOP one; *vm and *arg (both must point to NULL) stay NULL when empty.
 * The member is split at its first ':'. */
int vmp_store_task_pop(vmp_store *s, vmp_store_task q, char **vm, char **arg, vmp_err *err);

/* ---- tokens ------------------------------------------------------------- */

/* `<prefix>__token__<token>`: HSET user, created=now. VMP_EEXIST if taken. */
int vmp_store_token_create(vmp_store *s, const char *token, const char *user, double now,
                           vmp_err *err);
/* kv of the token hash; VMP_ENOENT if none. */
int vmp_store_token_get(vmp_store *s, const char *token, vmp_strlist *kv, vmp_err *err);
/* Validated use: HSET last=now only if the token exists (else VMP_ENOENT).
 * *user_out (may be NULL) receives its user. */
int vmp_store_token_touch(vmp_store *s, const char *token, double now, char **user_out,
                          vmp_err *err);
/* DEL; VMP_ENOENT if it did not exist. */
int vmp_store_token_delete(vmp_store *s, const char *token, vmp_err *err);
/* Every token whose `user` is user (SCAN), appended to out. */
int vmp_store_token_list_by_user(vmp_store *s, const char *user, vmp_strlist *out, vmp_err *err);

/* ---- on-demand requests (reference §2.4, §4.10) ------------------------ */

typedef enum vmp_store_odzset {
    VMP_OD_REQUEST = 0, /* provisioning__request */
    VMP_OD_PROCESSING,  /* provisioning__processing */
    VMP_OD_TASK         /* odcreate__task */
} vmp_store_odzset;

typedef struct vmp_store_zitem {
    char *member;
    double score;
} vmp_store_zitem;

typedef struct vmp_store_zlist {
    vmp_store_zitem *v;
    size_t n;
} vmp_store_zlist;
void vmp_store_zlist_clear(vmp_store_zlist *l);

/* Creates `<prefix>__odrequest__<id>` (requested, token:token/token:user
 * when token non-NULL) and ZADDs id to provisioning__request with score now.
 * VMP_EEXIST (nothing written) if the request hash exists. */
int vmp_store_od_request_create(vmp_store *s, const char *id, const char *requested,
                                const char *token, const char *user, double now, vmp_err *err);
/* kv of the request hash; VMP_ENOENT if none. */
int vmp_store_od_request_get(vmp_store *s, const char *id, vmp_strlist *kv, vmp_err *err);

/* Whole zset in ascending score order (appended to out). */
int vmp_store_od_zrange(vmp_store *s, vmp_store_odzset z, vmp_store_zlist *out, vmp_err *err);
int vmp_store_od_zcard(vmp_store *s, vmp_store_odzset z, long long *out, vmp_err *err);
/* ZREM; VMP_ESTATE if not a member. */
int vmp_store_od_zrem(vmp_store *s, vmp_store_odzset z, const char *member, vmp_err *err);

/* Request accepted for work (§4.10 step 1): ZREM id from request, ZADD it to
 * processing with its original score, ZADD each task member to odcreate__task
 * with score now. VMP_ESTATE if id is not in provisioning__request. */
int vmp_store_od_request_start(vmp_store *s, const char *id, const char *const *tasks,
                               size_t ntasks, double now, vmp_err *err);

/* odcreate__task: add (ZADD score member), replace old by new keeping the
 * score (VMP_ESTATE if old is absent), remove (ZREM). */
int vmp_store_od_task_add(vmp_store *s, double score, const char *member, vmp_err *err);
int vmp_store_od_task_replace(vmp_store *s, const char *old_member, const char *new_member,
                              vmp_err *err);

/* The per-part VM set `<prefix>__<id>__<alias>__<pool>`. */
int vmp_store_od_vms_add(vmp_store *s, const char *id, const char *alias, const char *pool,
                         const char *vm, vmp_err *err);
int vmp_store_od_vms_count(vmp_store *s, const char *id, const char *alias, const char *pool,
                           long long *out, vmp_err *err);
int vmp_store_od_vms_members(vmp_store *s, const char *id, const char *alias, const char *pool,
                             vmp_strlist *out, vmp_err *err);

/* HINCRBY retry_count 1; *out (may be NULL) = new value. */
int vmp_store_od_request_retry(vmp_store *s, const char *id, long long *out, vmp_err *err);
/* status=failed and failure_reason (if non-NULL); no expiry (the
 * provisioner's timeout step sets it). VMP_ENOENT if no request hash. */
int vmp_store_od_request_fail(vmp_store *s, const char *id, const char *reason, vmp_err *err);

/* Provisioner check of one processing request (§4.10 step 3), atomic:
 * if every `<alias>:<pool>:<n>` part of `requested` has n VMs in its set:
 * status=ready, EXPIRE request 30 days, ZREM processing (*ready = true).
 * *ready may be NULL. VMP_ENOENT if no request hash. */
int vmp_store_od_request_check_ready(vmp_store *s, const char *id, bool *ready, vmp_err *err);
/* Request timed out: ZREM processing, status=failed, EXPIRE request
 * data_ttl h; every VM already in its sets SMOVE running->completed, and
 * EXPIRE those sets data_ttl h. VMP_ENOENT if no request hash. */
int vmp_store_od_request_expire(vmp_store *s, const char *id, vmp_err *err);
/* API DELETE: VMP_ENOENT if the hash has no `requested`; *already = true
 * (nothing changed) if status is already deleted; else status=deleted,
 * every VM of its sets SMOVE running->completed, DEL the sets, EXPIRE the
 * request 15 days. already may be NULL. */
int vmp_store_od_request_delete(vmp_store *s, const char *id, bool *already, vmp_err *err);

/* ---- events (vmpool extension) ----------------------------------------- */

/* PUBLISH "<type> <pool>" on `<prefix>__events`. type is a single word:
 * "checkout", "return", "config", "task", ... */
int vmp_store_publish(vmp_store *s, const char *type, const char *pool, vmp_err *err);

/* A subscriber on its own connection (opts as for vmp_store_open). Used by
 * one thread at a time. */
int vmp_store_sub_open(const vmp_store_opts *opts, vmp_store_sub **out, vmp_err *err);
void vmp_store_sub_free(vmp_store_sub *sub);
/* Waits up to timeout seconds for one event. 0 with *type and *pool (both
 * must point to NULL; pool "" when none was given) set; VMP_ETIMEDOUT when
 * none came; VMP_EREDIS when the connection was lost (the next call
 * reconnects and resubscribes; events sent in between are lost, so callers
 * treat a reconnect as "everything changed"). */
int vmp_store_sub_wait(vmp_store_sub *sub, double timeout, char **type, char **pool, vmp_err *err);

/* ---- pool leases (vmpool extension) ------------------------------------- */

/* `<prefix>__lease__<pool>` = owner, with a TTL in milliseconds.
 * acquire: SET NX PX, or renew when owner already holds it; *held says
 * whether owner holds it afterwards. renew: PEXPIRE only when owner holds
 * it (*held). release: DEL only when owner holds it (*released).
 * owner_get: current owner or NULL. */
int vmp_store_lease_acquire(vmp_store *s, const char *pool, const char *owner, long long ttl_ms,
                            bool *held, vmp_err *err);
int vmp_store_lease_renew(vmp_store *s, const char *pool, const char *owner, long long ttl_ms,
                          bool *held, vmp_err *err);
int vmp_store_lease_release(vmp_store *s, const char *pool, const char *owner, bool *released,
                            vmp_err *err);
int vmp_store_lease_owner(vmp_store *s, const char *pool, char **owner, vmp_err *err);

/* ---- manager heartbeats, in-flight counts, migration owners -------------- */
/* (vmpool extension, for the engine; src/store/store_engine.c)
 *
 * Each manager beats: `<prefix>__manager__<owner>` (hash: node, pid, start,
 * clone, ondemandclone) expiring after ttl_ms unless renewed, its owner in
 * the `<prefix>__managers` set. Every beat rewrites `tasks__clone` and
 * `tasks__ondemandclone` as the sums over the managers whose hash still
 * exists, so a dead manager's clones stop counting when its hash expires
 * (or is reaped), and drops the `migration` entries of managers that are
 * gone. */
typedef struct vmp_store_manager {
    const char *owner; /* lease owner id */
    const char *node;  /* host identity (same node: pids are comparable) */
    long long pid;
    const char *start; /* process start marker (guards against pid reuse) */
    long long clones, ondemand_clones; /* in flight in this manager */
} vmp_store_manager;

#define VMP_STORE_BEAT_FINAL 1u        /* remove m's hash instead (graceful stop) */
#define VMP_STORE_BEAT_RESET_LEGACY 2u /* no other manager: drop ownerless migration entries */

/* One atomic round trip: beat (or, FINAL, leave), recompute the sums into
 * *clones_total / *od_total (may be NULL), and append to peers (may be
 * NULL) owner, node, pid, start of every other live manager. */
int vmp_store_manager_beat(vmp_store *s, const vmp_store_manager *m, long long ttl_ms,
                           unsigned flags, long long *clones_total, long long *od_total,
                           vmp_strlist *peers, vmp_err *err);
/* Forgets a manager known to be dead: its hash, its registration, its
 * migration entries, and those of leases (pool names, as for
 * vmp_store_lease_*) that it still holds. *freed (may be NULL) = leases
 * deleted. */
int vmp_store_manager_reap(vmp_store *s, const char *owner, const char *const *leases,
                           size_t nleases, long long *freed, vmp_err *err);
/* Adds vm to the global migration set for owner while fewer than limit
 * entries are there (atomic); *taken says whether it was added (a VM
 * already there counts as taken). release: removes it. */
int vmp_store_migration_claim(vmp_store *s, const char *vm, const char *owner, long long limit,
                              bool *taken, vmp_err *err);
int vmp_store_migration_release(vmp_store *s, const char *vm, vmp_err *err);

/* A clone's bookkeeping in one round trip (pipelined scripts, each one
 * atomic as on its own): clone done (vmp_store_clone_done), then when ready
 * pending -> ready (vmp_store_pending_ready). Returns 0 when the round trip
 * happened; each step's result is in done_rc / ready_rc (0, VMP_ESTATE,
 * VMP_EREDIS), err holds the first step error. */
typedef struct vmp_store_clone_step {
    const char *pool, *vm;
    double seconds;   /* the clone took */
    const char *ip;   /* may be NULL */
    double now;
    bool ready;       /* also move it pending -> ready */
    long long lifetime_auth;
    /* results */
    int done_rc, ready_rc;
    vmp_ready_outcome outcome;
    double boot; /* boot seconds, -1 unknown */
} vmp_store_clone_step;
int vmp_store_clone_step_run(vmp_store *s, vmp_store_clone_step *c, vmp_err *err);

/* ---- for the HTTP API (src/store/store_api.c) --------------------------- */

/* Rate limiter (vmpooler's `<prefix>__ratelimit__<class>__<client>`
 * counters), one atomic round trip: when the counter is >= limit, *allowed
 * = false and *ttl = its remaining seconds; otherwise INCR it, EXPIRE it
 * period seconds, *allowed = true. */
int vmp_store_ratelimit_hit(vmp_store *s, const char *cls, const char *client, long long limit,
                            long long period, bool *allowed, long long *ttl, vmp_err *err);

/* VM return with vmpooler's token rule, one atomic round trip: VMP_ENOENT
 * when there is no VM hash; VMP_EFAILED when the VM was checked out with a
 * token and `token` (may be NULL) names no existing token (nothing
 * changed); else the token's `last` is set to now, and running ->
 * completed for the pool in the hash's `template` (VMP_ESTATE if it was not
 * running). *pool_out and *user_out (may be NULL; must point to NULL)
 * receive the pool and the VM's token:user when known. */
int vmp_store_vm_return_checked(vmp_store *s, const char *vm, const char *token, double now,
                                char **pool_out, char **user_out, vmp_err *err);

/* ---- batches (API; src/store/store_batch.c) -----------------------------
 *
 * Checkouts and returns queued by several requests and sent as one pipeline:
 * one write, one round trip and one Redis wake-up for as many requests as
 * arrived together. Each op stays its own atomic script, run in queue order.
 * Every queued op's callback is called exactly once, by
 * vmp_store_batch_run (or by vmp_store_batch_free for ops never run, with
 * VMP_EREDIS).
 *
 * Failures: an op whose script cache was flushed runs again on its own;
 * when the connection breaks midway, the ops whose replies were read keep
 * their results and the others fail with VMP_EREDIS (the connection is
 * dropped; the next run reconnects). As with a single call, an op that
 * failed that way may still have run in Redis. */
typedef struct vmp_store_batch vmp_store_batch;

/* rc is 0, or the error vmp_store_checkout would return (res then empty;
 * on VMP_EAGAIN res->empty_want is set). res is the callee's to clear. */
typedef void (*vmp_store_checkout_done)(void *ud, int rc, vmp_store_checkout_result *res,
                                        const vmp_err *err);
/* rc as vmp_store_vm_return_checked; pool and user may be NULL and are
 * only valid during the call. */
typedef void (*vmp_store_return_done)(void *ud, int rc, const char *pool, const char *user,
                                      const vmp_err *err);

/* NULL when out of memory. */
vmp_store_batch *vmp_store_batch_new(void);
/* Fails what is still queued (callbacks get VMP_EREDIS) and frees.
 * NULL does nothing. */
void vmp_store_batch_free(vmp_store_batch *b);
/* Ops queued and not yet sent. */
size_t vmp_store_batch_size(const vmp_store_batch *b);
/* Queues vmp_store_checkout. wants (and what it points to) must stay valid
 * until done is called; opts is copied. VMP_ENOMEM (done not called) when
 * it cannot be queued. */
int vmp_store_batch_checkout(vmp_store_batch *b, const vmp_store_want *wants, size_t nwants,
                             const vmp_store_checkout_opts *opts, vmp_store_checkout_done done,
                             void *ud, vmp_err *err);
/* Queues vmp_store_vm_return_checked (vm and token are copied). */
int vmp_store_batch_vm_return_checked(vmp_store_batch *b, const char *vm, const char *token,
                                      double now, vmp_store_return_done done, void *ud,
                                      vmp_err *err);
/* Sends every queued op to s in one write and returns without waiting:
 * they are in flight until vmp_store_batch_finish. Does nothing while a
 * group is already in flight. Ops queued meanwhile wait for the next send. */
void vmp_store_batch_send(vmp_store *s, vmp_store_batch *b);
/* Reads the replies of the ops in flight (waiting for them) and calls each
 * one's callback in queue order. Callbacks must not queue into b. */
void vmp_store_batch_finish(vmp_store *s, vmp_store_batch *b);
/* Ops queued and not yet sent (vmp_store_batch_size) and ops in flight. */
size_t vmp_store_batch_in_flight(const vmp_store_batch *b);
/* finish, send, finish: everything queued done when it returns. */
void vmp_store_batch_run(vmp_store *s, vmp_store_batch *b);

#endif
