/* Tests for the dummy provider (providers/dummy). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <regex.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "dummy/dummy.h"
#include "mock_provider.h"
#include "provider.h"

#define POOL "debian-7"
#define POOL2 "centos-7"

/* ---- fixtures ------------------------------------------------------------ */

/* A config with pools debian-7 and centos-7 served by provider "dummy",
 * whose :providers: entry holds the key/value pairs given (NULL-ended). */
typedef struct env {
    vmp_config *cfg;
    vmp_provider *p;
    vmp_cfg_node *options; /* provider options (initial_state ...), owned */
    char dir[64];          /* temp dir for backing files, "" if none */
    char file[128];
} env;

static vmp_config *make_config(vmp_cfg_node *entry)
{
    vmp_config *cfg = vmp_mock_config_new();
    assert_non_null(cfg);
    assert_int_equal(vmp_mock_config_add_pool(cfg, POOL, "dummy", "templates/debian-7"), 0);
    assert_int_equal(vmp_mock_config_add_pool(cfg, POOL2, "dummy", "templates/centos-7"), 0);
    assert_int_equal(vmp_mock_config_add_provider(cfg, "dummy", NULL, entry), 0);
    return cfg;
}

static int open_env(env *e, vmp_cfg_node *entry, vmp_err *err)
{
    vmp_err scratch = {0};
    assert_int_equal(vmp_dummy_register(&scratch), 0);
    e->cfg = make_config(entry);
    e->p = NULL;
    return vmp_provider_open(e->cfg, "dummy", e->options, NULL, &e->p, err);
}

/* Opens with the entry's options; fails the test when the open fails. */
static void open_ok(env *e, vmp_cfg_node *entry)
{
    vmp_err err = {0};
    int rc = open_env(e, entry, &err);
    if (rc != 0)
        fail_msg("open failed: %s", err.msg);
}

static void close_env(env *e)
{
    vmp_provider_close(e->p);
    e->p = NULL;
    vmp_mock_config_free(e->cfg);
    e->cfg = NULL;
}

static void make_dir(env *e)
{
    snprintf(e->dir, sizeof e->dir, "/tmp/vmp-dummy-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->file, sizeof e->file, "%s/backing.yaml", e->dir);
}

/* Number of entries in dir (besides . and ..). */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void remove_dir(env *e)
{
    DIR *d = opendir(e->dir);
    if (!d)
        return;
    struct dirent *de;
    char path[300];
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", e->dir, de->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(e->dir);
}

static char *slurp(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    vmp_err err = {0};
    assert_int_equal(vmp_file_read(path, &text, &len, &err), 0);
    return text;
}

static const char *field(vmp_provider *p, const char *pool, const char *vm, const char *name)
{
    static char buf[512];
    vmp_err err = {0};
    if (vmp_dummy_vm_field(p, pool, vm, name, buf, sizeof buf, &err) != 0)
        snprintf(buf, sizeof buf, "<error: %s>", err.msg);
    return buf;
}

static size_t pool_len(vmp_provider *p, const char *pool)
{
    vmp_strlist l = VMP_STRLIST_INIT;
    vmp_err err = {0};
    assert_int_equal(vmp_provider_vms_in_pool(p, pool, &l, &err), 0);
    size_t n = l.n;
    vmp_strlist_clear(&l);
    return n;
}

static void create_ok(vmp_provider *p, const char *pool, const char *vm)
{
    vmp_err err = {0};
    if (vmp_provider_create_vm(p, pool, vm, NULL, &err) != 0)
        fail_msg("create_vm %s/%s: %s", pool, vm, err.msg);
}

/* Warnings the provider logs, kept for the tests that expect some. */
static pthread_mutex_t warn_lock = PTHREAD_MUTEX_INITIALIZER;
static char warnings[4096];

static void keep_warnings(vmp_log_level level, const char *subsys, const char *pool, const char *vm,
                          const char *msg, void *ud)
{
    (void)subsys;
    (void)pool;
    (void)vm;
    (void)ud;
    pthread_mutex_lock(&warn_lock);
    size_t used = strlen(warnings);
    snprintf(warnings + used, sizeof warnings - used, "%s: %s\n", vmp_log_level_name(level), msg);
    pthread_mutex_unlock(&warn_lock);
}

/* ---- registration -------------------------------------------------------- */

static void test_registration(void **state)
{
    (void)state;
    vmp_err err = {0};
    assert_int_equal(vmp_provider_register_builtins(&err), 0);
    assert_ptr_equal(vmp_provider_class_find("dummy"), &vmp_dummy_provider_ops);
    assert_ptr_equal(vmp_provider_class_find("DUMMY"), &vmp_dummy_provider_ops);
    assert_int_equal(vmp_dummy_register(&err), 0); /* already there: fine */
    assert_int_equal(vmp_provider_register(&vmp_dummy_provider_ops, &err), VMP_EEXIST);

    env e = {0};
    open_ok(&e, NULL);
    assert_string_equal(vmp_provider_class_name(e.p), "dummy");
    assert_int_equal(vmp_dummy_vm_count(e.p), 0);
    /* The helpers refuse other instances. */
    assert_int_equal(vmp_dummy_seed(NULL, 1), VMP_EINVAL);
    assert_int_equal(vmp_dummy_vm_count(NULL), 0);
    close_env(&e);
}

/* ---- create, inventory, records ------------------------------------------ */

static void test_create_and_inventory(void **state)
{
    (void)state;
    env e = {0};
    vmp_err err = {0};
    open_ok(&e, NULL);

    assert_int_equal(pool_len(e.p, "unknown-pool"), 0);
    assert_int_equal(vmp_provider_create_vm(e.p, "unknown-pool", "vm0", NULL, &err), VMP_ENOENT);
    assert_string_equal(err.msg, "Pool unknown-pool does not exist for the provider dummy");

    double before = vmp_now();
    vmp_vm_info info = {0};
    assert_int_equal(vmp_provider_create_vm(e.p, POOL, "vm-a", &info, &err), 0);
    double after = vmp_now();
    assert_string_equal(info.name, "vm-a");
    assert_string_equal(info.hostname, "vm-a");
    assert_string_equal(info.template_path, POOL); /* the pool name, as vmpooler's */
    assert_string_equal(info.poolname, POOL);
    assert_string_equal(info.powerstate, "PoweredOn");
    assert_string_equal(info.host, "HOST1");
    assert_true(info.boottime >= before - 0.001 && info.boottime <= after + 0.001);
    assert_int_equal(info.snapshots.n, 0);
    vmp_vm_info_clear(&info);

    create_ok(e.p, POOL, "vm-b");
    create_ok(e.p, POOL, "vm-c");
    create_ok(e.p, POOL2, "vm-a"); /* same name, other pool: another VM */

    assert_string_equal(field(e.p, POOL, "vm-a", "hostname"), "vm-a");
    assert_string_equal(field(e.p, POOL, "vm-a", "domain"), "dummy.local");
    assert_string_equal(field(e.p, POOL, "vm-a", "vm_template"), "templates/debian-7");
    assert_string_equal(field(e.p, POOL, "vm-a", "template"), POOL);
    assert_string_equal(field(e.p, POOL, "vm-a", "poolname"), POOL);
    assert_string_equal(field(e.p, POOL, "vm-a", "ready"), "false");
    assert_string_equal(field(e.p, POOL, "vm-a", "powerstate"), "PoweredOn");
    assert_string_equal(field(e.p, POOL, "vm-a", "vm_host"), "HOST1");
    assert_string_equal(field(e.p, POOL, "vm-a", "dummy_state"), "RUNNING");
    assert_string_equal(field(e.p, POOL, "vm-a", "snapshots"), "");
    assert_string_equal(field(e.p, POOL, "vm-a", "disks"), "");
    assert_string_equal(field(e.p, POOL2, "vm-a", "vm_template"), "templates/centos-7");
    assert_int_equal(vmp_dummy_vm_field(e.p, POOL, "vm-a", "colour", (char[8]){0}, 8, &err),
                     VMP_EINVAL);
    assert_int_equal(vmp_dummy_vm_field(e.p, POOL, "nope", "name", (char[8]){0}, 8, &err),
                     VMP_ENOENT);

    vmp_strlist l = VMP_STRLIST_INIT;
    assert_int_equal(vmp_provider_vms_in_pool(e.p, POOL, &l, &err), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.v[0], "vm-a");
    assert_string_equal(l.v[1], "vm-b");
    assert_string_equal(l.v[2], "vm-c");
    vmp_strlist_clear(&l);
    assert_int_equal(vmp_dummy_vm_count(e.p), 4);

    assert_int_equal(vmp_provider_create_vm(e.p, POOL, "vm-b", NULL, &err), VMP_EEXIST);
    assert_int_equal(vmp_dummy_vm_count(e.p), 4);

    bool exists = false;
    assert_int_equal(vmp_provider_vm_exists(e.p, POOL, "vm-b", &exists, &err), 0);
    assert_true(exists);
    assert_int_equal(vmp_provider_vm_exists(e.p, POOL2, "vm-b", &exists, &err), 0);
    assert_false(exists);

    /* Base defaults the dummy relies on, and what it leaves out. */
    assert_int_equal(vmp_provider_tag_vm_user(e.p, POOL, "vm-a", &err), 0);
    assert_int_equal(vmp_provider_create_template_delta_disks(e.p, POOL, &err), 0);
    assert_int_equal(vmp_provider_migrate_vm(e.p, POOL, "vm-a", &err), VMP_ENOTSUP);
    close_env(&e);
}

/* Creates n VMs, returning a bit string of which failed. */
static void create_outcomes(vmp_provider *p, const char *prefix, int n, char *out)
{
    for (int i = 0; i < n; i++) {
        char name[32];
        vmp_err err = {0};
        snprintf(name, sizeof name, "%s%d", prefix, i);
        int rc = vmp_provider_create_vm(p, POOL, name, NULL, &err);
        out[i] = rc == 0 ? '1' : '0';
        if (rc != 0) {
            assert_int_equal(rc, VMP_EPROVIDER);
            assert_string_equal(err.msg, "Dummy Failure for createvm_fail_percent");
        }
    }
    out[n] = '\0';
}

static int count_char(const char *s, char c)
{
    int n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

static void test_createvm_fail_percent(void **state)
{
    (void)state;
    char a[201], b[201], c[201];
    env e = {0};

    open_ok(&e, vmp_mock_map("createvm_fail_percent", "100", NULL));
    create_outcomes(e.p, "x", 20, a);
    assert_int_equal(count_char(a, '0'), 20);
    assert_int_equal(pool_len(e.p, POOL), 0); /* failed clones are removed */
    assert_int_equal(vmp_dummy_vm_count(e.p), 0);
    close_env(&e);

    open_ok(&e, vmp_mock_map("createvm_fail_percent", "0", NULL));
    create_outcomes(e.p, "x", 100, a);
    assert_int_equal(count_char(a, '1'), 100);
    close_env(&e);

    /* 50 %, seeded: an in-between count, the same for the same seed. */
    open_ok(&e, vmp_mock_map("createvm_fail_percent", "50", "random_seed", "42", NULL));
    create_outcomes(e.p, "x", 200, a);
    assert_int_equal(pool_len(e.p, POOL), (size_t)count_char(a, '1'));
    close_env(&e);
    assert_in_range(count_char(a, '0'), 60, 140);

    e.options = vmp_mock_map("random_seed", "42", NULL); /* from provider options too */
    open_ok(&e, vmp_mock_map("createvm_fail_percent", "50", NULL));
    create_outcomes(e.p, "x", 200, b);
    close_env(&e);
    vmp_cfg_free(e.options);
    e.options = NULL;
    assert_string_equal(a, b);

    open_ok(&e, vmp_mock_map("createvm_fail_percent", "50", NULL));
    assert_int_equal(vmp_dummy_seed(e.p, 43), 0);
    create_outcomes(e.p, "x", 200, c);
    close_env(&e);
    assert_string_not_equal(a, c);
}

/* ---- get_vm and its side effects ----------------------------------------- */

static void test_get_vm_side_effects(void **state)
{
    (void)state;
    env e = {0};
    vmp_err err = {0};
    vmp_vm_info info = {0};

    open_ok(&e, NULL);
    assert_int_equal(vmp_provider_get_vm(e.p, POOL, "nope", &info, &err), VMP_ENOENT);
    assert_string_equal(err.msg, "VM nope does not exist in pool debian-7 for the provider dummy");
    create_ok(e.p, POOL, "vm1");
    assert_int_equal(vmp_provider_get_vm(e.p, POOL2, "vm1", &info, &err), VMP_ENOENT);
    close_env(&e);

    /* 0 %: nothing ever changes. */
    open_ok(&e, vmp_mock_map("getvm_poweroff_percent", "0", "getvm_rename_percent", "0", NULL));
    create_ok(e.p, POOL, "vm1");
    for (int i = 0; i < 50; i++) {
        assert_int_equal(vmp_provider_get_vm(e.p, POOL, "vm1", &info, &err), 0);
        assert_string_equal(info.powerstate, "PoweredOn");
        assert_string_equal(info.hostname, "vm1");
    }
    close_env(&e);

    /* 100 %: powered off and renamed on the first look, and it sticks. */
    open_ok(&e, vmp_mock_map("getvm_poweroff_percent", "100", "getvm_rename_percent", "100", NULL));
    create_ok(e.p, POOL, "vm1");
    assert_string_equal(field(e.p, POOL, "vm1", "powerstate"), "PoweredOff");
    assert_string_equal(field(e.p, POOL, "vm1", "hostname"), "DUMMYvm1");
    assert_int_equal(vmp_provider_get_vm(e.p, POOL, "vm1", &info, &err), 0);
    assert_string_equal(info.powerstate, "PoweredOff");
    assert_string_equal(info.hostname, "DUMMYvm1"); /* renamed once only */
    close_env(&e);

    /* Only the power-off knob. */
    open_ok(&e, vmp_mock_map("getvm_poweroff_percent", "100", NULL));
    create_ok(e.p, POOL, "vm1");
    assert_int_equal(vmp_provider_get_vm(e.p, POOL, "vm1", &info, &err), 0);
    assert_string_equal(info.powerstate, "PoweredOff");
    assert_string_equal(info.hostname, "vm1");
    close_env(&e);

    /* Seeded 50 % rename over many VMs: some renamed, some not. */
    open_ok(&e, vmp_mock_map("getvm_rename_percent", "50", "random_seed", "7", NULL));
    int renamed = 0;
    for (int i = 0; i < 100; i++) {
        char name[16];
        snprintf(name, sizeof name, "r%d", i);
        create_ok(e.p, POOL, name); /* create_vm answers with get_vm: one roll */
        renamed += strncmp(field(e.p, POOL, name, "hostname"), "DUMMY", 5) == 0;
    }
    assert_in_range(renamed, 25, 75);
    close_env(&e);
    vmp_vm_info_clear(&info);
}

static void test_ip_address(void **state)
{
    (void)state;
    env e = {0};
    vmp_err err = {0};
    open_ok(&e, NULL);
    create_ok(e.p, POOL, "vm1");
    create_ok(e.p, POOL, "vm2");
    char ip1[VMP_IP_MAX], ip1b[VMP_IP_MAX], ip2[VMP_IP_MAX];
    assert_int_equal(vmp_provider_get_vm_ip_address(e.p, POOL, "vm1", ip1, sizeof ip1, &err), 0);
    assert_int_equal(vmp_provider_get_vm_ip_address(e.p, POOL, "vm1", ip1b, sizeof ip1b, &err), 0);
    assert_int_equal(vmp_provider_get_vm_ip_address(e.p, POOL, "vm2", ip2, sizeof ip2, &err), 0);
    assert_string_equal(ip1, ip1b);
    assert_string_not_equal(ip1, ip2);
    unsigned a, b, c, d;
    assert_int_equal(sscanf(ip1, "%u.%u.%u.%u", &a, &b, &c, &d), 4);
    assert_int_equal(a, 10);
    assert_true(b < 256 && c < 256 && d >= 1 && d <= 254);
    vmp_vm_info info = {0};
    assert_int_equal(vmp_provider_get_vm(e.p, POOL, "vm1", &info, &err), 0);
    assert_string_equal(info.ip, ip1);
    vmp_vm_info_clear(&info);
    assert_int_equal(vmp_provider_get_vm_ip_address(e.p, POOL, "nope", ip1, sizeof ip1, &err),
                     VMP_ENOENT);
    assert_string_equal(ip1, "");
    close_env(&e);
}

/* ---- readiness ----------------------------------------------------------- */

/* initial_state with records written by hand. */
static vmp_cfg_node *initial_state(void)
{
    vmp_cfg_node *root = vmp_cfg_map_new();
    vmp_cfg_node *pools = vmp_cfg_map_new();
    vmp_cfg_node *list = vmp_cfg_seq_new();
    assert_int_equal(
        vmp_cfg_seq_push(list, vmp_mock_map("name", "stuck", "dummy_state", "UNKNOWN", NULL)), 0);
    assert_int_equal(vmp_cfg_seq_push(list, vmp_mock_map("name", "stray", "poolname", POOL2, NULL)),
                     0);
    assert_int_equal(vmp_cfg_seq_push(list, vmp_mock_map("name", "plain", NULL)), 0);
    assert_int_equal(vmp_cfg_map_set(pools, POOL, list), 0);
    vmp_cfg_node *old = vmp_cfg_seq_new();
    assert_int_equal(vmp_cfg_seq_push(old, vmp_mock_map("name", "old1", NULL)), 0);
    assert_int_equal(vmp_cfg_seq_push(old, vmp_mock_map("name", "keepme", NULL)), 0);
    assert_int_equal(vmp_cfg_map_set(pools, "retired-pool", old), 0);
    assert_int_equal(vmp_cfg_map_set(root, "pool", pools), 0);
    vmp_cfg_node *options = vmp_cfg_map_new();
    assert_int_equal(vmp_cfg_map_set(options, "initial_state", root), 0);
    return options;
}

static void test_initial_state(void **state)
{
    (void)state;
    env e = {0};
    e.options = initial_state();
    open_ok(&e, NULL);
    assert_int_equal(vmp_dummy_vm_count(e.p), 5);
    assert_int_equal(pool_len(e.p, POOL), 3);
    /* Missing fields get defaults. */
    assert_string_equal(field(e.p, POOL, "plain", "hostname"), "plain");
    assert_string_equal(field(e.p, POOL, "plain", "poolname"), POOL);
    assert_string_equal(field(e.p, POOL, "plain", "template"), POOL);
    assert_string_equal(field(e.p, POOL, "plain", "domain"), "dummy.local");
    assert_string_equal(field(e.p, POOL, "plain", "powerstate"), "PoweredOn");
    assert_string_equal(field(e.p, POOL, "plain", "vm_host"), "HOST1");
    assert_string_equal(field(e.p, POOL, "plain", "dummy_state"), "RUNNING");
    assert_string_equal(field(e.p, POOL, "plain", "ready"), "false");
    assert_string_equal(field(e.p, POOL, "stuck", "dummy_state"), "UNKNOWN");
    close_env(&e);
    vmp_cfg_free(e.options);
}

static void test_vm_ready(void **state)
{
    (void)state;
    env e = {0};
    vmp_err err = {0};
    bool ready = true;
    e.options = initial_state();
    open_ok(&e, vmp_mock_map("is_ready_timeout", "0.05", NULL));

    /* Missing, or recorded under another pool: not ready, no error. */
    assert_int_equal(vmp_provider_vm_ready(e.p, POOL, "nope", &ready, &err), 0);
    assert_false(ready);
    assert_int_equal(vmp_provider_vm_ready(e.p, POOL, "stray", &ready, &err), 0);
    assert_false(ready);

    /* Never RUNNING: a timeout after is_ready_timeout, not a hang. */
    double t0 = vmp_monotonic();
    assert_int_equal(vmp_provider_vm_ready(e.p, POOL, "stuck", &ready, &err), VMP_ETIMEDOUT);
    double waited = vmp_monotonic() - t0;
    assert_false(ready);
    assert_non_null(strstr(err.msg, "state UNKNOWN"));
    assert_true(waited >= 0.04 && waited < 2.0);

    /* RUNNING: ready at once (no 2-second pause), and remembered. */
    create_ok(e.p, POOL, "vm1");
    t0 = vmp_monotonic();
    assert_int_equal(vmp_provider_vm_ready(e.p, POOL, "vm1", &ready, &err), 0);
    assert_true(ready);
    assert_true(vmp_monotonic() - t0 < 1.0);
    assert_string_equal(field(e.p, POOL, "vm1", "ready"), "true");
    close_env(&e);
    vmp_cfg_free(e.options);
    e.options = NULL;

    /* vmready_fail_percent 100: an error every time, never marked ready. */
    open_ok(&e, vmp_mock_map("vmready_fail_percent", "100", NULL));
    create_ok(e.p, POOL, "vm1");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(vmp_provider_vm_ready(e.p, POOL, "vm1", &ready, &err), VMP_EPROVIDER);
        assert_string_equal(err.msg, "Dummy Failure for vmready_fail_percent");
        assert_false(ready);
    }
    assert_string_equal(field(e.p, POOL, "vm1", "ready"), "false");
    close_env(&e);

    /* 0 %: never fails. */
    open_ok(&e, vmp_mock_map("vmready_fail_percent", "0", NULL));
    create_ok(e.p, POOL, "vm1");
    assert_int_equal(vmp_provider_vm_ready(e.p, POOL, "vm1", &ready, &err), 0);
    assert_true(ready);
    close_env(&e);

    /* Seeded 50 % over many VMs: some checks fail, some pass. */
    open_ok(&e, vmp_mock_map("vmready_fail_percent", "50", "random_seed", "5", NULL));
    int ok = 0;
    for (int i = 0; i < 100; i++) {
        char name[16];
        snprintf(name, sizeof name, "v%d", i);
        create_ok(e.p, POOL, name);
        ok += vmp_provider_vm_ready(e.p, POOL, name, &ready, &err) == 0 && ready;
    }
    assert_in_range(ok, 25, 75);
    close_env(&e);
}

typedef struct create_args {
    vmp_provider *p;
    const char *pool, *vm;
    int rc;
    char msg[VMP_ERR_MSG_MAX];
} create_args;

static void *create_thread(void *arg)
{
    create_args *a = arg;
    vmp_err err = {0};
    a->rc = vmp_provider_create_vm(a->p, a->pool, a->vm, NULL, &err);
    snprintf(a->msg, sizeof a->msg, "%s", err.msg);
    return NULL;
}

static void wait_for_vm(vmp_provider *p, const char *pool, const char *vm)
{
    for (int i = 0; i < 5000; i++) {
        char buf[32];
        if (vmp_dummy_vm_field(p, pool, vm, "name", buf, sizeof buf, NULL) == 0)
            return;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    fail_msg("VM %s never appeared", vm);
}

static void test_ready_waits_for_clone(void **state)
{
    (void)state;
    env e = {0};
    vmp_err err = {0};
    /* createvm_max_time 1: vmpooler's 1..max whole seconds, so exactly 1 s. */
    open_ok(&e, vmp_mock_map("createvm_max_time", "1", "connection_pool_size", "2", NULL));
    create_args a = {e.p, POOL, "slow", 99, ""};
    pthread_t t;
    double t0 = vmp_monotonic();
    assert_int_equal(pthread_create(&t, NULL, create_thread, &a), 0);
    wait_for_vm(e.p, POOL, "slow");
    /* Inventory sees it while it clones. */
    vmp_strlist l = VMP_STRLIST_INIT;
    assert_int_equal(vmp_provider_vms_in_pool(e.p, POOL, &l, &err), 0);
    assert_int_equal(l.n, 1);
    vmp_strlist_clear(&l);
    /* UNKNOWN until the clone gets its connection, then CLONING for 1 s. */
    while (strcmp(field(e.p, POOL, "slow", "dummy_state"), "UNKNOWN") == 0 &&
           vmp_monotonic() - t0 < 0.5)
        sched_yield();
    assert_string_equal(field(e.p, POOL, "slow", "dummy_state"), "CLONING");
    bool ready = false;
    assert_int_equal(vmp_provider_vm_ready(e.p, POOL, "slow", &ready, &err), 0);
    double waited = vmp_monotonic() - t0;
    assert_true(ready);
    assert_true(waited >= 0.99 && waited < 3.0); /* woken by the clone finishing */
    assert_string_equal(field(e.p, POOL, "slow", "dummy_state"), "RUNNING");
    pthread_join(t, NULL);
    assert_int_equal(a.rc, 0);
    close_env(&e);
}

/* ---- hosts and migration ------------------------------------------------- */

static void test_hosts_and_migration(void **state)
{
    (void)state;
    env e = {0};
    vmp_err err = {0};
    char host[VMP_HOST_MAX];

    open_ok(&e, NULL);
    create_ok(e.p, POOL, "vm1");
    assert_int_equal(vmp_provider_get_vm_host(e.p, POOL, "vm1", host, sizeof host, &err), 0);
    assert_string_equal(host, "HOST1");
    assert_int_equal(vmp_provider_get_vm_host(e.p, POOL, "nope", host, sizeof host, &err),
                     VMP_ENOENT);
    assert_string_equal(err.msg, "VM nope does not exist");
    /* No couldmove knob: stays put. */
    for (int i = 0; i < 20; i++) {
        assert_int_equal(
            vmp_provider_find_least_used_compatible_host(e.p, POOL, "vm1", host, sizeof host, &err),
            0);
        assert_string_equal(host, "HOST1");
    }
    assert_int_equal(
        vmp_provider_find_least_used_compatible_host(e.p, POOL, "nope", host, sizeof host, &err),
        VMP_ENOENT);
    assert_int_equal(vmp_provider_migrate_vm_to_host(e.p, POOL, "vm1", "HOST4", &err), 0);
    assert_int_equal(vmp_provider_get_vm_host(e.p, POOL, "vm1", host, sizeof host, &err), 0);
    assert_string_equal(host, "HOST4");
    assert_int_equal(vmp_provider_migrate_vm_to_host(e.p, POOL, "nope", "HOST4", &err), VMP_ENOENT);
    close_env(&e);

    open_ok(&e, vmp_mock_map("migratevm_couldmove_percent", "0", NULL));
    create_ok(e.p, POOL, "vm1");
    for (int i = 0; i < 20; i++) {
        assert_int_equal(
            vmp_provider_find_least_used_compatible_host(e.p, POOL, "vm1", host, sizeof host, &err),
            0);
        assert_string_equal(host, "HOST1");
    }
    close_env(&e);

    /* 100 %: always another of HOST1..HOST10. */
    open_ok(&e, vmp_mock_map("migratevm_couldmove_percent", "100", "random_seed", "3", NULL));
    create_ok(e.p, POOL, "vm1");
    bool seen[11] = {false};
    for (int i = 0; i < 200; i++) {
        assert_int_equal(
            vmp_provider_find_least_used_compatible_host(e.p, POOL, "vm1", host, sizeof host, &err),
            0);
        unsigned n = 0;
        assert_int_equal(sscanf(host, "HOST%u", &n), 1);
        assert_true(n >= 2 && n <= 10);
        seen[n] = true;
    }
    for (int n = 2; n <= 10; n++)
        assert_true(seen[n]);
    /* Moving it changes what "another host" means. */
    assert_int_equal(vmp_provider_migrate_vm_to_host(e.p, POOL, "vm1", "HOST7", &err), 0);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(
            vmp_provider_find_least_used_compatible_host(e.p, POOL, "vm1", host, sizeof host, &err),
            0);
        assert_string_not_equal(host, "HOST7");
    }
    close_env(&e);

    /* Seeded 50 %: sometimes stays, sometimes moves. */
    open_ok(&e, vmp_mock_map("migratevm_couldmove_percent", "50", "random_seed", "3", NULL));
    create_ok(e.p, POOL, "vm1");
    int moved = 0;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(
            vmp_provider_find_least_used_compatible_host(e.p, POOL, "vm1", host, sizeof host, &err),
            0);
        moved += strcmp(host, "HOST1") != 0;
    }
    assert_in_range(moved, 25, 75);
    close_env(&e);

    /* migratevm_fail_percent 100: an error, the host unchanged. */
    open_ok(&e, vmp_mock_map("migratevm_fail_percent", "100", NULL));
    create_ok(e.p, POOL, "vm1");
    assert_int_equal(vmp_provider_migrate_vm_to_host(e.p, POOL, "vm1", "HOST2", &err),
                     VMP_EPROVIDER);
    assert_string_equal(err.msg, "Dummy Failure for migratevm_fail_percent");
    assert_string_equal(field(e.p, POOL, "vm1", "vm_host"), "HOST1");
    close_env(&e);

    open_ok(&e, vmp_mock_map("migratevm_fail_percent", "0", NULL));
    create_ok(e.p, POOL, "vm1");
    assert_int_equal(vmp_provider_migrate_vm_to_host(e.p, POOL, "vm1", "HOST2", &err), 0);
    assert_string_equal(field(e.p, POOL, "vm1", "vm_host"), "HOST2");
    close_env(&e);
}

/* ---- disks and snapshots ------------------------------------------------- */

static void test_disks_and_snapshots(void **state)
{
    (void)state;
    env e = {0};
    vmp_err err = {0};
    open_ok(&e, NULL);
    create_ok(e.p, POOL, "vm1");
    assert_int_equal(vmp_provider_create_disk(e.p, POOL, "vm1", 10, &err), 0);
    assert_int_equal(vmp_provider_create_disk(e.p, POOL, "vm1", 20, &err), 0);
    assert_string_equal(field(e.p, POOL, "vm1", "disks"), "10,20");
    assert_int_equal(vmp_provider_create_disk(e.p, POOL, "nope", 10, &err), VMP_ENOENT);
    assert_string_equal(err.msg, "VM nope does not exist in pool debian-7 for the provider dummy");

    assert_int_equal(vmp_provider_create_snapshot(e.p, POOL, "vm1", "snap1", &err), 0);
    assert_int_equal(vmp_provider_create_snapshot(e.p, POOL, "vm1", "snap2", &err), 0);
    assert_string_equal(field(e.p, POOL, "vm1", "snapshots"), "snap1,snap2");
    vmp_vm_info info = {0};
    assert_int_equal(vmp_provider_get_vm(e.p, POOL, "vm1", &info, &err), 0);
    assert_int_equal(info.snapshots.n, 2);
    assert_string_equal(info.snapshots.v[1], "snap2");
    vmp_vm_info_clear(&info);
    assert_int_equal(vmp_provider_create_snapshot(e.p, POOL, "nope", "s", &err), VMP_ENOENT);

    assert_int_equal(vmp_provider_revert_snapshot(e.p, POOL, "vm1", "snap1", &err), 0);
    assert_int_equal(vmp_provider_revert_snapshot(e.p, POOL, "vm1", "snap9", &err), VMP_EFAILED);
    assert_non_null(strstr(err.msg, "snap9"));
    assert_int_equal(vmp_provider_revert_snapshot(e.p, POOL, "nope", "snap1", &err), VMP_ENOENT);
    close_env(&e);

    open_ok(&e, vmp_mock_map("createdisk_fail_percent", "100", "createsnapshot_fail_percent", "100",
                             "revertsnapshot_fail_percent", "100", NULL));
    create_ok(e.p, POOL, "vm1");
    assert_int_equal(vmp_provider_create_disk(e.p, POOL, "vm1", 10, &err), VMP_EPROVIDER);
    assert_string_equal(err.msg, "Dummy Failure for createdisk_fail_percent");
    assert_string_equal(field(e.p, POOL, "vm1", "disks"), "");
    assert_int_equal(vmp_provider_create_snapshot(e.p, POOL, "vm1", "s1", &err), VMP_EPROVIDER);
    assert_string_equal(err.msg, "Dummy Failure for createsnapshot_fail_percent");
    assert_string_equal(field(e.p, POOL, "vm1", "snapshots"), "");
    assert_int_equal(vmp_provider_revert_snapshot(e.p, POOL, "vm1", "s1", &err), VMP_EPROVIDER);
    assert_string_equal(err.msg, "Dummy Failure for revertsnapshot_fail_percent");
    close_env(&e);

    open_ok(&e, vmp_mock_map("createdisk_fail_percent", "0", "createsnapshot_fail_percent", "0",
                             "revertsnapshot_fail_percent", "0", NULL));
    create_ok(e.p, POOL, "vm1");
    assert_int_equal(vmp_provider_create_disk(e.p, POOL, "vm1", 10, &err), 0);
    assert_int_equal(vmp_provider_create_snapshot(e.p, POOL, "vm1", "s1", &err), 0);
    assert_int_equal(vmp_provider_revert_snapshot(e.p, POOL, "vm1", "s1", &err), 0);
    close_env(&e);

    /* Seeded 50 %: a mix of outcomes. */
    open_ok(&e, vmp_mock_map("createdisk_fail_percent", "50", "random_seed", "11", NULL));
    create_ok(e.p, POOL, "vm1");
    int ok = 0;
    for (int i = 0; i < 100; i++)
        ok += vmp_provider_create_disk(e.p, POOL, "vm1", 1, &err) == 0;
    assert_in_range(ok, 25, 75);
    /* Exactly the successful ones were recorded. */
    const char *disks = field(e.p, POOL, "vm1", "disks");
    assert_int_equal(count_char(disks, '1'), ok);
    close_env(&e);
}

/* ---- destroy ------------------------------------------------------------- */

static void test_destroy(void **state)
{
    (void)state;
    env e = {0};
    vmp_err err = {0};
    e.options = initial_state();
    open_ok(&e, NULL);
    create_ok(e.p, POOL, "vm1");
    /* Already gone: success (vmpool's contract). */
    assert_int_equal(vmp_provider_destroy_vm(e.p, POOL, "nope", &err), 0);
    /* A record that names another pool is refused. */
    assert_int_equal(vmp_provider_destroy_vm(e.p, POOL, "stray", &err), VMP_EFAILED);
    assert_non_null(strstr(err.msg, "belongs to pool centos-7"));
    assert_int_equal(vmp_provider_destroy_vm(e.p, POOL, "vm1", &err), 0);
    bool exists = true;
    assert_int_equal(vmp_provider_vm_exists(e.p, POOL, "vm1", &exists, &err), 0);
    assert_false(exists);
    assert_int_equal(pool_len(e.p, POOL), 3);
    close_env(&e);
    vmp_cfg_free(e.options);
    e.options = NULL;

    /* destroyvm_fail_percent 100: the VM is powered off but stays. The text
     * names the right knob (vmpooler's said migratevm_fail_percent). */
    open_ok(&e, vmp_mock_map("destroyvm_fail_percent", "100", NULL));
    create_ok(e.p, POOL, "vm1");
    assert_int_equal(vmp_provider_destroy_vm(e.p, POOL, "vm1", &err), VMP_EPROVIDER);
    assert_string_equal(err.msg, "Dummy Failure for destroyvm_fail_percent");
    assert_string_equal(field(e.p, POOL, "vm1", "powerstate"), "PoweredOff");
    assert_int_equal(pool_len(e.p, POOL), 1);
    close_env(&e);

    open_ok(&e, vmp_mock_map("destroyvm_fail_percent", "0", NULL));
    create_ok(e.p, POOL, "vm1");
    assert_int_equal(vmp_provider_destroy_vm(e.p, POOL, "vm1", &err), 0);
    assert_int_equal(pool_len(e.p, POOL), 0);
    close_env(&e);

    open_ok(&e, vmp_mock_map("destroyvm_fail_percent", "50", "random_seed", "9", NULL));
    int destroyed = 0;
    for (int i = 0; i < 100; i++) {
        char name[16];
        snprintf(name, sizeof name, "d%d", i);
        create_ok(e.p, POOL, name);
        destroyed += vmp_provider_destroy_vm(e.p, POOL, name, &err) == 0;
    }
    assert_in_range(destroyed, 25, 75);
    assert_int_equal(pool_len(e.p, POOL), (size_t)(100 - destroyed));
    close_env(&e);
}

/* ---- purge ---------------------------------------------------------------- */

static void test_purge(void **state)
{
    (void)state;
    env e = {0};
    vmp_err err = {0};
    e.options = initial_state();
    open_ok(&e, NULL);
    vmp_strlist allow = VMP_STRLIST_INIT;
    assert_int_equal(vmp_strlist_push(&allow, "keepme"), 0);
    assert_int_equal(vmp_provider_purge_unconfigured_resources(e.p, &allow, &err), 0);
    assert_int_equal(pool_len(e.p, "retired-pool"), 1);
    assert_string_equal(field(e.p, "retired-pool", "keepme", "name"), "keepme");
    assert_int_equal(pool_len(e.p, POOL), 3); /* configured: untouched */
    /* The whole pool allowlisted: nothing goes. */
    vmp_strlist_clear(&allow);
    assert_int_equal(vmp_strlist_push(&allow, "retired-pool"), 0);
    assert_int_equal(vmp_provider_purge_unconfigured_resources(e.p, &allow, &err), 0);
    assert_int_equal(pool_len(e.p, "retired-pool"), 1);
    assert_int_equal(vmp_provider_purge_unconfigured_resources(e.p, NULL, &err), 0);
    assert_int_equal(pool_len(e.p, "retired-pool"), 0);
    vmp_strlist_clear(&allow);
    close_env(&e);
    vmp_cfg_free(e.options);
}

/* ---- delays and the connection pool --------------------------------------- */

static void test_delays(void **state)
{
    (void)state;
    env e = {0};
    vmp_err err = {0};

    /* Without max times nothing waits. */
    open_ok(&e, NULL);
    double t0 = vmp_monotonic();
    for (int i = 0; i < 50; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", i);
        create_ok(e.p, POOL, name);
        assert_int_equal(vmp_provider_create_disk(e.p, POOL, name, 1, &err), 0);
        assert_int_equal(vmp_provider_destroy_vm(e.p, POOL, name, &err), 0);
    }
    assert_true(vmp_monotonic() - t0 < 2.0);
    close_env(&e);

    /* A fractional max: up to that long. */
    open_ok(&e, vmp_mock_map("createdisk_max_time", "0.1", "migratevm_max_time", "0.1",
                             "createsnapshot_max_time", "0.1", "revertsnapshot_max_time", "0.1",
                             "destroyvm_max_time", "0.1", NULL));
    create_ok(e.p, POOL, "vm1");
    t0 = vmp_monotonic();
    assert_int_equal(vmp_provider_create_disk(e.p, POOL, "vm1", 1, &err), 0);
    assert_int_equal(vmp_provider_migrate_vm_to_host(e.p, POOL, "vm1", "HOST2", &err), 0);
    assert_int_equal(vmp_provider_create_snapshot(e.p, POOL, "vm1", "s", &err), 0);
    assert_int_equal(vmp_provider_revert_snapshot(e.p, POOL, "vm1", "s", &err), 0);
    assert_int_equal(vmp_provider_destroy_vm(e.p, POOL, "vm1", &err), 0);
    double took = vmp_monotonic() - t0;
    assert_true(took > 0.0 && took < 2.0);
    close_env(&e);

    /* A whole number is vmpooler's 1..max seconds: with max 1, exactly 1. */
    open_ok(&e, vmp_mock_map("destroyvm_max_shutdown_time", "1", NULL));
    create_ok(e.p, POOL, "vm1");
    t0 = vmp_monotonic();
    assert_int_equal(vmp_provider_destroy_vm(e.p, POOL, "vm1", &err), 0);
    took = vmp_monotonic() - t0;
    assert_true(took >= 0.99 && took < 3.0);
    close_env(&e);
}

typedef struct disk_args {
    vmp_provider *p;
    int rc;
} disk_args;

static void *disk_thread(void *arg)
{
    disk_args *a = arg;
    vmp_err err = {0};
    a->rc = vmp_provider_create_disk(a->p, POOL, "vm1", 5, &err);
    return NULL;
}

/* The fake pool is held through an op's delay: a second op waits for a
 * free connection, and gives up after connection_pool_timeout. */
static int starved_call(vmp_provider *p, vmp_err *err, double *waited)
{
    for (int i = 0; i < 200; i++) {
        bool exists;
        double t0 = vmp_monotonic();
        int rc = vmp_provider_vm_exists(p, POOL, "vm1", &exists, err);
        *waited = vmp_monotonic() - t0;
        if (rc != 0)
            return rc;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static void test_connection_pool(void **state)
{
    (void)state;
    env e = {0};
    vmp_err err = {0};
    double waited = 0;

    open_ok(&e, vmp_mock_map("connection_pool_size", "1", "connection_pool_timeout", "0.05",
                             "createdisk_max_time", "1.5", NULL));
    create_ok(e.p, POOL, "vm1");
    disk_args a = {e.p, 99};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, disk_thread, &a), 0);
    assert_int_equal(starved_call(e.p, &err, &waited), VMP_ETIMEDOUT);
    assert_non_null(strstr(err.msg, "no connection available"));
    assert_true(waited >= 0.04);
    pthread_join(t, NULL);
    assert_int_equal(a.rc, 0);
    close_env(&e);

    /* Two connections: the second op does not wait for the first. */
    open_ok(&e, vmp_mock_map("connection_pool_size", "2", "connection_pool_timeout", "0.05",
                             "createdisk_max_time", "0.5", NULL));
    create_ok(e.p, POOL, "vm1");
    a.p = e.p;
    a.rc = 99;
    double t0 = vmp_monotonic();
    assert_int_equal(pthread_create(&t, NULL, disk_thread, &a), 0);
    int rc = 0;
    while (vmp_monotonic() - t0 < 0.3 && rc == 0) {
        bool exists;
        rc = vmp_provider_vm_exists(e.p, POOL, "vm1", &exists, &err);
    }
    assert_int_equal(rc, 0);
    pthread_join(t, NULL);
    assert_int_equal(a.rc, 0);
    close_env(&e);
}

/* ---- options ---------------------------------------------------------------- */

static void test_bad_option(void **state)
{
    (void)state;
    env e = {0};
    vmp_err err = {0};
    assert_int_equal(open_env(&e, vmp_mock_map("createvm_fail_percent", "lots", NULL), &err),
                     VMP_EINVAL);
    assert_null(e.p);
    assert_non_null(strstr(err.msg, "createvm_fail_percent"));
    assert_non_null(strstr(err.msg, "expected a number"));
    close_env(&e);
}

static void test_loaded_config(void **state)
{
    (void)state;
    vmp_err err = {0};
    assert_int_equal(vmp_dummy_register(&err), 0);
    /* Two dummy instances from vmpooler-style YAML: options as written,
     * each instance its own inventory. */
    const char *yaml = "---\n"
                       ":providers:\n"
                       "  :dummy:\n"
                       "    createvm_fail_percent: 100\n"
                       "  :flaky:\n"
                       "    provider_class: Dummy\n"
                       "    getvm_rename_percent: 100\n"
                       ":pools:\n"
                       "  - name: broken\n"
                       "    size: 1\n"
                       "  - name: renamed\n"
                       "    template: templates/renamed\n"
                       "    size: 1\n"
                       "    provider: flaky\n";
    vmp_config_opts opts = {.no_env = true};
    vmp_config *cfg = NULL;
    if (vmp_config_load_string(yaml, "<test>", &opts, &cfg, NULL, &err) != 0)
        fail_msg("config: %s", err.msg);
    vmp_provider_set *set = NULL;
    assert_int_equal(vmp_provider_set_open(cfg, NULL, NULL, &set, &err), 0);
    vmp_provider *broken = vmp_provider_set_for_pool(set, "broken");
    vmp_provider *flaky = vmp_provider_set_for_pool(set, "renamed");
    assert_string_equal(vmp_provider_name(broken), "dummy"); /* the default provider */
    assert_string_equal(vmp_provider_class_name(flaky), "dummy");
    assert_int_equal(vmp_provider_create_vm(broken, "broken", "vm1", NULL, &err), VMP_EPROVIDER);
    vmp_vm_info info = {0};
    assert_int_equal(vmp_provider_create_vm(flaky, "renamed", "vm1", &info, &err), 0);
    assert_string_equal(info.hostname, "DUMMYvm1");
    vmp_vm_info_clear(&info);
    assert_string_equal(field(flaky, "renamed", "vm1", "vm_template"), "templates/renamed");
    assert_int_equal(vmp_dummy_vm_count(broken), 0);
    assert_int_equal(vmp_dummy_vm_count(flaky), 1);
    /* Inventories are per instance. */
    assert_int_equal(pool_len(broken, "renamed"), 0);
    vmp_provider_set_close(set);
    vmp_config_free(cfg);
}

/* ---- the backing file ------------------------------------------------------- */

static void test_file_backing(void **state)
{
    (void)state;
    env e = {0};
    vmp_err err = {0};
    make_dir(&e);
    /* initial_state is replaced by the file once the file exists. */
    e.options = initial_state();
    open_ok(&e, vmp_mock_map("filename", e.file, NULL));
    assert_int_equal(vmp_dummy_vm_count(e.p), 5); /* no file yet: initial_state */
    assert_int_equal(dir_entries(e.dir), 0);      /* nothing written until a change */
    create_ok(e.p, POOL, "vm-a");
    create_ok(e.p, POOL, "true"); /* a name YAML would read as a boolean */
    create_ok(e.p, POOL2, "vm-c");
    assert_int_equal(vmp_provider_create_disk(e.p, POOL, "vm-a", 10, &err), 0);
    assert_int_equal(vmp_provider_create_snapshot(e.p, POOL, "vm-a", "snap1", &err), 0);
    assert_int_equal(vmp_provider_create_snapshot(e.p, POOL, "vm-a", "2020-01-01", &err), 0);
    bool ready = false;
    assert_int_equal(vmp_provider_vm_ready(e.p, POOL, "vm-a", &ready, &err), 0);
    assert_int_equal(vmp_provider_destroy_vm(e.p, POOL, "plain", &err), 0);
    assert_int_equal(vmp_provider_migrate_vm_to_host(e.p, POOL2, "vm-c", "HOST5", &err), 0);
    char boottime[64];
    snprintf(boottime, sizeof boottime, "%s", field(e.p, POOL, "vm-a", "boottime"));
    close_env(&e);
    vmp_cfg_free(e.options);
    e.options = NULL;

    /* Written atomically: only the file itself, no temporary left over. */
    assert_int_equal(dir_entries(e.dir), 1);

    /* vmpooler's layout, as Ruby's YAML.dump writes it. */
    char *text = slurp(e.file);
    const char *head = "---\npool:\n  debian-7:\n  - name: stuck\n";
    assert_int_equal(strncmp(text, head, strlen(head)), 0);
    assert_non_null(strstr(text, "\n  - name: vm-a\n    hostname: vm-a\n    domain: dummy.local\n"
                                 "    vm_template: templates/debian-7\n    template: debian-7\n"
                                 "    poolname: debian-7\n    ready: true\n    boottime: "));
    assert_non_null(strstr(text, "    powerstate: PoweredOn\n    vm_host: HOST1\n"
                                 "    dummy_state: RUNNING\n    snapshots:\n    - snap1\n"
                                 "    - '2020-01-01'\n    disks:\n    - 10\n"));
    assert_non_null(strstr(text, "  - name: 'true'\n    hostname: 'true'\n"));
    assert_non_null(strstr(text, "    snapshots: []\n    disks: []\n"));
    assert_non_null(strstr(text, "\n  centos-7:\n  - name: vm-c\n"));
    assert_null(strstr(text, "name: plain"));
    regex_t re;
    assert_int_equal(regcomp(&re,
                             "boottime: [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}"
                             "\\.[0-9]{9} [+-][0-9]{2}:[0-9]{2}\n",
                             REG_EXTENDED),
                     0);
    assert_int_equal(regexec(&re, text, 0, NULL, 0), 0);
    regfree(&re);
    free(text);

    /* Another instance reads it all back (the file wins over initial_state). */
    e.options = vmp_mock_map("initial_state", NULL, NULL);
    open_ok(&e, vmp_mock_map("filename", e.file, NULL));
    assert_int_equal(vmp_dummy_vm_count(e.p), 7);
    vmp_strlist l = VMP_STRLIST_INIT;
    assert_int_equal(vmp_provider_vms_in_pool(e.p, POOL, &l, &err), 0);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.v[0], "stuck");
    assert_string_equal(l.v[1], "stray");
    assert_string_equal(l.v[2], "vm-a");
    assert_string_equal(l.v[3], "true");
    vmp_strlist_clear(&l);
    assert_string_equal(field(e.p, POOL, "vm-a", "disks"), "10");
    assert_string_equal(field(e.p, POOL, "vm-a", "snapshots"), "snap1,2020-01-01");
    assert_string_equal(field(e.p, POOL, "vm-a", "ready"), "true");
    assert_string_equal(field(e.p, POOL, "vm-a", "boottime"), boottime);
    assert_string_equal(field(e.p, POOL, "true", "hostname"), "true");
    assert_string_equal(field(e.p, POOL, "stray", "poolname"), POOL2);
    assert_string_equal(field(e.p, POOL, "stuck", "dummy_state"), "UNKNOWN");
    assert_string_equal(field(e.p, POOL2, "vm-c", "vm_host"), "HOST5");
    assert_string_equal(field(e.p, POOL2, "vm-c", "vm_template"), "templates/centos-7");
    ready = false;
    assert_int_equal(vmp_provider_vm_ready(e.p, POOL, "vm-a", &ready, &err), 0);
    assert_true(ready);
    close_env(&e);
    vmp_cfg_free(e.options);
    e.options = NULL;
    remove_dir(&e);
}

static void copy_file(const char *from, const char *to)
{
    char *text = NULL;
    size_t len = 0;
    vmp_err err = {0};
    assert_int_equal(vmp_file_read(from, &text, &len, &err), 0);
    assert_int_equal(vmp_file_write_atomic(to, text, len, &err), 0);
    free(text);
}

static void test_vmpooler_file(void **state)
{
    (void)state;
    env e = {0};
    vmp_err err = {0};
    make_dir(&e);
    copy_file(VMP_FIXTURES_DIR "/dummy-backing-vmpooler.yaml", e.file);
    /* What a process killed while writing the file leaves behind. */
    char stale[600];
    snprintf(stale, sizeof stale, "%s.tmp.Ab12Cd", e.file);
    FILE *sf = fopen(stale, "w");
    assert_non_null(sf);
    fputs("pool:\n  debi", sf);
    fclose(sf);

    vmp_cfg_node *entry = vmp_mock_map("filename", e.file, NULL);
    vmp_config *cfg = vmp_mock_config_new();
    assert_int_equal(vmp_mock_config_add_pool(cfg, "debian-7-x86_64", "dummy", "t/debian"), 0);
    assert_int_equal(vmp_mock_config_add_pool(cfg, "8675309", "dummy", NULL), 0);
    assert_int_equal(vmp_mock_config_add_provider(cfg, "dummy", NULL, entry), 0);
    assert_int_equal(vmp_dummy_register(&err), 0);
    vmp_provider *p = NULL;
    assert_int_equal(vmp_provider_open(cfg, "dummy", NULL, NULL, &p, &err), 0);

    const char *deb = "debian-7-x86_64";
    assert_int_equal(vmp_dummy_vm_count(p), 3);
    assert_int_equal(pool_len(p, deb), 2);
    assert_int_equal(pool_len(p, "centos-7-x86_64"), 0);
    /* An alias (&1 / *1, as older Psych writes repeated strings). */
    assert_string_equal(field(p, deb, "fq8w4pq1ai6ad5b", "hostname"), "fq8w4pq1ai6ad5b");
    assert_string_equal(field(p, deb, "fq8w4pq1ai6ad5b", "vm_host"), "HOST3");
    assert_string_equal(field(p, deb, "fq8w4pq1ai6ad5b", "snapshots"), "before-upgrade");
    assert_string_equal(field(p, deb, "fq8w4pq1ai6ad5b", "disks"), "10,20");
    assert_string_equal(field(p, deb, "fq8w4pq1ai6ad5b", "ready"), "true");
    assert_string_equal(field(p, deb, "fq8w4pq1ai6ad5b", "vm_template"),
                        "templates/debian-7-x86_64");
    assert_string_equal(field(p, deb, "k0zbd4o9ux6rbgx", "powerstate"), "PoweredOff");
    /* The clone the file shows in progress was interrupted by the restart:
     * it is finished on load, so the VM can become ready. */
    assert_string_equal(field(p, deb, "k0zbd4o9ux6rbgx", "dummy_state"), "RUNNING");
    assert_int_equal(access(stale, F_OK), -1);
    assert_string_equal(field(p, deb, "k0zbd4o9ux6rbgx", "hostname"), "DUMMYk0zbd4o9ux6rbgx");
    assert_string_equal(field(p, "8675309", "n", "hostname"), "n");
    assert_string_equal(field(p, "8675309", "n", "vm_template"), "");
    assert_string_equal(field(p, "8675309", "n", "vm_host"), "HOST10");

    /* Ruby's Time with nanoseconds and a -07:00 offset. */
    vmp_vm_info info = {0};
    assert_int_equal(vmp_provider_get_vm(p, deb, "fq8w4pq1ai6ad5b", &info, &err), 0);
    double expect = 0;
    assert_int_equal(vmp_time_parse("2017-05-17T17:11:12Z", &expect), 0);
    /* (a double holds such a time to about 2e-7 s) */
    assert_true(info.boottime > expect + 0.123456 && info.boottime < expect + 0.123458);
    assert_int_equal(vmp_provider_get_vm(p, "8675309", "n", &info, &err), 0);
    assert_int_equal(vmp_time_parse("2017-05-17T17:13:00Z", &expect), 0);
    assert_true(info.boottime > expect + 0.49 && info.boottime < expect + 0.51);
    vmp_vm_info_clear(&info);

    /* Marked ready in the file: ready at once. */
    bool ready = false;
    assert_int_equal(vmp_provider_vm_ready(p, deb, "fq8w4pq1ai6ad5b", &ready, &err), 0);
    assert_true(ready);

    /* A change rewrites the file; what was read survives the round trip. */
    assert_int_equal(vmp_provider_destroy_vm(p, deb, "k0zbd4o9ux6rbgx", &err), 0);
    char before[64];
    snprintf(before, sizeof before, "%s", field(p, deb, "fq8w4pq1ai6ad5b", "boottime"));
    vmp_provider_close(p);
    p = NULL;
    char *text = slurp(e.file);
    assert_non_null(strstr(text, "  centos-7-x86_64: []\n"));
    assert_non_null(strstr(text, "  '8675309':\n  - name: \"n\"\n"));
    assert_null(strstr(text, "k0zbd4o9ux6rbgx"));
    free(text);
    assert_int_equal(vmp_provider_open(cfg, "dummy", NULL, NULL, &p, &err), 0);
    assert_int_equal(vmp_dummy_vm_count(p), 2);
    assert_string_equal(field(p, deb, "fq8w4pq1ai6ad5b", "boottime"), before);
    assert_string_equal(field(p, deb, "fq8w4pq1ai6ad5b", "disks"), "10,20");
    vmp_provider_close(p);
    vmp_mock_config_free(cfg);
    remove_dir(&e);
}

static void test_liberal_reading(void **state)
{
    (void)state;
    env e = {0};
    vmp_err err = {0};
    make_dir(&e);
    /* Symbol keys, a bare name, missing fields, a bad record, a duplicate,
     * a plain-number boottime. */
    const char *text = "---\n:pool:\n  debian-7:\n  - :name: sym\n    :ready: yes\n"
                       "  - bare\n  - {hostname: nameless}\n  - name: sym\n"
                       "  - name: epoch\n    boottime: 1500000000.5\n  centos-7:\n";
    assert_int_equal(vmp_file_write_atomic(e.file, text, strlen(text), &err), 0);
    warnings[0] = '\0';
    vmp_log_set_callback(keep_warnings, NULL);
    open_ok(&e, vmp_mock_map("filename", e.file, NULL));
    assert_non_null(strstr(warnings, "backing.yaml:7: skipping a VM record without a name"));
    assert_non_null(strstr(warnings, "backing.yaml:8: duplicate VM record ignored"));
    assert_int_equal(pool_len(e.p, POOL), 3);
    assert_string_equal(field(e.p, POOL, "sym", "ready"), "true");
    assert_string_equal(field(e.p, POOL, "bare", "hostname"), "bare");
    assert_string_equal(field(e.p, POOL, "bare", "boottime"), "");
    vmp_vm_info info = {0};
    assert_int_equal(vmp_provider_get_vm(e.p, POOL, "epoch", &info, &err), 0);
    assert_true(info.boottime == 1500000000.5);
    vmp_vm_info_clear(&info);
    close_env(&e);

    /* An empty file is an empty inventory. */
    assert_int_equal(vmp_file_write_atomic(e.file, "", 0, &err), 0);
    open_ok(&e, vmp_mock_map("filename", e.file, NULL));
    assert_int_equal(vmp_dummy_vm_count(e.p), 0);
    close_env(&e);

    /* Broken YAML: the open fails and says where. */
    const char *bad = "---\npool:\n  debian-7:\n  - name: [unclosed\n";
    assert_int_equal(vmp_file_write_atomic(e.file, bad, strlen(bad), &err), 0);
    assert_int_equal(open_env(&e, vmp_mock_map("filename", e.file, NULL), &err), VMP_EINVAL);
    assert_null(e.p);
    assert_non_null(strstr(err.msg, e.file));
    close_env(&e);

    /* The wrong shape. */
    const char *list = "- a\n- b\n";
    assert_int_equal(vmp_file_write_atomic(e.file, list, strlen(list), &err), 0);
    assert_int_equal(open_env(&e, vmp_mock_map("filename", e.file, NULL), &err), VMP_EINVAL);
    assert_non_null(strstr(err.msg, "expected a map"));
    close_env(&e);

    /* A file that cannot be written: the change is reported as failed. */
    remove_dir(&e);
    make_dir(&e);
    open_ok(&e, vmp_mock_map("filename", "/nonexistent-dir/x/backing.yaml", NULL));
    assert_int_equal(vmp_provider_create_vm(e.p, POOL, "vm1", NULL, &err), VMP_EIO);
    assert_int_equal(vmp_dummy_vm_count(e.p), 0);
    assert_non_null(strstr(warnings, "WARN: cannot write backing file /nonexistent-dir/x/"));
    vmp_log_set_callback(NULL, NULL);
    close_env(&e);
    remove_dir(&e);
}

/* ---- threads and scale -------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 150

typedef struct worker_args {
    vmp_provider *p;
    int id;
    int per;
    int failures;
} worker_args;

static void *worker(void *arg)
{
    worker_args *a = arg;
    vmp_err err = {0};
    const char *pool = a->id % 2 ? POOL : POOL2;
    for (int i = 0; i < a->per; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%d-%d", a->id, i);
        bool ready = false;
        vmp_vm_info info = {0};
        if (vmp_provider_create_vm(a->p, pool, name, &info, &err) != 0 ||
            vmp_provider_vm_ready(a->p, pool, name, &ready, &err) != 0 || !ready ||
            vmp_provider_get_vm(a->p, pool, name, &info, &err) != 0 ||
            vmp_provider_create_snapshot(a->p, pool, name, "s", &err) != 0)
            a->failures++;
        vmp_vm_info_clear(&info);
        if (i % 2 == 0 && vmp_provider_destroy_vm(a->p, pool, name, &err) != 0)
            a->failures++;
    }
    return NULL;
}

static void run_workers(vmp_provider *p, int per)
{
    pthread_t th[THREADS];
    worker_args args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (worker_args){p, i, per, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
}

static void test_threads(void **state)
{
    (void)state;
    env e = {0};
    open_ok(&e, vmp_mock_map("connection_pool_size", "4", NULL));
    run_workers(e.p, PER_THREAD);
    size_t kept = (size_t)THREADS * (PER_THREAD / 2);
    assert_int_equal(vmp_dummy_vm_count(e.p), kept);
    assert_int_equal(pool_len(e.p, POOL) + pool_len(e.p, POOL2), kept);
    close_env(&e);

    /* With a backing file: what is on disk is what is in memory. */
    make_dir(&e);
    open_ok(&e, vmp_mock_map("filename", e.file, "connection_pool_size", "3", NULL));
    run_workers(e.p, 10);
    close_env(&e);
    assert_int_equal(dir_entries(e.dir), 1);
    open_ok(&e, vmp_mock_map("filename", e.file, NULL));
    assert_int_equal(vmp_dummy_vm_count(e.p), (size_t)THREADS * 5);
    assert_string_equal(field(e.p, POOL, "t1-1", "snapshots"), "s");
    assert_string_equal(field(e.p, POOL2, "t0-1", "ready"), "true");
    close_env(&e);
    remove_dir(&e);
}

static void test_scale(void **state)
{
    (void)state;
    /* 100 pools x 100 VMs through one instance, as the engine benchmark
     * does: lookups must not degrade with the total. */
    vmp_config *cfg = vmp_mock_config_new();
    char pools[100][16];
    for (int i = 0; i < 100; i++) {
        snprintf(pools[i], sizeof pools[i], "pool%02d", i);
        assert_int_equal(vmp_mock_config_add_pool(cfg, pools[i], "dummy", NULL), 0);
    }
    assert_int_equal(vmp_mock_config_add_provider(cfg, "dummy", NULL, NULL), 0);
    vmp_err err = {0};
    assert_int_equal(vmp_dummy_register(&err), 0);
    vmp_provider *p = NULL;
    assert_int_equal(vmp_provider_open(cfg, "dummy", NULL, NULL, &p, &err), 0);
    double t0 = vmp_monotonic();
    for (int i = 0; i < 100; i++) {
        for (int j = 0; j < 100; j++) {
            char name[32];
            snprintf(name, sizeof name, "vm%02d-%03d", i, j);
            create_ok(p, pools[i], name);
        }
    }
    assert_int_equal(vmp_dummy_vm_count(p), 10000);
    for (int i = 0; i < 100; i++)
        assert_int_equal(pool_len(p, pools[i]), 100);
    bool ready;
    for (int i = 0; i < 100; i++)
        for (int j = 0; j < 100; j += 7) {
            char name[32];
            snprintf(name, sizeof name, "vm%02d-%03d", i, j);
            assert_int_equal(vmp_provider_vm_ready(p, pools[i], name, &ready, &err), 0);
            assert_true(ready);
            assert_int_equal(vmp_provider_destroy_vm(p, pools[i], name, &err), 0);
        }
    assert_int_equal(vmp_dummy_vm_count(p), 10000 - 100 * 15);
    print_message("    10000 creates, 1500 checks and destroys: %.3f s\n", vmp_monotonic() - t0);
    vmp_provider_close(p);
    vmp_mock_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registration),
        cmocka_unit_test(test_create_and_inventory),
        cmocka_unit_test(test_createvm_fail_percent),
        cmocka_unit_test(test_get_vm_side_effects),
        cmocka_unit_test(test_ip_address),
        cmocka_unit_test(test_initial_state),
        cmocka_unit_test(test_vm_ready),
        cmocka_unit_test(test_ready_waits_for_clone),
        cmocka_unit_test(test_hosts_and_migration),
        cmocka_unit_test(test_disks_and_snapshots),
        cmocka_unit_test(test_destroy),
        cmocka_unit_test(test_purge),
        cmocka_unit_test(test_delays),
        cmocka_unit_test(test_connection_pool),
        cmocka_unit_test(test_bad_option),
        cmocka_unit_test(test_loaded_config),
        cmocka_unit_test(test_file_backing),
        cmocka_unit_test(test_vmpooler_file),
        cmocka_unit_test(test_liberal_reading),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_scale),
    };
    vmp_log_set_level(VMP_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
