/*
 * dummy: a provider that keeps its VMs in memory (optionally in a YAML
 * backing file) instead of creating real ones — vmpooler's dummy provider
 * (reference §6), for development, demos, tests and benchmarks.
 *
 * Every op of the contract behaves as vmpooler's dummy does, with its
 * per-op latency and failure knobs (`createvm_max_time`,
 * `createvm_fail_percent`, ...) read from the instance's `:providers:`
 * entry. The backing file (`filename`) is in vmpooler's own format, so the
 * two programs can read each other's files. The instance is thread-safe:
 * one mutex guards the inventory, and a counting semaphore models the fake
 * connection pool (`connection_pool_size`, `connection_pool_timeout`).
 *
 * There are no built-in sleeps: an op waits only as long as a configured
 * `*_max_time` says (absent or 0 = instant). Readiness is "the VM reached
 * RUNNING" (vmpooler's extra 2-second polling and pause are not reproduced).
 * The random source is one PRNG per instance, seeded by the `random_seed`
 * option (in the `:providers:` entry or the provider options) or with
 * vmp_dummy_seed(), so tests are repeatable. docs/writing-providers.md lists
 * every option and where vmpool differs from vmpooler.
 */
#ifndef VMP_DUMMY_H
#define VMP_DUMMY_H

#include <stddef.h>
#include <stdint.h>

#include "provider.h"

/* The class table, registered as "dummy". */
extern const vmp_provider_ops vmp_dummy_provider_ops;

/* Registers the dummy class; a class already registered under that name is
 * kept (no error). Referencing this function also makes sure the dummy
 * provider is linked into a program built against the static library. */
int vmp_dummy_register(vmp_err *err);

/* The helpers below take an instance opened with the dummy class (p from
 * vmp_provider_open); they return VMP_EINVAL for any other instance. */

/* Re-seeds the instance's random source. */
int vmp_dummy_seed(vmp_provider *p, uint64_t seed);

/* Number of VMs the instance holds, all pools together (0 for a non-dummy
 * instance). */
size_t vmp_dummy_vm_count(vmp_provider *p);

/* One field of a VM record as text: name, hostname, domain, vm_template,
 * template, poolname, ready ("true"/"false"), boottime (Ruby time format),
 * powerstate, vm_host, dummy_state, snapshots and disks (comma-separated).
 * VMP_ENOENT when the VM is not in pool, VMP_EINVAL for an unknown field. */
int vmp_dummy_vm_field(vmp_provider *p, const char *pool, const char *vm, const char *field,
                       char *buf, size_t len, vmp_err *err);

#endif
