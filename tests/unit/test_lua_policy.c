/* Tests for src/lua/policy.c: the engine's policy hooks answered by Lua. */
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
#include "util.h"

typedef struct fixture {
    char dir[64];
    vmp_lua_config *lc;
    vmp_config *cfg;
    vmp_lua_policy *pol;
    vmp_engine_hooks hooks;
    long refs_before;
    int warnings;
    char last_warning[2048];
} fixture;

static void capture(vmp_log_level level, const char *subsys, const char *pool, const char *vm,
                    const char *msg, void *ud)
{
    fixture *f = ud;
    if (level == VMP_LOG_WARN && strcmp(subsys, "lua.policy") == 0) {
        f->warnings++;
        snprintf(f->last_warning, sizeof f->last_warning, "%s", msg);
    }
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/vmp-luapol-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->refs_before = vmp_lua_live_refs();
    vmp_err err = {0};
    if (vmp_lua_config_new(NULL, &f->lc, &err) != 0)
        return -1;
    vmp_log_set_callback(capture, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    vmp_log_set_callback(NULL, NULL);
    vmp_lua_policy_free(f->pol);
    vmp_config_free(f->cfg);
    vmp_lua_config_free(f->lc);
    char *cmd = vmp_asprintf("rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    assert_int_equal(vmp_lua_live_refs(), f->refs_before);
    free(f);
    return 0;
}

static void write_file(fixture *f, const char *name, const char *text)
{
    char *path = vmp_asprintf("%s/%s", f->dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    free(path);
}

static const char yaml[] = ":config:\n  lua: policy.lua\n  lua_instruction_limit: 200000\n"
                           ":pools:\n  - name: a\n    size: 2\n  - name: b\n    size: 3\n";

/* Loads the configuration and makes the policy from policy.lua. */
static void make_policy(fixture *f, const char *lua)
{
    write_file(f, "policy.lua", lua);
    write_file(f, "vmpool.yaml", yaml);
    char *path = vmp_asprintf("%s/vmpool.yaml", f->dir);
    vmp_config_opts opts = {.no_env = true};
    vmp_lua_config_apply(f->lc, &opts);
    vmp_err err = {0};
    vmp_strlist errors = VMP_STRLIST_INIT;
    int rc = vmp_config_load_file(path, &opts, &f->cfg, &errors, &err);
    for (size_t i = 0; i < errors.n; i++)
        print_message("%s\n", errors.v[i]);
    vmp_strlist_clear(&errors);
    free(path);
    assert_int_equal(rc, 0);
    rc = vmp_lua_policy_new(f->cfg, vmp_lua_config_files(f->lc), false, NULL, &f->pol, &err);
    if (rc != 0)
        fail_msg("policy: %s", err.msg);
    vmp_lua_policy_hooks(f->pol, &f->hooks);
    assert_ptr_equal(f->hooks.ud, f->pol);
}

static const vmp_engine_pool_stats stats = {.ready = 1,
                                            .pending = 2,
                                            .running = 3,
                                            .completed = 0,
                                            .size = 4,
                                            .config_size = 2,
                                            .checkouts_10m = 7,
                                            .checkouts_1h = 30,
                                            .last_checkout = 1000.5};

static void test_pool_size(void **state)
{
    fixture *f = *state;
    make_policy(f, "vmpool.policy{pools = 'a', pool_size = function(pool, s, now)\n"
                   "  assert(pool == 'a' and s.ready == 1 and s.checkouts_10m == 7)\n"
                   "  assert(s.last_checkout == 1000.5 and now == 5000)\n"
                   "  assert(vmpool.config().pools[1].name == 'a')\n"
                   "  return s.config_size + s.checkouts_10m\n"
                   "end}\n");
    assert_true(vmp_lua_policy_any(f->pol));
    assert_non_null(f->hooks.pool_size);
    assert_null(f->hooks.vm_name); /* hooks nobody defines stay with the engine */
    assert_null(f->hooks.on_event);
    vmp_err err = {0};
    long long size = -1;
    assert_int_equal(f->hooks.pool_size(f->hooks.ud, "a", &stats, 5000, &size, &err), 0);
    assert_int_equal(size, 9);
    /* pool b: no policy covers it, the size in force stands */
    assert_int_equal(f->hooks.pool_size(f->hooks.ud, "b", &stats, 5000, &size, &err), 0);
    assert_int_equal(size, 4);
    assert_int_equal(f->warnings, 0);
}

static void test_bad_hooks(void **state)
{
    fixture *f = *state;
    make_policy(f, "local n = 0\n"
                   "vmpool.policy{pool_size = function(pool)\n"
                   "  if pool == 'raise' then error('sizing service down') end\n"
                   "  if pool == 'loop' then while true do end end\n"
                   "  if pool == 'neg' then return -1 end\n"
                   "  if pool == 'frac' then return 2.5 end\n"
                   "  if pool == 'str' then return 'lots' end\n"
                   "  if pool == 'nil' then return nil end\n"
                   "  return 5\n"
                   "end}\n");
    static const struct {
        const char *pool;
        int rc;
        const char *warning;
    } cases[] = {
        {"raise", VMP_EFAILED, "policy.lua:3: sizing service down\nstack traceback:"},
        {"loop", VMP_ETIMEDOUT, "policy.lua:4: instruction limit exceeded"},
        {"neg", VMP_EINVAL, "returned -1; expected a non-negative integer"},
        {"frac", VMP_EINVAL, "returned 2.5"},
        {"str", VMP_EINVAL, "returned \"lots\""},
        {"nil", 0, NULL},
        {"ok", 0, NULL},
    };
    for (size_t i = 0; i < VMP_ARRAY_LEN(cases); i++) {
        vmp_err err = {0};
        long long size = -1;
        f->warnings = 0;
        int rc = f->hooks.pool_size(f->hooks.ud, cases[i].pool, &stats, 0, &size, &err);
        assert_int_equal(rc, cases[i].rc);
        if (cases[i].warning) {
            assert_int_equal(f->warnings, 1);
            if (!strstr(f->last_warning, cases[i].warning))
                fail_msg("%s: warning \"%s\" lacks \"%s\"", cases[i].pool, f->last_warning,
                         cases[i].warning);
            assert_true(err.msg[0] != 0);
        } else {
            assert_int_equal(f->warnings, 0);
            assert_int_equal(size, strcmp(cases[i].pool, "ok") == 0 ? 5 : 4);
        }
    }
    /* a raise was logged with its traceback */
    f->warnings = 0;
    vmp_err err = {0};
    long long size;
    assert_int_equal(f->hooks.pool_size(f->hooks.ud, "loop", &stats, 0, &size, &err),
                     VMP_ETIMEDOUT);
    assert_int_equal(f->warnings, 0); /* the same failure again: debug level for a while */
    assert_int_equal(f->hooks.pool_size(f->hooks.ud, "raise", &stats, 0, &size, &err), VMP_EFAILED);
    assert_int_equal(f->warnings, 0);
    /* and the state still works afterwards */
    assert_int_equal(f->hooks.pool_size(f->hooks.ud, "ok", &stats, 0, &size, &err), 0);
    assert_int_equal(size, 5);
}

static void test_other_hooks(void **state)
{
    fixture *f = *state;
    make_policy(f, "events = {}\n"
                   "vmpool.policy{\n"
                   "  vm_name = function(pool)\n"
                   "    if pool == 'bad' then return 'no spaces allowed' end\n"
                   "    if pool == 'b' then return nil end\n"
                   "    return 'ci-' .. pool .. '-' .. #events\n"
                   "  end,\n"
                   "  choose_host = function(pool, vm, hosts)\n"
                   "    if pool == 'b' then return nil end\n"
                   "    return hosts.current == 'h1' and 'h9' or hosts.proposed\n"
                   "  end,\n"
                   "  lifetime = function(pool, vm, req)\n"
                   "    if req.user == 'ops' then return 72 end\n"
                   "    if req.user == 'zero' then return 0 end\n"
                   "    return req.lifetime\n"
                   "  end,\n"
                   "  on_event = function(ev)\n"
                   "    events[#events + 1] = ev\n"
                   "    if ev.kind == 'destroy' then error('listener failed') end\n"
                   "  end,\n"
                   "}\n");
    vmp_err err = {0};
    char buf[64];
    /* events first: vm_name reports how many it has seen */
    vmp_engine_event ev = {.kind = VMP_ENGINE_EV_CLONE_FAILED,
                           .pool = "a",
                           .vm = "vm1",
                           .time = 10,
                           .duration = 1.5,
                           .error = "no capacity"};
    f->hooks.on_event(f->hooks.ud, &ev);
    ev.kind = VMP_ENGINE_EV_DESTROY;
    f->warnings = 0;
    f->hooks.on_event(f->hooks.ud, &ev); /* raises: logged, nothing else */
    assert_int_equal(f->warnings, 1);
    assert_non_null(strstr(f->last_warning, "listener failed"));

    assert_int_equal(f->hooks.vm_name(f->hooks.ud, "a", buf, sizeof buf, &err), 0);
    assert_string_equal(buf, "ci-a-2");
    assert_int_equal(f->hooks.vm_name(f->hooks.ud, "bad", buf, sizeof buf, &err), VMP_EINVAL);
    /* no answer: "no opinion", so the engine names the VM itself, quietly */
    f->warnings = 0;
    assert_int_equal(f->hooks.vm_name(f->hooks.ud, "b", buf, sizeof buf, &err), VMP_ENOTSUP);
    assert_int_equal(f->warnings, 0);
    /* too small a buffer */
    char tiny[4];
    assert_int_equal(f->hooks.vm_name(f->hooks.ud, "a", tiny, sizeof tiny, &err), VMP_EINVAL);

    assert_int_equal(
        f->hooks.choose_host(f->hooks.ud, "a", "vm1", "h1", "h2", buf, sizeof buf, &err), 0);
    assert_string_equal(buf, "h9");
    assert_int_equal(
        f->hooks.choose_host(f->hooks.ud, "a", "vm1", "h3", "h2", buf, sizeof buf, &err), 0);
    assert_string_equal(buf, "h2");
    assert_int_equal(
        f->hooks.choose_host(f->hooks.ud, "b", "vm1", "h3", "h4", buf, sizeof buf, &err), 0);
    assert_string_equal(buf, "h4");

    long long hours = 0;
    assert_int_equal(f->hooks.lifetime(f->hooks.ud, "a", "vm1", 2, "ops", &hours, &err), 0);
    assert_int_equal(hours, 72);
    assert_int_equal(f->hooks.lifetime(f->hooks.ud, "a", "vm1", 2, "dev", &hours, &err), 0);
    assert_int_equal(hours, 2);
    assert_int_equal(f->hooks.lifetime(f->hooks.ud, "a", "vm1", -1, NULL, &hours, &err), 0);
    assert_int_equal(hours, -1); /* no lifetime and no answer: unchanged */
    assert_int_equal(f->hooks.lifetime(f->hooks.ud, "a", "vm1", 2, "zero", &hours, &err),
                     VMP_EINVAL);
}

static void test_reload(void **state)
{
    fixture *f = *state;
    make_policy(f, "vmpool.policy{pool_size = function() return 1 end}\n");
    vmp_err err = {0};
    long long size;
    assert_int_equal(f->hooks.pool_size(f->hooks.ud, "a", &stats, 0, &size, &err), 0);
    assert_int_equal(size, 1);

    /* a new version of the file; lifetime appears (only after a restart) */
    write_file(f, "policy.lua",
               "vmpool.policy{pool_size = function() return 8 end,\n"
               "  lifetime = function() return 1 end}\n");
    f->warnings = 0;
    assert_int_equal(
        vmp_lua_policy_reload(f->pol, f->cfg, vmp_lua_config_files(f->lc), false, &err), 0);
    assert_int_equal(f->warnings, 1);
    assert_non_null(strstr(f->last_warning, "lifetime hook was not defined at start"));
    assert_int_equal(f->hooks.pool_size(f->hooks.ud, "a", &stats, 0, &size, &err), 0);
    assert_int_equal(size, 8);

    /* a broken file: the old state stays */
    write_file(f, "policy.lua", "vmpool.policy{pool_size = 3}\n");
    assert_int_not_equal(
        vmp_lua_policy_reload(f->pol, f->cfg, vmp_lua_config_files(f->lc), false, &err), 0);
    assert_non_null(strstr(err.msg, "pool_size must be a function"));
    assert_non_null(strstr(f->last_warning, "policy.lua:1:"));
    assert_int_equal(f->hooks.pool_size(f->hooks.ud, "a", &stats, 0, &size, &err), 0);
    assert_int_equal(size, 8);

    /* hook removed: built-in answer, quietly */
    write_file(f, "policy.lua", "-- nothing\n");
    assert_int_equal(
        vmp_lua_policy_reload(f->pol, f->cfg, vmp_lua_config_files(f->lc), false, &err), 0);
    f->warnings = 0;
    assert_int_equal(f->hooks.pool_size(f->hooks.ud, "a", &stats, 0, &size, &err), 0);
    assert_int_equal(size, 4);
    assert_int_equal(f->warnings, 0);
}

static void test_no_files(void **state)
{
    (void)state;
    vmp_lua_policy *p = NULL;
    vmp_err err = {0};
    assert_int_equal(vmp_lua_policy_new(NULL, NULL, false, NULL, &p, &err), 0);
    assert_false(vmp_lua_policy_any(p));
    vmp_engine_hooks h;
    vmp_lua_policy_hooks(p, &h);
    assert_null(h.pool_size);
    assert_null(h.on_event);
    vmp_lua_policy_free(p);
    vmp_lua_policy_free(NULL);
}

int main(void)
{
    vmp_log_set_level(VMP_LOG_INFO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pool_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test(test_no_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
