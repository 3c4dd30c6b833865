/*
 * provider: the contract between the engine and the backends that really
 * create and destroy VMs (reference §5) — the C form of vmpooler's base
 * provider class.
 *
 * A provider *class* is an ops table registered by name (vmp_provider_register).
 * A provider *instance* (vmp_provider) is made from one `:providers:` entry:
 * its class is the entry's `provider_class`, defaulting to the entry's name,
 * matched case-insensitively. One instance serves every pool whose
 * `provider:` names it. An instance is shared by all worker threads, so every
 * op must be thread-safe; a backend keeps its own connection pool inside.
 *
 * Every op takes the backend's `self` (made by `open`), then the pool name,
 * then the VM name, then the rest, and an error out-parameter; it returns 0
 * or a negative VMP_E* code. Where vmpooler's Ruby method returns false
 * ("did not work") the op returns VMP_EFAILED; where it raises, another
 * negative code with the backend's own text in err. A NULL op means "not
 * supported": the vmp_provider_* wrappers turn it into VMP_ENOTSUP with
 * "<provider> does not implement <op>", and supply the base class defaults
 * (vm_exists from get_vm, tag_vm_user true, create_template_delta_disks no-op).
 */
#ifndef VMP_PROVIDER_H
#define VMP_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "config_node.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define VMP_PROVIDER_ABI 1

#define VMP_NAME_MAX 256
#define VMP_HOST_MAX 256
#define VMP_IP_MAX 64

/* What get_vm reports (reference §5.2). Empty strings mean unknown. */
typedef struct vmp_vm_info {
    char name[VMP_NAME_MAX];
    char hostname[VMP_HOST_MAX];     /* guest-reported host name */
    char template_path[VMP_NAME_MAX];/* template (vSphere: path), or pool name */
    char poolname[VMP_NAME_MAX];
    double boottime;                 /* seconds since the epoch, 0 = unknown */
    char powerstate[32];             /* "PoweredOn", "PoweredOff" (vSphere: "poweredOn") */
    char host[VMP_HOST_MAX];         /* physical host running it */
    char ip[VMP_IP_MAX];
    vmp_strlist snapshots;           /* names (dummy); freed by vmp_vm_info_clear */
} vmp_vm_info;

void vmp_vm_info_clear(vmp_vm_info *info);

typedef struct vmp_provider vmp_provider;

typedef struct vmp_provider_ops {
    unsigned abi;     /* VMP_PROVIDER_ABI; always first */
    const char *name; /* class name, e.g. "dummy", "vsphere" */

    /* Makes the backend state for instance p (read its options with the
     * helpers below). *self must be NULL on entry. */
    int (*open)(vmp_provider *p, void **self, vmp_err *err);
    void (*close)(void *self);

    /* Names of the VMs the backend holds for pool (unknown pool: empty). */
    int (*vms_in_pool)(void *self, const char *pool, vmp_strlist *out, vmp_err *err);
    /* VMP_ENOENT when the VM does not exist. */
    int (*get_vm)(void *self, const char *pool, const char *vm, vmp_vm_info *out, vmp_err *err);
    /* Creates and powers on vm; out (may be NULL) receives get_vm's answer. */
    int (*create_vm)(void *self, const char *pool, const char *vm, vmp_vm_info *out,
                     vmp_err *err);
    /* 0 also when the VM is already gone (vmpool's contract; see docs). */
    int (*destroy_vm)(void *self, const char *pool, const char *vm, vmp_err *err);
    /* Sets *ready; an error return means "not ready" with a reason. */
    int (*vm_ready)(void *self, const char *pool, const char *vm, bool *ready, vmp_err *err);
    int (*vm_exists)(void *self, const char *pool, const char *vm, bool *exists, vmp_err *err);
    int (*get_vm_ip_address)(void *self, const char *pool, const char *vm, char *ip, size_t len,
                             vmp_err *err);
    int (*get_vm_host)(void *self, const char *pool, const char *vm, char *host, size_t len,
                       vmp_err *err);
    int (*find_least_used_compatible_host)(void *self, const char *pool, const char *vm,
                                           char *host, size_t len, vmp_err *err);
    int (*migrate_vm_to_host)(void *self, const char *pool, const char *vm, const char *host,
                              vmp_err *err);
    /* The whole migrate-at-checkout decision (vmpooler 0.1.0+); may be NULL,
     * then the engine uses get_vm_host / find_least_used / migrate_vm_to_host. */
    int (*migrate_vm)(void *self, const char *pool, const char *vm, vmp_err *err);
    int (*create_disk)(void *self, const char *pool, const char *vm, int size_gb, vmp_err *err);
    int (*create_snapshot)(void *self, const char *pool, const char *vm, const char *snapshot,
                           vmp_err *err);
    int (*revert_snapshot)(void *self, const char *pool, const char *vm, const char *snapshot,
                           vmp_err *err);
    int (*create_template_delta_disks)(void *self, const char *pool, vmp_err *err);
    int (*purge_unconfigured_resources)(void *self, const vmp_strlist *allowlist, vmp_err *err);
    int (*tag_vm_user)(void *self, const char *pool, const char *vm, vmp_err *err);
} vmp_provider_ops;

/* ---- class registry ----------------------------------------------------- */

/* Registers a provider class. Rejects (VMP_EINVAL) an ops table whose abi is
 * not VMP_PROVIDER_ABI or that lacks a name, and (VMP_EEXIST) a name already
 * registered (case-insensitive). The table must outlive the registry.
 * Thread-safe. */
int vmp_provider_register(const vmp_provider_ops *ops, vmp_err *err);
/* Removes a class (Lua providers re-registering on reload). */
int vmp_provider_unregister(const char *name);
/* The class registered under name (case-insensitive), or NULL. */
const vmp_provider_ops *vmp_provider_class_find(const char *name);
/* Appends the registered class names to out (may be NULL to only count);
 * returns how many there are. */
size_t vmp_provider_class_names(vmp_strlist *out);
/* Registers the built-in classes (dummy, and vsphere when compiled in).
 * Idempotent. The provider module does not depend on the providers: it
 * finds vmp_dummy_provider_ops / vmp_vsphere_provider_ops through weak
 * references, so a class is built in when its object is part of the link
 * (always with libvmpool.so; with a static archive, something in the
 * program must reference the ops table, e.g. vmp_dummy_register()). */
int vmp_provider_register_builtins(vmp_err *err);

/* ---- instances ---------------------------------------------------------- */

/* Makes instance `name` from cfg's `:providers:` entry of that name (an
 * absent entry is treated as empty, as vmpooler does). options is the
 * vmpooler `provider_options` hash (may be NULL; e.g. the dummy's
 * initial_state); metrics may be NULL. cfg, options and metrics must outlive
 * the instance. *out must be NULL on entry. */
int vmp_provider_open(const vmp_config *cfg, const char *name, const vmp_cfg_node *options,
                      vmp_metrics *metrics, vmp_provider **out, vmp_err *err);
void vmp_provider_close(vmp_provider *p);
/* Points a live instance at a newer configuration (a reload that keeps the
 * instance because its `:providers:` entry did not change), so pool_config,
 * provided_pools and global_config see the new pools. The instance's own
 * entry (vmp_provider_config) stays the one it was opened with, so the
 * configuration it was opened with must outlive it. The caller makes sure
 * cfg outlives every op that may still be reading it. */
void vmp_provider_rebind(vmp_provider *p, const vmp_config *cfg);

/* A set of instances: one for each provider named by a pool or listed under
 * `:providers:`. */
typedef struct vmp_provider_set vmp_provider_set;
int vmp_provider_set_open(const vmp_config *cfg, const vmp_cfg_node *options,
                          vmp_metrics *metrics, vmp_provider_set **out, vmp_err *err);
void vmp_provider_set_close(vmp_provider_set *set);
/* The instance serving pool (by its `provider:`), or NULL. */
vmp_provider *vmp_provider_set_for_pool(const vmp_provider_set *set, const char *pool);
vmp_provider *vmp_provider_set_get(const vmp_provider_set *set, const char *name);
size_t vmp_provider_set_len(const vmp_provider_set *set);
vmp_provider *vmp_provider_set_at(const vmp_provider_set *set, size_t i);

/* ---- helpers offered to providers (reference §5.1) ---------------------- */

const char *vmp_provider_name(const vmp_provider *p);       /* instance name */
const char *vmp_provider_class_name(const vmp_provider *p); /* ops->name */
const vmp_provider_ops *vmp_provider_ops_of(const vmp_provider *p);
void *vmp_provider_self(const vmp_provider *p);
/* This instance's `:providers:` entry (an empty map when absent). */
const vmp_cfg_node *vmp_provider_config(const vmp_provider *p);
const vmp_cfg_node *vmp_provider_options(const vmp_provider *p); /* may be NULL */
const vmp_config *vmp_provider_global_config(const vmp_provider *p);
/* The pool's configuration, or NULL when no such pool. */
const vmp_pool_cfg *vmp_provider_pool_config(const vmp_provider *p, const char *pool);
/* Appends the names of the pools this instance serves. */
int vmp_provider_provided_pools(const vmp_provider *p, vmp_strlist *out);
vmp_metrics *vmp_provider_metrics(const vmp_provider *p);
/* Logs with subsystem "provider.<name>". */
void vmp_provider_log(const vmp_provider *p, vmp_log_level level, const char *pool,
                      const char *vm, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- calls (what the engine uses) ---------------------------------------
 * Each checks its arguments, turns a NULL op into VMP_ENOTSUP, and makes sure
 * err carries a message on failure. */
/* Appends the names to out; on failure out is left as it was. */
int vmp_provider_vms_in_pool(vmp_provider *p, const char *pool, vmp_strlist *out, vmp_err *err);
int vmp_provider_get_vm(vmp_provider *p, const char *pool, const char *vm, vmp_vm_info *out,
                        vmp_err *err);
int vmp_provider_create_vm(vmp_provider *p, const char *pool, const char *vm, vmp_vm_info *out,
                           vmp_err *err);
int vmp_provider_destroy_vm(vmp_provider *p, const char *pool, const char *vm, vmp_err *err);
int vmp_provider_vm_ready(vmp_provider *p, const char *pool, const char *vm, bool *ready,
                          vmp_err *err);
int vmp_provider_vm_exists(vmp_provider *p, const char *pool, const char *vm, bool *exists,
                           vmp_err *err);
int vmp_provider_get_vm_ip_address(vmp_provider *p, const char *pool, const char *vm, char *ip,
                                   size_t len, vmp_err *err);
int vmp_provider_get_vm_host(vmp_provider *p, const char *pool, const char *vm, char *host,
                             size_t len, vmp_err *err);
int vmp_provider_find_least_used_compatible_host(vmp_provider *p, const char *pool,
                                                 const char *vm, char *host, size_t len,
                                                 vmp_err *err);
int vmp_provider_migrate_vm_to_host(vmp_provider *p, const char *pool, const char *vm,
                                    const char *host, vmp_err *err);
int vmp_provider_migrate_vm(vmp_provider *p, const char *pool, const char *vm, vmp_err *err);
int vmp_provider_create_disk(vmp_provider *p, const char *pool, const char *vm, int size_gb,
                             vmp_err *err);
int vmp_provider_create_snapshot(vmp_provider *p, const char *pool, const char *vm,
                                 const char *snapshot, vmp_err *err);
int vmp_provider_revert_snapshot(vmp_provider *p, const char *pool, const char *vm,
                                 const char *snapshot, vmp_err *err);
int vmp_provider_create_template_delta_disks(vmp_provider *p, const char *pool, vmp_err *err);
int vmp_provider_purge_unconfigured_resources(vmp_provider *p, const vmp_strlist *allowlist,
                                              vmp_err *err);
int vmp_provider_tag_vm_user(vmp_provider *p, const char *pool, const char *vm, vmp_err *err);

#endif
