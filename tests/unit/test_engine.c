/*
 * Engine tests: the lifecycle engine driven by hand (manual mode, manual
 * clock) against the mock provider and a real redis-server. Each test uses
 * its own key prefix, so tests share one server without interfering.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "log.h"
#include "mock_provider.h"
#include "redis_server.h"
#include "store/store.h"

#define T0 1700000000.0

static vmp_test_redis *g_redis;
static int g_prefix_no;
static vmp_provider_ops g_nomig_ops; /* "mock_nomig": mock without migrate_vm */

/* ---- metrics recorder ---------------------------------------------------- */

typedef struct recorder {
    pthread_mutex_t lock;
    vmp_strlist names; /* "inc <name>", "gauge <name>", "timing <name>" */
} recorder;

static void rec_add(recorder *r, const char *kind, const char *name)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s %s", kind, name);
    pthread_mutex_lock(&r->lock);
    vmp_strlist_push(&r->names, buf);
    pthread_mutex_unlock(&r->lock);
}
static void rec_inc(void *ud, const char *name) { rec_add(ud, "inc", name); }
static void rec_gauge(void *ud, const char *name, double v) { rec_add(ud, "gauge", name); }
static void rec_timing(void *ud, const char *name, double v) { rec_add(ud, "timing", name); }
static const vmp_metrics_ops rec_ops = {rec_inc, rec_gauge, rec_timing, NULL};

static int rec_count(recorder *r, const char *entry)
{
    int n = 0;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->names.n; i++)
        if (strcmp(r->names.v[i], entry) == 0)
            n++;
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* ---- fixture ------------------------------------------------------------------ */

typedef struct fx {
    vmp_config *cfg;
    vmp_engine *e;
    vmp_clock *clock;
    vmp_store *st;
    vmp_store_opts so;
    char prefix[32];
    recorder rec;
    vmp_metrics *metrics;
    redisContext *rc;
    vmp_engine_hooks hooks;
    bool use_hooks;
    bool keep_discovered;
    const char *owner;
} fx;

static const char *const g_classes[] = {"mock", "mock_minimal", "mock_nomig", NULL};

static vmp_config *load_cfg(const char *yaml)
{
    vmp_config *cfg = NULL;
    vmp_err err = {0};
    vmp_config_opts o = {.no_env = true, .provider_classes = g_classes};
    vmp_strlist errors = VMP_STRLIST_INIT;
    int rc = vmp_config_load_string(yaml, "<test>", &o, &cfg, &errors, &err);
    if (rc != 0) {
        fprintf(stderr, "config: %s\n", err.msg);
        for (size_t i = 0; i < errors.n; i++)
            fprintf(stderr, "  %s\n", errors.v[i]);
    }
    vmp_strlist_clear(&errors);
    assert_int_equal(rc, 0);
    return cfg;
}

/* A fixture over yaml, not started. */
static fx *fx_make(const char *yaml)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->prefix, sizeof f->prefix, "t%d", ++g_prefix_no);
    f->cfg = load_cfg(yaml);
    f->clock = vmp_clock_manual_new(T0);
    pthread_mutex_init(&f->rec.lock, NULL);
    f->metrics = vmp_metrics_new(&rec_ops, &f->rec);
    f->so.socket = vmp_test_redis_socket(g_redis);
    f->so.prefix = f->prefix;
    vmp_err err = {0};
    assert_int_equal(vmp_store_open(&f->so, &f->st, &err), 0);
    f->rc = redisConnectUnix(vmp_test_redis_socket(g_redis));
    assert_non_null(f->rc);
    assert_int_equal(f->rc->err, 0);
    return f;
}

static int fx_start(fx *f)
{
    vmp_err err = {0};
    vmp_engine_opts o = {
        .config = f->cfg,
        .store = &f->so,
        .clock = f->clock,
        .metrics = f->metrics,
        .hooks = f->use_hooks ? &f->hooks : NULL,
        .manual = true,
        .workers = 4,
        .owner = f->owner ? f->owner : "engine-A",
        .keep_discovered_vms = f->keep_discovered,
    };
    int rc = vmp_engine_new(&o, &f->e, &err);
    if (rc == 0)
        rc = vmp_engine_start(f->e, &err);
    if (rc != 0)
        fprintf(stderr, "engine: %s\n", err.msg);
    return rc;
}

static fx *fx_new(const char *yaml)
{
    fx *f = fx_make(yaml);
    assert_int_equal(fx_start(f), 0);
    return f;
}

static void fx_free(fx *f)
{
    if (!f)
        return;
    vmp_engine_free(f->e);
    vmp_store_free(f->st);
    vmp_config_free(f->cfg);
    vmp_metrics_free(f->metrics);
    vmp_clock_free(f->clock);
    redisFree(f->rc);
    vmp_strlist_clear(&f->rec.names);
    pthread_mutex_destroy(&f->rec.lock);
    free(f);
}

static vmp_mock *fx_mock(fx *f, const char *name)
{
    vmp_provider *p = vmp_engine_provider(f->e, name ? name : "mock");
    assert_non_null(p);
    return vmp_provider_self(p);
}

/* One pass of pool, then wait for its tasks. */
static vmp_engine_pass_result fx_pass(fx *f, const char *pool)
{
    vmp_engine_pass_result r;
    vmp_err err = {0};
    int rc = vmp_engine_run_pass(f->e, pool, &r, &err);
    if (rc != 0)
        fprintf(stderr, "pass %s: %s\n", pool, err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(vmp_engine_wait_idle(f->e, 10), 0);
    return r;
}

static long long fx_count(fx *f, const char *pool, vmp_vm_state st)
{
    vmp_store_pool_counts c;
    vmp_err err = {0};
    assert_int_equal(vmp_store_pool_counts_get(f->st, pool, &c, &err), 0);
    return c.n[st];
}

/* The first member of a set (caller frees), or NULL. */
static char *fx_first(fx *f, const char *pool, vmp_vm_state st)
{
    vmp_strlist l = VMP_STRLIST_INIT;
    vmp_err err = {0};
    assert_int_equal(vmp_store_set_members(f->st, pool, st, &l, &err), 0);
    char *s = l.n ? strdup(l.v[0]) : NULL;
    vmp_strlist_clear(&l);
    return s;
}

static char *fx_field(fx *f, const char *vm, const char *field)
{
    char *v = NULL;
    vmp_err err = {0};
    assert_int_equal(vmp_store_vm_get(f->st, vm, field, &v, &err), 0);
    return v;
}

static long long fx_ttl(fx *f, const char *key)
{
    redisReply *r = redisCommand(f->rc, "TTL %s__%s", f->prefix, key);
    assert_non_null(r);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static bool fx_exists(fx *f, const char *key)
{
    redisReply *r = redisCommand(f->rc, "EXISTS %s__%s", f->prefix, key);
    assert_non_null(r);
    bool v = r->integer == 1;
    freeReplyObject(r);
    return v;
}

static char *fx_get(fx *f, const char *key)
{
    redisReply *r = redisCommand(f->rc, "GET %s__%s", f->prefix, key);
    assert_non_null(r);
    char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return v;
}

/* Puts a VM straight into a set of pool (and the VM hash), as the API or
 * an earlier manager would have. */
static void fx_put(fx *f, const char *pool, vmp_vm_state st, const char *vm, double clone_t)
{
    vmp_err err = {0};
    assert_int_equal(vmp_store_clone_start(f->st, pool, vm, NULL, NULL, NULL, clone_t, &err), 0);
    if (st != VMP_VM_PENDING)
        assert_int_equal(vmp_store_move(f->st, pool, vm, VMP_VM_PENDING, st, &err), 0);
    if (st == VMP_VM_READY) {
        char t[VMP_TIME_STR_MAX];
        vmp_time_format(clone_t, t, sizeof t);
        assert_int_equal(vmp_store_vm_set(f->st, vm, "ready", t, &err), 0);
    }
}

/* Reopens the test's own store after its prefix changed. */
static void fx_reopen_store(fx *f)
{
    vmp_err err = {0};
    vmp_store_free(f->st);
    f->st = NULL;
    assert_int_equal(vmp_store_open(&f->so, &f->st, &err), 0);
}

static void fx_checkout(fx *f, const char *pool, char **vm_out)
{
    const char *pools[] = {pool};
    vmp_store_want w = {.name = pool, .pools = pools, .npools = 1};
    vmp_store_checkout_opts o = {.now = vmp_clock_now(f->clock)};
    vmp_store_checkout_result res = {0};
    vmp_err err = {0};
    assert_int_equal(vmp_store_checkout(f->st, &w, 1, &o, &res, &err), 0);
    assert_int_equal(res.nvms, 1);
    if (vm_out)
        *vm_out = strdup(res.vms[0].vm);
    vmp_store_checkout_result_clear(&res);
}

#define BASE_CONFIG                                                                                \
    "---\n"                                                                                        \
    ":config:\n"                                                                                   \
    "  task_limit: 10\n"                                                                           \
    "  vm_checktime: 1\n"                                                                          \
    "  prefix: 'poolvm-'\n"

#define POOL1(size)                                                                                \
    ":pools:\n"                                                                                    \
    "  - name: pool1\n"                                                                            \
    "    template: templates/one\n"                                                                \
    "    size: " #size "\n"                                                                        \
    "    provider: mock\n"

#define NEED_REDIS()                                                                               \
    do {                                                                                           \
        if (!g_redis)                                                                              \
            skip();                                                                                \
    } while (0)

/* ---- names ------------------------------------------------------------------------ */

static void test_word_lists(void **state)
{
    assert_true(eng_n_adjectives >= 200);
    assert_true(eng_n_nouns >= 200);
    size_t shortest_adj = 100;
    for (size_t i = 0; i < eng_n_adjectives; i++) {
        size_t l = strlen(eng_adjectives[i]);
        assert_true(l > 0);
        if (l < shortest_adj)
            shortest_adj = l;
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(eng_adjectives[i], eng_adjectives[j]);
    }
    for (size_t i = 0; i < eng_n_nouns; i++) {
        size_t l = strlen(eng_nouns[i]);
        assert_true(l > 0 && l <= 10);
        /* every noun has an adjective that fits */
        assert_true(shortest_adj <= 14 - l);
        for (const char *c = eng_nouns[i]; *c; c++)
            assert_true(*c >= 'a' && *c <= 'z');
    }
}

static void test_name_generate(void **state)
{
    unsigned seed = 42;
    vmp_strlist seen = VMP_STRLIST_INIT;
    for (int i = 0; i < 2000; i++) {
        char name[64];
        eng_name_generate(&seed, name, sizeof name);
        char *dash = strchr(name, '-');
        assert_non_null(dash);
        size_t la = (size_t)(dash - name), ln = strlen(dash + 1);
        assert_true(ln >= 1 && ln <= 10);
        assert_true(la >= 1 && la <= 14 - ln);
        assert_true(strlen(name) <= 15);
        if (!vmp_strlist_contains(&seen, name))
            vmp_strlist_push(&seen, name);
    }
    /* not a constant: many distinct names */
    assert_true(seen.n > 1500);
    vmp_strlist_clear(&seen);
    char num[64];
    eng_name_generate_numbered(&seed, num, sizeof num);
    assert_non_null(strchr(strchr(num, '-') + 1, '-'));
}

static void test_permanent_errors(void **state)
{
    assert_true(eng_error_permanent(VMP_EPROVIDER, "Template 'x' was not found"));
    assert_true(eng_error_permanent(VMP_EPROVIDER, "permission to clone denied"));
    assert_true(eng_error_permanent(VMP_EINVAL, "whatever"));
    assert_false(eng_error_permanent(VMP_EPROVIDER, "connection reset"));
    assert_false(eng_error_permanent(VMP_EPROVIDER, NULL));
    assert_false(eng_error_permanent(VMP_ETIMEDOUT, ""));
}

/* ---- start-up (§4.1) ---------------------------------------------------------------- */

static void test_startup(void **state)
{
    NEED_REDIS();
    fx *f = fx_make(BASE_CONFIG POOL1(2));
    vmp_err err = {0};
    /* state a previous manager left behind */
    assert_int_equal(vmp_store_counter_set(f->st, VMP_COUNTER_CLONE, 7, &err), 0);
    assert_int_equal(vmp_store_counter_set(f->st, VMP_COUNTER_ONDEMAND_CLONE, 3, &err), 0);
    assert_int_equal(vmp_store_migration_add(f->st, "old-vm", &err), 0);
    assert_int_equal(
        vmp_store_override_set(f->st, VMP_OVERRIDE_TEMPLATE, "pool1", "templates/two", &err), 0);
    assert_int_equal(fx_start(f), 0);

    char *v = fx_get(f, "tasks__clone");
    assert_string_equal(v, "0");
    free(v);
    v = fx_get(f, "tasks__ondemandclone");
    assert_string_equal(v, "0");
    free(v);
    long long n = -1;
    assert_int_equal(vmp_store_migration_count(f->st, &n, &err), 0);
    assert_int_equal(n, 0);
    vmp_strlist pools = VMP_STRLIST_INIT, kv = VMP_STRLIST_INIT;
    assert_int_equal(vmp_store_pools_list(f->st, &pools, &err), 0);
    assert_int_equal(pools.n, 1);
    assert_string_equal(pools.v[0], "pool1");
    assert_int_equal(vmp_store_pool_config_get(f->st, "pool1", &kv, &err), 0);
    assert_string_equal(vmp_store_kv_get(&kv, "template"), "templates/one");
    assert_string_equal(vmp_store_kv_get(&kv, "size"), "2");
    vmp_strlist_clear(&pools);
    vmp_strlist_clear(&kv);
    assert_true(vmp_engine_pool_leased(f->e, "pool1"));

    /* the template override is adopted: the provider sees it */
    fx_pass(f, "pool1");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 2);
    char *vm = fx_first(f, "pool1", VMP_VM_READY);
    vmp_vm_info info;
    memset(&info, 0, sizeof info);
    assert_int_equal(
        vmp_provider_get_vm(vmp_engine_provider(f->e, "mock"), "pool1", vm, &info, &err), 0);
    assert_string_equal(info.template_path, "templates/two");
    vmp_vm_info_clear(&info);
    free(vm);
    fx_free(f);
}

/* ---- clone, pending (T1-T5) -------------------------------------------------------- */

static void test_fill_pool(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(3));
    vmp_engine_pass_result r = fx_pass(f, "pool1");
    assert_int_equal(r.cloned, 3);
    vmp_mock *m = fx_mock(f, NULL);
    assert_int_equal(vmp_mock_vm_count(m, "pool1"), 3);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 3);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_PENDING), 0);
    char *v = fx_get(f, "tasks__clone");
    assert_string_equal(v, "0");
    free(v);

    vmp_strlist vms = VMP_STRLIST_INIT;
    vmp_err err = {0};
    assert_int_equal(vmp_store_set_members(f->st, "pool1", VMP_VM_READY, &vms, &err), 0);
    for (size_t i = 0; i < vms.n; i++) {
        const char *vm = vms.v[i];
        assert_int_equal(strncmp(vm, "poolvm-", 7), 0);
        assert_non_null(strchr(vm + 7, '-'));
        char *t = fx_field(f, vm, "template");
        assert_string_equal(t, "pool1");
        free(t);
        t = fx_field(f, vm, "clone_time");
        assert_non_null(t);
        free(t);
        t = fx_field(f, vm, "ready");
        assert_non_null(t);
        free(t);
        assert_true(vmp_mock_has_vm(m, "pool1", vm));
    }
    vmp_strlist_clear(&vms);
    char *lb = NULL;
    assert_int_equal(vmp_store_lastboot_get(f->st, "pool1", &lb, &err), 0);
    assert_non_null(lb);
    free(lb);
    assert_int_equal(rec_count(&f->rec, "gauge vmpooler_clone.pool1"), 3);
    assert_int_equal(rec_count(&f->rec, "timing time_to_ready_state.pool1"), 3);
    assert_true(rec_count(&f->rec, "gauge ready.pool1") >= 1);

    /* a full pool: the next pass clones nothing */
    r = fx_pass(f, "pool1");
    assert_int_equal(r.cloned, 0);
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_CREATE_VM), 3);
    assert_int_equal(vmp_mock_overlaps(m), 0);
    fx_free(f);
}

static void test_pending_becomes_ready(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(1));
    vmp_mock *m = fx_mock(f, NULL);
    vmp_mock_set_ready_after(m, 3);
    vmp_engine_pass_result r = fx_pass(f, "pool1"); /* clone + immediate check: not ready */
    assert_int_equal(r.cloned, 1);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_PENDING), 1);
    r = fx_pass(f, "pool1"); /* 2nd check: not ready */
    assert_int_equal(r.checked_pending, 1);
    assert_int_equal(r.cloned, 0);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_PENDING), 1);
    r = fx_pass(f, "pool1"); /* 3rd: ready */
    assert_int_equal(fx_count(f, "pool1", VMP_VM_PENDING), 0);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 1);
    fx_free(f);
}

static void test_pending_timeout(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(1));
    vmp_mock *m = fx_mock(f, NULL);
    vmp_mock_set_ready_default(m, false);
    fx_pass(f, "pool1");
    char *vm = fx_first(f, "pool1", VMP_VM_PENDING);
    assert_non_null(vm);
    /* past the notification (5 min) but within the timeout (15 min) */
    vmp_clock_advance(f->clock, 6 * 60);
    fx_pass(f, "pool1");
    char *n = fx_field(f, vm, "timeout_notification");
    assert_non_null(n);
    assert_string_equal(n, "1");
    free(n);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_PENDING), 1);
    /* past the timeout: failed, to completed (T4), and a new clone */
    vmp_clock_advance(f->clock, 10 * 60);
    fx_pass(f, "pool1");
    vmp_err err = {0};
    bool member = false;
    assert_int_equal(vmp_store_is_member(f->st, "pool1", VMP_VM_COMPLETED, vm, &member, &err), 0);
    assert_true(member);
    assert_int_equal(rec_count(&f->rec, "inc vmpooler_errors.markedasfailed.pool1"), 1);
    /* the next pass destroys it */
    fx_pass(f, "pool1");
    assert_false(vmp_mock_has_vm(m, "pool1", vm));
    assert_int_equal(fx_count(f, "pool1", VMP_VM_COMPLETED), 0);
    free(vm);
    fx_free(f);
}

static void test_pending_missing(void **state)
{
    NEED_REDIS();
    fx *f = fx_make(BASE_CONFIG POOL1(0));
    /* recorded pending by a manager that crashed before the provider made it */
    fx_put(f, "pool1", VMP_VM_PENDING, "lost-at-start", T0);
    assert_int_equal(fx_start(f), 0);
    fx_pass(f, "pool1"); /* start-up reconcile: dropped at once */
    assert_int_equal(fx_count(f, "pool1", VMP_VM_PENDING), 0);
    assert_true(fx_ttl(f, "vm__lost-at-start") > 0);

    /* after start-up, a missing pending VM waits for the timeout (T5) */
    fx_put(f, "pool1", VMP_VM_PENDING, "lost-later", T0);
    fx_pass(f, "pool1");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_PENDING), 1);
    vmp_clock_advance(f->clock, 16 * 60);
    fx_pass(f, "pool1");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_PENDING), 0);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_COMPLETED), 0);
    fx_free(f);
}

static void test_clone_failure(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(2));
    vmp_mock *m = fx_mock(f, NULL);
    vmp_mock_fail(m, VMP_MOCK_CREATE_VM, NULL, NULL, 1, VMP_EPROVIDER, "backend exploded");
    vmp_engine_pass_result r = fx_pass(f, "pool1");
    assert_int_equal(r.cloned, 2);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 1);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_PENDING), 0);
    /* the failed VM's hash expires, with the error recorded */
    vmp_strlist calls = VMP_STRLIST_INIT;
    vmp_mock_call_log(m, &calls);
    const char *failed = NULL;
    char *ready = fx_first(f, "pool1", VMP_VM_READY);
    for (size_t i = 0; i < calls.n; i++)
        if (strncmp(calls.v[i], "create_vm pool1 ", 16) == 0 && !strstr(calls.v[i], ready))
            failed = calls.v[i] + 16;
    assert_non_null(failed);
    char key[300];
    snprintf(key, sizeof key, "vm__%s", failed);
    assert_true(fx_ttl(f, key) > 0);
    char *ce = fx_field(f, failed, "clone_error");
    assert_non_null(ce);
    assert_non_null(strstr(ce, "backend exploded"));
    free(ce);
    vmp_strlist_clear(&calls);
    free(ready);
    char *v = fx_get(f, "tasks__clone");
    assert_string_equal(v, "0");
    free(v);
    /* refilled at the next pass */
    fx_pass(f, "pool1");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 2);
    fx_free(f);
}

static void test_clone_ip_failure(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(1));
    vmp_mock *m = fx_mock(f, NULL);
    vmp_mock_fail(m, VMP_MOCK_GET_VM_IP_ADDRESS, NULL, NULL, 1, VMP_EPROVIDER, "no lease");
    fx_pass(f, "pool1");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 0);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_PENDING), 0);
    fx_pass(f, "pool1");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 1);
    char *vm = fx_first(f, "pool1", VMP_VM_READY);
    char *ip = fx_field(f, vm, "ip");
    assert_non_null(ip);
    free(ip);
    free(vm);
    fx_free(f);
}

/* ---- ready (T8, T10) ------------------------------------------------------------------ */

static void test_ready_ttl(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG ":pools:\n"
                               "  - name: pool1\n"
                               "    template: templates/one\n"
                               "    size: 1\n"
                               "    provider: mock\n"
                               "    ready_ttl: 30\n");
    fx_pass(f, "pool1");
    char *vm = fx_first(f, "pool1", VMP_VM_READY);
    assert_non_null(vm);
    vmp_clock_advance(f->clock, 20 * 60);
    vmp_engine_pass_result r = fx_pass(f, "pool1");
    assert_int_equal(r.checked_ready, 1);
    char *chk = fx_field(f, vm, "check");
    assert_non_null(chk);
    free(chk);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 1);
    vmp_clock_advance(f->clock, 11 * 60);
    fx_pass(f, "pool1");
    bool member = false;
    vmp_err err = {0};
    assert_int_equal(vmp_store_is_member(f->st, "pool1", VMP_VM_COMPLETED, vm, &member, &err), 0);
    assert_true(member);
    free(vm);
    fx_free(f);
}

static void test_ready_checks_only_when_due(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(2));
    vmp_mock *m = fx_mock(f, NULL);
    fx_pass(f, "pool1");
    unsigned ready_calls = vmp_mock_calls(m, VMP_MOCK_VM_READY);
    /* within vm_checktime: no per-VM check at all */
    vmp_clock_advance(f->clock, 30);
    vmp_engine_pass_result r = fx_pass(f, "pool1");
    assert_int_equal(r.checked_ready, 0);
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_VM_READY), ready_calls);
    vmp_clock_advance(f->clock, 31);
    r = fx_pass(f, "pool1");
    assert_int_equal(r.checked_ready, 2);
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_VM_READY), ready_calls + 2);
    fx_free(f);
}

static void test_ready_bad(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(4));
    vmp_mock *m = fx_mock(f, NULL);
    fx_pass(f, "pool1");
    vmp_strlist vms = VMP_STRLIST_INIT;
    vmp_err err = {0};
    assert_int_equal(vmp_store_set_members(f->st, "pool1", VMP_VM_READY, &vms, &err), 0);
    assert_int_equal(vms.n, 4);
    /* 0: hostname mismatch, 1: powered off, 2: not ready (error), 3: gone */
    assert_int_equal(vmp_mock_set_hostname(m, "pool1", vms.v[0], "someone-else"), 0);
    assert_int_equal(vmp_mock_set_powerstate(m, "pool1", vms.v[1], "PoweredOff"), 0);
    vmp_mock_fail(m, VMP_MOCK_VM_READY, NULL, vms.v[2], -1, VMP_EIO, "ssh: connection refused");
    assert_true(vmp_mock_remove_vm(m, "pool1", vms.v[3]));
    /* past vm_checktime and the 60 s hostname grace */
    vmp_clock_advance(f->clock, 61);
    fx_pass(f, "pool1");
    bool member = false;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(
            vmp_store_is_member(f->st, "pool1", VMP_VM_COMPLETED, vms.v[i], &member, &err), 0);
        if (i < 3)
            assert_true(member);
    }
    char *ose = fx_field(f, vms.v[2], "open_socket_error");
    assert_non_null(ose);
    assert_non_null(strstr(ose, "connection refused"));
    free(ose);
    vmp_strlist_clear(&vms);
    fx_free(f);
}

static void test_hostname_grace(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(1));
    vmp_mock *m = fx_mock(f, NULL);
    /* a ready VM known from Redis only, ready 30 s ago, never checked */
    fx_put(f, "pool1", VMP_VM_READY, "vm-grace", T0 - 30);
    assert_int_equal(vmp_mock_add_vm(m, "pool1", "vm-grace"), 0);
    assert_int_equal(vmp_mock_set_hostname(m, "pool1", "vm-grace", "other"), 0);
    vmp_engine_pass_result r = fx_pass(f, "pool1");
    assert_int_equal(r.checked_ready, 1);
    /* ready for less than 60 s: the mismatch is not acted on yet */
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 1);
    vmp_clock_advance(f->clock, 61);
    fx_pass(f, "pool1");
    vmp_err err = {0};
    bool member = false;
    assert_int_equal(
        vmp_store_is_member(f->st, "pool1", VMP_VM_COMPLETED, "vm-grace", &member, &err), 0);
    assert_true(member);
    fx_free(f);
}

/* ---- running (T11, T13) ---------------------------------------------------------------- */

static void test_running_lifetime(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(1));
    vmp_mock *m = fx_mock(f, NULL);
    fx_pass(f, "pool1");
    char *vm = NULL;
    fx_checkout(f, "pool1", &vm);
    vmp_err err = {0};
    assert_int_equal(vmp_store_vm_lifetime_set(f->st, vm, 2, &err), 0);
    vmp_engine_pass_result r = fx_pass(f, "pool1");
    assert_int_equal(r.migrated, 1);
    assert_int_equal(r.checked_running, 0);
    vmp_clock_advance(f->clock, 3600 + 60);
    r = fx_pass(f, "pool1");
    assert_int_equal(r.checked_running, 1);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_RUNNING), 1);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_MIGRATING), 0);
    assert_true(vmp_mock_vm_tagged(m, "pool1", vm));
    char *tagged = fx_field(f, vm, "user_tagged");
    assert_string_equal(tagged, "true");
    free(tagged);
    /* two whole hours after the checkout */
    vmp_clock_advance(f->clock, 3600);
    fx_pass(f, "pool1");
    bool member = false;
    assert_int_equal(vmp_store_is_member(f->st, "pool1", VMP_VM_COMPLETED, vm, &member, &err), 0);
    assert_true(member);
    free(vm);
    fx_free(f);
}

static void test_running_missing(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(2));
    vmp_mock *m = fx_mock(f, NULL);
    fx_pass(f, "pool1");
    char *a = NULL, *b = NULL;
    fx_checkout(f, "pool1", &a);
    fx_checkout(f, "pool1", &b);
    /* a: gone from the inventory; b: no checkout time recorded */
    assert_true(vmp_mock_remove_vm(m, "pool1", a));
    redisReply *rr = redisCommand(f->rc, "HDEL %s__active__pool1 %s", f->prefix, b);
    freeReplyObject(rr);
    vmp_clock_advance(f->clock, 61);
    fx_pass(f, "pool1");
    vmp_err err = {0};
    bool member = false;
    assert_int_equal(vmp_store_is_member(f->st, "pool1", VMP_VM_COMPLETED, a, &member, &err), 0);
    assert_true(member);
    assert_int_equal(vmp_store_is_member(f->st, "pool1", VMP_VM_COMPLETED, b, &member, &err), 0);
    assert_true(member);
    free(a);
    free(b);
    fx_free(f);
}

/* ---- completed (T17, T18), discovered (T15, T16) ------------------------------------- */

static void test_destroy(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(1));
    vmp_mock *m = fx_mock(f, NULL);
    fx_pass(f, "pool1");
    char *vm = NULL;
    fx_checkout(f, "pool1", &vm);
    vmp_err err = {0};
    assert_int_equal(vmp_store_vm_return(f->st, vm, NULL, &err), 0);
    vmp_mock_fail(m, VMP_MOCK_DESTROY_VM, NULL, vm, 1, VMP_EPROVIDER, "busy");
    vmp_engine_pass_result r = fx_pass(f, "pool1");
    assert_int_equal(r.destroyed, 1);
    /* failed: still completed, retried next pass */
    assert_int_equal(fx_count(f, "pool1", VMP_VM_COMPLETED), 1);
    assert_true(vmp_mock_has_vm(m, "pool1", vm));
    fx_pass(f, "pool1");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_COMPLETED), 0);
    assert_false(vmp_mock_has_vm(m, "pool1", vm));
    char *d = fx_field(f, vm, "destroy");
    assert_non_null(d);
    free(d);
    char key[300];
    snprintf(key, sizeof key, "vm__%s", vm);
    assert_true(fx_ttl(f, key) > 0);
    assert_int_equal(rec_count(&f->rec, "gauge vmpooler_destroy.pool1"), 1);
    free(vm);
    fx_free(f);
}

static void test_completed_missing(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(0));
    fx_put(f, "pool1", VMP_VM_COMPLETED, "ghost", T0);
    fx_pass(f, "pool1");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_COMPLETED), 0);
    assert_false(fx_exists(f, "vm__ghost"));
    vmp_mock *m = fx_mock(f, NULL);
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_DESTROY_VM), 0);
    fx_free(f);
}

static void test_discovered(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(0));
    vmp_mock *m = fx_mock(f, NULL);
    assert_int_equal(vmp_mock_add_vm(m, "pool1", "stray"), 0);
    vmp_engine_pass_result r = fx_pass(f, "pool1");
    assert_int_equal(r.discovered, 1);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_COMPLETED), 1);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_DISCOVERED), 0);
    fx_pass(f, "pool1");
    assert_false(vmp_mock_has_vm(m, "pool1", "stray"));
    fx_free(f);
}

static void test_discovered_kept(void **state)
{
    NEED_REDIS();
    fx *f = fx_make(BASE_CONFIG "  keep_discovered_vms: true\n" POOL1(0));
    assert_int_equal(f->cfg->warnings.n, 0); /* a known key */
    assert_int_equal(fx_start(f), 0);
    vmp_mock *m = fx_mock(f, NULL);
    assert_int_equal(vmp_mock_add_vm(m, "pool1", "stray"), 0);
    fx_pass(f, "pool1");
    fx_pass(f, "pool1");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_DISCOVERED), 1);
    assert_true(vmp_mock_has_vm(m, "pool1", "stray"));
    fx_free(f);
    /* per pool */
    f = fx_new(BASE_CONFIG ":pools:\n"
                           "  - name: keep\n    template: t/k\n    size: 0\n    provider: mock\n"
                           "    keep_discovered_vms: true\n"
                           "  - name: toss\n    template: t/t\n    size: 0\n    provider: mock\n");
    assert_int_equal(f->cfg->warnings.n, 0);
    m = fx_mock(f, NULL);
    assert_int_equal(vmp_mock_add_vm(m, "keep", "stray-k"), 0);
    assert_int_equal(vmp_mock_add_vm(m, "toss", "stray-t"), 0);
    fx_pass(f, "keep");
    fx_pass(f, "toss");
    fx_pass(f, "toss");
    assert_int_equal(fx_count(f, "keep", VMP_VM_DISCOVERED), 1);
    assert_false(vmp_mock_has_vm(m, "toss", "stray-t"));
    fx_free(f);
}

static void test_inventory_failure(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(2));
    vmp_mock *m = fx_mock(f, NULL);
    vmp_mock_fail(m, VMP_MOCK_VMS_IN_POOL, NULL, NULL, 1, VMP_EIO, "inventory down");
    vmp_engine_pass_result r;
    vmp_err err = {0};
    assert_int_not_equal(vmp_engine_run_pass(f->e, "pool1", &r, &err), 0);
    assert_int_equal(vmp_engine_wait_idle(f->e, 5), 0);
    assert_int_equal(r.cloned, 0);
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_CREATE_VM), 0);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_PENDING), 0);
    fx_pass(f, "pool1");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 2);
    fx_free(f);
}

/* ---- runtime changes (§4.3.8-§4.3.12) --------------------------------------------------- */

static void test_template_change(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG "  create_template_delta_disks: true\n" POOL1(2));
    vmp_mock *m = fx_mock(f, NULL);
    fx_pass(f, "pool1");
    vmp_err err = {0};
    char *p = NULL;
    assert_int_equal(vmp_store_override_get(f->st, VMP_TEMPLATE_PREPARED, "pool1", &p, &err), 0);
    assert_string_equal(p, "templates/one");
    free(p);
    p = NULL;
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_CREATE_TEMPLATE_DELTA_DISKS), 1);
    char *old = fx_first(f, "pool1", VMP_VM_READY);

    assert_int_equal(
        vmp_store_override_set(f->st, VMP_OVERRIDE_TEMPLATE, "pool1", "templates/new", &err), 0);
    vmp_engine_wake(f->e, "pool1");
    vmp_clock_advance(f->clock, 6); /* overrides are read at most every check_loop_delay_min */
    fx_pass(f, "pool1");
    assert_int_equal(vmp_store_override_get(f->st, VMP_TEMPLATE_PREPARED, "pool1", &p, &err), 0);
    assert_string_equal(p, "templates/new");
    free(p);
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_CREATE_TEMPLATE_DELTA_DISKS), 2);
    bool member = false;
    assert_int_equal(vmp_store_is_member(f->st, "pool1", VMP_VM_COMPLETED, old, &member, &err), 0);
    assert_true(member);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 2);
    char *vm = fx_first(f, "pool1", VMP_VM_READY);
    vmp_vm_info info;
    memset(&info, 0, sizeof info);
    assert_int_equal(
        vmp_provider_get_vm(vmp_engine_provider(f->e, "mock"), "pool1", vm, &info, &err), 0);
    assert_string_equal(info.template_path, "templates/new");
    vmp_vm_info_clear(&info);
    free(vm);
    free(old);

    /* undo: back to the configured template, drained again */
    assert_int_equal(vmp_store_override_del(f->st, VMP_OVERRIDE_TEMPLATE, "pool1", NULL, &err), 0);
    assert_int_equal(vmp_store_pool_request_add(f->st, VMP_POOLREQ_UNDO_TEMPLATE, "pool1", &err),
                     0);
    vmp_clock_advance(f->clock, 6);
    fx_pass(f, "pool1");
    assert_int_equal(vmp_store_override_get(f->st, VMP_TEMPLATE_PREPARED, "pool1", &p, &err), 0);
    assert_string_equal(p, "templates/one");
    free(p);
    vm = fx_first(f, "pool1", VMP_VM_READY);
    memset(&info, 0, sizeof info);
    assert_int_equal(
        vmp_provider_get_vm(vmp_engine_provider(f->e, "mock"), "pool1", vm, &info, &err), 0);
    assert_string_equal(info.template_path, "templates/one");
    vmp_vm_info_clear(&info);
    free(vm);
    fx_free(f);
}

static void test_size_override_and_excess(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(2));
    fx_pass(f, "pool1");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 2);
    vmp_err err = {0};
    assert_int_equal(vmp_store_override_set(f->st, VMP_OVERRIDE_POOLSIZE, "pool1", "5", &err), 0);
    vmp_clock_advance(f->clock, 6);
    fx_pass(f, "pool1");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 5);
    assert_int_equal(vmp_store_override_set(f->st, VMP_OVERRIDE_POOLSIZE, "pool1", "1", &err), 0);
    vmp_clock_advance(f->clock, 6);
    fx_pass(f, "pool1");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 1);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_COMPLETED), 4);
    /* undo: back to the configured size */
    assert_int_equal(vmp_store_override_del(f->st, VMP_OVERRIDE_POOLSIZE, "pool1", NULL, &err), 0);
    assert_int_equal(vmp_store_pool_request_add(f->st, VMP_POOLREQ_UNDO_SIZE, "pool1", &err), 0);
    vmp_clock_advance(f->clock, 6);
    fx_pass(f, "pool1");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 2);
    bool has = true;
    assert_int_equal(vmp_store_pool_request_has(f->st, VMP_POOLREQ_UNDO_SIZE, "pool1", &has, &err),
                     0);
    assert_false(has);
    fx_free(f);
}

static void test_excess_with_pending(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(1));
    fx_put(f, "pool1", VMP_VM_READY, "extra-1", T0);
    fx_put(f, "pool1", VMP_VM_READY, "extra-2", T0);
    fx_put(f, "pool1", VMP_VM_PENDING, "extra-3", T0);
    vmp_mock *m = fx_mock(f, NULL);
    vmp_mock_add_vm(m, "pool1", "extra-1");
    vmp_mock_add_vm(m, "pool1", "extra-2");
    vmp_mock_add_vm(m, "pool1", "extra-3");
    /* the pending one never becomes ready */
    vmp_mock_set_vm_ready(m, "pool1", "extra-3", false);
    vmp_clock_advance(f->clock, 61); /* so the ready checks run and pass */
    fx_pass(f, "pool1");
    /* 2 ready > size 1: one ready and every pending VM go (T20) */
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 1);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_PENDING), 0);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_COMPLETED), 2);
    fx_free(f);
}

static void test_pool_reset_and_clone_target(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(2));
    fx_pass(f, "pool1");
    char *a = fx_first(f, "pool1", VMP_VM_READY);
    vmp_err err = {0};
    assert_int_equal(vmp_store_pool_request_add(f->st, VMP_POOLREQ_RESET, "pool1", &err), 0);
    vmp_clock_advance(f->clock, 6);
    fx_pass(f, "pool1");
    bool member = false;
    assert_int_equal(vmp_store_is_member(f->st, "pool1", VMP_VM_COMPLETED, a, &member, &err), 0);
    assert_true(member);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 2);
    bool has = true;
    assert_int_equal(vmp_store_pool_request_has(f->st, VMP_POOLREQ_RESET, "pool1", &has, &err), 0);
    assert_false(has);
    free(a);

    a = fx_first(f, "pool1", VMP_VM_READY);
    assert_int_equal(
        vmp_store_override_set(f->st, VMP_OVERRIDE_CLONE_TARGET, "pool1", "cluster2", &err), 0);
    vmp_clock_advance(f->clock, 6);
    fx_pass(f, "pool1");
    assert_int_equal(vmp_store_is_member(f->st, "pool1", VMP_VM_COMPLETED, a, &member, &err), 0);
    assert_true(member);
    /* the provider sees the new clone target */
    vmp_provider *p = vmp_engine_provider(f->e, "mock");
    const vmp_pool_cfg *pc = vmp_provider_pool_config(p, "pool1");
    assert_non_null(pc);
    assert_string_equal(pc->clone_target, "cluster2");
    free(a);
    /* unchanged override: no second drain */
    a = fx_first(f, "pool1", VMP_VM_READY);
    vmp_clock_advance(f->clock, 6);
    fx_pass(f, "pool1");
    assert_int_equal(vmp_store_is_member(f->st, "pool1", VMP_VM_READY, a, &member, &err), 0);
    assert_true(member);
    free(a);
    fx_free(f);
}

/* ---- migration (§4.8) ------------------------------------------------------------------- */

static void test_migration_provider(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(1));
    vmp_mock *m = fx_mock(f, NULL);
    fx_pass(f, "pool1");
    char *vm = NULL;
    fx_checkout(f, "pool1", &vm);
    fx_pass(f, "pool1");
    assert_int_equal(vmp_mock_calls_for(m, VMP_MOCK_MIGRATE_VM, vm), 1);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_MIGRATING), 0);
    free(vm);
    fx_free(f);
}

static void test_migration_limit(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG "  migration_limit: 1\n"
                               ":pools:\n"
                               "  - name: pool1\n"
                               "    template: templates/one\n"
                               "    size: 3\n"
                               "    provider: mock_nomig\n");
    vmp_mock *m = fx_mock(f, "mock_nomig");
    fx_pass(f, "pool1");
    char *a = NULL, *b = NULL, *c = NULL;
    fx_checkout(f, "pool1", &a);
    fx_checkout(f, "pool1", &b);
    fx_checkout(f, "pool1", &c);
    vmp_mock_set_least_used_host(m, "host9");
    vmp_mock_block(m, VMP_MOCK_MIGRATE_VM_TO_HOST);
    vmp_err err = {0};
    vmp_engine_pass_result r;
    assert_int_equal(vmp_engine_run_pass(f->e, "pool1", &r, &err), 0);
    /* one migration at a time: the other two wait in migrating */
    assert_int_equal(r.migrated, 1);
    assert_true(vmp_mock_wait_blocked(m, VMP_MOCK_MIGRATE_VM_TO_HOST, 1, 5));
    long long inflight = 0;
    assert_int_equal(vmp_store_migration_count(f->st, &inflight, &err), 0);
    assert_int_equal(inflight, 1);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_MIGRATING), 2);
    vmp_mock_unblock(m, VMP_MOCK_MIGRATE_VM_TO_HOST);
    assert_int_equal(vmp_engine_wait_idle(f->e, 5), 0);
    assert_int_equal(vmp_store_migration_count(f->st, &inflight, &err), 0);
    assert_int_equal(inflight, 0);
    fx_pass(f, "pool1");
    fx_pass(f, "pool1");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_MIGRATING), 0);
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_MIGRATE_VM_TO_HOST), 3);
    char *h = fx_field(f, a, "host");
    assert_string_equal(h, "host9");
    free(h);
    h = fx_field(f, a, "migration_time");
    assert_non_null(h);
    free(h);
    h = fx_field(f, a, "checkout_to_migration");
    assert_non_null(h);
    free(h);
    assert_int_equal(rec_count(&f->rec, "inc migrate_to.host9"), 3);
    assert_int_equal(rec_count(&f->rec, "timing migrate.pool1"), 3);
    free(a);
    free(b);
    free(c);
    fx_free(f);
}

/* ---- limits and exclusivity ---------------------------------------------------------------- */

static void test_task_limit_across_pools(void **state)
{
    NEED_REDIS();
    fx *f = fx_new("---\n:config:\n  task_limit: 3\n"
                   ":pools:\n"
                   "  - name: pa\n    template: t/a\n    size: 4\n    provider: mock\n"
                   "  - name: pb\n    template: t/b\n    size: 4\n    provider: mock\n");
    vmp_mock *m = fx_mock(f, NULL);
    vmp_mock_block(m, VMP_MOCK_CREATE_VM);
    vmp_err err = {0};
    vmp_engine_pass_result ra, rb;
    assert_int_equal(vmp_engine_run_pass(f->e, "pa", &ra, &err), 0);
    assert_int_equal(vmp_engine_run_pass(f->e, "pb", &rb, &err), 0);
    assert_int_equal(ra.cloned + rb.cloned, 3);
    assert_true(vmp_mock_wait_blocked(m, VMP_MOCK_CREATE_VM, 3, 5));
    char *v = fx_get(f, "tasks__clone");
    assert_string_equal(v, "3");
    free(v);
    vmp_engine_status s;
    vmp_engine_status_get(f->e, &s);
    assert_int_equal(s.clones, 3);
    vmp_mock_unblock(m, VMP_MOCK_CREATE_VM);
    /* the remaining clones follow as slots free up, never more than 3 */
    assert_int_equal(vmp_engine_wait_idle(f->e, 10), 0);
    assert_int_equal(fx_count(f, "pa", VMP_VM_READY) + fx_count(f, "pb", VMP_VM_READY), 8);
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_CREATE_VM), 8);
    v = fx_get(f, "tasks__clone");
    assert_string_equal(v, "0");
    free(v);
    fx_free(f);
}

static void test_vm_exclusivity(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(1));
    vmp_mock *m = fx_mock(f, NULL);
    vmp_mock_set_ready_default(m, false);
    fx_pass(f, "pool1");
    char *vm = fx_first(f, "pool1", VMP_VM_PENDING);
    unsigned before = vmp_mock_calls_for(m, VMP_MOCK_VM_READY, vm);
    vmp_mock_block(m, VMP_MOCK_VM_READY);
    vmp_err err = {0};
    vmp_engine_pass_result r;
    assert_int_equal(vmp_engine_run_pass(f->e, "pool1", &r, &err), 0);
    assert_int_equal(r.checked_pending, 1);
    assert_true(vmp_mock_wait_blocked(m, VMP_MOCK_VM_READY, 1, 5));
    /* the VM is busy: a second pass skips it */
    assert_int_equal(vmp_engine_run_pass(f->e, "pool1", &r, &err), 0);
    assert_int_equal(r.checked_pending, 0);
    vmp_mock_unblock(m, VMP_MOCK_VM_READY);
    assert_int_equal(vmp_engine_wait_idle(f->e, 5), 0);
    assert_int_equal(vmp_mock_calls_for(m, VMP_MOCK_VM_READY, vm), before + 1);
    assert_int_equal(vmp_mock_overlaps(m), 0);
    free(vm);
    fx_free(f);
}

/* ---- leases ------------------------------------------------------------------------------ */

static void test_leases_two_engines(void **state)
{
    NEED_REDIS();
    fx *a = fx_new(BASE_CONFIG POOL1(1));
    fx *b = fx_make(BASE_CONFIG POOL1(1));
    /* b shares a's keys */
    strcpy(b->prefix, a->prefix);
    fx_reopen_store(b);
    b->owner = "engine-B";
    assert_int_equal(fx_start(b), 0);
    assert_true(vmp_engine_pool_leased(a->e, "pool1"));
    assert_false(vmp_engine_pool_leased(b->e, "pool1"));
    vmp_err err = {0};
    vmp_engine_pass_result r;
    assert_int_equal(vmp_engine_run_pass(b->e, "pool1", &r, &err), VMP_EAGAIN);
    fx_pass(a, "pool1");
    char *owner = NULL;
    assert_int_equal(vmp_store_lease_owner(a->st, "pool1", &owner, &err), 0);
    assert_string_equal(owner, "engine-A");
    free(owner);
    /* a stops: its lease is released and b takes over */
    assert_int_equal(vmp_engine_stop(a->e, 5), 0);
    fx_pass(b, "pool1");
    assert_true(vmp_engine_pool_leased(b->e, "pool1"));
    assert_int_equal(fx_count(b, "pool1", VMP_VM_READY), 1);
    fx_free(a);
    fx_free(b);
}

/* ---- several managers: heartbeats and in-flight counts --------------------------------- */

/* This host's node identity and this process's start marker. */
static void node_of(char *node, size_t nlen, char *start, size_t slen)
{
    vmp_engine *t = calloc(1, sizeof *t);
    assert_non_null(t);
    eng_node_init(t);
    snprintf(node, nlen, "%s", t->node);
    snprintf(start, slen, "%s", t->start_mark);
    free(t);
}

/* A pid that belonged to a process of this host that has exited. */
static pid_t gone_pid(void)
{
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0)
        _exit(0);
    assert_int_equal(waitpid(p, NULL, 0), p);
    return p;
}

static void fake_manager(fx *f, const char *owner, const char *node, long long pid,
                         const char *start, long long clones, long long od, long long ttl_ms)
{
    vmp_store_manager m = {.owner = owner,
                           .node = node,
                           .pid = pid,
                           .start = start,
                           .clones = clones,
                           .ondemand_clones = od};
    vmp_err err = {0};
    assert_int_equal(vmp_store_manager_beat(f->st, &m, ttl_ms, 0, NULL, NULL, NULL, &err), 0);
}

static void assert_key(fx *f, const char *key, const char *want)
{
    char *v = fx_get(f, key);
    if (!v || strcmp(v, want) != 0)
        fprintf(stderr, "%s: %s, want %s\n", key, v ? v : "(nil)", want);
    assert_non_null(v);
    assert_string_equal(v, want);
    free(v);
}

static void test_peer_dead(void **state)
{
    (void)state;
    char node[256], start[32];
    node_of(node, sizeof node, start, sizeof start);
    if (!node[0])
        skip(); /* no /proc: only the TTL applies */
    vmp_engine *e = calloc(1, sizeof *e);
    assert_non_null(e);
    eng_node_init(e);
    char pid[32];
    /* alive: this very process */
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    assert_false(eng_peer_dead(e, node, pid, start));
    /* pid reused: same pid, another start time */
    char other[40];
    snprintf(other, sizeof other, "%s9", start);
    assert_true(eng_peer_dead(e, node, pid, other));
    /* exited */
    snprintf(pid, sizeof pid, "%d", (int)gone_pid());
    assert_true(eng_peer_dead(e, node, pid, start));
    /* another node: never judged from here, whatever its pid */
    assert_false(eng_peer_dead(e, "elsewhere/boot/pid:[1]", pid, start));
    /* killed but not yet waited for (zombie) */
    pid_t z = fork();
    assert_true(z >= 0);
    if (z == 0)
        _exit(0);
    char zs[32];
    snprintf(zs, sizeof zs, "%d", (int)z);
    char zstart[32] = "";
    for (int i = 0; i < 200; i++) {
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)z);
        FILE *fp = fopen(path, "r");
        size_t n = fp ? fread(buf, 1, sizeof buf - 1, fp) : 0;
        if (fp)
            fclose(fp);
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        if (p && p[1] == ' ' && p[2] == 'Z')
            break;
        usleep(5000);
    }
    assert_true(eng_peer_dead(e, node, zs, zstart));
    waitpid(z, NULL, 0);
    free(e);
}

static void test_dead_manager_same_host(void **state)
{
    NEED_REDIS();
    char node[256], start[32];
    node_of(node, sizeof node, start, sizeof start);
    if (!node[0])
        skip();
    fx *f = fx_make(BASE_CONFIG "  migration_limit: 2\n" POOL1(2));
    vmp_err err = {0};
    /* a manager of this host killed in the middle of 6 clones, 2 on-demand
     * clones and a migration, its lease on pool1 still live */
    fake_manager(f, "dead-A", node, gone_pid(), "1", 6, 2, 30000);
    assert_key(f, "tasks__clone", "6");
    assert_key(f, "tasks__ondemandclone", "2");
    bool held = false, taken = false;
    assert_int_equal(vmp_store_lease_acquire(f->st, "pool1", "dead-A", 30000, &held, &err), 0);
    assert_true(held);
    assert_int_equal(vmp_store_migration_claim(f->st, "vm-x", "dead-A", 2, &taken, &err), 0);
    assert_true(taken);

    assert_int_equal(fx_start(f), 0);
    /* taken over at once, not after the lease's 30 s */
    assert_true(vmp_engine_pool_leased(f->e, "pool1"));
    assert_false(fx_exists(f, "manager__dead-A"));
    assert_key(f, "tasks__clone", "0");
    assert_key(f, "tasks__ondemandclone", "0");
    long long n = -1;
    assert_int_equal(vmp_store_migration_count(f->st, &n, &err), 0);
    assert_int_equal(n, 0);

    /* the new manager's own clones are what counts */
    vmp_mock *m = fx_mock(f, NULL);
    vmp_mock_block(m, VMP_MOCK_CREATE_VM);
    vmp_engine_pass_result r;
    assert_int_equal(vmp_engine_run_pass(f->e, "pool1", &r, &err), 0);
    assert_int_equal(r.cloned, 2);
    assert_true(vmp_mock_wait_blocked(m, VMP_MOCK_CREATE_VM, 2, 5));
    assert_key(f, "tasks__clone", "2");
    vmp_mock_unblock(m, VMP_MOCK_CREATE_VM);
    assert_int_equal(vmp_engine_wait_idle(f->e, 10), 0);
    assert_key(f, "tasks__clone", "0");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 2);
    fx_free(f);
}

static void test_live_and_reused_pid_managers(void **state)
{
    NEED_REDIS();
    char node[256], start[32];
    node_of(node, sizeof node, start, sizeof start);
    if (!node[0])
        skip();
    fx *f = fx_make(BASE_CONFIG POOL1(2));
    vmp_err err = {0};
    char bad[40];
    snprintf(bad, sizeof bad, "%s7", start);
    /* alive: this process (as a second engine in it would be) */
    fake_manager(f, "alive-B", node, getpid(), start, 4, 0, 30000);
    /* its pid now belongs to another process (this one): dead */
    fake_manager(f, "reused-C", node, getpid(), bad, 3, 1, 30000);
    bool held = false;
    assert_int_equal(vmp_store_lease_acquire(f->st, "pool1", "alive-B", 30000, &held, &err), 0);
    assert_int_equal(fx_start(f), 0);
    assert_false(vmp_engine_pool_leased(f->e, "pool1"));
    assert_true(fx_exists(f, "manager__alive-B"));
    assert_false(fx_exists(f, "manager__reused-C"));
    assert_key(f, "tasks__clone", "4");
    assert_key(f, "tasks__ondemandclone", "0");
    fx_free(f);
}

static void test_remote_manager_expires(void **state)
{
    NEED_REDIS();
    fx *f = fx_make(BASE_CONFIG POOL1(2));
    vmp_err err = {0};
    /* a manager on another host: its pid means nothing here, only its
     * heartbeat's TTL tells it died */
    fake_manager(f, "remote-R", "elsewhere/boot/pid:[1]", gone_pid(), "1", 5, 0, 300);
    bool held = false;
    assert_int_equal(vmp_store_lease_acquire(f->st, "pool1", "remote-R", 300, &held, &err), 0);
    assert_int_equal(fx_start(f), 0);
    assert_false(vmp_engine_pool_leased(f->e, "pool1"));
    assert_key(f, "tasks__clone", "5");
    usleep(400000);
    vmp_mock *m = fx_mock(f, NULL);
    vmp_mock_block(m, VMP_MOCK_CREATE_VM);
    vmp_engine_pass_result r;
    assert_int_equal(vmp_engine_run_pass(f->e, "pool1", &r, &err), 0);
    assert_true(vmp_engine_pool_leased(f->e, "pool1"));
    assert_true(vmp_mock_wait_blocked(m, VMP_MOCK_CREATE_VM, 2, 5));
    /* the remote's 5 are gone with its heartbeat */
    assert_key(f, "tasks__clone", "2");
    vmp_mock_unblock(m, VMP_MOCK_CREATE_VM);
    assert_int_equal(vmp_engine_wait_idle(f->e, 10), 0);
    assert_key(f, "tasks__clone", "0");
    fx_free(f);
}

static void test_two_engines_counts(void **state)
{
    NEED_REDIS();
    fx *a = fx_new(BASE_CONFIG POOL1(2));
    fx *b = fx_make(BASE_CONFIG ":pools:\n"
                                "  - name: pool2\n"
                                "    template: templates/two\n"
                                "    size: 3\n"
                                "    provider: mock\n");
    strcpy(b->prefix, a->prefix);
    fx_reopen_store(b);
    b->owner = "engine-B";
    assert_int_equal(fx_start(b), 0);
    vmp_mock *ma = fx_mock(a, NULL), *mb = fx_mock(b, NULL);
    vmp_mock_block(ma, VMP_MOCK_CREATE_VM);
    vmp_mock_block(mb, VMP_MOCK_CREATE_VM);
    vmp_err err = {0};
    vmp_engine_pass_result r;
    assert_int_equal(vmp_engine_run_pass(a->e, "pool1", &r, &err), 0);
    assert_int_equal(vmp_engine_run_pass(b->e, "pool2", &r, &err), 0);
    assert_true(vmp_mock_wait_blocked(ma, VMP_MOCK_CREATE_VM, 2, 5));
    assert_true(vmp_mock_wait_blocked(mb, VMP_MOCK_CREATE_VM, 3, 5));
    assert_key(a, "tasks__clone", "5");
    /* a stops: its clones finish and stop counting; b's still do */
    vmp_mock_unblock(ma, VMP_MOCK_CREATE_VM);
    assert_int_equal(vmp_engine_stop(a->e, 5), 0);
    assert_key(a, "tasks__clone", "3");
    vmp_mock_unblock(mb, VMP_MOCK_CREATE_VM);
    assert_int_equal(vmp_engine_wait_idle(b->e, 10), 0);
    assert_key(b, "tasks__clone", "0");
    fx_free(a);
    fx_free(b);
}

/* With one clone slot, one pass fills the pool (each clone's end starts the
 * next); each VM is recorded (clone time, ready time, in one round trip when
 * found ready at once) whether it was found ready at once or not. */
static void test_clone_one_slot(void **state)
{
    NEED_REDIS();
    fx *f = fx_new("---\n:config:\n  task_limit: 1\n  vm_checktime: 1\n" POOL1(4)
                   "  - name: pool2\n    template: t/b\n    size: 3\n    provider: mock\n");
    vmp_mock *m = fx_mock(f, NULL);
    vmp_mock_block(m, VMP_MOCK_CREATE_VM);
    vmp_err err = {0};
    vmp_engine_pass_result r;
    assert_int_equal(vmp_engine_run_pass(f->e, "pool1", &r, &err), 0);
    assert_int_equal(r.cloned, 1);
    assert_true(vmp_mock_wait_blocked(m, VMP_MOCK_CREATE_VM, 1, 5));
    /* recorded pending before the provider was asked */
    assert_int_equal(fx_count(f, "pool1", VMP_VM_PENDING), 1);
    vmp_mock_unblock(m, VMP_MOCK_CREATE_VM);
    assert_int_equal(vmp_engine_wait_idle(f->e, 10), 0);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 4);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_PENDING), 0);
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_CREATE_VM), 4);
    assert_int_equal(vmp_mock_max_in_flight(m), 1);
    vmp_strlist l = VMP_STRLIST_INIT;
    assert_int_equal(vmp_store_set_members(f->st, "pool1", VMP_VM_READY, &l, &err), 0);
    for (size_t i = 0; i < l.n; i++) {
        char *v = fx_field(f, l.v[i], "clone_time");
        assert_non_null(v);
        free(v);
        v = fx_field(f, l.v[i], "ready");
        assert_non_null(v);
        free(v);
    }
    vmp_strlist_clear(&l);
    assert_int_equal(rec_count(&f->rec, "timing time_to_ready_state.pool1"), 4);
    assert_int_equal(rec_count(&f->rec, "timing clone.pool1"), 4);
    assert_key(f, "tasks__clone", "0");

    /* not ready at once: they stay pending, their clone recorded */
    vmp_mock_set_ready_default(m, false);
    fx_pass(f, "pool2");
    assert_int_equal(fx_count(f, "pool2", VMP_VM_PENDING), 3);
    assert_int_equal(vmp_store_set_members(f->st, "pool2", VMP_VM_PENDING, &l, &err), 0);
    for (size_t i = 0; i < l.n; i++) {
        char *v = fx_field(f, l.v[i], "clone_time");
        assert_non_null(v);
        free(v);
        assert_int_equal(vmp_mock_set_vm_ready(m, "pool2", l.v[i], true), 0);
    }
    vmp_strlist_clear(&l);
    fx_pass(f, "pool2");
    assert_int_equal(fx_count(f, "pool2", VMP_VM_READY), 3);
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_CREATE_VM), 7);
    fx_free(f);
}

/* ---- disk and snapshot queues (§4.6) -------------------------------------------------------- */

static void test_task_queues(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(1));
    vmp_mock *m = fx_mock(f, NULL);
    fx_pass(f, "pool1");
    char *vm = NULL;
    fx_checkout(f, "pool1", &vm);
    vmp_err err = {0};
    assert_int_equal(vmp_store_task_push(f->st, VMP_TASK_DISK, vm, "8", &err), 0);
    assert_int_equal(vmp_store_task_push(f->st, VMP_TASK_DISK, vm, "-3", &err), 0);
    assert_int_equal(vmp_store_task_push(f->st, VMP_TASK_DISK, "nobody", "8", &err), 0);
    assert_int_equal(vmp_store_task_push(f->st, VMP_TASK_SNAPSHOT, vm, "snap1", &err), 0);
    long long started = 0;
    assert_int_equal(vmp_engine_run_queues(f->e, 0, &started, &err), 0);
    assert_int_equal(vmp_engine_wait_idle(f->e, 5), 0);
    assert_int_equal(started, 3);
    assert_int_equal(vmp_mock_vm_disks(m, "pool1", vm), 1);
    char *d = fx_field(f, vm, "disk");
    assert_string_equal(d, "+8gb");
    free(d);
    char *s = fx_field(f, vm, "snapshot:snap1");
    assert_non_null(s);
    free(s);
    assert_int_equal(vmp_store_task_push(f->st, VMP_TASK_SNAPSHOT_REVERT, vm, "snap1", &err), 0);
    assert_int_equal(vmp_store_task_push(f->st, VMP_TASK_SNAPSHOT_REVERT, vm, "nope", &err), 0);
    assert_int_equal(vmp_engine_run_queues(f->e, 0, &started, &err), 0);
    assert_int_equal(vmp_engine_wait_idle(f->e, 5), 0);
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_REVERT_SNAPSHOT), 2);
    /* queues are empty now */
    char *qv = NULL, *qa = NULL;
    assert_int_equal(vmp_store_task_pop(f->st, VMP_TASK_DISK, &qv, &qa, &err), 0);
    assert_null(qv);
    free(vm);
    fx_free(f);
}

/* ---- on-demand (§4.10) ---------------------------------------------------------------------- */

static void test_ondemand(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(0));
    vmp_err err = {0};
    assert_int_equal(
        vmp_store_od_request_create(f->st, "req-1", "pool1:pool1:2", "tok", "alice", T0, &err), 0);
    assert_int_equal(vmp_engine_run_ondemand(f->e, &err), 0);
    assert_int_equal(vmp_engine_wait_idle(f->e, 5), 0);
    long long n = 0;
    assert_int_equal(vmp_store_od_vms_count(f->st, "req-1", "pool1", "pool1", &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_RUNNING), 2);
    assert_int_equal(vmp_engine_run_ondemand(f->e, &err), 0);
    vmp_strlist kv = VMP_STRLIST_INIT;
    assert_int_equal(vmp_store_od_request_get(f->st, "req-1", &kv, &err), 0);
    assert_string_equal(vmp_store_kv_get(&kv, "status"), "ready");
    vmp_strlist_clear(&kv);
    char *v = fx_get(f, "tasks__ondemandclone");
    assert_string_equal(v, "0");
    free(v);
    fx_free(f);
}

static void test_ondemand_retry_and_failure(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(0));
    vmp_mock *m = fx_mock(f, NULL);
    vmp_err err = {0};
    /* a transient failure is retried */
    vmp_mock_fail(m, VMP_MOCK_CREATE_VM, NULL, NULL, 1, VMP_EPROVIDER, "network hiccup");
    assert_int_equal(
        vmp_store_od_request_create(f->st, "req-2", "pool1:pool1:1", NULL, NULL, T0, &err), 0);
    assert_int_equal(vmp_engine_run_ondemand(f->e, &err), 0);
    assert_int_equal(vmp_engine_wait_idle(f->e, 5), 0);
    vmp_strlist kv = VMP_STRLIST_INIT;
    assert_int_equal(vmp_store_od_request_get(f->st, "req-2", &kv, &err), 0);
    assert_string_equal(vmp_store_kv_get(&kv, "retry_count"), "1");
    assert_null(vmp_store_kv_get(&kv, "status"));
    vmp_strlist_clear(&kv);
    assert_int_equal(vmp_engine_run_ondemand(f->e, &err), 0);
    assert_int_equal(vmp_engine_wait_idle(f->e, 5), 0);
    assert_int_equal(vmp_engine_run_ondemand(f->e, &err), 0);
    assert_int_equal(vmp_store_od_request_get(f->st, "req-2", &kv, &err), 0);
    assert_string_equal(vmp_store_kv_get(&kv, "status"), "ready");
    vmp_strlist_clear(&kv);

    /* a permanent failure fails the request */
    vmp_mock_fail(m, VMP_MOCK_CREATE_VM, NULL, NULL, 1, VMP_EPROVIDER,
                  "template templates/one not found");
    assert_int_equal(
        vmp_store_od_request_create(f->st, "req-3", "pool1:pool1:1", NULL, NULL, T0, &err), 0);
    assert_int_equal(vmp_engine_run_ondemand(f->e, &err), 0);
    assert_int_equal(vmp_engine_wait_idle(f->e, 5), 0);
    assert_int_equal(vmp_store_od_request_get(f->st, "req-3", &kv, &err), 0);
    assert_string_equal(vmp_store_kv_get(&kv, "status"), "failed");
    assert_non_null(strstr(vmp_store_kv_get(&kv, "failure_reason"), "not found"));
    vmp_strlist_clear(&kv);
    assert_int_equal(rec_count(&f->rec, "inc vmpooler_errors.permanently_failed.pool1"), 1);
    fx_free(f);
}

static void test_ondemand_expiry(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(0));
    vmp_mock *m = fx_mock(f, NULL);
    vmp_mock_set_ready_default(m, false);
    vmp_err err = {0};
    assert_int_equal(
        vmp_store_od_request_create(f->st, "req-4", "pool1:pool1:1", NULL, NULL, T0, &err), 0);
    assert_int_equal(vmp_engine_run_ondemand(f->e, &err), 0);
    assert_int_equal(vmp_engine_wait_idle(f->e, 5), 0);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_PENDING), 1);
    vmp_clock_advance(f->clock, 6 * 60); /* ondemand_request_ttl: 5 minutes */
    assert_int_equal(vmp_engine_run_ondemand(f->e, &err), 0);
    vmp_strlist kv = VMP_STRLIST_INIT;
    assert_int_equal(vmp_store_od_request_get(f->st, "req-4", &kv, &err), 0);
    assert_string_equal(vmp_store_kv_get(&kv, "status"), "failed");
    vmp_strlist_clear(&kv);
    /* its VM, once ready, goes to completed (T3'') */
    vmp_mock_set_ready_default(m, true);
    char *vm = fx_first(f, "pool1", VMP_VM_PENDING);
    vmp_mock_set_vm_ready(m, "pool1", vm, true);
    fx_pass(f, "pool1");
    bool member = false;
    assert_int_equal(vmp_store_is_member(f->st, "pool1", VMP_VM_RUNNING, vm, &member, &err), 0);
    assert_false(member);
    free(vm);
    fx_free(f);
}

/* ---- hooks ---------------------------------------------------------------------------------- */

typedef struct hook_state {
    int events[8];
    int size_calls;
    long long size;
    bool fail_size;
    int names;
} hook_state;

static int h_pool_size(void *ud, const char *pool, const vmp_engine_pool_stats *s, double now,
                       long long *size, vmp_err *err)
{
    hook_state *h = ud;
    h->size_calls++;
    if (h->fail_size)
        return vmp_err_set(err, VMP_EINVAL, "policy broken");
    *size = h->size;
    return 0;
}

static int h_vm_name(void *ud, const char *pool, char *name, size_t len, vmp_err *err)
{
    hook_state *h = ud;
    snprintf(name, len, "%s-custom-%d", pool, ++h->names);
    return 0;
}

static int h_lifetime(void *ud, const char *pool, const char *vm, long long in, const char *user,
                      long long *hours, vmp_err *err)
{
    *hours = 1;
    return 0;
}

static void h_event(void *ud, const vmp_engine_event *ev)
{
    hook_state *h = ud;
    h->events[ev->kind]++;
}

static void test_hooks(void **state)
{
    NEED_REDIS();
    hook_state h = {.size = 3};
    fx *f = fx_make(BASE_CONFIG POOL1(1));
    f->hooks = (vmp_engine_hooks){.ud = &h,
                                  .pool_size = h_pool_size,
                                  .vm_name = h_vm_name,
                                  .lifetime = h_lifetime,
                                  .on_event = h_event};
    f->use_hooks = true;
    assert_int_equal(fx_start(f), 0);
    fx_pass(f, "pool1");
    assert_true(h.size_calls >= 1);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 3);
    char *vm = fx_first(f, "pool1", VMP_VM_READY);
    assert_int_equal(strncmp(vm, "poolvm-pool1-custom-", 20), 0);
    free(vm);
    assert_int_equal(h.events[VMP_ENGINE_EV_CLONE_DONE], 3);
    assert_int_equal(h.events[VMP_ENGINE_EV_READY], 3);
    fx_checkout(f, "pool1", &vm);
    fx_pass(f, "pool1");
    assert_int_equal(h.events[VMP_ENGINE_EV_CHECKOUT], 1);
    char *lf = fx_field(f, vm, "lifetime");
    assert_string_equal(lf, "1");
    free(lf);
    vmp_err err = {0};
    assert_int_equal(vmp_store_vm_return(f->st, vm, NULL, &err), 0);
    fx_pass(f, "pool1");
    assert_int_equal(h.events[VMP_ENGINE_EV_DESTROY], 1);
    free(vm);
    /* a failing hook: the configured size (1) is used */
    h.fail_size = true;
    vmp_clock_advance(f->clock, 6);
    fx_pass(f, "pool1");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 1);
    fx_free(f);
}

/* ---- reload -----------------------------------------------------------------------------------
 */

static int g_retired;
static void on_retired(const vmp_config *cfg, void *ud)
{
    g_retired++;
    vmp_config_free((vmp_config *)cfg);
}

static void test_reload(void **state)
{
    NEED_REDIS();
    fx *f = fx_make(BASE_CONFIG POOL1(1));
    vmp_err err = {0};
    vmp_engine_opts o = {
        .config = f->cfg,
        .store = &f->so,
        .clock = f->clock,
        .metrics = f->metrics,
        .manual = true,
        .workers = 2,
        .owner = "engine-R",
        .config_retired = on_retired,
    };
    f->cfg = NULL; /* handed to the engine: retired through on_retired */
    g_retired = 0;
    assert_int_equal(vmp_engine_new(&o, &f->e, &err), 0);
    assert_int_equal(vmp_engine_start(f->e, &err), 0);
    fx_pass(f, "pool1");
    vmp_provider *before = vmp_engine_provider(f->e, "mock");
    vmp_mock *m = vmp_provider_self(before);
    vmp_config *c2 =
        load_cfg(BASE_CONFIG ":pools:\n"
                             "  - name: pool1\n    template: templates/one\n    size: 2\n"
                             "    provider: mock\n"
                             "  - name: pool2\n    template: templates/two\n    size: 1\n"
                             "    provider: mock\n");
    assert_int_equal(vmp_engine_reload(f->e, c2, &err), 0);
    /* the kept instance was opened with the first configuration: that one
     * stays alive as long as the instance */
    assert_int_equal(g_retired, 0);
    /* the unchanged provider instance is kept and sees the new pool */
    assert_ptr_equal(vmp_engine_provider(f->e, "mock"), before);
    assert_non_null(vmp_provider_pool_config(before, "pool2"));
    fx_pass(f, "pool1");
    fx_pass(f, "pool2");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 2);
    assert_int_equal(fx_count(f, "pool2", VMP_VM_READY), 1);
    assert_int_equal(vmp_mock_vm_count(m, "pool2"), 1);
    /* a removed pool is no longer managed */
    vmp_config *c3 =
        load_cfg(BASE_CONFIG ":pools:\n"
                             "  - name: pool2\n    template: templates/two\n    size: 1\n"
                             "    provider: mock\n");
    assert_int_equal(vmp_engine_reload(f->e, c3, &err), 0);
    /* the second configuration pins nothing: handed back at once */
    assert_int_equal(g_retired, 1);
    vmp_engine_pass_result r;
    assert_int_equal(vmp_engine_run_pass(f->e, "pool1", &r, &err), VMP_ENOENT);
    vmp_strlist pools = VMP_STRLIST_INIT;
    assert_int_equal(vmp_store_pools_list(f->st, &pools, &err), 0);
    assert_int_equal(pools.n, 1);
    vmp_strlist_clear(&pools);
    vmp_engine_free(f->e);
    f->e = NULL;
    /* every configuration but the last given is handed back */
    assert_int_equal(g_retired, 2);
    vmp_config_free(c3);
    fx_free(f);
}

/* ---- graceful stop --------------------------------------------------------------------------- */

typedef struct unblocker {
    vmp_mock *m;
    double after;
} unblocker;

static void *unblock_later(void *arg)
{
    unblocker *u = arg;
    struct timespec ts = {0, (long)(u->after * 1e9)};
    nanosleep(&ts, NULL);
    vmp_mock_unblock(u->m, VMP_MOCK_CREATE_VM);
    return NULL;
}

static void test_graceful_stop(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(2));
    vmp_mock *m = fx_mock(f, NULL);
    vmp_mock_block(m, VMP_MOCK_CREATE_VM);
    vmp_err err = {0};
    vmp_engine_pass_result r;
    assert_int_equal(vmp_engine_run_pass(f->e, "pool1", &r, &err), 0);
    assert_true(vmp_mock_wait_blocked(m, VMP_MOCK_CREATE_VM, 2, 5));
    /* both clones are recorded pending before the provider finished */
    assert_int_equal(fx_count(f, "pool1", VMP_VM_PENDING), 2);
    unblocker u = {m, 0.3};
    pthread_t th;
    pthread_create(&th, NULL, unblock_later, &u);
    assert_int_equal(vmp_engine_stop(f->e, 5), 0);
    pthread_join(th, NULL);
    /* the clones finished, nothing new started (no immediate check ran) */
    assert_int_equal(fx_count(f, "pool1", VMP_VM_PENDING), 2);
    char *owner = NULL;
    assert_int_equal(vmp_store_lease_owner(f->st, "pool1", &owner, &err), 0);
    assert_null(owner);
    fx_free(f);
}

/* ---- the scheduler thread -----------------------------------------------------------------------
 */

static void test_scheduler_fills(void **state)
{
    NEED_REDIS();
    fx *f = fx_make(BASE_CONFIG ":pools:\n"
                                "  - name: pool1\n    template: templates/one\n    size: 3\n"
                                "    provider: mock\n"
                                "  - name: pool2\n    template: templates/two\n    size: 2\n"
                                "    provider: mock\n");
    vmp_clock_free(f->clock);
    f->clock = NULL; /* system clock */
    vmp_err err = {0};
    vmp_engine_opts o = {
        .config = f->cfg, .store = &f->so, .metrics = f->metrics, .owner = "engine-S"};
    assert_int_equal(vmp_engine_new(&o, &f->e, &err), 0);
    assert_int_equal(vmp_engine_start(f->e, &err), 0);
    int waited = 0;
    while ((fx_count(f, "pool1", VMP_VM_READY) < 3 || fx_count(f, "pool2", VMP_VM_READY) < 2) &&
           waited < 100)
    {
        struct timespec ts = {0, 50000000L};
        nanosleep(&ts, NULL);
        waited++;
    }
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 3);
    assert_int_equal(fx_count(f, "pool2", VMP_VM_READY), 2);
    /* a checkout published as an event is evaluated at once */
    char *vm = NULL;
    fx_checkout(f, "pool1", &vm);
    assert_int_equal(vmp_store_publish(f->st, "checkout", "pool1", &err), 0);
    waited = 0;
    while ((fx_count(f, "pool1", VMP_VM_MIGRATING) > 0 || fx_count(f, "pool1", VMP_VM_READY) < 3) &&
           waited < 100)
    {
        struct timespec ts = {0, 50000000L};
        nanosleep(&ts, NULL);
        waited++;
    }
    assert_int_equal(fx_count(f, "pool1", VMP_VM_MIGRATING), 0);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY), 3);
    free(vm);
    /* a size change announced as a config event takes effect at once, not
     * at the pool's next (decayed) interval */
    assert_int_equal(vmp_store_override_set(f->st, VMP_OVERRIDE_POOLSIZE, "pool2", "4", &err), 0);
    assert_int_equal(vmp_store_publish(f->st, "config", "pool2", &err), 0);
    waited = 0;
    while (fx_count(f, "pool2", VMP_VM_READY) < 4 && waited < 30) {
        struct timespec ts = {0, 50000000L};
        nanosleep(&ts, NULL);
        waited++;
    }
    assert_int_equal(fx_count(f, "pool2", VMP_VM_READY), 4);
    assert_int_equal(vmp_engine_stop(f->e, 5), 0);
    fx_free(f);
}

/* ---- more: adaptive delay, choose_host, purge, on-demand limit, provider reopen, redis down -- */

static void test_adaptive_delay(void **state)
{
    NEED_REDIS();
    fx *f =
        fx_new(BASE_CONFIG ":pools:\n"
                           "  - name: pool1\n    template: t/1\n    size: 1\n    provider: mock\n"
                           "  - name: pool2\n    template: t/2\n    size: 1\n    provider: mock\n"
                           "    check_loop_delay_min: 2\n    check_loop_delay_max: 8\n"
                           "    check_loop_delay_decay: 3\n");
    eng_pool *p1 = eng_pool_find(f->e, "pool1"), *p2 = eng_pool_find(f->e, "pool2");
    static const double want1[] = {5, 10, 20, 40, 60, 60};
    static const double want2[] = {2, 6, 8, 8};
    for (size_t i = 0; i < VMP_ARRAY_LEN(want1); i++) {
        fx_pass(f, "pool1");
        assert_true(p1->delay == want1[i]);
        assert_true(p1->next_due == vmp_clock_now(f->clock) + want1[i]);
    }
    for (size_t i = 0; i < VMP_ARRAY_LEN(want2); i++) {
        fx_pass(f, "pool2");
        assert_true(p2->delay == want2[i]);
    }
    /* activity (a discovered VM) brings the delay back to the minimum */
    assert_int_equal(vmp_mock_add_vm(fx_mock(f, NULL), "pool1", "stray"), 0);
    fx_pass(f, "pool1");
    assert_true(p1->delay == 5);
    fx_free(f);
}

static int h_choose(void *ud, const char *pool, const char *vm, const char *current,
                    const char *proposed, char *host, size_t len, vmp_err *err)
{
    int *calls = ud;
    (*calls)++;
    snprintf(host, len, "policy-host");
    return 0;
}

static void test_choose_host_hook(void **state)
{
    NEED_REDIS();
    int calls = 0;
    fx *f = fx_make(BASE_CONFIG "  migration_limit: 2\n"
                                ":pools:\n"
                                "  - name: pool1\n    template: t/1\n    size: 1\n"
                                "    provider: mock_nomig\n");
    f->hooks = (vmp_engine_hooks){.ud = &calls, .choose_host = h_choose};
    f->use_hooks = true;
    assert_int_equal(fx_start(f), 0);
    vmp_mock *m = fx_mock(f, "mock_nomig");
    fx_pass(f, "pool1");
    char *vm = NULL;
    fx_checkout(f, "pool1", &vm);
    fx_pass(f, "pool1");
    assert_int_equal(calls, 1);
    assert_int_equal(vmp_mock_calls_for(m, VMP_MOCK_MIGRATE_VM_TO_HOST, vm), 1);
    char *h = fx_field(f, vm, "host");
    assert_string_equal(h, "policy-host");
    free(h);
    free(vm);
    fx_free(f);
}

static void test_purge_at_start(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG "  purge_unconfigured_resources: true\n" POOL1(0));
    assert_int_equal(vmp_engine_wait_idle(f->e, 5), 0);
    assert_int_equal(vmp_mock_calls(fx_mock(f, NULL), VMP_MOCK_PURGE_UNCONFIGURED_RESOURCES), 1);
    fx_free(f);
    /* off by default */
    f = fx_new(BASE_CONFIG POOL1(0));
    assert_int_equal(vmp_engine_wait_idle(f->e, 5), 0);
    assert_int_equal(vmp_mock_calls(fx_mock(f, NULL), VMP_MOCK_PURGE_UNCONFIGURED_RESOURCES), 0);
    fx_free(f);
}

static void test_ondemand_clone_limit(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG "  ondemand_clone_limit: 2\n" POOL1(0));
    vmp_mock *m = fx_mock(f, NULL);
    vmp_mock_block(m, VMP_MOCK_CREATE_VM);
    vmp_err err = {0};
    assert_int_equal(
        vmp_store_od_request_create(f->st, "req-5", "pool1:pool1:5", NULL, NULL, T0, &err), 0);
    assert_int_equal(vmp_engine_run_ondemand(f->e, &err), 0);
    assert_true(vmp_mock_wait_blocked(m, VMP_MOCK_CREATE_VM, 2, 5));
    vmp_store_zlist tasks = {0};
    assert_int_equal(vmp_store_od_zrange(f->st, VMP_OD_TASK, &tasks, &err), 0);
    assert_int_equal(tasks.n, 1);
    assert_string_equal(tasks.v[0].member, "pool1:pool1:3:req-5");
    vmp_store_zlist_clear(&tasks);
    char *v = fx_get(f, "tasks__ondemandclone");
    assert_string_equal(v, "2");
    free(v);
    /* a second round while both slots are busy starts nothing */
    assert_int_equal(vmp_engine_run_ondemand(f->e, &err), 0);
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_CREATE_VM), 2);
    vmp_mock_unblock(m, VMP_MOCK_CREATE_VM);
    assert_int_equal(vmp_engine_wait_idle(f->e, 5), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(vmp_engine_run_ondemand(f->e, &err), 0);
        assert_int_equal(vmp_engine_wait_idle(f->e, 5), 0);
    }
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_CREATE_VM), 5);
    vmp_strlist kv = VMP_STRLIST_INIT;
    assert_int_equal(vmp_store_od_request_get(f->st, "req-5", &kv, &err), 0);
    assert_string_equal(vmp_store_kv_get(&kv, "status"), "ready");
    vmp_strlist_clear(&kv);
    fx_free(f);
}

static void test_reload_reopens_changed_provider(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG ":providers:\n  mock:\n    flavour: a\n" POOL1(1));
    fx_pass(f, "pool1");
    vmp_provider *before = vmp_engine_provider(f->e, "mock");
    int live = vmp_mock_live_instances();
    vmp_config *c2 = load_cfg(BASE_CONFIG ":providers:\n  mock:\n    flavour: b\n" POOL1(1));
    vmp_err err = {0};
    assert_int_equal(vmp_engine_reload(f->e, c2, &err), 0);
    vmp_provider *after = vmp_engine_provider(f->e, "mock");
    assert_ptr_not_equal(before, after);
    /* the old instance is closed: nothing used it any more */
    assert_int_equal(vmp_mock_live_instances(), live);
    /* a provider that cannot be opened leaves the old configuration in force */
    vmp_config *c3 = load_cfg(BASE_CONFIG ":providers:\n  mock:\n    flavour: c\n" POOL1(1));
    vmp_mock_fail_open(0, 1);
    assert_int_not_equal(vmp_engine_reload(f->e, c3, &err), 0);
    assert_ptr_equal(vmp_engine_provider(f->e, "mock"), after);
    vmp_config_free(c3);
    fx_pass(f, "pool1");
    vmp_engine_free(f->e);
    f->e = NULL;
    vmp_config_free(c2);
    fx_free(f);
}

static void test_redis_down(void **state)
{
    NEED_REDIS();
    fx *f = fx_make(BASE_CONFIG POOL1(1));
    f->so.reconnect_attempts = 2;
    f->so.reconnect_delay = 0.01;
    fx_reopen_store(f);
    assert_int_equal(fx_start(f), 0);
    fx_pass(f, "pool1");
    char msg[256];
    vmp_test_redis_kill(g_redis);
    vmp_err err = {0};
    vmp_engine_pass_result r;
    vmp_clock_advance(f->clock, 10);
    int rc = vmp_engine_run_pass(f->e, "pool1", &r, &err);
    assert_int_not_equal(rc, 0);
    assert_int_equal(vmp_engine_wait_idle(f->e, 10), 0);
    assert_int_equal(vmp_test_redis_restart(g_redis, msg, sizeof msg), 0);
    /* Redis is back (empty): the engine carries on and refills */
    redisFree(f->rc);
    f->rc = redisConnectUnix(vmp_test_redis_socket(g_redis));
    vmp_clock_advance(f->clock, 10);
    fx_pass(f, "pool1");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_READY) + fx_count(f, "pool1", VMP_VM_COMPLETED),
                     2);
    fx_free(f);
}

static void test_discovered_known(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(1));
    fx_pass(f, "pool1");
    char *vm = fx_first(f, "pool1", VMP_VM_READY);
    /* listed as discovered by mistake while also ready (T16, second case) */
    redisReply *rr = redisCommand(f->rc, "SADD %s__discovered__pool1 %s", f->prefix, vm);
    freeReplyObject(rr);
    fx_pass(f, "pool1");
    assert_int_equal(fx_count(f, "pool1", VMP_VM_DISCOVERED), 0);
    bool member = false;
    vmp_err err = {0};
    assert_int_equal(vmp_store_is_member(f->st, "pool1", VMP_VM_READY, vm, &member, &err), 0);
    assert_true(member);
    free(vm);
    fx_free(f);
}

static void test_ondemand_expired_running(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(BASE_CONFIG POOL1(0));
    vmp_err err = {0};
    /* 2 VMs wanted, the provider makes only one in time */
    vmp_mock *m = fx_mock(f, NULL);
    assert_int_equal(
        vmp_store_od_request_create(f->st, "req-6", "pool1:pool1:2", NULL, NULL, T0, &err), 0);
    vmp_mock_fail(m, VMP_MOCK_CREATE_VM, NULL, NULL, 1, VMP_EPROVIDER, "quota");
    assert_int_equal(vmp_engine_run_ondemand(f->e, &err), 0);
    assert_int_equal(vmp_engine_wait_idle(f->e, 5), 0);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_RUNNING), 1);
    /* the request times out: its running VM goes to completed (T14) */
    vmp_clock_advance(f->clock, 6 * 60);
    vmp_mock_fail(m, VMP_MOCK_CREATE_VM, NULL, NULL, -1, VMP_EPROVIDER, "quota");
    assert_int_equal(vmp_engine_run_ondemand(f->e, &err), 0);
    assert_int_equal(vmp_engine_wait_idle(f->e, 5), 0);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_RUNNING), 0);
    assert_int_equal(fx_count(f, "pool1", VMP_VM_COMPLETED), 1);
    vmp_strlist kv = VMP_STRLIST_INIT;
    assert_int_equal(vmp_store_od_request_get(f->st, "req-6", &kv, &err), 0);
    assert_string_equal(vmp_store_kv_get(&kv, "status"), "failed");
    vmp_strlist_clear(&kv);
    fx_free(f);
}

/* ---- main ---------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    char msg[256];
    vmp_err err = {0};
    vmp_log_set_level(VMP_LOG_OFF);
    if (getenv("VMP_TEST_LOG"))
        vmp_log_set_level(VMP_LOG_DEBUG);
    if (vmp_mock_register(&err) != 0)
        return -1;
    g_nomig_ops = vmp_mock_provider_ops;
    g_nomig_ops.name = "mock_nomig";
    g_nomig_ops.migrate_vm = NULL;
    if (vmp_provider_register(&g_nomig_ops, &err) != 0 && err.code != VMP_EEXIST)
        return -1;
    g_redis = vmp_test_redis_start(false, msg, sizeof msg);
    if (!g_redis)
        fprintf(stderr, "redis-server unavailable, engine tests skipped: %s\n", msg);
    return 0;
}

static int group_teardown(void **state)
{
    vmp_test_redis_stop(g_redis);
    g_redis = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_word_lists),
        cmocka_unit_test(test_name_generate),
        cmocka_unit_test(test_permanent_errors),
        cmocka_unit_test(test_startup),
        cmocka_unit_test(test_fill_pool),
        cmocka_unit_test(test_pending_becomes_ready),
        cmocka_unit_test(test_pending_timeout),
        cmocka_unit_test(test_pending_missing),
        cmocka_unit_test(test_clone_failure),
        cmocka_unit_test(test_clone_ip_failure),
        cmocka_unit_test(test_ready_ttl),
        cmocka_unit_test(test_ready_checks_only_when_due),
        cmocka_unit_test(test_ready_bad),
        cmocka_unit_test(test_hostname_grace),
        cmocka_unit_test(test_running_lifetime),
        cmocka_unit_test(test_running_missing),
        cmocka_unit_test(test_destroy),
        cmocka_unit_test(test_completed_missing),
        cmocka_unit_test(test_discovered),
        cmocka_unit_test(test_discovered_kept),
        cmocka_unit_test(test_inventory_failure),
        cmocka_unit_test(test_template_change),
        cmocka_unit_test(test_size_override_and_excess),
        cmocka_unit_test(test_excess_with_pending),
        cmocka_unit_test(test_pool_reset_and_clone_target),
        cmocka_unit_test(test_migration_provider),
        cmocka_unit_test(test_migration_limit),
        cmocka_unit_test(test_task_limit_across_pools),
        cmocka_unit_test(test_vm_exclusivity),
        cmocka_unit_test(test_leases_two_engines),
        cmocka_unit_test(test_peer_dead),
        cmocka_unit_test(test_dead_manager_same_host),
        cmocka_unit_test(test_live_and_reused_pid_managers),
        cmocka_unit_test(test_remote_manager_expires),
        cmocka_unit_test(test_two_engines_counts),
        cmocka_unit_test(test_clone_one_slot),
        cmocka_unit_test(test_task_queues),
        cmocka_unit_test(test_ondemand),
        cmocka_unit_test(test_ondemand_retry_and_failure),
        cmocka_unit_test(test_ondemand_expiry),
        cmocka_unit_test(test_hooks),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_graceful_stop),
        cmocka_unit_test(test_scheduler_fills),
        cmocka_unit_test(test_adaptive_delay),
        cmocka_unit_test(test_choose_host_hook),
        cmocka_unit_test(test_purge_at_start),
        cmocka_unit_test(test_ondemand_clone_limit),
        cmocka_unit_test(test_reload_reopens_changed_provider),
        cmocka_unit_test(test_discovered_known),
        cmocka_unit_test(test_ondemand_expired_running),
        cmocka_unit_test(test_redis_down),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
