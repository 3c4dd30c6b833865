/*
 * migrate: evaluating a VM just checked out (reference §4.8, T21).
 *
 * Every checkout puts the VM in the pool's migrating set. The pass hands
 * each one (still in the provider's inventory) to this task, which takes it
 * out of the set, reports the checkout (event, lifetime hook) and then:
 *  - when the provider has migrate_vm (vmpooler 0.1.0+), calls it: the
 *    provider makes the whole decision;
 *  - else, with migration_limit > 0, the 2017 path: the VM's host, the
 *    least used compatible host (or the choose_host hook's pick), and a
 *    migrate_vm_to_host when they differ, limited to migration_limit at once
 *    across managers (the global migration set), recording migration_time
 *    and checkout_to_migration;
 *  - else records the VM's host only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "log.h"

static void lifetime_hook(vmp_engine *e, eng_task *t, vmp_store *st)
{
    if (!e->has_hooks || !e->hooks.lifetime)
        return;
    const char *pool = t->pool->name, *vm = t->vm->name;
    vmp_strlist kv = VMP_STRLIST_INIT;
    vmp_err err = {0};
    if (vmp_store_vm_getall(st, vm, &kv, &err) != 0)
        goto out;
    long long in = -1, hours = -1;
    const char *lf = vmp_store_kv_get(&kv, "lifetime");
    if (lf)
        vmp_parse_long(lf, &in);
    if (!eng_hook_lifetime(e, pool, vm, in, vmp_store_kv_get(&kv, "token:user"), &hours))
        goto out;
    if (hours > 0 && hours != in) {
        if (vmp_store_vm_lifetime_set(st, vm, hours, &err) == 0) {
            vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, pool, vm, "lifetime set to %lld hours by policy",
                       hours);
            pthread_mutex_lock(&e->lock);
            t->vm->deadline = 0; /* re-evaluate at the next running check */
            t->vm->check_t = 0;
            pthread_mutex_unlock(&e->lock);
        }
    }
out:
    vmp_strlist_clear(&kv);
}

void eng_task_migrate(vmp_engine *e, eng_task *t, vmp_store *st)
{
    eng_pool *p = t->pool;
    const char *pool = p->name, *vm = t->vm->name;
    vmp_err err = {0};
    if (!t->prov)
        return;
    int rc = vmp_store_remove(st, pool, vm, VMP_VM_MIGRATING, &err);
    if (rc != 0)
        return; /* already evaluated, or Redis trouble: the next pass retries */
    eng_event(e, VMP_ENGINE_EV_CHECKOUT, pool, vm, 0, NULL);
    lifetime_hook(e, t, st);

    vmp_provider *pr = t->prov->p;
    const vmp_provider_ops *ops = vmp_provider_ops_of(pr);
    if (ops && ops->migrate_vm) {
        vmp_err perr = {0};
        if (vmp_provider_migrate_vm(pr, pool, vm, &perr) != 0)
            vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, pool, vm, "migration failed: %s", perr.msg);
        return;
    }

    char host[VMP_HOST_MAX] = "";
    vmp_err herr = {0};
    rc = vmp_provider_get_vm_host(pr, pool, vm, host, sizeof host, &herr);
    if (rc == VMP_ENOTSUP)
        return;
    if (rc != 0 || !host[0]) {
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, pool, vm, "cannot find the VM's host: %s",
                   rc ? herr.msg : "no host");
        return;
    }
    pthread_mutex_lock(&e->lock);
    long long limit = e->migration_limit;
    pthread_mutex_unlock(&e->lock);
    if (limit <= 0) {
        vmp_store_vm_set(st, vm, "host", host, &err);
        vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, pool, vm, "running on %s", host);
        return;
    }
    bool taken = false;
    if (vmp_store_migration_claim(st, vm, e->owner, limit, &taken, &err) != 0)
        return;
    if (!taken) {
        vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, pool, vm,
                   "not migrated: migration limit (%lld) reached; running on %s", limit, host);
        vmp_store_vm_set(st, vm, "host", host, &err);
        return;
    }
    char proposed[VMP_HOST_MAX] = "", target[VMP_HOST_MAX] = "";
    vmp_err perr = {0};
    rc = vmp_provider_find_least_used_compatible_host(pr, pool, vm, proposed, sizeof proposed,
                                                      &perr);
    if (rc != 0 || !proposed[0]) {
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, pool, vm, "no migration target: %s",
                   rc ? perr.msg : "no host proposed");
        goto done;
    }
    if (!eng_hook_choose_host(e, pool, vm, host, proposed, target, sizeof target))
        vmp_strlcpy(target, proposed, sizeof target);
    if (strcmp(target, host) == 0) {
        vmp_store_vm_set(st, vm, "host", host, &err);
        vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, pool, vm, "no migration required from %s", host);
        goto done;
    }
    double t0 = vmp_monotonic();
    rc = vmp_provider_migrate_vm_to_host(pr, pool, vm, target, &perr);
    double secs = vmp_monotonic() - t0;
    if (rc != 0) {
        vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, pool, vm, "migration from %s to %s failed: %s", host,
                   target, perr.msg);
        goto done;
    }
    vmp_metrics_timing(e->metrics, secs, "migrate.%s", pool);
    vmp_metrics_increment(e->metrics, "migrate_from.%s", host);
    vmp_metrics_increment(e->metrics, "migrate_to.%s", target);
    char buf[32];
    vmp_duration_format(secs, buf, sizeof buf);
    vmp_store_vm_set(st, vm, "migration_time", buf, &err);
    double checkout = 0;
    bool found = false;
    if (vmp_store_vm_get_time(st, vm, "checkout", &checkout, &found, &err) == 0 && found) {
        vmp_duration_format(eng_now(e) - checkout, buf, sizeof buf);
        vmp_store_vm_set(st, vm, "checkout_to_migration", buf, &err);
    }
    vmp_store_vm_set(st, vm, "host", target, &err);
    vmp_store_vm_set(st, vm, "migrated", "true", &err);
    vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, pool, vm, "migrated from %s to %s in %.2f seconds", host,
               target, secs);
done:
    vmp_store_migration_release(st, vm, &err);
}
