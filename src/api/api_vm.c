/*
 * api_vm: /vm routes: pool list, checkout (body and path forms, one atomic
 * store script for all VMs), VM details, lifetime and tags, return, disk and
 * snapshot tasks.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "api/api_internal.h"
#include "log.h"

#define API_MAX_CHECKOUT_BODY 10240
#define API_HOST_MAX 256

/* ---- request body checks (vmpooler's InputValidator) ------------------------- */

/* Parses a JSON object body. Empty body: an empty object. On failure the
 * reply is set (400 with "error") and NULL returned. */
static json_t *body_object(api_req *r, bool size_check)
{
    if (r->body_len == 0)
        return json_object();
    char msg[200];
    json_t *v = api_json_parse(r->body, r->body_len, msg, sizeof(msg));
    if (!v) {
        char e[260];
        snprintf(e, sizeof(e), "Invalid JSON: %s", msg);
        api_reply_error(r, 400, e);
        return NULL;
    }
    const char *bad = NULL;
    if (!json_is_object(v))
        bad = "Request body must be a JSON object";
    else if (api_json_depth(v) > 5)
        bad = "Request body too complex";
    else if (size_check && r->body_len > API_MAX_CHECKOUT_BODY)
        bad = "Request body too large";
    if (bad) {
        json_decref(v);
        api_reply_error(r, 400, bad);
        return NULL;
    }
    return v;
}

/* Ruby's value.to_s for a JSON value, into buf. */
static void value_to_s(const json_t *v, char *buf, size_t n)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        vmp_strlcpy(buf, json_string_value(v), n);
        return;
    case JSON_INTEGER:
        snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return;
    case JSON_REAL: {
        vmp_buf b = VMP_BUF_INIT;
        api_json_pretty(v, &b);
        vmp_strlcpy(buf, vmp_buf_str(&b), n);
        vmp_buf_free(&b);
        return;
    }
    case JSON_TRUE:
        vmp_strlcpy(buf, "true", n);
        return;
    case JSON_FALSE:
        vmp_strlcpy(buf, "false", n);
        return;
    case JSON_NULL:
        vmp_strlcpy(buf, "", n);
        return;
    default: {
        char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        vmp_strlcpy(buf, d ? d : "", n);
        free(d);
    }
    }
}

/* Ruby's String#to_i / Integer#to_i / Float#to_i; other shapes 0. */
static long long value_to_i(const json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d > 9e18 || d < -9e18)
            return 0;
        return (long long)d;
    }
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return 0;
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

/* validate_integer(value, name, min, max): NULL when fine, else the message
 * in buf. */
static const char *integer_error(const json_t *v, const char *text, const char *name, long long min,
                                 long long max, long long *out, char *buf, size_t n)
{
    char tmp[64];
    if (v && json_is_null(v)) {
        snprintf(buf, n, "%s is required", name);
        return buf;
    }
    if (v) {
        value_to_s(v, tmp, sizeof(tmp));
        text = tmp;
    }
    if (!all_digits(text) || strlen(text) > 18) {
        snprintf(buf, n, "%s must be a valid integer", name);
        return buf;
    }
    long long x = strtoll(text, NULL, 10);
    if (x < min) {
        snprintf(buf, n, "%s must be at least %lld", name, min);
        return buf;
    }
    if (x > max) {
        snprintf(buf, n, "%s must be at most %lld", name, max);
        return buf;
    }
    *out = x;
    return NULL;
}

static const char *pool_name_error(const char *s)
{
    if (!*s)
        return "Pool name is required";
    if (strlen(s) > 100)
        return "Pool name too long";
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
            return "Invalid pool name format";
    return NULL;
}

/* ---- checkout (§9.3.1) --------------------------------------------------------- */

typedef struct want_req {
    char *name;
    long long count;
} want_req;

/* The weight of a pool from :config: backend_weight, -1 if none. */
static double pool_weight(const vmp_config *cfg, const vmp_pool_cfg *p)
{
    const vmp_cfg_node *bw = cfg->global.backend_weight;
    if (!bw || !p->clone_target)
        return -1;
    const vmp_cfg_node *w = vmp_cfg_get(bw, p->clone_target);
    double d;
    if (!w || vmp_cfg_as_double(w, &d) != 0)
        return -1;
    return d;
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

/* Candidate pools for one VM of `name`, in the order to try: the pool of
 * that name and every pool that has it as an alias; the first is drawn by
 * backend_weight when every candidate has a weight, else at random. */
static size_t candidates(const vmp_config *cfg, const char *name, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_pools && n < max; i++)
        if (!strcmp(cfg->pools[i].name, name))
            out[n++] = cfg->pools[i].name;
    for (size_t i = 0; i < cfg->n_pools && n < max; i++)
        if (strcmp(cfg->pools[i].name, name) != 0 &&
            vmp_strlist_contains(&cfg->pools[i].aliases, name))
            out[n++] = cfg->pools[i].name;
    if (n <= 1)
        return n;
    size_t first = 0;
    double total = 0;
    bool all_weighted = true;
    double w[64];
    for (size_t i = 0; i < n && i < 64; i++) {
        w[i] = pool_weight(cfg, api_pool(cfg, out[i]));
        if (w[i] < 0)
            all_weighted = false;
        else
            total += w[i];
    }
    if (all_weighted && n <= 64 && total > 0) {
        double x = (double)rnd() / ((double)RAND_MAX + 1.0) * total;
        for (size_t i = 0; i < n; i++) {
            if (w[i] <= 0)
                continue;
            first = i;
            if (x < w[i])
                break;
            x -= w[i];
        }
    } else {
        first = rnd() % n;
    }
    const char *f = out[first];
    memmove(out + 1, out, first * sizeof(*out));
    out[0] = f;
    return n;
}

static void add_hostname(json_t *res, const char *name, const char *fqdn)
{
    json_t *o = json_object_get(res, name);
    if (!o) {
        o = json_object();
        json_object_set_new(res, name, o);
    }
    json_t *h = json_object_get(o, "hostname");
    if (!h) {
        json_object_set_new(o, "hostname", api_jstr(fqdn));
    } else if (json_is_string(h)) {
        json_t *a = json_array();
        json_array_append(a, h);
        json_array_append_new(a, api_jstr(fqdn));
        json_object_set_new(o, "hostname", a);
    } else {
        json_array_append_new(h, api_jstr(fqdn));
    }
}

#define API_MAX_CHECKOUT_VMS 1000

/* vmpooler's usage_stats counter "user.<user>.<what>.<pool>", dots in the
 * user and pool names turned into '_' (they separate metric path parts). */
static void usage_stat(api_req *r, const char *user, const char *what, const char *pool)
{
    char u[128], p[128];
    vmp_strlcpy(u, user ? user : "unauthenticated", sizeof(u));
    vmp_strlcpy(p, pool, sizeof(p));
    for (char *c = u; *c; c++)
        if (*c == '.')
            *c = '_';
    for (char *c = p; *c; c++)
        if (*c == '.')
            *c = '_';
    vmp_metrics_increment(r->api->metrics, "user.%s.%s.%s", u, what, p);
}

static void free_wants(want_req *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(w[i].name);
    free(w);
}

/* A checkout between its queueing and its reply. */
typedef struct checkout_job {
    api_req *r;
    want_req *wr; /* the names the wants point to */
    size_t nwr;
    vmp_store_want *wants;
    const char **cands;
    char *user;
    size_t total;
} checkout_job;

static void checkout_job_free(checkout_job *j)
{
    free_wants(j->wr, j->nwr);
    free(j->wants);
    free(j->cands);
    free(j->user);
    free(j);
}

/* The reply to a checkout once Redis answered (a vmp_store_checkout_done). */
static void checkout_done(void *ud, int rc, vmp_store_checkout_result *res, const vmp_err *err)
{
    checkout_job *j = ud;
    api_req *r = j->r;
    const vmp_config *cfg = r->cfg;
    if (rc == VMP_EAGAIN) {
        const char *empty = res->empty_want >= 0 && (size_t)res->empty_want < j->total
                                ? j->wants[res->empty_want].name
                                : "unknown";
        vmp_metrics_increment(r->api->metrics, "checkout.empty.%s", empty);
        api_reply_fail(r, 503);
        goto out;
    }
    if (rc != 0) {
        api_reply_store_error(r, err);
        goto out;
    }
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_true());
    for (size_t i = 0; i < res->nvms; i++) {
        const vmp_store_checked_out *v = &res->vms[i];
        const char *domain = api_pool_domain(cfg, v->pool);
        char fqdn[512];
        if (domain && *domain)
            snprintf(fqdn, sizeof(fqdn), "%s.%s", v->vm, domain);
        else
            vmp_strlcpy(fqdn, v->vm, sizeof(fqdn));
        add_hostname(o, j->wants[v->want].name, fqdn);
        vmp_metrics_increment(r->api->metrics, "checkout.success.%s", v->pool);
        if (cfg->global.usage_stats)
            usage_stat(r, j->user, "allocate", v->pool);
    }
    /* Wake the manager so it refills at once. */
    for (size_t i = 0; i < res->nvms; i++)
        api_event(r->api, "checkout", res->vms[i].pool);
    api_reply(r, 200, o);
out:
    vmp_store_checkout_result_clear(res);
    if (r->deferred)
        api_answer(r);
    checkout_job_free(j);
}

/* Checks out what wr asks for (taking wr over). */
static void allocate(api_req *r, want_req *wr, size_t nwr)
{
    const vmp_config *cfg = r->cfg;
    size_t total = 0;
    for (size_t i = 0; i < nwr; i++)
        total += (size_t)wr[i].count;
    checkout_job *j = calloc(1, sizeof(*j));
    if (!j) {
        free_wants(wr, nwr);
        api_reply_error(r, 500, "out of memory");
        return;
    }
    j->wr = wr;
    j->nwr = nwr;
    if (total > API_MAX_CHECKOUT_VMS) {
        checkout_job_free(j);
        api_reply_error(r, 400, "VM count must be at most 1000 in one request");
        return;
    }
    j->r = r;
    j->total = total;
    const char *token = NULL;
    if (r->st->auth_configured && r->token) {
        if (!api_need_token(r, &j->user)) {
            checkout_job_free(j);
            return;
        }
        token = r->token;
    }
    vmp_store *s = api_store(r);
    if (!s) {
        checkout_job_free(j);
        return;
    }
    j->wants = calloc(total + 1, sizeof(*j->wants));
    j->cands = calloc((total + 1) * (cfg->n_pools + 1), sizeof(*j->cands));
    if (!j->wants || !j->cands) {
        api_reply_error(r, 500, "out of memory");
        checkout_job_free(j);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < nwr; i++) {
        for (long long c = 0; c < wr[i].count; c++, k++) {
            const char **cp = j->cands + k * (cfg->n_pools + 1);
            j->wants[k].name = wr[i].name;
            j->wants[k].pools = cp;
            j->wants[k].npools = candidates(cfg, wr[i].name, cp, cfg->n_pools + 1);
        }
    }
    vmp_store_checkout_opts co = {0};
    co.token = token;
    co.user = token ? j->user : NULL;
    co.lifetime = token && cfg->global.vm_lifetime_auth > 0 ? cfg->global.vm_lifetime_auth : 0;
    co.now = r->now;
    vmp_err err = {0};
    /* Joins the other requests of this loop turn in one Redis round trip;
     * the reply is built by checkout_done. */
    vmp_store_batch *b = api_batch(r);
    if (b && vmp_store_batch_checkout(b, j->wants, total, &co, checkout_done, j, &err) == 0) {
        api_defer(r);
        return;
    }
    vmp_store_checkout_result res = {0};
    int rc = vmp_store_checkout(s, j->wants, total, &co, &res, &err);
    checkout_done(j, rc, &res, &err);
}

static void checkout_body(api_req *r)
{
    vmp_metrics_increment(r->api->metrics, "http_requests_vm_total.post.vm.checkout");
    json_t *payload = body_object(r, true);
    if (!payload)
        return;
    size_t n = json_object_size(payload);
    want_req *w = calloc(n + 1, sizeof(*w));
    size_t nw = 0;
    const char *key;
    json_t *val;
    char msg[128];
    if (!w) {
        api_reply_error(r, 500, "out of memory");
        goto out;
    }
    json_object_foreach(payload, key, val)
    {
        const char *e = pool_name_error(key);
        if (e) {
            api_reply_error(r, 400, e);
            goto out;
        }
        long long count = 0;
        e = integer_error(val, NULL, "VM count", 1, 100, &count, msg, sizeof(msg));
        if (e) {
            api_reply_error(r, 400, e);
            goto out;
        }
        w[nw].name = vmp_strdup(key);
        w[nw++].count = count;
    }
    if (nw == 0) {
        vmp_metrics_increment(r->api->metrics, "checkout.invalid.unknown");
        api_reply_fail(r, 404);
        goto out;
    }
    bool invalid = false;
    for (size_t i = 0; i < nw; i++) {
        if (!api_pool_exists(r->cfg, w[i].name)) {
            vmp_metrics_increment(r->api->metrics, "checkout.invalid.%s", w[i].name);
            invalid = true;
        }
    }
    if (invalid) {
        api_reply_fail(r, 404);
        goto out;
    }
    allocate(r, w, nw);
    w = NULL;
out:
    if (w)
        free_wants(w, nw);
    json_decref(payload);
}

/* "a+b+a" -> a:2, b:1 in order of first appearance. */
static want_req *split_templates(const char *spec, size_t *n_out)
{
    size_t cap = 1;
    for (const char *p = spec; *p; p++)
        if (*p == '+')
            cap++;
    want_req *w = calloc(cap + 1, sizeof(*w));
    if (!w)
        return NULL;
    size_t n = 0;
    const char *p = spec;
    while (1) {
        const char *e = strchr(p, '+');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        /* Ruby's split drops trailing empty fields */
        bool trailing = true;
        for (const char *q = p; *q; q++)
            if (*q != '+')
                trailing = false;
        if (trailing && l == 0)
            break;
        size_t i;
        for (i = 0; i < n; i++)
            if (strlen(w[i].name) == l && !strncmp(w[i].name, p, l))
                break;
        if (i == n) {
            w[n].name = strndup(p, l);
            w[n].count = 0;
            n++;
        }
        w[i].count++;
        if (!e)
            break;
        p = e + 1;
    }
    *n_out = n;
    return w;
}

static void checkout_path(api_req *r, const char *spec)
{
    vmp_metrics_increment(r->api->metrics, "http_requests_vm_total.get.vm.template");
    size_t n = 0;
    want_req *w = split_templates(spec, &n);
    if (!w) {
        api_reply_error(r, 500, "out of memory");
        return;
    }
    bool invalid = n == 0;
    if (n == 0)
        vmp_metrics_increment(r->api->metrics, "checkout.invalid.unknown");
    for (size_t i = 0; i < n; i++) {
        if (!w[i].name || !api_pool_exists(r->cfg, w[i].name)) {
            vmp_metrics_increment(r->api->metrics, "checkout.invalid.%s",
                                  w[i].name ? w[i].name : "unknown");
            invalid = true;
        }
    }
    if (invalid) {
        api_reply_fail(r, 404);
        free_wants(w, n);
        return;
    }
    allocate(r, w, n);
}

/* ---- GET /vm/<hostname> ------------------------------------------------------------ */

static double round2(double v)
{
    double x = v * 100.0;
    if (x > 9e18 || x < -9e18)
        return v;
    return (double)(long long)(x + (x >= 0 ? 0.5 : -0.5)) / 100.0;
}

/* Validates a hostname from the path; answers 400 with the reason when it
 * is not one. */
static bool hostname_ok(api_req *r, const char *host)
{
    const char *e = api_hostname_error(host);
    if (e)
        api_reply_error(r, 400, e);
    return e == NULL;
}

static void vm_get(api_req *r, const char *host)
{
    vmp_metrics_increment(r->api->metrics, "http_requests_vm_total.get.vm.hostname");
    if (!hostname_ok(r, host))
        return;
    char name[API_HOST_MAX];
    api_hostname_short(host, name, sizeof(name));
    vmp_store *s = api_store(r);
    if (!s)
        return;
    vmp_strlist kv = {0};
    vmp_err err = {0};
    if (vmp_store_vm_getall(s, name, &kv, &err) != 0) {
        api_reply_store_error(r, &err);
        return;
    }
    if (kv.n == 0) {
        api_reply_fail(r, 404);
        return;
    }
    const char *tmpl = vmp_store_kv_get(&kv, "template");
    const char *lifetime = vmp_store_kv_get(&kv, "lifetime");
    const char *destroy = vmp_store_kv_get(&kv, "destroy");
    const char *checkout = vmp_store_kv_get(&kv, "checkout");
    const char *check = vmp_store_kv_get(&kv, "check");
    json_t *vm = json_object();
    json_object_set_new(vm, "template", tmpl ? api_jstr(tmpl) : json_null());
    long long lt = lifetime ? strtoll(lifetime, NULL, 10) : r->cfg->global.vm_lifetime;
    json_object_set_new(vm, "lifetime", json_integer(lt));
    double co = 0, de = 0;
    bool have_co = checkout && vmp_time_parse(checkout, &co) == 0;
    if (destroy) {
        if (have_co && vmp_time_parse(destroy, &de) == 0)
            json_object_set_new(vm, "running", json_real(round2((de - co) / 3600.0)));
        json_object_set_new(vm, "state", json_string("destroyed"));
    } else if (checkout) {
        double own = lifetime ? (double)strtoll(lifetime, NULL, 10) : 0;
        char st[48], et[48];
        vmp_time_format_rfc3339(co, st, sizeof(st));
        vmp_time_format_rfc3339(co + own * 3600.0, et, sizeof(et));
        json_object_set_new(vm, "running", json_real(round2((r->now - co) / 3600.0)));
        json_object_set_new(vm, "remaining",
                            json_real(round2((co + own * 3600.0 - r->now) / 3600.0)));
        json_object_set_new(vm, "start_time", json_string(st));
        json_object_set_new(vm, "end_time", json_string(et));
        json_object_set_new(vm, "state", json_string("running"));
    } else if (check) {
        json_object_set_new(vm, "state", json_string("ready"));
    } else {
        json_object_set_new(vm, "state", json_string("pending"));
    }
    for (size_t i = 0; i + 1 < kv.n; i += 2) {
        const char *k = kv.v[i];
        if (!strncmp(k, "tag:", 4) && k[4]) {
            json_t *tags = json_object_get(vm, "tags");
            if (!tags) {
                tags = json_object();
                json_object_set_new(vm, "tags", tags);
            }
            json_object_set_new(tags, k + 4, api_jstr(kv.v[i + 1]));
        }
        if (!strncmp(k, "snapshot:", 9) && k[9]) {
            json_t *snaps = json_object_get(vm, "snapshots");
            if (!snaps) {
                snaps = json_array();
                json_object_set_new(vm, "snapshots", snaps);
            }
            json_array_append_new(snaps, api_jstr(k + 9));
        }
    }
    const char *disk = vmp_store_kv_get(&kv, "disk");
    if (disk) {
        json_t *a = json_array();
        const char *p = disk;
        while (*p) {
            const char *c = strchr(p, ':');
            size_t l = c ? (size_t)(c - p) : strlen(p);
            char *part = strndup(p, l);
            json_array_append_new(a, api_jstr(part ? part : ""));
            free(part);
            if (!c)
                break;
            p = c + 1;
        }
        /* Ruby's split drops trailing empty fields */
        while (json_array_size(a) > 0 &&
               json_string_length(json_array_get(a, json_array_size(a) - 1)) == 0)
            json_array_remove(a, json_array_size(a) - 1);
        json_object_set_new(vm, "disk", a);
    }
    const char *ip = vmp_store_kv_get(&kv, "ip");
    json_object_set_new(vm, "ip", api_jstr(ip ? ip : ""));
    const char *pool = vmp_store_kv_get(&kv, "pool");
    if (pool) {
        const char *domain = api_pool_domain(r->cfg, pool);
        if (domain && *domain) {
            char fqdn[512];
            snprintf(fqdn, sizeof(fqdn), "%s.%s", name, domain);
            json_object_set_new(vm, "fqdn", api_jstr(fqdn));
        }
    }
    const char *h = vmp_store_kv_get(&kv, "host");
    if (h)
        json_object_set_new(vm, "host", api_jstr(h));
    const char *mig = vmp_store_kv_get(&kv, "migrated");
    if (mig)
        json_object_set_new(vm, "migrated", api_jstr(mig));
    json_t *res = json_object();
    json_object_set_new(res, "ok", json_true());
    json_object_set_new(res, name, vm);
    api_reply(r, 200, res);
    vmp_strlist_clear(&kv);
}

/* ---- PUT /vm/<hostname> ------------------------------------------------------------- */

/* Ruby's Hash#inspect of a tags object (for vmpooler's messages). */
static void inspect(const json_t *v, vmp_buf *b)
{
    if (json_is_object(v)) {
        vmp_buf_puts(b, "{");
        const char *k;
        json_t *x;
        bool first = true;
        json_object_foreach((json_t *)v, k, x)
        {
            if (!first)
                vmp_buf_puts(b, ", ");
            first = false;
            vmp_buf_printf(b, "\"%s\"=>", k);
            inspect(x, b);
        }
        vmp_buf_puts(b, "}");
    } else if (json_is_array(v)) {
        vmp_buf_puts(b, "[");
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                vmp_buf_puts(b, ", ");
            inspect(json_array_get(v, i), b);
        }
        vmp_buf_puts(b, "]");
    } else if (json_is_string(v)) {
        vmp_buf_printf(b, "\"%s\"", json_string_value(v));
    } else if (json_is_null(v)) {
        vmp_buf_puts(b, "nil");
    } else {
        char tmp[64];
        value_to_s(v, tmp, sizeof(tmp));
        vmp_buf_puts(b, tmp);
    }
}

static const char *tag_error(const char *key, const json_t *value)
{
    if (!*key)
        return "Tag key is required";
    if (strlen(key) > 50)
        return "Tag key too long";
    for (const char *p = key; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
            return "Invalid tag key format";
    if (!value || json_is_null(value) || json_is_false(value))
        return NULL;
    if (!json_is_string(value))
        return "Tag value must be a string";
    const char *s = json_string_value(value);
    if (json_string_length(value) > 255)
        return "Tag value too long";
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!(isalnum(c) || c == '_' || c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
              c == '\f' || c == '\v' || c == '-' || c == '.' || c == '@' || c == ':' || c == '/'))
            return "Tag value contains invalid characters";
    }
    if (strlen(s) != json_string_length(value))
        return "Tag value contains invalid characters";
    return NULL;
}

/* Short name of host into name; the store when that VM exists. Otherwise the reply is sent
 * (store error, or 404 for an unknown VM) and the result is NULL. */
static vmp_store *known_vm(api_req *r, const char *host, char *name, size_t n)
{
    api_hostname_short(host, name, n);
    vmp_store *s = api_store(r);
    if (!s)
        return NULL;
    vmp_err err = {0};
    bool exists = false;
    if (vmp_store_vm_exists(s, name, &exists, &err) != 0) {
        api_reply_store_error(r, &err);
        return NULL;
    }
    if (!exists) {
        api_reply_fail(r, 404);
        return NULL;
    }
    return s;
}

static void vm_put(api_req *r, const char *host)
{
    vmp_metrics_increment(r->api->metrics, "http_requests_vm_total.put.vm.modify");
    if (!hostname_ok(r, host))
        return;
    char name[API_HOST_MAX];
    vmp_store *s = known_vm(r, host, name, sizeof(name));
    if (!s)
        return;
    vmp_err err = {0};
    json_t *payload = body_object(r, true);
    if (!payload)
        return;
    json_t *failure = json_array();
    const char *key;
    json_t *arg;
    vmp_buf b = VMP_BUF_INIT;
    if (json_object_get(payload, "lifetime") && r->st->auth_configured && !api_need_token(r, NULL))
        goto out;
    json_object_foreach(payload, key, arg)
    {
        vmp_buf_reset(&b);
        if (!strcmp(key, "lifetime")) {
            long long lt = value_to_i(arg);
            char as[256];
            value_to_s(arg, as, sizeof(as));
            if (lt <= 0) {
                vmp_buf_printf(&b, "Lifetime must be a positive integer (got %s)", as);
                json_array_append_new(failure, api_jstr(vmp_buf_str(&b)));
                continue;
            }
            long long max = r->cfg->global.max_lifetime_upper_limit;
            if (max > 0 && lt >= max) {
                vmp_buf_printf(&b,
                               "You provided a lifetime (%s) that exceeds the configured "
                               "maximum of %lld.",
                               as, max);
                json_array_append_new(failure, api_jstr(vmp_buf_str(&b)));
            }
        } else if (!strcmp(key, "tags")) {
            if (!json_is_object(arg)) {
                vmp_buf_puts(&b, "You provided tags (");
                inspect(arg, &b);
                vmp_buf_puts(&b, ") as something other than a hash.");
                json_array_append_new(failure, api_jstr(vmp_buf_str(&b)));
                continue;
            }
            const char *tk;
            json_t *tv;
            json_object_foreach(arg, tk, tv)
            {
                const char *te = tag_error(tk, tv);
                if (te)
                    json_array_append_new(failure, json_string(te));
            }
            const vmp_global_cfg *g = &r->cfg->global;
            if (g->allowed_tags_set) {
                bool unknown = false;
                json_object_foreach(arg, tk, tv)
                {
                    if (!vmp_strlist_contains(&g->allowed_tags, tk))
                        unknown = true;
                }
                if (unknown) {
                    vmp_buf_puts(&b, "You provided unsuppored tags (");
                    inspect(arg, &b);
                    vmp_buf_puts(&b, ").");
                    json_array_append_new(failure, api_jstr(vmp_buf_str(&b)));
                }
            }
        } else {
            vmp_buf_puts(&b, "Unknown argument ");
            if (json_is_string(arg)) {
                vmp_buf_puts(&b, json_string_value(arg));
            } else {
                char as[256];
                if (json_is_object(arg) || json_is_array(arg))
                    inspect(arg, &b);
                else {
                    value_to_s(arg, as, sizeof(as));
                    vmp_buf_puts(&b, as);
                }
            }
            vmp_buf_puts(&b, ".");
            json_array_append_new(failure, api_jstr(vmp_buf_str(&b)));
        }
    }
    if (json_array_size(failure) > 0) {
        json_t *res = json_object();
        json_object_set_new(res, "ok", json_false());
        json_object_set(res, "failure", failure);
        api_reply(r, 400, res);
        goto out;
    }
    json_object_foreach(payload, key, arg)
    {
        int rc = 0;
        if (!strcmp(key, "lifetime")) {
            rc = vmp_store_vm_lifetime_set(s, name, value_to_i(arg), &err);
        } else if (!strcmp(key, "tags")) {
            const char *tk;
            json_t *tv;
            json_object_foreach(arg, tk, tv)
            {
                if (!json_is_string(tv) || json_string_length(tv) == 0)
                    continue;
                char *val = api_tagfilter_apply(r->st, tk, json_string_value(tv));
                if (!val) {
                    rc = vmp_err_set(&err, VMP_ENOMEM, "out of memory");
                    break;
                }
                /* a filter may leave nothing: export_tags skips empty values */
                if (*val)
                    rc = vmp_store_vm_tag_set(s, name, tk, val, r->now, &err);
                free(val);
                if (rc)
                    break;
            }
        }
        if (rc == VMP_ENOENT) {
            api_reply_fail(r, 404);
            goto out;
        }
        if (rc) {
            api_reply_store_error(r, &err);
            goto out;
        }
    }
    json_t *res = json_object();
    json_object_set_new(res, "ok", json_true());
    api_reply(r, 200, res);
out:
    vmp_buf_free(&b);
    json_decref(failure);
    json_decref(payload);
}

/* ---- DELETE /vm/<hostname> ------------------------------------------------------------- */

/* The reply to a return once Redis answered (a vmp_store_return_done). */
static void return_done(void *ud, int rc, const char *pool, const char *user, const vmp_err *err)
{
    api_req *r = ud;
    if (rc == VMP_ENOENT) {
        api_reply_fail(r, 404);
    } else if (rc == VMP_EFAILED) {
        api_reply_fail(r, 401);
        r->www_auth = true;
    } else if (rc == VMP_ESTATE) {
        vmp_metrics_increment(r->api->metrics, "delete.failed");
        api_reply_fail(r, 404);
    } else if (rc) {
        api_reply_store_error(r, err);
    } else {
        vmp_metrics_increment(r->api->metrics, "delete.success");
        if (r->cfg->global.usage_stats)
            usage_stat(r, user, "destroy", pool ? pool : "unknown");
        if (pool)
            api_event(r->api, "return", pool);
        json_t *res = json_object();
        json_object_set_new(res, "ok", json_true());
        api_reply(r, 200, res);
    }
    if (r->deferred)
        api_answer(r);
}

static void vm_delete(api_req *r, const char *host)
{
    vmp_metrics_increment(r->api->metrics, "http_requests_vm_total.delete.vm.hostname");
    if (!hostname_ok(r, host))
        return;
    char name[API_HOST_MAX];
    api_hostname_short(host, name, sizeof(name));
    vmp_store *s = api_store(r);
    if (!s)
        return;
    vmp_err err = {0};
    /* Token check and return in one atomic script, joining the other
     * requests of this loop turn in one Redis round trip. */
    vmp_store_batch *b = api_batch(r);
    if (b && vmp_store_batch_vm_return_checked(b, name, r->token, r->now, return_done, r, &err) ==
                 0) {
        api_defer(r);
        return;
    }
    char *pool = NULL, *user = NULL;
    int rc = vmp_store_vm_return_checked(s, name, r->token, r->now, &pool, &user, &err);
    return_done(r, rc, pool, user, &err);
    free(pool);
    free(user);
}

/* ---- disk and snapshots ---------------------------------------------------------------------- */

static void vm_disk(api_req *r, const char *host, const char *size)
{
    vmp_metrics_increment(r->api->metrics, "http_requests_vm_total.post.vm.disksize");
    if (r->st->auth_configured && !api_need_token(r, NULL))
        return;
    if (!hostname_ok(r, host))
        return;
    char msg[128];
    long long gb = 0;
    const char *e = integer_error(NULL, size, "Disk size", 1, 2048, &gb, msg, sizeof(msg));
    if (e) {
        api_reply_error(r, 400, e);
        return;
    }
    char name[API_HOST_MAX];
    vmp_store *s = known_vm(r, host, name, sizeof(name));
    if (!s)
        return;
    vmp_err err = {0};
    if (vmp_store_task_push(s, VMP_TASK_DISK, name, size, &err) != 0) {
        api_reply_store_error(r, &err);
        return;
    }
    api_event(r->api, "task", "");
    json_t *res = json_object();
    json_object_set_new(res, "ok", json_true());
    json_t *o = json_object();
    char d[64];
    snprintf(d, sizeof(d), "+%sgb", size);
    json_object_set_new(o, "disk", json_string(d));
    json_object_set_new(res, name, o);
    api_reply(r, 202, res);
}

static void vm_snapshot(api_req *r, const char *host)
{
    vmp_metrics_increment(r->api->metrics, "http_requests_vm_total.post.vm.snapshot");
    if (r->st->auth_configured && !api_need_token(r, NULL))
        return;
    char name[API_HOST_MAX];
    vmp_store *s = known_vm(r, host, name, sizeof(name));
    if (!s)
        return;
    vmp_err err = {0};
    char snap[33];
    api_random_name(snap);
    if (vmp_store_task_push(s, VMP_TASK_SNAPSHOT, name, snap, &err) != 0) {
        api_reply_store_error(r, &err);
        return;
    }
    api_event(r->api, "task", "");
    json_t *res = json_object();
    json_object_set_new(res, "ok", json_true());
    json_t *o = json_object();
    json_object_set_new(o, "snapshot", json_string(snap));
    json_object_set_new(res, name, o);
    api_reply(r, 202, res);
}

static void vm_revert(api_req *r, const char *host, const char *snap)
{
    vmp_metrics_increment(r->api->metrics, "http_requests_vm_total.post.vm.snapshot");
    if (r->st->auth_configured && !api_need_token(r, NULL))
        return;
    char name[API_HOST_MAX];
    api_hostname_short(host, name, sizeof(name));
    vmp_store *s = api_store(r);
    if (!s)
        return;
    vmp_err err = {0};
    char *val = NULL;
    char field[512];
    snprintf(field, sizeof(field), "snapshot:%s", snap);
    if (vmp_store_vm_get(s, name, field, &val, &err) != 0) {
        api_reply_store_error(r, &err);
        return;
    }
    long long v = val ? strtoll(val, NULL, 10) : 0;
    free(val);
    if (v == 0) {
        api_reply_fail(r, 404);
        return;
    }
    if (vmp_store_task_push(s, VMP_TASK_SNAPSHOT_REVERT, name, snap, &err) != 0) {
        api_reply_store_error(r, &err);
        return;
    }
    api_event(r->api, "task", "");
    json_t *res = json_object();
    json_object_set_new(res, "ok", json_true());
    api_reply(r, 202, res);
}

void api_route_vm(api_req *r)
{
    size_t n = r->nsegs;
    api_method m = r->method;
    if (n == 1 && m == API_GET)
        api_route_vm_list(r);
    else if (n == 1 && m == API_POST)
        checkout_body(r);
    else if (n == 2 && m == API_POST)
        checkout_path(r, r->segs[1]);
    else if (n == 2 && m == API_GET)
        vm_get(r, r->segs[1]);
    else if (n == 2 && m == API_PUT)
        vm_put(r, r->segs[1]);
    else if (n == 2 && m == API_DELETE)
        vm_delete(r, r->segs[1]);
    else if (n == 4 && m == API_POST && !strcmp(r->segs[2], "disk"))
        vm_disk(r, r->segs[1], r->segs[3]);
    else if (n == 3 && m == API_POST && !strcmp(r->segs[2], "snapshot"))
        vm_snapshot(r, r->segs[1]);
    else if (n == 4 && m == API_POST && !strcmp(r->segs[2], "snapshot"))
        vm_revert(r, r->segs[1], r->segs[3]);
    else
        api_reply_fail(r, 404);
}
