/*
 * api_config: the runtime pool changes of reference §4.9 (gated by
 * `experimental_features` as vmpooler gates them): pool size, template and
 * clone target overrides, their undo, and pool resets.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "log.h"

/* 405 when experimental features are off, 401 without a valid token when
 * auth is configured. */
static bool gate(api_req *r)
{
    if (!r->cfg->global.experimental_features) {
        api_reply_fail(r, 405);
        return false;
    }
    if (r->st->auth_configured && !api_need_token(r, NULL))
        return false;
    return true;
}

static void reply_ok(api_req *r, int status)
{
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_true());
    api_reply(r, status, o);
}

static void reply_list(api_req *r, const char *key, json_t *list)
{
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_false());
    json_object_set_new(o, key, list);
    api_reply(r, 400, o);
}

/* Parses the body; NULL with the reply set when it is not usable. JSON
 * null answers 404 as vmpooler does for an empty payload. */
static json_t *payload_of(api_req *r, const char *metric_prefix)
{
    json_t *v = api_json_parse(r->body, r->body_len, NULL, 0);
    if (v && json_is_object(v))
        return v;
    if (v && json_is_null(v)) {
        vmp_metrics_increment(r->api->metrics, "%s.invalid.unknown", metric_prefix);
        api_reply_fail(r, 404);
    } else {
        json_t *o = json_object();
        json_object_set_new(o, "ok", json_false());
        json_object_set_new(o, "message", json_string("JSON payload could not be parsed"));
        api_reply(r, 400, o);
    }
    json_decref(v);
    return NULL;
}

/* Ruby's Integer(x) for a size: an integer, or a string of an optional sign
 * and decimal digits. */
static bool as_integer(const json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_string(v))
        return vmp_parse_long(json_string_value(v), out) == 0;
    return false;
}

static void publish(api_req *r, vmp_store *s, const char *type, const char *pool)
{
    api_event(r->api, type, pool);
}

/* Current value of a pool setting: the Redis override, else the config's. */
static int current(api_req *r, vmp_store *s, vmp_store_override kind, const char *pool,
                   const char *cfg_value, char **out)
{
    vmp_err err = {0};
    char *v = NULL;
    if (vmp_store_override_get(s, kind, pool, &v, &err) != 0) {
        api_reply_store_error(r, &err);
        return -1;
    }
    *out = v ? v : vmp_strdup(cfg_value ? cfg_value : "");
    return 0;
}

/* Answers 400 listing the rejected pools (counting each under
 * config.invalid.<pool>) and takes bad when it is not empty; otherwise frees
 * bad and returns false. */
static bool reject_invalid(api_req *r, const char *key, json_t *bad)
{
    if (!json_array_size(bad)) {
        json_decref(bad);
        return false;
    }
    for (size_t i = 0; i < json_array_size(bad); i++)
        vmp_metrics_increment(r->api->metrics, "config.invalid.%s",
                              json_string_value(json_array_get(bad, i)));
    reply_list(r, key, bad);
    return true;
}

/* Stores an override and announces the change; -1 with the reply set when
 * the store fails. */
static int set_override(api_req *r, vmp_store *s, vmp_store_override kind, const char *pool,
                        const char *value)
{
    vmp_err err = {0};
    if (vmp_store_override_set(s, kind, pool, value, &err) != 0) {
        api_reply_store_error(r, &err);
        return -1;
    }
    publish(r, s, "config", pool);
    return 0;
}

static void poolsize_post(api_req *r)
{
    json_t *payload = payload_of(r, "config");
    if (!payload)
        return;
    json_t *bad = json_array();
    const char *pool;
    json_t *v;
    json_object_foreach(payload, pool, v)
    {
        long long n;
        if (!api_pool(r->cfg, pool))
            json_array_append_new(bad, api_jstr(pool));
        if (!as_integer(v, &n)) {
            json_array_append_new(bad, api_jstr(pool));
            continue;
        }
        if (n < 0)
            json_array_append_new(bad, api_jstr(pool));
    }
    if (reject_invalid(r, "not_configured", bad)) {
        json_decref(payload);
        return;
    }
    vmp_store *s = api_store(r);
    int changed = 0;
    if (!s)
        goto out;
    json_object_foreach(payload, pool, v)
    {
        const vmp_pool_cfg *p = api_pool(r->cfg, pool);
        char *cur = NULL;
        char cfgsize[32];
        snprintf(cfgsize, sizeof(cfgsize), "%lld", p->size);
        if (current(r, s, VMP_OVERRIDE_POOLSIZE, pool, cfgsize, &cur) != 0)
            goto out;
        long long n = 0, now = strtoll(cur, NULL, 10);
        free(cur);
        as_integer(v, &n);
        if (n == now)
            continue;
        char val[32];
        snprintf(val, sizeof(val), "%lld", n);
        if (set_override(r, s, VMP_OVERRIDE_POOLSIZE, pool,
                         json_is_string(v) ? json_string_value(v) : val) != 0)
            goto out;
        changed++;
    }
    reply_ok(r, changed ? 201 : 200);
out:
    json_decref(payload);
}

static void pooltemplate_post(api_req *r)
{
    json_t *payload = payload_of(r, "config");
    if (!payload)
        return;
    json_t *bad = json_array();
    const char *pool;
    json_t *v;
    json_object_foreach(payload, pool, v)
    {
        const char *t = json_is_string(v) ? json_string_value(v) : NULL;
        size_t l = t ? strlen(t) : 0;
        if (!api_pool(r->cfg, pool))
            json_array_append_new(bad, api_jstr(pool));
        if (!t || !strchr(t, '/'))
            json_array_append_new(bad, api_jstr(pool));
        if (t && l && t[0] == '/')
            json_array_append_new(bad, api_jstr(pool));
        if (t && l && t[l - 1] == '/')
            json_array_append_new(bad, api_jstr(pool));
    }
    if (reject_invalid(r, "bad_templates", bad)) {
        json_decref(payload);
        return;
    }
    vmp_store *s = api_store(r);
    int changed = 0;
    if (!s)
        goto out;
    json_object_foreach(payload, pool, v)
    {
        const vmp_pool_cfg *p = api_pool(r->cfg, pool);
        char *cur = NULL;
        if (current(r, s, VMP_OVERRIDE_TEMPLATE, pool, p->template_path, &cur) != 0)
            goto out;
        bool same = !strcmp(cur, json_string_value(v));
        free(cur);
        if (same)
            continue;
        if (set_override(r, s, VMP_OVERRIDE_TEMPLATE, pool, json_string_value(v)) != 0)
            goto out;
        changed++;
    }
    reply_ok(r, changed ? 201 : 200);
out:
    json_decref(payload);
}

static void clonetarget_post(api_req *r)
{
    json_t *payload = payload_of(r, "config");
    if (!payload)
        return;
    json_t *bad = json_array();
    const char *pool;
    json_t *v;
    json_object_foreach(payload, pool, v)
    {
        if (!api_pool(r->cfg, pool) || !json_is_string(v))
            json_array_append_new(bad, api_jstr(pool));
    }
    if (reject_invalid(r, "bad_templates", bad)) {
        json_decref(payload);
        return;
    }
    vmp_store *s = api_store(r);
    int changed = 0;
    if (!s)
        goto out;
    json_object_foreach(payload, pool, v)
    {
        const vmp_pool_cfg *p = api_pool(r->cfg, pool);
        char *cur = NULL;
        if (current(r, s, VMP_OVERRIDE_CLONE_TARGET, pool, p->clone_target, &cur) != 0)
            goto out;
        bool same = !strcmp(cur, json_string_value(v)) && (*cur || p->clone_target);
        free(cur);
        if (same)
            continue;
        if (set_override(r, s, VMP_OVERRIDE_CLONE_TARGET, pool, json_string_value(v)) != 0)
            goto out;
        changed++;
    }
    reply_ok(r, changed ? 201 : 200);
out:
    json_decref(payload);
}

static void reset_override(api_req *r, bool size, const char *pool)
{
    const vmp_pool_cfg *p = api_pool(r->cfg, pool);
    if (!p) {
        vmp_metrics_increment(r->api->metrics, "config.invalid.unknown");
        api_reply_fail(r, 404);
        return;
    }
    vmp_store *s = api_store(r);
    if (!s)
        return;
    char *cur = NULL;
    char cfgsize[32];
    snprintf(cfgsize, sizeof(cfgsize), "%lld", p->size);
    if (current(r, s, size ? VMP_OVERRIDE_POOLSIZE : VMP_OVERRIDE_TEMPLATE, pool,
                size ? cfgsize : p->template_path, &cur) != 0)
        return;
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_true());
    bool differ;
    if (size) {
        long long now = strtoll(cur, NULL, 10);
        json_object_set_new(o, "pool_size_before_reset", json_integer(now));
        json_object_set_new(o, "pool_size_before_overrides", json_integer(p->size));
        differ = now != p->size;
    } else {
        json_object_set_new(o, "template_before_reset", api_jstr(cur));
        json_object_set_new(o, "template_before_overrides",
                            p->template_path ? api_jstr(p->template_path) : json_null());
        differ = strcmp(cur, p->template_path ? p->template_path : "") != 0;
    }
    free(cur);
    if (differ) {
        vmp_err err = {0};
        if (vmp_store_override_del(s, size ? VMP_OVERRIDE_POOLSIZE : VMP_OVERRIDE_TEMPLATE, pool,
                                   NULL, &err) != 0 ||
            vmp_store_pool_request_add(s, size ? VMP_POOLREQ_UNDO_SIZE : VMP_POOLREQ_UNDO_TEMPLATE,
                                       pool, &err) != 0)
        {
            json_decref(o);
            api_reply_store_error(r, &err);
            return;
        }
        publish(r, s, "config", pool);
    }
    api_reply(r, differ ? 201 : 200, o);
}

void api_route_config_change(api_req *r)
{
    size_t n = r->nsegs;
    api_method m = r->method;
    const char *what = r->segs[1];
    bool size = !strcmp(what, "poolsize"), tmpl = !strcmp(what, "pooltemplate");
    bool ct = !strcmp(what, "clonetarget");
    bool known = (n == 2 && m == API_POST && (size || tmpl || ct)) ||
                 (n == 3 && m == API_DELETE && (size || tmpl));
    if (!known) {
        api_reply_fail(r, 404);
        return;
    }
    if (!gate(r))
        return;
    if (n == 3)
        reset_override(r, size, r->segs[2]);
    else if (size)
        poolsize_post(r);
    else if (tmpl)
        pooltemplate_post(r);
    else
        clonetarget_post(r);
}

void api_route_poolreset(api_req *r)
{
    if (!gate(r))
        return;
    json_t *payload = payload_of(r, "poolreset");
    if (!payload)
        return;
    json_t *bad = json_array();
    const char *pool;
    json_t *v;
    json_object_foreach(payload, pool, v)
    {
        if (!api_pool(r->cfg, pool)) {
            json_array_append_new(bad, api_jstr(pool));
            vmp_metrics_increment(r->api->metrics, "poolreset.invalid.%s", pool);
        }
    }
    if (json_array_size(bad)) {
        json_t *o = json_object();
        json_object_set_new(o, "ok", json_false());
        json_object_set_new(o, "bad_pools", bad);
        api_reply(r, 400, o);
        json_decref(payload);
        return;
    }
    json_decref(bad);
    vmp_store *s = api_store(r);
    if (!s)
        goto out;
    json_object_foreach(payload, pool, v)
    {
        vmp_err err = {0};
        if (vmp_store_pool_request_add(s, VMP_POOLREQ_RESET, pool, &err) != 0) {
            api_reply_store_error(r, &err);
            goto out;
        }
        publish(r, s, "reset", pool);
    }
    reply_ok(r, 201);
out:
    json_decref(payload);
}
