/* Tests for src/lua: configuration in Lua (the loader hook) and the Lua
 * provider adapter (a Lua table behind vmp_provider_ops). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "lua/script.h"
#include "lua/script_internal.h"
#include "mock_provider.h"
#include "provider.h"
#include "util.h"

/* ---- fixture: a temporary directory with files ------------------------------------ */

typedef struct fixture {
    char dir[64];
    vmp_lua_config *lc;
    vmp_config *cfg;
    vmp_strlist errors;
    long refs_before;
} fixture;

static void write_file(fixture *f, const char *name, const char *text)
{
    char *path = vmp_asprintf("%s/%s", f->dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    free(path);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/vmp-luaprov-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->refs_before = vmp_lua_live_refs();
    vmp_err err = {0};
    if (vmp_lua_config_new(NULL, &f->lc, &err) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    vmp_config_free(f->cfg);
    vmp_lua_config_free(f->lc);
    vmp_lua_provider_shutdown();
    vmp_strlist_clear(&f->errors);
    char *cmd = vmp_asprintf("rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    assert_int_equal(vmp_lua_live_refs(), f->refs_before);
    free(f);
    return 0;
}

/* Loads config.yaml of the fixture directory through the Lua hook. */
static int load(fixture *f, const char *yaml)
{
    write_file(f, "vmpool.yaml", yaml);
    char *path = vmp_asprintf("%s/vmpool.yaml", f->dir);
    vmp_config_opts opts = {.no_env = true};
    vmp_lua_config_apply(f->lc, &opts);
    vmp_config_free(f->cfg);
    f->cfg = NULL;
    vmp_strlist_clear(&f->errors);
    vmp_err err = {0};
    int rc = vmp_config_load_file(path, &opts, &f->cfg, &f->errors, &err);
    free(path);
    return rc;
}

static bool errors_have(const fixture *f, const char *a, const char *b)
{
    for (size_t i = 0; i < f->errors.n; i++)
        if (strstr(f->errors.v[i], a) && (!b || strstr(f->errors.v[i], b)))
            return true;
    return false;
}

static void dump_errors(const fixture *f)
{
    for (size_t i = 0; i < f->errors.n; i++)
        print_message("error: %s\n", f->errors.v[i]);
}

#define assert_error(f, a, b)                                                                      \
    do {                                                                                           \
        if (!errors_have(f, a, b)) {                                                               \
            dump_errors(f);                                                                        \
            fail_msg("no error with \"%s\" %s", a, b ? b : "");                                    \
        }                                                                                          \
    } while (0)

/* ---- configuration in Lua ------------------------------------------------------------- */

static const char base_yaml[] = ":config:\n  lua: site.lua\n:providers:\n  :dummy: {}\n"
                                ":pools:\n  - name: yaml-pool\n    size: 1\n    template: t\n";

static void test_config_edits(void **state)
{
    fixture *f = *state;
    write_file(f, "site.lua",
               "for _, os in ipairs{'debian', 'ubuntu'} do\n"
               "  vmpool.pool{name = os .. '-12', size = 2, template = 'tmpl/' .. os,\n"
               "              alias = {os}}\n"
               "end\n"
               "vmpool.pool{name = 'yaml-pool', size = 4}\n" /* merged into the YAML pool */
               "vmpool.pool{name = 'gone', size = 1}\n"
               "assert(vmpool.remove_pool('gone') == true)\n"
               "assert(vmpool.remove_pool('never') == false)\n"
               "vmpool.provider_config{name = 'extra', provider_class = 'dummy', filename = 'x'}\n"
               "vmpool.provider_config('extra', {createvm_max_time = 3})\n"
               "vmpool.global{task_limit = 3, prefix = 'ci-'}\n"
               "assert(vmpool.role == 'config')\n"
               "assert(#vmpool.pools() == 3, #vmpool.pools())\n"
               "assert(vmpool.config().config.task_limit == 3)\n");
    int rc = load(f, base_yaml);
    if (rc != 0)
        dump_errors(f);
    assert_int_equal(rc, 0);
    const vmp_config *c = f->cfg;
    assert_int_equal(c->n_pools, 3);
    const vmp_pool_cfg *p = vmp_config_pool(c, "yaml-pool");
    assert_non_null(p);
    assert_int_equal(p->size, 4);
    assert_string_equal(p->template_path, "t");
    p = vmp_config_pool(c, "ubuntu-12");
    assert_non_null(p);
    assert_int_equal(p->size, 2);
    assert_string_equal(p->template_path, "tmpl/ubuntu");
    assert_int_equal(p->aliases.n, 1);
    assert_string_equal(p->aliases.v[0], "ubuntu");
    assert_null(vmp_config_pool(c, "gone"));
    const vmp_provider_cfg *pc = vmp_config_provider(c, "extra");
    assert_non_null(pc);
    assert_string_equal(pc->provider_class, "dummy");
    assert_int_equal(vmp_cfg_get_int(pc->node, "createvm_max_time", 0), 3);
    assert_string_equal(vmp_cfg_get_str(pc->node, "filename", ""), "x");
    assert_null(vmp_cfg_get(pc->node, "name"));
    assert_int_equal(c->global.task_limit, 3);
    assert_string_equal(c->global.prefix, "ci-");
    /* the nodes Lua made point at the Lua file and line */
    vmp_cfg_mark m = vmp_cfg_mark_of(vmp_cfg_get(vmp_config_pool(c, "debian-12")->node, "size"));
    assert_non_null(m.file);
    assert_non_null(strstr(m.file, "site.lua"));
    assert_int_equal(m.line, 2);
    const vmp_strlist *files = vmp_lua_config_files(f->lc);
    assert_int_equal(files->n, 1);
    assert_true(files->v[0][0] == '/');
}

static void test_config_errors(void **state)
{
    fixture *f = *state;
    /* the loader's own validation, pointing at the Lua line */
    write_file(f, "site.lua", "local x = 1\nvmpool.pool{name = 'bad', size = 'five'}\n");
    assert_int_not_equal(load(f, base_yaml), 0);
    assert_error(f, "site.lua:2:", "size");

    /* a runtime error: file, line and traceback */
    write_file(f, "site.lua",
               "local function helper()\n  error('no pools today')\nend\nhelper()\n");
    assert_int_not_equal(load(f, base_yaml), 0);
    assert_error(f, "site.lua:2: no pools today", "stack traceback");

    /* a syntax error */
    write_file(f, "site.lua", "vmpool.pool{name = }\n");
    assert_int_not_equal(load(f, base_yaml), 0);
    assert_error(f, "site.lua:1:", "unexpected symbol");

    /* bad calls */
    static const struct {
        const char *code, *want;
    } cases[] = {
        {"vmpool.pool{size = 1}", "name must be a non-empty string"},
        {"vmpool.pool{name = 'x', f = print}", "f: a function value has no configuration form"},
        {"vmpool.pool{name = 'x', tags = {1, a = 2}}", "either a list or a map"},
        {"vmpool.provider_config(5)", "bad argument"},
        {"vmpool.policy{pool_size = 5}", "pool_size must be a function"},
        {"vmpool.policy{size = function() end}", "unknown hook \"size\""},
        {"vmpool.provider('p', 5)", "impl must be a table"},
        {"vmpool.provider('a b', {})", "class name"},
        {"vmpool.provider('p', {create_vm = 1})", "create_vm must be a function"},
        {"vmpool.provider('p', {}) vmpool.provider('P', {})", "defined twice"},
        {"io.open('/etc/passwd')", "attempt to index a nil value (global 'io')"},
        {"while true do end", "instruction limit"},
    };
    for (size_t i = 0; i < VMP_ARRAY_LEN(cases); i++) {
        write_file(f, "site.lua", cases[i].code);
        assert_int_not_equal(
            load(f, ":config:\n  lua: site.lua\n  lua_instruction_limit: 100000\n"), 0);
        if (!errors_have(f, cases[i].want, "site.lua:1")) {
            dump_errors(f);
            fail_msg("case %zu (%s): no error with \"%s\"", i, cases[i].code, cases[i].want);
        }
    }

    /* a file that is not there */
    assert_int_not_equal(load(f, ":config:\n  lua: [nothere.lua]\n"), 0);
    assert_error(f, "nothere.lua", "cannot open");

    /* a pool naming a provider nobody defines */
    write_file(f, "site.lua", "vmpool.pool{name = 'p', size = 1, provider = 'nobody'}\n");
    assert_int_not_equal(load(f, ":config:\n  lua: site.lua\n"), 0);
    assert_error(f, "unknown provider \"nobody\"", NULL);

    /* sandboxed, require finds nothing next to the file */
    write_file(f, "helper.lua", "return { size = 2 }\n");
    write_file(f, "site.lua", "local h = require('helper')\n");
    assert_int_not_equal(load(f, ":config:\n  lua: site.lua\n"), 0);
    assert_error(f, "module 'helper' not found", NULL);
    /* unsandboxed on request: io is there, and modules next to the file */
    write_file(f, "site.lua",
               "assert(io.open)\n"
               "vmpool.pool{name = 'h', size = require('helper').size}\n");
    assert_int_equal(load(f, ":config:\n  lua: site.lua\n  lua_sandbox: false\n"), 0);
    assert_true(vmp_lua_config_unsandboxed(f->lc));
    assert_int_equal(vmp_config_pool(f->cfg, "h")->size, 2);
}

/* ---- the provider adapter --------------------------------------------------------------- */

static const char provider_lua[] =
    "local P = vmpool.provider('luatest', {})\n"
    "local vms = {} -- this state's own\n"
    "function P:open() self.opened = true end\n"
    "function P:vms_in_pool(pool)\n"
    "  local l = {}\n"
    "  for name in pairs(vms[pool] or {}) do l[#l + 1] = {name = name} end\n"
    "  table.sort(l, function(a, b) return a.name < b.name end)\n"
    "  return l\n"
    "end\n"
    "function P:get_vm(pool, vm)\n"
    "  local v = (vms[pool] or {})[vm]\n"
    "  if not v then return nil end\n"
    "  return {name = vm, hostname = vm, template = pool, poolname = pool, boottime = v.boot,\n"
    "          powerstate = 'PoweredOn', host = 'h1', ip = '192.0.2.7', snapshots = {'s1'}}\n"
    "end\n"
    "function P:create_vm(pool, vm)\n"
    "  if vm == 'fail' then error('clone failed on purpose') end\n"
    "  if vm == 'false' then return false end\n"
    "  if vm == 'loop' then while true do end end\n"
    "  if vm == 'slow' then vmpool.sleep(0.5) end\n"
    "  if vm == 'badanswer' then return 'yes' end\n"
    "  vms[pool] = vms[pool] or {}\n"
    "  vms[pool][vm] = {boot = 1700000000}\n"
    "  return self:get_vm(pool, vm)\n"
    "end\n"
    "function P:destroy_vm(pool, vm)\n"
    "  if vms[pool] then vms[pool][vm] = nil end\n"
    "  return true\n"
    "end\n"
    "function P:vm_ready(pool, vm) return vms[pool] ~= nil and vms[pool][vm] ~= nil end\n"
    "function P:get_vm_ip_address(pool, vm) return ('9'):rep(100) end\n"
    "function P:find_least_used_compatible_host(pool, vm)\n"
    "  return table.concat({self.name, self.class, self.config.region,\n"
    "                       tostring(self:pool_config(pool).size),\n"
    "                       table.concat(self:provided_pools(), '+'),\n"
    "                       tostring(self.opened), self:global_config().config.prefix}, ':')\n"
    "end\n"
    "function P:create_disk(pool, vm, size) return size < 100 end\n"
    "function P:purge_unconfigured_resources(allow)\n"
    "  if #allow ~= 2 then error('allowlist of ' .. #allow) end\n"
    "end\n"
    "function P:close() vmpool.log.info('closing %s', self.name) end\n";

static const char provider_yaml[] = ":config:\n  lua: [prov.lua]\n  prefix: px\n"
                                    ":providers:\n  luaprov:\n    provider_class: luatest\n"
                                    "    region: eu\n    lua_states: 2\n"
                                    "    lua_instruction_limit: 200000\n"
                                    ":pools:\n  - name: p1\n    size: 3\n    provider: luaprov\n"
                                    "  - name: p2\n    size: 1\n    provider: luaprov\n";

static vmp_provider *open_provider(fixture *f, const char *yaml)
{
    write_file(f, "prov.lua", provider_lua);
    int rc = load(f, yaml);
    if (rc != 0)
        dump_errors(f);
    assert_int_equal(rc, 0);
    vmp_err err = {0};
    assert_int_equal(vmp_lua_config_register(f->lc, &err), 0);
    assert_true(vmp_lua_provider_is_lua("luatest"));
    vmp_provider *p = NULL;
    rc = vmp_provider_open(f->cfg, "luaprov", NULL, NULL, &p, &err);
    if (rc != 0)
        fail_msg("open: %s", err.msg);
    return p;
}

static void assert_balanced(vmp_provider *p)
{
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(vmp_lua_provider_debug_top(vmp_provider_self(p), i), 0);
}

static void test_provider_calls(void **state)
{
    fixture *f = *state;
    vmp_provider *p = open_provider(f, provider_yaml);
    vmp_err err = {0};
    vmp_vm_info info;
    memset(&info, 0, sizeof info);

    assert_int_equal(vmp_provider_create_vm(p, "p1", "vm1", &info, &err), 0);
    assert_string_equal(info.name, "vm1");
    assert_string_equal(info.template_path, "p1");
    assert_string_equal(info.powerstate, "PoweredOn");
    assert_string_equal(info.ip, "192.0.2.7");
    assert_true(info.boottime == 1700000000.0);
    assert_int_equal(info.snapshots.n, 1);
    vmp_vm_info_clear(&info);

    /* lua_states = 2: the two states each hold their own table, so the VM
     * is in one of them; call until both answered (round robin) */
    int seen = 0;
    for (int i = 0; i < 4; i++) {
        bool ready = false;
        assert_int_equal(vmp_provider_vm_ready(p, "p1", "vm1", &ready, &err), 0);
        seen += ready;
    }
    assert_int_equal(seen, 2);

    /* failures */
    assert_int_equal(vmp_provider_create_vm(p, "p1", "fail", NULL, &err), VMP_EPROVIDER);
    assert_non_null(strstr(err.msg, "prov.lua:17: clone failed on purpose"));
    assert_int_equal(vmp_provider_create_vm(p, "p1", "false", NULL, &err), VMP_EFAILED);
    assert_int_equal(vmp_provider_create_vm(p, "p1", "loop", NULL, &err), VMP_ETIMEDOUT);
    assert_non_null(strstr(err.msg, "instruction limit"));
    assert_int_equal(vmp_provider_create_vm(p, "p1", "badanswer", NULL, &err), VMP_EPROVIDER);
    assert_non_null(strstr(err.msg, "create_vm returned a string"));
    assert_int_equal(vmp_provider_get_vm(p, "p1", "nope", &info, &err), VMP_ENOENT);
    vmp_vm_info_clear(&info);
    assert_int_equal(vmp_provider_create_disk(p, "p1", "vm1", 10, &err), 0);
    assert_int_equal(vmp_provider_create_disk(p, "p1", "vm1", 200, &err), VMP_EFAILED);
    char small[16];
    assert_int_not_equal(vmp_provider_get_vm_ip_address(p, "p1", "vm1", small, sizeof small, &err),
                         0);
    assert_non_null(strstr(err.msg, "longer than 15 bytes"));

    /* helpers reach the configuration */
    char host[256];
    assert_int_equal(
        vmp_provider_find_least_used_compatible_host(p, "p1", "vm1", host, sizeof host, &err), 0);
    assert_string_equal(host, "luaprov:luatest:eu:3:p1+p2:true:px");

    /* purge gets the allowlist */
    vmp_strlist allow = VMP_STRLIST_INIT;
    vmp_strlist_push(&allow, "a");
    vmp_strlist_push(&allow, "b");
    assert_int_equal(vmp_provider_purge_unconfigured_resources(p, &allow, &err), 0);
    vmp_strlist_clear(&allow);

    /* methods the class lacks are NULL ops: unsupported, or the defaults */
    assert_null(vmp_provider_ops_of(p)->migrate_vm);
    assert_null(vmp_provider_ops_of(p)->tag_vm_user);
    assert_int_equal(vmp_provider_migrate_vm(p, "p1", "vm1", &err), VMP_ENOTSUP);
    assert_int_equal(vmp_provider_tag_vm_user(p, "p1", "vm1", &err), 0);

    /* inventory, destroy */
    vmp_strlist names = VMP_STRLIST_INIT;
    for (int i = 0; i < 2; i++) /* whichever state has it */
        assert_int_equal(vmp_provider_vms_in_pool(p, "p1", &names, &err), 0);
    assert_int_equal(names.n, 1);
    assert_string_equal(names.v[0], "vm1");
    vmp_strlist_clear(&names);
    for (int i = 0; i < 2; i++)
        assert_int_equal(vmp_provider_destroy_vm(p, "p1", "vm1", &err), 0);
    assert_balanced(p);
    vmp_provider_close(p);
}

typedef struct racer {
    vmp_provider *p;
    int rc;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    vmp_err err = {0};
    r->rc = vmp_provider_create_vm(r->p, "p1", "slow", NULL, &err);
    return NULL;
}

/* Two states run two calls at once; one state runs them one after the
 * other. */
static double two_slow_calls(vmp_provider *p)
{
    pthread_t th[2];
    racer r[2] = {{p, -1}, {p, -1}};
    double t0 = vmp_monotonic();
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].rc, 0);
    }
    return vmp_monotonic() - t0;
}

static void test_provider_states(void **state)
{
    fixture *f = *state;
    vmp_provider *p = open_provider(f, provider_yaml);
    assert_true(two_slow_calls(p) < 0.95);
    assert_balanced(p);
    vmp_provider_close(p);

    char *one = strdup(provider_yaml);
    memcpy(strstr(one, "lua_states: 2"), "lua_states: 1", 13);
    p = open_provider(f, one);
    free(one);
    assert_true(two_slow_calls(p) >= 1.0);
    vmp_provider_close(p);
}

static void test_provider_open_errors(void **state)
{
    fixture *f = *state;
    vmp_provider *p = open_provider(f, provider_yaml);
    vmp_provider_close(p);
    vmp_err err = {0};

    /* a class whose open raises */
    write_file(f, "prov.lua",
               "local P = vmpool.provider('luatest', {})\n"
               "function P:open() error('cannot log in') end\n"
               "function P:create_vm() return true end\n");
    assert_int_equal(load(f, provider_yaml), 0);
    assert_int_equal(vmp_lua_config_register(f->lc, &err), 0);
    p = NULL;
    assert_int_not_equal(vmp_provider_open(f->cfg, "luaprov", NULL, NULL, &p, &err), 0);
    assert_null(p);
    assert_non_null(strstr(err.msg, "prov.lua:2: cannot log in"));

    /* bad lua_states */
    write_file(f, "prov.lua", provider_lua);
    char *bad = strdup(provider_yaml);
    memcpy(strstr(bad, "lua_states: 2"), "lua_states: 0", 13);
    assert_int_equal(load(f, bad), 0);
    free(bad);
    assert_int_equal(vmp_lua_config_register(f->lc, &err), 0);
    assert_int_not_equal(vmp_provider_open(f->cfg, "luaprov", NULL, NULL, &p, &err), 0);
    assert_non_null(strstr(err.msg, "lua_states must be between 1 and 64"));

    /* a Lua class may not take a built-in name */
    assert_int_equal(vmp_mock_register(&err), 0);
    write_file(f, "prov.lua", "vmpool.provider('mock', {create_vm = function() end})\n");
    assert_int_equal(load(f, ":config:\n  lua: prov.lua\n"), 0);
    assert_int_equal(vmp_lua_config_register(f->lc, &err), VMP_EEXIST);
    assert_non_null(strstr(err.msg, "another name"));
}

static void test_provider_reregister(void **state)
{
    fixture *f = *state;
    vmp_provider *p = open_provider(f, provider_yaml);
    const vmp_provider_ops *first = vmp_provider_class_find("luatest");
    vmp_err err = {0};
    /* same files and methods: the same class */
    assert_int_equal(load(f, provider_yaml), 0);
    assert_int_equal(vmp_lua_config_register(f->lc, &err), 0);
    assert_ptr_equal(vmp_provider_class_find("luatest"), first);
    /* a new method: a new version for new instances; the open one keeps working */
    char *more = vmp_asprintf("%sfunction P:migrate_vm() return true end\n", provider_lua);
    write_file(f, "prov.lua", more);
    free(more);
    assert_int_equal(load(f, provider_yaml), 0);
    assert_int_equal(vmp_lua_config_register(f->lc, &err), 0);
    const vmp_provider_ops *second = vmp_provider_class_find("luatest");
    assert_ptr_not_equal(second, first);
    assert_non_null(second->migrate_vm);
    assert_int_equal(vmp_provider_create_vm(p, "p1", "vm2", NULL, &err), 0);
    vmp_provider *q = NULL;
    assert_int_equal(vmp_provider_open(f->cfg, "luaprov", NULL, NULL, &q, &err), 0);
    assert_int_equal(vmp_provider_migrate_vm(q, "p1", "vm2", &err), 0);
    vmp_provider_close(q);
    vmp_provider_close(p);
}

int main(void)
{
    vmp_log_set_level(VMP_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_edits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_states, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_reregister, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
