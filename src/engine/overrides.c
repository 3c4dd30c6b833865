/*
 * overrides: making runtime template and clone-target overrides visible to
 * the providers.
 *
 * vmpooler changes the template of a pool in its in-memory configuration,
 * which its providers share. vmpool's configuration is immutable, so when an
 * override is in force the engine builds its own copy of the caller's
 * configuration with the overridden values and installs it as a new
 * generation: providers, rebound to it, find the template in force through
 * vmp_provider_pool_config(). Without overrides the caller's configuration
 * is used as is.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "log.h"

typedef struct ovr {
    char *pool, *tmpl, *clone_target;
} ovr;

static int set_key(vmp_cfg_node *map, const char *key, const char *value)
{
    vmp_cfg_node *n = vmp_cfg_scalar_new(value);
    if (!n)
        return VMP_ENOMEM;
    return vmp_cfg_map_set(map, key, n);
}

/* A copy of base with the overrides applied, or NULL (logged). */
static vmp_config *derive(const vmp_config *base, const ovr *v, size_t n, vmp_err *err)
{
    vmp_config *out = NULL;
    vmp_strlist classes = VMP_STRLIST_INIT;
    const char **cls = NULL;
    vmp_cfg_node *root = vmp_cfg_clone(base->root);
    if (!root) {
        vmp_err_set(err, VMP_ENOMEM, "out of memory");
        goto out;
    }
    vmp_cfg_node *pools = vmp_cfg_get_mut(root, "pools");
    if (vmp_cfg_kind_of(pools) != VMP_CFG_SEQ) {
        vmp_err_set(err, VMP_ENOTSUP, "the configuration's pools are not a list in its tree");
        vmp_cfg_free(root);
        goto out;
    }
    for (size_t i = 0; i < vmp_cfg_len(pools); i++) {
        vmp_cfg_node *pm = vmp_cfg_at_mut(pools, i);
        const char *name = vmp_cfg_get_str(pm, "name", NULL);
        for (size_t k = 0; name && k < n; k++) {
            if (strcmp(v[k].pool, name) != 0)
                continue;
            if ((v[k].tmpl && set_key(pm, "template", v[k].tmpl) != 0) ||
                (v[k].clone_target && set_key(pm, "clone_target", v[k].clone_target) != 0))
            {
                vmp_err_set(err, VMP_ENOMEM, "out of memory");
                vmp_cfg_free(root);
                goto out;
            }
        }
    }
    vmp_provider_class_names(&classes);
    cls = calloc(classes.n + 1, sizeof *cls);
    if (!cls) {
        vmp_err_set(err, VMP_ENOMEM, "out of memory");
        vmp_cfg_free(root);
        goto out;
    }
    for (size_t i = 0; i < classes.n; i++)
        cls[i] = classes.v[i];
    vmp_config_opts o = {.no_env = true, .provider_classes = cls};
    if (vmp_config_from_tree(root, base->path, &o, &out, NULL, err) != 0) {
        out = NULL;
        goto out;
    }
    if (out->n_pools != base->n_pools) {
        vmp_err_set(err, VMP_ENOTSUP, "the configuration cannot be rebuilt from its tree");
        vmp_config_free(out);
        out = NULL;
    }
out:
    free(cls);
    vmp_strlist_clear(&classes);
    return out;
}

/* Installs the caller's configuration, or a copy with the overrides in
 * force (e->cfg_lock held). */
int eng_overrides_apply_locked(vmp_engine *e, bool force, vmp_err *err)
{
    int rc = 0;
    ovr *v = NULL;
    size_t n = 0;
    pthread_mutex_lock(&e->lock);
    const vmp_config *base = e->opts.config;
    v = calloc(e->npools ? e->npools : 1, sizeof *v);
    for (size_t i = 0; v && i < e->npools; i++) {
        eng_pool *p = e->pools[i];
        if (!p->configured || (!p->tmpl && !p->clone_target))
            continue;
        v[n].pool = vmp_strdup(p->name);
        v[n].tmpl = vmp_strdup(p->tmpl);
        v[n].clone_target = vmp_strdup(p->clone_target);
        n++;
    }
    bool on_base = !e->cur->owned && e->cur->cfg == base;
    pthread_mutex_unlock(&e->lock);
    if (!v) {
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
        goto out;
    }
    if (n == 0) {
        if (!on_base || force)
            rc = eng_install_config(e, base, false, err);
        goto out;
    }
    vmp_config *d = derive(base, v, n, err);
    if (!d) {
        vmp_log(VMP_LOG_WARN, ENG_SUBSYS,
                "template/clone target override not passed to the providers: %s",
                err && err->msg[0] ? err->msg : "cannot rebuild the configuration");
        rc = err ? err->code : VMP_EINVAL;
        goto out;
    }
    rc = eng_install_config(e, d, true, err);
    if (rc != 0)
        vmp_config_free(d);
out:
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].pool);
        free(v[i].tmpl);
        free(v[i].clone_target);
    }
    free(v);
    return rc;
}

int eng_overrides_apply(vmp_engine *e, vmp_err *err)
{
    pthread_mutex_lock(&e->cfg_lock);
    int rc = eng_overrides_apply_locked(e, false, err);
    pthread_mutex_unlock(&e->cfg_lock);
    return rc;
}
