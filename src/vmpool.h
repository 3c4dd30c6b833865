/*
 * vmpool (embedding): run vmpool's pools inside another program — the
 * public C API of libvmpool.
 *
 * A vmpool handle is what the vmpool daemon does without its HTTP API: it
 * loads a configuration (YAML plus its Lua files), registers the built-in
 * and Lua providers, makes the policy hooks, and on start runs the
 * lifecycle engine in the calling process (its own threads), against the
 * configured Redis or, when none is configured, vmpool's own redis-server
 * under the state directory. Checkout and return use the same atomic Redis
 * moves as the HTTP API, so VMs handed out here and by a vmpool API on the
 * same Redis never collide.
 *
 *     vmpool *vp = NULL;
 *     vmp_err err;
 *     if (vmp_open("vmpool.yaml", NULL, &vp, &err) || vmp_start(vp, &err))
 *         ...fail with err.msg...
 *     vmp_wait_ready(vp, "debian-12", 1, 60, &err);
 *     char *vm = NULL;
 *     if (vmp_checkout(vp, "debian-12", NULL, &vm, &err) == 0) {
 *         ...use vm...
 *         vmp_return(vp, vm, &err);
 *         free(vm);
 *     }
 *     vmp_close(vp); // stops first
 *
 * Every function returns 0 or a negative VMP_E* code with err filled. A
 * handle may be used from several threads; calls are serialised inside.
 * The redis-server vmpool starts for itself is tied to the thread that
 * called vmp_start (it stops when that thread ends): start from a thread
 * that lives as long as the handle.
 */
#ifndef VMP_VMPOOL_H
#define VMP_VMPOOL_H

#include <stdbool.h>

#include "config.h"
#include "err.h"

typedef struct vmpool vmpool;

typedef struct vmp_open_opts {
    /* Lua files run after the configuration's own (like vmpoold --lua),
     * NULL-ended; may be NULL. */
    const char *const *lua_files;
    bool no_env;         /* ignore the VMPOOLER_* environment overrides */
    double stop_timeout; /* seconds running tasks get on stop; 0: 30 */
    const char *owner;   /* lease owner id; NULL: host:pid:random */
} vmp_open_opts;

/* Loads the configuration at config_path (NULL: vmpooler's lookup,
 * $VMPOOLER_CONFIG / $VMPOOLER_CONFIG_FILE / vmpooler.yaml) and prepares
 * providers and policies. Starts nothing. opts may be NULL. *out must be
 * NULL. err holds the first configuration error; the others are logged as
 * warnings. */
int vmp_open(const char *config_path, const vmp_open_opts *opts, vmpool **out, vmp_err *err);

/* Starts Redis (when vmpool runs its own) and the engine. */
int vmp_start(vmpool *vp, vmp_err *err);

typedef struct vmp_checkout_opts {
    const char *token; /* recorded as token:token, with user as token:user (NULL: none) */
    const char *user;
    long long lifetime; /* hours; > 0 sets the VM's lifetime */
} vmp_checkout_opts;

/* Hands out one ready VM of pool (a pool name or alias). *vm must be NULL
 * and receives the VM name (free it). VMP_EAGAIN when no VM is ready,
 * VMP_ENOENT for an unknown pool. opts may be NULL. */
int vmp_checkout(vmpool *vp, const char *pool, const vmp_checkout_opts *opts, char **vm,
                 vmp_err *err);

/* Gives a checked-out VM back; the engine destroys it. VMP_ENOENT for an
 * unknown VM, VMP_ESTATE for one that is not checked out. */
int vmp_return(vmpool *vp, const char *vm, vmp_err *err);

typedef struct vmp_pool_counts {
    long long ready, pending, running, completed;
} vmp_pool_counts;

/* The pool's VM counts as Redis holds them. */
int vmp_counts(vmpool *vp, const char *pool, vmp_pool_counts *out, vmp_err *err);

/* Waits until pool has at least n ready VMs, up to timeout seconds.
 * VMP_ETIMEDOUT if it does not. */
int vmp_wait_ready(vmpool *vp, const char *pool, long long n, double timeout, vmp_err *err);

/* The configuration in force (owned by the handle). */
const vmp_config *vmp_config_of(const vmpool *vp);

/* Stops the engine (running tasks get up to timeout seconds; < 0: the
 * handle's stop_timeout) and vmpool's own redis-server. The handle may be
 * started again. Idempotent. Returns 0 or VMP_ETIMEDOUT (tasks were cut
 * short; their VMs are reconciled at the next start). */
int vmp_stop(vmpool *vp, double timeout);

/* Stops (if needed) and frees the handle. NULL is a no-op. */
void vmp_close(vmpool *vp);

#endif
