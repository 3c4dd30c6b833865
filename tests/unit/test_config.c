/* Tests for the configuration loader (src/config*.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "config_node.h"
#include "log.h"
#include "util.h"

/* ---- helpers ------------------------------------------------------------- */

static const vmp_config_opts no_env = {.no_env = true};

/* Log lines at WARN seen through the log callback. */
static vmp_strlist logged_warnings;

static void capture_log(vmp_log_level level, const char *subsys, const char *pool, const char *vm,
                        const char *msg, void *ud)
{
    (void)pool, (void)vm, (void)ud;
    if (level == VMP_LOG_WARN && strcmp(subsys, "config") == 0)
        vmp_strlist_push(&logged_warnings, msg);
}

static int setup(void **state)
{
    (void)state;
    vmp_strlist_clear(&logged_warnings);
    vmp_log_set_callback(capture_log, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    vmp_log_set_callback(NULL, NULL);
    vmp_strlist_clear(&logged_warnings);
    return 0;
}

/* vmpooler's own files: the shared reference copy, else our fixtures. */
static const char *ref_dir(void)
{
    struct stat st;
    if (stat(VMP_REFERENCE_CONFIGS_DIR "/vmpooler-3.9.1.yaml.example", &st) == 0)
        return VMP_REFERENCE_CONFIGS_DIR;
    return VMP_FIXTURES_DIR "/config/vmpooler";
}

static void print_errors(const vmp_strlist *errors)
{
    for (size_t i = 0; i < errors->n; i++)
        print_message("  error: %s\n", errors->v[i]);
}

static vmp_config *load_str_opts(const char *yaml, const vmp_config_opts *opts)
{
    vmp_config *cfg = NULL;
    vmp_strlist errors = VMP_STRLIST_INIT;
    vmp_err err = {0};
    int rc = vmp_config_load_string(yaml, "test.yaml", opts, &cfg, &errors, &err);
    if (rc != 0)
        print_errors(&errors);
    assert_int_equal(rc, 0);
    assert_int_equal(errors.n, 0);
    assert_non_null(cfg);
    vmp_strlist_clear(&errors);
    return cfg;
}

static vmp_config *load_str(const char *yaml) { return load_str_opts(yaml, &no_env); }

static vmp_config *load_ref(const char *file)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", ref_dir(), file);
    vmp_config *cfg = NULL;
    vmp_strlist errors = VMP_STRLIST_INIT;
    vmp_err err = {0};
    int rc = vmp_config_load_file(path, &no_env, &cfg, &errors, &err);
    if (rc != 0)
        print_errors(&errors);
    assert_int_equal(rc, 0);
    assert_non_null(cfg);
    assert_string_equal(cfg->path, path);
    vmp_strlist_clear(&errors);
    return cfg;
}

static void assert_list(const vmp_strlist *l, const char *const *want)
{
    size_t n = 0;
    while (want[n])
        n++;
    if (l->n != n) {
        for (size_t i = 0; i < l->n; i++)
            print_message("  got: %s\n", l->v[i]);
    }
    assert_int_equal(l->n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(l->v[i], want[i]);
}

#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE ((const char *const[]){NULL})

/* The `warning` list equals want, and each was logged at WARN once. */
static void assert_warnings(const vmp_config *cfg, const char *const *want)
{
    assert_list(&cfg->warnings, want);
    for (size_t i = 0; want[i]; i++)
        assert_true(vmp_strlist_contains(&logged_warnings, want[i]));
}

static const vmp_cfg_node *path_get(const vmp_cfg_node *n, const char *a, const char *b,
                                    const char *c)
{
    n = vmp_cfg_get(n, a);
    if (b)
        n = vmp_cfg_get(n, b);
    if (c)
        n = vmp_cfg_get(n, c);
    return n;
}

static long key_index(const vmp_cfg_node *map, const char *key)
{
    for (size_t i = 0; i < vmp_cfg_len(map); i++)
        if (strcmp(vmp_cfg_key_at(map, i), key) == 0)
            return (long)i;
    return -1;
}

/* A scratch directory for files; removed by rm_tmpdir. */
static void make_tmpdir(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/vmp-test-config-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void write_file(const char *dir, const char *name, const char *text, char *path, size_t n)
{
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void rm_tmpdir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[PATH_MAX];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* ---- vmpooler's own configuration files ----------------------------------- */

static void assert_debian_pools(const vmp_config *cfg, const char *provider)
{
    assert_int_equal(cfg->n_pools, 2);
    const vmp_pool_cfg *p = &cfg->pools[0];
    assert_string_equal(p->name, "debian-7-i386");
    assert_int_equal(p->aliases.n, 1);
    assert_string_equal(p->aliases.v[0], "debian-7-32");
    assert_true(p->alias_is_list);
    assert_string_equal(p->template_path, "Templates/debian-7-i386");
    assert_string_equal(p->folder, "Pooled VMs/debian-7-i386");
    assert_string_equal(p->datastore, "vmstorage");
    assert_int_equal(p->size, 5);
    assert_int_equal(p->timeout, 15);
    assert_int_equal(p->ready_ttl, 1440);
    assert_true(p->ready_ttl_set);
    assert_string_equal(p->provider, provider);
    p = &cfg->pools[1];
    assert_string_equal(p->name, "debian-7-x86_64");
    assert_int_equal(p->aliases.n, 2);
    assert_string_equal(p->aliases.v[0], "debian-7-64");
    assert_string_equal(p->aliases.v[1], "debian-7-amd64");
    assert_string_equal(p->template_path, "Templates/debian-7-x86_64");
    assert_int_equal(p->size, 5);
    assert_ptr_equal(vmp_config_pool(cfg, "debian-7-x86_64"), p);
    assert_int_equal(vmp_config_pool_index(cfg, "debian-7-x86_64"), 1);
    assert_null(vmp_config_pool(cfg, "debian-7-64"));
}

static void assert_old_config_section(const vmp_config *cfg, long long vm_checktime)
{
    const vmp_global_cfg *g = &cfg->global;
    assert_string_equal(g->site_name, "vmpooler");
    assert_string_equal(g->logfile, "/var/log/vmpooler.log");
    assert_int_equal(g->task_limit, 10);
    assert_int_equal(g->timeout, 15);
    assert_int_equal(g->vm_checktime, vm_checktime);
    assert_int_equal(g->vm_lifetime, 12);
    assert_int_equal(g->vm_lifetime_auth, 24);
    assert_true(g->allowed_tags_set);
    assert_int_equal(g->allowed_tags.n, 2);
    assert_string_equal(g->allowed_tags.v[0], "created_by");
    assert_string_equal(g->allowed_tags.v[1], "project");
    assert_string_equal(g->prefix, "poolvm-");
}

static void assert_company_sections(const vmp_config *cfg)
{
    assert_string_equal(cfg->redis.server, "redis.company.com");
    assert_int_equal(cfg->redis.port, 6379);
    assert_int_equal(cfg->redis.data_ttl, 168);
    assert_string_equal(cfg->metrics.kind, "statsd");
    assert_string_equal(cfg->metrics.server, "statsd.company.com");
    assert_int_equal(cfg->metrics.port, 8125);
    assert_string_equal(cfg->metrics.prefix, "vmpooler");
    assert_string_equal(cfg->graphs.server, "graphite.company.com");
    assert_string_equal(cfg->auth.provider, "ldap");
    assert_string_equal(cfg->auth.ldap_host, "ldap.company.com");
    assert_int_equal(cfg->auth.ldap_port, 389);
    assert_int_equal(cfg->auth.ldap_base.n, 1);
    assert_string_equal(cfg->auth.ldap_base.v[0], "ou=users,dc=company,dc=com");
    assert_string_equal(cfg->auth.ldap_user_object.v[0], "uid");
    assert_string_equal(vmp_cfg_get_str(cfg->tagfilter, "url", NULL), "(.*)\\/");
    assert_string_equal(cfg->global.domain, "company.com");
    /* the legacy domain reaches the pools (there is no :dns_configs:) */
    assert_string_equal(cfg->pools[0].domain, "company.com");
}

static void test_ref_2017(void **state)
{
    (void)state;
    vmp_config *cfg = load_ref("vmpooler-2017-05.yaml.example");
    assert_debian_pools(cfg, "vsphere");
    assert_old_config_section(cfg, 15);
    assert_company_sections(cfg);
    assert_int_equal(cfg->n_providers, 2);
    const vmp_provider_cfg *vs = vmp_config_provider(cfg, "vsphere");
    assert_non_null(vs);
    assert_string_equal(vs->provider_class, "vsphere");
    assert_string_equal(vmp_cfg_get_str(vs->node, "server", NULL), "vsphere.company.com");
    assert_string_equal(vmp_cfg_get_str(vs->node, "username", NULL), "vmpooler");
    assert_string_equal(vmp_cfg_get_str(vs->node, "password", NULL), "swimsw1msw!m");
    const vmp_provider_cfg *dummy = vmp_config_provider(cfg, "dummy");
    assert_string_equal(vmp_cfg_get_str(dummy->node, "filename", NULL), "/tmp/dummy-backing.yaml");
    assert_false(cfg->global.experimental_features);
    char want[PATH_MAX + 200];
    snprintf(want, sizeof want,
             "%s/vmpooler-2017-05.yaml.example:390:3: config.domain: removed in vmpooler 3 (use "
             ":dns_configs:); still honoured for older configurations",
             ref_dir());
    assert_warnings(cfg, LIST(want));
    vmp_config_free(cfg);
}

static void test_ref_0_1_0(void **state)
{
    (void)state;
    vmp_config *cfg = load_ref("vmpooler-0.1.0.yaml.example");
    assert_debian_pools(cfg, "vsphere");
    assert_old_config_section(cfg, 15);
    assert_company_sections(cfg);
    assert_true(cfg->global.experimental_features);
    assert_int_equal(cfg->n_providers, 4);
    const char *names[] = {"vsphere-pdx", "vsphere-bfs", "vsphere", "dummy"};
    const char *classes[] = {"vsphere", "vsphere", "vsphere", "dummy"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(cfg->providers[i].name, names[i]);
        assert_string_equal(cfg->providers[i].provider_class, classes[i]);
    }
    assert_string_equal(vmp_cfg_get_str(cfg->providers[1].node, "server", NULL),
                        "vsphere.bfs.company.com");
    assert_int_equal(cfg->warnings.n, 1);
    assert_non_null(strstr(cfg->warnings.v[0], "vmpooler-0.1.0.yaml.example:464:3: config.domain"));
    vmp_config_free(cfg);
}

static void test_ref_3_9_1_example(void **state)
{
    (void)state;
    vmp_config *cfg = load_ref("vmpooler-3.9.1.yaml.example");
    assert_debian_pools(cfg, "vsphere");
    assert_old_config_section(cfg, 1);
    assert_warnings(cfg, NONE);
    assert_int_equal(cfg->pools[0].timeout_notification, 5);
    assert_int_equal(cfg->pools[0].create_linked_clone, 1);
    assert_int_equal(cfg->pools[1].create_linked_clone, 0);
    assert_string_equal(cfg->pools[1].snapshot_mainMem_ioBlockPages, "2048");
    assert_string_equal(cfg->pools[1].snapshot_mainMem_iowait, "0");
    assert_null(cfg->pools[0].snapshot_mainMem_iowait);
    assert_null(cfg->pools[0].domain);
    assert_string_equal(cfg->redis.server, "redis.example.com");
    assert_string_equal(cfg->metrics.kind, "statsd");
    assert_string_equal(cfg->metrics.server, "statsd.example.com");
    assert_string_equal(cfg->graphs.server, "graphite.example.com");
    assert_string_equal(cfg->metrics.prometheus_prefix, "vmpooler");
    assert_string_equal(cfg->metrics.prometheus_endpoint, "/prometheus");
    assert_true(cfg->global.experimental_features);
    assert_int_equal(cfg->global.max_vm_retries, 3);
    assert_int_equal(cfg->global.timeout_notification, 5);
    assert_null(cfg->global.domain);
    assert_int_equal(vmp_cfg_get_int(cfg->global.backend_weight, "backend1", -1), 60);
    assert_int_equal(vmp_cfg_get_int(cfg->global.backend_weight, "backend2", -1), 40);
    assert_int_equal(cfg->n_providers, 4);
    assert_string_equal(vmp_config_provider(cfg, "vsphere-pdx")->provider_class, "vsphere");
    /* LDAP with nested symbol keys and a symbol value */
    assert_string_equal(cfg->auth.provider, "ldap");
    assert_int_equal(cfg->auth.ldap_port, 636);
    const vmp_cfg_node *enc = vmp_cfg_get(cfg->auth.ldap, "encryption");
    const vmp_cfg_node *method = vmp_cfg_get(enc, "method");
    assert_string_equal(vmp_cfg_scalar(method), "simple_tls");
    assert_true(vmp_cfg_scalar_is_symbol(method));
    assert_true(vmp_cfg_key_is_symbol(enc, (size_t)key_index(enc, "method")));
    assert_string_equal(vmp_cfg_get_str(vmp_cfg_get(enc, "tls_options"), "ssl_version", NULL),
                        "TLSv1_2");
    assert_string_equal(vmp_cfg_get_str(vmp_cfg_get(cfg->dns_configs, "example"), "domain", NULL),
                        "example.com");
    /* top-level keys are symbols, keys inside sections are not */
    assert_true(vmp_cfg_key_is_symbol(cfg->root, (size_t)key_index(cfg->root, "pools")));
    assert_false(
        vmp_cfg_key_is_symbol(cfg->global.node, (size_t)key_index(cfg->global.node, "task_limit")));
    vmp_config_free(cfg);
}

static void test_ref_dummy_example(void **state)
{
    (void)state;
    vmp_config *cfg = load_ref("vmpooler-3.9.1.yaml.dummy-example");
    assert_debian_pools(cfg, "dummy");
    assert_string_equal(cfg->redis.server, "localhost");
    assert_string_equal(cfg->auth.provider, "dummy");
    assert_null(cfg->metrics.kind);
    assert_string_equal(cfg->pools[0].dns_plugin, "example");
    assert_string_equal(cfg->pools[0].domain, "example.com");
    assert_string_equal(cfg->pools[1].domain, "example.com");
    assert_int_equal(cfg->n_providers, 1);
    assert_string_equal(vmp_cfg_get_str(cfg->providers[0].node, "filename", NULL),
                        "/tmp/dummy-backing.yaml");
    /* dummy authentication outside debug mode is accepted with a warning */
    assert_false(cfg->debug);
    assert_int_equal(cfg->warnings.n, 1);
    assert_non_null(strstr(cfg->warnings.v[0], ".yaml.dummy-example:16:3: auth.provider: dummy "
                                               "authentication"));
    vmp_config_free(cfg);
}

static void test_ref_aliased_pools(void **state)
{
    (void)state;
    vmp_config *cfg = load_ref("vmpooler-3.9.1.aliasedpools.yaml");
    assert_int_equal(cfg->n_pools, 5);
    const vmp_pool_cfg *str = vmp_config_pool(cfg, "debian-7-i386-stringalias");
    assert_non_null(str);
    assert_false(str->alias_is_list);
    assert_int_equal(str->aliases.n, 1);
    assert_string_equal(str->aliases.v[0], "debian-7-32-stringalias");
    assert_int_equal(vmp_config_pool(cfg, "debian-7-i386-noalias")->aliases.n, 0);
    assert_string_equal(vmp_config_pool(cfg, "debian-7-x86_64-alias-otherpool-extended")->folder,
                        "Other Pooled VMs/debian-7-x86_64");

    vmp_strlist out = VMP_STRLIST_INIT;
    /* a pool name that is also another pool's alias resolves to both */
    assert_int_equal(vmp_config_resolve_alias(cfg, "debian-7-x86_64", &out), 2);
    assert_list(&out, LIST("debian-7-x86_64", "debian-7-x86_64-alias-otherpool-extended"));
    vmp_strlist_clear(&out);
    assert_int_equal(vmp_config_resolve_alias(cfg, "debian-7-32-stringalias", &out), 1);
    assert_list(&out, LIST("debian-7-i386-stringalias"));
    vmp_strlist_clear(&out);
    assert_int_equal(vmp_config_resolve_alias(cfg, "debian-7-amd64", &out), 1);
    assert_list(&out, LIST("debian-7-x86_64"));
    vmp_strlist_clear(&out);
    assert_int_equal(vmp_config_resolve_alias(cfg, "debian-7-32", NULL), 1);
    assert_int_equal(vmp_config_resolve_alias(cfg, "centos-7", &out), 0);
    assert_int_equal(out.n, 0);
    for (size_t i = 0; i < cfg->n_pools; i++) {
        assert_int_equal(cfg->pools[i].ready_ttl, 1440);
        assert_int_equal(cfg->pools[i].timeout_notification, 5);
        assert_string_equal(cfg->pools[i].domain, "example.com");
    }
    vmp_config_free(cfg);
}

static void test_ref_spec_fixtures(void **state)
{
    (void)state;
    const char *files[] = {"vmpooler-3.9.1-spec-fixture.yaml", "vmpooler-3.9.1-spec-fixture2.yaml"};
    const char *names[][2] = {{"pool01", "pool02"}, {"pool03", "pool04"}};
    for (size_t f = 0; f < 2; f++) {
        vmp_config *cfg = load_ref(files[f]);
        assert_int_equal(cfg->n_pools, 2);
        for (size_t i = 0; i < 2; i++) {
            const vmp_pool_cfg *p = &cfg->pools[i];
            assert_string_equal(p->name, names[f][i]);
            assert_int_equal(p->size, 5);
            assert_null(p->template_path); /* not required */
            assert_int_equal(p->ready_ttl, 5);
            assert_string_equal(p->provider, "dummy");
            assert_string_equal(p->domain, "example.com");
        }
        /* `:dummy:` with nothing under it becomes an empty map */
        assert_int_equal(cfg->n_providers, 1);
        assert_int_equal(vmp_cfg_kind_of(cfg->providers[0].node), VMP_CFG_MAP);
        assert_int_equal(vmp_cfg_len(cfg->providers[0].node), 0);
        assert_string_equal(cfg->providers[0].provider_class, "dummy");
        assert_string_equal(cfg->redis.server, "localhost");
        assert_int_equal(cfg->global.vm_lifetime, 12);
        assert_string_equal(cfg->global.site_name, "vmpooler");
        vmp_config_free(cfg);
    }
}

/* Every file of the reference directory loads, and our fixture copies are
 * identical to the shared ones when both exist. */
static void test_ref_all_files(void **state)
{
    (void)state;
    DIR *d = opendir(ref_dir());
    assert_non_null(d);
    struct dirent *e;
    int loaded = 0;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".yaml"))
            continue;
        vmp_config *cfg = load_ref(e->d_name);
        assert_true(cfg->n_pools >= 2);
        assert_true(cfg->pools_configured);
        vmp_config_free(cfg);
        loaded++;
    }
    closedir(d);
    assert_int_equal(loaded, 7);
}

static void test_fixture_copies(void **state)
{
    (void)state;
    struct stat st;
    if (stat(VMP_REFERENCE_CONFIGS_DIR, &st) != 0)
        skip();
    const char *files[] = {"vmpooler-2017-05.yaml.example",    "vmpooler-0.1.0.yaml.example",
                           "vmpooler-3.9.1.yaml.example",      "vmpooler-3.9.1.yaml.dummy-example",
                           "vmpooler-3.9.1.aliasedpools.yaml", "vmpooler-3.9.1-spec-fixture.yaml",
                           "vmpooler-3.9.1-spec-fixture2.yaml"};
    for (size_t i = 0; i < VMP_ARRAY_LEN(files); i++) {
        char a[PATH_MAX], b[PATH_MAX], *ta = NULL, *tb = NULL;
        size_t la, lb;
        snprintf(a, sizeof a, "%s/%s", VMP_REFERENCE_CONFIGS_DIR, files[i]);
        snprintf(b, sizeof b, "%s/config/vmpooler/%s", VMP_FIXTURES_DIR, files[i]);
        assert_int_equal(vmp_file_read(a, &ta, &la, NULL), 0);
        assert_int_equal(vmp_file_read(b, &tb, &lb, NULL), 0);
        assert_int_equal(la, lb);
        assert_memory_equal(ta, tb, la);
        free(ta);
        free(tb);
    }
}

/* ---- bad configurations: the exact errors ---------------------------------- */

#define POOL_A ":pools:\n  - name: a\n    size: 1\n"

typedef struct bad_case {
    const char *yaml;
    const char *errors[5]; /* every expected error, in order; NULL-ended */
} bad_case;

static const bad_case bad_cases[] = {
    /* YAML itself */
    {"a: [1, 2\n",
     {"bad.yaml:2:1: YAML syntax error: did not find expected ',' or ']' (while parsing a flow "
      "sequence at line 1, column 4)"}},
    {"a: b: c\n",
     {"bad.yaml:1:5: YAML syntax error: mapping values are not allowed in this context"}},
    {"a:\n\tb: 1\n",
     {"bad.yaml:2:1: YAML syntax error: found character that cannot start any token (while "
      "scanning for the next token at line 2, column 1)"}},
    {"a: \"open\n",
     {"bad.yaml:2:1: YAML syntax error: found unexpected end of stream (while scanning a quoted "
      "scalar at line 1, column 4)"}},
    {"a: *nope\n", {"bad.yaml:1:4: YAML syntax error: found undefined alias"}},
    {"\x01\n", {"bad.yaml:1:1: YAML syntax error: control characters are not allowed"}},
    {"a: &x [ *x ]\n", {"bad.yaml:1:4: a[0]: an alias refers to a node that contains it"}},
    {"x: &a [1]\n<<: *a\n", {"bad.yaml:2:1: <<: a merge key needs a map or a list of maps"}},
    {"? [a]\n: b\n", {"bad.yaml:1:3: map keys must be plain strings"}},
    /* shapes */
    {"- a\n- b\n", {"bad.yaml:1:1: top level: expected a map, got a list"}},
    {"hello\n", {"bad.yaml:1:1: top level: expected a map, got \"hello\""}},
    {":pools:\n  name: a\n", {"bad.yaml:1:1: pools: expected a list, got a map"}},
    {":pools:\n  - just-a-name\n", {"bad.yaml:2:5: pools[0]: expected a map, got \"just-a-name\""}},
    {":config: [1]\n", {"bad.yaml:1:1: config: expected a map, got a list"}},
    {":redis: localhost\n", {"bad.yaml:1:1: redis: expected a map, got \"localhost\""}},
    {":providers:\n  - dummy\n", {"bad.yaml:1:1: providers: expected a map, got a list"}},
    {":providers:\n  :dummy: 5\n", {"bad.yaml:2:3: providers.dummy: expected a map, got 5"}},
    {":dns_configs:\n  x: 5\n", {"bad.yaml:2:3: dns_configs.x: expected a map, got 5"}},
    {":tagfilter:\n  url: [a]\n", {"bad.yaml:2:3: tagfilter.url: expected a string, got a list"}},
    /* pools */
    {":pools:\n  - size: 1\n", {"bad.yaml:2:5: pools[0]: missing required key \"name\""}},
    {":pools:\n  - name:\n    size: 1\n",
     {"bad.yaml:2:5: pools[0]: missing required key \"name\""}},
    {":pools:\n  - name: a\n", {"bad.yaml:2:5: pools[0]: missing required key \"size\""}},
    {":pools:\n  - name: a\n    size:\n",
     {"bad.yaml:3:5: pools[0].size: expected a non-negative integer, got null"}},
    {":pools:\n  - name: a\n    size: five\n",
     {"bad.yaml:3:5: pools[0].size: expected a non-negative integer, got \"five\""}},
    {":pools:\n  - name: a\n    size: -3\n",
     {"bad.yaml:3:5: pools[0].size: expected a non-negative integer, got -3"}},
    {":pools:\n  - name: a\n    size: 2.5\n",
     {"bad.yaml:3:5: pools[0].size: expected a non-negative integer, got 2.5"}},
    {":pools:\n  - name: a\n    size: 200000\n",
     {"bad.yaml:3:5: pools[0].size: must be at most 100000, got 200000"}},
    {":pools:\n  - name: a\n    size: {n: 1}\n",
     {"bad.yaml:3:5: pools[0].size: expected a non-negative integer, got a map"}},
    {":pools:\n  - name: [a]\n    size: 1\n",
     {"bad.yaml:2:5: pools[0].name: expected a string, got a list"}},
    {":pools:\n  - name: \"a b\"\n    size: 1\n",
     {"bad.yaml:2:5: pools[0].name: \"a b\" is not a valid pool name (no spaces, control "
      "characters, '/', ',' or ':')"}},
    {":pools:\n  - name: ''\n    size: 1\n",
     {"bad.yaml:2:5: pools[0].name: pool name must not be empty"}},
    {POOL_A "  - name: b\n    size: 1\n  - name: a\n    size: 2\n",
     {"bad.yaml:6:5: pools[2].name: duplicate pool name \"a\" (also pools[0])"}},
    {POOL_A "    provider: nope\n",
     {"bad.yaml:4:5: pools[0].provider: unknown provider \"nope\": not under :providers: and not "
      "a built-in provider (dummy, vsphere)"}},
    {POOL_A "    dns_plugin: x\n",
     {"bad.yaml:4:5: pools[0].dns_plugin: no entry \"x\" under :dns_configs:"}},
    {POOL_A "    alias: {a: b}\n",
     {"bad.yaml:4:5: pools[0].alias: expected a string or a list of strings, got a map"}},
    {POOL_A "    alias: [ok, {a: b}, 'x/y']\n",
     {"bad.yaml:4:5: pools[0].alias: \"x/y\" is not a valid alias (no spaces, control "
      "characters, '/', ',' or ':')",
      "bad.yaml:4:17: pools[0].alias[1]: expected a string, got a map"}},
    {POOL_A "    timeout: -1\n",
     {"bad.yaml:4:5: pools[0].timeout: expected a non-negative integer, got -1"}},
    {POOL_A "    ready_ttl: soon\n",
     {"bad.yaml:4:5: pools[0].ready_ttl: expected a non-negative integer, got \"soon\""}},
    {POOL_A "    create_linked_clone: maybe\n",
     {"bad.yaml:4:5: pools[0].create_linked_clone: expected a boolean (true or false), got "
      "\"maybe\""}},
    {POOL_A "    check_loop_delay_max: -5\n",
     {"bad.yaml:4:5: pools[0].check_loop_delay_max: expected a non-negative number, got -5"}},
    {POOL_A "    template: {path: x}\n",
     {"bad.yaml:4:5: pools[0].template: expected a string, got a map"}},
    /* :config: */
    {":config:\n  task_limit: 0\n",
     {"bad.yaml:2:3: config.task_limit: expected a positive integer, got 0"}},
    {":config:\n  timeout: abc\n",
     {"bad.yaml:2:3: config.timeout: expected a non-negative integer, got \"abc\""}},
    {":config:\n  utilization_limit: 101\n",
     {"bad.yaml:2:3: config.utilization_limit: must be at most 100, got 101"}},
    {":config:\n  check_loop_delay_min: 0\n",
     {"bad.yaml:2:3: config.check_loop_delay_min: expected a number greater than 0, got 0"}},
    {":config:\n  experimental_features: 7\n",
     {"bad.yaml:2:3: config.experimental_features: expected a boolean (true or false), got 7"}},
    {":config:\n  allowed_tags: {a: 1}\n",
     {"bad.yaml:2:3: config.allowed_tags: expected a string or a list of strings, got a map"}},
    {":config:\n  backend_weight:\n    b1: heavy\n",
     {"bad.yaml:3:5: config.backend_weight.b1: expected a non-negative integer, got \"heavy\""}},
    {":config:\n  site_name: [a, b]\n",
     {"bad.yaml:2:3: config.site_name: expected a string, got a list"}},
    {":config:\n  health_thresholds:\n    ready_queue_max: -1\n",
     {"bad.yaml:3:5: config.health_thresholds.ready_queue_max: expected a non-negative integer, "
      "got -1"}},
    /* :redis:, :providers:, :auth:, metrics, :api: */
    {":redis:\n  port: 70000\n", {"bad.yaml:2:3: redis.port: must be at most 65535, got 70000"}},
    {":redis:\n  port: x\n  key_prefix: ''\n",
     {"bad.yaml:2:3: redis.port: expected a positive integer, got \"x\"",
      "bad.yaml:3:3: redis.key_prefix: must not be empty"}},
    {":redis:\n  reconnect_attempts: [1, x]\n",
     {"bad.yaml:2:27: redis.reconnect_attempts[1]: expected a non-negative number of seconds, "
      "got \"x\""}},
    {":providers:\n  :dummy:\n    createvm_fail_percent: 150\n    createvm_max_time: -1\n",
     {"bad.yaml:3:5: providers.dummy.createvm_fail_percent: expected a percentage between 0 and "
      "100, got 150",
      "bad.yaml:4:5: providers.dummy.createvm_max_time: expected a non-negative number, got -1"}},
    {":providers:\n  :fake:\n    provider_class: dummy\n    destroyvm_fail_percent: all\n",
     {"bad.yaml:4:5: providers.fake.destroyvm_fail_percent: expected a percentage between 0 and "
      "100, got \"all\""}},
    {":providers:\n  :v:\n    provider_class: [a]\n",
     {"bad.yaml:3:5: providers.v.provider_class: expected a string, got a list"}},
    {":auth:\n  provider: kerberos\n",
     {"bad.yaml:2:3: auth.provider: unknown authentication provider \"kerberos\" (expected dummy "
      "or ldap)"}},
    {":auth:\n  provider: ldap\n",
     {"bad.yaml:2:3: auth: missing required key \"ldap\" (the ldap provider needs it)"}},
    {":auth:\n  provider: ldap\n  :ldap:\n    port: 389\n",
     {"bad.yaml:4:5: auth.ldap: missing required key \"host\""}},
    {":auth:\n  :ldap:\n    host: h\n", {"bad.yaml:2:3: auth: missing required key \"provider\""}},
    {":statsd:\n  port: 8125\n", {"bad.yaml:2:3: statsd: missing required key \"server\""}},
    {":graphite:\n  server: g\n  port: 0\n",
     {"bad.yaml:3:3: graphite.port: expected a positive integer, got 0"}},
    {":api:\n  listen: 'localhost:http'\n",
     {"bad.yaml:2:3: api.listen: expected \"host:port\" (port 1-65535), got \"localhost:http\""}},
    {":tracing:\n  enabled: perhaps\n",
     {"bad.yaml:2:3: tracing.enabled: expected a boolean (true or false), got \"perhaps\""}},
    /* several problems at once: all reported, in file order */
    {":pools:\n  - name: a\n    size: x\n  - size: 2\n:config:\n  timeout: -1\n:redis:\n"
     "  port: 0\n",
     {"bad.yaml:3:5: pools[0].size: expected a non-negative integer, got \"x\"",
      "bad.yaml:4:5: pools[1]: missing required key \"name\"",
      "bad.yaml:6:3: config.timeout: expected a non-negative integer, got -1",
      "bad.yaml:8:3: redis.port: expected a positive integer, got 0"}},
};

static void test_bad_configs(void **state)
{
    (void)state;
    assert_true(VMP_ARRAY_LEN(bad_cases) >= 25);
    for (size_t i = 0; i < VMP_ARRAY_LEN(bad_cases); i++) {
        const bad_case *c = &bad_cases[i];
        vmp_config *cfg = NULL;
        vmp_strlist errors = VMP_STRLIST_INIT;
        vmp_err err = {0};
        int rc = vmp_config_load_string(c->yaml, "bad.yaml", &no_env, &cfg, &errors, &err);
        if (rc != VMP_EINVAL)
            print_message("case %zu: rc %d\n", i, rc);
        assert_int_equal(rc, VMP_EINVAL);
        assert_null(cfg);
        size_t n = 0;
        while (n < 4 && c->errors[n])
            n++;
        if (errors.n != n)
            print_message("case %zu\n", i);
        assert_list(&errors, c->errors);
        /* err carries the first one (and the count of the others) */
        char want[VMP_ERR_MSG_MAX];
        if (n > 1)
            snprintf(want, sizeof want, "%s (and %zu more errors)", c->errors[0], n - 1);
        else
            snprintf(want, sizeof want, "%s", c->errors[0]);
        assert_string_equal(err.msg, want);
        assert_int_equal(err.code, VMP_EINVAL);
        vmp_strlist_clear(&errors);
    }
}

/* errors may be NULL; err alone still tells what went wrong. */
static void test_bad_without_list(void **state)
{
    (void)state;
    vmp_config *cfg = NULL;
    vmp_err err = {0};
    assert_int_equal(vmp_config_load_string(":pools: 5\n", NULL, &no_env, &cfg, NULL, &err),
                     VMP_EINVAL);
    assert_string_equal(err.msg, "<string>:1:1: pools: expected a list, got 5");
    /* *out must be NULL on entry */
    vmp_config *not_null = (vmp_config *)&err;
    assert_int_equal(vmp_config_load_string("{}", "x", &no_env, &not_null, NULL, &err), VMP_EINVAL);
}

static void test_unreadable_files(void **state)
{
    (void)state;
    vmp_config *cfg = NULL;
    vmp_strlist errors = VMP_STRLIST_INIT;
    vmp_err err = {0};
    assert_int_equal(vmp_config_load_file("/nonexistent/vmpool.yaml", &no_env, &cfg, &errors, &err),
                     VMP_ENOENT);
    assert_int_equal(err.code, VMP_ENOENT);
    assert_list(&errors, LIST("/nonexistent/vmpool.yaml: cannot read: No such file or directory"));
    assert_string_equal(err.msg, errors.v[0]);
    vmp_strlist_clear(&errors);

    char dir[64];
    make_tmpdir(dir, sizeof dir);
    assert_int_equal(vmp_config_load_file(dir, &no_env, &cfg, &errors, &err), VMP_EIO);
    char want[PATH_MAX + 256];
    snprintf(want, sizeof want, "%s: cannot read: Is a directory", dir);
    assert_list(&errors, LIST(want));
    vmp_strlist_clear(&errors);

    /* a file with a syntax error names its own path and position */
    char path[PATH_MAX];
    write_file(dir, "broken.yaml", ":config:\n  task_limit: [\n", path, sizeof path);
    assert_int_equal(vmp_config_load_file(path, &no_env, &cfg, &errors, &err), VMP_EINVAL);
    snprintf(want, sizeof want,
             "%s:3:1: YAML syntax error: did not find expected node content (while parsing a "
             "flow node at line 3, column 1)",
             path);
    assert_list(&errors, LIST(want));
    vmp_strlist_clear(&errors);
    if (geteuid() != 0) {
        write_file(dir, "secret.yaml", "{}\n", path, sizeof path);
        chmod(path, 0);
        assert_int_equal(vmp_config_load_file(path, &no_env, &cfg, &errors, &err), VMP_EIO);
        assert_non_null(strstr(err.msg, "cannot read: Permission denied"));
        vmp_strlist_clear(&errors);
    }
    rm_tmpdir(dir);
    assert_null(cfg);
}

/* ---- good configurations: defaults and every section ------------------------ */

static void test_defaults(void **state)
{
    (void)state;
    vmp_config *cfg = load_str(":pools:\n  - name: a\n    size: 2\n");
    const vmp_global_cfg *g = &cfg->global;
    assert_string_equal(g->site_name, "<b>vmpooler</b>");
    assert_null(g->logfile);
    assert_int_equal(g->task_limit, 10);
    assert_int_equal(g->timeout, 15);
    assert_int_equal(g->timeout_notification, 5);
    assert_int_equal(g->vm_checktime, 1);
    assert_int_equal(g->vm_lifetime, 24);
    assert_int_equal(g->vm_lifetime_auth, 0);
    assert_int_equal(g->max_lifetime_upper_limit, 0);
    assert_int_equal(g->ready_ttl, 60);
    assert_false(g->allowed_tags_set);
    assert_int_equal(g->allowed_tags.n, 0);
    assert_string_equal(g->prefix, "");
    assert_null(g->clone_target);
    assert_null(g->domain);
    assert_int_equal(g->migration_limit, 0);
    assert_int_equal(g->max_tries, 3);
    assert_int_equal(g->retry_factor, 10);
    assert_true(g->check_loop_delay_min == 5 && g->check_loop_delay_max == 60);
    assert_true(g->check_loop_delay_decay == 2.0);
    assert_true(g->check_ready_vm_hostname_for_mismatch);
    assert_false(g->manage_host_selection);
    assert_int_equal(g->host_selection_max_age, 60);
    assert_int_equal(g->utilization_limit, 90);
    assert_false(g->create_folders || g->create_template_delta_disks);
    assert_true(g->create_linked_clones);
    assert_false(g->experimental_features || g->purge_unconfigured_resources);
    assert_false(g->usage_stats || g->request_logger);
    assert_int_equal(g->ondemand_clone_limit, 10);
    assert_int_equal(g->max_ondemand_instances_per_request, 10);
    assert_int_equal(g->ondemand_request_ttl, 5);
    assert_int_equal(g->max_vm_retries, 3);
    assert_false(g->dlq_enabled);
    assert_int_equal(g->dlq_ttl, 168);
    assert_int_equal(g->dlq_max_entries, 10000);
    assert_false(g->purge_enabled || g->purge_dry_run);
    assert_int_equal(g->purge_interval, 3600);
    assert_int_equal(g->max_pending_age, 7200);
    assert_int_equal(g->max_ready_age, 86400);
    assert_int_equal(g->max_completed_age, 3600);
    assert_int_equal(g->max_orphaned_age, 86400);
    assert_false(g->health_check_enabled);
    assert_int_equal(g->health_check_interval, 300);
    assert_false(g->rate_limiting_enabled);
    assert_null(g->backend_weight);
    assert_true(g->circuit_breaker_enabled && g->adaptive_timeout_enabled &&
                g->connection_pool_monitor_enabled);
    assert_int_equal(g->circuit_breaker_failure_threshold, 5);
    assert_int_equal(g->circuit_breaker_timeout, 30);
    assert_int_equal(g->circuit_breaker_half_open_attempts, 3);
    assert_int_equal(g->connection_pool_timeout_min, 5);
    assert_int_equal(g->connection_pool_timeout_max, 60);
    assert_int_equal(g->connection_pool_timeout_initial, 30);
    assert_int_equal(g->connection_pool_monitor_interval, 10);
    assert_int_equal(g->health_thresholds.pending_queue_max, 100);
    assert_int_equal(g->health_thresholds.ready_queue_max, 500);
    assert_int_equal(g->health_thresholds.dlq_max_warning, 100);
    assert_int_equal(g->health_thresholds.dlq_max_critical, 1000);
    assert_int_equal(g->health_thresholds.stuck_vm_age_threshold, 7200);
    assert_int_equal(g->health_thresholds.stuck_vm_max_warning, 10);
    assert_int_equal(g->health_thresholds.stuck_vm_max_critical, 50);
    /* :config: was absent: an empty map now stands in for it */
    assert_int_equal(vmp_cfg_kind_of(g->node), VMP_CFG_MAP);

    /* redis: no server named -> embedded */
    assert_null(cfg->redis.server);
    assert_int_equal(cfg->redis.port, 6379);
    assert_null(cfg->redis.socket);
    assert_null(cfg->redis.password);
    assert_int_equal(cfg->redis.db, 0);
    assert_int_equal(cfg->redis.data_ttl, 168);
    assert_string_equal(cfg->redis.prefix, "vmpooler");
    assert_string_equal(cfg->redis.state_dir,
                        geteuid() == 0 ? "/var/lib/vmpool" : "./vmpool-state");
    assert_int_equal(cfg->redis.connection_pool_size, 10);
    assert_true(cfg->redis.connection_pool_timeout == 5);
    assert_int_equal(cfg->redis.reconnect_attempts, 10);

    assert_null(cfg->auth.provider);
    assert_null(cfg->auth.node);
    assert_null(cfg->metrics.kind);
    assert_string_equal(cfg->metrics.prefix, "vmpooler");
    assert_null(cfg->graphs.server);
    assert_string_equal(cfg->graphs.prefix, "vmpooler");
    assert_false(cfg->tracing.enabled);
    assert_string_equal(cfg->tracing.jaeger_host, "http://localhost:14268/api/traces");
    assert_string_equal(cfg->api.listen_host, "127.0.0.1");
    assert_int_equal(cfg->api.listen_port, 4567);
    assert_null(cfg->tagfilter);
    assert_null(cfg->dns_configs);
    assert_null(cfg->rate_limits);
    assert_int_equal(cfg->lua_files.n, 0);
    assert_int_equal(cfg->n_providers, 0);
    assert_int_equal(vmp_cfg_kind_of(vmp_cfg_get(cfg->root, "providers")), VMP_CFG_MAP);
    assert_true(cfg->pools_configured);
    assert_string_equal(cfg->path, "test.yaml");
    assert_true(cfg->loaded_at > 1.0e9);

    const vmp_pool_cfg *p = &cfg->pools[0];
    assert_string_equal(p->name, "a");
    assert_int_equal(p->size, 2);
    assert_string_equal(p->provider, "dummy");
    assert_int_equal(p->timeout, 15);
    assert_int_equal(p->timeout_notification, 5);
    assert_int_equal(p->ready_ttl, 60);
    assert_false(p->ready_ttl_set);
    assert_null(p->template_path);
    assert_null(p->clone_target);
    assert_null(p->domain);
    assert_int_equal(p->aliases.n, 0);
    assert_int_equal(p->create_linked_clone, VMP_UNSET);
    assert_int_equal(p->check_hostname_for_mismatch, 1);
    assert_true(p->check_loop_delay_min == 5 && p->check_loop_delay_max == 60 &&
                p->check_loop_delay_decay == 2.0);
    /* what vmpooler writes into a pool is in the tree too */
    assert_string_equal(vmp_cfg_get_str(p->node, "provider", NULL), "dummy");
    assert_int_equal(vmp_cfg_get_int(p->node, "ready_ttl", -1), 60);
    assert_warnings(cfg, NONE);
    vmp_config_free(cfg);
}

static const char full_yaml[] = "---\n"
                                ":config:\n"
                                "  site_name: 'My pools'\n"
                                "  logfile: /var/log/vmpool.log\n"
                                "  task_limit: 4\n"
                                "  timeout: 20\n"
                                "  timeout_notification: 7\n"
                                "  vm_checktime: 3\n"
                                "  vm_lifetime: 8\n"
                                "  vm_lifetime_auth: 48\n"
                                "  max_lifetime_upper_limit: 168\n"
                                "  ready_ttl: 90\n"
                                "  allowed_tags: [owner, jenkins_build_url]\n"
                                "  prefix: 'pv-'\n"
                                "  clone_target: cluster1\n"
                                "  migration_limit: 2\n"
                                "  max_tries: 5\n"
                                "  retry_factor: 3\n"
                                "  check_loop_delay_min: 2\n"
                                "  check_loop_delay_max: 1\n"
                                "  check_loop_delay_decay: 0.5\n"
                                "  check_ready_vm_hostname_for_mismatch: false\n"
                                "  manage_host_selection: yes\n"
                                "  host_selection_max_age: 30\n"
                                "  utilization_limit: 80\n"
                                "  create_folders: true\n"
                                "  create_template_delta_disks: true\n"
                                "  create_linked_clones: false\n"
                                "  experimental_features: on\n"
                                "  purge_unconfigured_folders: true\n"
                                "  backend_weight: {cluster1: 70, cluster2: 30}\n"
                                "  usage_stats: true\n"
                                "  request_logger: true\n"
                                "  ondemand_clone_limit: 6\n"
                                "  max_ondemand_instances_per_request: 12\n"
                                "  ondemand_request_ttl: 9\n"
                                "  max_vm_retries: 1\n"
                                "  dlq_enabled: true\n"
                                "  dlq_ttl: 24\n"
                                "  dlq_max_entries: 50\n"
                                "  purge_enabled: true\n"
                                "  purge_interval: 60\n"
                                "  purge_dry_run: true\n"
                                "  max_pending_age: 1\n"
                                "  max_ready_age: 2\n"
                                "  max_completed_age: 3\n"
                                "  max_orphaned_age: 4\n"
                                "  health_check_enabled: true\n"
                                "  health_check_interval: 30\n"
                                "  health_thresholds:\n"
                                "    pending_queue_max: 11\n"
                                "    stuck_vm_max_critical: 12\n"
                                "  rate_limiting_enabled: true\n"
                                "  circuit_breaker_enabled: false\n"
                                "  circuit_breaker_failure_threshold: 2\n"
                                "  circuit_breaker_timeout: 9\n"
                                "  circuit_breaker_half_open_attempts: 4\n"
                                "  adaptive_timeout_enabled: false\n"
                                "  connection_pool_timeout_min: 1\n"
                                "  connection_pool_timeout_max: 2\n"
                                "  connection_pool_timeout_initial: 3\n"
                                "  connection_pool_monitor_enabled: false\n"
                                "  connection_pool_monitor_interval: 7\n"
                                "  ssh_key: 'ssh-ed25519 AAAA'\n"
                                "  lua: /etc/vmpool/policy.lua\n"
                                ":redis:\n"
                                "  server: redis.example.net\n"
                                "  port: 6380\n"
                                "  password: s3cret\n"
                                "  socket: /run/redis.sock\n"
                                "  db: 3\n"
                                "  data_ttl: 72\n"
                                "  connection_pool_size: 4\n"
                                "  connection_pool_timeout: 2.5\n"
                                "  reconnect_attempts: [0, 0.5, 1]\n"
                                "  state_dir: /srv/vmpool\n"
                                "  key_prefix: staging\n"
                                ":providers:\n"
                                "  :dummy:\n"
                                "    filename: /tmp/dummy.yaml\n"
                                "    createvm_fail_percent: 10\n"
                                "    createvm_max_time: 3\n"
                                "  :lab:\n"
                                "    provider_class: vsphere\n"
                                "    server: vc.lab\n"
                                "    purge_unconfigured_resources: true\n"
                                "    folder_whitelist: [keep]\n"
                                "    skip_dns_check_before_creating_vm: true\n"
                                ":dns_configs:\n"
                                "  :lab-dns:\n"
                                "    dns_class: dynamic-dns\n"
                                "    domain: lab.example\n"
                                ":pools:\n"
                                "  - name: p1\n"
                                "    alias: p-one\n"
                                "    template: Templates/p1\n"
                                "    size: 3\n"
                                "    provider: lab\n"
                                "    clone_target: cluster2\n"
                                "    folder: Pooled/p1\n"
                                "    datastore: ds1\n"
                                "    datacenter: dc1\n"
                                "    network: net1\n"
                                "    dns_plugin: lab-dns\n"
                                "    create_linked_clone: true\n"
                                "    check_hostname_for_mismatch: true\n"
                                "    check_loop_delay_min: 10\n"
                                "    check_loop_delay_max: 100\n"
                                "    check_loop_delay_decay: 1.5\n"
                                "    timeout: 30\n"
                                "    timeout_notification: 3\n"
                                "    ready_ttl: 0\n"
                                "  - name: p2\n"
                                "    size: 0\n"
                                ":auth:\n"
                                "  provider: ldap\n"
                                "  :ldap:\n"
                                "    host: ldap.example\n"
                                "    base: ['ou=a,dc=x', 'ou=b,dc=x']\n"
                                "    user_object: [uid, cn]\n"
                                "    service_account_hash:\n"
                                "      :user_dn: 'cn=svc,dc=x'\n"
                                "      :password: pw\n"
                                ":tagfilter:\n"
                                "  url: '(.*)\\/'\n"
                                ":graphite:\n"
                                "  server: graphite.example\n"
                                "  prefix: gprefix\n"
                                "  port: 2004\n"
                                ":graphs:\n"
                                "  server: graphs.example\n"
                                ":prometheus:\n"
                                "  prefix: inst\n"
                                "  prometheus_prefix: pp\n"
                                "  prometheus_endpoint: /metrics\n"
                                ":tracing:\n"
                                "  enabled: true\n"
                                "  jaeger_host: http://jaeger:14268/api/traces\n"
                                ":rate_limits:\n"
                                "  global: {limit: 100}\n"
                                ":api:\n"
                                "  listen: 0.0.0.0:8080\n";

static void test_full_config(void **state)
{
    (void)state;
    vmp_config *cfg = load_str(full_yaml);
    const vmp_global_cfg *g = &cfg->global;
    assert_string_equal(g->site_name, "My pools");
    assert_string_equal(g->logfile, "/var/log/vmpool.log");
    assert_int_equal(g->task_limit, 4);
    assert_int_equal(g->timeout, 20);
    assert_int_equal(g->timeout_notification, 7);
    assert_int_equal(g->vm_checktime, 3);
    assert_int_equal(g->vm_lifetime, 8);
    assert_int_equal(g->vm_lifetime_auth, 48);
    assert_int_equal(g->max_lifetime_upper_limit, 168);
    assert_int_equal(g->ready_ttl, 90);
    assert_true(g->allowed_tags_set);
    assert_list(&g->allowed_tags, LIST("owner", "jenkins_build_url"));
    assert_string_equal(g->prefix, "pv-");
    assert_string_equal(g->clone_target, "cluster1");
    assert_int_equal(g->migration_limit, 2);
    assert_int_equal(g->max_tries, 5);
    assert_int_equal(g->retry_factor, 3);
    /* sanitised: max below min becomes min, decay <= 1 becomes 2 */
    assert_true(g->check_loop_delay_min == 2 && g->check_loop_delay_max == 2);
    assert_true(g->check_loop_delay_decay == 2.0);
    assert_false(g->check_ready_vm_hostname_for_mismatch);
    assert_true(g->manage_host_selection);
    assert_int_equal(g->host_selection_max_age, 30);
    assert_int_equal(g->utilization_limit, 80);
    assert_true(g->create_folders && g->create_template_delta_disks);
    assert_false(g->create_linked_clones);
    assert_true(g->experimental_features);
    assert_true(g->purge_unconfigured_resources); /* through the old name */
    assert_int_equal(vmp_cfg_get_int(g->backend_weight, "cluster2", -1), 30);
    assert_true(g->usage_stats && g->request_logger);
    assert_int_equal(g->ondemand_clone_limit, 6);
    assert_int_equal(g->max_ondemand_instances_per_request, 12);
    assert_int_equal(g->ondemand_request_ttl, 9);
    assert_int_equal(g->max_vm_retries, 1);
    assert_true(g->dlq_enabled);
    assert_int_equal(g->dlq_ttl, 24);
    assert_int_equal(g->dlq_max_entries, 50);
    assert_true(g->purge_enabled && g->purge_dry_run);
    assert_int_equal(g->purge_interval, 60);
    assert_int_equal(
        g->max_pending_age + g->max_ready_age + g->max_completed_age + g->max_orphaned_age, 10);
    assert_true(g->health_check_enabled);
    assert_int_equal(g->health_check_interval, 30);
    assert_int_equal(g->health_thresholds.pending_queue_max, 11);
    assert_int_equal(g->health_thresholds.ready_queue_max, 500);
    assert_int_equal(g->health_thresholds.stuck_vm_max_critical, 12);
    assert_true(g->rate_limiting_enabled);
    assert_false(g->circuit_breaker_enabled || g->adaptive_timeout_enabled ||
                 g->connection_pool_monitor_enabled);
    assert_int_equal(g->circuit_breaker_failure_threshold, 2);
    assert_int_equal(g->circuit_breaker_timeout, 9);
    assert_int_equal(g->circuit_breaker_half_open_attempts, 4);
    assert_int_equal(g->connection_pool_timeout_min, 1);
    assert_int_equal(g->connection_pool_timeout_max, 2);
    assert_int_equal(g->connection_pool_timeout_initial, 3);
    assert_int_equal(g->connection_pool_monitor_interval, 7);
    assert_string_equal(g->ssh_key, "ssh-ed25519 AAAA");
    assert_list(&cfg->lua_files, LIST("/etc/vmpool/policy.lua"));

    const vmp_redis_cfg *r = &cfg->redis;
    assert_string_equal(r->server, "redis.example.net");
    assert_int_equal(r->port, 6380);
    assert_string_equal(r->password, "s3cret");
    assert_string_equal(r->socket, "/run/redis.sock");
    assert_int_equal(r->db, 3);
    assert_int_equal(r->data_ttl, 72);
    assert_int_equal(r->connection_pool_size, 4);
    assert_true(r->connection_pool_timeout == 2.5);
    assert_int_equal(r->reconnect_attempts, 3);
    assert_string_equal(r->state_dir, "/srv/vmpool");
    assert_string_equal(r->prefix, "staging");

    assert_int_equal(cfg->n_providers, 2);
    const vmp_provider_cfg *lab = vmp_config_provider(cfg, "lab");
    assert_string_equal(lab->provider_class, "vsphere");
    assert_int_equal(lab->purge_unconfigured_resources, 1);
    assert_list(&lab->resources_allowlist, LIST("keep"));
    assert_true(lab->skip_dns_check_before_creating_vm);
    assert_int_equal(vmp_config_provider(cfg, "dummy")->purge_unconfigured_resources, VMP_UNSET);
    assert_null(vmp_config_provider(cfg, "vsphere"));

    const vmp_pool_cfg *p = vmp_config_pool(cfg, "p1");
    assert_list(&p->aliases, LIST("p-one"));
    assert_false(p->alias_is_list);
    assert_string_equal(p->template_path, "Templates/p1");
    assert_int_equal(p->size, 3);
    assert_string_equal(p->provider, "lab");
    assert_string_equal(p->clone_target, "cluster2");
    assert_string_equal(p->folder, "Pooled/p1");
    assert_string_equal(p->datastore, "ds1");
    assert_string_equal(p->datacenter, "dc1");
    assert_string_equal(p->network, "net1");
    assert_string_equal(p->dns_plugin, "lab-dns");
    assert_string_equal(p->domain, "lab.example");
    assert_int_equal(p->create_linked_clone, 1);
    assert_int_equal(p->check_hostname_for_mismatch, 1);
    assert_true(p->check_loop_delay_min == 10 && p->check_loop_delay_max == 100 &&
                p->check_loop_delay_decay == 1.5);
    assert_int_equal(p->timeout, 30);
    assert_int_equal(p->timeout_notification, 3);
    assert_int_equal(p->ready_ttl, 0);
    assert_true(p->ready_ttl_set);
    /* p2 inherits from :config: */
    p = vmp_config_pool(cfg, "p2");
    assert_int_equal(p->size, 0);
    assert_string_equal(p->provider, "dummy");
    assert_string_equal(p->clone_target, "cluster1");
    assert_int_equal(p->timeout, 20);
    assert_int_equal(p->timeout_notification, 7);
    assert_int_equal(p->ready_ttl, 90);
    assert_false(p->ready_ttl_set);
    assert_int_equal(p->check_hostname_for_mismatch, 0);
    assert_true(p->check_loop_delay_min == 2 && p->check_loop_delay_max == 2 &&
                p->check_loop_delay_decay == 2.0);

    assert_string_equal(cfg->auth.provider, "ldap");
    assert_string_equal(cfg->auth.ldap_host, "ldap.example");
    assert_int_equal(cfg->auth.ldap_port, 389);
    assert_list(&cfg->auth.ldap_base, LIST("ou=a,dc=x", "ou=b,dc=x"));
    assert_list(&cfg->auth.ldap_user_object, LIST("uid", "cn"));
    assert_string_equal(
        vmp_cfg_get_str(vmp_cfg_get(cfg->auth.ldap, "service_account_hash"), "user_dn", NULL),
        "cn=svc,dc=x");
    assert_string_equal(vmp_cfg_get_str(cfg->tagfilter, "url", NULL), "(.*)\\/");

    /* no statsd: graphite is the sink; the graphs front-end is its own */
    assert_string_equal(cfg->metrics.kind, "graphite");
    assert_string_equal(cfg->metrics.server, "graphite.example");
    assert_int_equal(cfg->metrics.port, 2004);
    assert_string_equal(cfg->metrics.prefix, "gprefix");
    assert_string_equal(cfg->metrics.prometheus_prefix, "pp");
    assert_string_equal(cfg->metrics.prometheus_endpoint, "/metrics");
    assert_string_equal(cfg->graphs.server, "graphs.example");
    assert_string_equal(cfg->graphs.prefix, "gprefix");
    assert_true(cfg->tracing.enabled);
    assert_string_equal(cfg->tracing.jaeger_host, "http://jaeger:14268/api/traces");
    assert_int_equal(vmp_cfg_kind_of(vmp_cfg_get(cfg->rate_limits, "global")), VMP_CFG_MAP);
    assert_string_equal(cfg->api.listen_host, "0.0.0.0");
    assert_int_equal(cfg->api.listen_port, 8080);
    assert_warnings(cfg, NONE);
    vmp_config_free(cfg);
}

static void test_metrics_choice(void **state)
{
    (void)state;
    vmp_config *cfg = load_str(":statsd:\n  server: s\n:graphite:\n  server: g\n"
                               ":prometheus:\n  prefix: x\n");
    assert_string_equal(cfg->metrics.kind, "statsd");
    assert_string_equal(cfg->metrics.server, "s");
    assert_int_equal(cfg->metrics.port, 8125);
    assert_string_equal(cfg->metrics.prefix, "vmpooler");
    assert_string_equal(cfg->graphs.server, "g"); /* dashboard falls back to :graphite: */
    vmp_config_free(cfg);
    cfg = load_str(":graphite:\n  server: g\n");
    assert_string_equal(cfg->metrics.kind, "graphite");
    assert_int_equal(cfg->metrics.port, 2003);
    assert_string_equal(cfg->metrics.prefix, "vmpooler");
    vmp_config_free(cfg);
    cfg = load_str(":prometheus:\n  prefix: staging\n");
    assert_string_equal(cfg->metrics.kind, "prometheus");
    assert_null(cfg->metrics.server);
    assert_string_equal(cfg->metrics.prefix, "staging");
    assert_string_equal(cfg->metrics.prometheus_prefix, "vmpooler");
    assert_string_equal(cfg->metrics.prometheus_endpoint, "/prometheus");
    vmp_config_free(cfg);
}

static void test_api_listen(void **state)
{
    (void)state;
    struct {
        const char *yaml, *host;
        int port;
    } cases[] = {
        {":api:\n  listen: '[::1]:9000'\n", "::1", 9000},
        {":api:\n  listen: 8081\n", "127.0.0.1", 8081},
        {":api:\n  listen: ':8082'\n", "127.0.0.1", 8082},
        {":api:\n  listen: 'pool.example:80'\n", "pool.example", 80},
    };
    for (size_t i = 0; i < VMP_ARRAY_LEN(cases); i++) {
        vmp_config *cfg = load_str(cases[i].yaml);
        assert_string_equal(cfg->api.listen_host, cases[i].host);
        assert_int_equal(cfg->api.listen_port, cases[i].port);
        vmp_config_free(cfg);
    }
    const char *bad[] = {":api:\n  listen: '::1:80'\n", ":api:\n  listen: 'h:70000'\n",
                         ":api:\n  listen: 'h:'\n", ":api:\n  listen: '[::1]'\n"};
    for (size_t i = 0; i < VMP_ARRAY_LEN(bad); i++) {
        vmp_config *cfg = NULL;
        vmp_err err = {0};
        assert_int_equal(vmp_config_load_string(bad[i], "t", &no_env, &cfg, NULL, &err),
                         VMP_EINVAL);
        assert_non_null(strstr(err.msg, "t:2:3: api.listen: expected \"host:port\""));
    }
}

/* ---- vmpooler compatibility details ----------------------------------------- */

static void test_legacy_vsphere(void **state)
{
    (void)state;
    /* no :providers: at all: the old section becomes providers.vsphere */
    vmp_config *cfg = load_str(":vsphere:\n  server: vc.old\n  username: u\n"
                               ":pools:\n  - name: a\n    size: 1\n    provider: vsphere\n"
                               "  - name: b\n    size: 1\n");
    assert_int_equal(cfg->n_providers, 1);
    const vmp_provider_cfg *vs = vmp_config_provider(cfg, "vsphere");
    assert_non_null(vs);
    assert_string_equal(vs->provider_class, "vsphere");
    assert_string_equal(vmp_cfg_get_str(vs->node, "server", NULL), "vc.old");
    assert_int_equal(vmp_cfg_mark_of(vmp_cfg_get(vs->node, "server")).line, 2);
    assert_string_equal(
        vmp_cfg_get_str(path_get(cfg->root, "providers", "vsphere", NULL), "username", NULL), "u");
    assert_string_equal(cfg->pools[0].provider, "vsphere");
    /* a pool without provider gets dummy (vmpooler 3), with a reminder */
    assert_string_equal(cfg->pools[1].provider, "dummy");
    assert_warnings(cfg, LIST("test.yaml:8:5: pools[1]: no provider given: using dummy, the "
                              "default since vmpooler 1.0 (older versions used vsphere)"));
    vmp_config_free(cfg);

    /* an existing providers.vsphere wins over the old section */
    cfg = load_str(":providers:\n  :vsphere:\n    server: vc.new\n:vsphere:\n  server: vc.old\n");
    assert_int_equal(cfg->n_providers, 1);
    assert_string_equal(vmp_cfg_get_str(cfg->providers[0].node, "server", NULL), "vc.new");
    vmp_config_free(cfg);

    /* a named built-in without a :providers: entry is fine (empty options) */
    cfg = load_str(":pools:\n  - name: a\n    size: 1\n    provider: vsphere\n"
                   "  - name: b\n    size: 1\n    provider: Dummy\n");
    assert_int_equal(cfg->n_providers, 0);
    assert_null(vmp_config_provider(cfg, "vsphere"));
    vmp_config_free(cfg);
}

static void test_provider_classes_option(void **state)
{
    (void)state;
    const char *yaml = ":pools:\n  - name: a\n    size: 1\n    provider: luaprov\n";
    const char *const classes[] = {"other", "LuaProv", NULL};
    vmp_config_opts opts = {.no_env = true, .provider_classes = classes};
    vmp_config *cfg = load_str_opts(yaml, &opts);
    assert_string_equal(cfg->pools[0].provider, "luaprov");
    vmp_config_free(cfg);
    /* or an entry under :providers: naming it */
    cfg = load_str(":providers:\n  :luaprov:\n    provider_class: mylua\n"
                   ":pools:\n  - name: a\n    size: 1\n    provider: luaprov\n");
    assert_string_equal(cfg->providers[0].provider_class, "mylua");
    vmp_config_free(cfg);
}

static void test_symbols_and_spellings(void **state)
{
    (void)state;
    /* `pools:` and `:pools:` are one key; symbol values lose their colon */
    vmp_config *cfg = load_str("config:\n  task_limit: 3\n"
                               "pools:\n  - :name: a\n    size: '4'\n    provider: :dummy\n"
                               "    template: \":quoted\"\n");
    assert_int_equal(cfg->global.task_limit, 3);
    assert_false(vmp_cfg_key_is_symbol(cfg->root, (size_t)key_index(cfg->root, "pools")));
    const vmp_pool_cfg *p = &cfg->pools[0];
    assert_string_equal(p->name, "a");
    assert_int_equal(p->size, 4); /* a quoted number is accepted */
    assert_string_equal(p->provider, "dummy");
    assert_true(vmp_cfg_scalar_is_symbol(vmp_cfg_get(p->node, "provider")));
    assert_string_equal(p->template_path, ":quoted"); /* quoted: a string, not a symbol */
    assert_true(vmp_cfg_scalar_quoted(vmp_cfg_get(p->node, "template")));
    assert_true(vmp_cfg_key_is_symbol(p->node, (size_t)key_index(p->node, "name")));
    vmp_config_free(cfg);
}

static void test_marks(void **state)
{
    (void)state;
    vmp_config *cfg = load_str(":config:\n  task_limit: 3\n:pools:\n  - name: a\n    size: 1\n");
    vmp_cfg_mark m = vmp_cfg_key_mark_at(cfg->global.node, 0);
    assert_string_equal(m.file, "test.yaml");
    assert_int_equal(m.line, 2);
    assert_int_equal(m.column, 3);
    m = vmp_cfg_mark_of(vmp_cfg_get(cfg->global.node, "task_limit"));
    assert_int_equal(m.line, 2);
    assert_int_equal(m.column, 15);
    m = vmp_cfg_mark_of(cfg->pools[0].node);
    assert_int_equal(m.line, 4);
    assert_int_equal(m.column, 5);
    m = vmp_cfg_key_mark_at(cfg->root, (size_t)key_index(cfg->root, "pools"));
    assert_int_equal(m.line, 3);
    assert_int_equal(m.column, 1);
    vmp_config_free(cfg);
}

static void test_anchors_and_merge_keys(void **state)
{
    (void)state;
    vmp_config *cfg = load_str(":pool_defaults: &defaults\n"
                               "  size: 2\n"
                               "  timeout: 30\n"
                               "  folder: common\n"
                               ":extra: &extra\n"
                               "  datastore: ds9\n"
                               "  folder: from-extra\n"
                               ":tags: &tags [a, b]\n"
                               ":config:\n"
                               "  allowed_tags: *tags\n"
                               ":pools:\n"
                               "  - name: a\n"
                               "    <<: *defaults\n"
                               "    size: 5\n"
                               "  - <<: [*extra, *defaults]\n"
                               "    name: b\n"
                               "  - size: 9\n"
                               "    <<: *defaults\n"
                               "    name: c\n");
    assert_int_equal(cfg->n_pools, 3);
    const vmp_pool_cfg *a = &cfg->pools[0], *b = &cfg->pools[1], *c = &cfg->pools[2];
    assert_int_equal(a->size, 5); /* a key after the merge wins */
    assert_int_equal(a->timeout, 30);
    assert_string_equal(a->folder, "common");
    assert_int_equal(b->size, 2);
    assert_string_equal(b->folder, "from-extra"); /* the first map of a merge list wins */
    assert_string_equal(b->datastore, "ds9");
    assert_int_equal(c->size, 2); /* Psych: a merge overrides the keys before it */
    assert_list(&cfg->global.allowed_tags, LIST("a", "b"));
    /* merged values keep the marks of where they were written */
    assert_int_equal(vmp_cfg_mark_of(vmp_cfg_get(a->node, "timeout")).line, 3);
    assert_warnings(cfg,
                    LIST("test.yaml:1:1: pool_defaults: unknown key",
                         "test.yaml:5:1: extra: unknown key", "test.yaml:8:1: tags: unknown key"));
    vmp_config_free(cfg);
}

static void test_alias_bomb(void **state)
{
    (void)state;
    /* 10 levels of 10 aliases each = 10^10 values once expanded */
    vmp_buf b = VMP_BUF_INIT;
    vmp_buf_puts(&b, "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 10; i++) {
        vmp_buf_printf(&b, "l%d: &l%d [", i, i);
        for (int j = 0; j < 10; j++)
            vmp_buf_printf(&b, "%s*l%d", j ? ", " : "", i - 1);
        vmp_buf_puts(&b, "]\n");
    }
    vmp_config *cfg = NULL;
    vmp_strlist errors = VMP_STRLIST_INIT;
    vmp_err err = {0};
    assert_int_equal(
        vmp_config_load_string(vmp_buf_str(&b), "bomb.yaml", &no_env, &cfg, &errors, &err),
        VMP_EINVAL);
    assert_int_equal(errors.n, 1);
    assert_non_null(strstr(errors.v[0], ": more than 1000000 values after expanding aliases"));
    vmp_strlist_clear(&errors);
    vmp_buf_free(&b);
}

static void test_documents_and_duplicates(void **state)
{
    (void)state;
    vmp_config *cfg = load_str("---\n:config:\n  task_limit: 2\n  task_limit: 3\n"
                               "---\n:config:\n  task_limit: 9\n");
    assert_int_equal(cfg->global.task_limit, 3);
    assert_warnings(cfg, LIST("test.yaml:4:3: config.task_limit: duplicate key (the later value is "
                              "used)",
                              "test.yaml:5:1: the file holds more than one YAML document; only the "
                              "first is used"));
    vmp_config_free(cfg);
    /* an empty file is an empty configuration (vmpooler: {config: {}}) */
    cfg = load_str("");
    assert_int_equal(cfg->n_pools, 0);
    assert_false(cfg->pools_configured);
    assert_warnings(cfg, LIST("test.yaml:1:1: the configuration is empty"));
    vmp_config_free(cfg);
    cfg = load_str("# only a comment\n:pools:\n");
    assert_false(cfg->pools_configured);
    vmp_config_free(cfg);
}

static void test_unknown_keys(void **state)
{
    (void)state;
    vmp_config *cfg = load_str(":config:\n  task_limt: 3\n:redis:\n  sever: x\n"
                               ":pools:\n  - name: a\n    size: 1\n    colour: blue\n"
                               ":statsd:\n  server: s\n  interval: 5\n:auth:\n  provider: ldap\n"
                               "  :ldap:\n    host: h\n    timeout: 3\n:nonsense: 1\n");
    assert_warnings(cfg, LIST("test.yaml:2:3: config.task_limt: unknown key",
                              "test.yaml:4:3: redis.sever: unknown key",
                              "test.yaml:8:5: pools[0].colour: unknown key",
                              "test.yaml:11:3: statsd.interval: unknown key",
                              "test.yaml:16:5: auth.ldap.timeout: unknown key",
                              "test.yaml:17:1: nonsense: unknown key"));
    /* unknown keys stay in the tree for whoever wants them */
    assert_string_equal(vmp_cfg_get_str(cfg->pools[0].node, "colour", NULL), "blue");
    assert_int_equal(cfg->global.task_limit, 10);
    vmp_config_free(cfg);
}

static void test_legacy_domain(void **state)
{
    (void)state;
    vmp_config *cfg = load_str(":config:\n  domain: corp.example\n:dns_configs:\n  d:\n"
                               "    domain: dns.example\n:pools:\n  - name: a\n    size: 1\n"
                               "  - name: b\n    size: 1\n    dns_plugin: d\n");
    assert_string_equal(cfg->global.domain, "corp.example");
    assert_string_equal(cfg->pools[0].domain, "corp.example");
    assert_string_equal(cfg->pools[1].domain, "dns.example");
    assert_warnings(cfg, LIST("test.yaml:2:3: config.domain: removed in vmpooler 3 (use "
                              ":dns_configs:); still honoured for older configurations"));
    vmp_config_free(cfg);
}

static void test_strings_and_lists(void **state)
{
    (void)state;
    vmp_config *cfg = load_str(":config:\n  lua: [a.lua, b.lua]\n  allowed_tags: project\n"
                               ":redis:\n  reconnect_attempts: 4\n:pools:\n"
                               "  - name: a\n    size: 1\n    alias: [x, y]\n");
    assert_list(&cfg->lua_files, LIST("a.lua", "b.lua"));
    assert_list(&cfg->global.allowed_tags, LIST("project"));
    assert_int_equal(cfg->redis.reconnect_attempts, 4);
    assert_true(cfg->pools[0].alias_is_list);
    vmp_config_free(cfg);
}

/* Lua configuration edits the tree and validates it again. */
static void test_parse_and_from_tree(void **state)
{
    (void)state;
    vmp_cfg_node *root = NULL;
    vmp_strlist errors = VMP_STRLIST_INIT;
    vmp_err err = {0};
    assert_int_equal(vmp_config_parse_string(":pools:\n  - name: a\n    size: 1\n", "lua-in",
                                             &no_env, &root, &errors, &err),
                     0);
    vmp_cfg_node *pools = vmp_cfg_get_mut(root, "pools");
    vmp_cfg_node *pool = vmp_cfg_map_new();
    assert_int_equal(vmp_cfg_map_set(pool, "name", vmp_cfg_scalar_new("made-in-lua")), 0);
    assert_int_equal(vmp_cfg_map_set(pool, "size", vmp_cfg_scalar_new("3")), 0);
    assert_int_equal(vmp_cfg_seq_push(pools, pool), 0);
    vmp_config *cfg = NULL;
    assert_int_equal(vmp_config_from_tree(root, "lua-in", &no_env, &cfg, &errors, &err), 0);
    assert_int_equal(cfg->n_pools, 2);
    assert_int_equal(cfg->pools[1].size, 3);
    assert_false(cfg->pools[1].ready_ttl_set);

    /* a second validation of the same (edited) tree: the defaults written
     * the first time do not count as set */
    vmp_cfg_node *copy = vmp_cfg_clone(cfg->root);
    vmp_cfg_node *config = vmp_cfg_get_mut(copy, "config");
    assert_int_equal(vmp_cfg_map_set(config, "ready_ttl", vmp_cfg_scalar_new("15")), 0);
    vmp_config *again = NULL;
    assert_int_equal(vmp_config_from_tree(copy, "lua-in", &no_env, &again, &errors, &err), 0);
    assert_int_equal(again->pools[0].ready_ttl, 15);
    assert_false(again->pools[0].ready_ttl_set);
    assert_int_equal(again->n_pools, 2);
    vmp_config_free(again);
    vmp_config_free(cfg);

    /* errors in nodes built in code name the configuration, not a line */
    root = vmp_cfg_map_new();
    pools = vmp_cfg_seq_new();
    pool = vmp_cfg_map_new();
    vmp_cfg_map_set(pool, "name", vmp_cfg_scalar_new("x"));
    vmp_cfg_map_set(pool, "size", vmp_cfg_scalar_new("-1"));
    vmp_cfg_seq_push(pools, pool);
    vmp_cfg_map_set(root, ":pools", pools);
    cfg = NULL;
    assert_int_equal(vmp_config_from_tree(root, "lua", &no_env, &cfg, &errors, &err), VMP_EINVAL);
    assert_list(&errors, LIST("lua: pools[0].size: expected a non-negative integer, got -1"));
    vmp_strlist_clear(&errors);

    /* not a map at all */
    assert_int_equal(vmp_config_from_tree(vmp_cfg_seq_new(), "lua", &no_env, &cfg, &errors, &err),
                     VMP_EINVAL);
    assert_list(&errors, LIST("lua: top level: expected a map, got a list"));
    vmp_strlist_clear(&errors);

    /* parse errors come back from the parse functions too */
    root = NULL;
    assert_int_equal(vmp_config_parse_string("a: [\n", "p", &no_env, &root, &errors, &err),
                     VMP_EINVAL);
    assert_null(root);
    assert_int_equal(errors.n, 1);
    vmp_strlist_clear(&errors);
    assert_int_equal(vmp_config_parse_file("/nonexistent.yaml", &no_env, &root, &errors, &err),
                     VMP_ENOENT);
    assert_list(&errors, LIST("/nonexistent.yaml: cannot read: No such file or directory"));
    vmp_strlist_clear(&errors);
}

/* ---- environment ------------------------------------------------------------ */

static void test_env_overrides(void **state)
{
    (void)state;
    const char *const env[] = {"TASK_LIMIT=25",
                               "READY_TTL=30",
                               "PREFIX=env-",
                               "SITE_NAME=Env site",
                               "LOGFILE=/tmp/env.log",
                               "CLONE_TARGET=env-cluster",
                               "TIMEOUT=40",
                               "TIMEOUT_NOTIFICATION=4",
                               "VM_LIFETIME_AUTH=6",
                               "MAX_TRIES=2",
                               "RETRY_FACTOR=1",
                               "MIGRATION_LIMIT=3",
                               "VM_CHECKTIME=2",
                               "ONDEMAND_CLONE_LIMIT=7",
                               "MAX_ONDEMAND_INSTANCES_PER_REQUEST=8",
                               "ONDEMAND_REQUEST_TTL=9",
                               "MAX_LIFETIME_UPPER_LIMIT=100",
                               "CREATE_FOLDERS=true",
                               "EXPERIMENTAL_FEATURES=false",
                               "USAGE_STATS=TRUE",
                               "REQUEST_LOGGER=yes",
                               "CREATE_TEMPLATE_DELTA_DISKS=true",
                               "PURGE_UNCONFIGURED_RESOURCES=true",
                               "CREATE_LINKED_CLONES=false",
                               "REDIS_SERVER=redis.env",
                               "REDIS_PORT=6390",
                               "REDIS_PASSWORD=pw",
                               "REDIS_DATA_TTL=12",
                               "REDIS_CONNECTION_POOL_SIZE=3",
                               "REDIS_CONNECTION_POOL_TIMEOUT=8",
                               "REDIS_RECONNECT_ATTEMPTS=[0, 1, 2]",
                               "STATSD_SERVER=statsd.env",
                               "STATSD_PORT=9125",
                               "STATSD_PREFIX=sp",
                               "GRAPHITE_PREFIX=ignored",
                               "VMPOOLER_TRACING_ENABLED=true",
                               "VMPOOLER_TRACING_JAEGER_HOST=http://j",
                               "AUTH_PROVIDER=ldap",
                               "LDAP_HOST=ldap.env",
                               "LDAP_PORT=636",
                               "LDAP_BASE=dc=env",
                               "LDAP_USER_OBJECT=cn",
                               "VM_LIFETIME=none",
                               NULL};
    vmp_config_opts opts = {.env = env};
    vmp_config *cfg = load_str_opts(":config:\n  task_limit: 5\n  experimental_features: true\n"
                                    ":redis:\n  server: file.redis\n"
                                    ":pools:\n  - name: a\n    size: 1\n",
                                    &opts);
    const vmp_global_cfg *g = &cfg->global;
    assert_int_equal(g->task_limit, 25); /* env wins over the file */
    assert_int_equal(g->ready_ttl, 30);
    assert_int_equal(cfg->pools[0].ready_ttl, 30);
    assert_string_equal(g->prefix, "env-");
    assert_string_equal(g->site_name, "Env site");
    assert_string_equal(g->logfile, "/tmp/env.log");
    assert_string_equal(g->clone_target, "env-cluster");
    assert_int_equal(g->timeout, 40);
    assert_int_equal(cfg->pools[0].timeout, 40);
    assert_int_equal(g->timeout_notification, 4);
    assert_int_equal(g->vm_lifetime_auth, 6);
    assert_int_equal(g->max_tries, 2);
    assert_int_equal(g->retry_factor, 1);
    assert_int_equal(g->migration_limit, 3);
    assert_int_equal(g->vm_checktime, 2);
    assert_int_equal(g->ondemand_clone_limit, 7);
    assert_int_equal(g->max_ondemand_instances_per_request, 8);
    assert_int_equal(g->ondemand_request_ttl, 9);
    assert_int_equal(g->max_lifetime_upper_limit, 100);
    assert_int_equal(g->vm_lifetime, 24); /* "none" has no digit: ignored */
    assert_true(g->create_folders && g->usage_stats && g->request_logger);
    assert_true(g->create_template_delta_disks && g->purge_unconfigured_resources);
    assert_false(g->experimental_features);
    assert_false(g->create_linked_clones);
    const vmp_redis_cfg *r = &cfg->redis;
    assert_string_equal(r->server, "redis.env");
    assert_int_equal(r->port, 6390);
    assert_string_equal(r->password, "pw");
    assert_int_equal(r->data_ttl, 12);
    assert_int_equal(r->connection_pool_size, 3);
    assert_true(r->connection_pool_timeout == 8);
    assert_int_equal(r->reconnect_attempts, 3);
    assert_string_equal(cfg->metrics.kind, "statsd");
    assert_string_equal(cfg->metrics.server, "statsd.env");
    assert_int_equal(cfg->metrics.port, 9125);
    assert_string_equal(cfg->metrics.prefix, "sp");
    assert_true(cfg->tracing.enabled);
    assert_string_equal(cfg->tracing.jaeger_host, "http://j");
    assert_string_equal(cfg->auth.provider, "ldap");
    assert_string_equal(cfg->auth.ldap_host, "ldap.env");
    assert_int_equal(cfg->auth.ldap_port, 636);
    assert_list(&cfg->auth.ldap_base, LIST("dc=env"));
    assert_list(&cfg->auth.ldap_user_object, LIST("cn"));
    /* the tree shows the overrides, marked with their variable */
    const vmp_cfg_node *tl = path_get(cfg->root, "config", "task_limit", NULL);
    assert_string_equal(vmp_cfg_scalar(tl), "25");
    assert_string_equal(vmp_cfg_mark_of(tl).file, "env TASK_LIMIT");
    assert_warnings(cfg,
                    LIST("env VM_LIFETIME: config.vm_lifetime: ignored: \"none\" has no digits",
                         "env GRAPHITE_PREFIX: graphite.prefix: ignored: the configuration "
                         "has no :graphite: section"));
    vmp_config_free(cfg);

    /* no_env wins over an env list */
    opts.no_env = true;
    cfg = load_str_opts(":config:\n  task_limit: 5\n", &opts);
    assert_int_equal(cfg->global.task_limit, 5);
    vmp_config_free(cfg);
}

static void test_env_bad_values(void **state)
{
    (void)state;
    const char *const env[] = {"REDIS_PORT=99999",
                               "TASK_LIMIT=5abc",
                               "CREATE_FOLDERS=maybe",
                               "CREATE_LINKED_CLONES=sometimes",
                               "PURGE_UNCONFIGURED_FOLDERS=true",
                               NULL};
    vmp_config_opts opts = {.env = env};
    vmp_config *cfg = NULL;
    vmp_strlist errors = VMP_STRLIST_INIT;
    vmp_err err = {0};
    assert_int_equal(vmp_config_load_string("{}", "t.yaml", &opts, &cfg, &errors, &err),
                     VMP_EINVAL);
    assert_list(&errors,
                LIST("env TASK_LIMIT: config.task_limit: expected a positive integer, got \"5abc\"",
                     "env CREATE_FOLDERS: config.create_folders: expected a boolean (true or "
                     "false), got \"maybe\"",
                     "env REDIS_PORT: redis.port: must be at most 65535, got 99999"));
    assert_true(vmp_strlist_contains(&logged_warnings,
                                     "env CREATE_LINKED_CLONES: config.create_linked_clones: "
                                     "ignored: \"sometimes\" is neither true nor false"));
    assert_true(vmp_strlist_contains(&logged_warnings,
                                     "env PURGE_UNCONFIGURED_FOLDERS: "
                                     "config.purge_unconfigured_resources: deprecated: use "
                                     "PURGE_UNCONFIGURED_RESOURCES"));
    vmp_strlist_clear(&errors);
}

static void test_env_domain_and_debug(void **state)
{
    (void)state;
    const char *const env[] = {"DOMAIN=env.example", "VMPOOLER_DEBUG=1", NULL};
    vmp_config_opts opts = {.env = env};
    vmp_config *cfg =
        load_str_opts(":auth:\n  provider: dummy\n:pools:\n  - name: a\n    size: 1\n", &opts);
    assert_true(cfg->debug);
    assert_string_equal(cfg->global.domain, "env.example");
    assert_string_equal(cfg->pools[0].domain, "env.example");
    /* no dummy-auth warning in debug mode; the domain one names the variable */
    assert_warnings(cfg, LIST("env DOMAIN: config.domain: removed in vmpooler 3 (use "
                              ":dns_configs:); still honoured for older configurations"));
    vmp_config_free(cfg);
}

static void test_process_environment(void **state)
{
    (void)state;
    /* opts NULL or without env list: the real environment */
    setenv("TASK_LIMIT", "17", 1);
    vmp_config *cfg = NULL;
    vmp_err err = {0};
    assert_int_equal(vmp_config_load_string("{}", "t", NULL, &cfg, NULL, &err), 0);
    assert_int_equal(cfg->global.task_limit, 17);
    vmp_config_free(cfg);
    cfg = NULL;
    assert_int_equal(vmp_config_load_string("{}", "t", &no_env, &cfg, NULL, &err), 0);
    assert_int_equal(cfg->global.task_limit, 10);
    vmp_config_free(cfg);
    unsetenv("TASK_LIMIT");
}

static void test_load_default(void **state)
{
    (void)state;
    char dir[64], a[PATH_MAX], b[PATH_MAX];
    make_tmpdir(dir, sizeof dir);
    write_file(dir, "a.yaml", ":config:\n  task_limit: 11\n", a, sizeof a);
    write_file(dir, "b.yaml", ":config:\n  task_limit: 12\n", b, sizeof b);
    vmp_config *cfg = NULL;
    vmp_err err = {0};
    vmp_strlist errors = VMP_STRLIST_INIT;

    /* path argument when the environment names nothing */
    const char *const env0[] = {"UNRELATED=1", NULL};
    vmp_config_opts opts = {.env = env0};
    assert_int_equal(vmp_config_load_default(a, &opts, &cfg, NULL, &err), 0);
    assert_int_equal(cfg->global.task_limit, 11);
    assert_string_equal(cfg->path, a);
    vmp_config_free(cfg);
    cfg = NULL;

    /* VMPOOLER_CONFIG_FILE wins over the path */
    char var[PATH_MAX + 32];
    snprintf(var, sizeof var, "VMPOOLER_CONFIG_FILE=%s", b);
    const char *const env1[] = {var, NULL};
    opts.env = env1;
    assert_int_equal(vmp_config_load_default(a, &opts, &cfg, NULL, &err), 0);
    assert_int_equal(cfg->global.task_limit, 12);
    vmp_config_free(cfg);
    cfg = NULL;

    /* VMPOOLER_CONFIG (the YAML itself) wins over both */
    const char *const env2[] = {var, "VMPOOLER_CONFIG=:config:\n  task_limit: 13\n", NULL};
    opts.env = env2;
    assert_int_equal(vmp_config_load_default(a, &opts, &cfg, NULL, &err), 0);
    assert_int_equal(cfg->global.task_limit, 13);
    assert_string_equal(cfg->path, "<VMPOOLER_CONFIG>");
    vmp_config_free(cfg);
    cfg = NULL;
    const char *const env3[] = {"VMPOOLER_CONFIG=:pools: x\n", NULL};
    opts.env = env3;
    assert_int_equal(vmp_config_load_default(a, &opts, &cfg, &errors, &err), VMP_EINVAL);
    assert_list(&errors, LIST("<VMPOOLER_CONFIG>:1:1: pools: expected a list, got \"x\""));
    vmp_strlist_clear(&errors);

    /* nothing at all: vmpooler.yaml in the working directory */
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    opts.env = env0;
    assert_int_equal(vmp_config_load_default(NULL, &opts, &cfg, &errors, &err), VMP_ENOENT);
    assert_list(&errors, LIST("vmpooler.yaml: cannot read: No such file or directory"));
    vmp_strlist_clear(&errors);
    write_file(dir, "vmpooler.yaml", ":config:\n  task_limit: 14\n", a, sizeof a);
    assert_int_equal(vmp_config_load_default(NULL, &opts, &cfg, &errors, &err), 0);
    assert_int_equal(cfg->global.task_limit, 14);
    vmp_config_free(cfg);
    assert_int_equal(chdir(cwd), 0);
    rm_tmpdir(dir);
}

/* ---- extra_config ----------------------------------------------------------- */

static void test_extra_config(void **state)
{
    (void)state;
    char dir[64], main_path[PATH_MAX], x1[PATH_MAX], x2[PATH_MAX];
    make_tmpdir(dir, sizeof dir);
    write_file(dir, "x1.yaml",
               ":config:\n"
               "  task_limit: 99\n"              /* main has it: kept */
               "  vm_lifetime: 7\n"              /* main lacks it: added */
               "  experimental_features: true\n" /* main's false is replaced */
               "  allowed_tags: [b, c]\n"        /* lists are united */
               ":providers:\n  :dummy:\n    createvm_max_time: 4\n"
               ":pools:\n"
               "  - name: a\n    size: 1\n" /* identical to main's: not repeated */
               "  - name: extra\n    size: 2\n",
               x1, sizeof x1);
    write_file(dir, "x2.yaml", ":redis:\n  server: redis.extra\n", x2, sizeof x2);
    char yaml[3 * PATH_MAX];
    snprintf(yaml, sizeof yaml,
             ":config:\n  task_limit: 3\n  experimental_features: false\n  allowed_tags: [a, b]\n"
             "  extra_config: '%s, %s'\n"
             ":providers:\n  :dummy:\n    filename: /tmp/d.yaml\n"
             ":pools:\n  - name: a\n    size: 1\n",
             x1, x2);
    write_file(dir, "main.yaml", yaml, main_path, sizeof main_path);
    vmp_config *cfg = NULL;
    vmp_strlist errors = VMP_STRLIST_INIT;
    vmp_err err = {0};
    int rc = vmp_config_load_file(main_path, &no_env, &cfg, &errors, &err);
    print_errors(&errors);
    assert_int_equal(rc, 0);
    assert_int_equal(cfg->global.task_limit, 3);
    assert_int_equal(cfg->global.vm_lifetime, 7);
    assert_true(cfg->global.experimental_features);
    assert_list(&cfg->global.allowed_tags, LIST("a", "b", "c"));
    assert_list(&cfg->global.extra_config, LIST(x1, x2));
    assert_string_equal(vmp_cfg_get_str(cfg->providers[0].node, "filename", NULL), "/tmp/d.yaml");
    assert_int_equal(vmp_cfg_get_int(cfg->providers[0].node, "createvm_max_time", -1), 4);
    assert_int_equal(cfg->n_pools, 2);
    assert_string_equal(cfg->pools[1].name, "extra");
    assert_int_equal(cfg->pools[1].size, 2);
    /* merged nodes remember the file they came from */
    vmp_cfg_mark m = vmp_cfg_mark_of(cfg->pools[1].node);
    assert_string_equal(m.file, x1);
    assert_int_equal(m.line, 12);
    assert_string_equal(cfg->redis.server, "redis.extra");
    vmp_config_free(cfg);
    cfg = NULL;

    /* EXTRA_CONFIG names the files instead */
    char var[PATH_MAX + 16];
    snprintf(var, sizeof var, "EXTRA_CONFIG=%s", x2);
    const char *const env[] = {var, NULL};
    vmp_config_opts opts = {.env = env};
    assert_int_equal(vmp_config_load_string("{}", "t.yaml", &opts, &cfg, &errors, &err), 0);
    assert_string_equal(cfg->redis.server, "redis.extra");
    assert_list(&cfg->global.extra_config, LIST(x2));
    vmp_config_free(cfg);
    cfg = NULL;

    /* a missing extra file, and an error inside one, are reported with their place */
    char x3[PATH_MAX];
    write_file(dir, "x3.yaml", ":pools:\n  - name: bad\n    size: lots\n", x3, sizeof x3);
    snprintf(yaml, sizeof yaml, ":config:\n  extra_config:\n    - %s/missing.yaml\n    - %s\n", dir,
             x3);
    assert_int_equal(vmp_config_load_string(yaml, "t.yaml", &no_env, &cfg, &errors, &err),
                     VMP_EINVAL);
    char want1[PATH_MAX + 128], want2[PATH_MAX + 128];
    snprintf(want1, sizeof want1,
             "t.yaml:2:3: config.extra_config: cannot read \"%s/missing.yaml\": No such file or "
             "directory",
             dir);
    snprintf(want2, sizeof want2,
             "%s:3:5: pools[0].size: expected a non-negative integer, got "
             "\"lots\"",
             x3);
    assert_list(&errors, LIST(want1, want2));
    vmp_strlist_clear(&errors);

    /* an extra file that is not a map */
    write_file(dir, "x4.yaml", "- a\n", x3, sizeof x3);
    snprintf(yaml, sizeof yaml, ":config:\n  extra_config: %s\n", x3);
    assert_int_equal(vmp_config_load_string(yaml, "t.yaml", &no_env, &cfg, &errors, &err),
                     VMP_EINVAL);
    snprintf(want1, sizeof want1, "%s:1:1: top level: expected a map, got a list", x3);
    assert_list(&errors, LIST(want1));
    vmp_strlist_clear(&errors);
    assert_int_equal(vmp_config_load_string(":config:\n  extra_config: {a: 1}\n", "t.yaml", &no_env,
                                            &cfg, &errors, &err),
                     VMP_EINVAL);
    assert_list(&errors, LIST("t.yaml:2:3: config.extra_config: expected a string or a list of "
                              "strings, got a map"));
    vmp_strlist_clear(&errors);
    rm_tmpdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ref_2017, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ref_0_1_0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ref_3_9_1_example, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ref_dummy_example, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ref_aliased_pools, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ref_spec_fixtures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ref_all_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fixture_copies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_configs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_without_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_choice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_listen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_vsphere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_classes_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symbols_and_spellings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_marks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_anchors_and_merge_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_bomb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_documents_and_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strings_and_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_and_from_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_overrides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_domain_and_debug, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_environment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extra_config, setup, teardown),
    };
    vmp_log_set_level(VMP_LOG_WARN);
    unsigned long errors_before = vmp_log_error_count();
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    /* the loader reports problems to its caller; it never logs at ERROR */
    if (vmp_log_error_count() != errors_before) {
        fprintf(stderr, "unexpected ERROR log lines\n");
        failed++;
    }
    return failed;
}
