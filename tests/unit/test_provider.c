/* Tests for src/provider.c (registry, instances, sets, helpers, call
 * wrappers) and for the mock provider fixture of tests/support. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock_provider.h"
#include "provider.h"

/* Present only when the dummy provider is part of the link. */
extern const vmp_provider_ops vmp_dummy_provider_ops __attribute__((weak));

/* ---- log capture --------------------------------------------------------- */

static pthread_mutex_t cap_lock = PTHREAD_MUTEX_INITIALIZER;
static char captured[4096];

static void capture(vmp_log_level level, const char *subsys, const char *pool, const char *vm,
                    const char *msg, void *ud)
{
    (void)ud;
    (void)pool;
    (void)vm;
    pthread_mutex_lock(&cap_lock);
    size_t used = strlen(captured);
    snprintf(captured + used, sizeof captured - used, "%s|%s|%s\n", vmp_log_level_name(level),
             subsys, msg);
    pthread_mutex_unlock(&cap_lock);
}

static int setup_capture(void **state)
{
    (void)state;
    captured[0] = '\0';
    vmp_log_set_level(VMP_LOG_DEBUG);
    vmp_log_set_callback(capture, NULL);
    return 0;
}

static int teardown_capture(void **state)
{
    (void)state;
    vmp_log_set_callback(NULL, NULL);
    vmp_log_set_level(VMP_LOG_INFO);
    return 0;
}

/* ---- test classes -------------------------------------------------------- */

/* Ops that fail without saying why, or return a positive value. */
static int silent_destroy(void *self, const char *pool, const char *vm, vmp_err *err)
{
    (void)self;
    (void)pool;
    (void)err;
    return strcmp(vm, "positive") == 0 ? 7 : VMP_EIO;
}

static int silent_open(vmp_provider *p, void **self, vmp_err *err)
{
    (void)err;
    *self = p; /* any non-NULL marker */
    return 0;
}

static const vmp_provider_ops silent_ops = {
    .abi = VMP_PROVIDER_ABI,
    .name = "silent",
    .open = silent_open,
    .destroy_vm = silent_destroy,
};

static const vmp_provider_ops alpha_ops = {.abi = VMP_PROVIDER_ABI, .name = "alpha"};
static const vmp_provider_ops alpha2_ops = {.abi = VMP_PROVIDER_ABI, .name = "ALPHA"};
static const vmp_provider_ops bad_abi_ops = {.abi = VMP_PROVIDER_ABI + 1, .name = "future"};
static const vmp_provider_ops no_name_ops = {.abi = VMP_PROVIDER_ABI, .name = ""};

/* ---- registry ------------------------------------------------------------ */

static void test_register_rules(void **state)
{
    (void)state;
    vmp_err err = {0};
    assert_int_equal(vmp_provider_register(NULL, &err), VMP_EINVAL);
    assert_int_equal(vmp_provider_register(&bad_abi_ops, &err), VMP_EINVAL);
    assert_non_null(strstr(err.msg, "abi"));
    assert_int_equal(vmp_provider_register(&no_name_ops, &err), VMP_EINVAL);
    assert_null(vmp_provider_class_find(""));

    size_t before = vmp_provider_class_names(NULL);
    assert_int_equal(vmp_provider_register(&alpha_ops, &err), 0);
    assert_ptr_equal(vmp_provider_class_find("alpha"), &alpha_ops);
    assert_ptr_equal(vmp_provider_class_find("AlPhA"), &alpha_ops);
    assert_int_equal(vmp_provider_class_names(NULL), before + 1);

    /* Same name in another case: a duplicate. */
    assert_int_equal(vmp_provider_register(&alpha2_ops, &err), VMP_EEXIST);
    assert_non_null(strstr(err.msg, "already registered"));
    assert_int_equal(vmp_provider_register(&alpha_ops, &err), VMP_EEXIST);

    vmp_strlist names = VMP_STRLIST_INIT;
    vmp_provider_class_names(&names);
    assert_true(vmp_strlist_contains(&names, "alpha"));
    vmp_strlist_clear(&names);

    assert_int_equal(vmp_provider_unregister("ALPHA"), 0);
    assert_null(vmp_provider_class_find("alpha"));
    assert_int_equal(vmp_provider_unregister("alpha"), VMP_ENOENT);
    assert_int_equal(vmp_provider_unregister(NULL), VMP_EINVAL);
    assert_null(vmp_provider_class_find(NULL));

    /* Re-registering after unregister works (Lua reload). */
    assert_int_equal(vmp_provider_register(&alpha2_ops, &err), 0);
    assert_ptr_equal(vmp_provider_class_find("alpha"), &alpha2_ops);
    assert_int_equal(vmp_provider_unregister("alpha"), 0);
}

#define REG_THREADS 8
#define REG_PER_THREAD 40

static vmp_provider_ops reg_tables[REG_THREADS][REG_PER_THREAD];
static char reg_names[REG_THREADS][REG_PER_THREAD][16];

static const vmp_provider_ops race_ops = {.abi = VMP_PROVIDER_ABI, .name = "race"};
static int race_wins;
static pthread_mutex_t race_lock = PTHREAD_MUTEX_INITIALIZER;

static void *reg_worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    int failures = 0;
    vmp_err err = {0};
    /* Everyone registers the same name: exactly one wins. */
    if (vmp_provider_register(&race_ops, &err) == 0) {
        pthread_mutex_lock(&race_lock);
        race_wins++;
        pthread_mutex_unlock(&race_lock);
    } else if (err.code != VMP_EEXIST) {
        failures++;
    }
    for (int i = 0; i < REG_PER_THREAD; i++) {
        if (vmp_provider_register(&reg_tables[t][i], &err) != 0)
            failures++;
        if (vmp_provider_class_find(reg_names[t][i]) != &reg_tables[t][i])
            failures++;
    }
    for (int i = 0; i < REG_PER_THREAD; i += 2)
        if (vmp_provider_unregister(reg_names[t][i]) != 0)
            failures++;
    return (void *)(intptr_t)failures;
}

static void test_register_threads(void **state)
{
    (void)state;
    size_t before = vmp_provider_class_names(NULL);
    for (int t = 0; t < REG_THREADS; t++) {
        for (int i = 0; i < REG_PER_THREAD; i++) {
            snprintf(reg_names[t][i], sizeof reg_names[t][i], "c%d_%d", t, i);
            reg_tables[t][i] = (vmp_provider_ops){.abi = VMP_PROVIDER_ABI, .name = reg_names[t][i]};
        }
    }
    pthread_t th[REG_THREADS];
    for (int t = 0; t < REG_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, reg_worker, (void *)(intptr_t)t), 0);
    int failures = 0;
    for (int t = 0; t < REG_THREADS; t++) {
        void *r;
        pthread_join(th[t], &r);
        failures += (int)(intptr_t)r;
    }
    assert_int_equal(failures, 0);
    assert_int_equal(race_wins, 1);
    assert_int_equal(vmp_provider_class_names(NULL),
                     before + 1 + (size_t)REG_THREADS * REG_PER_THREAD / 2);
    for (int t = 0; t < REG_THREADS; t++) {
        for (int i = 1; i < REG_PER_THREAD; i += 2) {
            assert_ptr_equal(vmp_provider_class_find(reg_names[t][i]), &reg_tables[t][i]);
            assert_int_equal(vmp_provider_unregister(reg_names[t][i]), 0);
        }
    }
    assert_int_equal(vmp_provider_unregister("race"), 0);
    assert_int_equal(vmp_provider_class_names(NULL), before);
}

static void test_register_builtins(void **state)
{
    (void)state;
    vmp_err err = {0};
    assert_int_equal(vmp_provider_register_builtins(&err), 0);
    assert_int_equal(vmp_provider_register_builtins(&err), 0); /* idempotent */
    /* This binary does not link the dummy provider: the weak reference is
     * empty and nothing named dummy appears, unless it is linked. */
    if (&vmp_dummy_provider_ops != NULL)
        assert_ptr_equal(vmp_provider_class_find("dummy"), &vmp_dummy_provider_ops);
    else
        assert_null(vmp_provider_class_find("dummy"));
}

/* ---- instances ----------------------------------------------------------- */

static vmp_config *base_config(void)
{
    vmp_config *cfg = vmp_mock_config_new();
    assert_non_null(cfg);
    assert_int_equal(vmp_mock_config_add_pool(cfg, "pool-a", "m1", "templates/a"), 0);
    assert_int_equal(vmp_mock_config_add_pool(cfg, "pool-b", "m1", NULL), 0);
    assert_int_equal(vmp_mock_config_add_pool(cfg, "pool-c", "m2", NULL), 0);
    assert_int_equal(
        vmp_mock_config_add_provider(cfg, "m1", "MOCK", vmp_mock_map("color", "blue", NULL)), 0);
    assert_int_equal(vmp_mock_config_add_provider(cfg, "m2", "Mock_Minimal", NULL), 0);
    return cfg;
}

static void test_open_from_config(void **state)
{
    (void)state;
    vmp_err err = {0};
    assert_int_equal(vmp_mock_register(&err), 0);
    vmp_config *cfg = base_config();
    vmp_cfg_node *options = vmp_mock_map("initial_state", NULL, NULL);
    vmp_metrics *metrics = vmp_metrics_new(NULL, NULL);
    int live = vmp_mock_live_instances();

    vmp_provider *p = NULL;
    assert_int_equal(vmp_provider_open(cfg, "m1", options, metrics, &p, &err), 0);
    assert_int_equal(vmp_mock_live_instances(), live + 1);
    assert_string_equal(vmp_provider_name(p), "m1");
    assert_string_equal(vmp_provider_class_name(p), "mock");
    assert_ptr_equal(vmp_provider_ops_of(p), &vmp_mock_provider_ops);
    assert_non_null(vmp_provider_self(p));
    assert_ptr_equal(vmp_mock_of(p), vmp_provider_self(p));
    assert_ptr_equal(vmp_provider_options(p), options);
    assert_ptr_equal(vmp_provider_global_config(p), cfg);
    assert_ptr_equal(vmp_provider_metrics(p), metrics);
    assert_string_equal(vmp_cfg_get_str(vmp_provider_config(p), "color", ""), "blue");

    const vmp_pool_cfg *pc = vmp_provider_pool_config(p, "pool-a");
    assert_non_null(pc);
    assert_string_equal(pc->template_path, "templates/a");
    assert_null(vmp_provider_pool_config(p, "nope"));
    assert_null(vmp_provider_pool_config(p, NULL));

    vmp_strlist pools = VMP_STRLIST_INIT;
    assert_int_equal(vmp_provider_provided_pools(p, &pools), 0);
    assert_int_equal(pools.n, 2);
    assert_string_equal(pools.v[0], "pool-a");
    assert_string_equal(pools.v[1], "pool-b");
    vmp_strlist_clear(&pools);

    /* *out must be NULL. */
    vmp_provider *again = p;
    assert_int_equal(vmp_provider_open(cfg, "m1", NULL, NULL, &again, &err), VMP_EINVAL);
    assert_ptr_equal(again, p);
    vmp_provider_close(p);
    assert_int_equal(vmp_mock_live_instances(), live);
    vmp_provider_close(NULL);

    /* An absent :providers: entry is empty; the class is the name. */
    p = NULL;
    assert_int_equal(vmp_provider_open(cfg, "Mock", NULL, NULL, &p, &err), 0);
    assert_int_equal(vmp_cfg_kind_of(vmp_provider_config(p)), VMP_CFG_MAP);
    assert_int_equal(vmp_cfg_len(vmp_provider_config(p)), 0);
    assert_null(vmp_provider_options(p));
    assert_int_equal(vmp_provider_provided_pools(p, &pools), 0);
    assert_int_equal(pools.n, 0); /* pool names match exactly, "Mock" != "m1" */
    vmp_provider_close(p);

    vmp_cfg_free(options);
    vmp_metrics_free(metrics);
    vmp_mock_config_free(cfg);
}

static void test_open_errors(void **state)
{
    (void)state;
    vmp_err err = {0};
    assert_int_equal(vmp_mock_register(&err), 0);
    vmp_config *cfg = base_config();
    assert_int_equal(vmp_mock_config_add_provider(cfg, "m3", "nosuchclass", NULL), 0);
    vmp_provider *p = NULL;

    assert_int_equal(vmp_provider_open(cfg, "m3", NULL, NULL, &p, &err), VMP_EINVAL);
    assert_null(p);
    assert_non_null(strstr(err.msg, "unknown provider_class 'nosuchclass'"));
    assert_non_null(strstr(err.msg, "mock")); /* lists the known classes */

    assert_int_equal(vmp_provider_open(cfg, "unheard", NULL, NULL, &p, &err), VMP_EINVAL);
    assert_non_null(strstr(err.msg, "no provider class named 'unheard'"));

    assert_int_equal(vmp_provider_open(NULL, "m1", NULL, NULL, &p, &err), VMP_EINVAL);
    assert_int_equal(vmp_provider_open(cfg, "", NULL, NULL, &p, &err), VMP_EINVAL);
    assert_int_equal(vmp_provider_open(cfg, "m1", NULL, NULL, NULL, &err), VMP_EINVAL);

    /* A failing open reports the backend's text and leaves nothing open. */
    int live = vmp_mock_live_instances();
    vmp_mock_fail_open(0, 1);
    assert_int_equal(vmp_provider_open(cfg, "m1", NULL, NULL, &p, &err), VMP_EPROVIDER);
    assert_null(p);
    assert_non_null(strstr(err.msg, "provider 'm1': mock: scripted open failure"));
    assert_int_equal(vmp_mock_live_instances(), live);
    /* ...and only once. */
    assert_int_equal(vmp_provider_open(cfg, "m1", NULL, NULL, &p, &err), 0);
    vmp_provider_close(p);
    vmp_mock_config_free(cfg);
}

static void test_rebind(void **state)
{
    (void)state;
    vmp_err err = {0};
    vmp_config *old = base_config();
    vmp_config *new = base_config();
    assert_int_equal(vmp_mock_config_add_pool(new, "pool-x", "m1", "templates/x"), 0);
    vmp_provider *p = NULL;
    assert_int_equal(vmp_mock_open(old, "m1", &p, &err), 0);
    assert_null(vmp_provider_pool_config(p, "pool-x"));
    vmp_provider_rebind(p, new);
    assert_ptr_equal(vmp_provider_global_config(p), new);
    assert_string_equal(vmp_provider_pool_config(p, "pool-x")->template_path, "templates/x");
    vmp_strlist pools = VMP_STRLIST_INIT;
    assert_int_equal(vmp_provider_provided_pools(p, &pools), 0);
    assert_int_equal(pools.n, 3);
    vmp_strlist_clear(&pools);
    /* Its own entry stays the one it was opened with. */
    const vmp_provider_cfg *entry = &old->providers[0];
    assert_ptr_equal(vmp_provider_config(p), entry->node);
    vmp_provider_rebind(p, NULL); /* ignored */
    assert_ptr_equal(vmp_provider_global_config(p), new);
    vmp_provider_close(p);
    vmp_mock_config_free(old);
    vmp_mock_config_free(new);
}

static void test_log_helper(void **state)
{
    (void)state;
    vmp_err err = {0};
    vmp_config *cfg = base_config();
    vmp_provider *p = NULL;
    assert_int_equal(vmp_mock_open(cfg, "m1", &p, &err), 0);
    assert_non_null(strstr(captured, "INFO|provider.m1|creating provider 'm1' (class mock)"));
    vmp_provider_log(p, VMP_LOG_WARN, "pool-a", "vm1", "hello %d", 42);
    assert_non_null(strstr(captured, "WARN|provider.m1|hello 42"));
    vmp_provider_close(p);
    vmp_mock_config_free(cfg);
}

/* ---- wrappers ------------------------------------------------------------ */

static void test_wrappers_not_supported(void **state)
{
    (void)state;
    vmp_err err = {0};
    vmp_config *cfg = base_config();
    vmp_provider *p = NULL;
    assert_int_equal(vmp_mock_open(cfg, "m2", &p, &err), 0); /* mock_minimal */
    char buf[64] = "junk";

#define EXPECT_ENOTSUP(call, opname)                                                               \
    do {                                                                                           \
        assert_int_equal((call), VMP_ENOTSUP);                                                     \
        assert_int_equal(err.code, VMP_ENOTSUP);                                                   \
        assert_string_equal(err.msg, "m2 does not implement " opname);                             \
    } while (0)

    EXPECT_ENOTSUP(vmp_provider_get_vm_ip_address(p, "pool-c", "vm", buf, sizeof buf, &err),
                   "get_vm_ip_address");
    assert_string_equal(buf, "");
    EXPECT_ENOTSUP(vmp_provider_get_vm_host(p, "pool-c", "vm", buf, sizeof buf, &err),
                   "get_vm_host");
    EXPECT_ENOTSUP(
        vmp_provider_find_least_used_compatible_host(p, "pool-c", "vm", buf, sizeof buf, &err),
        "find_least_used_compatible_host");
    EXPECT_ENOTSUP(vmp_provider_migrate_vm_to_host(p, "pool-c", "vm", "h2", &err),
                   "migrate_vm_to_host");
    EXPECT_ENOTSUP(vmp_provider_migrate_vm(p, "pool-c", "vm", &err), "migrate_vm");
    EXPECT_ENOTSUP(vmp_provider_create_disk(p, "pool-c", "vm", 10, &err), "create_disk");
    EXPECT_ENOTSUP(vmp_provider_create_snapshot(p, "pool-c", "vm", "s1", &err), "create_snapshot");
    EXPECT_ENOTSUP(vmp_provider_revert_snapshot(p, "pool-c", "vm", "s1", &err), "revert_snapshot");
    EXPECT_ENOTSUP(vmp_provider_purge_unconfigured_resources(p, NULL, &err),
                   "purge_unconfigured_resources");
#undef EXPECT_ENOTSUP

    /* Base-class defaults. */
    assert_int_equal(vmp_provider_tag_vm_user(p, "pool-c", "vm", &err), 0);
    assert_int_equal(err.code, 0);
    captured[0] = '\0';
    assert_int_equal(vmp_provider_create_template_delta_disks(p, "pool-c", &err), 0);
    assert_non_null(strstr(captured, "INFO|provider.m2|m2 does not implement "
                                     "create_template_delta_disks"));

    /* vm_exists through get_vm. */
    vmp_mock *m = vmp_mock_of(p);
    bool exists = true;
    assert_int_equal(vmp_provider_vm_exists(p, "pool-c", "vm", &exists, &err), 0);
    assert_false(exists);
    assert_int_equal(err.code, 0);
    assert_int_equal(vmp_mock_add_vm(m, "pool-c", "vm"), 0);
    assert_int_equal(vmp_provider_vm_exists(p, "pool-c", "vm", &exists, &err), 0);
    assert_true(exists);
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_GET_VM), 2);
    /* A get_vm failure other than "no such VM" is an error of vm_exists. */
    assert_int_equal(vmp_mock_fail(m, VMP_MOCK_GET_VM, NULL, NULL, 1, VMP_EIO, "backend down"), 0);
    assert_int_equal(vmp_provider_vm_exists(p, "pool-c", "vm", &exists, &err), VMP_EIO);
    assert_false(exists);
    assert_string_equal(err.msg, "backend down");

    vmp_provider_close(p);

    /* A class with neither vm_exists nor get_vm. */
    assert_int_equal(vmp_provider_register(&silent_ops, &err), 0);
    assert_int_equal(vmp_mock_config_add_provider(cfg, "quiet", "silent", NULL), 0);
    p = NULL;
    assert_int_equal(vmp_provider_open(cfg, "quiet", NULL, NULL, &p, &err), 0);
    assert_int_equal(vmp_provider_vm_exists(p, "pool-a", "vm", &exists, &err), VMP_ENOTSUP);
    assert_string_equal(err.msg, "quiet does not implement vm_exists");
    vmp_strlist l = VMP_STRLIST_INIT;
    assert_int_equal(vmp_provider_vms_in_pool(p, "pool-a", &l, &err), VMP_ENOTSUP);
    assert_string_equal(err.msg, "quiet does not implement vms_in_pool");
    vmp_vm_info info = {0};
    assert_int_equal(vmp_provider_get_vm(p, "pool-a", "vm", &info, &err), VMP_ENOTSUP);
    assert_int_equal(vmp_provider_create_vm(p, "pool-a", "vm", NULL, &err), VMP_ENOTSUP);
    bool ready = true;
    assert_int_equal(vmp_provider_vm_ready(p, "pool-a", "vm", &ready, &err), VMP_ENOTSUP);
    assert_false(ready);

    /* An op failing without a message gets one; a positive return is 0. */
    assert_int_equal(vmp_provider_destroy_vm(p, "pool-a", "vm", &err), VMP_EIO);
    assert_int_equal(err.code, VMP_EIO);
    assert_non_null(strstr(err.msg, "quiet: destroy_vm failed"));
    assert_int_equal(vmp_provider_destroy_vm(p, "pool-a", "positive", &err), 0);
    assert_int_equal(err.code, 0);
    assert_string_equal(err.msg, "");
    /* err may be NULL. */
    assert_int_equal(vmp_provider_destroy_vm(p, "pool-a", "vm", NULL), VMP_EIO);
    vmp_provider_close(p);
    assert_int_equal(vmp_provider_unregister("silent"), 0);
    vmp_mock_config_free(cfg);
}

static void test_wrappers_check_arguments(void **state)
{
    (void)state;
    vmp_err err = {0};
    vmp_config *cfg = base_config();
    vmp_provider *p = NULL;
    assert_int_equal(vmp_mock_open(cfg, "m1", &p, &err), 0);
    vmp_mock *m = vmp_mock_of(p);
    vmp_strlist l = VMP_STRLIST_INIT;
    vmp_vm_info info = {0};
    bool b = false;
    char buf[32];

#define EXPECT_EINVAL(call)                                                                        \
    do {                                                                                           \
        vmp_err_set(&err, 0, "stale");                                                             \
        assert_int_equal((call), VMP_EINVAL);                                                      \
        assert_int_equal(err.code, VMP_EINVAL);                                                    \
        assert_true(err.msg[0] != '\0' && strcmp(err.msg, "stale") != 0);                          \
    } while (0)

    EXPECT_EINVAL(vmp_provider_vms_in_pool(NULL, "pool-a", &l, &err));
    EXPECT_EINVAL(vmp_provider_vms_in_pool(p, NULL, &l, &err));
    EXPECT_EINVAL(vmp_provider_vms_in_pool(p, "", &l, &err));
    EXPECT_EINVAL(vmp_provider_vms_in_pool(p, "pool-a", NULL, &err));
    EXPECT_EINVAL(vmp_provider_get_vm(p, "pool-a", NULL, &info, &err));
    EXPECT_EINVAL(vmp_provider_get_vm(p, "pool-a", "", &info, &err));
    EXPECT_EINVAL(vmp_provider_get_vm(p, "pool-a", "vm", NULL, &err));
    EXPECT_EINVAL(vmp_provider_create_vm(p, "", "vm", NULL, &err));
    EXPECT_EINVAL(vmp_provider_create_vm(p, "pool-a", "", NULL, &err));
    EXPECT_EINVAL(vmp_provider_destroy_vm(p, "pool-a", NULL, &err));
    EXPECT_EINVAL(vmp_provider_vm_ready(p, "pool-a", "vm", NULL, &err));
    EXPECT_EINVAL(vmp_provider_vm_ready(NULL, "pool-a", "vm", &b, &err));
    EXPECT_EINVAL(vmp_provider_vm_exists(p, NULL, "vm", &b, &err));
    EXPECT_EINVAL(vmp_provider_get_vm_ip_address(p, "pool-a", "vm", buf, 0, &err));
    EXPECT_EINVAL(vmp_provider_get_vm_ip_address(p, "pool-a", "vm", NULL, 10, &err));
    EXPECT_EINVAL(vmp_provider_get_vm_host(p, "pool-a", "", buf, sizeof buf, &err));
    EXPECT_EINVAL(vmp_provider_find_least_used_compatible_host(p, "", "vm", buf, sizeof buf, &err));
    EXPECT_EINVAL(vmp_provider_migrate_vm_to_host(p, "pool-a", "vm", "", &err));
    EXPECT_EINVAL(vmp_provider_migrate_vm_to_host(p, "pool-a", "vm", NULL, &err));
    EXPECT_EINVAL(vmp_provider_migrate_vm(p, "pool-a", "", &err));
    EXPECT_EINVAL(vmp_provider_create_disk(p, "pool-a", "vm", 0, &err));
    EXPECT_EINVAL(vmp_provider_create_disk(p, "pool-a", "vm", -5, &err));
    EXPECT_EINVAL(vmp_provider_create_snapshot(p, "pool-a", "vm", "", &err));
    EXPECT_EINVAL(vmp_provider_revert_snapshot(p, "pool-a", "vm", NULL, &err));
    EXPECT_EINVAL(vmp_provider_create_template_delta_disks(p, "", &err));
    EXPECT_EINVAL(vmp_provider_tag_vm_user(p, "pool-a", NULL, &err));
    EXPECT_EINVAL(vmp_provider_purge_unconfigured_resources(NULL, NULL, &err));
#undef EXPECT_EINVAL

    /* None of them reached the backend. */
    vmp_strlist log = VMP_STRLIST_INIT;
    assert_int_equal(vmp_mock_call_log(m, &log), 0);
    assert_int_equal(log.n, 0);
    vmp_provider_close(p);
    vmp_mock_config_free(cfg);
}

static void test_wrappers_pass_through(void **state)
{
    (void)state;
    vmp_err err = {0};
    vmp_config *cfg = base_config();
    vmp_provider *p = NULL;
    assert_int_equal(vmp_mock_open(cfg, "m1", &p, &err), 0);
    vmp_mock *m = vmp_mock_of(p);

    vmp_vm_info info = {0};
    assert_int_equal(vmp_provider_create_vm(p, "pool-a", "vm1", &info, &err), 0);
    assert_string_equal(info.name, "vm1");
    assert_string_equal(info.template_path, "templates/a");
    assert_int_equal(vmp_provider_create_snapshot(p, "pool-a", "vm1", "s1", &err), 0);
    /* Reusing info: the wrapper clears it first (no leak, no stale data). */
    assert_int_equal(vmp_provider_get_vm(p, "pool-a", "vm1", &info, &err), 0);
    assert_int_equal(info.snapshots.n, 1);
    assert_string_equal(info.snapshots.v[0], "s1");
    assert_int_equal(vmp_provider_get_vm(p, "pool-a", "nope", &info, &err), VMP_ENOENT);
    assert_string_equal(info.name, "");
    assert_int_equal(info.snapshots.n, 0);
    assert_non_null(strstr(err.msg, "no VM nope"));

    /* A failed create leaves out empty. */
    assert_int_equal(vmp_provider_create_vm(p, "pool-a", "vm1", &info, &err), VMP_EEXIST);
    assert_string_equal(info.name, "");

    char host[16];
    assert_int_equal(vmp_provider_get_vm_host(p, "pool-a", "vm1", host, sizeof host, &err), 0);
    assert_string_equal(host, "host1");
    vmp_mock_set_least_used_host(m, "host7");
    assert_int_equal(
        vmp_provider_find_least_used_compatible_host(p, "pool-a", "vm1", host, sizeof host, &err),
        0);
    assert_string_equal(host, "host7");
    assert_int_equal(vmp_provider_migrate_vm_to_host(p, "pool-a", "vm1", host, &err), 0);
    assert_int_equal(vmp_provider_get_vm_host(p, "pool-a", "vm1", host, sizeof host, &err), 0);
    assert_string_equal(host, "host7");
    /* A tiny buffer is filled and terminated. */
    char tiny[3];
    assert_int_equal(vmp_provider_get_vm_host(p, "pool-a", "vm1", tiny, sizeof tiny, &err), 0);
    assert_string_equal(tiny, "ho");

    assert_int_equal(vmp_provider_tag_vm_user(p, "pool-a", "vm1", &err), 0);
    assert_true(vmp_mock_vm_tagged(m, "pool-a", "vm1"));
    assert_int_equal(vmp_provider_create_template_delta_disks(p, "pool-a", &err), 0);
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_CREATE_TEMPLATE_DELTA_DISKS), 1);
    assert_int_equal(vmp_provider_purge_unconfigured_resources(p, NULL, &err), 0);
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_PURGE_UNCONFIGURED_RESOURCES), 1);

    vmp_vm_info_clear(&info);
    vmp_vm_info_clear(NULL);
    vmp_provider_close(p);
    vmp_mock_config_free(cfg);
}

/* ---- provider sets ------------------------------------------------------- */

static void test_set_shares_instances(void **state)
{
    (void)state;
    vmp_err err = {0};
    vmp_config *cfg = base_config();
    /* Listed but used by no pool: opened too. */
    assert_int_equal(vmp_mock_config_add_provider(cfg, "spare", "mock", NULL), 0);
    /* Listed, unused, unknown class: skipped with a warning. */
    assert_int_equal(vmp_mock_config_add_provider(cfg, "ghost", "nosuchclass", NULL), 0);
    int live = vmp_mock_live_instances();

    vmp_provider_set *set = NULL;
    assert_int_equal(vmp_provider_set_open(cfg, NULL, NULL, &set, &err), 0);
    assert_int_equal(vmp_provider_set_len(set), 3);
    assert_int_equal(vmp_mock_live_instances(), live + 3);
    assert_non_null(strstr(captured, "provider 'ghost' is configured but its class"));

    vmp_provider *a = vmp_provider_set_for_pool(set, "pool-a");
    vmp_provider *b = vmp_provider_set_for_pool(set, "pool-b");
    vmp_provider *c = vmp_provider_set_for_pool(set, "pool-c");
    assert_non_null(a);
    assert_ptr_equal(a, b); /* pools sharing a provider name share the instance */
    assert_ptr_not_equal(a, c);
    assert_string_equal(vmp_provider_name(a), "m1");
    assert_string_equal(vmp_provider_class_name(c), "mock_minimal");
    assert_null(vmp_provider_set_for_pool(set, "pool-x"));
    assert_ptr_equal(vmp_provider_set_get(set, "m1"), a);
    assert_non_null(vmp_provider_set_get(set, "spare"));
    assert_null(vmp_provider_set_get(set, "ghost"));
    assert_null(vmp_provider_set_at(set, 3));
    /* Pool-used providers come first, in pool order. */
    assert_ptr_equal(vmp_provider_set_at(set, 0), a);
    assert_ptr_equal(vmp_provider_set_at(set, 1), c);

    /* State created through one pool is visible through the other. */
    assert_int_equal(vmp_provider_create_vm(a, "pool-b", "shared", NULL, &err), 0);
    assert_true(vmp_mock_has_vm(vmp_mock_of(b), "pool-b", "shared"));

    vmp_provider_set_close(set);
    assert_int_equal(vmp_mock_live_instances(), live);
    vmp_provider_set_close(NULL);
    assert_int_equal(vmp_provider_set_len(NULL), 0);
    vmp_mock_config_free(cfg);
}

static void test_set_errors(void **state)
{
    (void)state;
    vmp_err err = {0};
    vmp_config *cfg = base_config();
    int live = vmp_mock_live_instances();
    vmp_provider_set *set = NULL;

    /* An open failing half-way closes what was opened. */
    vmp_mock_fail_open(1, 1);
    assert_int_equal(vmp_provider_set_open(cfg, NULL, NULL, &set, &err), VMP_EPROVIDER);
    assert_null(set);
    assert_int_equal(vmp_mock_live_instances(), live);

    /* A pool whose provider's class is unknown is an error. */
    assert_int_equal(vmp_mock_config_add_pool(cfg, "pool-d", "ghost", NULL), 0);
    assert_int_equal(vmp_mock_config_add_provider(cfg, "ghost", "nosuchclass", NULL), 0);
    assert_int_equal(vmp_provider_set_open(cfg, NULL, NULL, &set, &err), VMP_EINVAL);
    assert_null(set);
    assert_non_null(strstr(err.msg, "ghost"));
    assert_int_equal(vmp_mock_live_instances(), live);
    vmp_mock_config_free(cfg);

    /* A pool without `provider:` uses "dummy". */
    cfg = vmp_mock_config_new();
    assert_int_equal(vmp_mock_config_add_pool(cfg, "plain", NULL, NULL), 0);
    if (!vmp_provider_class_find("dummy")) {
        assert_int_equal(vmp_provider_set_open(cfg, NULL, NULL, &set, &err), VMP_EINVAL);
        assert_non_null(strstr(err.msg, "'dummy'"));
        /* A class called dummy makes it work. */
        static vmp_provider_ops fake_dummy;
        fake_dummy = vmp_mock_provider_ops;
        fake_dummy.name = "dummy";
        assert_int_equal(vmp_provider_register(&fake_dummy, &err), 0);
    }
    assert_int_equal(vmp_provider_set_open(cfg, NULL, NULL, &set, &err), 0);
    assert_string_equal(vmp_provider_name(vmp_provider_set_for_pool(set, "plain")), "dummy");
    vmp_provider_set_close(set);
    set = NULL;
    assert_int_equal(vmp_provider_set_open(NULL, NULL, NULL, &set, &err), VMP_EINVAL);
    if (vmp_provider_class_find("dummy") != &vmp_dummy_provider_ops)
        assert_int_equal(vmp_provider_unregister("dummy"), 0);
    vmp_mock_config_free(cfg);
}

static void test_set_from_loaded_config(void **state)
{
    (void)state;
    vmp_err err = {0};
    assert_int_equal(vmp_mock_register(&err), 0);
    /* vmpooler's layout: symbol keys, provider_class in any case. */
    const char *yaml = "---\n"
                       ":providers:\n"
                       "  :m1:\n"
                       "    provider_class: MOCK\n"
                       "    color: blue\n"
                       "  :m2:\n"
                       "    provider_class: Mock_Minimal\n"
                       "  :spare:\n"
                       "    provider_class: mock\n"
                       ":pools:\n"
                       "  - name: pool-a\n"
                       "    template: templates/a\n"
                       "    size: 2\n"
                       "    provider: m1\n"
                       "  - name: pool-b\n"
                       "    size: 1\n"
                       "    provider: m1\n"
                       "  - name: pool-c\n"
                       "    size: 1\n"
                       "    provider: m2\n";
    vmp_config_opts opts = {.no_env = true};
    vmp_config *cfg = NULL;
    if (vmp_config_load_string(yaml, "<test>", &opts, &cfg, NULL, &err) != 0)
        fail_msg("config: %s", err.msg);
    vmp_provider_set *set = NULL;
    assert_int_equal(vmp_provider_set_open(cfg, NULL, NULL, &set, &err), 0);
    assert_int_equal(vmp_provider_set_len(set), 3);
    vmp_provider *a = vmp_provider_set_for_pool(set, "pool-a");
    assert_ptr_equal(a, vmp_provider_set_for_pool(set, "pool-b"));
    assert_string_equal(vmp_provider_class_name(a), "mock");
    assert_string_equal(vmp_cfg_get_str(vmp_provider_config(a), "color", ""), "blue");
    assert_string_equal(vmp_provider_pool_config(a, "pool-a")->template_path, "templates/a");
    vmp_strlist pools = VMP_STRLIST_INIT;
    assert_int_equal(vmp_provider_provided_pools(a, &pools), 0);
    assert_int_equal(pools.n, 2);
    vmp_strlist_clear(&pools);
    assert_string_equal(vmp_provider_class_name(vmp_provider_set_for_pool(set, "pool-c")),
                        "mock_minimal");
    assert_non_null(vmp_provider_set_get(set, "spare"));
    vmp_provider_set_close(set);
    vmp_config_free(cfg);
}

/* ---- the mock fixture ---------------------------------------------------- */

static void test_mock_scripting(void **state)
{
    (void)state;
    vmp_err err = {0};
    vmp_config *cfg = base_config();
    vmp_provider *p = NULL;
    assert_int_equal(vmp_mock_open(cfg, "m1", &p, &err), 0);
    vmp_mock *m = vmp_mock_of(p);
    assert_null(vmp_mock_of(NULL));

    /* A failure for one VM, once. */
    assert_int_equal(vmp_mock_fail(m, VMP_MOCK_CREATE_VM, NULL, "vm1", 1, VMP_EPROVIDER, "nope"),
                     0);
    assert_int_equal(vmp_provider_create_vm(p, "pool-a", "vm2", NULL, &err), 0);
    assert_int_equal(vmp_provider_create_vm(p, "pool-a", "vm1", NULL, &err), VMP_EPROVIDER);
    assert_string_equal(err.msg, "nope");
    assert_false(vmp_mock_has_vm(m, "pool-a", "vm1"));
    assert_int_equal(vmp_provider_create_vm(p, "pool-a", "vm1", NULL, &err), 0);

    /* The next N calls of any VM of one pool. */
    assert_int_equal(vmp_mock_fail(m, VMP_MOCK_VMS_IN_POOL, "pool-a", NULL, 2, VMP_EIO, "down"), 0);
    vmp_strlist l = VMP_STRLIST_INIT;
    assert_int_equal(vmp_strlist_push(&l, "kept"), 0);
    assert_int_equal(vmp_provider_vms_in_pool(p, "pool-a", &l, &err), VMP_EIO);
    assert_int_equal(l.n, 1); /* a failure appends nothing */
    vmp_strlist_clear(&l);
    assert_int_equal(vmp_provider_vms_in_pool(p, "pool-b", &l, &err), 0);
    assert_int_equal(vmp_provider_vms_in_pool(p, "pool-a", &l, &err), VMP_EIO);
    assert_int_equal(vmp_provider_vms_in_pool(p, "pool-a", &l, &err), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[0], "vm2");
    assert_string_equal(l.v[1], "vm1");
    vmp_strlist_clear(&l);

    /* Forever, until cleared. */
    assert_int_equal(vmp_mock_fail(m, VMP_MOCK_DESTROY_VM, NULL, NULL, -1, VMP_EFAILED, NULL), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(vmp_provider_destroy_vm(p, "pool-a", "vm1", &err), VMP_EFAILED);
    vmp_mock_clear_failures(m);
    assert_int_equal(vmp_provider_destroy_vm(p, "pool-a", "vm1", &err), 0);
    assert_false(vmp_mock_has_vm(m, "pool-a", "vm1"));
    assert_int_equal(vmp_provider_destroy_vm(p, "pool-a", "vm1", &err), 0); /* gone: fine */
    assert_int_equal(vmp_mock_fail(m, VMP_MOCK_N_OPS, NULL, NULL, 1, VMP_EIO, NULL), VMP_EINVAL);
    assert_int_equal(vmp_mock_fail(m, VMP_MOCK_GET_VM, NULL, NULL, 1, 0, NULL), VMP_EINVAL);

    /* Readiness: at once, never, after N checks, or an error. */
    bool ready = false;
    assert_int_equal(vmp_provider_vm_ready(p, "pool-a", "vm2", &ready, &err), 0);
    assert_true(ready);
    vmp_mock_set_ready_after(m, 3);
    assert_int_equal(vmp_provider_create_vm(p, "pool-a", "vm3", NULL, &err), 0);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(vmp_provider_vm_ready(p, "pool-a", "vm3", &ready, &err), 0);
        assert_int_equal(ready, i == 3);
    }
    vmp_mock_set_ready_default(m, false);
    assert_int_equal(vmp_provider_create_vm(p, "pool-a", "vm4", NULL, &err), 0);
    assert_int_equal(vmp_provider_vm_ready(p, "pool-a", "vm4", &ready, &err), 0);
    assert_false(ready);
    assert_int_equal(vmp_mock_set_vm_ready(m, "pool-a", "vm4", true), 0);
    assert_int_equal(vmp_mock_fail(m, VMP_MOCK_VM_READY, NULL, "vm4", 1, VMP_ETIMEDOUT, "slow"), 0);
    assert_int_equal(vmp_provider_vm_ready(p, "pool-a", "vm4", &ready, &err), VMP_ETIMEDOUT);
    assert_false(ready);
    assert_int_equal(vmp_provider_vm_ready(p, "pool-a", "vm4", &ready, &err), 0);
    assert_true(ready);
    assert_int_equal(vmp_provider_vm_ready(p, "pool-a", "ghost", &ready, &err), 0);
    assert_false(ready);
    assert_int_equal(vmp_mock_set_vm_ready(m, "pool-a", "ghost", true), VMP_ENOENT);

    /* Attributes seen through get_vm. */
    vmp_clock *clock = vmp_clock_manual_new(1000.0);
    vmp_mock_set_clock(m, clock);
    assert_int_equal(vmp_mock_add_vm(m, "pool-b", "found"), 0);
    assert_int_equal(vmp_mock_add_vm(m, "pool-b", "found"), VMP_EEXIST);
    assert_int_equal(vmp_mock_set_hostname(m, "pool-b", "found", "other"), 0);
    assert_int_equal(vmp_mock_set_powerstate(m, "pool-b", "found", "PoweredOff"), 0);
    assert_int_equal(vmp_mock_set_host(m, "pool-b", "found", "host9"), 0);
    assert_int_equal(vmp_mock_set_host(m, "pool-b", "nope", "host9"), VMP_ENOENT);
    vmp_vm_info info = {0};
    assert_int_equal(vmp_provider_get_vm(p, "pool-b", "found", &info, &err), 0);
    assert_string_equal(info.hostname, "other");
    assert_string_equal(info.powerstate, "PoweredOff");
    assert_string_equal(info.host, "host9");
    assert_string_equal(info.template_path, "pool-b"); /* no template: the pool name */
    assert_true(info.boottime == 1000.0);
    assert_int_equal(strncmp(info.ip, "192.0.2.", 8), 0);
    vmp_vm_info_clear(&info);
    assert_int_equal(vmp_mock_vm_count(m, "pool-b"), 1);
    assert_int_equal(vmp_mock_vm_count(m, NULL), 4);
    assert_true(vmp_mock_remove_vm(m, "pool-b", "found"));
    assert_false(vmp_mock_remove_vm(m, "pool-b", "found"));

    assert_int_equal(vmp_provider_create_disk(p, "pool-a", "vm2", 20, &err), 0);
    assert_int_equal(vmp_mock_vm_disks(m, "pool-a", "vm2"), 1);
    assert_int_equal(vmp_provider_revert_snapshot(p, "pool-a", "vm2", "s9", &err), VMP_EFAILED);

    /* Counting and the call log. */
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_CREATE_VM), 5);
    assert_int_equal(vmp_mock_calls_for(m, VMP_MOCK_CREATE_VM, "vm1"), 2);
    assert_int_equal(vmp_mock_calls_for(m, VMP_MOCK_VM_READY, "vm3"), 3);
    vmp_strlist log = VMP_STRLIST_INIT;
    assert_int_equal(vmp_mock_call_log(m, &log), 0);
    assert_string_equal(log.v[0], "create_vm pool-a vm2");
    assert_string_equal(log.v[2], "create_vm pool-a vm1");
    assert_string_equal(log.v[3], "vms_in_pool pool-a");
    assert_string_equal(log.v[4], "vms_in_pool pool-b");
    vmp_strlist_clear(&log);
    vmp_mock_reset_calls(m);
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_CREATE_VM), 0);
    assert_int_equal(vmp_mock_call_log(m, &log), 0);
    assert_int_equal(log.n, 0);
    assert_string_equal(vmp_mock_op_name(VMP_MOCK_FIND_LEAST_USED_COMPATIBLE_HOST),
                        "find_least_used_compatible_host");
    assert_string_equal(vmp_mock_op_name(VMP_MOCK_TAG_VM_USER), "tag_vm_user");

    vmp_provider_close(p);
    vmp_clock_free(clock);
    vmp_mock_config_free(cfg);
}

typedef struct call_args {
    vmp_provider *p;
    const char *vm;
    bool create;
    int rc;
} call_args;

static void *call_thread(void *arg)
{
    call_args *a = arg;
    vmp_err err = {0};
    vmp_vm_info info = {0};
    a->rc = a->create ? vmp_provider_create_vm(a->p, "pool-a", a->vm, NULL, &err)
                      : vmp_provider_get_vm(a->p, "pool-a", a->vm, &info, &err);
    vmp_vm_info_clear(&info);
    return NULL;
}

static void test_mock_blocking_and_overlaps(void **state)
{
    (void)state;
    vmp_err err = {0};
    vmp_config *cfg = base_config();
    vmp_provider *p = NULL;
    assert_int_equal(vmp_mock_open(cfg, "m1", &p, &err), 0);
    vmp_mock *m = vmp_mock_of(p);

    vmp_mock_block(m, VMP_MOCK_CREATE_VM);
    assert_false(vmp_mock_wait_blocked(m, VMP_MOCK_CREATE_VM, 1, 0.01));
    call_args c1 = {p, "vm1", true, 99};
    pthread_t t1;
    assert_int_equal(pthread_create(&t1, NULL, call_thread, &c1), 0);
    assert_true(vmp_mock_wait_blocked(m, VMP_MOCK_CREATE_VM, 1, 10.0));
    assert_int_equal(vmp_mock_calls(m, VMP_MOCK_CREATE_VM), 1);
    assert_false(vmp_mock_has_vm(m, "pool-a", "vm1")); /* still waiting */

    /* A second call on the same VM while the first is in flight. */
    call_args c2 = {p, "vm1", false, 99};
    pthread_t t2;
    assert_int_equal(pthread_create(&t2, NULL, call_thread, &c2), 0);
    pthread_join(t2, NULL);
    assert_int_equal(c2.rc, VMP_ENOENT);
    assert_int_equal(vmp_mock_overlaps(m), 1);
    assert_int_equal(vmp_mock_max_in_flight(m), 2);

    vmp_mock_unblock(m, VMP_MOCK_CREATE_VM);
    pthread_join(t1, NULL);
    assert_int_equal(c1.rc, 0);
    assert_true(vmp_mock_has_vm(m, "pool-a", "vm1"));

    /* Calls on different VMs are no overlap. */
    vmp_mock_reset_calls(m);
    vmp_mock_block(m, VMP_MOCK_GET_VM);
    call_args c3 = {p, "vm1", false, 99};
    pthread_t t3;
    assert_int_equal(pthread_create(&t3, NULL, call_thread, &c3), 0);
    assert_true(vmp_mock_wait_blocked(m, VMP_MOCK_GET_VM, 1, 10.0));
    assert_int_equal(vmp_provider_create_vm(p, "pool-a", "vm9", NULL, &err), 0);
    vmp_mock_unblock(m, VMP_MOCK_GET_VM);
    pthread_join(t3, NULL);
    assert_int_equal(c3.rc, 0);
    assert_int_equal(vmp_mock_overlaps(m), 0);

    vmp_provider_close(p);
    vmp_mock_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_rules),
        cmocka_unit_test(test_register_threads),
        cmocka_unit_test(test_register_builtins),
        cmocka_unit_test_setup_teardown(test_open_from_config, setup_capture, teardown_capture),
        cmocka_unit_test_setup_teardown(test_open_errors, setup_capture, teardown_capture),
        cmocka_unit_test_setup_teardown(test_rebind, setup_capture, teardown_capture),
        cmocka_unit_test_setup_teardown(test_log_helper, setup_capture, teardown_capture),
        cmocka_unit_test_setup_teardown(test_wrappers_not_supported, setup_capture,
                                        teardown_capture),
        cmocka_unit_test_setup_teardown(test_wrappers_check_arguments, setup_capture,
                                        teardown_capture),
        cmocka_unit_test_setup_teardown(test_wrappers_pass_through, setup_capture,
                                        teardown_capture),
        cmocka_unit_test_setup_teardown(test_set_shares_instances, setup_capture, teardown_capture),
        cmocka_unit_test_setup_teardown(test_set_errors, setup_capture, teardown_capture),
        cmocka_unit_test_setup_teardown(test_set_from_loaded_config, setup_capture,
                                        teardown_capture),
        cmocka_unit_test_setup_teardown(test_mock_scripting, setup_capture, teardown_capture),
        cmocka_unit_test_setup_teardown(test_mock_blocking_and_overlaps, setup_capture,
                                        teardown_capture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
