/*
 * vsphere: the vSphere provider — every op of the provider contract
 * (provider.h) carried out on a vCenter through its vim25 SOAP API, with
 * vmpooler's behaviour and configuration keys (reference §7): clones from a
 * template into the pool's folder (linked clones, host placement,
 * datastore, network), power operations, destroy, snapshots, extra disks,
 * readiness checks, least-used host selection and migration by relocation,
 * template delta disks and purging of unconfigured folders.
 *
 * An instance serves every pool whose `provider:` names it and is shared by
 * all worker threads: each op borrows a logged-in session from the
 * instance's session pool (sessions.h). Objects that configuration names
 * (datacenter, folders, templates, clusters, datastores, networks) are
 * looked up by inventory path and remembered for `inventory_cache_ttl`
 * seconds, so a steady-state op costs only the round trips it really needs;
 * one inventory pass of a pool (vms_in_pool) is a single property
 * collection.
 *
 * docs/vsphere.md describes the configuration keys, the behaviour and where
 * it differs from vmpooler.
 */
#ifndef VMP_VSPHERE_H
#define VMP_VSPHERE_H

#include "provider.h"
#include "soap.h"

/* The class table, registered as "vsphere". */
extern const vmp_provider_ops vmp_vsphere_provider_ops;

/* Registers the vsphere class; an existing registration of that name is
 * kept. Referencing it also links the provider into a static program. */
int vmp_vsphere_register(vmp_err *err);

/* The helpers below take an instance opened with the vsphere class and
 * return VMP_EINVAL for any other. */

/* The SOAP counters of all the instance's sessions together (round trips,
 * bytes sent and received, logins, re-logins, faults). */
int vmp_vsphere_counters(vmp_provider *p, vmp_soap_counters *out);
int vmp_vsphere_counters_reset(vmp_provider *p);
/* Sessions made so far (logged in or not) and the pool's size. */
int vmp_vsphere_sessions(vmp_provider *p, int *created, int *size);
/* Forgets every remembered inventory lookup (tests, after changing the
 * inventory behind the provider's back). */
int vmp_vsphere_forget_inventory(vmp_provider *p);

#endif
