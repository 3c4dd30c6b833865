/*
 * mock_provider: a scriptable, in-memory provider for engine unit tests.
 *
 * Two classes are registered by vmp_mock_register():
 *   "mock"          implements every op of the contract;
 *   "mock_minimal"  implements only vms_in_pool, get_vm, create_vm,
 *                   destroy_vm and vm_ready (every other op is NULL, so the
 *                   wrappers' ENOTSUP and base-class defaults can be tested,
 *                   and the engine's fallbacks, e.g. migration without
 *                   migrate_vm).
 *
 * An instance keeps VMs per pool in memory, never sleeps, is thread-safe,
 * counts and records every call, and can be told to fail, to block, or to
 * answer vm_ready with false/true/an error. Typical cmocka use:
 *
 *   static void test_clone_failure(void **state)
 *   {
 *       vmp_err err = {0};
 *       assert_int_equal(vmp_mock_register(&err), 0);   // idempotent
 *       vmp_provider *p = NULL;                          // cfg: any vmp_config
 *       assert_int_equal(vmp_mock_open(cfg, "mock", &p, &err), 0);
 *       vmp_mock *m = vmp_mock_of(p);
 *
 *       // the next create_vm of VM "vm1" fails once with this code and text
 *       vmp_mock_fail(m, VMP_MOCK_CREATE_VM, NULL, "vm1", 1, VMP_EPROVIDER, "clone failed");
 *       // the next 3 vms_in_pool calls of any pool fail
 *       vmp_mock_fail(m, VMP_MOCK_VMS_IN_POOL, NULL, NULL, 3, VMP_EIO, "inventory down");
 *       // new VMs answer vm_ready false until their 2nd check
 *       vmp_mock_set_ready_after(m, 2);
 *
 *       ... run the code under test (through vmp_provider_* calls) ...
 *
 *       assert_int_equal(vmp_mock_calls(m, VMP_MOCK_CREATE_VM), 1);
 *       assert_int_equal(vmp_mock_calls_for(m, VMP_MOCK_CREATE_VM, "vm1"), 1);
 *       assert_false(vmp_mock_has_vm(m, "pool1", "vm1"));
 *       assert_int_equal(vmp_mock_overlaps(m), 0);   // never two calls on one VM at once
 *       vmp_provider_close(p);
 *   }
 *
 * An instance named anything but "mock" needs `provider_class: mock` in its
 * `:providers:` entry, as with any provider. Instances opened through
 * vmp_provider_set_open are reached with vmp_mock_of(vmp_provider_set_get()).
 *
 * Semantics (close to the dummy provider's, deterministic):
 *   create_vm   adds the VM (VMP_EEXIST when the pool has it already);
 *               get_vm's answer goes to out.
 *   destroy_vm  removes it; 0 when already gone.
 *   get_vm      VMP_ENOENT when missing; hostname = name unless set;
 *               template = the pool's `template:` or the pool name; host
 *               "host1" unless set; ip "192.0.2.<n>"; powerstate PoweredOn.
 *   vm_ready    false (0) for a missing VM; else the VM's readiness, which
 *               starts as the instance's ready default (true) and, with
 *               set_ready_after(n), turns true on the n-th check.
 *   find_least_used_compatible_host  the host set with
 *               vmp_mock_set_least_used_host, else the VM's own host.
 *   migrate_vm_to_host sets the host; migrate_vm does nothing (0).
 *   create_disk / create_snapshot record; revert_snapshot VMP_EFAILED for
 *               an unknown snapshot; tag_vm_user marks the VM tagged.
 * A failure rule fires before the op has any effect.
 */
#ifndef VMP_MOCK_PROVIDER_H
#define VMP_MOCK_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

#include "clock.h"
#include "provider.h"

typedef enum vmp_mock_op {
    VMP_MOCK_VMS_IN_POOL = 0,
    VMP_MOCK_GET_VM,
    VMP_MOCK_CREATE_VM,
    VMP_MOCK_DESTROY_VM,
    VMP_MOCK_VM_READY,
    VMP_MOCK_VM_EXISTS,
    VMP_MOCK_GET_VM_IP_ADDRESS,
    VMP_MOCK_GET_VM_HOST,
    VMP_MOCK_FIND_LEAST_USED_COMPATIBLE_HOST,
    VMP_MOCK_MIGRATE_VM_TO_HOST,
    VMP_MOCK_MIGRATE_VM,
    VMP_MOCK_CREATE_DISK,
    VMP_MOCK_CREATE_SNAPSHOT,
    VMP_MOCK_REVERT_SNAPSHOT,
    VMP_MOCK_CREATE_TEMPLATE_DELTA_DISKS,
    VMP_MOCK_PURGE_UNCONFIGURED_RESOURCES,
    VMP_MOCK_TAG_VM_USER,
    VMP_MOCK_N_OPS
} vmp_mock_op;

typedef struct vmp_mock vmp_mock;

extern const vmp_provider_ops vmp_mock_provider_ops;         /* "mock" */
extern const vmp_provider_ops vmp_mock_minimal_provider_ops; /* "mock_minimal" */

/* Registers both classes (idempotent). */
int vmp_mock_register(vmp_err *err);
/* vmp_provider_open for a mock instance called name. */
int vmp_mock_open(const vmp_config *cfg, const char *name, vmp_provider **out, vmp_err *err);
/* The mock behind an instance, or NULL when p is not a mock instance. */
vmp_mock *vmp_mock_of(vmp_provider *p);
/* The op's name as in the contract ("create_vm"). */
const char *vmp_mock_op_name(vmp_mock_op op);

/* Open failures (global): after `skip` more successful opens, the next
 * `times` opens of a mock instance fail with VMP_EPROVIDER. And the number
 * of mock instances currently open. */
void vmp_mock_fail_open(int skip, int times);
int vmp_mock_live_instances(void);

/* ---- inventory -------------------------------------------------------- */

/* Adds a VM as if the backend had it (e.g. for discovery tests). */
int vmp_mock_add_vm(vmp_mock *m, const char *pool, const char *vm);
/* Removes a VM behind the engine's back. Returns true if it was there. */
bool vmp_mock_remove_vm(vmp_mock *m, const char *pool, const char *vm);
bool vmp_mock_has_vm(vmp_mock *m, const char *pool, const char *vm);
/* VMs in pool (NULL: all pools). */
size_t vmp_mock_vm_count(vmp_mock *m, const char *pool);
/* Per-VM attributes; each returns VMP_ENOENT when the VM is missing. */
int vmp_mock_set_hostname(vmp_mock *m, const char *pool, const char *vm, const char *hostname);
int vmp_mock_set_host(vmp_mock *m, const char *pool, const char *vm, const char *host);
int vmp_mock_set_powerstate(vmp_mock *m, const char *pool, const char *vm, const char *state);
int vmp_mock_set_vm_ready(vmp_mock *m, const char *pool, const char *vm, bool ready);
/* Whether tag_vm_user ran for the VM; disks added (count). */
bool vmp_mock_vm_tagged(vmp_mock *m, const char *pool, const char *vm);
size_t vmp_mock_vm_disks(vmp_mock *m, const char *pool, const char *vm);

/* Readiness of VMs created from now on: ready at once (default true), or
 * not; set_ready_after(n) makes each new VM answer false to its first n-1
 * vm_ready calls and true from the n-th (n <= 1: ready at once). */
void vmp_mock_set_ready_default(vmp_mock *m, bool ready);
void vmp_mock_set_ready_after(vmp_mock *m, int n);
/* The answer of find_least_used_compatible_host (NULL: the VM's host). */
void vmp_mock_set_least_used_host(vmp_mock *m, const char *host);
/* Boot times come from clock (NULL: the system clock). */
void vmp_mock_set_clock(vmp_mock *m, vmp_clock *clock);

/* ---- scripted failures ------------------------------------------------ */

/* The next `times` calls of op (times < 0: every call) whose pool and VM
 * match (NULL matches any) fail with code and msg. Rules are tried in the
 * order added; a used-up rule is dropped. */
int vmp_mock_fail(vmp_mock *m, vmp_mock_op op, const char *pool, const char *vm, int times,
                  int code, const char *msg);
void vmp_mock_clear_failures(vmp_mock *m);

/* ---- blocking --------------------------------------------------------- */

/* While op is blocked, its calls wait (after being counted) until it is
 * unblocked. wait_blocked waits up to timeout_s seconds for at least n
 * calls to be waiting; returns true when they are. */
void vmp_mock_block(vmp_mock *m, vmp_mock_op op);
void vmp_mock_unblock(vmp_mock *m, vmp_mock_op op);
bool vmp_mock_wait_blocked(vmp_mock *m, vmp_mock_op op, int n, double timeout_s);

/* ---- call records ----------------------------------------------------- */

/* Calls of op so far (failed ones included). */
unsigned vmp_mock_calls(vmp_mock *m, vmp_mock_op op);
/* Calls of op naming VM vm (any pool). */
unsigned vmp_mock_calls_for(vmp_mock *m, vmp_mock_op op, const char *vm);
/* Every call in order, one string each: "<op> <pool> <vm>" (op with no VM:
 * "<op> <pool>"; purge: "purge_unconfigured_resources"). Appended to out. */
int vmp_mock_call_log(vmp_mock *m, vmp_strlist *out);
/* How many times a call started on a VM while another call on the same
 * VM (same pool) was still running. */
unsigned vmp_mock_overlaps(vmp_mock *m);
/* Most calls in flight at once, any op. */
unsigned vmp_mock_max_in_flight(vmp_mock *m);
/* Forgets counts, the call log and the overlap figures (VMs stay). */
void vmp_mock_reset_calls(vmp_mock *m);

/* ---- hand-built configurations ----------------------------------------- */

/* A vmp_config made in code, for tests that do without the YAML loader.
 * Only the fields providers read are filled (pools: name, provider,
 * template_path, node; providers: name, provider_class, node; root).
 * Add every pool and provider before opening instances (the arrays move).
 * Free with vmp_mock_config_free, never vmp_config_free. */
vmp_config *vmp_mock_config_new(void);
/* provider and template_path may be NULL (pool without those keys). */
int vmp_mock_config_add_pool(vmp_config *cfg, const char *name, const char *provider,
                             const char *template_path);
/* Adds a :providers: entry. options (a map, may be NULL for an empty entry)
 * becomes the entry's node and is owned by cfg from then on (freed even on
 * failure). provider_class may be NULL (then it defaults to name). */
int vmp_mock_config_add_provider(vmp_config *cfg, const char *name, const char *provider_class,
                                 vmp_cfg_node *options);
void vmp_mock_config_free(vmp_config *cfg);

/* A map of scalars from key/value pairs ending with NULL:
 * vmp_mock_map("createvm_fail_percent", "100", "random_seed", "7", NULL).
 * NULL on allocation failure. */
vmp_cfg_node *vmp_mock_map(const char *key, ...);

#endif
