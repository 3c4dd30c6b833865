/*
 * vsphere_priv: what the files of the vSphere provider share — the
 * instance, the frame every op runs in, the inventory caches and the
 * helpers built on them. Internal to providers/vsphere; the `vsp_` names
 * are not part of any public interface.
 *
 *   vsphere.c         instance (open/close), caches, op frame, class table
 *   vsphere_vm.c      inventory, VM state, readiness, destroy, disks,
 *                     snapshots, purge of unconfigured folders
 *   vsphere_create.c  create_vm (placement, folders, network, specs) and
 *                     template delta disks
 *   vsphere_hosts.c   host facts, least used host, round-robin host lists,
 *                     migration
 */
#ifndef VMP_VSPHERE_PRIV_H
#define VMP_VSPHERE_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "hostsel.h"
#include "sessions.h"
#include "vim.h"
#include "vsphere.h"
#include "xml.h"

/* A remembered inventory lookup (path -> object). */
typedef struct vsp_path_entry {
    char *path;
    vmp_moref ref;
    double at; /* monotonic seconds */
} vsp_path_entry;

/* A remembered object name (host id -> name). */
typedef struct vsp_name_entry {
    char id[VMP_MOREF_VALUE_MAX];
    char name[VMP_HOST_MAX];
    double at;
} vsp_name_entry;

/* One cluster's round-robin host lists (manage_host_selection). */
typedef struct vsp_rr_entry {
    char *key; /* "<datacenter>_<cluster>" */
    vmp_hostsel_rr rr;
    vmp_host_facts *facts; /* as of the last refresh, for name -> id */
    size_t n;
} vsp_rr_entry;

typedef struct vsp_instance {
    vmp_provider *p;
    char *url, *username, *datacenter, *ready_check;
    int ready_port;
    double ready_timeout, task_timeout, cache_ttl;
    int pool_size;
    vmp_soap_stats *stats;
    vmp_sessions *sessions;

    pthread_mutex_t mu; /* the caches below */
    char *first_dc;
    vsp_path_entry *paths;
    size_t n_paths, cap_paths;
    vsp_name_entry *names;
    size_t n_names, cap_names;

    pthread_mutex_t rr_mu; /* round-robin host lists; held across a refresh */
    vsp_rr_entry *rrs;
    size_t n_rrs;
} vsp_instance;

/* What every op works with: the pool's configuration, a borrowed session,
 * the datacenter's inventory path. */
typedef struct vsp_op {
    vsp_instance *v;
    const char *pool, *vm;
    const vmp_pool_cfg *pc;
    vmp_soap *s;
    char dc[VMP_NAME_MAX];
    bool cached; /* a lookup was answered from the cache (it may be stale) */
} vsp_op;

/* The VM properties get_vm reports (NULL-terminated). */
extern const char *const vsp_vm_paths[];

/* ---- helpers (vsphere.c) ------------------------------------------------ */

const vmp_global_cfg *vsp_global(const vsp_instance *v);
/* A key of the pool's mapping, else of the provider's entry, else def. */
const char *vsp_pool_or_provider_str(const vsp_instance *v, const vmp_pool_cfg *pc, const char *key,
                                     const char *def);
long long vsp_pool_or_provider_int(const vsp_instance *v, const vmp_pool_cfg *pc, const char *key,
                                   long long def);
/* Logs through the provider's logger ("provider.<name>"). */
void vsp_log(const vsp_instance *v, vmp_log_level lvl, const char *pool, const char *vm,
             const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int vsp_oom(vmp_err *err);

/* Forgets every remembered lookup and name. */
void vsp_forget_inventory(vsp_instance *v);
/* FindByInventoryPath, answered from the cache while fresh. */
int vsp_lookup(vsp_op *o, const char *path, vmp_moref *out, vmp_err *err);
/* The `name` of an object (hosts), cached by id. */
int vsp_object_name(vsp_op *o, const vmp_moref *ref, char *out, size_t len, vmp_err *err);

/* Starts an op on pool (VMP_ENOENT when not configured): borrows a session
 * and resolves the datacenter. Always pair with vsp_op_end, which returns
 * the session and, after a failure that may come from a stale cached
 * lookup, drops the caches; it returns rc. */
int vsp_op_begin(vsp_instance *v, const char *pool, const char *vm, vsp_op *o, vmp_err *err);
int vsp_op_end(vsp_op *o, int rc);

/* "<dc>/vm/<folder>" (the datacenter's VM root when the pool has none). */
void vsp_folder_path(const vsp_op *o, char *buf, size_t len);
/* The pool's VM o->vm; VMP_ENOENT when it does not exist. */
int vsp_find_vm(vsp_op *o, vmp_moref *out, vmp_err *err);
/* Reads paths of one VM (VMP_ENOENT when it is gone). */
int vsp_read_vm(vsp_op *o, const vmp_moref *vm, const char *const *paths, vmp_vim_objects **r,
                vmp_err *err);
/* Fills a vmp_vm_info from a read of vsp_vm_paths. */
int vsp_fill_info(vsp_op *o, const vmp_vim_objects *r, vmp_vm_info *out, vmp_err *err);
/* Powers a VM off when it is on, then destroys it (gone = success). */
int vsp_destroy_ref(vsp_op *o, const vmp_moref *vm, const char *name, vmp_err *err);

/* ---- hosts (vsphere_hosts.c) -------------------------------------------- */

/* The facts of the hosts of a cluster / compute resource (one collection).
 * *out is a new array. */
int vsp_host_facts(vsp_op *o, const vmp_moref *cluster, vmp_host_facts **out, size_t *n,
                   vmp_err *err);
/* `utilization_limit` (percent, default 90). */
double vsp_utilization_limit(const vsp_instance *v);
/* The next host of the cluster's round-robin list (of CPU model `model`
 * when non-NULL), refreshed after host_selection_max_age. */
int vsp_next_host(vsp_op *o, const vmp_moref *cluster, const char *cluster_name, const char *model,
                  char *name, size_t len, vmp_moref *out_ref, vmp_err *err);

/* ---- the ops ----------------------------------------------------------- */

int vsp_open(vmp_provider *p, void **self, vmp_err *err);
void vsp_close(void *self);
int vsp_vms_in_pool(void *self, const char *pool, vmp_strlist *out, vmp_err *err);
int vsp_get_vm(void *self, const char *pool, const char *vm, vmp_vm_info *out, vmp_err *err);
int vsp_vm_exists(void *self, const char *pool, const char *vm, bool *exists, vmp_err *err);
int vsp_get_vm_ip_address(void *self, const char *pool, const char *vm, char *ip, size_t len,
                          vmp_err *err);
int vsp_get_vm_host(void *self, const char *pool, const char *vm, char *host, size_t len,
                    vmp_err *err);
int vsp_vm_ready(void *self, const char *pool, const char *vm, bool *ready, vmp_err *err);
int vsp_create_vm(void *self, const char *pool, const char *vm, vmp_vm_info *out, vmp_err *err);
int vsp_destroy_vm(void *self, const char *pool, const char *vm, vmp_err *err);
int vsp_create_disk(void *self, const char *pool, const char *vm, int size_gb, vmp_err *err);
int vsp_create_snapshot(void *self, const char *pool, const char *vm, const char *snapshot,
                        vmp_err *err);
int vsp_revert_snapshot(void *self, const char *pool, const char *vm, const char *snapshot,
                        vmp_err *err);
int vsp_find_least_used_compatible_host(void *self, const char *pool, const char *vm, char *host,
                                        size_t len, vmp_err *err);
int vsp_migrate_vm_to_host(void *self, const char *pool, const char *vm, const char *host,
                           vmp_err *err);
int vsp_create_template_delta_disks(void *self, const char *pool, vmp_err *err);
int vsp_purge_unconfigured_resources(void *self, const vmp_strlist *allowlist, vmp_err *err);

#endif
