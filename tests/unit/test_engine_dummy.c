/*
 * Engine integration tests with the real dummy provider and a real
 * redis-server: pools fill, lifetimes expire, failure knobs at 20 % still
 * converge to full pools, template and size changes, disk and snapshot
 * tasks, on-demand requests, and the engine running on its own threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "dummy/dummy.h"
#include "engine/engine.h"
#include "log.h"
#include "redis_server.h"
#include "store/store.h"

#define T0 1700000000.0

static vmp_test_redis *g_redis;
static int g_prefix_no;

typedef struct fx {
    vmp_config *cfg;
    vmp_engine *e;
    vmp_clock *clock;
    vmp_store *st;
    vmp_store_opts so;
    char prefix[32];
} fx;

#define NEED_REDIS()                                                                               \
    do {                                                                                           \
        if (!g_redis)                                                                              \
            skip();                                                                                \
    } while (0)

static fx *fx_new(const char *yaml, bool manual)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->prefix, sizeof f->prefix, "d%d", ++g_prefix_no);
    vmp_err err = {0};
    vmp_config_opts co = {.no_env = true};
    int rc = vmp_config_load_string(yaml, "<test>", &co, &f->cfg, NULL, &err);
    if (rc != 0)
        fprintf(stderr, "config: %s\n", err.msg);
    assert_int_equal(rc, 0);
    f->so.socket = vmp_test_redis_socket(g_redis);
    f->so.prefix = f->prefix;
    assert_int_equal(vmp_store_open(&f->so, &f->st, &err), 0);
    if (manual)
        f->clock = vmp_clock_manual_new(T0);
    vmp_engine_opts o = {
        .config = f->cfg,
        .store = &f->so,
        .clock = f->clock,
        .manual = manual,
        .workers = 4,
    };
    rc = vmp_engine_new(&o, &f->e, &err);
    if (rc == 0)
        rc = vmp_engine_start(f->e, &err);
    if (rc != 0)
        fprintf(stderr, "engine: %s\n", err.msg);
    assert_int_equal(rc, 0);
    return f;
}

static void fx_free(fx *f)
{
    vmp_engine_free(f->e);
    vmp_store_free(f->st);
    vmp_config_free(f->cfg);
    vmp_clock_free(f->clock);
    free(f);
}

static void fx_pass(fx *f, const char *pool)
{
    vmp_err err = {0};
    int rc = vmp_engine_run_pass(f->e, pool, NULL, &err);
    if (rc != 0)
        fprintf(stderr, "pass %s: %s\n", pool, err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(vmp_engine_wait_idle(f->e, 20), 0);
}

static long long fx_count(fx *f, const char *pool, vmp_vm_state st)
{
    vmp_store_pool_counts c;
    vmp_err err = {0};
    assert_int_equal(vmp_store_pool_counts_get(f->st, pool, &c, &err), 0);
    return c.n[st];
}

static bool fx_full(fx *f, const char *pool, long long size)
{
    return fx_count(f, pool, VMP_VM_READY) == size && fx_count(f, pool, VMP_VM_PENDING) == 0 &&
           fx_count(f, pool, VMP_VM_COMPLETED) == 0;
}

static char *checkout(fx *f, const char *pool)
{
    const char *pools[] = {pool};
    vmp_store_want w = {.name = pool, .pools = pools, .npools = 1};
    vmp_store_checkout_opts o = {.now = vmp_clock_now(f->clock ? f->clock : vmp_clock_system())};
    vmp_store_checkout_result res = {0};
    vmp_err err = {0};
    assert_int_equal(vmp_store_checkout(f->st, &w, 1, &o, &res, &err), 0);
    char *vm = strdup(res.vms[0].vm);
    vmp_store_checkout_result_clear(&res);
    return vm;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#define DUMMY_CONFIG                                                                               \
    "---\n"                                                                                        \
    ":config:\n"                                                                                   \
    "  task_limit: 8\n"                                                                            \
    "  prefix: 'd-'\n"                                                                             \
    ":providers:\n"                                                                                \
    "  :dummy:\n"                                                                                  \
    "    connection_pool_size: 8\n"                                                                \
    "    random_seed: 7\n"

static void test_fill_and_lifetime(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(DUMMY_CONFIG
                   ":pools:\n"
                   "  - name: alpha\n    template: t/alpha\n    size: 5\n    provider: dummy\n"
                   "  - name: beta\n    template: t/beta\n    size: 3\n    provider: dummy\n",
                   true);
    fx_pass(f, "alpha");
    fx_pass(f, "beta");
    assert_true(fx_full(f, "alpha", 5));
    assert_true(fx_full(f, "beta", 3));
    vmp_provider *p = vmp_engine_provider(f->e, "dummy");
    assert_int_equal(vmp_dummy_vm_count(p), 8);

    char *vm = checkout(f, "alpha");
    vmp_err err = {0};
    assert_int_equal(vmp_store_vm_lifetime_set(f->st, vm, 1, &err), 0);
    fx_pass(f, "alpha"); /* refills, evaluates the checkout */
    assert_true(fx_full(f, "alpha", 5));
    assert_int_equal(fx_count(f, "alpha", VMP_VM_RUNNING), 1);
    vmp_clock_advance(f->clock, 3601);
    fx_pass(f, "alpha"); /* lifetime over: completed */
    fx_pass(f, "alpha"); /* destroyed */
    char buf[64];
    assert_int_equal(vmp_dummy_vm_field(p, "alpha", vm, "name", buf, sizeof buf, &err), VMP_ENOENT);
    assert_int_equal(fx_count(f, "alpha", VMP_VM_RUNNING), 0);
    assert_int_equal(vmp_dummy_vm_count(p), 8);
    free(vm);
    fx_free(f);
}

static void test_failures_converge(void **state)
{
    NEED_REDIS();
    fx *f = fx_new("---\n"
                   ":config:\n"
                   "  task_limit: 8\n"
                   "  timeout: 2\n"
                   ":providers:\n"
                   "  :dummy:\n"
                   "    connection_pool_size: 8\n"
                   "    random_seed: 11\n"
                   "    createvm_fail_percent: 20\n"
                   "    vmready_fail_percent: 20\n"
                   "    destroyvm_fail_percent: 20\n"
                   "    getvm_poweroff_percent: 20\n"
                   "    getvm_rename_percent: 20\n"
                   ":pools:\n"
                   "  - name: rough\n    template: t/rough\n    size: 6\n    provider: dummy\n",
                   true);
    bool full = false;
    int passes = 0;
    for (; passes < 300 && !full; passes++) {
        fx_pass(f, "rough");
        vmp_clock_advance(f->clock, 61);
        full = fx_full(f, "rough", 6);
    }
    assert_true(full);
    /* failures happened along the way: more clones than the pool size */
    vmp_strlist kv = VMP_STRLIST_INIT;
    vmp_err err = {0};
    char date[16];
    vmp_date_format(T0, date, sizeof date);
    assert_int_equal(vmp_store_daily_get(f->st, VMP_DAILY_CLONE, date, &kv, &err), 0);
    assert_true(kv.n / 2 > 6);
    vmp_strlist_clear(&kv);
    /* and the provider holds exactly the pool, nothing leaked */
    assert_int_equal(vmp_dummy_vm_count(vmp_engine_provider(f->e, "dummy")), 6);
    fx_free(f);
}

static void test_template_and_size(void **state)
{
    NEED_REDIS();
    fx *f = fx_new(DUMMY_CONFIG
                   ":pools:\n"
                   "  - name: tpl\n    template: t/old\n    size: 2\n    provider: dummy\n",
                   true);
    vmp_provider *p = vmp_engine_provider(f->e, "dummy");
    fx_pass(f, "tpl");
    assert_true(fx_full(f, "tpl", 2));
    vmp_err err = {0};
    assert_int_equal(vmp_store_override_set(f->st, VMP_OVERRIDE_TEMPLATE, "tpl", "t/new", &err), 0);
    assert_int_equal(vmp_store_override_set(f->st, VMP_OVERRIDE_POOLSIZE, "tpl", "4", &err), 0);
    vmp_clock_advance(f->clock, 10);
    fx_pass(f, "tpl"); /* drain, prepare, refill from the new template */
    vmp_clock_advance(f->clock, 10);
    fx_pass(f, "tpl"); /* destroy the drained VMs */
    assert_true(fx_full(f, "tpl", 4));
    vmp_strlist l = VMP_STRLIST_INIT;
    assert_int_equal(vmp_store_set_members(f->st, "tpl", VMP_VM_READY, &l, &err), 0);
    for (size_t i = 0; i < l.n; i++) {
        char buf[64];
        assert_int_equal(vmp_dummy_vm_field(p, "tpl", l.v[i], "vm_template", buf, sizeof buf, &err),
                         0);
        assert_string_equal(buf, "t/new");
    }
    vmp_strlist_clear(&l);
    assert_int_equal(vmp_dummy_vm_count(p), 4);
    char *prep = NULL;
    assert_int_equal(vmp_store_override_get(f->st, VMP_TEMPLATE_PREPARED, "tpl", &prep, &err), 0);
    assert_string_equal(prep, "t/new");
    free(prep);
    fx_free(f);
}

static void test_disk_snapshot(void **state)
{
    NEED_REDIS();
    fx *f =
        fx_new(DUMMY_CONFIG ":pools:\n"
                            "  - name: io\n    template: t/io\n    size: 1\n    provider: dummy\n",
               true);
    fx_pass(f, "io");
    char *vm = checkout(f, "io");
    vmp_err err = {0};
    assert_int_equal(vmp_store_task_push(f->st, VMP_TASK_DISK, vm, "16", &err), 0);
    assert_int_equal(vmp_store_task_push(f->st, VMP_TASK_SNAPSHOT, vm, "base", &err), 0);
    assert_int_equal(vmp_engine_run_queues(f->e, 0, NULL, &err), 0);
    assert_int_equal(vmp_engine_wait_idle(f->e, 10), 0);
    assert_int_equal(vmp_store_task_push(f->st, VMP_TASK_SNAPSHOT_REVERT, vm, "base", &err), 0);
    assert_int_equal(vmp_engine_run_queues(f->e, 0, NULL, &err), 0);
    assert_int_equal(vmp_engine_wait_idle(f->e, 10), 0);
    vmp_provider *p = vmp_engine_provider(f->e, "dummy");
    char buf[128];
    assert_int_equal(vmp_dummy_vm_field(p, "io", vm, "disks", buf, sizeof buf, &err), 0);
    assert_string_equal(buf, "16");
    assert_int_equal(vmp_dummy_vm_field(p, "io", vm, "snapshots", buf, sizeof buf, &err), 0);
    assert_string_equal(buf, "base");
    char *v = NULL;
    assert_int_equal(vmp_store_vm_get(f->st, vm, "disk", &v, &err), 0);
    assert_string_equal(v, "+16gb");
    free(v);
    v = NULL;
    assert_int_equal(vmp_store_vm_get(f->st, vm, "snapshot:base", &v, &err), 0);
    assert_non_null(v);
    free(v);
    free(vm);
    fx_free(f);
}

static void test_ondemand(void **state)
{
    NEED_REDIS();
    fx *f =
        fx_new(DUMMY_CONFIG ":pools:\n"
                            "  - name: od\n    template: t/od\n    size: 0\n    provider: dummy\n"
                            "    alias: [odalias]\n",
               true);
    vmp_err err = {0};
    assert_int_equal(
        vmp_store_od_request_create(f->st, "r1", "odalias:od:3", "tok", "bob", T0, &err), 0);
    assert_int_equal(vmp_engine_run_ondemand(f->e, &err), 0);
    assert_int_equal(vmp_engine_wait_idle(f->e, 10), 0);
    assert_int_equal(vmp_engine_run_ondemand(f->e, &err), 0);
    vmp_strlist kv = VMP_STRLIST_INIT;
    assert_int_equal(vmp_store_od_request_get(f->st, "r1", &kv, &err), 0);
    assert_string_equal(vmp_store_kv_get(&kv, "status"), "ready");
    vmp_strlist_clear(&kv);
    vmp_strlist vms = VMP_STRLIST_INIT;
    assert_int_equal(vmp_store_od_vms_members(f->st, "r1", "odalias", "od", &vms, &err), 0);
    assert_int_equal(vms.n, 3);
    char *user = NULL;
    assert_int_equal(vmp_store_vm_get(f->st, vms.v[0], "token:user", &user, &err), 0);
    assert_string_equal(user, "bob");
    free(user);
    vmp_strlist_clear(&vms);
    assert_int_equal(fx_count(f, "od", VMP_VM_RUNNING), 3);
    fx_free(f);
}

static void test_threaded(void **state)
{
    NEED_REDIS();
    fx *f =
        fx_new(DUMMY_CONFIG ":pools:\n"
                            "  - name: t1\n    template: t/1\n    size: 4\n    provider: dummy\n"
                            "  - name: t2\n    template: t/2\n    size: 4\n    provider: dummy\n"
                            "  - name: t3\n    template: t/3\n    size: 4\n    provider: dummy\n",
               false);
    int i = 0;
    while (i++ < 200 && !(fx_full(f, "t1", 4) && fx_full(f, "t2", 4) && fx_full(f, "t3", 4)))
        sleep_ms(25);
    assert_true(fx_full(f, "t1", 4) && fx_full(f, "t2", 4) && fx_full(f, "t3", 4));
    /* a return, announced on the event channel, is destroyed and replaced */
    char *vm = checkout(f, "t2");
    vmp_err err = {0};
    assert_int_equal(vmp_store_publish(f->st, "checkout", "t2", &err), 0);
    assert_int_equal(vmp_store_vm_return(f->st, vm, NULL, &err), 0);
    assert_int_equal(vmp_store_publish(f->st, "return", "t2", &err), 0);
    vmp_provider *p = vmp_engine_provider(f->e, "dummy");
    char buf[64];
    i = 0;
    while (i++ < 200 && (vmp_dummy_vm_field(p, "t2", vm, "name", buf, sizeof buf, &err) == 0 ||
                         !fx_full(f, "t2", 4)))
        sleep_ms(25);
    assert_int_equal(vmp_dummy_vm_field(p, "t2", vm, "name", buf, sizeof buf, &err), VMP_ENOENT);
    assert_true(fx_full(f, "t2", 4));
    free(vm);
    assert_int_equal(vmp_engine_stop(f->e, 5), 0);
    fx_free(f);
}

static int group_setup(void **state)
{
    char msg[256];
    vmp_err err = {0};
    vmp_log_set_level(getenv("VMP_TEST_LOG") ? VMP_LOG_DEBUG : VMP_LOG_OFF);
    if (vmp_dummy_register(&err) != 0)
        return -1;
    g_redis = vmp_test_redis_start(false, msg, sizeof msg);
    if (!g_redis)
        fprintf(stderr, "redis-server unavailable, tests skipped: %s\n", msg);
    return 0;
}

static int group_teardown(void **state)
{
    vmp_test_redis_stop(g_redis);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fill_and_lifetime), cmocka_unit_test(test_failures_converge),
        cmocka_unit_test(test_template_and_size), cmocka_unit_test(test_disk_snapshot),
        cmocka_unit_test(test_ondemand),          cmocka_unit_test(test_threaded),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
