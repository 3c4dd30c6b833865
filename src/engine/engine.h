/*
 * engine: vmpool's lifecycle engine, the "manager" (reference §3, §4).
 *
 * It keeps every configured pool filled with ready VMs, checks pending,
 * ready and running VMs, destroys completed ones, runs the disk and snapshot
 * task queues, fills on-demand requests and evaluates migrations at
 * checkout. All state lives in Redis, moved through the store (store.h);
 * backends are reached only through the provider contract (provider.h).
 *
 * Threads. One scheduler thread decides what to do and never calls a
 * provider: each pool's check pass (§4.3) runs as a task on a bounded pool
 * of worker threads, and so does each provider operation on one VM (clone,
 * pending/ready/running check, destroy, migration, disk, snapshot). No two
 * tasks touch one VM at once: a check or destroy for a VM that is busy is
 * skipped (vmpooler's mutex try-lock), a clone holds its VM from the moment
 * its name is chosen. At most one pass per pool runs at a time. Clones share
 * `task_limit` across all pools (the count is mirrored into Redis
 * `tasks__clone` for the API's status), migrations `migration_limit`,
 * on-demand clones `ondemand_clone_limit`. Every thread that talks to Redis
 * has its own store connection.
 *
 * Wake-ups. A pool's pass runs at once when something happens to the pool
 * (a checkout or return published by the API on the store's event channel,
 * a config change, one of the engine's own tasks finishing, a reload);
 * otherwise at vmpooler's adaptive interval (check_loop_delay_min/max/decay,
 * global or per pool, §4.2). Per-VM checks are only made when due
 * (vm_checktime for ready VMs), so a full, quiet pool costs one pipelined
 * read per interval.
 *
 * Several managers may share one Redis: each pool is worked only by the
 * manager holding its lease (`SET NX PX`, renewed while alive, released on
 * stop); a dead manager's pools are taken over when its leases lapse.
 *
 * Time comes from a vmp_clock (opts.clock), so tests move it by hand.
 *
 * Typical use (vmpoold):
 *
 *     vmp_engine_opts o = {.config = cfg, .store = &store_opts, .metrics = m};
 *     vmp_engine *e = NULL;
 *     if (vmp_engine_new(&o, &e, &err) || vmp_engine_start(e, &err)) ...fail...
 *     ...SIGHUP: vmp_engine_reload(e, new_cfg, &err);
 *     ...SIGTERM: vmp_engine_stop(e, 30.0); vmp_engine_free(e);
 *
 * Tests use opts.manual (no scheduler thread) and drive it with
 * vmp_engine_run_pass(), vmp_engine_run_queues(), vmp_engine_run_ondemand()
 * and vmp_engine_wait_idle().
 *
 * Every function returns 0 or a negative VMP_E* code with err filled.
 * Unless stated otherwise, functions may be called from any one thread
 * (the daemon's main thread), not concurrently with each other.
 */
#ifndef VMP_ENGINE_H
#define VMP_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

#include "clock.h"
#include "config.h"
#include "config_node.h"
#include "err.h"
#include "metrics.h"
#include "provider.h"
#include "store/store.h"

typedef struct vmp_engine vmp_engine;

/* ---- policy hooks ------------------------------------------------------- */

/* What the pool-size hook sees about one pool. */
typedef struct vmp_engine_pool_stats {
    long long ready, pending, running, completed; /* set sizes at this pass */
    long long size;                               /* size in force: config, or the Redis override */
    long long config_size;                        /* size from the configuration file */
    long long checkouts_10m;                      /* checkouts seen in the last 10 minutes */
    long long checkouts_1h;                       /* ... in the last hour */
    double last_checkout;                         /* time of the latest checkout seen, 0 = none */
} vmp_engine_pool_stats;

typedef enum vmp_engine_event_kind {
    VMP_ENGINE_EV_CLONE_DONE = 0, /* provider created vm (it is pending) */
    VMP_ENGINE_EV_CLONE_FAILED,   /* create failed; error says why */
    VMP_ENGINE_EV_READY,          /* pending -> ready (or -> running, on-demand) */
    VMP_ENGINE_EV_CHECKOUT,       /* vm was checked out (seen by the engine) */
    VMP_ENGINE_EV_RETURN,         /* a VM of pool was returned (vm may be NULL) */
    VMP_ENGINE_EV_DESTROY,        /* provider destroyed vm */
} vmp_engine_event_kind;

/* Name of an event kind: "clone_done", "clone_failed", "ready", "checkout",
 * "return", "destroy". */
const char *vmp_engine_event_name(vmp_engine_event_kind k);

typedef struct vmp_engine_event {
    vmp_engine_event_kind kind;
    const char *pool;
    const char *vm;    /* may be NULL (a return seen only as an event) */
    double time;       /* engine clock */
    double duration;   /* seconds the provider call took, or 0 */
    const char *error; /* CLONE_FAILED: the provider's message; else NULL */
} vmp_engine_event;

/*
 * Decision points a policy layer (Lua) may take over. Every member may be
 * NULL (built-in behaviour). A hook that returns non-zero makes the engine
 * use its built-in behaviour for that decision and log err's message at
 * warning level; VMP_ENOTSUP means "no opinion here" (e.g. no policy covers
 * this pool) and falls back silently. Hook calls are serialised by the engine (never two at
 * once, whatever thread calls them), so a hook may use one interpreter
 * without a lock of its own; they may come from any engine thread (a
 * worker, the event thread) and must not call back into the engine.
 */
typedef struct vmp_engine_hooks {
    void *ud; /* passed to every hook */

    /* Pool size wanted now (>= 0) instead of the configured/overridden
     * size. Called once per pass of pool before repopulation. */
    int (*pool_size)(void *ud, const char *pool, const vmp_engine_pool_stats *stats, double now,
                     long long *size, vmp_err *err);

    /* Name for a new VM of pool (without prefix; the engine adds
     * `:config: prefix`). Written into name (len bytes, NUL-terminated).
     * The engine still checks that no VM hash has that name; on a clash it
     * asks again, up to 3 times, then falls back to its own generator. */
    int (*vm_name)(void *ud, const char *pool, char *name, size_t len, vmp_err *err);

    /* Migration target for vm (built-in path only, i.e. when the provider
     * has no migrate_vm): current is the VM's host, proposed the provider's
     * least-used compatible host. Write the chosen host (may equal current:
     * no migration) into host. */
    int (*choose_host)(void *ud, const char *pool, const char *vm, const char *current,
                       const char *proposed, char *host, size_t len, vmp_err *err);

    /* Lifetime in hours (> 0) for a VM just checked out, called when the
     * engine first sees the checkout (its migration step). hours_in holds
     * the VM's current `lifetime` field or, when absent, -1. Setting *hours
     * to hours_in or returning non-zero changes nothing. */
    int (*lifetime)(void *ud, const char *pool, const char *vm, long long hours_in,
                    const char *user, long long *hours, vmp_err *err);

    /* Informational; no return value. */
    void (*on_event)(void *ud, const vmp_engine_event *ev);
} vmp_engine_hooks;

/* ---- lifecycle ---------------------------------------------------------- */

/* Called with a configuration the engine no longer uses (one replaced by
 * vmp_engine_reload, once the last task that read it has finished and no
 * provider instance opened with it is left), so the owner may free it.
 * Runs on an engine thread with engine locks held: it must not call into
 * the engine. */
typedef void (*vmp_engine_config_retired_fn)(const vmp_config *cfg, void *ud);

typedef struct vmp_engine_opts {
    /* Required. Borrowed: it must stay valid until it is retired (see
     * config_retired) or until vmp_engine_free returns. */
    const vmp_config *config;
    /* Required: how to reach Redis; every engine thread opens its own
     * connection with it. Borrowed like config (strings included). */
    const vmp_store_opts *store;
    vmp_clock *clock;     /* NULL: system clock. Borrowed. */
    vmp_metrics *metrics; /* NULL: null sink. Borrowed. */
    /* Passed to providers as vmpooler's provider_options (e.g. the dummy's
     * initial_state); may be NULL. Borrowed. */
    const vmp_cfg_node *provider_options;
    const vmp_engine_hooks *hooks;               /* copied; NULL: built-in behaviour */
    vmp_engine_config_retired_fn config_retired; /* NULL: nobody is told */
    void *config_retired_ud;

    /* Worker threads; 0: task_limit + migration_limit + ondemand_clone_limit
     * + 4, capped at 256. */
    int workers;
    /* No scheduler thread and no event subscriber: the caller drives the
     * engine with vmp_engine_run_pass() etc. (tests, embedding). Workers
     * still run tasks. */
    bool manual;
    /* Lease owner id; NULL: "<hostname>:<pid>:<random>". Copied. */
    const char *owner;
    long long lease_ttl_ms; /* 0: 30000; renewed every third of it */
    /* Graceful stop: how long running tasks may take to finish; 0: 30 s. */
    double stop_timeout;
    /* Keep VMs found in a provider but unknown to Redis instead of
     * destroying them (also per pool/global config key
     * `keep_discovered_vms: true`). */
    bool keep_discovered_vms;
} vmp_engine_opts;

/* Validates opts, connects the scheduler's store and opens one provider
 * instance per provider the configuration uses. Starts nothing. *out must
 * be NULL and receives the engine. */
int vmp_engine_new(const vmp_engine_opts *opts, vmp_engine **out, vmp_err *err);

/* Start-up (reference §4.1): resets the clone counters (only when no other
 * manager holds a lease) and the migration set, publishes the pools,
 * adopts template overrides, acquires the pools' leases, reconciles Redis
 * with every provider's inventory (VMs recorded pending but absent from
 * their provider are dropped at once), then starts the workers and (unless
 * manual) the scheduler and event subscriber. Fails when Redis cannot be
 * reached. */
int vmp_engine_start(vmp_engine *e, vmp_err *err);

/* Graceful stop: no new pass or task is started, queued tasks are dropped,
 * running tasks get up to timeout seconds (< 0: opts.stop_timeout) to
 * finish; tasks still running after that are abandoned (their VMs stay in
 * Redis as they are: a clone cut short is still pending and is reconciled
 * by the next start). Leases are released. Idempotent. Returns 0, or
 * VMP_ETIMEDOUT when tasks were abandoned. */
int vmp_engine_stop(vmp_engine *e, double timeout);

/* Stops (if needed) and frees everything. NULL is a no-op. */
void vmp_engine_free(vmp_engine *e);

/* Swaps in a new configuration (borrowed, as opts.config). Pool sizes,
 * templates, loop timing, limits, new and removed pools take effect at the
 * next pass; provider instances whose `:providers:` entry is unchanged are
 * kept, changed or new ones are (re)opened, unused ones closed once idle.
 * The `:redis:` section is not re-read. On failure (a provider cannot be
 * opened) the old configuration stays in force. */
int vmp_engine_reload(vmp_engine *e, const vmp_config *cfg, vmp_err *err);

/* Wakes a pool (NULL: every pool) for an immediate pass, as an event on the
 * channel would. Thread-safe. */
void vmp_engine_wake(vmp_engine *e, const char *pool);

/* ---- queries (thread-safe) ----------------------------------------------- */

/* Lease owner id of this engine. */
const char *vmp_engine_owner(const vmp_engine *e);
/* Whether this engine holds pool's lease (last known). */
bool vmp_engine_pool_leased(vmp_engine *e, const char *pool);
/* Provider instance by name (as in :providers: / pool `provider:`), or NULL. */
vmp_provider *vmp_engine_provider(vmp_engine *e, const char *name);

typedef struct vmp_engine_status {
    long long clones;          /* replenishment clones in flight */
    long long ondemand_clones; /* on-demand clones in flight */
    long long migrations;      /* migrations in flight */
    long long tasks_running;   /* tasks on workers now */
    long long tasks_queued;    /* tasks waiting for a worker */
    long long passes;          /* pool passes run since start */
    long long pools;           /* configured pools */
    long long pools_leased;    /* pools this engine holds */
} vmp_engine_status;
void vmp_engine_status_get(vmp_engine *e, vmp_engine_status *out);

/* ---- driving the engine by hand (manual mode; tests) -------------------- */

/* Counters of one pass (§4.3). */
typedef struct vmp_engine_pass_result {
    long long discovered, checked_running, checked_ready, checked_pending;
    long long destroyed, migrated, cloned;
} vmp_engine_pass_result;

/* Runs one pass of pool on the calling thread (its per-VM tasks go to the
 * workers; use vmp_engine_wait_idle to wait for them). Acquires or renews
 * the pool's lease first: VMP_EAGAIN if another manager holds it,
 * VMP_ENOENT for an unknown pool, VMP_EAGAIN also while a pass of pool is
 * already running. res may be NULL. */
int vmp_engine_run_pass(vmp_engine *e, const char *pool, vmp_engine_pass_result *res, vmp_err *err);
/* Drains the disk, snapshot and snapshot-revert queues (at most max tasks
 * each; <= 0: no bound) into tasks. *started (may be NULL) = tasks started. */
int vmp_engine_run_queues(vmp_engine *e, int max, long long *started, vmp_err *err);
/* One iteration of the on-demand provisioner (§4.10). */
int vmp_engine_run_ondemand(vmp_engine *e, vmp_err *err);
/* Waits until no task is queued or running, up to timeout seconds (real
 * time). VMP_ETIMEDOUT if still busy. */
int vmp_engine_wait_idle(vmp_engine *e, double timeout);

#endif
