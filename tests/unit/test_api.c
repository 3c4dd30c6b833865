/*
 * Tests for src/api/: the real HTTP server (in this process, on a free
 * loopback port) against a private redis-server, driven over HTTP with
 * libcurl. Redis is seeded through the store API and read back through it.
 * Bodies are compared as JSON, and byte-for-byte in a few places to pin
 * vmpooler's pretty printing.
 *
 * Time: the API runs on a manual clock at NOW; TZ is UTC so the time strings
 * written to Redis are literal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "api/api.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "redis_server.h"
#include "store/store.h"
#include "util.h"

#define NOW 1700010800.0 /* 2023-11-15 01:13:20 UTC */
#define TODAY "2023-11-15"

static vmp_test_redis *srv;
static char skip_msg[256];
static vmp_store_opts sopts;
static vmp_store *st;
static vmp_clock *clk;
static vmp_config *cfg;
static vmp_api *api;
static int port;
static __thread int tport; /* a client thread's server, when set */

static const char *base_yaml = "---\n"
                               ":config:\n"
                               "  vm_lifetime: 12\n"
                               "  vm_lifetime_auth: 2\n"
                               "  experimental_features: true\n"
                               "  max_lifetime_upper_limit: 100\n"
                               "  max_ondemand_instances_per_request: 5\n"
                               "%s"
                               ":dns_configs:\n"
                               "  :example:\n"
                               "    dns_class: dynamic-dns\n"
                               "    domain: example.com\n"
                               ":providers:\n"
                               "  :dummy:\n"
                               "    filename: /tmp/none\n"
                               ":pools:\n"
                               "  - name: pool1\n"
                               "    alias: [ 'both' ]\n"
                               "    template: templates/pool1\n"
                               "    size: 5\n"
                               "    provider: dummy\n"
                               "    dns_plugin: example\n"
                               "  - name: pool2\n"
                               "    alias: 'both'\n"
                               "    template: templates/pool2\n"
                               "    size: 0\n"
                               "    provider: dummy\n"
                               "    dns_plugin: example\n"
                               "  - name: pool3\n"
                               "    template: templates/pool3\n"
                               "    size: 2\n"
                               "    provider: dummy\n"
                               "    dns_plugin: example\n"
                               "%s";

/* ---- server lifecycle ---------------------------------------------------- */

static void flushall(void)
{
    /* the store has no FLUSHALL; restart the private server instead */
    char msg[256];
    vmp_store_free(st);
    st = NULL;
    assert_int_equal(vmp_test_redis_restart(srv, msg, sizeof(msg)), 0);
    vmp_err err = {0};
    assert_int_equal(vmp_store_open(&sopts, &st, &err), 0);
}

/* (Re)starts the API with a config built from base_yaml plus extra text. */
static void start_api(const char *config_extra, const char *top_extra)
{
    if (api) {
        vmp_api_free(api);
        api = NULL;
    }
    vmp_config_free(cfg);
    cfg = NULL;
    char yaml[8192];
    snprintf(yaml, sizeof(yaml), base_yaml, config_extra ? config_extra : "",
             top_extra ? top_extra : "");
    vmp_config_opts co = {.no_env = true};
    vmp_strlist errors = {0};
    vmp_err err = {0};
    int rc = vmp_config_load_string(yaml, "<test>", &co, &cfg, &errors, &err);
    if (rc != 0)
        fail_msg("config: %s", err.msg);
    vmp_strlist_clear(&errors);
    cfg->loaded_at = NOW - 100;
    vmp_api_opts ao = {.config = cfg,
                       .store = &sopts,
                       .listen_port = VMP_API_PORT_ANY,
                       .threads = 2,
                       .clock = clk};
    assert_int_equal(vmp_api_new(&ao, &api, &err), 0);
    if (vmp_api_start(api, &err) != 0)
        fail_msg("start: %s", err.msg);
    port = vmp_api_port(api);
    assert_true(port > 0);
}

static int setup(void **state)
{
    setenv("TZ", "UTC", 1);
    tzset();
    setenv("VMPOOLER_DEBUG", "1", 1);
    srv = vmp_test_redis_start(false, skip_msg, sizeof(skip_msg));
    if (!srv)
        return 0;
    memset(&sopts, 0, sizeof(sopts));
    sopts.socket = vmp_test_redis_socket(srv);
    vmp_err err = {0};
    if (vmp_store_open(&sopts, &st, &err) != 0) {
        snprintf(skip_msg, sizeof(skip_msg), "store: %s", err.msg);
        return 0;
    }
    clk = vmp_clock_manual_new(NOW);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static void slapd_stop(void);

static int teardown(void **state)
{
    slapd_stop();
    vmp_api_free(api);
    vmp_config_free(cfg);
    vmp_store_free(st);
    vmp_test_redis_stop(srv);
    vmp_clock_free(clk);
    curl_global_cleanup();
    return 0;
}

/* Every test starts on an empty Redis with the default config. */
static int each(void **state)
{
    if (!srv || !st)
        return 0;
    flushall();
    start_api(NULL, NULL);
    return 0;
}

#define NEED_SERVER()                                                                              \
    do {                                                                                           \
        if (!srv || !st) {                                                                         \
            print_message("skipped: %s\n", skip_msg);                                              \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* ---- HTTP client ------------------------------------------------------------ */

typedef struct resp {
    long status;
    vmp_buf body;
    vmp_buf headers;
} resp;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    vmp_buf_append(ud, p, sz * n);
    return sz * n;
}

/* Sends a request; extra is a NULL-terminated list of header lines. */
static resp *req(const char *method, const char *path, const char *body, const char *userpwd, ...)
{
    resp *r = calloc(1, sizeof(*r));
    CURL *c = curl_easy_init();
    char url[2048];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", tport ? tport : port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (userpwd) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, userpwd);
    }
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    va_list ap;
    va_start(ap, userpwd);
    for (const char *h = va_arg(ap, const char *); h; h = va_arg(ap, const char *))
        hl = curl_slist_append(hl, h);
    va_end(ap);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    if (!r->body.s)
        vmp_buf_puts(&r->body, "");
    return r;
}

static void resp_free(resp *r)
{
    if (!r)
        return;
    vmp_buf_free(&r->body);
    vmp_buf_free(&r->headers);
    free(r);
}

static json_t *body_json(const resp *r)
{
    json_error_t e;
    json_t *v = json_loads(vmp_buf_str(&r->body), JSON_DECODE_ANY, &e);
    if (!v)
        fail_msg("not JSON (%s): %s", e.text, vmp_buf_str(&r->body));
    return v;
}

/* Asserts status and that the body equals the JSON text want (as JSON). */
static void expect_json(resp *r, long status, const char *want)
{
    json_error_t e;
    json_t *w = json_loads(want, JSON_DECODE_ANY, &e);
    if (!w)
        fail_msg("bad expected JSON: %s", e.text);
    json_t *g = body_json(r);
    if (r->status != status || !json_equal(w, g))
        fail_msg("want %ld %s\n got %ld %s", status, want, r->status, vmp_buf_str(&r->body));
    json_decref(w);
    json_decref(g);
    resp_free(r);
}

static bool has_header(const resp *r, const char *line)
{
    return strcasestr(vmp_buf_str(&r->headers), line) != NULL;
}

/* ---- seeding ------------------------------------------------------------------- */

static void seed_ready(const char *pool, const char *vm)
{
    vmp_err err = {0};
    assert_int_equal(
        vmp_store_clone_start(st, pool, vm, "example.com", NULL, NULL, NOW - 600, &err), 0);
    assert_int_equal(vmp_store_pending_ready(st, pool, vm, 0, NOW - 300, NULL, NULL, &err), 0);
}

static long long count(const char *pool, vmp_vm_state s)
{
    vmp_store_pool_counts c;
    vmp_err err = {0};
    assert_int_equal(vmp_store_pool_counts_get(st, pool, &c, &err), 0);
    return c.n[s];
}

static char *vmfield(const char *vm, const char *field)
{
    char *v = NULL;
    vmp_err err = {0};
    assert_int_equal(vmp_store_vm_get(st, vm, field, &v, &err), 0);
    return v;
}

/* ---- status endpoints ------------------------------------------------------------- */

static void test_status(void **state)
{
    NEED_SERVER();
    seed_ready("pool1", "vm1");
    seed_ready("pool1", "vm2");
    resp *r = req("GET", "/api/v3/status", NULL, NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_true(has_header(r, "Content-Type: application/json"));
    json_t *j = body_json(r);
    /* keys sorted as vmpooler sorts them */
    const char *order[] = {"boot", "capacity", "clone", "pools", "queue", "status"};
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) assert_string_equal(k, order[i++]);
    assert_int_equal(i, 6);
    json_t *want = json_pack(
        "{s:{s:i,s:i,s:i,s:i,s:s,s:[s]},s:{s:i,s:i,s:i,s:i,s:s,s:s},s:{s:i,s:i,s:i,s:i,s:s}}",
        "pool1", "ready", 2, "running", 0, "pending", 0, "max", 5, "lastBoot",
        "2023-11-15 01:08:20 +0000", "alias", "both", "pool2", "ready", 0, "running", 0, "pending",
        0, "max", 0, "lastBoot", "", "alias", "both", "pool3", "ready", 0, "running", 0, "pending",
        0, "max", 2, "lastBoot", "");
    if (!json_equal(want, json_object_get(j, "pools")))
        fail_msg("pools: %s", vmp_buf_str(&r->body));
    json_decref(want);
    json_t *status = json_object_get(j, "status");
    assert_false(json_is_true(json_object_get(status, "ok")));
    assert_string_equal(json_string_value(json_object_get(status, "message")),
                        "Found 1 empty pools.");
    assert_string_equal(json_string_value(json_array_get(json_object_get(status, "empty"), 0)),
                        "pool3");
    assert_true(json_real_value(json_object_get(status, "uptime")) == 100.0);
    json_t *cap = json_object_get(j, "capacity");
    assert_int_equal(json_integer_value(json_object_get(cap, "current")), 2);
    assert_int_equal(json_integer_value(json_object_get(cap, "total")), 7);
    assert_true(json_real_value(json_object_get(cap, "percent")) == 28.6);
    json_t *q = json_object_get(j, "queue");
    assert_int_equal(json_integer_value(json_object_get(q, "ready")), 2);
    assert_int_equal(json_integer_value(json_object_get(q, "total")), 2);
    assert_int_equal(json_integer_value(json_object_get(q, "requested")), 0);
    /* today's boot metrics from boot__<date> */
    json_t *boot = json_object_get(j, "boot");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(boot, "count"), "total")),
                     2);
    assert_true(json_real_value(json_object_get(json_object_get(boot, "duration"), "average")) ==
                300.0);
    json_decref(j);
    resp_free(r);

    /* view= (empty) gives only status; unknown names are ignored */
    r = req("GET", "/api/v3/status?view=", NULL, NULL, NULL);
    j = body_json(r);
    assert_int_equal(json_object_size(j), 1);
    assert_non_null(json_object_get(j, "status"));
    json_decref(j);
    resp_free(r);
    r = req("GET", "/api/v3/status?view=capacity,nonsense", NULL, NULL, NULL);
    j = body_json(r);
    assert_int_equal(json_object_size(j), 2);
    assert_non_null(json_object_get(j, "capacity"));
    json_decref(j);
    resp_free(r);
    /* view given without '=' means everything */
    r = req("GET", "/api/v3/status/?view", NULL, NULL, NULL);
    j = body_json(r);
    assert_int_equal(json_object_size(j), 6);
    json_decref(j);
    resp_free(r);
}

/* Ruby's JSON.pretty_generate, byte for byte. */
static void test_pretty_printing(void **state)
{
    NEED_SERVER();
    resp *r;
    r = req("GET", "/api/v3/status?view=", NULL, NULL, NULL);
    assert_string_equal(vmp_buf_str(&r->body), "{\n"
                                               "  \"status\": {\n"
                                               "    \"ok\": true,\n"
                                               "    \"message\": \"Battle station fully armed and "
                                               "operational.\",\n"
                                               "    \"uptime\": 100.0\n"
                                               "  }\n"
                                               "}");
    resp_free(r);
    r = req("GET", "/api/v3/poolstat", NULL, NULL, NULL);
    assert_string_equal(vmp_buf_str(&r->body), "{\n  \"pools\": {}\n}");
    resp_free(r);
    r = req("GET", "/api/v3/vm", NULL, NULL, NULL);
    assert_string_equal(vmp_buf_str(&r->body), "[\n  \"pool1\",\n  \"pool2\",\n  \"pool3\"\n]");
    resp_free(r);
    r = req("GET", "/nope", NULL, NULL, NULL);
    assert_int_equal(r->status, 404);
    assert_string_equal(vmp_buf_str(&r->body), "{\n  \"ok\": false\n}");
    resp_free(r);
    seed_ready("pool3", "vmx");
    r = req("POST", "/api/v3/vm/pool3", "", NULL, NULL);
    assert_string_equal(vmp_buf_str(&r->body), "{\n"
                                               "  \"ok\": true,\n"
                                               "  \"pool3\": {\n"
                                               "    \"hostname\": \"vmx.example.com\"\n"
                                               "  }\n"
                                               "}");
    resp_free(r);
}

static void test_poolstat_totalrunning(void **state)
{
    NEED_SERVER();
    seed_ready("pool1", "vm1");
    expect_json(req("GET", "/api/v3/poolstat?pool=pool3,both", NULL, NULL, NULL), 200,
                "{\"pools\":{\"pool1\":{\"max\":5,\"alias\":[\"both\"],\"ready\":1},"
                "\"pool2\":{\"max\":0,\"alias\":\"both\",\"ready\":0},"
                "\"pool3\":{\"max\":2,\"ready\":0}}}");
    expect_json(req("GET", "/api/v3/poolstat?pool=unknown", NULL, NULL, NULL), 200,
                "{\"pools\":{}}");
    expect_json(req("GET", "/api/v3/totalrunning", NULL, NULL, NULL), 200, "{\"running\":0}");
    expect_json(req("POST", "/api/v3/vm/pool1", NULL, NULL, NULL), 200,
                "{\"ok\":true,\"pool1\":{\"hostname\":\"vm1.example.com\"}}");
    expect_json(req("GET", "/api/v3/totalrunning", NULL, NULL, NULL), 200, "{\"running\":1}");
    /* a size override is what status and poolstat report */
    vmp_err err = {0};
    assert_int_equal(vmp_store_override_set(st, VMP_OVERRIDE_POOLSIZE, "pool3", "7", &err), 0);
    expect_json(req("GET", "/api/v3/poolstat?pool=pool3", NULL, NULL, NULL), 200,
                "{\"pools\":{\"pool3\":{\"max\":7,\"ready\":0}}}");
}

static void test_summary(void **state)
{
    NEED_SERVER();
    seed_ready("pool1", "vm1"); /* boot 300 s */
    vmp_err err = {0};
    assert_int_equal(vmp_store_clone_done(st, "pool1", "vm1", 12.5, NULL, NOW, &err), 0);
    assert_int_equal(vmp_store_vm_tag_set(st, "vm1", "team", "qa", NOW, &err), 0);
    resp *r = req("GET", "/api/v3/summary", NULL, NULL, NULL);
    assert_int_equal(r->status, 200);
    json_t *j = body_json(r);
    const char *order[] = {"daily", "boot", "clone", "tag"};
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) assert_string_equal(k, order[i++]);
    json_t *want = json_loads("{\"duration\":{\"total\":300.0,\"pool\":{\"pool1\":{\"total\":300.0,"
                              "\"min\":300.0,\"max\":300.0,\"average\":300.0}}},"
                              "\"count\":{\"total\":1,\"pool\":{\"pool1\":{\"total\":1}}}}",
                              0, NULL);
    if (!json_equal(want, json_object_get(j, "boot")))
        fail_msg("boot: %s", vmp_buf_str(&r->body));
    json_decref(want);
    want = json_loads("{\"team\":{\"qa\":1,\"total\":1}}", 0, NULL);
    assert_true(json_equal(want, json_object_get(j, "tag")));
    json_decref(want);
    json_t *day = json_array_get(json_object_get(j, "daily"), 0);
    assert_string_equal(json_string_value(json_object_get(day, "date")), TODAY);
    json_decref(j);
    resp_free(r);

    r = req("GET", "/api/v3/summary/clone/count?from=2023-11-14", NULL, NULL, NULL);
    j = body_json(r);
    want = json_loads("{\"clone\":{\"count\":{\"total\":1,\"pool\":{\"pool1\":{\"total\":1}}}},"
                      "\"daily\":[{\"date\":\"2023-11-14\",\"clone\":{\"count\":{\"total\":0}}},"
                      "{\"date\":\"2023-11-15\",\"clone\":{\"count\":{\"total\":1,\"pool\":"
                      "{\"pool1\":{\"total\":1}}}}}]}",
                      0, NULL);
    if (!json_equal(want, j))
        fail_msg("summary/clone/count: %s", vmp_buf_str(&r->body));
    json_decref(want);
    json_decref(j);
    resp_free(r);

    r = req("GET", "/api/v3/summary?from=2023-1-1", NULL, NULL, NULL);
    assert_int_equal(r->status, 400);
    assert_string_equal(vmp_buf_str(&r->body),
                        "Invalid date format '2023-1-1', must match YYYY-MM-DD.");
    resp_free(r);
    r = req("GET", "/api/v3/summary?from=2023-11-15&to=2023-11-01", NULL, NULL, NULL);
    assert_int_equal(r->status, 400);
    assert_string_equal(vmp_buf_str(&r->body),
                        "Date range is invalid, 'to' cannot come before 'from'.");
    resp_free(r);
    r = req("GET", "/api/v3/summary?from=2030-01-01&to=2030-01-02", NULL, NULL, NULL);
    assert_int_equal(r->status, 400);
    assert_string_equal(vmp_buf_str(&r->body),
                        "Date range is invalid, 'from' must be in the past.");
    resp_free(r);
    r = req("GET", "/api/v3/summary?from=2023-02-30", NULL, NULL, NULL);
    assert_int_equal(r->status, 400);
    resp_free(r);
    expect_json(req("GET", "/api/v3/summary/bogus", NULL, NULL, NULL), 404, "{\"ok\":false}");
}

/* ---- checkout and return ------------------------------------------------------------------ */

static void test_checkout_body(void **state)
{
    NEED_SERVER();
    seed_ready("pool1", "vm1");
    seed_ready("pool1", "vm2");
    seed_ready("pool3", "vm3");
    resp *r = req("POST", "/api/v3/vm", "{\"pool1\":\"2\",\"pool3\":1}", NULL, NULL);
    assert_int_equal(r->status, 200);
    json_t *j = body_json(r);
    const char *k;
    json_t *v;
    const char *order[] = {"ok", "pool1", "pool3"};
    size_t i = 0;
    json_object_foreach(j, k, v) assert_string_equal(k, order[i++]);
    json_t *h = json_object_get(json_object_get(j, "pool1"), "hostname");
    assert_true(json_is_array(h));
    assert_int_equal(json_array_size(h), 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "pool3"), "hostname")),
                        "vm3.example.com");
    json_decref(j);
    resp_free(r);
    assert_int_equal(count("pool1", VMP_VM_RUNNING), 2);
    assert_int_equal(count("pool1", VMP_VM_MIGRATING), 2);
    assert_int_equal(count("pool1", VMP_VM_READY), 0);
    char *co = vmfield("vm3", "checkout");
    assert_string_equal(co, "2023-11-15 01:13:20 +0000");
    free(co);
    char *lt = vmfield("vm3", "lifetime");
    assert_null(lt); /* no auth configured: no token fields, no lifetime */
}

static void test_checkout_all_or_nothing(void **state)
{
    NEED_SERVER();
    seed_ready("pool1", "vm1");
    seed_ready("pool3", "vm3");
    /* pool3 has one VM: asking two fails and puts vm1 back */
    expect_json(req("POST", "/api/v3/vm", "{\"pool1\":\"1\",\"pool3\":\"2\"}", NULL, NULL), 503,
                "{\"ok\":false}");
    assert_int_equal(count("pool1", VMP_VM_READY), 1);
    assert_int_equal(count("pool3", VMP_VM_READY), 1);
    assert_int_equal(count("pool1", VMP_VM_RUNNING), 0);
    assert_int_equal(count("pool1", VMP_VM_MIGRATING), 0);
    char *co = vmfield("vm1", "checkout");
    assert_null(co);
    /* path form: a+b+a counts occurrences */
    expect_json(req("POST", "/api/v3/vm/pool3+pool1+pool3", NULL, NULL, NULL), 503,
                "{\"ok\":false}");
    assert_int_equal(count("pool3", VMP_VM_READY), 1);
    expect_json(req("POST", "/api/v3/vm/pool3+pool1", NULL, NULL, NULL), 200,
                "{\"ok\":true,\"pool3\":{\"hostname\":\"vm3.example.com\"},"
                "\"pool1\":{\"hostname\":\"vm1.example.com\"}}");
}

static void test_checkout_alias(void **state)
{
    NEED_SERVER();
    seed_ready("pool2", "vm2");
    /* "both" is an alias of pool1 (empty) and pool2: answered under the
     * requested name */
    expect_json(req("POST", "/api/v3/vm", "{\"both\":\"1\"}", NULL, NULL), 200,
                "{\"ok\":true,\"both\":{\"hostname\":\"vm2.example.com\"}}");
    expect_json(req("POST", "/api/v3/vm/both", NULL, NULL, NULL), 503, "{\"ok\":false}");
}

static void test_checkout_errors(void **state)
{
    NEED_SERVER();
    seed_ready("pool1", "vm1");
    struct {
        const char *body;
        long status;
        const char *error;
    } cases[] = {
        {"[1]", 400, "Request body must be a JSON object"},
        {"\"x\"", 400, "Request body must be a JSON object"},
        {"{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{}}}}}}", 400, "Request body too complex"},
        {"{\"pool.1\":\"1\"}", 400, "Invalid pool name format"},
        {"{\"\":\"1\"}", 400, "Pool name is required"},
        {"{\"pool1\":\"0\"}", 400, "VM count must be at least 1"},
        {"{\"pool1\":101}", 400, "VM count must be at most 100"},
        {"{\"pool1\":\"99999999999999999999\"}", 400, "VM count must be a valid integer"},
        {"{\"pool1\":\"-1\"}", 400, "VM count must be a valid integer"},
        {"{\"pool1\":1.5}", 400, "VM count must be a valid integer"},
        {"{\"pool1\":null}", 400, "VM count is required"},
    };
    for (size_t i = 0; i < VMP_ARRAY_LEN(cases); i++) {
        resp *r = req("POST", "/api/v3/vm", cases[i].body, NULL, NULL);
        json_t *j = body_json(r);
        if (r->status != cases[i].status ||
            strcmp(json_string_value(json_object_get(j, "error")) ?: "", cases[i].error) != 0)
            fail_msg("%s: got %ld %s", cases[i].body, r->status, vmp_buf_str(&r->body));
        assert_true(json_is_false(json_object_get(j, "ok")));
        json_decref(j);
        resp_free(r);
    }
    /* malformed JSON: 400 with an "Invalid JSON: ..." error */
    resp *r = req("POST", "/api/v3/vm", "{\"pool1\":", NULL, NULL);
    assert_int_equal(r->status, 400);
    assert_non_null(strstr(vmp_buf_str(&r->body), "\"error\": \"Invalid JSON: "));
    resp_free(r);
    /* a body over 10 KiB */
    char big[12000];
    memset(big, ' ', sizeof(big));
    memcpy(big, "{\"pool1\":1}", 11);
    big[sizeof(big) - 1] = '\0';
    expect_json(req("POST", "/api/v3/vm", big, NULL, NULL), 400,
                "{\"ok\":false,\"error\":\"Request body too large\"}");
    /* over the server's body limit: 413 */
    char *huge = malloc(200000);
    memset(huge, ' ', 199999);
    huge[199999] = '\0';
    huge[0] = '{';
    huge[199998] = '}';
    r = req("POST", "/api/v3/vm", huge, NULL, NULL);
    free(huge);
    assert_int_equal(r->status, 413);
    resp_free(r);
    /* empty body / empty object: 404; unknown pool: 404 */
    expect_json(req("POST", "/api/v3/vm", "", NULL, NULL), 404, "{\"ok\":false}");
    expect_json(req("POST", "/api/v3/vm", "{}", NULL, NULL), 404, "{\"ok\":false}");
    expect_json(req("POST", "/api/v3/vm", "{\"nosuch\":1}", NULL, NULL), 404, "{\"ok\":false}");
    expect_json(req("POST", "/api/v3/vm/pool1+nosuch", NULL, NULL, NULL), 404, "{\"ok\":false}");
    expect_json(req("POST", "/api/v3/vm/pool1%2", NULL, NULL, NULL), 400,
                "{\"ok\":false,\"error\":\"Invalid path encoding\"}");
    expect_json(req("POST", "/api/v3/vm/pool1%00", NULL, NULL, NULL), 400,
                "{\"ok\":false,\"error\":\"Invalid path encoding\"}");
    /* nothing moved */
    assert_int_equal(count("pool1", VMP_VM_READY), 1);
    assert_int_equal(count("pool1", VMP_VM_RUNNING), 0);
}

static void test_return(void **state)
{
    NEED_SERVER();
    seed_ready("pool1", "vm1");
    expect_json(req("POST", "/api/v3/vm/pool1", NULL, NULL, NULL), 200,
                "{\"ok\":true,\"pool1\":{\"hostname\":\"vm1.example.com\"}}");
    expect_json(req("DELETE", "/api/v3/vm/vm1.example.com", NULL, NULL, NULL), 200,
                "{\"ok\":true}");
    assert_int_equal(count("pool1", VMP_VM_COMPLETED), 1);
    assert_int_equal(count("pool1", VMP_VM_RUNNING), 0);
    /* not running any more, unknown, malformed */
    expect_json(req("DELETE", "/api/v3/vm/vm1", NULL, NULL, NULL), 404, "{\"ok\":false}");
    expect_json(req("DELETE", "/api/v3/vm/nosuch", NULL, NULL, NULL), 404, "{\"ok\":false}");
    expect_json(req("DELETE", "/api/v3/vm/bad_name", NULL, NULL, NULL), 400,
                "{\"ok\":false,\"error\":\"Invalid hostname format\"}");
}

/* ---- VM details ---------------------------------------------------------------------------- */

static void test_vm_get(void **state)
{
    NEED_SERVER();
    seed_ready("pool1", "vm1");
    expect_json(req("GET", "/api/v3/vm/vm1", NULL, NULL, NULL), 200,
                "{\"ok\":true,\"vm1\":{\"template\":\"pool1\",\"lifetime\":12,\"state\":"
                "\"pending\",\"ip\":\"\",\"fqdn\":\"vm1.example.com\"}}");
    vmp_err err0 = {0};
    assert_int_equal(vmp_store_vm_mark_checked(st, "vm1", NOW, &err0), 0);
    expect_json(req("GET", "/api/v3/vm/vm1", NULL, NULL, NULL), 200,
                "{\"ok\":true,\"vm1\":{\"template\":\"pool1\",\"lifetime\":12,\"state\":"
                "\"ready\",\"ip\":\"\",\"fqdn\":\"vm1.example.com\"}}");
    expect_json(req("POST", "/api/v3/vm/pool1", NULL, NULL, NULL), 200,
                "{\"ok\":true,\"pool1\":{\"hostname\":\"vm1.example.com\"}}");
    vmp_err err = {0};
    assert_int_equal(vmp_store_vm_tag_set(st, "vm1", "team", "qa", NOW, &err), 0);
    assert_int_equal(vmp_store_vm_snapshot_set(st, "vm1", "snap1", NOW, &err), 0);
    assert_int_equal(vmp_store_vm_disk_add(st, "vm1", 8, &err), 0);
    assert_int_equal(vmp_store_vm_disk_add(st, "vm1", 16, &err), 0);
    assert_int_equal(vmp_store_vm_lifetime_set(st, "vm1", 3, &err), 0);
    assert_int_equal(vmp_store_vm_set(st, "vm1", "host", "esx1", &err), 0);
    vmp_clock_advance(clk, 1800);
    expect_json(req("GET", "/api/v3/vm/vm1.example.com", NULL, NULL, NULL), 200,
                "{\"ok\":true,\"vm1\":{\"template\":\"pool1\",\"lifetime\":3,\"running\":0.5,"
                "\"remaining\":2.5,\"start_time\":\"2023-11-15T01:13:20+00:00\",\"end_time\":"
                "\"2023-11-15T04:13:20+00:00\",\"state\":\"running\",\"tags\":{\"team\":\"qa\"},"
                "\"snapshots\":[\"snap1\"],\"disk\":[\"+8gb\",\"+16gb\"],\"ip\":\"\",\"fqdn\":"
                "\"vm1.example.com\",\"host\":\"esx1\"}}");
    vmp_clock_set(clk, NOW);
    expect_json(req("GET", "/api/v3/vm/nosuch", NULL, NULL, NULL), 404, "{\"ok\":false}");
    expect_json(req("GET", "/api/v3/vm/-bad", NULL, NULL, NULL), 400,
                "{\"ok\":false,\"error\":\"Invalid hostname format\"}");
    char longname[300];
    memset(longname, 'a', sizeof(longname));
    memcpy(longname, "/api/v3/vm/", 11);
    longname[sizeof(longname) - 1] = '\0';
    expect_json(req("GET", longname, NULL, NULL, NULL), 400,
                "{\"ok\":false,\"error\":\"Hostname too long\"}");
}

static void test_vm_destroyed(void **state)
{
    NEED_SERVER();
    seed_ready("pool1", "vm1");
    expect_json(req("POST", "/api/v3/vm/pool1", NULL, NULL, NULL), 200,
                "{\"ok\":true,\"pool1\":{\"hostname\":\"vm1.example.com\"}}");
    expect_json(req("DELETE", "/api/v3/vm/vm1", NULL, NULL, NULL), 200, "{\"ok\":true}");
    vmp_err err = {0};
    assert_int_equal(vmp_store_destroy_start(st, "pool1", "vm1", NOW + 5400, &err), 0);
    expect_json(req("GET", "/api/v3/vm/vm1", NULL, NULL, NULL), 200,
                "{\"ok\":true,\"vm1\":{\"template\":\"pool1\",\"lifetime\":12,\"running\":1.5,"
                "\"state\":\"destroyed\",\"ip\":\"\",\"fqdn\":\"vm1.example.com\"}}");
    /* tags of the day, by tag name */
    assert_int_equal(vmp_store_vm_tag_set(st, "vm1", "team", "qa", NOW, &err), 0);
    assert_int_equal(vmp_store_vm_tag_set(st, "vm1", "owner", "me", NOW, &err), 0);
    expect_json(req("GET", "/api/v3/summary/tag/team", NULL, NULL, NULL), 200,
                "{\"tag\":{\"team\":{\"qa\":1,\"total\":1}},\"daily\":[{\"date\":\"" TODAY
                "\",\"tag\":{\"team\":{\"qa\":1,\"total\":1}}}]}");
}

static void test_vm_put(void **state)
{
    NEED_SERVER();
    seed_ready("pool1", "vm1");
    expect_json(req("PUT", "/api/v3/vm/vm1", "{\"lifetime\":\"10\",\"tags\":{\"team\":\"qa\"}}",
                    NULL, NULL),
                200, "{\"ok\":true}");
    char *lt = vmfield("vm1", "lifetime");
    assert_string_equal(lt, "10");
    free(lt);
    char *tag = vmfield("vm1", "tag:team");
    assert_string_equal(tag, "qa");
    free(tag);
    vmp_strlist kv = {0};
    vmp_err err = {0};
    assert_int_equal(vmp_store_daily_get(st, VMP_DAILY_TAG, TODAY, &kv, &err), 0);
    assert_string_equal(vmp_store_kv_get(&kv, "vm1:team"), "qa");
    vmp_strlist_clear(&kv);
    expect_json(
        req("PUT", "/api/v3/vm/vm1",
            "{\"lifetime\":0,\"tags\":{\"bad key\":\"x\",\"ok\":\"<script>\"},\"foo\":\"bar\"}",
            NULL, NULL),
        400,
        "{\"ok\":false,\"failure\":[\"Lifetime must be a positive integer (got 0)\","
        "\"Invalid tag key format\",\"Tag value contains invalid characters\","
        "\"Unknown argument bar.\"]}");
    expect_json(req("PUT", "/api/v3/vm/vm1", "{\"lifetime\":100}", NULL, NULL), 400,
                "{\"ok\":false,\"failure\":[\"You provided a lifetime (100) that exceeds the "
                "configured maximum of 100.\"]}");
    expect_json(req("PUT", "/api/v3/vm/vm1", "{\"tags\":\"x\"}", NULL, NULL), 400,
                "{\"ok\":false,\"failure\":[\"You provided tags (\\\"x\\\") as something other "
                "than a hash.\"]}");
    resp *r = req("PUT", "/api/v3/vm/vm1", "nope", NULL, NULL);
    assert_int_equal(r->status, 400);
    assert_non_null(strstr(vmp_buf_str(&r->body), "\"error\": \"Invalid JSON: "));
    resp_free(r);
    expect_json(req("PUT", "/api/v3/vm/nosuch", "{}", NULL, NULL), 404, "{\"ok\":false}");
}

/* allowed_tags and tagfilter */
static void test_tags_filtered(void **state)
{
    NEED_SERVER();
    start_api("  allowed_tags:\n    - url\n    - team\n", ":tagfilter:\n  url: '(.*)\\/'\n");
    seed_ready("pool1", "vm1");
    expect_json(req("PUT", "/api/v3/vm/vm1", "{\"tags\":{\"other\":\"x\"}}", NULL, NULL), 400,
                "{\"ok\":false,\"failure\":[\"You provided unsuppored tags "
                "({\\\"other\\\"=>\\\"x\\\"}).\"]}");
    expect_json(req("PUT", "/api/v3/vm/vm1",
                    "{\"tags\":{\"url\":\"foo.com/something.html\","
                    "\"team\":\"\"}}",
                    NULL, NULL),
                200, "{\"ok\":true}");
    char *t = vmfield("vm1", "tag:url");
    assert_string_equal(t, "foo.com");
    free(t);
    t = vmfield("vm1", "tag:team");
    assert_null(t); /* empty values are not stored */
}

static void test_disk_snapshot(void **state)
{
    NEED_SERVER();
    seed_ready("pool1", "vm1");
    expect_json(req("POST", "/api/v3/vm/vm1/disk/8", NULL, NULL, NULL), 202,
                "{\"ok\":true,\"vm1\":{\"disk\":\"+8gb\"}}");
    char *vm = NULL, *arg = NULL;
    vmp_err err = {0};
    assert_int_equal(vmp_store_task_pop(st, VMP_TASK_DISK, &vm, &arg, &err), 0);
    assert_string_equal(vm, "vm1");
    assert_string_equal(arg, "8");
    free(vm);
    free(arg);
    vm = arg = NULL;
    expect_json(req("POST", "/api/v3/vm/vm1/disk/0", NULL, NULL, NULL), 400,
                "{\"ok\":false,\"error\":\"Disk size must be at least 1\"}");
    expect_json(req("POST", "/api/v3/vm/vm1/disk/4096", NULL, NULL, NULL), 400,
                "{\"ok\":false,\"error\":\"Disk size must be at most 2048\"}");
    expect_json(req("POST", "/api/v3/vm/vm1/disk/x", NULL, NULL, NULL), 400,
                "{\"ok\":false,\"error\":\"Disk size must be a valid integer\"}");
    expect_json(req("POST", "/api/v3/vm/nosuch/disk/8", NULL, NULL, NULL), 404, "{\"ok\":false}");

    resp *r = req("POST", "/api/v3/vm/vm1/snapshot", NULL, NULL, NULL);
    assert_int_equal(r->status, 202);
    json_t *j = body_json(r);
    const char *snap = json_string_value(json_object_get(json_object_get(j, "vm1"), "snapshot"));
    assert_non_null(snap);
    assert_int_equal(strlen(snap), 32);
    assert_true(snap[0] >= 'a' && snap[0] <= 'y');
    assert_int_equal(vmp_store_task_pop(st, VMP_TASK_SNAPSHOT, &vm, &arg, &err), 0);
    assert_string_equal(arg, snap);
    free(vm);
    free(arg);
    vm = arg = NULL;
    json_decref(j);
    resp_free(r);
    expect_json(req("POST", "/api/v3/vm/vm1/snapshot/snapX", NULL, NULL, NULL), 404,
                "{\"ok\":false}");
    assert_int_equal(vmp_store_vm_snapshot_set(st, "vm1", "snapX", NOW, &err), 0);
    expect_json(req("POST", "/api/v3/vm/vm1/snapshot/snapX", NULL, NULL, NULL), 202,
                "{\"ok\":true}");
    assert_int_equal(vmp_store_task_pop(st, VMP_TASK_SNAPSHOT_REVERT, &vm, &arg, &err), 0);
    assert_string_equal(arg, "snapX");
    free(vm);
    free(arg);
    expect_json(req("POST", "/api/v3/vm/nosuch/snapshot", NULL, NULL, NULL), 404, "{\"ok\":false}");
}

/* ---- tokens and auth ---------------------------------------------------------------------- */

static const char *auth_yaml = ":auth:\n  provider: dummy\n";

static void test_tokens(void **state)
{
    NEED_SERVER();
    /* auth not configured: token routes are 404 */
    expect_json(req("GET", "/api/v3/token", NULL, "u:p", NULL), 404, "{\"ok\":false}");
    expect_json(req("POST", "/api/v3/token", NULL, "u:p", NULL), 404, "{\"ok\":false}");
    start_api(NULL, auth_yaml);
    /* dummy: the login fails when the password equals the user name */
    resp *r = req("POST", "/api/v3/token", NULL, "alice:alice", NULL);
    assert_int_equal(r->status, 401);
    assert_true(has_header(r, "WWW-Authenticate: Basic realm=\"Authentication required\""));
    resp_free(r);
    expect_json(req("POST", "/api/v3/token", NULL, NULL, NULL), 401, "{\"ok\":false}");
    expect_json(req("GET", "/api/v3/token", NULL, "alice:secret", NULL), 404, "{\"ok\":false}");
    r = req("POST", "/api/v3/token", NULL, "alice:secret", NULL);
    assert_int_equal(r->status, 200);
    json_t *j = body_json(r);
    char tok[64];
    snprintf(tok, sizeof(tok), "%s", json_string_value(json_object_get(j, "token")));
    assert_int_equal(strlen(tok), 32);
    assert_true(json_is_true(json_object_get(j, "ok")));
    json_decref(j);
    resp_free(r);
    vmp_strlist kv = {0};
    vmp_err err = {0};
    assert_int_equal(vmp_store_token_get(st, tok, &kv, &err), 0);
    assert_string_equal(vmp_store_kv_get(&kv, "user"), "alice");
    assert_string_equal(vmp_store_kv_get(&kv, "created"), "2023-11-15 01:13:20 +0000");
    vmp_strlist_clear(&kv);

    char want[512];
    snprintf(want, sizeof(want),
             "{\"ok\":true,\"%s\":{\"created\":\"2023-11-15 01:13:20 +0000\",\"last\":\"never\"}}",
             tok);
    expect_json(req("GET", "/api/v3/token", NULL, "alice:secret", NULL), 200, want);

    /* token details: only with the token itself or as its owner */
    char path[128], hdr[128];
    snprintf(path, sizeof(path), "/api/v3/token/%s", tok);
    snprintf(hdr, sizeof(hdr), "X-AUTH-TOKEN: %s", tok);
    expect_json(req("GET", path, NULL, NULL, NULL), 401, "{\"ok\":false}");
    expect_json(req("GET", path, NULL, "bob:secret", NULL), 401, "{\"ok\":false}");
    seed_ready("pool1", "vm1");
    expect_json(req("POST", "/api/v3/vm/pool1", NULL, NULL, hdr, NULL), 200,
                "{\"ok\":true,\"pool1\":{\"hostname\":\"vm1.example.com\"}}");
    snprintf(want, sizeof(want),
             "{\"ok\":true,\"%s\":{\"user\":\"alice\",\"created\":\"2023-11-15 01:13:20 +0000\","
             "\"last\":\"2023-11-15 01:13:20 +0000\",\"vms\":{\"running\":[\"vm1\"]}}}",
             tok);
    expect_json(req("GET", path, NULL, NULL, hdr, NULL), 200, want);
    expect_json(req("GET", path, NULL, "alice:secret", NULL), 200, want);
    expect_json(req("GET", "/api/v3/token/nosuch", NULL, "alice:secret", NULL), 404,
                "{\"ok\":false}");
    /* checked-out VM got the token fields and vm_lifetime_auth */
    char *f = vmfield("vm1", "token:user");
    assert_string_equal(f, "alice");
    free(f);
    f = vmfield("vm1", "lifetime");
    assert_string_equal(f, "2");
    free(f);
    /* returning it needs a valid token */
    expect_json(req("DELETE", "/api/v3/vm/vm1", NULL, NULL, NULL), 401, "{\"ok\":false}");
    expect_json(req("DELETE", "/api/v3/vm/vm1", NULL, NULL, "X-AUTH-TOKEN: wrong", NULL), 401,
                "{\"ok\":false}");
    assert_int_equal(count("pool1", VMP_VM_RUNNING), 1);
    expect_json(req("DELETE", "/api/v3/vm/vm1", NULL, NULL, hdr, NULL), 200, "{\"ok\":true}");
    /* a bad token at checkout is refused before anything moves */
    seed_ready("pool1", "vm2");
    expect_json(req("POST", "/api/v3/vm/pool1", NULL, NULL, "X-AUTH-TOKEN: wrong", NULL), 401,
                "{\"ok\":false}");
    assert_int_equal(count("pool1", VMP_VM_READY), 1);
    /* lifetime changes need a token */
    expect_json(req("PUT", "/api/v3/vm/vm2", "{\"lifetime\":3}", NULL, NULL), 401,
                "{\"ok\":false}");
    expect_json(req("PUT", "/api/v3/vm/vm2", "{\"lifetime\":3}", NULL, hdr, NULL), 200,
                "{\"ok\":true}");
    expect_json(req("POST", "/api/v3/vm/vm2/disk/8", NULL, NULL, NULL), 401, "{\"ok\":false}");
    expect_json(req("POST", "/api/v3/vm/vm2/snapshot", NULL, NULL, NULL), 401, "{\"ok\":false}");
    /* only the owner deletes a token */
    expect_json(req("DELETE", path, NULL, "bob:secret", NULL), 401, "{\"ok\":false}");
    expect_json(req("DELETE", path, NULL, "alice:secret", NULL), 200, "{\"ok\":true}");
    expect_json(req("DELETE", path, NULL, "alice:secret", NULL), 404, "{\"ok\":false}");
}

static void test_dummy_auth_needs_debug(void **state)
{
    NEED_SERVER();
    unsetenv("VMPOOLER_DEBUG");
    start_api(NULL, auth_yaml);
    setenv("VMPOOLER_DEBUG", "1", 1);
    expect_json(req("POST", "/api/v3/token", NULL, "alice:secret", NULL), 401, "{\"ok\":false}");
}

/* ---- config endpoints ---------------------------------------------------------------------- */

static void test_config(void **state)
{
    NEED_SERVER();
    resp *r = req("GET", "/api/v3/config", NULL, NULL, NULL);
    assert_int_equal(r->status, 200);
    json_t *j = body_json(r);
    json_t *p0 = json_array_get(json_object_get(j, "pool_configuration"), 0);
    assert_string_equal(json_string_value(json_object_get(p0, "name")), "pool1");
    assert_int_equal(json_integer_value(json_object_get(p0, "size")), 5);
    assert_true(json_is_false(json_object_get(p0, "template_ready")));
    assert_true(json_is_true(json_object_get(json_object_get(j, "status"), "ok")));
    json_decref(j);
    resp_free(r);

    expect_json(req("POST", "/api/v3/config/poolsize", "{\"pool1\":\"3\"}", NULL, NULL), 201,
                "{\"ok\":true}");
    expect_json(req("POST", "/api/v3/config/poolsize", "{\"pool1\":\"3\"}", NULL, NULL), 200,
                "{\"ok\":true}");
    vmp_err err = {0};
    char *v = NULL;
    assert_int_equal(vmp_store_override_get(st, VMP_OVERRIDE_POOLSIZE, "pool1", &v, &err), 0);
    assert_string_equal(v, "3");
    free(v);
    v = NULL;
    expect_json(req("POST", "/api/v3/config/poolsize",
                    "{\"pool1\":\"x\",\"nosuch\":1,"
                    "\"pool3\":-1}",
                    NULL, NULL),
                400, "{\"ok\":false,\"not_configured\":[\"pool1\",\"nosuch\",\"pool3\"]}");
    expect_json(req("POST", "/api/v3/config/poolsize", "{bad", NULL, NULL), 400,
                "{\"ok\":false,\"message\":\"JSON payload could not be parsed\"}");
    expect_json(req("DELETE", "/api/v3/config/poolsize/pool1", NULL, NULL, NULL), 201,
                "{\"ok\":true,\"pool_size_before_reset\":3,\"pool_size_before_overrides\":5}");
    bool has = false;
    assert_int_equal(vmp_store_pool_request_has(st, VMP_POOLREQ_UNDO_SIZE, "pool1", &has, &err), 0);
    assert_true(has);
    expect_json(req("DELETE", "/api/v3/config/poolsize/pool1", NULL, NULL, NULL), 200,
                "{\"ok\":true,\"pool_size_before_reset\":5,\"pool_size_before_overrides\":5}");
    expect_json(req("DELETE", "/api/v3/config/poolsize/nosuch", NULL, NULL, NULL), 404,
                "{\"ok\":false}");

    expect_json(
        req("POST", "/api/v3/config/pooltemplate", "{\"pool1\":\"templates/new\"}", NULL, NULL),
        201, "{\"ok\":true}");
    expect_json(req("POST", "/api/v3/config/pooltemplate", "{\"pool1\":\"/bad/\"}", NULL, NULL),
                400, "{\"ok\":false,\"bad_templates\":[\"pool1\",\"pool1\"]}");
    expect_json(req("DELETE", "/api/v3/config/pooltemplate/pool1", NULL, NULL, NULL), 201,
                "{\"ok\":true,\"template_before_reset\":\"templates/new\","
                "\"template_before_overrides\":\"templates/pool1\"}");
    expect_json(req("POST", "/api/v3/config/clonetarget", "{\"pool1\":\"cluster2\"}", NULL, NULL),
                201, "{\"ok\":true}");
    expect_json(req("POST", "/api/v3/config/clonetarget", "{\"pool1\":\"cluster2\"}", NULL, NULL),
                200, "{\"ok\":true}");
    expect_json(req("POST", "/api/v3/config/clonetarget", "{\"nosuch\":\"c\"}", NULL, NULL), 400,
                "{\"ok\":false,\"bad_templates\":[\"nosuch\"]}");
    expect_json(req("POST", "/api/v3/poolreset", "{\"pool1\":1,\"pool3\":\"x\"}", NULL, NULL), 201,
                "{\"ok\":true}");
    assert_int_equal(vmp_store_pool_request_has(st, VMP_POOLREQ_RESET, "pool3", &has, &err), 0);
    assert_true(has);
    expect_json(req("POST", "/api/v3/poolreset", "{\"nosuch\":1}", NULL, NULL), 400,
                "{\"ok\":false,\"bad_pools\":[\"nosuch\"]}");
    expect_json(req("POST", "/api/v3/poolreset", "{x", NULL, NULL), 400,
                "{\"ok\":false,\"message\":\"JSON payload could not be parsed\"}");
    expect_json(req("POST", "/api/v3/poolreset", "null", NULL, NULL), 404, "{\"ok\":false}");
}

static void test_config_gated(void **state)
{
    NEED_SERVER();
    start_api("  experimental_features: false\n", NULL);
    expect_json(req("POST", "/api/v3/config/poolsize", "{\"pool1\":\"3\"}", NULL, NULL), 405,
                "{\"ok\":false}");
    expect_json(req("DELETE", "/api/v3/config/pooltemplate/pool1", NULL, NULL, NULL), 405,
                "{\"ok\":false}");
    expect_json(req("POST", "/api/v3/poolreset", "{\"pool1\":1}", NULL, NULL), 405,
                "{\"ok\":false}");
}

static void test_full_config_redacted(void **state)
{
    NEED_SERVER();
    start_api(NULL, ":auth:\n  provider: ldap\n  :ldap:\n    host: h\n    "
                    "service_account_hash:\n      :user_dn: cn=svc\n      :password: hunter2\n");
    resp *r = req("GET", "/api/v3/full_config", NULL, NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_null(strstr(vmp_buf_str(&r->body), "hunter2"));
    assert_non_null(strstr(vmp_buf_str(&r->body), "cn=svc"));
    resp_free(r);
}

/* ---- on-demand ----------------------------------------------------------------------------- */

static void test_ondemand(void **state)
{
    NEED_SERVER();
    resp *r = req("POST", "/api/v3/ondemandvm", "{\"pool1\":\"2\",\"both\":1}", NULL, NULL);
    assert_int_equal(r->status, 201);
    json_t *j = body_json(r);
    char id[64];
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(j, "request_id")));
    assert_int_equal(strlen(id), 36);
    json_decref(j);
    resp_free(r);
    vmp_strlist kv = {0};
    vmp_err err = {0};
    assert_int_equal(vmp_store_od_request_get(st, id, &kv, &err), 0);
    const char *requested = vmp_store_kv_get(&kv, "requested");
    assert_non_null(requested);
    assert_non_null(strstr(requested, "pool1:pool1:2"));
    assert_true(strstr(requested, "both:pool1:1") || strstr(requested, "both:pool2:1"));
    vmp_strlist_clear(&kv);
    char path[128];
    snprintf(path, sizeof(path), "/api/v3/ondemandvm/%s", id);
    r = req("GET", path, NULL, NULL, NULL);
    assert_int_equal(r->status, 202);
    j = body_json(r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "pool1"), "pending")),
                        "2");
    json_decref(j);
    resp_free(r);

    expect_json(
        req("POST", "/api/v3/ondemandvm", "{\"pool1\":1,\"request_id\":\"req1\"}", NULL, NULL), 201,
        "{\"ok\":true,\"request_id\":\"req1\"}");
    expect_json(
        req("POST", "/api/v3/ondemandvm", "{\"pool1\":1,\"request_id\":\"req1\"}", NULL, NULL), 409,
        "{\"ok\":false,\"request_id\":\"req1\",\"message\":\"request_id 'req1' has "
        "already been created\"}");
    expect_json(req("POST", "/api/v3/ondemandvm", "{\"pool1\":6}", NULL, NULL), 403,
                "{\"ok\":false,\"message\":\"requested amount of instances exceeds the maximum "
                "5\"}");
    expect_json(req("POST", "/api/v3/ondemandvm", "{\"nosuch\":1,\"pool1\":1}", NULL, NULL), 404,
                "{\"ok\":false,\"bad_templates\":[\"nosuch\"]}");
    expect_json(req("POST", "/api/v3/ondemandvm", "{nope", NULL, NULL), 400,
                "{\"ok\":false,\"message\":\"JSON payload could not be parsed\"}");
    r = req("POST", "/api/v3/ondemandvm/pool3+pool3", NULL, NULL, NULL);
    assert_int_equal(r->status, 201);
    j = body_json(r);
    assert_int_equal(vmp_store_od_request_get(
                         st, json_string_value(json_object_get(j, "request_id")), &kv, &err),
                     0);
    assert_string_equal(vmp_store_kv_get(&kv, "requested"), "pool3:pool3:2");
    vmp_strlist_clear(&kv);
    json_decref(j);
    resp_free(r);
}

static void test_ondemand_states(void **state)
{
    NEED_SERVER();
    vmp_err err = {0};
    assert_int_equal(vmp_store_od_request_create(st, "r1", "pool1:pool1:1", NULL, NULL, NOW, &err),
                     0);
    /* the manager fills it: a clone for the request becomes running */
    assert_int_equal(
        vmp_store_clone_start(st, "pool1", "odvm", "example.com", "r1", "pool1", NOW, &err), 0);
    assert_int_equal(vmp_store_pending_ready(st, "pool1", "odvm", 0, NOW, NULL, NULL, &err), 0);
    expect_json(req("GET", "/api/v3/ondemandvm/r1", NULL, NULL, NULL), 202,
                "{\"ok\":true,\"request_id\":\"r1\",\"ready\":false,\"pool1\":{\"ready\":\"1\","
                "\"pending\":\"0\"}}");
    bool ready = false;
    assert_int_equal(vmp_store_od_request_check_ready(st, "r1", &ready, &err), 0);
    assert_true(ready);
    expect_json(req("GET", "/api/v3/ondemandvm/r1", NULL, NULL, NULL), 200,
                "{\"ok\":true,\"request_id\":\"r1\",\"ready\":true,\"pool1\":{\"hostname\":"
                "[\"odvm.example.com\"]}}");
    expect_json(req("DELETE", "/api/v3/ondemandvm/r1", NULL, NULL, NULL), 200, "{\"ok\":true}");
    assert_int_equal(count("pool1", VMP_VM_COMPLETED), 1);
    expect_json(req("DELETE", "/api/v3/ondemandvm/r1", NULL, NULL, NULL), 200,
                "{\"ok\":true,\"message\":\"the request has already been deleted\"}");
    expect_json(req("GET", "/api/v3/ondemandvm/r1", NULL, NULL, NULL), 200,
                "{\"ok\":true,\"request_id\":\"r1\",\"ready\":false,\"message\":\"The request "
                "has been deleted\"}");
    expect_json(req("GET", "/api/v3/ondemandvm/zz", NULL, NULL, NULL), 404,
                "{\"ok\":false,\"message\":\"no request found for request_id 'zz'\"}");
    expect_json(req("DELETE", "/api/v3/ondemandvm/zz", NULL, NULL, NULL), 404,
                "{\"ok\":false,\"message\":\"no request found for request_id 'zz'\"}");
}

/* ---- routing, methods, limiter ----------------------------------------------------------------
 */

static void test_routing(void **state)
{
    NEED_SERVER();
    resp *r = req("GET", "/", NULL, NULL, NULL);
    assert_int_equal(r->status, 302);
    assert_true(has_header(r, "Location: /dashboard/"));
    resp_free(r);
    expect_json(req("GET", "/healthcheck", NULL, NULL, NULL), 200, "{\"ok\":true}");
    r = req("GET", "/dashboard/", NULL, NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_true(has_header(r, "Content-Type: text/html"));
    assert_non_null(strstr(vmp_buf_str(&r->body), "<h1><b>vmpooler</b></h1>"));
    resp_free(r);
    seed_ready("pool1", "vm1");
    seed_ready("pool3", "vm3");
    expect_json(req("POST", "/api/v3/vm/pool3", NULL, NULL, NULL), 200,
                "{\"ok\":true,\"pool3\":{\"hostname\":\"vm3.example.com\"}}");
    expect_json(req("GET", "/dashboard/stats/vmpooler/pool", NULL, NULL, NULL), 200,
                "{\"pool1\":{\"size\":5,\"ready\":1},\"pool2\":{\"size\":0,\"ready\":0},"
                "\"pool3\":{\"size\":2,\"ready\":0}}");
    expect_json(req("GET", "/dashboard/stats/vmpooler/running?history=1", NULL, NULL, NULL), 200,
                "{\"pool1\":{\"running\":0,\"history\":[0]},\"pool2\":{\"running\":0,"
                "\"history\":[0]},\"pool3\":{\"running\":1,\"history\":[1]}}");
    expect_json(req("GET", "/dashboard/other", NULL, NULL, NULL), 404, "{\"ok\":false}");
    expect_json(req("PATCH", "/api/v3/status", NULL, NULL, NULL), 404, "{\"ok\":false}");
    expect_json(req("DELETE", "/api/v3/status", NULL, NULL, NULL), 404, "{\"ok\":false}");
    expect_json(req("GET", "/api/v1/status", NULL, NULL, NULL), 404, "{\"ok\":false}");
    expect_json(req("GET", "/api/v3", NULL, NULL, NULL), 404, "{\"ok\":false}");
    expect_json(req("GET", "/api/v3x/status", NULL, NULL, NULL), 404, "{\"ok\":false}");
    expect_json(req("PUT", "/api/v3/vm", NULL, NULL, NULL), 404, "{\"ok\":false}");
    expect_json(req("GET", "/api/v3/vm/a/b/c/d/e", NULL, NULL, NULL), 404, "{\"ok\":false}");
    r = req("HEAD", "/api/v3/status", NULL, NULL, NULL);
    assert_int_equal(r->status, 200);
    resp_free(r);
    /* a percent-encoded path segment is decoded */
    expect_json(req("GET", "/api/v3/poolstat%2F", NULL, NULL, NULL), 404, "{\"ok\":false}");
}

static void test_rate_limit(void **state)
{
    NEED_SERVER();
    start_api("  rate_limiting_enabled: true\n",
              ":rate_limits:\n  global_per_ip:\n    limit: 3\n    period: 60\n"
              "  vm_creation:\n    limit: 1\n    period: 30\n");
    for (int i = 0; i < 3; i++)
        expect_json(req("GET", "/api/v3/totalrunning", NULL, NULL, NULL), 200, "{\"running\":0}");
    resp *r = req("GET", "/api/v3/totalrunning", NULL, NULL, NULL);
    assert_int_equal(r->status, 429);
    assert_true(has_header(r, "X-RateLimit-Limit: 3"));
    assert_true(has_header(r, "X-RateLimit-Remaining: 0"));
    assert_true(has_header(r, "Retry-After: 60"));
    json_t *j = body_json(r);
    json_t *want =
        json_loads("{\"ok\":false,\"error\":\"Rate limit exceeded\",\"limit\":3,\"period\":60,"
                   "\"retry_after\":60}",
                   0, NULL);
    assert_true(json_equal(want, j));
    json_decref(want);
    json_decref(j);
    resp_free(r);
    /* other classes count apart */
    expect_json(req("POST", "/api/v3/vm/nosuch", NULL, NULL, NULL), 404, "{\"ok\":false}");
    r = req("POST", "/api/v3/vm/nosuch", NULL, NULL, NULL);
    assert_int_equal(r->status, 429);
    assert_true(has_header(r, "Retry-After: 30"));
    resp_free(r);
}

/* ---- concurrency ------------------------------------------------------------------------------
 */

#define NCLIENTS 8
#define NVMS 60

/* Seeds n ready VMs named <prefix>0000... in pool. */
static void seed_many(const char *pool, const char *prefix, int n)
{
    char vm[32];
    for (int i = 0; i < n; i++) {
        snprintf(vm, sizeof(vm), "%s%04d", prefix, i);
        seed_ready(pool, vm);
    }
}

/* Another server on the current config and the same Redis (free it). */
static vmp_api *extra_api(unsigned threads)
{
    vmp_api *a = NULL;
    vmp_err err = {0};
    vmp_api_opts ao = {.config = cfg,
                       .store = &sopts,
                       .listen_port = VMP_API_PORT_ANY,
                       .threads = threads,
                       .clock = clk};
    assert_int_equal(vmp_api_new(&ao, &a, &err), 0);
    if (vmp_api_start(a, &err) != 0)
        fail_msg("start: %s", err.msg);
    return a;
}

typedef struct worker {
    int port;
    int got;
    char names[NVMS][64];
} worker;

static void *client(void *ud)
{
    worker *w = ud;
    tport = w->port;
    for (int i = 0; i < NVMS; i++) {
        resp *r = req("POST", "/api/v3/vm", "{\"pool1\":1,\"pool3\":1}", NULL, NULL);
        if (r->status == 200) {
            json_t *j = body_json(r);
            const char *a =
                json_string_value(json_object_get(json_object_get(j, "pool1"), "hostname"));
            const char *b =
                json_string_value(json_object_get(json_object_get(j, "pool3"), "hostname"));
            if (a && b && w->got + 2 <= NVMS) {
                snprintf(w->names[w->got++], 64, "%s", a);
                snprintf(w->names[w->got++], 64, "%s", b);
            }
            json_decref(j);
        }
        resp_free(r);
    }
    return NULL;
}

/* 8 clients at once on two servers sharing one Redis: every VM is handed
 * out at most once and every checkout takes from both pools or none. */
static void test_concurrent_checkout(void **state)
{
    NEED_SERVER();
    seed_many("pool1", "a", 40);
    seed_many("pool3", "b", 25);
    vmp_api *second = extra_api(1);
    int ports[2] = {port, vmp_api_port(second)};
    pthread_t th[NCLIENTS];
    worker *ws = calloc(NCLIENTS, sizeof(*ws));
    for (int i = 0; i < NCLIENTS; i++) {
        ws[i].port = ports[i % 2];
        pthread_create(&th[i], NULL, client, &ws[i]);
    }
    for (int i = 0; i < NCLIENTS; i++)
        pthread_join(th[i], NULL);
    int total = 0;
    for (int i = 0; i < NCLIENTS; i++)
        for (int k = 0; k < ws[i].got; k++) {
            total++;
            for (int j = 0; j < NCLIENTS; j++)
                for (int l = 0; l < ws[j].got; l++)
                    if ((i != j || k != l) && !strcmp(ws[i].names[k], ws[j].names[l]))
                        fail_msg("%s handed out twice", ws[i].names[k]);
        }
    /* pool3 has 25 VMs, so exactly 25 pairs succeed */
    assert_int_equal(total, 50);
    assert_int_equal(count("pool3", VMP_VM_READY), 0);
    assert_int_equal(count("pool3", VMP_VM_RUNNING), 25);
    assert_int_equal(count("pool1", VMP_VM_RUNNING), 25);
    assert_int_equal(count("pool1", VMP_VM_READY), 15);
    free(ws);
    vmp_api_free(second);
}

/* Checkout+return loops on one worker thread while the config is swapped
 * again and again: every request is answered with the config it started
 * with (no request sees a freed one, none hangs), and each swap returns. */
typedef struct cycler {
    int port;
    int ok, bad;
    bool *stop; /* read and set atomically */
} cycler;

static void *cycle_client(void *ud)
{
    cycler *c = ud;
    tport = c->port;
    while (!__atomic_load_n(c->stop, __ATOMIC_ACQUIRE)) {
        resp *r = req("POST", "/api/v3/vm/pool1", NULL, NULL, NULL);
        if (r->status == 503) { /* the pool ran dry: nothing refills it here */
            resp_free(r);
            break;
        }
        json_t *j = r->status == 200 ? body_json(r) : NULL;
        const char *h = json_string_value(json_object_get(json_object_get(j, "pool1"), "hostname"));
        char path[128];
        if (h) {
            snprintf(path, sizeof(path), "/api/v3/vm/%s", h);
            resp *d = req("DELETE", path, NULL, NULL, NULL);
            if (d->status == 200)
                c->ok++;
            else
                c->bad++;
            resp_free(d);
        } else {
            c->bad++;
        }
        json_decref(j);
        resp_free(r);
    }
    return NULL;
}

static void test_reload_under_load(void **state)
{
    NEED_SERVER();
    seed_many("pool1", "c", 2000);
    vmp_api *one = extra_api(1);
    vmp_err err = {0};
    bool stop = false;
    cycler cs[4] = {{0}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        cs[i].port = vmp_api_port(one);
        cs[i].stop = &stop;
        pthread_create(&th[i], NULL, cycle_client, &cs[i]);
    }
    vmp_config *live = NULL;
    for (int i = 0; i < 30; i++) {
        char yaml[8192];
        snprintf(yaml, sizeof(yaml), base_yaml, "", "");
        vmp_config_opts co = {.no_env = true};
        vmp_config *next = NULL;
        assert_int_equal(vmp_config_load_string(yaml, "<next>", &co, &next, NULL, &err), 0);
        assert_int_equal(vmp_api_set_config(one, next, &err), 0);
        /* the previous one is no longer used by any request */
        vmp_config_free(live);
        live = next;
        usleep(10000);
    }
    __atomic_store_n(&stop, true, __ATOMIC_RELEASE);
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ok += cs[i].ok;
        assert_int_equal(cs[i].bad, 0);
    }
    assert_true(ok > 0);
    assert_int_equal(count("pool1", VMP_VM_RUNNING), 0);
    assert_int_equal(count("pool1", VMP_VM_COMPLETED), ok);
    assert_int_equal(count("pool1", VMP_VM_READY) + ok, 2000);
    vmp_api_free(one);
    vmp_config_free(live);
}

/* Clients that reset their connection right after sending a checkout or a
 * return, while other clients keep the worker busy: a request whose client
 * is gone while it waits for its Redis group must be answered into the void
 * and freed, never touched after (the sanitizer build checks the memory). */
typedef struct resetter {
    int port;
    int n;
} resetter;

/* A TCP connection to 127.0.0.1:p, or -1. */
static int dial_loopback(int p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void *reset_client(void *ud)
{
    resetter *rs = ud;
    for (int i = 0; i < rs->n; i++) {
        int fd = dial_loopback(rs->port);
        if (fd < 0)
            continue;
        char buf[256];
        int len = i % 2 ? snprintf(buf, sizeof(buf),
                                   "DELETE /api/v3/vm/nosuch%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
                        : snprintf(buf, sizeof(buf),
                                   "POST /api/v3/vm/pool1 HTTP/1.1\r\nHost: x\r\n"
                                   "Content-Length: 0\r\n\r\n");
        if (send(fd, buf, (size_t)len, MSG_NOSIGNAL) != len) {
            close(fd);
            continue;
        }
        /* reset 0-300 us after the request: before the server reads it,
         * with it, or after its reply */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        long wait_ns = (long)(i * 7919 % 301) * 1000;
        do
            clock_gettime(CLOCK_MONOTONIC, &t1);
        while ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < wait_ns);
        struct linger lg = {1, 0}; /* close with a reset */
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
    }
    return NULL;
}

static void test_client_resets(void **state)
{
    NEED_SERVER();
    seed_many("pool1", "r", 9000);
    vmp_api *one = extra_api(1);
    bool stop = false;
    cycler cs[4] = {{0}};
    pthread_t busy[4], rst[2];
    resetter rs[2];
    for (int i = 0; i < 4; i++) {
        cs[i].port = vmp_api_port(one);
        cs[i].stop = &stop;
        pthread_create(&busy[i], NULL, cycle_client, &cs[i]);
    }
    for (int i = 0; i < 2; i++) {
        rs[i].port = vmp_api_port(one);
        rs[i].n = 1500;
        pthread_create(&rst[i], NULL, reset_client, &rs[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(rst[i], NULL);
    __atomic_store_n(&stop, true, __ATOMIC_RELEASE);
    for (int i = 0; i < 4; i++) {
        pthread_join(busy[i], NULL);
        assert_int_equal(cs[i].bad, 0);
    }
    /* still serving, and every VM is somewhere: ready, running (checked
     * out by a client that left) or completed */
    tport = vmp_api_port(one);
    expect_json(req("GET", "/api/v3/vm", NULL, NULL, NULL), 200, "[\"pool1\",\"pool2\",\"pool3\"]");
    tport = 0;
    assert_int_equal(count("pool1", VMP_VM_READY) + count("pool1", VMP_VM_RUNNING) +
                         count("pool1", VMP_VM_COMPLETED),
                     9000);
    vmp_api_free(one);
}

/* Checkouts and returns wake the manager through the event channel. */
static void test_events(void **state)
{
    NEED_SERVER();
    vmp_store_sub *sub = NULL;
    vmp_err err = {0};
    assert_int_equal(vmp_store_sub_open(&sopts, &sub, &err), 0);
    char *type = NULL, *pool = NULL;
    /* the subscription is live once a first event round-trips */
    assert_int_equal(vmp_store_publish(st, "hello", "x", &err), 0);
    assert_int_equal(vmp_store_sub_wait(sub, 5, &type, &pool, &err), 0);
    free(type);
    free(pool);
    type = pool = NULL;
    seed_ready("pool3", "vm3");
    expect_json(req("POST", "/api/v3/vm/pool3", NULL, NULL, NULL), 200,
                "{\"ok\":true,\"pool3\":{\"hostname\":\"vm3.example.com\"}}");
    assert_int_equal(vmp_store_sub_wait(sub, 5, &type, &pool, &err), 0);
    assert_string_equal(type, "checkout");
    assert_string_equal(pool, "pool3");
    free(type);
    free(pool);
    type = pool = NULL;
    expect_json(req("DELETE", "/api/v3/vm/vm3", NULL, NULL, NULL), 200, "{\"ok\":true}");
    assert_int_equal(vmp_store_sub_wait(sub, 5, &type, &pool, &err), 0);
    assert_string_equal(type, "return");
    assert_string_equal(pool, "pool3");
    free(type);
    free(pool);
    vmp_store_sub_free(sub);
}

/* A reload swaps the config under a running server. */
static void test_set_config(void **state)
{
    NEED_SERVER();
    vmp_config *next = NULL;
    vmp_config_opts co = {.no_env = true};
    vmp_err err = {0};
    assert_int_equal(vmp_config_load_string("---\n:pools:\n  - name: fresh\n    template: t/fresh\n"
                                            "    size: 1\n",
                                            "<next>", &co, &next, NULL, &err),
                     0);
    assert_int_equal(vmp_api_set_config(api, next, &err), 0);
    vmp_config_free(cfg); /* the old one is no longer used */
    cfg = next;
    expect_json(req("GET", "/api/v3/vm", NULL, NULL, NULL), 200, "[\"fresh\"]");
    /* a config the API cannot use is refused and the current one kept */
    vmp_config *bad = NULL;
    assert_int_equal(vmp_config_load_string("---\n:tagfilter:\n  url: '(unclosed'\n"
                                            ":pools:\n  - name: other\n    template: t/o\n"
                                            "    size: 1\n",
                                            "<bad>", &co, &bad, NULL, &err),
                     0);
    assert_int_equal(vmp_api_set_config(api, bad, &err), VMP_EINVAL);
    assert_non_null(strstr(err.msg, "tagfilter"));
    vmp_config_free(bad);
    expect_json(req("GET", "/api/v3/vm", NULL, NULL, NULL), 200, "[\"fresh\"]");
}

/* A config without :pools: serves the pools the manager published. */
static void test_pools_from_redis(void **state)
{
    NEED_SERVER();
    vmp_config *bare = NULL;
    vmp_config_opts co = {.no_env = true};
    vmp_err err = {0};
    assert_int_equal(vmp_config_load_string("---\n:config:\n  vm_lifetime: 12\n", "<bare>", &co,
                                            &bare, NULL, &err),
                     0);
    vmp_strlist kv1 = {0}, kv2 = {0};
    vmp_strlist_push(&kv1, "name");
    vmp_strlist_push(&kv1, "redis1");
    vmp_strlist_push(&kv1, "template");
    vmp_strlist_push(&kv1, "t/redis1");
    vmp_strlist_push(&kv1, "size");
    vmp_strlist_push(&kv1, "3");
    vmp_strlist_push(&kv1, "alias");
    vmp_strlist_push(&kv1, "r,rr");
    vmp_strlist_push(&kv1, "domain");
    vmp_strlist_push(&kv1, "redis.example");
    vmp_strlist_push(&kv2, "name");
    vmp_strlist_push(&kv2, "redis2");
    vmp_strlist_push(&kv2, "size");
    vmp_strlist_push(&kv2, "1");
    vmp_store_pool_pub pubs[2] = {{"redis1", &kv1}, {"redis2", &kv2}};
    assert_int_equal(vmp_store_pools_publish(st, pubs, 2, &err), 0);
    vmp_strlist_clear(&kv1);
    vmp_strlist_clear(&kv2);
    assert_int_equal(vmp_api_set_config(api, bare, &err), 0);
    vmp_config_free(cfg);
    cfg = bare;
    expect_json(req("GET", "/api/v3/vm", NULL, NULL, NULL), 200, "[\"redis1\",\"redis2\"]");
    seed_ready("redis1", "rvm");
    expect_json(req("POST", "/api/v3/vm", "{\"rr\":1}", NULL, NULL), 200,
                "{\"ok\":true,\"rr\":{\"hostname\":\"rvm.redis.example\"}}");
    expect_json(req("GET", "/api/v3/poolstat?pool=r", NULL, NULL, NULL), 200,
                "{\"pools\":{\"redis1\":{\"max\":3,\"alias\":[\"r\",\"rr\"],\"ready\":0}}}");
    resp *r = req("GET", "/api/v3/config", NULL, NULL, NULL);
    json_t *j = body_json(r);
    json_t *p0 = json_array_get(json_object_get(j, "pool_configuration"), 0);
    assert_string_equal(json_string_value(json_object_get(p0, "name")), "redis1");
    assert_string_equal(json_string_value(json_object_get(p0, "template")), "t/redis1");
    json_decref(j);
    resp_free(r);
}

static void test_listen_parse(void **state)
{
    char *host = NULL;
    int p = 0;
    vmp_err err = {0};
    assert_int_equal(vmp_api_parse_listen("0.0.0.0:8080", &host, &p, &err), 0);
    assert_string_equal(host, "0.0.0.0");
    assert_int_equal(p, 8080);
    free(host);
    host = NULL;
    assert_int_equal(vmp_api_parse_listen("[::1]:99", &host, &p, &err), 0);
    assert_string_equal(host, "::1");
    free(host);
    host = NULL;
    assert_int_equal(vmp_api_parse_listen("4567", &host, &p, &err), 0);
    assert_null(host);
    assert_int_equal(p, 4567);
    assert_int_equal(vmp_api_parse_listen(":4568", &host, &p, &err), 0);
    assert_null(host);
    assert_int_equal(vmp_api_parse_listen("h:0", &host, &p, &err), VMP_EINVAL);
    assert_int_equal(vmp_api_parse_listen("h:x", &host, &p, &err), VMP_EINVAL);
    assert_int_equal(vmp_api_parse_listen("::1:80", &host, &p, &err), VMP_EINVAL);
}

static void test_bind_error(void **state)
{
    NEED_SERVER();
    vmp_api *other = NULL;
    vmp_err err = {0};
    vmp_api_opts ao = {.config = cfg, .store = &sopts, .listen_port = port};
    assert_int_equal(vmp_api_new(&ao, &other, &err), 0);
    assert_int_equal(vmp_api_start(other, &err), VMP_EIO);
    assert_non_null(strstr(err.msg, "Address already in use"));
    vmp_api_free(other);
}

/* Stopped, then started again: the workers serve as long as before. */
static void test_restart(void **state)
{
    NEED_SERVER();
    vmp_api_stop(api);
    assert_int_equal(vmp_api_port(api), 0);
    vmp_err err = {0};
    if (vmp_api_start(api, &err) != 0)
        fail_msg("start: %s", err.msg);
    port = vmp_api_port(api);
    for (int i = 0; i < 3; i++)
        expect_json(req("GET", "/api/v3/vm", NULL, NULL, NULL), 200,
                    "[\"pool1\",\"pool2\",\"pool3\"]");
}

static void test_redis_down(void **state)
{
    NEED_SERVER();
    vmp_test_redis_kill(srv);
    resp *r = req("GET", "/api/v3/totalrunning", NULL, NULL, NULL);
    assert_int_equal(r->status, 503);
    json_t *j = body_json(r);
    assert_true(json_is_false(json_object_get(j, "ok")));
    json_decref(j);
    resp_free(r);
    char msg[256];
    assert_int_equal(vmp_test_redis_restart(srv, msg, sizeof(msg)), 0);
    /* the next request reconnects */
    expect_json(req("GET", "/api/v3/totalrunning", NULL, NULL, NULL), 200, "{\"running\":0}");
}

/* ---- LDAP against a real slapd ------------------------------------------------------------- */

static const char *slapd_conf = "include /etc/ldap/schema/core.schema\n"
                                "include /etc/ldap/schema/cosine.schema\n"
                                "include /etc/ldap/schema/inetorgperson.schema\n"
                                "modulepath /usr/lib/ldap\n"
                                "moduleload back_mdb\n"
                                "pidfile %s/slapd.pid\n"
                                "database mdb\n"
                                "maxsize 10485760\n"
                                "suffix \"dc=example,dc=com\"\n"
                                "rootdn \"cn=admin,dc=example,dc=com\"\n"
                                "rootpw adminpw\n"
                                "directory %s/db\n"
                                "%s";

static const char *slapd_ldif =
    "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\no: Example\n"
    "dc: example\n\n"
    "dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n"
    "dn: ou=staff,dc=example,dc=com\nobjectClass: organizationalUnit\nou: staff\n\n"
    "dn: uid=alice,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: alice\n"
    "cn: Alice\nsn: A\nuserPassword: alicepw\n\n"
    "dn: cn=bob,ou=staff,dc=example,dc=com\nobjectClass: inetOrgPerson\ncn: bob\nsn: B\n"
    "uid: bobby\nuserPassword: bobpw\n\n"
    "dn: cn=svc,dc=example,dc=com\nobjectClass: inetOrgPerson\ncn: svc\nsn: S\n"
    "userPassword: svcpw\n";

static pid_t slapd_pid = -1;
static int slapd_port, slapd_tls_port;
static char slapd_dir[64];

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) != 0)
    {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Starts slapd on 127.0.0.1:<free port> with a throwaway directory; false
 * (with skip_msg set) when slapd is not installed. */
/* A throwaway CA and a server certificate for 127.0.0.1 (openssl CLI). */
static bool make_certs(void)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd %s && printf 'subjectAltName=IP:127.0.0.1\\n' >san.ext && "
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
             "-subj /CN=vmpool-test-ca && "
             "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
             "-subj /CN=127.0.0.1 && "
             "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out server.pem -days 2 -extfile san.ext && chmod 644 server.key"
             " >openssl.log 2>&1",
             slapd_dir);
    return system(cmd) == 0;
}

static bool slapd_start(void)
{
    if (access("/usr/sbin/slapd", X_OK) != 0 || access("/usr/sbin/slapadd", X_OK) != 0) {
        snprintf(skip_msg, sizeof(skip_msg), "slapd not installed");
        return false;
    }
    snprintf(slapd_dir, sizeof(slapd_dir), "/tmp/vmp-test-slapd-XXXXXX");
    assert_non_null(mkdtemp(slapd_dir));
    char path[256], cmd[1024], conf[2048];
    snprintf(path, sizeof(path), "%s/db", slapd_dir);
    assert_int_equal(mkdir(path, 0700), 0);
    char tls[1024] = "";
    if (access("/usr/bin/openssl", X_OK) == 0 && make_certs())
        snprintf(tls, sizeof(tls),
                 "TLSCACertificateFile %s/ca.pem\nTLSCertificateFile %s/server.pem\n"
                 "TLSCertificateKeyFile %s/server.key\n",
                 slapd_dir, slapd_dir, slapd_dir);
    snprintf(conf, sizeof(conf), slapd_conf, slapd_dir, slapd_dir, tls);
    snprintf(path, sizeof(path), "%s/slapd.conf", slapd_dir);
    write_file(path, conf);
    snprintf(path, sizeof(path), "%s/data.ldif", slapd_dir);
    write_file(path, slapd_ldif);
    snprintf(cmd, sizeof(cmd),
             "/usr/sbin/slapadd -f %s/slapd.conf -l %s/data.ldif >%s/slapadd.log 2>&1", slapd_dir,
             slapd_dir, slapd_dir);
    assert_int_equal(system(cmd), 0);
    slapd_port = free_port();
    slapd_tls_port = tls[0] ? free_port() : 0;
    assert_true(slapd_port > 0);
    char url[160], cf[256];
    if (slapd_tls_port > 0)
        snprintf(url, sizeof(url), "ldap://127.0.0.1:%d/ ldaps://127.0.0.1:%d/", slapd_port,
                 slapd_tls_port);
    else
        snprintf(url, sizeof(url), "ldap://127.0.0.1:%d/", slapd_port);
    snprintf(cf, sizeof(cf), "%s/slapd.conf", slapd_dir);
    slapd_pid = fork();
    assert_true(slapd_pid >= 0);
    if (slapd_pid == 0) {
        /* -d keeps it in the foreground, so the pid is ours to stop */
        execl("/usr/sbin/slapd", "slapd", "-f", cf, "-h", url, "-d", "0", (char *)NULL);
        _exit(127);
    }
    /* wait until it accepts connections */
    for (int i = 0; i < 100; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)slapd_port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        if (ok)
            return true;
        usleep(50000);
    }
    fail_msg("slapd did not start (see %s)", slapd_dir);
    return false;
}

static void slapd_stop(void)
{
    if (slapd_pid > 0) {
        kill(slapd_pid, SIGTERM);
        waitpid(slapd_pid, NULL, 0);
        slapd_pid = -1;
    }
    if (slapd_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", slapd_dir);
        if (system(cmd) != 0)
            print_message("could not remove %s\n", slapd_dir);
        slapd_dir[0] = '\0';
    }
}

static void ldap_api(const char *ldap_yaml)
{
    char top[2048];
    snprintf(top, sizeof(top),
             ":auth:\n  provider: ldap\n  :ldap:\n    host: 127.0.0.1\n"
             "    port: %d\n%s",
             slapd_port, ldap_yaml);
    start_api(NULL, top);
}

static long login(const char *userpwd)
{
    resp *r = req("GET", "/api/v3/token", NULL, userpwd, NULL);
    long s = r->status;
    resp_free(r);
    return s;
}

static void test_ldap(void **state)
{
    NEED_SERVER();
    if (!slapd_start()) {
        print_message("skipped: %s\n", skip_msg);
        skip();
    }
    /* several bases and user objects, direct bind, no TLS */
    ldap_api("    base:\n      - ou=people,dc=example,dc=com\n      - ou=staff,dc=example,dc=com\n"
             "    user_object:\n      - uid\n      - cn\n    encryption:\n      method: plain\n");
    /* no token yet: 404 after a successful login, 401 on a failed one */
    expect_json(req("GET", "/api/v3/token", NULL, "alice:alicepw", NULL), 404, "{\"ok\":false}");
    assert_int_equal(login("alice:wrong"), 401);
    assert_int_equal(login("bob:bobpw"), 404); /* cn=bob under the second base */
    assert_int_equal(login("bob:alicepw"), 401);
    assert_int_equal(login("alice:"), 401);                  /* no anonymous bind */
    assert_int_equal(login("alice,ou=people:alicepw"), 401); /* DN injection is escaped */
    assert_int_equal(login("nobody:x"), 401);
    resp *r = req("POST", "/api/v3/token", NULL, "alice:alicepw", NULL);
    assert_int_equal(r->status, 200);
    resp_free(r);
    assert_int_equal(login("alice:alicepw"), 200);

    /* service account: bind, search (uid=<login>), bind as the entry */
    ldap_api("    base: dc=example,dc=com\n    user_object: uid\n    encryption:\n"
             "      method: plain\n    service_account_hash:\n"
             "      :user_dn: cn=svc,dc=example,dc=com\n      :password: svcpw\n");
    assert_int_equal(login("bobby:bobpw"), 404);
    assert_int_equal(login("alice:alicepw"), 200);
    assert_int_equal(login("bobby:wrong"), 401);
    assert_int_equal(login("*:bobpw"), 401); /* filter injection is escaped */
    ldap_api("    base: dc=example,dc=com\n    user_object: uid\n    encryption:\n"
             "      method: plain\n    service_account_hash:\n"
             "      :user_dn: cn=svc,dc=example,dc=com\n      :password: nope\n");
    assert_int_equal(login("bobby:bobpw"), 401);

    if (slapd_tls_port <= 0) {
        slapd_stop();
        print_message("TLS cases skipped: openssl could not make certificates\n");
        skip();
    }
    char y[1024];
    /* STARTTLS (vmpooler's default) verified against the test CA */
    snprintf(y, sizeof(y),
             "    base: ou=people,dc=example,dc=com\n    user_object: uid\n"
             "    encryption:\n      method: start_tls\n      tls_options:\n"
             "        ca_file: %s/ca.pem\n",
             slapd_dir);
    ldap_api(y);
    assert_int_equal(login("alice:alicepw"), 200); /* alice has a token */
    assert_int_equal(login("alice:wrong"), 401);
    /* the default (STARTTLS, system CAs) does not trust the test CA: refused,
     * never a fall back to clear text */
    ldap_api("    base: ou=people,dc=example,dc=com\n    user_object: uid\n");
    assert_int_equal(login("alice:alicepw"), 401);
    /* unless verification is turned off */
    ldap_api("    base: ou=people,dc=example,dc=com\n    user_object: uid\n"
             "    encryption:\n      method: start_tls\n      tls_options:\n"
             "        verify_mode: 0\n");
    assert_int_equal(login("alice:alicepw"), 200); /* alice has a token */
    /* LDAPS (simple_tls) on its own port */
    char top[2048];
    snprintf(top, sizeof(top),
             ":auth:\n  provider: ldap\n  :ldap:\n    host: 127.0.0.1\n    port: %d\n"
             "    base: ou=people,dc=example,dc=com\n    user_object: uid\n"
             "    encryption:\n      method: simple_tls\n      tls_options:\n"
             "        ca_file: %s/ca.pem\n",
             slapd_tls_port, slapd_dir);
    start_api(NULL, top);
    assert_int_equal(login("alice:alicepw"), 200); /* alice has a token */
    assert_int_equal(login("alice:nope"), 401);
    slapd_stop();
}

/* ---- a client that leaves while its request waits for Redis ---------------- */

/* A stand-in for an LDAP server that accepts connections and answers none:
 * a login against it holds the API worker inside its handler until the test
 * closes that connection. */
typedef struct stall_ldap {
    int listen_fd, port;
    int fds[4];
    int accepted;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
} stall_ldap;

static void *stall_ldap_main(void *ud)
{
    stall_ldap *l = ud;
    for (;;) {
        int fd = accept(l->listen_fd, NULL, NULL);
        if (fd < 0)
            return NULL; /* the listening socket was shut down */
        pthread_mutex_lock(&l->mu);
        if (l->accepted < 4)
            l->fds[l->accepted++] = fd;
        else
            close(fd);
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
    }
}

static void stall_ldap_start(stall_ldap *l)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    l->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l->listen_fd >= 0);
    assert_int_equal(bind(l->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(l->listen_fd, 8), 0);
    assert_int_equal(getsockname(l->listen_fd, (struct sockaddr *)&sa, &len), 0);
    l->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&l->thread, NULL, stall_ldap_main, l), 0);
}

/* Waits (up to 10 s) until n connections have come in. */
static bool stall_ldap_wait(stall_ldap *l, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&l->mu);
    while (l->accepted < n && pthread_cond_timedwait(&l->cv, &l->mu, &until) == 0)
        ;
    bool ok = l->accepted >= n;
    pthread_mutex_unlock(&l->mu);
    return ok;
}

/* Hangs up on connection i: the bind waiting on it fails at once. */
static void stall_ldap_release(stall_ldap *l, int i)
{
    pthread_mutex_lock(&l->mu);
    if (l->fds[i] >= 0) {
        close(l->fds[i]);
        l->fds[i] = -1;
    }
    pthread_mutex_unlock(&l->mu);
}

static void stall_ldap_stop(stall_ldap *l)
{
    shutdown(l->listen_fd, SHUT_RDWR);
    pthread_join(l->thread, NULL);
    close(l->listen_fd);
    for (int i = 0; i < l->accepted; i++)
        stall_ldap_release(l, i);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
}

static int raw_connect(int p)
{
    int fd = dial_loopback(p);
    assert_true(fd >= 0);
    return fd;
}

static void raw_send(int fd, const char *text)
{
    assert_int_equal(send(fd, text, strlen(text), MSG_NOSIGNAL), (ssize_t)strlen(text));
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct log_catch {
    pthread_mutex_t mu;
    char line[512];
} log_catch;

static void catch_left(vmp_log_level level, const char *subsys, const char *pool, const char *vm,
                       const char *msg, void *ud)
{
    (void)level;
    (void)pool;
    (void)vm;
    log_catch *c = ud;
    if (strcmp(subsys, "api") != 0 || !strstr(msg, "closed its connection before the reply"))
        return;
    pthread_mutex_lock(&c->mu);
    snprintf(c->line, sizeof(c->line), "%s", msg);
    pthread_mutex_unlock(&c->mu);
}

/* A checkout whose client resets the connection after libmicrohttpd has
 * handed the request over but before Redis answered: libmicrohttpd reports
 * the request finished while it still waits in the worker's Redis group,
 * and the group's callback must answer nobody, free what the request held
 * and log it (the sanitizer build checks the memory). One worker, held in
 * place by logins against an LDAP server that does not answer:
 *   1. a login (C) holds the worker;
 *   2. the checkout (A), then a second login (B), arrive meanwhile;
 *   3. C is let go: the worker takes A into its group and is held by B;
 *   4. A resets, B is let go: the group goes to Redis and the daemon then
 *      sees A's reset while the checkout is in flight. */
static void test_reset_while_waiting(void **state)
{
    NEED_SERVER();
    seed_ready("pool1", "orphan1");
    stall_ldap ldap;
    stall_ldap_start(&ldap);
    char top[512];
    snprintf(top, sizeof(top),
             ":auth:\n  provider: ldap\n  :ldap:\n    host: 127.0.0.1\n    port: %d\n"
             "    base: ou=people,dc=example,dc=com\n    user_object: uid\n",
             ldap.port);
    start_api(NULL, top);
    vmp_api *one = extra_api(1);
    int p = vmp_api_port(one);
    log_catch caught = {.mu = PTHREAD_MUTEX_INITIALIZER};
    vmp_log_set_callback(catch_left, &caught);

    const char *login_req = "GET /api/v3/token HTTP/1.1\r\nHost: x\r\n"
                            "Authorization: Basic YWxpY2U6cHc=\r\n\r\n";
    /* connected first, so that the idle worker accepts all three */
    int c = raw_connect(p), a = raw_connect(p), b = raw_connect(p);
    sleep_ms(100);
    raw_send(c, login_req);
    assert_true(stall_ldap_wait(&ldap, 1));
    raw_send(a, "POST /api/v3/vm/pool1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    sleep_ms(20);
    raw_send(b, login_req);
    sleep_ms(20);
    stall_ldap_release(&ldap, 0);
    assert_true(stall_ldap_wait(&ldap, 2));
    struct linger lg = {1, 0}; /* close with a reset */
    setsockopt(a, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(a);
    sleep_ms(20);
    stall_ldap_release(&ldap, 1);

    /* the logins fail (nobody answered them) and the worker serves on */
    char buf[4096];
    for (int i = 0; i < 2; i++) {
        int fd = i ? b : c;
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
        assert_true(n > 12);
        buf[n] = '\0';
        assert_memory_equal(buf, "HTTP/1.1 401", 12);
        close(fd);
    }
    tport = p;
    expect_json(req("GET", "/api/v3/vm", NULL, NULL, NULL), 200, "[\"pool1\",\"pool2\",\"pool3\"]");
    tport = 0;
    vmp_api_free(one); /* the worker has ended: every callback has run */
    vmp_log_set_callback(NULL, NULL);
    stall_ldap_stop(&ldap);
    /* the checkout was carried out for the client that left */
    assert_string_equal(caught.line,
                        "POST /api/v3/vm/pool1: the client closed its connection before the "
                        "reply (200)");
    assert_int_equal(count("pool1", VMP_VM_RUNNING), 1);
    assert_int_equal(count("pool1", VMP_VM_READY), 0);
}

int main(void)
{
    /* The server runs as in vmpoold, which ignores SIGPIPE: a client that
     * hangs up early (413 on a body still being sent, a killed Redis) must
     * show as an error in a test, not end the whole binary. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_parse),
        cmocka_unit_test_setup(test_status, each),
        cmocka_unit_test_setup(test_pretty_printing, each),
        cmocka_unit_test_setup(test_poolstat_totalrunning, each),
        cmocka_unit_test_setup(test_summary, each),
        cmocka_unit_test_setup(test_checkout_body, each),
        cmocka_unit_test_setup(test_checkout_all_or_nothing, each),
        cmocka_unit_test_setup(test_checkout_alias, each),
        cmocka_unit_test_setup(test_checkout_errors, each),
        cmocka_unit_test_setup(test_return, each),
        cmocka_unit_test_setup(test_vm_get, each),
        cmocka_unit_test_setup(test_vm_destroyed, each),
        cmocka_unit_test_setup(test_vm_put, each),
        cmocka_unit_test_setup(test_tags_filtered, each),
        cmocka_unit_test_setup(test_disk_snapshot, each),
        cmocka_unit_test_setup(test_tokens, each),
        cmocka_unit_test_setup(test_dummy_auth_needs_debug, each),
        cmocka_unit_test_setup(test_config, each),
        cmocka_unit_test_setup(test_config_gated, each),
        cmocka_unit_test_setup(test_full_config_redacted, each),
        cmocka_unit_test_setup(test_ondemand, each),
        cmocka_unit_test_setup(test_ondemand_states, each),
        cmocka_unit_test_setup(test_routing, each),
        cmocka_unit_test_setup(test_rate_limit, each),
        cmocka_unit_test_setup(test_concurrent_checkout, each),
        cmocka_unit_test_setup(test_bind_error, each),
        cmocka_unit_test_setup(test_restart, each),
        cmocka_unit_test_setup(test_redis_down, each),
        cmocka_unit_test_setup(test_ldap, each),
        cmocka_unit_test_setup(test_events, each),
        cmocka_unit_test_setup(test_set_config, each),
        cmocka_unit_test_setup(test_reload_under_load, each),
        cmocka_unit_test_setup(test_client_resets, each),
        cmocka_unit_test_setup(test_reset_while_waiting, each),
        cmocka_unit_test_setup(test_pools_from_redis, each),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
