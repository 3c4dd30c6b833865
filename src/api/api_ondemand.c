/*
 * api_ondemand: /ondemandvm routes (reference §9.2, §9.3.2): queue an
 * on-demand request, report its progress, delete it.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "api/api_internal.h"
#include "log.h"

typedef struct od_part {
    char *name;
    long long count;
} od_part;

static void parts_free(od_part *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(p[i].name);
    free(p);
}

static unsigned rnd(void)
{
    static __thread unsigned seed;
    if (!seed) {
        if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed) || !seed)
            seed = (unsigned)time(NULL) | 1u;
    }
    return (unsigned)rand_r(&seed);
}

static double pool_weight(const vmp_config *cfg, const vmp_pool_cfg *p)
{
    const vmp_cfg_node *bw = cfg->global.backend_weight;
    double d;
    if (!bw || !p || !p->clone_target)
        return -1;
    const vmp_cfg_node *w = vmp_cfg_get(bw, p->clone_target);
    if (!w || vmp_cfg_as_double(w, &d) != 0)
        return -1;
    return d;
}

/* §9.3.2: spreads count VMs of name over its backends; appends
 * "<name>:<pool>:<k>" parts to b. */
static void evaluate_aliases(const vmp_config *cfg, const char *name, long long count, vmp_buf *b)
{
    const char *back[256];
    double w[256];
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_pools && n < 256; i++)
        if (!strcmp(cfg->pools[i].name, name))
            back[n++] = cfg->pools[i].name;
    for (size_t i = 0; i < cfg->n_pools && n < 256; i++)
        if (strcmp(cfg->pools[i].name, name) != 0 &&
            vmp_strlist_contains(&cfg->pools[i].aliases, name))
            back[n++] = cfg->pools[i].name;
    if (n == 0)
        return;
    size_t weighted = 0;
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        w[i] = pool_weight(cfg, api_pool(cfg, back[i]));
        if (w[i] >= 0) {
            weighted++;
            total += w[i];
        }
    }
    bool by_weight = weighted > 1 && weighted == n && total > 0;
    long long picks[256] = {0};
    size_t order[256];
    size_t norder = 0;
    for (long long k = 0; k < count; k++) {
        size_t sel = 0;
        if (by_weight) {
            double x = (double)rnd() / ((double)RAND_MAX + 1.0) * total;
            for (size_t i = 0; i < n; i++) {
                if (w[i] <= 0)
                    continue;
                sel = i;
                if (x < w[i])
                    break;
                x -= w[i];
            }
        } else {
            sel = rnd() % n;
        }
        if (picks[sel]++ == 0)
            order[norder++] = sel;
    }
    for (size_t i = 0; i < norder; i++) {
        if (b->len)
            vmp_buf_append(b, ",", 1);
        vmp_buf_printf(b, "%s:%s:%lld", name, back[order[i]], picks[order[i]]);
    }
}

static void od_message(api_req *r, int status, const char *msg)
{
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_false());
    json_object_set_new(o, "message", api_jstr(msg));
    api_reply(r, status, o);
}

static bool request_id_ok(const char *id)
{
    size_t l = strlen(id);
    if (l == 0 || l > 100)
        return false;
    for (const char *p = id; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return false;
    return true;
}

static void generate(api_req *r, od_part *parts, size_t n, const char *given_id, const char *user)
{
    const vmp_config *cfg = r->cfg;
    long long max = cfg->global.max_ondemand_instances_per_request;
    for (size_t i = 0; i < n; i++) {
        if (parts[i].count > max) {
            vmp_metrics_increment(r->api->metrics, "ondemandrequest_fail.toomanyrequests.%s",
                                  parts[i].name);
            char msg[128];
            snprintf(msg, sizeof(msg), "requested amount of instances exceeds the maximum %lld",
                     max);
            od_message(r, 403, msg);
            return;
        }
    }
    char uuid[37];
    const char *id = given_id;
    if (!id) {
        api_uuid(uuid);
        id = uuid;
    }
    vmp_buf b = VMP_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        evaluate_aliases(cfg, parts[i].name, parts[i].count, &b);
    vmp_store *s = api_store(r);
    if (!s) {
        vmp_buf_free(&b);
        return;
    }
    vmp_err err = {0};
    const char *token = r->st->auth_configured ? r->token : NULL;
    int rc = vmp_store_od_request_create(s, id, vmp_buf_str(&b), token, token ? user : NULL, r->now,
                                         &err);
    vmp_buf_free(&b);
    if (rc == VMP_EEXIST) {
        vmp_metrics_increment(r->api->metrics, "ondemandrequest_generate.duplicaterequests");
        json_t *o = json_object();
        char msg[200];
        snprintf(msg, sizeof(msg), "request_id '%s' has already been created", id);
        json_object_set_new(o, "ok", json_false());
        json_object_set_new(o, "request_id", api_jstr(id));
        json_object_set_new(o, "message", api_jstr(msg));
        api_reply(r, 409, o);
        return;
    }
    if (rc) {
        api_reply_store_error(r, &err);
        return;
    }
    api_event(r->api, "ondemand", "");
    vmp_metrics_increment(r->api->metrics, "ondemandrequest_generate.success");
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_true());
    json_object_set_new(o, "request_id", api_jstr(id));
    api_reply(r, 201, o);
}

/* Checks names; answers 404 with bad_templates when some are unknown. */
static bool names_ok(api_req *r, od_part *parts, size_t n)
{
    json_t *bad = NULL;
    for (size_t i = 0; i < n; i++) {
        if (api_pool_exists(r->cfg, parts[i].name))
            continue;
        if (!bad)
            bad = json_array();
        json_array_append_new(bad, api_jstr(parts[i].name));
        vmp_metrics_increment(r->api->metrics, "ondemandrequest_fail.invalid.%s", parts[i].name);
    }
    if (!bad)
        return true;
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_false());
    json_object_set_new(o, "bad_templates", bad);
    api_reply(r, 404, o);
    return false;
}

static void post_body(api_req *r)
{
    vmp_metrics_increment(r->api->metrics, "http_requests_vm_total.post.ondemand.requestid");
    char *user = NULL;
    if (r->st->auth_configured && !api_need_token(r, &user))
        return;
    json_t *payload = api_json_parse(r->body, r->body_len, NULL, 0);
    od_part *parts = NULL;
    size_t n = 0;
    const char *given = NULL;
    if (!payload || !(json_is_object(payload) || json_is_null(payload))) {
        od_message(r, 400, "JSON payload could not be parsed");
        goto out;
    }
    if (json_is_null(payload)) {
        vmp_metrics_increment(r->api->metrics, "ondemandrequest_fail.invalid.unknown");
        api_reply_fail(r, 404);
        goto out;
    }
    parts = calloc(json_object_size(payload) + 1, sizeof(*parts));
    if (!parts) {
        api_reply_error(r, 500, "out of memory");
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(payload, key, val)
    {
        if (!strcmp(key, "request_id")) {
            if (!json_is_string(val) || !request_id_ok(json_string_value(val))) {
                od_message(r, 400, "request_id must be 1-100 letters, digits, '-', '_' or '.'");
                goto out;
            }
            given = json_string_value(val);
            continue;
        }
        parts[n].name = vmp_strdup(key);
        parts[n].count = json_is_integer(val)  ? json_integer_value(val)
                         : json_is_string(val) ? strtoll(json_string_value(val), NULL, 10)
                                               : 0;
        n++;
    }
    if (!names_ok(r, parts, n))
        goto out;
    if (n == 0) {
        od_message(r, 400, "no instances were requested");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (parts[i].count < 1) {
            od_message(r, 400, "requested amount of instances must be a positive integer");
            goto out;
        }
    }
    generate(r, parts, n, given, user);
out:
    parts_free(parts, n);
    json_decref(payload);
    free(user);
}

static void post_path(api_req *r, const char *spec)
{
    vmp_metrics_increment(r->api->metrics, "http_requests_vm_total.delete.ondemand.template");
    char *user = NULL;
    if (r->st->auth_configured && !api_need_token(r, &user))
        return;
    size_t cap = 1;
    for (const char *p = spec; *p; p++)
        cap += *p == '+';
    od_part *parts = calloc(cap + 1, sizeof(*parts));
    size_t n = 0;
    if (!parts) {
        api_reply_error(r, 500, "out of memory");
        goto out;
    }
    const char *p = spec;
    while (*p) {
        const char *e = strchr(p, '+');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        size_t i;
        for (i = 0; i < n; i++)
            if (strlen(parts[i].name) == l && !strncmp(parts[i].name, p, l))
                break;
        if (i == n)
            parts[n++].name = strndup(p, l);
        parts[i].count++;
        if (!e)
            break;
        p = e + 1;
    }
    if (!names_ok(r, parts, n))
        goto out;
    if (n == 0) {
        vmp_metrics_increment(r->api->metrics, "ondemandrequest_fail.invalid.unknown");
        api_reply_fail(r, 404);
        goto out;
    }
    generate(r, parts, n, NULL, user);
out:
    parts_free(parts, n);
    free(user);
}

/* Calls fn for each "<alias>:<pool>:<count>" part of requested. */
typedef void (*part_fn)(const char *alias, const char *pool, long long count, void *ud);
static void each_part(const char *requested, part_fn fn, void *ud)
{
    char *copy = vmp_strdup(requested ? requested : "");
    char *save = NULL;
    for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
        char *c1 = strchr(t, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c1 || !c2)
            continue;
        *c1 = '\0';
        *c2 = '\0';
        fn(t, c1 + 1, strtoll(c2 + 1, NULL, 10), ud);
    }
    free(copy);
}

typedef struct show_ctx {
    api_req *r;
    vmp_store *s;
    const char *id;
    json_t *res;
    bool ready;
    int rc;
    vmp_err err;
} show_ctx;

static void show_part(const char *alias, const char *pool, long long count, void *ud)
{
    show_ctx *c = ud;
    if (c->rc)
        return;
    vmp_strlist vms = {0};
    c->rc = vmp_store_od_vms_members(c->s, c->id, alias, pool, &vms, &c->err);
    if (c->rc)
        return;
    json_t *o = json_object_get(c->res, alias);
    if (c->ready) {
        const char *domain = api_pool_domain(c->r->cfg, pool);
        if (!o) {
            o = json_object();
            json_object_set_new(o, "hostname", json_array());
            json_object_set_new(c->res, alias, o);
        }
        json_t *h = json_object_get(o, "hostname");
        for (size_t i = 0; i < vms.n; i++) {
            char fqdn[512];
            if (domain && *domain)
                snprintf(fqdn, sizeof(fqdn), "%s.%s", vms.v[i], domain);
            else
                vmp_strlcpy(fqdn, vms.v[i], sizeof(fqdn));
            json_array_append_new(h, api_jstr(fqdn));
        }
    } else {
        long long ready = (long long)vms.n, pending = count - (long long)vms.n;
        if (o) {
            ready += strtoll(json_string_value(json_object_get(o, "ready")), NULL, 10);
            pending += strtoll(json_string_value(json_object_get(o, "pending")), NULL, 10);
        } else {
            o = json_object();
            json_object_set_new(c->res, alias, o);
        }
        char rb[32], pb[32];
        snprintf(rb, sizeof(rb), "%lld", ready);
        snprintf(pb, sizeof(pb), "%lld", pending);
        json_object_set_new(o, "ready", json_string(rb));
        json_object_set_new(o, "pending", json_string(pb));
    }
    vmp_strlist_clear(&vms);
}

static void not_found(api_req *r, const char *id)
{
    char msg[300];
    snprintf(msg, sizeof(msg), "no request found for request_id '%s'", id);
    od_message(r, 404, msg);
}

static void get_request(api_req *r, const char *id)
{
    vmp_metrics_increment(r->api->metrics, "http_requests_vm_total.get.ondemand.request");
    vmp_store *s = api_store(r);
    if (!s)
        return;
    vmp_strlist kv = {0};
    vmp_err err = {0};
    int rc = vmp_store_od_request_get(s, id, &kv, &err);
    if (rc == VMP_ENOENT || (rc == 0 && kv.n == 0)) {
        not_found(r, id);
        goto out;
    }
    if (rc) {
        api_reply_store_error(r, &err);
        goto out;
    }
    json_t *res = json_object();
    json_object_set_new(res, "ok", json_true());
    json_object_set_new(res, "request_id", api_jstr(id));
    json_object_set_new(res, "ready", json_false());
    const char *status = vmp_store_kv_get(&kv, "status");
    const char *requested = vmp_store_kv_get(&kv, "requested");
    int code = 202;
    if (status && !strcmp(status, "failed")) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "The request failed to provision instances within the configured "
                 "ondemand_request_ttl '%lld'",
                 r->cfg->global.ondemand_request_ttl);
        json_object_set_new(res, "message", json_string(msg));
        code = 200;
    } else if (status && !strcmp(status, "deleted")) {
        json_object_set_new(res, "message", json_string("The request has been deleted"));
        code = 200;
    } else {
        show_ctx c = {.r = r, .s = s, .id = id, .res = res};
        c.ready = status && !strcmp(status, "ready");
        if (c.ready) {
            json_object_set_new(res, "ready", json_true());
            code = 200;
        }
        each_part(requested, show_part, &c);
        if (c.rc) {
            json_decref(res);
            api_reply_store_error(r, &c.err);
            goto out;
        }
    }
    api_reply(r, code, res);
out:
    vmp_strlist_clear(&kv);
}

static void delete_request(api_req *r, const char *id)
{
    if (r->st->auth_configured && !api_need_token(r, NULL))
        return;
    vmp_metrics_increment(r->api->metrics, "http_requests_vm_total.delete.ondemand.request");
    vmp_store *s = api_store(r);
    if (!s)
        return;
    vmp_err err = {0};
    bool already = false;
    int rc = vmp_store_od_request_delete(s, id, &already, &err);
    if (rc == VMP_ENOENT) {
        not_found(r, id);
        return;
    }
    if (rc) {
        api_reply_store_error(r, &err);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_true());
    if (already)
        json_object_set_new(o, "message", json_string("the request has already been deleted"));
    api_reply(r, 200, o);
}

void api_route_ondemand(api_req *r)
{
    size_t n = r->nsegs;
    api_method m = r->method;
    if (n == 1 && m == API_POST)
        post_body(r);
    else if (n == 2 && m == API_POST)
        post_path(r, r->segs[1]);
    else if (n == 2 && m == API_GET)
        get_request(r, r->segs[1]);
    else if (n == 2 && m == API_DELETE)
        delete_request(r, r->segs[1]);
    else
        api_reply_fail(r, 404);
}
