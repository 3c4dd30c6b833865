/* Tests that config/vmpool.full.yaml stays what it claims to be: a loadable
 * configuration naming every key the loader knows (as a key, or in a
 * commented-out `# key:` line of its section), with the environment
 * variables that override them; and that config/vmpool.yaml loads cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_node.h"
#include "config_priv.h"
#include "log.h"
#include "util.h"

#define FULL_YAML VMP_SOURCE_DIR "/config/vmpool.full.yaml"
#define EXAMPLE_YAML VMP_SOURCE_DIR "/config/vmpool.yaml"

static const vmp_config_opts no_env = {.no_env = true};

/* ---- the file as text ---------------------------------------------------- */

typedef struct text {
    char *buf;
    char **lines;
    size_t n;
} text;

static void text_read(const char *path, text *t)
{
    char why[256];
    size_t len = 0;
    memset(t, 0, sizeof *t);
    assert_int_equal(vmp_cfg_read_file(path, &t->buf, &len, why, sizeof why), 0);
    size_t cap = 64;
    t->lines = malloc(cap * sizeof *t->lines);
    assert_non_null(t->lines);
    for (char *p = t->buf; p && *p;) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        if (t->n == cap) {
            cap *= 2;
            t->lines = realloc(t->lines, cap * sizeof *t->lines);
            assert_non_null(t->lines);
        }
        t->lines[t->n++] = p;
        p = nl ? nl + 1 : NULL;
    }
}

static void text_free(text *t)
{
    free(t->lines);
    free(t->buf);
}

/* If s (after optional ':') is `name:` followed by a space or the end,
 * returns true. */
static bool is_key(const char *s, const char *name)
{
    if (*s == ':')
        s++;
    size_t n = strlen(name);
    return strncmp(s, name, n) == 0 && s[n] == ':' && (s[n + 1] == '\0' || s[n + 1] == ' ');
}

/* A top-level section header: `:name:` / `name:` at column 0, or a
 * commented one `# :name:`. Writes the name (without colons) into name. */
static bool header(const char *line, bool *commented, char *name, size_t size)
{
    const char *s = line;
    *commented = false;
    if (s[0] == '#') {
        s++;
        if (*s == ' ')
            s++;
        if (*s != ':')
            return false; /* prose, or an indented commented key */
        *commented = true;
    }
    if (*s == ':')
        s++;
    size_t n = 0;
    while (isalnum((unsigned char)s[n]) || s[n] == '_')
        n++;
    if (n == 0 || n >= size || s[n] != ':')
        return false;
    memcpy(name, s, n);
    name[n] = '\0';
    return true;
}

/* Lines [*start, *end) of top-level section `section`: from its header (the
 * written one, else a commented one) to the next header of another section. */
static bool region(const text *t, const char *section, size_t *start, size_t *end)
{
    char name[64];
    bool commented;
    long found = -1;
    for (int pass = 0; pass < 2 && found < 0; pass++)
        for (size_t i = 0; i < t->n && found < 0; i++)
            if (header(t->lines[i], &commented, name, sizeof name) && strcmp(name, section) == 0 &&
                commented == (pass == 1))
                found = (long)i;
    if (found < 0)
        return false;
    *start = (size_t)found;
    *end = t->n;
    for (size_t i = *start + 1; i < t->n; i++)
        if (header(t->lines[i], &commented, name, sizeof name) && strcmp(name, section) != 0) {
            *end = i;
            break;
        }
    return true;
}

/* A line of [start, end) naming key: `key:`, `:key:`, `- key:`, written or
 * after a '#'. */
static bool key_line_in(const text *t, size_t start, size_t end, const char *key)
{
    for (size_t i = start; i < end; i++) {
        const char *s = t->lines[i];
        while (*s == ' ')
            s++;
        if (*s == '#')
            for (s++; *s == ' '; s++)
                ;
        if (s[0] == '-' && s[1] == ' ')
            for (s += 2; *s == ' '; s++)
                ;
        if (is_key(s, key))
            return true;
    }
    return false;
}

static bool text_in(const text *t, size_t start, size_t end, const char *needle)
{
    for (size_t i = start; i < end; i++)
        if (strstr(t->lines[i], needle))
            return true;
    return false;
}

/* ---- the file as loaded -------------------------------------------------- */

static bool written(const vmp_cfg_node *map, const char *key)
{
    const vmp_cfg_node *v = vmp_cfg_get(map, key);
    /* the loader writes a pool's default provider and ready_ttl itself */
    return v && vmp_cfg_mark_of(v).file != vmp_config_default_file;
}

/* Is key written in the loaded tree, in section (a known-key section path)? */
static bool in_tree(const vmp_config *cfg, const char *section, const char *key)
{
    if (strcmp(section, "pools") == 0) {
        for (size_t i = 0; i < cfg->n_pools; i++)
            if (written(cfg->pools[i].node, key))
                return true;
        return false;
    }
    if (strcmp(section, "providers.dummy") == 0) {
        for (size_t i = 0; i < cfg->n_providers; i++)
            if (strcmp(cfg->providers[i].provider_class, "dummy") == 0 &&
                written(cfg->providers[i].node, key))
                return true;
        return false;
    }
    if (!*section)
        return written(cfg->root, key);
    char top[64];
    const char *dot = strchr(section, '.');
    snprintf(top, sizeof top, "%.*s", dot ? (int)(dot - section) : (int)strlen(section), section);
    const vmp_cfg_node *m = vmp_cfg_get(cfg->root, top);
    if (dot)
        m = vmp_cfg_get(m, dot + 1);
    return vmp_cfg_kind_of(m) == VMP_CFG_MAP && written(m, key);
}

/* Is key named for section: in the tree, else on a (commented) key line in
 * its top-level section's part of the file. */
static bool named(const vmp_config *cfg, const text *t, const char *section, const char *key)
{
    size_t start, end;
    char top[64];
    if (in_tree(cfg, section, key))
        return true;
    if (!*section) {
        char a[80], b[80];
        snprintf(a, sizeof a, "# :%s:", key);
        snprintf(b, sizeof b, "#:%s:", key);
        for (size_t i = 0; i < t->n; i++)
            if (strncmp(t->lines[i], a, strlen(a)) == 0 || strncmp(t->lines[i], b, strlen(b)) == 0)
                return true;
        return false;
    }
    snprintf(top, sizeof top, "%.*s", (int)strcspn(section, "."), section);
    return region(t, top, &start, &end) && key_line_in(t, start, end, key);
}

static void load_full(vmp_config **cfg)
{
    vmp_strlist errors = VMP_STRLIST_INIT;
    vmp_err err = {0};
    int rc = vmp_config_load_file(FULL_YAML, &no_env, cfg, &errors, &err);
    for (size_t i = 0; i < errors.n; i++)
        fprintf(stderr, "error: %s\n", errors.v[i]);
    vmp_strlist_clear(&errors);
    assert_int_equal(rc, 0);
}

/* ---- tests --------------------------------------------------------------- */

static void test_full_loads_cleanly(void **state)
{
    (void)state;
    vmp_config *cfg = NULL;
    load_full(&cfg);
    for (size_t i = 0; i < cfg->warnings.n; i++)
        fprintf(stderr, "warning: %s\n", cfg->warnings.v[i]);
    assert_int_equal(cfg->warnings.n, 0);
    /* what the file's comments promise: dummy pools, embedded Redis, the
     * API on loopback */
    assert_true(cfg->pools_configured);
    assert_true(cfg->n_pools >= 1);
    for (size_t i = 0; i < cfg->n_pools; i++)
        assert_string_equal(cfg->pools[i].provider, "dummy");
    assert_null(cfg->redis.server);
    assert_null(cfg->redis.socket);
    assert_string_equal(cfg->api.listen_host, "127.0.0.1");
    assert_int_equal(cfg->api.listen_port, 4567);
    assert_null(cfg->auth.provider);
    vmp_config_free(cfg);
}

static void test_full_names_every_known_key(void **state)
{
    (void)state;
    vmp_config *cfg = NULL;
    text t;
    load_full(&cfg);
    text_read(FULL_YAML, &t);

    /* the checker itself can fail */
    assert_false(named(cfg, &t, "config", "no_such_key_anywhere"));
    assert_false(named(cfg, &t, "", "no_such_section"));
    assert_false(named(cfg, &t, "auth.ldap", "task_limit"));

    const char *const *sections = vmp_cfg_known_sections();
    size_t n_sections = 0, n_keys = 0, missing = 0;
    for (; sections[n_sections]; n_sections++) {
        const char *s = sections[n_sections];
        size_t before = n_keys;
        for (const char *k; (k = vmp_cfg_known_key(s, n_keys - before)); n_keys++) {
            if (named(cfg, &t, s, k))
                continue;
            fprintf(stderr, "%s: %s%s%s: not in the file\n", FULL_YAML, s, *s ? "." : "", k);
            missing++;
        }
        /* every section of the list has a table behind it */
        assert_true(n_keys > before);
    }
    assert_true(n_sections >= 14);
    assert_null(vmp_cfg_known_key("no_such_section", 0));
    /* spot checks that the view shows the real tables */
    bool has_size = false, has_lua = false;
    for (size_t i = 0; vmp_cfg_known_key("pools", i); i++)
        has_size |= strcmp(vmp_cfg_known_key("pools", i), "size") == 0;
    for (size_t i = 0; vmp_cfg_known_key("config", i); i++)
        has_lua |= strcmp(vmp_cfg_known_key("config", i), "lua_sandbox") == 0;
    assert_true(has_size && has_lua);
    assert_true(n_keys > 150);
    assert_int_equal(missing, 0);
    text_free(&t);
    vmp_config_free(cfg);
}

/* Keys read outside the known-key tables: a provider entry's common keys, the
 * dummy and vSphere providers' options, Lua provider keys, DNS
 * configurations, LDAP details, rate limiter classes. */
static void test_full_names_provider_and_nested_keys(void **state)
{
    (void)state;
    static const struct {
        const char *section, *key;
    } keys[] = {
        {"providers", "provider_class"},
        {"providers", "purge_unconfigured_resources"},
        {"providers", "purge_unconfigured_folders"},
        {"providers", "resources_allowlist"},
        {"providers", "folder_whitelist"},
        {"providers", "skip_dns_check_before_creating_vm"},
        {"providers", "filename"},
        {"providers", "connection_pool_size"},
        {"providers", "random_seed"},
        {"providers", "server"},
        {"providers", "username"},
        {"providers", "password"},
        {"providers", "insecure"},
        {"providers", "ca_file"},
        {"providers", "port"},
        {"providers", "datacenter"},
        {"providers", "task_timeout"},
        {"providers", "request_timeout"},
        {"providers", "connect_timeout"},
        {"providers", "inventory_cache_ttl"},
        {"providers", "ready_check"},
        {"providers", "ready_port"},
        {"providers", "ready_timeout"},
        {"providers", "lua_states"},
        {"providers", "lua_instruction_limit"},
        {"providers", "lua_time_limit"},
        {"dns_configs", "dns_class"},
        {"dns_configs", "domain"},
        {"auth", "encryption"},
        {"auth", "method"},
        {"auth", "tls_options"},
        {"auth", "cert_file"},
        {"auth", "key_file"},
        {"auth", "verify_mode"},
        {"auth", "user_dn"},
        {"auth", "password"},
        {"rate_limits", "global_per_ip"},
        {"rate_limits", "authenticated"},
        {"rate_limits", "vm_creation"},
        {"rate_limits", "vm_deletion"},
        {"rate_limits", "limit"},
        {"rate_limits", "period"},
    };
    text t;
    size_t start, end, missing = 0;
    text_read(FULL_YAML, &t);
    assert_true(region(&t, "providers", &start, &end));
    assert_false(key_line_in(&t, start, end, "task_limit"));
    for (size_t i = 0; i < VMP_ARRAY_LEN(keys); i++) {
        if (region(&t, keys[i].section, &start, &end) && key_line_in(&t, start, end, keys[i].key))
            continue;
        fprintf(stderr, "%s: %s: %s not in the file\n", FULL_YAML, keys[i].section, keys[i].key);
        missing++;
    }
    assert_int_equal(missing, 0);
    text_free(&t);
}

/* Each environment override is named ("env NAME") in its section's part of
 * the file; the variables that choose the file, in its header. */
static void test_full_names_environment(void **state)
{
    (void)state;
    static const char *const header_vars[] = {"VMPOOLER_CONFIG", "VMPOOLER_CONFIG_FILE",
                                              "VMPOOLER_DEBUG"};
    text t;
    size_t start, end, missing = 0, n = 0;
    char needle[96];
    text_read(FULL_YAML, &t);
    const char *section, *key, *var;
    for (; (var = vmp_cfg_env_override(n, &section, &key)); n++) {
        snprintf(needle, sizeof needle, "env %s", var);
        const char *top = strcmp(section, "ldap") == 0 ? "auth" : section;
        if (region(&t, top, &start, &end) && text_in(&t, start, end, needle))
            continue;
        fprintf(stderr, "%s: %s (%s.%s) not named in :%s:\n", FULL_YAML, var, section, key, top);
        missing++;
    }
    assert_true(n >= 40);
    assert_true(region(&t, "config", &start, &end));
    if (!text_in(&t, start, end, "env EXTRA_CONFIG"))
        missing++;
    assert_true(region(&t, "config", &start, &end));
    for (size_t i = 0; i < VMP_ARRAY_LEN(header_vars); i++) {
        snprintf(needle, sizeof needle, "env %s ", header_vars[i]);
        if (!text_in(&t, 0, start, needle)) {
            fprintf(stderr, "%s: %s not named before :config:\n", FULL_YAML, header_vars[i]);
            missing++;
        }
    }
    assert_null(vmp_cfg_env_override(n, NULL, NULL));
    assert_int_equal(missing, 0);
    text_free(&t);
}

static void test_example_loads_cleanly(void **state)
{
    (void)state;
    vmp_strlist errors = VMP_STRLIST_INIT;
    vmp_err err = {0};
    vmp_config *cfg = NULL;
    int rc = vmp_config_load_file(EXAMPLE_YAML, &no_env, &cfg, &errors, &err);
    for (size_t i = 0; i < errors.n; i++)
        fprintf(stderr, "error: %s\n", errors.v[i]);
    vmp_strlist_clear(&errors);
    assert_int_equal(rc, 0);
    for (size_t i = 0; i < cfg->warnings.n; i++)
        fprintf(stderr, "warning: %s\n", cfg->warnings.v[i]);
    assert_int_equal(cfg->warnings.n, 0);
    assert_true(cfg->n_pools >= 1);
    vmp_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_loads_cleanly),
        cmocka_unit_test(test_full_names_every_known_key),
        cmocka_unit_test(test_full_names_provider_and_nested_keys),
        cmocka_unit_test(test_full_names_environment),
        cmocka_unit_test(test_example_loads_cleanly),
    };
    vmp_log_set_level(VMP_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
