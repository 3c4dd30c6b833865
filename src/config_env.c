/*
 * Environment overrides (reference §8.7, vmpooler 3.x list) and the
 * extra_config merge. Both edit the tree before the model is built, so the
 * tree shows what is in effect and every override is validated like a value
 * from the file; an override's nodes are marked "env NAME" so a bad one is
 * reported as e.g. `env REDIS_PORT: redis.port: ...`.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_priv.h"
#include "log.h"

extern char **environ;

const char *vmp_cfg_getenv(const vmp_config_opts *opts, const char *name)
{
    if (opts && opts->no_env)
        return NULL;
    if (!opts || !opts->env)
        return getenv(name);
    size_t len = strlen(name);
    for (const char *const *e = opts->env; *e; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
            return *e + len + 1;
    return NULL;
}

/* ---- tree helpers -------------------------------------------------------- */

/* A mark naming the variable; its text lives as long as root. */
static vmp_cfg_mark env_mark(vmp_cfg_node *root, const char *var, vmp_cfg_diag *d)
{
    vmp_cfg_mark m = {NULL, 0, 0};
    char *s = vmp_asprintf("env %s", var);
    if (!s || vmp_cfg_set_file_owner(root, s)) {
        d->oom = true;
        return m;
    }
    m.file = s;
    return m;
}

/* map[key] as a map: an existing map, a null replaced by a new map, or a new
 * one when absent and create is set. NULL when it is something else (the
 * validation reports that) or absent without create. */
static vmp_cfg_node *section(vmp_cfg_node *map, const char *key, bool create, vmp_cfg_mark mark,
                             vmp_cfg_diag *d)
{
    vmp_cfg_node *v = vmp_cfg_get_mut(map, key);
    if (v && vmp_cfg_kind_of(v) == VMP_CFG_MAP)
        return v;
    if ((v && vmp_cfg_kind_of(v) != VMP_CFG_NULL) || (!v && !create))
        return NULL;
    vmp_cfg_node *m = vmp_cfg_map_new();
    vmp_cfg_set_mark(m, mark);
    if (vmp_cfg_map_set_marked(map, key, true, mark, m)) {
        d->oom = true;
        return NULL;
    }
    return vmp_cfg_get_mut(map, key);
}

static int set_node(vmp_cfg_node *map, const char *key, vmp_cfg_node *value, vmp_cfg_mark mark,
                    vmp_cfg_diag *d)
{
    vmp_cfg_set_mark(value, mark);
    if (vmp_cfg_map_set_marked(map, key, false, mark, value)) {
        d->oom = true;
        return VMP_ENOMEM;
    }
    return 0;
}

static vmp_cfg_node *text_node(const char *text, bool quoted)
{
    vmp_cfg_node *n = vmp_cfg_scalar_new(text);
    vmp_cfg_set_quoted(n, quoted);
    return n;
}

/* "[1, 2.5, 3]" -> a list; anything else a scalar (REDIS_RECONNECT_ATTEMPTS
 * is JSON in vmpooler: a count or a list of delays). */
static vmp_cfg_node *json_list_node(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    if (*s != '[')
        return text_node(s, false);
    vmp_cfg_node *seq = vmp_cfg_seq_new();
    const char *p = s + 1;
    while (seq && *p && *p != ']') {
        size_t n = strcspn(p, ",]");
        char *item = strndup(p, n);
        if (!item) {
            vmp_cfg_free(seq);
            return NULL;
        }
        char *b = item, *e = item + strlen(item);
        while (isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            *--e = '\0';
        if (*b && vmp_cfg_seq_push(seq, text_node(b, false))) {
            free(item);
            vmp_cfg_free(seq);
            return NULL;
        }
        free(item);
        p += n;
        if (*p == ',')
            p++;
    }
    return seq;
}

/* ---- the override table -------------------------------------------------- */

typedef enum env_kind {
    ENV_INT,    /* ignored when it has no digit, else validated as an integer */
    ENV_STR,    /* taken as is */
    ENV_BOOL,   /* taken as is, validated as a boolean */
    ENV_LINKED, /* applied only when "true" or "false" (CREATE_LINKED_CLONES) */
    ENV_JSON,   /* a number or a JSON list */
} env_kind;

typedef struct env_rule {
    const char *var;
    const char *section; /* top-level key; "ldap" means auth.ldap */
    const char *key;
    env_kind kind;
    bool creates; /* creates the section when it is absent */
} env_rule;

static const env_rule rules[] = {
    {"TASK_LIMIT", "config", "task_limit", ENV_INT, true},
    {"ONDEMAND_CLONE_LIMIT", "config", "ondemand_clone_limit", ENV_INT, true},
    {"MAX_ONDEMAND_INSTANCES_PER_REQUEST", "config", "max_ondemand_instances_per_request", ENV_INT,
     true},
    {"MIGRATION_LIMIT", "config", "migration_limit", ENV_INT, true},
    {"VM_CHECKTIME", "config", "vm_checktime", ENV_INT, true},
    {"VM_LIFETIME", "config", "vm_lifetime", ENV_INT, true},
    {"MAX_LIFETIME_UPPER_LIMIT", "config", "max_lifetime_upper_limit", ENV_INT, true},
    {"READY_TTL", "config", "ready_ttl", ENV_INT, true},
    {"ONDEMAND_REQUEST_TTL", "config", "ondemand_request_ttl", ENV_INT, true},
    {"PREFIX", "config", "prefix", ENV_STR, true},
    {"LOGFILE", "config", "logfile", ENV_STR, true},
    {"SITE_NAME", "config", "site_name", ENV_STR, true},
    {"DOMAIN", "config", "domain", ENV_STR, true},
    {"CLONE_TARGET", "config", "clone_target", ENV_STR, true},
    {"TIMEOUT", "config", "timeout", ENV_INT, true},
    {"TIMEOUT_NOTIFICATION", "config", "timeout_notification", ENV_INT, true},
    {"VM_LIFETIME_AUTH", "config", "vm_lifetime_auth", ENV_INT, true},
    {"MAX_TRIES", "config", "max_tries", ENV_INT, true},
    {"RETRY_FACTOR", "config", "retry_factor", ENV_INT, true},
    {"CREATE_FOLDERS", "config", "create_folders", ENV_BOOL, true},
    {"EXPERIMENTAL_FEATURES", "config", "experimental_features", ENV_BOOL, true},
    {"USAGE_STATS", "config", "usage_stats", ENV_BOOL, true},
    {"REQUEST_LOGGER", "config", "request_logger", ENV_BOOL, true},
    {"CREATE_TEMPLATE_DELTA_DISKS", "config", "create_template_delta_disks", ENV_BOOL, true},
    {"PURGE_UNCONFIGURED_RESOURCES", "config", "purge_unconfigured_resources", ENV_BOOL, true},
    {"PURGE_UNCONFIGURED_FOLDERS", "config", "purge_unconfigured_resources", ENV_BOOL, true},
    {"CREATE_LINKED_CLONES", "config", "create_linked_clones", ENV_LINKED, true},
    {"REDIS_SERVER", "redis", "server", ENV_STR, true},
    {"REDIS_PORT", "redis", "port", ENV_INT, true},
    {"REDIS_PASSWORD", "redis", "password", ENV_STR, true},
    {"REDIS_DATA_TTL", "redis", "data_ttl", ENV_INT, true},
    {"REDIS_CONNECTION_POOL_SIZE", "redis", "connection_pool_size", ENV_INT, true},
    {"REDIS_CONNECTION_POOL_TIMEOUT", "redis", "connection_pool_timeout", ENV_INT, true},
    {"REDIS_RECONNECT_ATTEMPTS", "redis", "reconnect_attempts", ENV_JSON, true},
    {"STATSD_SERVER", "statsd", "server", ENV_STR, true},
    {"STATSD_PREFIX", "statsd", "prefix", ENV_STR, false},
    {"STATSD_PORT", "statsd", "port", ENV_INT, false},
    {"GRAPHITE_SERVER", "graphite", "server", ENV_STR, true},
    {"GRAPHITE_PREFIX", "graphite", "prefix", ENV_STR, false},
    {"GRAPHITE_PORT", "graphite", "port", ENV_INT, false},
    {"VMPOOLER_TRACING_ENABLED", "tracing", "enabled", ENV_BOOL, true},
    {"VMPOOLER_TRACING_JAEGER_HOST", "tracing", "jaeger_host", ENV_STR, true},
    {"AUTH_PROVIDER", "auth", "provider", ENV_STR, true},
    {"LDAP_HOST", "ldap", "host", ENV_STR, false},
    {"LDAP_PORT", "ldap", "port", ENV_INT, false},
    {"LDAP_BASE", "ldap", "base", ENV_STR, false},
    {"LDAP_USER_OBJECT", "ldap", "user_object", ENV_STR, false},
};

/* The map a rule writes into, or NULL (with a warning when the variable
 * cannot apply). */
static vmp_cfg_node *rule_target(vmp_cfg_node *root, const env_rule *r, vmp_cfg_mark mark,
                                 vmp_cfg_diag *d)
{
    char path[128];
    vmp_cfg_path(path, sizeof path, strcmp(r->section, "ldap") == 0 ? "auth.ldap" : r->section,
                 r->key);
    if (strcmp(r->section, "ldap") != 0) {
        vmp_cfg_node *s = section(root, r->section, r->creates, mark, d);
        if (!s && !vmp_cfg_get(root, r->section))
            vmp_cfg_diag_warn(d, mark, path, "ignored: the configuration has no :%s: section",
                              r->section);
        return s;
    }
    vmp_cfg_node *auth = section(root, "auth", false, mark, d);
    if (!auth) {
        if (!vmp_cfg_get(root, "auth"))
            vmp_cfg_diag_warn(d, mark, path, "ignored: the configuration has no :auth: section");
        return NULL;
    }
    return section(auth, "ldap", true, mark, d);
}

static vmp_cfg_node *rule_value(const env_rule *r, const char *val, vmp_cfg_mark mark,
                                const char *path, vmp_cfg_diag *d)
{
    switch (r->kind) {
    case ENV_INT:
        if (!strpbrk(val, "0123456789")) {
            vmp_cfg_diag_warn(d, mark, path, "ignored: \"%s\" has no digits", val);
            return NULL;
        }
        return text_node(val, false);
    case ENV_LINKED:
        if (strcasecmp(val, "true") != 0 && strcasecmp(val, "false") != 0) {
            vmp_cfg_diag_warn(d, mark, path, "ignored: \"%s\" is neither true nor false", val);
            return NULL;
        }
        return text_node(val, false);
    case ENV_BOOL:
        return text_node(val, false);
    case ENV_JSON:
        return json_list_node(val);
    default:
        return text_node(val, true);
    }
}

static int apply_rule(vmp_cfg_node *root, const env_rule *r, const char *val, vmp_cfg_diag *d)
{
    vmp_cfg_mark mark = env_mark(root, r->var, d);
    if (!mark.file)
        return VMP_ENOMEM;
    char path[128];
    vmp_cfg_path(path, sizeof path, strcmp(r->section, "ldap") == 0 ? "auth.ldap" : r->section,
                 r->key);
    if (strcmp(r->var, "PURGE_UNCONFIGURED_FOLDERS") == 0)
        vmp_cfg_diag_warn(d, mark, path, "deprecated: use PURGE_UNCONFIGURED_RESOURCES");
    vmp_cfg_node *target = rule_target(root, r, mark, d);
    if (!target)
        return d->oom ? VMP_ENOMEM : 0;
    vmp_cfg_node *value = rule_value(r, val, mark, path, d);
    if (!value)
        return d->oom ? VMP_ENOMEM : 0;
    return set_node(target, r->key, value, mark, d);
}

int vmp_cfg_apply_env(vmp_cfg_node *root, const vmp_config_opts *opts, vmp_cfg_diag *d)
{
    if (opts && opts->no_env)
        return 0;
    for (size_t i = 0; i < VMP_ARRAY_LEN(rules); i++) {
        const char *val = vmp_cfg_getenv(opts, rules[i].var);
        if (!val)
            continue;
        int rc = apply_rule(root, &rules[i], val, d);
        if (rc)
            return rc;
    }
    return d->oom ? VMP_ENOMEM : 0;
}

/* ---- extra_config -------------------------------------------------------- */

static bool node_equal(const vmp_cfg_node *a, const vmp_cfg_node *b)
{
    vmp_cfg_kind k = vmp_cfg_kind_of(a);
    if (k != vmp_cfg_kind_of(b))
        return false;
    if (k == VMP_CFG_SCALAR)
        return strcmp(vmp_cfg_scalar(a), vmp_cfg_scalar(b)) == 0;
    if (k == VMP_CFG_NULL)
        return true;
    if (vmp_cfg_len(a) != vmp_cfg_len(b))
        return false;
    for (size_t i = 0; i < vmp_cfg_len(a); i++) {
        if (k == VMP_CFG_SEQ && !node_equal(vmp_cfg_at(a, i), vmp_cfg_at(b, i)))
            return false;
        if (k == VMP_CFG_MAP) {
            const vmp_cfg_node *bv;
            if (!vmp_cfg_lookup(b, vmp_cfg_key_at(a, i), &bv, NULL) ||
                !node_equal(vmp_cfg_at(a, i), bv))
                return false;
        }
    }
    return true;
}

/* Lists merge as a union: items of src not already in dst are appended. */
static int union_lists(vmp_cfg_node *dst, const vmp_cfg_node *src)
{
    for (size_t i = 0; i < vmp_cfg_len(src); i++) {
        const vmp_cfg_node *item = vmp_cfg_at(src, i);
        bool found = false;
        for (size_t j = 0; j < vmp_cfg_len(dst) && !found; j++)
            found = node_equal(vmp_cfg_at(dst, j), item);
        if (!found && vmp_cfg_seq_push(dst, vmp_cfg_clone(item)))
            return VMP_ENOMEM;
    }
    return 0;
}

/* vmpooler's `config.deep_merge(extra)` (deep_merge gem, preserving): maps
 * merge recursively, lists are united, and a value already set in dst (not
 * null or false) is kept; anything dst lacks comes from src. */
static int merge_preserving(vmp_cfg_node *dst, const vmp_cfg_node *src)
{
    for (size_t i = 0; i < vmp_cfg_len(src); i++) {
        const char *key = vmp_cfg_key_at(src, i);
        const vmp_cfg_node *sv = vmp_cfg_at(src, i);
        vmp_cfg_node *dv = vmp_cfg_get_mut(dst, key);
        int rc = 0;
        if (vmp_cfg_kind_of(sv) == VMP_CFG_NULL && dv)
            continue;
        if (vmp_cfg_falsy(dv))
            rc = vmp_cfg_map_set_marked(dst, key, vmp_cfg_key_is_symbol(src, i),
                                        vmp_cfg_key_mark_at(src, i), vmp_cfg_clone(sv));
        else if (vmp_cfg_kind_of(dv) == VMP_CFG_MAP && vmp_cfg_kind_of(sv) == VMP_CFG_MAP)
            rc = merge_preserving(dv, sv);
        else if (vmp_cfg_kind_of(dv) == VMP_CFG_SEQ && vmp_cfg_kind_of(sv) == VMP_CFG_SEQ)
            rc = union_lists(dv, sv);
        if (rc)
            return rc;
    }
    return 0;
}

/* Reads, parses and merges one extra file; problems are recorded in d. */
static int merge_one(vmp_cfg_node *root, const char *file, vmp_cfg_mark at, vmp_cfg_diag *d)
{
    char why[256];
    char *text = NULL, *name = strdup(file);
    size_t len;
    vmp_cfg_node *extra = NULL;
    if (!name || vmp_cfg_set_file_owner(root, name))
        return d->oom = true, VMP_ENOMEM;
    int rc = vmp_cfg_read_file(name, &text, &len, why, sizeof why);
    if (rc) {
        vmp_cfg_diag_error(d, at, "config.extra_config", "cannot read \"%s\": %s", file, why);
        return rc;
    }
    rc = vmp_cfg_yaml_parse(text, len, name, d, &extra);
    free(text);
    if (rc)
        return rc;
    if (vmp_cfg_kind_of(extra) != VMP_CFG_MAP) {
        char got[80];
        vmp_cfg_describe(extra, got, sizeof got);
        vmp_cfg_diag_error(d, vmp_cfg_mark_of(extra), "top level", "expected a map, got %s", got);
        rc = VMP_EINVAL;
    } else {
        vmp_log(VMP_LOG_INFO, "config", "merging extra configuration file %s", file);
        rc = merge_preserving(root, extra);
        if (rc)
            d->oom = true;
    }
    vmp_cfg_free(extra);
    return rc;
}

/* Sets :config: extra_config from EXTRA_CONFIG (vmpooler does that first). */
static int extra_from_env(vmp_cfg_node *root, const vmp_config_opts *opts, vmp_cfg_diag *d)
{
    const char *env = vmp_cfg_getenv(opts, "EXTRA_CONFIG");
    if (!env)
        return 0;
    vmp_cfg_mark mark = env_mark(root, "EXTRA_CONFIG", d);
    if (!mark.file)
        return VMP_ENOMEM;
    vmp_cfg_node *config = section(root, "config", true, mark, d);
    if (!config)
        return d->oom ? VMP_ENOMEM : 0; /* not a map: reported by the validation */
    return set_node(config, "extra_config", text_node(env, true), mark, d);
}

int vmp_cfg_merge_extra(vmp_cfg_node *root, const vmp_config_opts *opts, vmp_cfg_diag *d)
{
    if (vmp_cfg_kind_of(root) != VMP_CFG_MAP)
        return 0;
    int rc = extra_from_env(root, opts, d);
    if (rc)
        return rc;
    const vmp_cfg_node *config = vmp_cfg_get(root, "config");
    if (vmp_cfg_kind_of(config) != VMP_CFG_MAP)
        return 0;
    vmp_strlist files = VMP_STRLIST_INIT;
    vmp_cfg_mark at = {NULL, 0, 0};
    vmp_cfg_lookup(config, "extra_config", NULL, &at);
    if (vmp_cfg_read_strlist(d, config, "config", "extra_config", true, &files, NULL) < 0) {
        vmp_strlist_clear(&files);
        return VMP_EINVAL;
    }
    bool failed = false;
    for (size_t i = 0; i < files.n && !d->oom; i++)
        failed |= merge_one(root, files.v[i], at, d) != 0;
    vmp_strlist_clear(&files);
    if (d->oom)
        return VMP_ENOMEM;
    return failed ? VMP_EINVAL : 0;
}

/* ---- known variables (read by config_keys.c) ----------------------------- */

const char *vmp_cfg_env_override(size_t i, const char **section, const char **key)
{
    if (i >= VMP_ARRAY_LEN(rules))
        return NULL;
    if (section)
        *section = rules[i].section;
    if (key)
        *key = rules[i].key;
    return rules[i].var;
}
