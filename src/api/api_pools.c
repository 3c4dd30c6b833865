/*
 * api_pools: pools read from Redis for an API whose config has no :pools:
 * (vmpooler's API does the same): the manager publishes `<prefix>__pools`
 * and one hash per pool. The list is cached per config for a few seconds
 * and shown to the routes as a copy of the config with those pools, so the
 * routes need not know where pools came from.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "log.h"

#define API_POOLS_REFRESH 5.0 /* seconds */

struct api_poolsnap {
    int refs;
    double loaded_at;
    vmp_config shadow; /* the config with pools replaced (borrows the rest) */
    vmp_pool_cfg *pools;
    vmp_strlist *kv;
    size_t n;
};

static void snap_free(api_poolsnap *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->pools[i].name);
        free(s->pools[i].template_path);
        free(s->pools[i].clone_target);
        free(s->pools[i].domain);
        free(s->pools[i].provider);
        vmp_strlist_clear(&s->pools[i].aliases);
        vmp_strlist_clear(&s->kv[i]);
    }
    free(s->pools);
    free(s->kv);
    free(s);
}

void api_pools_release(api_cfgstate *st, api_poolsnap *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&st->snap_lock);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&st->snap_lock);
    if (last)
        snap_free(s);
}

static api_poolsnap *load(api_req *r)
{
    const vmp_config *cfg = r->st->cfg;
    vmp_store *s = api_store(r);
    if (!s) {
        api_reply(r, 0, NULL); /* the route may not need Redis: let it answer */
        return NULL;
    }
    vmp_strlist names = {0};
    vmp_err err = {0};
    api_poolsnap *snap = NULL;
    if (vmp_store_pools_list(s, &names, &err) != 0)
        goto fail;
    vmp_strlist_sort(&names);
    snap = calloc(1, sizeof(*snap));
    if (!snap)
        goto fail;
    snap->pools = calloc(names.n + 1, sizeof(*snap->pools));
    snap->kv = calloc(names.n + 1, sizeof(*snap->kv));
    if (!snap->pools || !snap->kv)
        goto fail;
    for (size_t i = 0; i < names.n; i++) {
        vmp_strlist *kv = &snap->kv[snap->n];
        if (vmp_store_pool_config_get(s, names.v[i], kv, &err) != 0)
            goto fail;
        vmp_pool_cfg *p = &snap->pools[snap->n++];
        p->name = vmp_strdup(names.v[i]);
        const char *v = vmp_store_kv_get(kv, "template");
        p->template_path = v ? vmp_strdup(v) : NULL;
        v = vmp_store_kv_get(kv, "size");
        p->size = v ? strtoll(v, NULL, 10) : 0;
        v = vmp_store_kv_get(kv, "clone_target");
        p->clone_target = v ? vmp_strdup(v) : NULL;
        v = vmp_store_kv_get(kv, "domain");
        p->domain = v ? vmp_strdup(v) : NULL;
        v = vmp_store_kv_get(kv, "provider");
        p->provider = v ? vmp_strdup(v) : NULL;
        v = vmp_store_kv_get(kv, "alias");
        if (v && *v) {
            char *copy = vmp_strdup(v), *save = NULL;
            for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t;
                 t = strtok_r(NULL, ",", &save))
                vmp_strlist_push(&p->aliases, t);
            free(copy);
            p->alias_is_list = p->aliases.n > 1;
        }
        p->timeout = VMP_UNSET;
        p->create_linked_clone = VMP_UNSET;
    }
    snap->shadow = *cfg;
    snap->shadow.pools = snap->pools;
    snap->shadow.n_pools = snap->n;
    snap->loaded_at = r->now;
    snap->refs = 1; /* the cache's own reference */
    vmp_strlist_clear(&names);
    return snap;
fail:
    if (err.code)
        vmp_log(VMP_LOG_WARN, "api", "pools from redis: %s", err.msg);
    vmp_strlist_clear(&names);
    snap_free(snap);
    return NULL;
}

api_poolsnap *api_pools_acquire(api_req *r)
{
    api_cfgstate *st = (api_cfgstate *)r->st;
    bool refresh = false;
    pthread_mutex_lock(&st->snap_lock);
    if ((!st->snap || r->now - st->snap->loaded_at > API_POOLS_REFRESH ||
         r->now < st->snap->loaded_at) &&
        !st->snap_loading)
    {
        st->snap_loading = true;
        refresh = true;
    }
    pthread_mutex_unlock(&st->snap_lock);
    if (refresh) {
        api_poolsnap *fresh = load(r);
        api_poolsnap *old = NULL;
        pthread_mutex_lock(&st->snap_lock);
        if (fresh) {
            old = st->snap;
            st->snap = fresh;
        } else if (st->snap) {
            /* keep the last list; try again after the refresh delay */
            st->snap->loaded_at = r->now;
        }
        st->snap_loading = false;
        pthread_mutex_unlock(&st->snap_lock);
        api_pools_release(st, old);
    }
    pthread_mutex_lock(&st->snap_lock);
    api_poolsnap *s = st->snap;
    if (s)
        s->refs++;
    pthread_mutex_unlock(&st->snap_lock);
    return s;
}

const vmp_config *api_pools_config(const api_poolsnap *s) { return &s->shadow; }

const vmp_strlist *api_pools_kv(const api_poolsnap *s, const char *pool)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (!strcmp(s->pools[i].name, pool))
            return &s->kv[i];
    return NULL;
}

void api_pools_drop(api_cfgstate *st)
{
    api_pools_release(st, st->snap);
    st->snap = NULL;
}
