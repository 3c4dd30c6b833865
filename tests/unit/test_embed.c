/* Tests for src/vmpool.c, the embedding API: a program that runs pools
 * in-process (the dummy provider, a Lua provider and a Lua policy) against
 * a private redis-server, checks VMs out and returns them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "lua/script.h"
#include "redis_server.h"
#include "util.h"
#include "vmpool.h"

static vmp_test_redis *g_redis;
static char g_dir[64];

#define NEED_REDIS()                                                                               \
    do {                                                                                           \
        if (!g_redis)                                                                              \
            skip();                                                                                \
    } while (0)

static char *write_file(const char *name, const char *text)
{
    char *path = vmp_asprintf("%s/%s", g_dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return path;
}

/* A provider in Lua, in memory, and a policy that sizes pool "emb". */
static const char site_lua[] =
    "local P = vmpool.provider('memory', {})\n"
    "local vms = {}\n"
    "function P:vms_in_pool(pool)\n"
    "  local l = {} for n in pairs(vms[pool] or {}) do l[#l + 1] = n end return l\n"
    "end\n"
    "function P:get_vm(pool, vm)\n"
    "  if not (vms[pool] or {})[vm] then return nil end\n"
    "  return {name = vm, hostname = vm, template = pool, poolname = pool,\n"
    "          powerstate = 'PoweredOn', ip = '192.0.2.1', boottime = os.time()}\n"
    "end\n"
    "function P:create_vm(pool, vm)\n"
    "  vms[pool] = vms[pool] or {} vms[pool][vm] = true return self:get_vm(pool, vm)\n"
    "end\n"
    "function P:destroy_vm(pool, vm) if vms[pool] then vms[pool][vm] = nil end end\n"
    "function P:vm_ready(pool, vm) return (vms[pool] or {})[vm] ~= nil end\n"
    "function P:get_vm_ip_address() return '192.0.2.1' end\n"
    "vmpool.pool{name = 'lp', size = 2, template = 'mem', provider = 'memory'}\n"
    "vmpool.policy{pools = 'emb', pool_size = function(pool, s) return s.config_size + 1 end,\n"
    "  vm_name = function(pool) return 'emb-' .. string.format('%06d', math.random(0, 999999)) "
    "end}\n";

static char *config(const char *redis)
{
    char *lua = write_file("site.lua", site_lua);
    char *yaml = vmp_asprintf(":config:\n  task_limit: 8\n  lua: %s\n%s"
                              ":providers:\n  :dummy:\n    connection_pool_size: 8\n"
                              ":pools:\n  - name: emb\n    alias: [e]\n    size: 2\n"
                              "    template: t/emb\n    provider: dummy\n",
                              lua, redis);
    char *path = write_file("vmpool.yaml", yaml);
    free(lua);
    free(yaml);
    return path;
}

static void test_checkout_return(void **state)
{
    (void)state;
    NEED_REDIS();
    char *redis = vmp_asprintf(":redis:\n  socket: %s\n", vmp_test_redis_socket(g_redis));
    char *path = config(redis);
    free(redis);
    vmpool *vp = NULL;
    vmp_err err = {0};
    vmp_open_opts o = {.no_env = true, .stop_timeout = 5};
    if (vmp_open(path, &o, &vp, &err) != 0)
        fail_msg("vmp_open: %s", err.msg);
    free(path);
    assert_int_equal(vmp_config_of(vp)->n_pools, 2);

    char *vm = NULL;
    assert_int_equal(vmp_checkout(vp, "emb", NULL, &vm, &err), VMP_ESTATE); /* not started */
    if (vmp_start(vp, &err) != 0)
        fail_msg("vmp_start: %s", err.msg);
    assert_int_equal(vmp_start(vp, &err), 0); /* started already: nothing to do */

    /* the policy makes emb 3 VMs (config 2 + 1), named by it */
    if (vmp_wait_ready(vp, "emb", 3, 30, &err) != 0 || vmp_wait_ready(vp, "lp", 2, 30, &err) != 0)
        fail_msg("pools did not fill: %s", err.msg);

    assert_int_equal(vmp_checkout(vp, "e", NULL, &vm, &err), 0); /* by alias */
    assert_non_null(vm);
    assert_int_equal(strncmp(vm, "emb-", 4), 0);
    vmp_pool_counts c;
    assert_int_equal(vmp_counts(vp, "emb", &c, &err), 0);
    assert_int_equal(c.running, 1);
    assert_int_equal(vmp_return(vp, vm, &err), 0);
    assert_int_equal(vmp_return(vp, vm, &err), VMP_ESTATE); /* returned already */
    free(vm);
    vm = NULL;

    vmp_checkout_opts co = {.token = "tok", .user = "alice", .lifetime = 2};
    assert_int_equal(vmp_checkout(vp, "lp", &co, &vm, &err), 0);
    assert_int_equal(vmp_return(vp, vm, &err), 0);
    free(vm);
    vm = NULL;

    assert_int_equal(vmp_checkout(vp, "nosuch", NULL, &vm, &err), VMP_ENOENT);
    assert_int_equal(vmp_return(vp, "nosuch-vm", &err), VMP_ENOENT);
    assert_int_equal(vmp_counts(vp, "nosuch", &c, &err), VMP_ENOENT);

    /* the returned VMs are destroyed and replaced */
    assert_int_equal(vmp_wait_ready(vp, "emb", 3, 30, &err), 0);
    assert_int_equal(vmp_wait_ready(vp, "lp", 2, 30, &err), 0);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(vmp_counts(vp, "emb", &c, &err), 0);
        if (c.running == 0 && c.completed == 0)
            break;
        usleep(50000);
    }
    assert_int_equal(c.running + c.completed, 0);

    /* an empty pool: VMP_EAGAIN */
    char *vms[4] = {NULL};
    int got = 0;
    for (int i = 0; i < 4; i++)
        if (vmp_checkout(vp, "lp", NULL, &vms[i], &err) == 0)
            got++;
    assert_true(got >= 2);
    if (got < 4) {
        char *none = NULL;
        int rc = vmp_checkout(vp, "lp", NULL, &none, &err);
        assert_true(rc == VMP_EAGAIN || rc == 0);
        free(none);
    }
    for (int i = 0; i < 4; i++)
        free(vms[i]);

    assert_int_equal(vmp_stop(vp, 5), 0);
    assert_int_equal(vmp_stop(vp, 5), 0);
    assert_int_equal(vmp_checkout(vp, "emb", NULL, &vm, &err), VMP_ESTATE);
    vmp_close(vp);
    vmp_close(NULL);
}

/* No :redis: section: vmpool runs its own redis-server under state_dir. */
static void test_own_redis(void **state)
{
    (void)state;
    NEED_REDIS(); /* redis-server is installed */
    char *redis = vmp_asprintf(":redis:\n  state_dir: %s/state\n", g_dir);
    char *path = config(redis);
    free(redis);
    vmpool *vp = NULL;
    vmp_err err = {0};
    vmp_open_opts o = {.no_env = true, .stop_timeout = 5};
    assert_int_equal(vmp_open(path, &o, &vp, &err), 0);
    free(path);
    if (vmp_start(vp, &err) != 0)
        fail_msg("vmp_start: %s", err.msg);
    assert_int_equal(vmp_wait_ready(vp, "lp", 2, 30, &err), 0);
    char *sock = vmp_asprintf("%s/state/redis.sock", g_dir);
    assert_int_equal(access(sock, F_OK), 0);
    assert_int_equal(vmp_stop(vp, 5), 0);
    assert_int_not_equal(access(sock, F_OK), 0); /* stopped with the handle */
    free(sock);
    vmp_close(vp);
}

static void test_open_errors(void **state)
{
    (void)state;
    vmpool *vp = NULL;
    vmp_err err = {0};
    vmp_open_opts o = {.no_env = true};
    assert_int_equal(vmp_open("/nonexistent/vmpool.yaml", &o, &vp, &err), VMP_ENOENT);
    assert_null(vp);
    char *lua = write_file("bad.lua", "vmpool.pool{name = 'x', size = -3}\n");
    char *yaml = vmp_asprintf(":config:\n  lua: %s\n", lua);
    char *path = write_file("bad.yaml", yaml);
    assert_int_equal(vmp_open(path, &o, &vp, &err), VMP_EINVAL);
    assert_non_null(strstr(err.msg, "bad.lua:1:"));
    assert_non_null(strstr(err.msg, "size"));
    free(lua);
    free(yaml);
    free(path);
    /* --lua files come after the configuration's own */
    char *extra = write_file("extra.lua", "vmpool.pool{name = 'from-extra', size = 0}\n");
    const char *files[] = {extra, NULL};
    o.lua_files = files;
    path = write_file("plain.yaml", ":pools: []\n");
    assert_int_equal(vmp_open(path, &o, &vp, &err), 0);
    assert_non_null(vmp_config_pool(vmp_config_of(vp), "from-extra"));
    vmp_close(vp);
    free(extra);
    free(path);
}

static int group_setup(void **state)
{
    (void)state;
    char msg[256];
    vmp_log_set_level(getenv("VMP_TEST_LOG") ? VMP_LOG_DEBUG : VMP_LOG_OFF);
    snprintf(g_dir, sizeof g_dir, "/tmp/vmp-embed-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    g_redis = vmp_test_redis_start(false, msg, sizeof msg);
    if (!g_redis)
        fprintf(stderr, "redis-server unavailable, tests skipped: %s\n", msg);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    vmp_test_redis_stop(g_redis);
    vmp_lua_provider_shutdown();
    char *cmd = vmp_asprintf("rm -rf '%s'", g_dir);
    int rc = system(cmd);
    free(cmd);
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkout_return),
        cmocka_unit_test(test_own_redis),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
