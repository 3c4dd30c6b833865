/*
 * engine_internal: what the engine's .c files share: the engine, pool, VM
 * record, task and configuration-generation structs, and the functions
 * one file offers the others. Nothing outside src/engine/ includes it.
 *
 * Locking: one mutex, e->lock, guards every structure below (pools, VM
 * records, the task queues, counters, generations, provider instances).
 * It is held only for bookkeeping, never across a Redis round trip, a
 * provider call or a hook call. Hook calls are serialised by e->hook_lock,
 * which is never taken while e->lock is held.
 */
#ifndef VMP_ENGINE_INTERNAL_H
#define VMP_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "engine/engine.h"

#define ENG_SUBSYS "engine"

/* ---- configuration generations ------------------------------------------ */

/* One configuration in force at some time. Tasks hold a reference to the
 * generation current when they were made; provider instances pin the one
 * they were opened with (their options point into it). Generations retire
 * oldest first, once they are not current and nothing holds or pins them. */
typedef struct eng_gen {
    const vmp_config *cfg;
    const vmp_config *base; /* the caller's config this one derives from (== cfg if none) */
    bool owned;             /* made by the engine (a template override): freed by it */
    long refs;              /* tasks + 1 while current */
    long pins;              /* provider instances opened under it */
    struct eng_gen *next;   /* newer */
} eng_gen;

/* A provider instance shared by the pools naming it. */
typedef struct eng_prov {
    char *name;
    vmp_provider *p;
    eng_gen *gen; /* opened under (pinned) */
    long refs;    /* tasks using it */
    bool retired; /* gone from the configuration: close once unused */
    struct eng_prov *next;
} eng_prov;

/* ---- VM records ---------------------------------------------------------- */

/* What the engine remembers about one VM of a pool, so that a pass needs no
 * per-VM Redis reads: times it wrote or read, and the busy flag that gives
 * per-VM exclusivity. Times are 0 when unknown. */
typedef struct eng_vm {
    char *name;
    struct eng_task *waiters; /* tasks that must run (not skip) once it is free */
    double clone_t;           /* `clone` */
    double ready_t;           /* `ready` */
    double check_t;           /* last ready/running check by this engine */
    double checkout_t;        /* running: checkout time */
    double deadline;          /* running: when its lifetime ends (0 unknown) */
    unsigned long seen_pass;  /* pass number that last saw it in a set */
    int state;                /* vmp_vm_state seen by that pass, -1 none */
    bool busy;                /* a task holds it */
    bool checkout_seen;       /* its checkout was counted */
    bool notified;            /* timeout notification logged */
} eng_vm;

/* Open-addressing table of VM records by name. */
typedef struct eng_vmtab {
    eng_vm **slot;
    size_t cap;  /* power of two, 0 when empty */
    size_t n;    /* live records */
    size_t used; /* live + tombstones */
} eng_vmtab;

eng_vm *eng_vmtab_get(eng_vmtab *t, const char *name);
/* Record for name, made when absent (NULL on allocation failure). */
eng_vm *eng_vmtab_add(eng_vmtab *t, const char *name);
/* Removes and frees rec (must not be busy and have no waiters). */
void eng_vmtab_del(eng_vmtab *t, eng_vm *rec);
void eng_vmtab_clear(eng_vmtab *t);
/* Calls fn for every record; fn may delete the record it is given. */
void eng_vmtab_each(eng_vmtab *t, void (*fn)(eng_vm *rec, void *ud), void *ud);

/* ---- pools ---------------------------------------------------------------- */

#define ENG_CHECKOUT_RING 256

typedef struct eng_pool {
    char *name;
    const vmp_pool_cfg *cfg; /* in the current generation; NULL once removed */
    eng_prov *prov;          /* NULL once removed */
    bool configured;

    /* scheduling */
    double next_due;        /* engine clock */
    double delay;           /* current adaptive delay */
    bool wake;              /* run a pass as soon as possible */
    bool pass_busy;         /* a pass is queued or running */
    bool first_pass_done;   /* start-up reconcile done */
    bool slow_due;          /* read overrides and requests at the next pass */
    double slow_read_t;     /* last time they were read */
    long long polled_ready; /* ready count at the last poll, -1 unknown */
    unsigned long pass_no;

    /* runtime values in force (reference §4.3.8, §4.3.9) */
    char *tmpl;               /* template override in force, NULL: the config's */
    unsigned long tmpl_epoch; /* bumped at each template/clone target change */
    long long size;           /* size in force */
    long long size_override;  /* -1: none */
    char *clone_target;       /* clone target override in force, NULL: config */
    int empty_flag;           /* -1 unknown, 0 not empty, 1 empty (as in Redis) */

    /* clones */
    long long deficit;    /* clones still wanted, set by repopulate */
    long long unrecorded; /* clone tasks that have not recorded their VM yet */
    long long clones;     /* clone tasks of this pool in flight */

    /* lease */
    bool leased;

    /* checkouts seen (policy stats): ring of times */
    double co_ring[ENG_CHECKOUT_RING];
    unsigned co_head, co_n;

    eng_vmtab vms;
} eng_pool;

/* ---- tasks ------------------------------------------------------------------ */

typedef enum eng_task_kind {
    ENG_T_PASS = 0,
    ENG_T_CLONE,
    ENG_T_PENDING,
    ENG_T_READY,
    ENG_T_RUNNING,
    ENG_T_DESTROY,
    ENG_T_MIGRATE,
    ENG_T_DISK,
    ENG_T_SNAPSHOT,
    ENG_T_REVERT,
    ENG_T_QUEUES,
    ENG_T_ONDEMAND,
    ENG_T_PURGE,
    ENG_T_NKINDS
} eng_task_kind;

typedef struct eng_task {
    eng_task_kind kind;
    eng_pool *pool; /* NULL for global tasks */
    eng_vm *vm;     /* held (busy) VM, or NULL */
    eng_vm **batch; /* ready checks: several held VMs (vm is NULL) */
    size_t nbatch;
    eng_gen *gen;   /* referenced */
    eng_prov *prov; /* referenced, may be NULL */
    char *arg;      /* disk size / snapshot name / od request id */
    char *arg2;     /* od alias */
    long long n;
    unsigned long epoch; /* clone: pool tmpl_epoch at dispatch */
    bool ondemand;       /* clone for an on-demand request */
    bool high;           /* high-priority queue */
    struct eng_task *next;
} eng_task;

/* ---- the engine ------------------------------------------------------------- */

struct vmp_engine {
    vmp_engine_opts opts;
    vmp_engine_hooks hooks;
    bool has_hooks;
    vmp_clock *clock;
    vmp_metrics *metrics;
    char owner[160];
    long long lease_ttl_ms;

    pthread_mutex_t lock;
    pthread_mutex_t hook_lock;
    pthread_mutex_t cfg_lock;  /* serialises configuration installs (taken before lock) */
    pthread_cond_t work_cond;  /* workers: a task was queued, or stopping */
    pthread_cond_t idle_cond;  /* a task finished */
    pthread_cond_t sched_cond; /* the scheduler: something to do */

    /* configuration */
    eng_gen *gens; /* oldest first */
    eng_gen *cur;
    eng_prov *provs;

    eng_pool **pools;
    size_t npools;
    size_t rr; /* round-robin start for clone dispatch */

    /* store connection of the thread driving the engine (start, manual
     * passes) and of the scheduler thread */
    vmp_store *store;
    vmp_store *sched_store;

    /* workers and queues */
    pthread_t *threads;
    int nthreads, nthreads_started;
    eng_task *q_high, *q_high_tail, *q_low, *q_low_tail;
    long long queued, running;
    long long idle_workers, wakeups; /* sleeping workers, wake-ups sent not yet taken */

    /* limits in force (from the current generation) */
    long long task_limit, migration_limit, od_limit;
    long long clones, od_clones, migrations, io_tasks;
    /* net change of clones / od_clones since the last heartbeat, which
     * publishes the absolute counts (managers.c); non-zero: beat again */
    long long mirror_delta[2];

    /* global activities */
    bool queues_busy, queues_wake;
    bool od_busy, od_wake;
    double queues_due, od_due, od_delay, poll_due, lease_due;
    bool od_leased;

    /* threads */
    pthread_t sched_thread, sub_thread;
    bool sched_started, sub_started;
    bool started, stopping, stopped, abandoned;

    long long passes;
    unsigned rnd; /* seed for the scheduler's own randomness */

    /* heartbeat (managers.c) */
    pthread_mutex_t beat_lock; /* one beat at a time (taken before lock) */
    double last_beat;          /* monotonic time of the last beat */
    char node[256];            /* "<host>/<boot id>/<pid namespace>", "" unknown */
    char start_mark[32];       /* this process's start time (/proc) */
};

/* ---- engine.c --------------------------------------------------------------- */

double eng_now(vmp_engine *e);
eng_pool *eng_pool_find(vmp_engine *e, const char *name);
/* Takes a reference on the current generation (e->lock held). */
eng_gen *eng_gen_ref(vmp_engine *e);
/* Drops a reference; retires generations (e->lock held). */
void eng_gen_unref(vmp_engine *e, eng_gen *g);
void eng_prov_unref(vmp_engine *e, eng_prov *pv);
/* Integer/boolean options that vmp_config does not model, from the pool's
 * node, else :config:, else def. */
long long eng_opt_int(const vmp_config *cfg, const vmp_pool_cfg *pool, const char *key,
                      long long def);
bool eng_opt_bool(const vmp_config *cfg, const vmp_pool_cfg *pool, const char *key, bool def);
/* Pool config in generation g, or NULL. */
const vmp_pool_cfg *eng_pool_cfg(const eng_gen *g, const char *pool);
/* Publishes the pools (§4.1 step 5). */
int eng_publish_pools(vmp_engine *e, vmp_store *st, const vmp_config *cfg, vmp_err *err);

/* Installs cfg as a new generation (opens the providers it needs). */
int eng_install_config(vmp_engine *e, const vmp_config *cfg, bool owned, vmp_err *err);

/* ---- overrides.c ------------------------------------------------------------ */

/* Installs the caller's configuration, or a copy with the template and
 * clone-target overrides in force applied. */
int eng_overrides_apply(vmp_engine *e, vmp_err *err);
/* Same with e->cfg_lock held; force: install even when nothing changed. */
int eng_overrides_apply_locked(vmp_engine *e, bool force, vmp_err *err);

/* ---- workers.c ------------------------------------------------------------ */

int eng_workers_start(vmp_engine *e, vmp_err *err);
/* Waits up to timeout for running tasks, joins workers. Returns 0 or
 * VMP_ETIMEDOUT. */
int eng_workers_stop(vmp_engine *e, double timeout);
/* New task of kind for pool (may be NULL) holding vm (may be NULL); takes
 * references on the current generation and on prov. e->lock held. NULL on
 * allocation failure. */
eng_task *eng_task_new(vmp_engine *e, eng_task_kind kind, eng_pool *pool, eng_vm *vm,
                       eng_prov *prov);
/* Queues t (e->lock held). */
void eng_task_push(vmp_engine *e, eng_task *t);
/* Frees a task that was never run, releasing what it holds (e->lock held). */
void eng_task_drop(vmp_engine *e, eng_task *t);
/* Drops every queued task (stop). e->lock held. */
void eng_queue_flush(vmp_engine *e);

/* ---- vmlock.c ------------------------------------------------------------- */

/* Marks rec busy if it is free. e->lock held. */
bool eng_vm_trylock(eng_vm *rec);
/* Releases rec: hands it to its first waiter (queued) or frees it. e->lock
 * held. */
void eng_vm_unlock(vmp_engine *e, eng_pool *pool, eng_vm *rec);
/* Queues t once rec is free (at once if it is). t->vm must be rec. e->lock
 * held. */
void eng_vm_run_when_free(vmp_engine *e, eng_vm *rec, eng_task *t);

/* ---- scheduler.c ------------------------------------------------------------ */

int eng_scheduler_start(vmp_engine *e, vmp_err *err);
void eng_scheduler_stop(vmp_engine *e);
/* Wakes pool (NULL: all) (e->lock held). */
void eng_wake_locked(vmp_engine *e, eng_pool *pool);
/* Dispatches clones to pools with a deficit while the limit allows (e->lock
 * held). */
void eng_dispatch_clones(vmp_engine *e);
/* Beats (eng_managers_sync) when the clone counts changed since the last
 * beat or a beat is due. */
void eng_mirror_flush(vmp_engine *e, vmp_store *st);
/* Lease renewal/acquisition for every pool (and the on-demand provisioner)
 * over st. */
void eng_leases_renew(vmp_engine *e, vmp_store *st);
void eng_leases_release(vmp_engine *e, vmp_store *st);

/* ---- pass.c --------------------------------------------------------------------- */

/* One pass of pool over st (§4.3). g: generation to use. */
int eng_pass_run(vmp_engine *e, eng_pool *pool, eng_gen *g, eng_prov *pv, vmp_store *st,
                 vmp_engine_pass_result *res, vmp_err *err);

/* ---- checks.c ------------------------------------------------------------------- */

void eng_task_pending(vmp_engine *e, eng_task *t, vmp_store *st);
/* After Redis moved rec pending -> ready (or running / completed, oc):
 * the record, metrics, log and event. rec is held by the caller. */
void eng_pending_ready_apply(vmp_engine *e, eng_pool *p, eng_vm *rec, vmp_ready_outcome oc,
                             double boot, double now);
void eng_task_ready(vmp_engine *e, eng_task *t, vmp_store *st);
void eng_task_running(vmp_engine *e, eng_task *t, vmp_store *st);
void eng_task_destroy(vmp_engine *e, eng_task *t, vmp_store *st);
/* Fail-pending (§4.3.4) for a pending VM: moves it out when its clone is
 * older than the pool timeout. exists: the provider still has it. */
void eng_fail_pending(vmp_engine *e, eng_pool *pool, const vmp_pool_cfg *pc, eng_gen *g,
                      eng_vm *rec, const char *vm, bool exists, vmp_store *st);

/* ---- clone.c ---------------------------------------------------------------------- */

void eng_task_clone(vmp_engine *e, eng_task *t, vmp_store *st);
/* Dispatches one clone for pool (e->lock held; counters already taken by
 * the caller). */
eng_task *eng_clone_task_new(vmp_engine *e, eng_pool *pool, bool ondemand);
/* Whether an error message/code is "permanent" (§4.3.4). */
bool eng_error_permanent(int code, const char *msg);
/* On-demand bookkeeping after a failed clone or a timed-out pending VM. */
void eng_ondemand_vm_failed(vmp_engine *e, vmp_store *st, const char *pool, const char *vm,
                            const char *request_id, const char *alias, int code, const char *msg);

/* ---- names.c ---------------------------------------------------------------------- */

/* "<adjective>-<noun>" into buf. *seed is the caller's random state. */
void eng_name_generate(unsigned *seed, char *buf, size_t len);
/* Same with "-<number>" appended (retries after a clash). */
void eng_name_generate_numbered(unsigned *seed, char *buf, size_t len);
extern const char *const eng_adjectives[];
extern const size_t eng_n_adjectives;
extern const char *const eng_nouns[];
extern const size_t eng_n_nouns;

/* ---- tasks.c ---------------------------------------------------------------------- */

void eng_task_queues(vmp_engine *e, eng_task *t, vmp_store *st);
void eng_task_disk(vmp_engine *e, eng_task *t, vmp_store *st);
void eng_task_snapshot(vmp_engine *e, eng_task *t, vmp_store *st);
int eng_queues_drain(vmp_engine *e, vmp_store *st, int max, long long *started, vmp_err *err);

/* ---- ondemand.c ------------------------------------------------------------------- */

void eng_task_ondemand(vmp_engine *e, eng_task *t, vmp_store *st);
/* One provisioner iteration; *activity = requests + tasks + processing. */
int eng_ondemand_step(vmp_engine *e, vmp_store *st, long long *activity, vmp_err *err);

/* ---- migrate.c -------------------------------------------------------------------- */

void eng_task_migrate(vmp_engine *e, eng_task *t, vmp_store *st);

/* ---- hooks.c ---------------------------------------------------------------------- */

bool eng_hook_pool_size(vmp_engine *e, const char *pool, const vmp_engine_pool_stats *st,
                        long long *size);
bool eng_hook_vm_name(vmp_engine *e, const char *pool, char *name, size_t len);
bool eng_hook_choose_host(vmp_engine *e, const char *pool, const char *vm, const char *current,
                          const char *proposed, char *host, size_t len);
bool eng_hook_lifetime(vmp_engine *e, const char *pool, const char *vm, long long in,
                       const char *user, long long *hours);
void eng_event(vmp_engine *e, vmp_engine_event_kind kind, const char *pool, const char *vm,
               double duration, const char *error);

/* ---- managers.c ------------------------------------------------------------------- */

/* Fills e->node and e->start_mark. */
void eng_node_init(vmp_engine *e);
/* Whether a manager with that heartbeat (node, pid, start marker) is known
 * to be dead: same node as e and its pid gone, a zombie, or reused. */
bool eng_peer_dead(const vmp_engine *e, const char *node, const char *pid_s, const char *start);
/* Beats (flags: VMP_STORE_BEAT_*), which rewrites the Redis clone counters
 * as the sum over live managers, and reaps the dead managers of this node.
 * Returns the number of leases freed by reaping. Takes e->beat_lock. */
long long eng_managers_sync(vmp_engine *e, vmp_store *st, unsigned flags);

/* ---- startup.c -------------------------------------------------------------------- */

int eng_startup(vmp_engine *e, vmp_err *err);
void eng_task_purge(vmp_engine *e, eng_task *t, vmp_store *st);

#endif
