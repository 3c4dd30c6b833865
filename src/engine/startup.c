/*
 * startup: what the manager does before its first pass (reference §4.1):
 * leases, clone counters and the migration set, publishing the pools,
 * adopting runtime overrides, and the optional purge of unconfigured
 * resources. The reconcile of Redis with each provider's inventory is the
 * first pass of each pool, which (unlike later passes) drops at once the
 * pending VMs its provider does not have (a clone cut short by a crash).
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "log.h"

void eng_task_purge(vmp_engine *e, eng_task *t, vmp_store *st)
{
    const vmp_provider_cfg *pc = vmp_config_provider(t->gen->cfg, t->prov->name);
    vmp_strlist empty = VMP_STRLIST_INIT;
    vmp_err err = {0};
    vmp_log(VMP_LOG_INFO, ENG_SUBSYS, "purging resources of provider %s not used by any pool",
            t->prov->name);
    int rc = vmp_provider_purge_unconfigured_resources(
        t->prov->p, pc ? &pc->resources_allowlist : &empty, &err);
    if (rc != 0 && rc != VMP_ENOTSUP)
        vmp_log(VMP_LOG_WARN, ENG_SUBSYS, "purge of provider %s failed: %s", t->prov->name,
                err.msg);
}

/* Adopts the template and clone-target overrides found in Redis, without
 * draining (the pools were drained when they were set). */
static void adopt_overrides(vmp_engine *e, vmp_store *st)
{
    vmp_strlist tmpl = VMP_STRLIST_INIT, ct = VMP_STRLIST_INIT;
    vmp_err err = {0};
    if (vmp_store_override_all(st, VMP_OVERRIDE_TEMPLATE, &tmpl, &err) != 0 ||
        vmp_store_override_all(st, VMP_OVERRIDE_CLONE_TARGET, &ct, &err) != 0)
    {
        vmp_log(VMP_LOG_WARN, ENG_SUBSYS, "reading overrides: %s", err.msg);
        goto out;
    }
    bool any = false;
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->npools; i++) {
        eng_pool *p = e->pools[i];
        if (!p->configured)
            continue;
        const char *t = vmp_store_kv_get(&tmpl, p->name);
        const char *c = vmp_store_kv_get(&ct, p->name);
        const char *cfg_t = p->cfg ? p->cfg->template_path : NULL;
        const char *cfg_c = p->cfg ? p->cfg->clone_target : NULL;
        if (t && (!cfg_t || strcmp(t, cfg_t) != 0)) {
            free(p->tmpl);
            p->tmpl = vmp_strdup(t);
            any = true;
            vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, NULL, "adopting template override %s", t);
        }
        if (c && (!cfg_c || strcmp(c, cfg_c) != 0)) {
            free(p->clone_target);
            p->clone_target = vmp_strdup(c);
            any = true;
            vmp_log_vm(VMP_LOG_INFO, ENG_SUBSYS, p->name, NULL, "adopting clone target override %s",
                       c);
        }
    }
    pthread_mutex_unlock(&e->lock);
    if (any)
        eng_overrides_apply(e, &err);
out:
    vmp_strlist_clear(&tmpl);
    vmp_strlist_clear(&ct);
}

int eng_startup(vmp_engine *e, vmp_err *err)
{
    vmp_store *st = e->store;
    int rc = vmp_store_ping(st, err);
    if (rc != 0)
        return rc;
    vmp_log(VMP_LOG_INFO, ENG_SUBSYS, "starting the pool manager");

    /* Heartbeat first: it rewrites the clone counters as the sum of the
     * live managers' counts (ours is 0), forgets managers of this host that
     * died (their leases are freed), and, when no other manager is alive,
     * drops migration entries that no manager owns. Then the leases. */
    eng_managers_sync(e, st, VMP_STORE_BEAT_RESET_LEGACY);
    eng_leases_renew(e, st);

    pthread_mutex_lock(&e->lock);
    const vmp_config *cfg = e->opts.config;
    pthread_mutex_unlock(&e->lock);
    rc = eng_publish_pools(e, st, cfg, err);
    if (rc != 0)
        return rc;
    adopt_overrides(e, st);

    /* purge of unconfigured resources (global or per provider) */
    pthread_mutex_lock(&e->lock);
    for (eng_prov *pv = e->provs; pv; pv = pv->next) {
        if (pv->retired)
            continue;
        const vmp_provider_cfg *pc = vmp_config_provider(e->cur->cfg, pv->name);
        bool on = cfg->global.purge_unconfigured_resources;
        if (pc && pc->purge_unconfigured_resources != VMP_UNSET)
            on = pc->purge_unconfigured_resources == 1;
        if (!on)
            continue;
        eng_task *t = eng_task_new(e, ENG_T_PURGE, NULL, NULL, pv);
        if (t)
            eng_task_push(e, t);
    }
    for (size_t i = 0; i < e->npools; i++) {
        e->pools[i]->wake = true;
        e->pools[i]->next_due = 0;
    }
    pthread_mutex_unlock(&e->lock);
    return 0;
}
