/*
 * config: loading entry points, the global sections (:config:, :redis:,
 * :auth:, metrics, :api:, ...) and the model's lifetime. Pools, providers and
 * DNS configurations are in config_pools.c; YAML in config_yaml.c;
 * environment overrides and extra files in config_env.c; diagnostics and
 * typed readers in config_read.c.
 *
 * Loading is: read file -> YAML tree -> merge extra_config files -> apply
 * environment overrides -> normalise (legacy :vsphere:, missing sections) ->
 * build the typed model, recording every problem -> report.
 */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config_priv.h"
#include "log.h"

/* ---- :config: ------------------------------------------------------------ */

typedef struct int_key {
    const char *key;
    size_t off;
    long long min, max, def;
} int_key;

typedef struct bool_key {
    const char *key;
    size_t off;
    bool def;
} bool_key;

typedef struct str_key {
    const char *key;
    size_t off;
    const char *def;
} str_key;

#define G(field) offsetof(vmp_global_cfg, field)
#define NOLIMIT LLONG_MAX

static const int_key global_ints[] = {
    {"task_limit", G(task_limit), 1, 10000, 10},
    {"timeout", G(timeout), 0, NOLIMIT, 15},
    {"timeout_notification", G(timeout_notification), 0, NOLIMIT, 5},
    {"vm_checktime", G(vm_checktime), 0, NOLIMIT, 1},
    {"vm_lifetime", G(vm_lifetime), 0, NOLIMIT, 24},
    {"vm_lifetime_auth", G(vm_lifetime_auth), 0, NOLIMIT, 0},
    {"max_lifetime_upper_limit", G(max_lifetime_upper_limit), 0, NOLIMIT, 0},
    {"ready_ttl", G(ready_ttl), 0, NOLIMIT, 60},
    {"migration_limit", G(migration_limit), 0, 10000, 0},
    {"max_tries", G(max_tries), 1, 1000, 3},
    {"retry_factor", G(retry_factor), 0, NOLIMIT, 10},
    {"host_selection_max_age", G(host_selection_max_age), 0, NOLIMIT, 60},
    {"utilization_limit", G(utilization_limit), 0, 100, 90},
    {"ondemand_clone_limit", G(ondemand_clone_limit), 0, 10000, 10},
    {"max_ondemand_instances_per_request", G(max_ondemand_instances_per_request), 0, 100000, 10},
    {"ondemand_request_ttl", G(ondemand_request_ttl), 0, NOLIMIT, 5},
    {"max_vm_retries", G(max_vm_retries), 0, NOLIMIT, 3},
    {"dlq_ttl", G(dlq_ttl), 0, NOLIMIT, 168},
    {"dlq_max_entries", G(dlq_max_entries), 0, NOLIMIT, 10000},
    {"purge_interval", G(purge_interval), 1, NOLIMIT, 3600},
    {"max_pending_age", G(max_pending_age), 0, NOLIMIT, 7200},
    {"max_ready_age", G(max_ready_age), 0, NOLIMIT, 86400},
    {"max_completed_age", G(max_completed_age), 0, NOLIMIT, 3600},
    {"max_orphaned_age", G(max_orphaned_age), 0, NOLIMIT, 86400},
    {"health_check_interval", G(health_check_interval), 1, NOLIMIT, 300},
    {"circuit_breaker_failure_threshold", G(circuit_breaker_failure_threshold), 1, NOLIMIT, 5},
    {"circuit_breaker_timeout", G(circuit_breaker_timeout), 0, NOLIMIT, 30},
    {"circuit_breaker_half_open_attempts", G(circuit_breaker_half_open_attempts), 1, NOLIMIT, 3},
    {"connection_pool_timeout_min", G(connection_pool_timeout_min), 0, NOLIMIT, 5},
    {"connection_pool_timeout_max", G(connection_pool_timeout_max), 0, NOLIMIT, 60},
    {"connection_pool_timeout_initial", G(connection_pool_timeout_initial), 0, NOLIMIT, 30},
    {"connection_pool_monitor_interval", G(connection_pool_monitor_interval), 1, NOLIMIT, 10},
};

static const bool_key global_bools[] = {
    {"check_ready_vm_hostname_for_mismatch", G(check_ready_vm_hostname_for_mismatch), true},
    {"manage_host_selection", G(manage_host_selection), false},
    {"create_folders", G(create_folders), false},
    {"create_template_delta_disks", G(create_template_delta_disks), false},
    {"create_linked_clones", G(create_linked_clones), true},
    {"experimental_features", G(experimental_features), false},
    /* the old name first, so the new one wins when both are present */
    {"purge_unconfigured_folders", G(purge_unconfigured_resources), false},
    {"purge_unconfigured_resources", G(purge_unconfigured_resources), false},
    {"usage_stats", G(usage_stats), false},
    {"request_logger", G(request_logger), false},
    {"dlq_enabled", G(dlq_enabled), false},
    {"purge_enabled", G(purge_enabled), false},
    {"purge_dry_run", G(purge_dry_run), false},
    {"health_check_enabled", G(health_check_enabled), false},
    {"rate_limiting_enabled", G(rate_limiting_enabled), false},
    {"circuit_breaker_enabled", G(circuit_breaker_enabled), true},
    {"adaptive_timeout_enabled", G(adaptive_timeout_enabled), true},
    {"connection_pool_monitor_enabled", G(connection_pool_monitor_enabled), true},
};

static const str_key global_strs[] = {
    {"site_name", G(site_name), "<b>vmpooler</b>"},
    {"logfile", G(logfile), NULL},
    {"prefix", G(prefix), ""},
    {"clone_target", G(clone_target), NULL},
    {"domain", G(domain), NULL},
    {"ssh_key", G(ssh_key), NULL},
};

#define H(field) offsetof(vmp_global_cfg, health_thresholds.field)
static const int_key health_ints[] = {
    {"pending_queue_max", H(pending_queue_max), 0, NOLIMIT, 100},
    {"ready_queue_max", H(ready_queue_max), 0, NOLIMIT, 500},
    {"dlq_max_warning", H(dlq_max_warning), 0, NOLIMIT, 100},
    {"dlq_max_critical", H(dlq_max_critical), 0, NOLIMIT, 1000},
    {"stuck_vm_age_threshold", H(stuck_vm_age_threshold), 0, NOLIMIT, 7200},
    {"stuck_vm_max_warning", H(stuck_vm_max_warning), 0, NOLIMIT, 10},
    {"stuck_vm_max_critical", H(stuck_vm_max_critical), 0, NOLIMIT, 50},
};

static const char *const global_known[] = {"site_name",
                                           "logfile",
                                           "task_limit",
                                           "timeout",
                                           "timeout_notification",
                                           "vm_checktime",
                                           "vm_lifetime",
                                           "vm_lifetime_auth",
                                           "max_lifetime_upper_limit",
                                           "ready_ttl",
                                           "allowed_tags",
                                           "domain",
                                           "prefix",
                                           "clone_target",
                                           "migration_limit",
                                           "max_tries",
                                           "retry_factor",
                                           "check_loop_delay_min",
                                           "check_loop_delay_max",
                                           "check_loop_delay_decay",
                                           "check_ready_vm_hostname_for_mismatch",
                                           "keep_discovered_vms", /* engine (docs/engine.md) */
                                           "manage_host_selection",
                                           "host_selection_max_age",
                                           "utilization_limit",
                                           "create_folders",
                                           "create_template_delta_disks",
                                           "create_linked_clones",
                                           "experimental_features",
                                           "purge_unconfigured_resources",
                                           "purge_unconfigured_folders",
                                           "backend_weight",
                                           "usage_stats",
                                           "request_logger",
                                           "extra_config",
                                           "ondemand_clone_limit",
                                           "max_ondemand_instances_per_request",
                                           "ondemand_request_ttl",
                                           "max_vm_retries",
                                           "dlq_enabled",
                                           "dlq_ttl",
                                           "dlq_max_entries",
                                           "purge_enabled",
                                           "purge_interval",
                                           "purge_dry_run",
                                           "max_pending_age",
                                           "max_ready_age",
                                           "max_completed_age",
                                           "max_orphaned_age",
                                           "max_request_age",
                                           "health_check_enabled",
                                           "health_check_interval",
                                           "health_thresholds",
                                           "circuit_breaker_enabled",
                                           "circuit_breaker_failure_threshold",
                                           "circuit_breaker_timeout",
                                           "circuit_breaker_half_open_attempts",
                                           "adaptive_timeout_enabled",
                                           "connection_pool_timeout_min",
                                           "connection_pool_timeout_max",
                                           "connection_pool_timeout_initial",
                                           "connection_pool_monitor_enabled",
                                           "connection_pool_monitor_interval",
                                           "rate_limiting_enabled",
                                           "ssh_key",
                                           "lua",
                                           "lua_sandbox",
                                           "lua_instruction_limit",
                                           "lua_time_limit",
                                           NULL};

static void read_ints(vmp_cfg_diag *d, const vmp_cfg_node *map, const char *prefix, void *base,
                      const int_key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        long long *p = (long long *)((char *)base + keys[i].off);
        *p = keys[i].def;
        vmp_cfg_read_int(d, map, prefix, keys[i].key, keys[i].min, keys[i].max, p);
    }
}

static void read_strs(vmp_cfg_diag *d, const vmp_cfg_node *map, const char *prefix, void *base,
                      const str_key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        vmp_cfg_read_str(d, map, prefix, keys[i].key, keys[i].def,
                         (char **)((char *)base + keys[i].off));
}

/* Loop timing as vmpooler sanitises it: decay <= 1.0 becomes 2.0; a max
 * below min becomes min. */
static void sanitise_delays(double min, double *max, double *decay)
{
    if (*decay <= 1.0)
        *decay = 2.0;
    if (*max < min)
        *max = min;
}

static void read_backend_weight(vmp_cfg_diag *d, vmp_global_cfg *g)
{
    if (vmp_cfg_read_map(d, g->node, "config", "backend_weight", &g->backend_weight) <= 0)
        return;
    for (size_t i = 0; i < vmp_cfg_len(g->backend_weight); i++) {
        long long w = 0;
        vmp_cfg_read_int(d, g->backend_weight, "config.backend_weight",
                         vmp_cfg_key_at(g->backend_weight, i), 0, NOLIMIT, &w);
    }
}

static void build_global(vmp_config *cfg, vmp_cfg_diag *d)
{
    vmp_global_cfg *g = &cfg->global;
    const vmp_cfg_node *m = NULL;
    vmp_cfg_mark mark;
    vmp_cfg_read_map(d, cfg->root, "", "config", &m);
    g->node = m;
    read_ints(d, m, "config", g, global_ints, VMP_ARRAY_LEN(global_ints));
    for (size_t i = 0; i < VMP_ARRAY_LEN(global_bools); i++) {
        bool *p = (bool *)((char *)g + global_bools[i].off);
        /* two keys may share a field (old and new name): default it once */
        if (i == 0 || global_bools[i].off != global_bools[i - 1].off)
            *p = global_bools[i].def;
        vmp_cfg_read_bool(d, m, "config", global_bools[i].key, p);
    }
    read_strs(d, m, "config", g, global_strs, VMP_ARRAY_LEN(global_strs));
    g->check_loop_delay_min = 5;
    g->check_loop_delay_max = 60;
    g->check_loop_delay_decay = 2.0;
    vmp_cfg_read_double(d, m, "config", "check_loop_delay_min", 0, true, &g->check_loop_delay_min);
    vmp_cfg_read_double(d, m, "config", "check_loop_delay_max", 0, false, &g->check_loop_delay_max);
    vmp_cfg_read_double(d, m, "config", "check_loop_delay_decay", -INFINITY, false,
                        &g->check_loop_delay_decay);
    sanitise_delays(g->check_loop_delay_min, &g->check_loop_delay_max, &g->check_loop_delay_decay);
    g->allowed_tags_set =
        vmp_cfg_read_strlist(d, m, "config", "allowed_tags", false, &g->allowed_tags, NULL) != 0;
    read_backend_weight(d, g);
    const vmp_cfg_node *health = NULL;
    vmp_cfg_read_map(d, m, "config", "health_thresholds", &health);
    read_ints(d, health, "config.health_thresholds", g, health_ints, VMP_ARRAY_LEN(health_ints));
    vmp_cfg_read_strlist(d, m, "config", "lua", false, &cfg->lua_files, NULL);
    /* extra_config was checked (and merged) while parsing; only record it */
    vmp_cfg_diag quiet;
    vmp_cfg_diag_init(&quiet, d->name);
    vmp_cfg_read_strlist(&quiet, m, "config", "extra_config", true, &g->extra_config, NULL);
    d->oom |= quiet.oom;
    vmp_cfg_diag_clear(&quiet);
    if (vmp_cfg_lookup(m, "domain", NULL, &mark) && g->domain)
        vmp_cfg_diag_warn(d, mark, "config.domain",
                          "removed in vmpooler 3 (use :dns_configs:); still honoured for older "
                          "configurations");
    vmp_cfg_warn_unknown(d, m, "config", global_known);
}

/* ---- :redis: ------------------------------------------------------------- */

static const char *const redis_known[] = {"server",
                                          "port",
                                          "password",
                                          "username",
                                          "data_ttl",
                                          "connection_pool_size",
                                          "connection_pool_timeout",
                                          "reconnect_attempts",
                                          "socket",
                                          "db",
                                          "state_dir",
                                          "key_prefix",
                                          NULL};

static void read_reconnect_attempts(vmp_cfg_diag *d, const vmp_cfg_node *m, vmp_redis_cfg *r)
{
    const vmp_cfg_node *v = vmp_cfg_get(m, "reconnect_attempts");
    long long n = r->reconnect_attempts;
    if (vmp_cfg_kind_of(v) != VMP_CFG_SEQ) {
        vmp_cfg_read_int(d, m, "redis", "reconnect_attempts", 0, 1000, &n);
        r->reconnect_attempts = (int)n;
        return;
    }
    /* a list of delays (redis-rb): one attempt per item */
    char path[64];
    for (size_t i = 0; i < vmp_cfg_len(v); i++) {
        double x;
        if (vmp_cfg_as_double(vmp_cfg_at(v, i), &x) != 0 || x < 0) {
            char got[80];
            snprintf(path, sizeof path, "redis.reconnect_attempts[%zu]", i);
            vmp_cfg_describe(vmp_cfg_at(v, i), got, sizeof got);
            vmp_cfg_diag_error(d, vmp_cfg_mark_of(vmp_cfg_at(v, i)), path,
                               "expected a non-negative number of seconds, got %s", got);
        }
    }
    r->reconnect_attempts = (int)vmp_cfg_len(v);
}

static void build_redis(vmp_config *cfg, vmp_cfg_diag *d)
{
    vmp_redis_cfg *r = &cfg->redis;
    const vmp_cfg_node *m = NULL;
    vmp_cfg_read_map(d, cfg->root, "", "redis", &m);
    long long port = 6379, db = 0, pool_size = 10;
    r->data_ttl = 168;
    r->connection_pool_timeout = 5;
    r->reconnect_attempts = 10;
    vmp_cfg_read_str(d, m, "redis", "server", NULL, &r->server);
    vmp_cfg_read_int(d, m, "redis", "port", 1, 65535, &port);
    vmp_cfg_read_str(d, m, "redis", "socket", NULL, &r->socket);
    vmp_cfg_read_str(d, m, "redis", "password", NULL, &r->password);
    vmp_cfg_read_int(d, m, "redis", "db", 0, INT_MAX, &db);
    vmp_cfg_read_int(d, m, "redis", "data_ttl", 0, NOLIMIT, &r->data_ttl);
    vmp_cfg_read_int(d, m, "redis", "connection_pool_size", 1, 10000, &pool_size);
    vmp_cfg_read_double(d, m, "redis", "connection_pool_timeout", 0, false,
                        &r->connection_pool_timeout);
    read_reconnect_attempts(d, m, r);
    vmp_cfg_read_str(d, m, "redis", "state_dir",
                     geteuid() == 0 ? "/var/lib/vmpool" : "./vmpool-state", &r->state_dir);
    vmp_cfg_read_str(d, m, "redis", "key_prefix", "vmpooler", &r->prefix);
    if (r->prefix && !*r->prefix) {
        vmp_cfg_mark mark;
        vmp_cfg_lookup(m, "key_prefix", NULL, &mark);
        vmp_cfg_diag_error(d, mark, "redis.key_prefix", "must not be empty");
    }
    r->port = (int)port;
    r->db = (int)db;
    r->connection_pool_size = (int)pool_size;
    vmp_cfg_warn_unknown(d, m, "redis", redis_known);
}

/* ---- :auth: -------------------------------------------------------------- */

static const char *const auth_known[] = {"provider", "ldap", NULL};
static const char *const ldap_known[] = {
    "host", "port", "base", "user_object", "encryption", "service_account_hash", NULL};

static void build_ldap(vmp_config *cfg, vmp_cfg_diag *d)
{
    vmp_auth_cfg *a = &cfg->auth;
    long long port = 389;
    const vmp_cfg_node *sub = NULL;
    if (vmp_cfg_read_map(d, a->node, "auth", "ldap", &a->ldap) < 0)
        return;
    bool is_ldap = a->provider && strcmp(a->provider, "ldap") == 0;
    if (is_ldap && !a->ldap) {
        vmp_cfg_diag_error(d, vmp_cfg_mark_of(a->node), "auth",
                           "missing required key \"ldap\" (the ldap provider needs it)");
        return;
    }
    vmp_cfg_read_str(d, a->ldap, "auth.ldap", "host", NULL, &a->ldap_host);
    vmp_cfg_read_int(d, a->ldap, "auth.ldap", "port", 1, 65535, &port);
    vmp_cfg_read_strlist(d, a->ldap, "auth.ldap", "base", false, &a->ldap_base, NULL);
    vmp_cfg_read_strlist(d, a->ldap, "auth.ldap", "user_object", false, &a->ldap_user_object, NULL);
    vmp_cfg_read_map(d, a->ldap, "auth.ldap", "encryption", &sub);
    vmp_cfg_read_map(d, a->ldap, "auth.ldap", "service_account_hash", &sub);
    a->ldap_port = (int)port;
    if (is_ldap && !a->ldap_host)
        vmp_cfg_diag_error(d, vmp_cfg_mark_of(a->ldap), "auth.ldap",
                           "missing required key \"host\"");
    vmp_cfg_warn_unknown(d, a->ldap, "auth.ldap", ldap_known);
}

static void build_auth(vmp_config *cfg, const vmp_config_opts *opts, vmp_cfg_diag *d)
{
    vmp_auth_cfg *a = &cfg->auth;
    vmp_cfg_mark mark = {NULL, 0, 0};
    cfg->debug = vmp_cfg_getenv(opts, "VMPOOLER_DEBUG") != NULL;
    a->ldap_port = 389;
    if (vmp_cfg_read_map(d, cfg->root, "", "auth", &a->node) <= 0)
        return;
    vmp_cfg_lookup(a->node, "provider", NULL, &mark);
    if (vmp_cfg_read_str(d, a->node, "auth", "provider", NULL, &a->provider) == 0)
        vmp_cfg_diag_error(d, vmp_cfg_mark_of(a->node), "auth",
                           "missing required key \"provider\"");
    if (a->provider && strcmp(a->provider, "dummy") != 0 && strcmp(a->provider, "ldap") != 0)
        vmp_cfg_diag_error(d, mark, "auth.provider",
                           "unknown authentication provider \"%s\" (expected dummy or ldap)",
                           a->provider);
    if (a->provider && strcmp(a->provider, "dummy") == 0 && !cfg->debug)
        vmp_cfg_diag_warn(d, mark, "auth.provider",
                          "dummy authentication accepts any user whose password differs from the "
                          "name; it is meant for development (VMPOOLER_DEBUG)");
    build_ldap(cfg, d);
    vmp_cfg_warn_unknown(d, a->node, "auth", auth_known);
}

/* ---- metrics, graphs, tracing, api --------------------------------------- */

static const char *const statsd_known[] = {"server", "port", "prefix", NULL};
static const char *const prometheus_known[] = {"prefix", "prometheus_prefix", "prometheus_endpoint",
                                               NULL};
static const char *const graphs_known[] = {"server", "prefix", NULL};
static const char *const tracing_known[] = {"enabled", "jaeger_host", NULL};
static const char *const api_known[] = {"listen", NULL};

/* :statsd: or :graphite: (same shape, server required). Returns the map. */
static const vmp_cfg_node *read_sink(vmp_config *cfg, vmp_cfg_diag *d, const char *section,
                                     long long def_port, char **server, long long *port,
                                     char **prefix)
{
    const vmp_cfg_node *m = NULL;
    *port = def_port;
    vmp_cfg_read_map(d, cfg->root, "", section, &m);
    vmp_cfg_read_str(d, m, section, "server", NULL, server);
    vmp_cfg_read_int(d, m, section, "port", 1, 65535, port);
    vmp_cfg_read_str(d, m, section, "prefix", "vmpooler", prefix);
    if (m && !*server && !vmp_cfg_get(m, "server"))
        vmp_cfg_diag_error(d, vmp_cfg_mark_of(m), section, "missing required key \"server\"");
    vmp_cfg_warn_unknown(d, m, section, statsd_known);
    return m;
}

static void take(char **dst, char **src)
{
    free(*dst);
    *dst = *src;
    *src = NULL;
}

static void build_metrics(vmp_config *cfg, vmp_cfg_diag *d)
{
    vmp_metrics_cfg *mc = &cfg->metrics;
    char *s_server = NULL, *s_prefix = NULL, *g_server = NULL, *g_prefix = NULL;
    long long s_port, g_port;
    const vmp_cfg_node *statsd = read_sink(cfg, d, "statsd", 8125, &s_server, &s_port, &s_prefix);
    const vmp_cfg_node *graphite =
        read_sink(cfg, d, "graphite", 2003, &g_server, &g_port, &g_prefix);
    const vmp_cfg_node *prom = NULL, *graphs = NULL;
    vmp_cfg_read_map(d, cfg->root, "", "prometheus", &prom);
    vmp_cfg_read_str(d, prom, "prometheus", "prometheus_prefix", "vmpooler",
                     &mc->prometheus_prefix);
    vmp_cfg_read_str(d, prom, "prometheus", "prometheus_endpoint", "/prometheus",
                     &mc->prometheus_endpoint);
    vmp_cfg_warn_unknown(d, prom, "prometheus", prometheus_known);

    /* the dashboard's graph server: :graphs:, else :graphite: */
    vmp_cfg_read_map(d, cfg->root, "", "graphs", &graphs);
    vmp_cfg_read_str(d, graphs, "graphs", "server", g_server, &cfg->graphs.server);
    vmp_cfg_read_str(d, graphs, "graphs", "prefix", g_prefix ? g_prefix : "vmpooler",
                     &cfg->graphs.prefix);
    vmp_cfg_warn_unknown(d, graphs, "graphs", graphs_known);

    if (statsd) {
        mc->kind = strdup("statsd");
        take(&mc->server, &s_server);
        take(&mc->prefix, &s_prefix);
        mc->port = (int)s_port;
    } else if (graphite) {
        mc->kind = strdup("graphite");
        take(&mc->server, &g_server);
        take(&mc->prefix, &g_prefix);
        mc->port = (int)g_port;
    } else if (prom) {
        mc->kind = strdup("prometheus");
        vmp_cfg_read_str(d, prom, "prometheus", "prefix", "vmpooler", &mc->prefix);
    }
    if (!mc->prefix)
        mc->prefix = strdup("vmpooler");
    if ((statsd || graphite || prom) && !mc->kind)
        d->oom = true;
    free(s_server);
    free(s_prefix);
    free(g_server);
    free(g_prefix);
}

static void build_tracing(vmp_config *cfg, vmp_cfg_diag *d)
{
    const vmp_cfg_node *m = NULL;
    vmp_cfg_read_map(d, cfg->root, "", "tracing", &m);
    vmp_cfg_read_bool(d, m, "tracing", "enabled", &cfg->tracing.enabled);
    vmp_cfg_read_str(d, m, "tracing", "jaeger_host", "http://localhost:14268/api/traces",
                     &cfg->tracing.jaeger_host);
    vmp_cfg_warn_unknown(d, m, "tracing", tracing_known);
}

/* "host:port", "[v6]:port", ":port" or "port". Returns 0 or -1. */
static int parse_listen(const char *s, char **host, int *port)
{
    const char *colon, *h = s;
    size_t hlen;
    if (*s == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return -1;
        h = s + 1;
        hlen = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        hlen = colon ? (size_t)(colon - s) : 0;
    }
    const char *p = colon ? colon + 1 : s;
    long long v;
    if (!*p || strspn(p, "0123456789") != strlen(p) || vmp_parse_long(p, &v) || v < 1 || v > 65535)
        return -1;
    if (colon && memchr(h, ':', hlen) && *s != '[')
        return -1; /* a bare IPv6 address needs brackets */
    if (hlen) {
        char *c = strndup(h, hlen);
        if (!c)
            return -2;
        free(*host);
        *host = c;
    }
    *port = (int)v;
    return 0;
}

static void build_api(vmp_config *cfg, vmp_cfg_diag *d)
{
    const vmp_cfg_node *m = NULL;
    char *listen = NULL;
    vmp_cfg_mark mark;
    cfg->api.listen_port = 4567;
    if (!(cfg->api.listen_host = strdup("127.0.0.1")))
        d->oom = true;
    vmp_cfg_read_map(d, cfg->root, "", "api", &m);
    if (vmp_cfg_read_str(d, m, "api", "listen", NULL, &listen) > 0) {
        int rc = parse_listen(listen, &cfg->api.listen_host, &cfg->api.listen_port);
        vmp_cfg_lookup(m, "listen", NULL, &mark);
        if (rc == -2)
            d->oom = true;
        else if (rc)
            vmp_cfg_diag_error(d, mark, "api.listen",
                               "expected \"host:port\" (port 1-65535), got \"%s\"", listen);
    }
    free(listen);
    vmp_cfg_warn_unknown(d, m, "api", api_known);
}

static void build_tagfilter(vmp_config *cfg, vmp_cfg_diag *d)
{
    if (vmp_cfg_read_map(d, cfg->root, "", "tagfilter", &cfg->tagfilter) <= 0)
        return;
    for (size_t i = 0; i < vmp_cfg_len(cfg->tagfilter); i++) {
        char *re = NULL;
        vmp_cfg_read_str(d, cfg->tagfilter, "tagfilter", vmp_cfg_key_at(cfg->tagfilter, i), NULL,
                         &re);
        free(re);
    }
}

/* ---- the top level ------------------------------------------------------- */

static const char *const top_known[] = {"config",      "redis",     "providers",   "pools",
                                        "auth",        "tagfilter", "statsd",      "graphite",
                                        "prometheus",  "graphs",    "dns_configs", "tracing",
                                        "rate_limits", "vsphere",   "api",         NULL};

/* Makes root[key] a map when it is absent or null (vmpooler's `||= {}`). */
static int ensure_map(vmp_cfg_node *root, const char *key, vmp_cfg_diag *d)
{
    const vmp_cfg_node *v = vmp_cfg_get(root, key);
    if (v && vmp_cfg_kind_of(v) != VMP_CFG_NULL)
        return 0;
    vmp_cfg_mark mark = vmp_cfg_mark_of(v);
    vmp_cfg_node *m = vmp_cfg_map_new();
    vmp_cfg_set_mark(m, mark);
    if (vmp_cfg_map_set_marked(root, key, true, mark, m))
        return d->oom = true, VMP_ENOMEM;
    return 0;
}

/* Legacy: a top-level :vsphere: is used as :providers: :vsphere: when that
 * entry is absent (reference §4.1 step 3). */
static int copy_legacy_vsphere(vmp_cfg_node *root, vmp_cfg_diag *d)
{
    const vmp_cfg_node *vs = NULL;
    if (vmp_cfg_read_map(d, root, "", "vsphere", &vs) <= 0)
        return 0;
    vmp_cfg_node *providers = vmp_cfg_get_mut(root, "providers");
    if (vmp_cfg_kind_of(providers) != VMP_CFG_MAP || vmp_cfg_get(providers, "vsphere"))
        return 0;
    vmp_cfg_mark km;
    vmp_cfg_lookup(root, "vsphere", NULL, &km);
    if (vmp_cfg_map_set_marked(providers, "vsphere", true, km, vmp_cfg_clone(vs)))
        return d->oom = true, VMP_ENOMEM;
    vmp_log(VMP_LOG_INFO, "config",
            "older configuration: copied the :vsphere: section to :providers: :vsphere:");
    return 0;
}

static int normalise(vmp_cfg_node *root, vmp_cfg_diag *d)
{
    if (ensure_map(root, "config", d) || ensure_map(root, "providers", d))
        return VMP_ENOMEM;
    return copy_legacy_vsphere(root, d);
}

static void build_sections(vmp_config *cfg, const vmp_config_opts *opts, vmp_cfg_diag *d)
{
    build_global(cfg, d);
    build_redis(cfg, d);
    vmp_cfg_build_providers(cfg, d);
    vmp_cfg_build_pools(cfg, opts, d);
    build_auth(cfg, opts, d);
    build_metrics(cfg, d);
    build_tracing(cfg, d);
    build_api(cfg, d);
    build_tagfilter(cfg, d);
    vmp_cfg_read_map(d, cfg->root, "", "rate_limits", &cfg->rate_limits);
    vmp_cfg_warn_unknown(d, cfg->root, "", top_known);
}

/* Lets the caller edit the tree before the model is built (Lua
 * configuration, opts->edit_tree). */
static int edit_tree(vmp_cfg_node *root, const char *name, const vmp_config_opts *opts,
                     vmp_cfg_diag *d)
{
    if (!opts || !opts->edit_tree)
        return 0;
    vmp_strlist errors = VMP_STRLIST_INIT;
    vmp_err err = {0};
    int rc = opts->edit_tree(root, name, opts->edit_ud, &errors, &err);
    for (size_t i = 0; i < errors.n; i++)
        vmp_cfg_diag_error(d, (vmp_cfg_mark){NULL, 0, 0}, NULL, "%s", errors.v[i]);
    if (rc != 0 && errors.n == 0)
        vmp_cfg_diag_error(d, (vmp_cfg_mark){NULL, 0, 0}, NULL, "%s", err.msg);
    vmp_strlist_clear(&errors);
    return rc;
}

/* Builds cfg from root (owned by cfg from the start). Problems go to d. */
static int build(vmp_cfg_node *root, const char *name, const vmp_config_opts *opts, vmp_cfg_diag *d,
                 vmp_config **out)
{
    vmp_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        vmp_cfg_free(root);
        return d->oom = true, VMP_ENOMEM;
    }
    cfg->root = root;
    cfg->loaded_at = vmp_now();
    if (!(cfg->path = strdup(name)))
        d->oom = true;
    if (vmp_cfg_kind_of(root) != VMP_CFG_MAP) {
        char got[80];
        vmp_cfg_describe(root, got, sizeof got);
        vmp_cfg_diag_error(d, vmp_cfg_mark_of(root), "top level", "expected a map, got %s", got);
    } else if (!d->oom && vmp_cfg_apply_env(root, opts, d) == 0 && normalise(root, d) == 0 &&
               edit_tree(root, name, opts, d) == 0) {
        build_sections(cfg, opts, d);
    }
    *out = cfg;
    return d->n_errors || d->oom ? VMP_EINVAL : 0;
}

/* ---- public entry points ------------------------------------------------- */

static int finish(vmp_cfg_diag *d, vmp_config *cfg, vmp_config **out, vmp_strlist *errors,
                  vmp_err *err)
{
    int rc = vmp_cfg_diag_finish(d, errors, cfg ? &cfg->warnings : NULL, err);
    vmp_cfg_diag_clear(d);
    if (rc) {
        vmp_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

/* Parses text into a tree with extra files merged; the file name string is
 * handed to the tree (owned). A problem with an extra file is recorded but
 * still gives the tree, so that validation reports everything at once. */
static int parse_text(const char *text, size_t len, char *file, const vmp_config_opts *opts,
                      vmp_cfg_diag *d, vmp_cfg_node **out)
{
    vmp_cfg_node *root = NULL;
    int rc = vmp_cfg_yaml_parse(text, len, file, d, &root);
    if (rc == 0 && vmp_cfg_set_file_owner(root, file)) {
        file = NULL;
        rc = VMP_ENOMEM;
        d->oom = true;
    } else if (rc == 0) {
        file = NULL;
        rc = vmp_cfg_merge_extra(root, opts, d) == VMP_ENOMEM ? VMP_ENOMEM : 0;
    }
    free(file);
    if (rc) {
        vmp_cfg_free(root);
        return rc;
    }
    *out = root;
    return 0;
}

static int parse_file(const char *path, const vmp_config_opts *opts, vmp_cfg_diag *d,
                      vmp_cfg_node **out, int *read_rc)
{
    char why[256], *text = NULL, *file = strdup(path);
    size_t len = 0;
    if (!file)
        return d->oom = true, VMP_ENOMEM;
    int rc = vmp_cfg_read_file(path, &text, &len, why, sizeof why);
    if (rc) {
        /* no mark: the message is "<path>: cannot read: ..." (d->name) */
        vmp_cfg_diag_error(d, (vmp_cfg_mark){NULL, 0, 0}, NULL, "cannot read: %s", why);
        free(file);
        *read_rc = rc;
        return rc;
    }
    rc = parse_text(text, len, file, opts, d, out);
    free(text);
    return rc;
}

static int check_out(void *out, vmp_err *err)
{
    if (!out || *(void **)out)
        return vmp_err_set(err, VMP_EINVAL, "config: *out must point to NULL");
    return 0;
}

int vmp_config_parse_file(const char *path, const vmp_config_opts *opts, vmp_cfg_node **out,
                          vmp_strlist *errors, vmp_err *err)
{
    if (check_out(out, err) || !path)
        return vmp_err_set(err, VMP_EINVAL, "config: bad arguments");
    vmp_cfg_diag d;
    vmp_cfg_diag_init(&d, path);
    int read_rc = 0;
    vmp_cfg_node *root = NULL;
    parse_file(path, opts, &d, &root, &read_rc);
    int rc = vmp_cfg_diag_finish(&d, errors, NULL, err);
    vmp_cfg_diag_clear(&d);
    if (rc) {
        vmp_cfg_free(root);
        if (read_rc && err)
            err->code = read_rc;
        return read_rc ? read_rc : rc;
    }
    *out = root;
    return 0;
}

int vmp_config_parse_string(const char *yaml, const char *name, const vmp_config_opts *opts,
                            vmp_cfg_node **out, vmp_strlist *errors, vmp_err *err)
{
    if (check_out(out, err) || !yaml)
        return vmp_err_set(err, VMP_EINVAL, "config: bad arguments");
    name = name ? name : "<string>";
    vmp_cfg_diag d;
    vmp_cfg_diag_init(&d, name);
    vmp_cfg_node *root = NULL;
    char *file = strdup(name);
    if (!file)
        d.oom = true;
    else
        parse_text(yaml, strlen(yaml), file, opts, &d, &root);
    int rc = vmp_cfg_diag_finish(&d, errors, NULL, err);
    vmp_cfg_diag_clear(&d);
    if (rc) {
        vmp_cfg_free(root);
        return rc;
    }
    *out = root;
    return 0;
}

int vmp_config_from_tree(vmp_cfg_node *root, const char *name, const vmp_config_opts *opts,
                         vmp_config **out, vmp_strlist *errors, vmp_err *err)
{
    if (check_out(out, err)) {
        vmp_cfg_free(root);
        return VMP_EINVAL;
    }
    name = name ? name : "<config>";
    vmp_cfg_diag d;
    vmp_cfg_diag_init(&d, name);
    vmp_config *cfg = NULL;
    build(root, name, opts, &d, &cfg);
    return finish(&d, cfg, out, errors, err);
}

static int load_text(const char *text, const char *name, const vmp_config_opts *opts,
                     vmp_config **out, vmp_strlist *errors, vmp_err *err)
{
    vmp_cfg_diag d;
    vmp_cfg_diag_init(&d, name);
    vmp_cfg_node *root = NULL;
    vmp_config *cfg = NULL;
    char *file = strdup(name);
    if (!file)
        d.oom = true;
    else if (parse_text(text, strlen(text), file, opts, &d, &root) == 0)
        build(root, name, opts, &d, &cfg);
    return finish(&d, cfg, out, errors, err);
}

int vmp_config_load_string(const char *yaml, const char *name, const vmp_config_opts *opts,
                           vmp_config **out, vmp_strlist *errors, vmp_err *err)
{
    if (check_out(out, err) || !yaml)
        return vmp_err_set(err, VMP_EINVAL, "config: bad arguments");
    return load_text(yaml, name ? name : "<string>", opts, out, errors, err);
}

int vmp_config_load_file(const char *path, const vmp_config_opts *opts, vmp_config **out,
                         vmp_strlist *errors, vmp_err *err)
{
    if (check_out(out, err) || !path)
        return vmp_err_set(err, VMP_EINVAL, "config: bad arguments");
    vmp_cfg_diag d;
    vmp_cfg_diag_init(&d, path);
    vmp_cfg_node *root = NULL;
    vmp_config *cfg = NULL;
    int read_rc = 0;
    if (parse_file(path, opts, &d, &root, &read_rc) == 0)
        build(root, path, opts, &d, &cfg);
    int rc = finish(&d, cfg, out, errors, err);
    if (rc && read_rc) {
        if (err)
            err->code = read_rc;
        return read_rc;
    }
    return rc;
}

int vmp_config_load_default(const char *path, const vmp_config_opts *opts, vmp_config **out,
                            vmp_strlist *errors, vmp_err *err)
{
    const char *text = vmp_cfg_getenv(opts, "VMPOOLER_CONFIG");
    if (text) {
        if (check_out(out, err))
            return VMP_EINVAL;
        return load_text(text, "<VMPOOLER_CONFIG>", opts, out, errors, err);
    }
    const char *file = vmp_cfg_getenv(opts, "VMPOOLER_CONFIG_FILE");
    if (!file || !*file)
        file = path ? path : "vmpooler.yaml";
    return vmp_config_load_file(file, opts, out, errors, err);
}

/* ---- lifetime and lookups ------------------------------------------------ */

void vmp_config_free(vmp_config *cfg)
{
    if (!cfg)
        return;
    vmp_global_cfg *g = &cfg->global;
    for (size_t i = 0; i < VMP_ARRAY_LEN(global_strs); i++)
        free(*(char **)((char *)g + global_strs[i].off));
    vmp_strlist_clear(&g->allowed_tags);
    vmp_strlist_clear(&g->extra_config);
    free(cfg->redis.server);
    free(cfg->redis.socket);
    free(cfg->redis.password);
    free(cfg->redis.state_dir);
    free(cfg->redis.prefix);
    vmp_cfg_pools_free(cfg);
    free(cfg->auth.provider);
    free(cfg->auth.ldap_host);
    vmp_strlist_clear(&cfg->auth.ldap_base);
    vmp_strlist_clear(&cfg->auth.ldap_user_object);
    free(cfg->metrics.kind);
    free(cfg->metrics.server);
    free(cfg->metrics.prefix);
    free(cfg->metrics.prometheus_prefix);
    free(cfg->metrics.prometheus_endpoint);
    free(cfg->graphs.server);
    free(cfg->graphs.prefix);
    free(cfg->tracing.jaeger_host);
    free(cfg->api.listen_host);
    vmp_strlist_clear(&cfg->lua_files);
    vmp_strlist_clear(&cfg->warnings);
    vmp_cfg_free(cfg->root);
    free(cfg->path);
    free(cfg);
}

long vmp_config_pool_index(const vmp_config *cfg, const char *name)
{
    for (size_t i = 0; cfg && name && i < cfg->n_pools; i++)
        if (cfg->pools[i].name && strcmp(cfg->pools[i].name, name) == 0)
            return (long)i;
    return -1;
}

const vmp_pool_cfg *vmp_config_pool(const vmp_config *cfg, const char *name)
{
    long i = vmp_config_pool_index(cfg, name);
    return i < 0 ? NULL : &cfg->pools[i];
}

const vmp_provider_cfg *vmp_config_provider(const vmp_config *cfg, const char *name)
{
    for (size_t i = 0; cfg && name && i < cfg->n_providers; i++)
        if (strcmp(cfg->providers[i].name, name) == 0)
            return &cfg->providers[i];
    return NULL;
}

size_t vmp_config_resolve_alias(const vmp_config *cfg, const char *name, vmp_strlist *out)
{
    size_t n = 0;
    for (size_t i = 0; cfg && name && i < cfg->n_pools; i++) {
        const vmp_pool_cfg *p = &cfg->pools[i];
        if (strcmp(p->name, name) != 0 && !vmp_strlist_contains(&p->aliases, name))
            continue;
        if (out && vmp_strlist_push(out, p->name))
            break;
        n++;
    }
    return n;
}

/* ---- known keys (read by config_keys.c) ---------------------------------- */

static const char *nth_key(const char *const *keys, size_t i)
{
    for (size_t k = 0; k < i; k++)
        if (!keys[k])
            return NULL;
    return keys[i];
}

const char *vmp_cfg_global_known_key(const char *section, size_t i)
{
    static const struct {
        const char *section;
        const char *const *keys;
    } tables[] = {
        {"", top_known},
        {"config", global_known},
        {"redis", redis_known},
        {"auth", auth_known},
        {"auth.ldap", ldap_known},
        {"statsd", statsd_known},
        {"graphite", statsd_known},
        {"prometheus", prometheus_known},
        {"graphs", graphs_known},
        {"tracing", tracing_known},
        {"api", api_known},
    };
    if (!section)
        return NULL;
    if (strcmp(section, "config.health_thresholds") == 0)
        return i < VMP_ARRAY_LEN(health_ints) ? health_ints[i].key : NULL;
    for (size_t t = 0; t < VMP_ARRAY_LEN(tables); t++)
        if (strcmp(section, tables[t].section) == 0)
            return nth_key(tables[t].keys, i);
    return NULL;
}
