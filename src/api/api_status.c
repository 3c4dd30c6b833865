/*
 * api_status: the read-only endpoints: /status (with its cache), /poolstat,
 * /totalrunning, /summary, GET /vm (pool list), GET /config, /full_config.
 * Shapes and key order are vmpooler's (reference §9.1-9.3.3).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_internal.h"

/* Ruby's Float#round(1) (half away from zero), without libm. */
static double round1(double v)
{
    double x = v * 10.0;
    if (x > 9e18 || x < -9e18)
        return v;
    return (double)(long long)(x + (x >= 0 ? 0.5 : -0.5)) / 10.0;
}

/* ---- pools with their runtime sizes ---------------------------------------- */

/* Current sizes of the configured pools: the config's, replaced by
 * `config__poolsize` overrides (vmpooler's sync_pool_sizes). sizes has
 * cfg->n_pools entries. */
static int current_sizes(api_req *r, vmp_store *s, long long *sizes)
{
    const vmp_config *cfg = r->cfg;
    vmp_strlist kv = {0};
    vmp_err err = {0};
    for (size_t i = 0; i < cfg->n_pools; i++)
        sizes[i] = cfg->pools[i].size;
    if (vmp_store_override_all(s, VMP_OVERRIDE_POOLSIZE, &kv, &err) != 0) {
        api_reply_store_error(r, &err);
        return -1;
    }
    for (size_t k = 0; k + 1 < kv.n; k += 2) {
        for (size_t i = 0; i < cfg->n_pools; i++) {
            if (strcmp(cfg->pools[i].name, kv.v[k]) != 0)
                continue;
            long long v = 0;
            /* Ruby's String#to_i: leading digits, else 0. */
            v = strtoll(kv.v[k + 1], NULL, 10);
            sizes[i] = v;
        }
    }
    vmp_strlist_clear(&kv);
    return 0;
}

/* The pool's alias as configured: a string, or a list. NULL when none. */
static json_t *alias_json(const vmp_pool_cfg *p)
{
    if (p->aliases.n == 0)
        return NULL;
    if (!p->alias_is_list && p->aliases.n == 1)
        return api_jstr(p->aliases.v[0]);
    json_t *a = json_array();
    for (size_t i = 0; i < p->aliases.n; i++)
        json_array_append_new(a, api_jstr(p->aliases.v[i]));
    return a;
}

/* ---- task metrics (§9.3.3) ------------------------------------------------------ */

/* Ruby's a + b for Integer/Float values. */
static json_t *num_add(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b))
        return json_integer(json_integer_value(a) + json_integer_value(b));
    return json_real(json_number_value(a) + json_number_value(b));
}

static void obj_add_num(json_t *o, const char *key, const json_t *v)
{
    json_t *cur = json_object_get(o, key);
    json_object_set_new(o, key, cur ? num_add(cur, v) : json_deep_copy(v));
}

/* get_task_metrics: {duration: {average, min, max, total[, pool]}, count:
 * {total[, pool]}} for one day's `<task>__<date>` hash. */
static json_t *task_metrics(const vmp_strlist *kv, bool bypool, const char *only)
{
    json_t *task = json_object();
    json_t *dur = json_object();
    json_t *cnt = json_object();
    json_object_set_new(dur, "average", json_integer(0));
    json_object_set_new(dur, "min", json_integer(0));
    json_object_set_new(dur, "max", json_integer(0));
    json_object_set_new(dur, "total", json_integer(0));
    json_object_set_new(cnt, "total", json_integer((json_int_t)(kv->n / 2)));
    json_object_set_new(task, "duration", dur);
    json_object_set_new(task, "count", cnt);
    size_t n = kv->n / 2;
    if (n > 0) {
        if (bypool) {
            json_t *cpool = json_object(), *dpool = json_object();
            json_object_set_new(cnt, "pool", cpool);
            json_object_set_new(dur, "pool", dpool);
            /* per pool: values in order of first appearance */
            for (size_t i = 0; i < kv->n; i += 2) {
                const char *key = kv->v[i];
                char pool[256] = "unknown";
                const char *colon = strchr(key, ':');
                if (colon) {
                    size_t l = (size_t)(colon - key);
                    if (l >= sizeof(pool))
                        l = sizeof(pool) - 1;
                    memcpy(pool, key, l);
                    pool[l] = '\0';
                }
                if (!json_object_get(cpool, pool)) {
                    json_object_set_new(cpool, pool, json_object());
                    json_object_set_new(dpool, pool, json_object());
                }
            }
            const char *pname;
            json_t *pv;
            json_object_foreach(dpool, pname, pv)
            {
                size_t pn = 0;
                double tot = 0, mn = 0, mx = 0;
                for (size_t i = 0; i < kv->n; i += 2) {
                    const char *key = kv->v[i];
                    const char *colon = strchr(key, ':');
                    bool match = colon ? (strlen(pname) == (size_t)(colon - key) &&
                                          !strncmp(key, pname, (size_t)(colon - key)))
                                       : !strcmp(pname, "unknown");
                    if (!match)
                        continue;
                    double v = strtod(kv->v[i + 1], NULL);
                    if (pn == 0 || v < mn)
                        mn = v;
                    if (pn == 0 || v > mx)
                        mx = v;
                    tot += v;
                    pn++;
                }
                json_object_set_new(json_object_get(cpool, pname), "total",
                                    json_integer((json_int_t)pn));
                json_object_set_new(pv, "total", json_real(tot));
                json_object_set_new(pv, "average", json_real(round1(tot / (double)pn)));
                json_object_set_new(pv, "min", json_real(mn));
                json_object_set_new(pv, "max", json_real(mx));
            }
        }
        double tot = 0, mn = 0, mx = 0;
        for (size_t i = 0; i < kv->n; i += 2) {
            double v = strtod(kv->v[i + 1], NULL);
            if (i == 0 || v < mn)
                mn = v;
            if (i == 0 || v > mx)
                mx = v;
            tot += v;
        }
        json_object_set_new(dur, "total", json_real(tot));
        json_object_set_new(dur, "average", json_real(round1(tot / (double)n)));
        json_object_set_new(dur, "min", json_real(mn));
        json_object_set_new(dur, "max", json_real(mx));
    }
    if (only) {
        if (strcmp(only, "duration") != 0)
            json_object_del(task, "duration");
        if (strcmp(only, "count") != 0)
            json_object_del(task, "count");
    }
    return task;
}

/* get_tag_metrics for one day. */
static json_t *tag_metrics(const vmp_strlist *kv, const char *only)
{
    json_t *tags = json_object();
    for (size_t i = 0; i + 1 < kv->n; i += 2) {
        const char *key = kv->v[i];
        const char *colon = strchr(key, ':');
        const char *tag = colon ? colon + 1 : "unknown";
        if (only && strcmp(tag, only) != 0)
            continue;
        json_t *t = json_object_get(tags, tag);
        if (!t) {
            t = json_object();
            json_object_set_new(tags, tag, t);
        }
        const char *val = kv->v[i + 1];
        json_t *one = json_integer(1);
        obj_add_num(t, val, one);
        obj_add_num(t, "total", one);
        json_decref(one);
    }
    return tags;
}

/* ---- /status ------------------------------------------------------------------------ */

typedef struct api_cache_entry {
    char *key;
    char *body;
    double at;
} api_cache_entry;

void api_cache_clear(vmp_api *api)
{
    pthread_mutex_lock(&api->cache_lock);
    for (size_t i = 0; i < api->ncache; i++) {
        free(api->cache[i].key);
        free(api->cache[i].body);
    }
    api->ncache = 0;
    pthread_mutex_unlock(&api->cache_lock);
}

static char *cache_get(vmp_api *api, const char *key, double now)
{
    char *res = NULL;
    pthread_mutex_lock(&api->cache_lock);
    for (size_t i = 0; i < api->ncache; i++)
        if (!strcmp(api->cache[i].key, key) && now - api->cache[i].at < api->status_cache_seconds)
            res = vmp_strdup(api->cache[i].body);
    pthread_mutex_unlock(&api->cache_lock);
    return res;
}

static void cache_put(vmp_api *api, const char *key, const char *body, double now)
{
    pthread_mutex_lock(&api->cache_lock);
    size_t slot = api->ncache;
    for (size_t i = 0; i < api->ncache; i++)
        if (!strcmp(api->cache[i].key, key))
            slot = i;
    if (slot == api->ncache) {
        if (api->ncache >= 10) {
            /* keep the ten most recent view combinations */
            size_t old = 0;
            for (size_t i = 1; i < api->ncache; i++)
                if (api->cache[i].at < api->cache[old].at)
                    old = i;
            slot = old;
        } else {
            if (!api->cache) {
                api->cache = calloc(10, sizeof(*api->cache));
                if (!api->cache)
                    goto out;
            }
            api->ncache++;
            api->cache[slot].key = NULL;
            api->cache[slot].body = NULL;
        }
    }
    free(api->cache[slot].key);
    free(api->cache[slot].body);
    api->cache[slot].key = vmp_strdup(key);
    api->cache[slot].body = vmp_strdup(body);
    api->cache[slot].at = now;
out:
    pthread_mutex_unlock(&api->cache_lock);
}

static bool in_view(const vmp_strlist *views, bool all, const char *name)
{
    return all || vmp_strlist_contains(views, name);
}

void api_route_status(api_req *r)
{
    const vmp_config *cfg = r->cfg;
    char vbuf[1024];
    bool no_value = false;
    const char *view = api_query(r, "view", vbuf, sizeof(vbuf), &no_value);
    bool all = view == NULL || no_value;
    char cache_key[1100];
    snprintf(cache_key, sizeof(cache_key), all ? "status_all" : "status_%s", view);
    if (r->api->status_cache_seconds > 0) {
        char *cached = cache_get(r->api, cache_key, r->now);
        if (cached) {
            r->status = 200;
            r->text = cached;
            return;
        }
    }
    vmp_strlist views = {0};
    if (!all) {
        char *copy = vmp_strdup(view), *save = NULL;
        for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save))
            vmp_strlist_push(&views, t);
        free(copy);
    }
    vmp_store *s = api_store(r);
    size_t np = cfg->n_pools;
    long long *sizes = calloc(np + 1, sizeof(*sizes));
    vmp_store_pool_counts *counts = calloc(np + 1, sizeof(*counts));
    const char **names = calloc(np + 1, sizeof(*names));
    vmp_strlist lastboot = {0}, clone_kv = {0}, boot_kv = {0};
    json_t *res = NULL;
    vmp_err err = {0};
    if (!s)
        goto out;
    if (!sizes || !counts || !names) {
        api_reply_error(r, 500, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < np; i++)
        names[i] = cfg->pools[i].name;
    if (current_sizes(r, s, sizes) != 0)
        goto out;
    long long cl = 0, odcl = 0;
    char date[16];
    vmp_date_format(r->now, date, sizeof(date));
    if ((np && vmp_store_pools_counts_get(s, names, np, counts, &err) != 0) ||
        vmp_store_counter_get(s, VMP_COUNTER_CLONE, &cl, &err) != 0 ||
        vmp_store_counter_get(s, VMP_COUNTER_ONDEMAND_CLONE, &odcl, &err) != 0 ||
        vmp_store_lastboot_all(s, &lastboot, &err) != 0 ||
        vmp_store_daily_get(s, VMP_DAILY_CLONE, date, &clone_kv, &err) != 0 ||
        vmp_store_daily_get(s, VMP_DAILY_BOOT, date, &boot_kv, &err) != 0)
    {
        api_reply_store_error(r, &err);
        goto out;
    }
    res = json_object();
    json_t *status = json_object();
    json_object_set_new(status, "ok", json_true());
    json_object_set_new(status, "message",
                        json_string("Battle station fully armed and operational."));

    /* keys sorted as vmpooler sorts them: boot, capacity, clone, pools,
     * queue, status */
    if (in_view(&views, all, "boot"))
        json_object_set_new(res, "boot", task_metrics(&boot_kv, false, NULL));
    if (in_view(&views, all, "capacity")) {
        long long cur = 0, total = 0;
        for (size_t i = 0; i < np; i++) {
            cur += counts[i].n[VMP_VM_READY];
            total += sizes[i];
        }
        json_t *cap = json_object();
        json_object_set_new(cap, "current", json_integer(cur));
        json_object_set_new(cap, "total", json_integer(total));
        json_object_set_new(cap, "percent",
                            total > 0 ? json_real(round1((double)cur / (double)total * 100.0))
                                      : json_integer(0));
        json_object_set_new(res, "capacity", cap);
    }
    if (in_view(&views, all, "clone"))
        json_object_set_new(res, "clone", task_metrics(&clone_kv, false, NULL));
    if (in_view(&views, all, "pools")) {
        json_t *pools = json_object();
        json_t *empty = NULL;
        for (size_t i = 0; i < np; i++) {
            const vmp_pool_cfg *p = &cfg->pools[i];
            json_t *o = json_object();
            long long ready = counts[i].n[VMP_VM_READY];
            json_object_set_new(o, "ready", json_integer(ready));
            json_object_set_new(o, "running", json_integer(counts[i].n[VMP_VM_RUNNING]));
            json_object_set_new(o, "pending", json_integer(counts[i].n[VMP_VM_PENDING]));
            json_object_set_new(o, "max", json_integer(sizes[i]));
            const char *lb = vmp_store_kv_get(&lastboot, p->name);
            json_object_set_new(o, "lastBoot", api_jstr(lb ? lb : ""));
            json_t *al = alias_json(p);
            if (al)
                json_object_set_new(o, "alias", al);
            json_object_set_new(pools, p->name, o);
            if (ready == 0 && sizes[i] != 0) {
                if (!empty) {
                    empty = json_array();
                    json_object_set_new(status, "empty", empty);
                }
                json_array_append_new(empty, api_jstr(p->name));
                char msg[64];
                snprintf(msg, sizeof(msg), "Found %zu empty pools.", json_array_size(empty));
                json_object_set_new(status, "ok", json_false());
                json_object_set_new(status, "message", json_string(msg));
            }
        }
        json_object_set_new(res, "pools", pools);
    }
    if (in_view(&views, all, "queue")) {
        long long pend = 0, ready = 0, run = 0, comp = 0;
        for (size_t i = 0; i < np; i++) {
            pend += counts[i].n[VMP_VM_PENDING];
            ready += counts[i].n[VMP_VM_READY];
            run += counts[i].n[VMP_VM_RUNNING];
            comp += counts[i].n[VMP_VM_COMPLETED];
        }
        long long cloning = cl + odcl;
        long long booting = pend - cloning;
        if (booting < 0)
            booting = 0;
        json_t *q = json_object();
        json_object_set_new(q, "requested", json_integer(0));
        json_object_set_new(q, "pending", json_integer(pend));
        json_object_set_new(q, "cloning", json_integer(cloning));
        json_object_set_new(q, "booting", json_integer(booting));
        json_object_set_new(q, "ready", json_integer(ready));
        json_object_set_new(q, "running", json_integer(run));
        json_object_set_new(q, "completed", json_integer(comp));
        json_object_set_new(q, "total", json_integer(pend + ready + run + comp));
        json_object_set_new(res, "queue", q);
    }
    json_object_set_new(status, "uptime", json_real(round1(r->now - cfg->loaded_at)));
    json_object_set_new(res, "status", status);
    if (r->api->status_cache_seconds > 0) {
        vmp_buf b = VMP_BUF_INIT;
        api_json_pretty(res, &b);
        if (!b.oom)
            cache_put(r->api, cache_key, vmp_buf_str(&b), r->now);
        vmp_buf_free(&b);
    }
    api_reply(r, 200, res);
    res = NULL;
out:
    json_decref(res);
    vmp_strlist_clear(&views);
    vmp_strlist_clear(&lastboot);
    vmp_strlist_clear(&clone_kv);
    vmp_strlist_clear(&boot_kv);
    free(sizes);
    free(counts);
    free(names);
}

/* ---- /poolstat, /totalrunning, GET /vm ------------------------------------------------ */

void api_route_poolstat(api_req *r)
{
    const vmp_config *cfg = r->cfg;
    char buf[2048];
    const char *want = api_query(r, "pool", buf, sizeof(buf), NULL);
    vmp_strlist sub = {0};
    if (want) {
        char *copy = vmp_strdup(want), *save = NULL;
        for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save))
            vmp_strlist_push(&sub, t);
        free(copy);
    }
    json_t *res = json_object();
    json_t *pools = json_object();
    json_object_set_new(res, "pools", pools);
    size_t np = cfg->n_pools;
    const char **names = calloc(np + 1, sizeof(*names));
    size_t *idx = calloc(np + 1, sizeof(*idx));
    long long *sizes = calloc(np + 1, sizeof(*sizes));
    vmp_store_pool_counts *counts = calloc(np + 1, sizeof(*counts));
    size_t nsel = 0;
    vmp_err err = {0};
    vmp_store *s = NULL;
    if (!names || !idx || !sizes || !counts) {
        api_reply_error(r, 500, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < np && sub.n; i++) {
        const vmp_pool_cfg *p = &cfg->pools[i];
        bool sel = vmp_strlist_contains(&sub, p->name);
        for (size_t a = 0; !sel && a < p->aliases.n; a++)
            sel = vmp_strlist_contains(&sub, p->aliases.v[a]);
        if (sel) {
            idx[nsel] = i;
            names[nsel++] = p->name;
        }
    }
    if (nsel) {
        s = api_store(r);
        if (!s || current_sizes(r, s, sizes) != 0)
            goto out;
        if (vmp_store_pools_counts_get(s, names, nsel, counts, &err) != 0) {
            api_reply_store_error(r, &err);
            goto out;
        }
    }
    for (size_t k = 0; k < nsel; k++) {
        const vmp_pool_cfg *p = &cfg->pools[idx[k]];
        json_t *o = json_object();
        json_object_set_new(o, "max", json_integer(sizes[idx[k]]));
        json_t *al = alias_json(p);
        if (al)
            json_object_set_new(o, "alias", al);
        json_object_set_new(o, "ready", json_integer(counts[k].n[VMP_VM_READY]));
        json_object_set_new(pools, p->name, o);
    }
    api_reply(r, 200, res);
    res = NULL;
out:
    json_decref(res);
    vmp_strlist_clear(&sub);
    free(names);
    free(idx);
    free(sizes);
    free(counts);
}

void api_route_totalrunning(api_req *r)
{
    const vmp_config *cfg = r->cfg;
    size_t np = cfg->n_pools;
    long long total = 0;
    if (np) {
        vmp_store *s = api_store(r);
        if (!s)
            return;
        const char **names = calloc(np, sizeof(*names));
        vmp_store_pool_counts *counts = calloc(np, sizeof(*counts));
        vmp_err err = {0};
        int rc = VMP_ENOMEM;
        if (names && counts) {
            for (size_t i = 0; i < np; i++)
                names[i] = cfg->pools[i].name;
            rc = vmp_store_pools_counts_get(s, names, np, counts, &err);
            for (size_t i = 0; rc == 0 && i < np; i++)
                total += counts[i].n[VMP_VM_RUNNING];
        }
        free(names);
        free(counts);
        if (rc != 0) {
            api_reply_store_error(r, &err);
            return;
        }
    }
    json_t *o = json_object();
    json_object_set_new(o, "running", json_integer(total));
    api_reply(r, 200, o);
}

void api_route_vm_list(api_req *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->cfg->n_pools; i++)
        json_array_append_new(a, api_jstr(r->cfg->pools[i].name));
    api_reply(r, 200, a);
}

/* ---- /summary -------------------------------------------------------------------------- */

/* Parses YYYY-MM-DD into days since the epoch; -1 if not a real date. */
static int parse_date(const char *s, long *days)
{
    int y, m, d;
    char tail;
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return -1;
    if (sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3)
        return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    tm.tm_hour = 12;
    time_t t = timegm(&tm);
    struct tm back;
    gmtime_r(&t, &back);
    if (back.tm_year != y - 1900 || back.tm_mon != m - 1 || back.tm_mday != d)
        return -1;
    *days = (long)(t / 86400);
    return 0;
}

static void format_day(long days, char out[16])
{
    time_t t = (time_t)days * 86400 + 43200;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

#define API_SUMMARY_MAX_DAYS 1000

/* get_task_summary with by-pool breakdown. Returns {<task>: {...}, daily: [...]}
 * pieces: *total (the aggregate) and appends each day's metrics to days. */
static json_t *task_summary(const json_t *const *dailies, size_t ndays)
{
    json_t *agg = json_object();
    /* min/max data per type and pool (the top level never gets them: the
     * multi-day quirk of §9.3.3) */
    json_t *pool_data = json_object();
    for (size_t d = 0; d < ndays; d++) {
        const char *type;
        json_t *tv;
        json_object_foreach((json_t *)dailies[d], type, tv)
        {
            json_t *at = json_object_get(agg, type);
            if (!at) {
                at = json_object();
                json_object_set_new(agg, type, at);
            }
            obj_add_num(at, "total", json_object_get(tv, "total"));
            json_t *apool = json_object_get(at, "pool");
            if (!apool) {
                apool = json_object();
                json_object_set_new(at, "pool", apool);
            }
            json_t *dtype = json_object_get(pool_data, type);
            if (!dtype) {
                dtype = json_object();
                json_object_set_new(pool_data, type, dtype);
            }
            json_t *dp = json_object_get(tv, "pool");
            if (!dp)
                continue;
            const char *pname;
            json_t *pv;
            json_object_foreach(dp, pname, pv)
            {
                json_t *ap = json_object_get(apool, pname);
                if (!ap) {
                    ap = json_object();
                    json_object_set_new(apool, pname, ap);
                }
                json_t *data = json_object_get(dtype, pname);
                if (!data) {
                    data = json_array();
                    json_object_set_new(dtype, pname, data);
                }
                if (json_object_get(pv, "min"))
                    json_array_append(data, json_object_get(pv, "min"));
                if (json_object_get(pv, "max"))
                    json_array_append(data, json_object_get(pv, "max"));
                obj_add_num(ap, "total", json_object_get(pv, "total"));
            }
        }
    }
    const char *type;
    json_t *at;
    json_object_foreach(agg, type, at)
    {
        json_t *apool = json_object_get(at, "pool");
        const char *pname;
        json_t *ap;
        json_object_foreach(apool, pname, ap)
        {
            json_t *data = json_object_get(json_object_get(pool_data, type), pname);
            if (!data || json_array_size(data) == 0)
                continue;
            double mn = 0, mx = 0, sum = 0;
            json_t *mnv = NULL, *mxv = NULL;
            for (size_t i = 0; i < json_array_size(data); i++) {
                json_t *v = json_array_get(data, i);
                double x = json_number_value(v);
                if (!mnv || x < mn) {
                    mn = x;
                    mnv = v;
                }
                if (!mxv || x > mx) {
                    mx = x;
                    mxv = v;
                }
                sum += x;
            }
            size_t n = json_array_size(data);
            json_object_set(ap, "min", mnv);
            json_object_set(ap, "max", mxv);
            /* vmpooler's mean(): 0 unless the sum is positive */
            json_object_set_new(ap, "average",
                                sum > 0 ? json_real(sum / (double)n) : json_integer(0));
        }
    }
    json_decref(pool_data);
    return agg;
}

void api_route_summary(api_req *r)
{
    char fbuf[64], tbuf[64], today[16];
    vmp_date_format(r->now, today, sizeof(today));
    const char *from = api_query(r, "from", fbuf, sizeof(fbuf), NULL);
    const char *to = api_query(r, "to", tbuf, sizeof(tbuf), NULL);
    if (!from)
        from = today;
    if (!to)
        to = today;
    long fd = 0, td = 0, nowd = 0;
    const char *params[2] = {from, to};
    long *out[2] = {&fd, &td};
    for (int i = 0; i < 2; i++) {
        if (parse_date(params[i], out[i]) != 0) {
            r->status = 400;
            r->text = vmp_asprintf("Invalid date format '%s', must match YYYY-MM-DD.", params[i]);
            return;
        }
    }
    parse_date(today, &nowd);
    if (td < fd) {
        r->status = 400;
        r->text = vmp_strdup("Date range is invalid, 'to' cannot come before 'from'.");
        return;
    }
    if (fd > nowd) {
        r->status = 400;
        r->text = vmp_strdup("Date range is invalid, 'from' must be in the past.");
        return;
    }
    if (td - fd + 1 > API_SUMMARY_MAX_DAYS) {
        r->status = 400;
        r->text = vmp_asprintf("Date range is invalid, at most %d days may be asked for.",
                               API_SUMMARY_MAX_DAYS);
        return;
    }
    const char *route = r->nsegs >= 2 ? r->segs[1] : NULL;
    const char *only = r->nsegs >= 3 ? r->segs[2] : NULL;
    bool want_boot = !route || !strcmp(route, "boot");
    bool want_clone = !route || !strcmp(route, "clone");
    bool want_tag = !route || !strcmp(route, "tag");
    if (route && !want_boot && !want_clone && !want_tag) {
        api_reply_fail(r, 404);
        return;
    }
    vmp_store *s = api_store(r);
    if (!s)
        return;
    size_t ndays = (size_t)(td - fd + 1);
    json_t **boot = calloc(ndays, sizeof(*boot));
    json_t **clone = calloc(ndays, sizeof(*clone));
    json_t **tag = calloc(ndays, sizeof(*tag));
    json_t *res = NULL;
    if (!boot || !clone || !tag) {
        api_reply_error(r, 500, "out of memory");
        goto out;
    }
    for (size_t d = 0; d < ndays; d++) {
        char date[16];
        format_day(fd + (long)d, date);
        vmp_err err = {0};
        vmp_strlist kv = {0};
        int rc = 0;
        if (want_boot && rc == 0) {
            rc = vmp_store_daily_get(s, VMP_DAILY_BOOT, date, &kv, &err);
            boot[d] = task_metrics(&kv, true, route ? only : NULL);
            vmp_strlist_clear(&kv);
        }
        if (want_clone && rc == 0) {
            rc = vmp_store_daily_get(s, VMP_DAILY_CLONE, date, &kv, &err);
            clone[d] = task_metrics(&kv, true, route ? only : NULL);
            vmp_strlist_clear(&kv);
        }
        if (want_tag && rc == 0) {
            rc = vmp_store_daily_get(s, VMP_DAILY_TAG, date, &kv, &err);
            tag[d] = tag_metrics(&kv, route ? only : NULL);
            vmp_strlist_clear(&kv);
        }
        if (rc != 0) {
            api_reply_store_error(r, &err);
            goto out;
        }
    }
    res = json_object();
    json_t *daily = json_array();
    if (!route)
        json_object_set_new(res, "daily", daily);
    if (want_boot)
        json_object_set_new(res, "boot", task_summary((const json_t *const *)boot, ndays));
    if (want_clone)
        json_object_set_new(res, "clone", task_summary((const json_t *const *)clone, ndays));
    if (want_tag) {
        json_t *agg = json_object();
        for (size_t d = 0; d < ndays; d++) {
            const char *t;
            json_t *tv;
            json_object_foreach(tag[d], t, tv)
            {
                json_t *at = json_object_get(agg, t);
                if (!at) {
                    at = json_object();
                    json_object_set_new(agg, t, at);
                }
                const char *k;
                json_t *v;
                json_object_foreach(tv, k, v) obj_add_num(at, k, v);
            }
        }
        json_object_set_new(res, "tag", agg);
    }
    if (route)
        json_object_set_new(res, "daily", daily);
    for (size_t d = 0; d < ndays; d++) {
        char date[16];
        format_day(fd + (long)d, date);
        json_t *o = json_object();
        json_object_set_new(o, "date", json_string(date));
        if (want_boot)
            json_object_set(o, "boot", boot[d]);
        if (want_clone)
            json_object_set(o, "clone", clone[d]);
        if (want_tag)
            json_object_set(o, "tag", tag[d]);
        json_array_append_new(daily, o);
    }
    api_reply(r, 200, res);
    res = NULL;
out:
    json_decref(res);
    for (size_t d = 0; d < ndays; d++) {
        if (boot)
            json_decref(boot[d]);
        if (clone)
            json_decref(clone[d]);
        if (tag)
            json_decref(tag[d]);
    }
    free(boot);
    free(clone);
    free(tag);
}

/* ---- /config, /full_config ---------------------------------------------------------------- */

void api_route_config_get(api_req *r)
{
    const vmp_config *cfg = r->cfg;
    vmp_store *s = api_store(r);
    if (!s)
        return;
    vmp_strlist sizes = {0}, tmpls = {0}, prepared = {0};
    vmp_err err = {0};
    if (vmp_store_override_all(s, VMP_OVERRIDE_POOLSIZE, &sizes, &err) != 0 ||
        vmp_store_override_all(s, VMP_OVERRIDE_TEMPLATE, &tmpls, &err) != 0 ||
        vmp_store_override_all(s, VMP_TEMPLATE_PREPARED, &prepared, &err) != 0)
    {
        api_reply_store_error(r, &err);
        goto out;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < cfg->n_pools; i++) {
        const vmp_pool_cfg *p = &cfg->pools[i];
        json_t *o = p->node ? api_json_from_node(p->node, true) : json_object();
        const vmp_strlist *pkv = p->node ? NULL : api_pools_kv(r->snap, p->name);
        if (pkv)
            json_object_set_new(o, "name", api_jstr(p->name));
        for (size_t k = 0; pkv && k + 1 < pkv->n; k += 2)
            json_object_set_new(o, pkv->v[k],
                                api_is_secret_key(pkv->v[k]) ? json_string("<redacted>")
                                                             : api_jstr(pkv->v[k + 1]));
        if (!json_is_object(o)) {
            json_decref(o);
            o = json_object();
            json_object_set_new(o, "name", api_jstr(p->name));
        }
        const char *sz = vmp_store_kv_get(&sizes, p->name);
        if (sz)
            json_object_set_new(o, "size", json_integer(strtoll(sz, NULL, 10)));
        const char *tp = vmp_store_kv_get(&tmpls, p->name);
        if (tp)
            json_object_set_new(o, "template", api_jstr(tp));
        const char *cur = tp ? tp : p->template_path;
        const char *prep = vmp_store_kv_get(&prepared, p->name);
        json_object_set_new(o, "template_ready", json_boolean(prep && cur && !strcmp(prep, cur)));
        json_array_append_new(list, o);
    }
    json_t *res = json_object();
    json_object_set_new(res, "pool_configuration", list);
    json_t *st = json_object();
    json_object_set_new(st, "ok", json_true());
    json_object_set_new(res, "status", st);
    api_reply(r, 200, res);
out:
    vmp_strlist_clear(&sizes);
    vmp_strlist_clear(&tmpls);
    vmp_strlist_clear(&prepared);
}

void api_route_full_config(api_req *r)
{
    json_t *res = json_object();
    json_t *full = r->cfg->root ? api_json_from_node(r->cfg->root, true) : json_object();
    json_object_set_new(res, "full_config", full ? full : json_object());
    json_t *st = json_object();
    json_object_set_new(st, "ok", json_true());
    json_object_set_new(res, "status", st);
    api_reply(r, 200, res);
}
