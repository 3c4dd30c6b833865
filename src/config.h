/*
 * config: vmpool's configuration model and its loader for vmpooler's YAML
 * format (reference §8): `:config:`, `:redis:`, `:providers:`, `:pools:`,
 * `:auth:`, `:tagfilter:`, `:statsd:`, `:graphite:`, `:prometheus:`,
 * `:dns_configs:` and the rest, with or without leading colons, vmpooler's
 * defaults, its environment overrides (§8.7), the legacy `:vsphere:`
 * section, and pool aliases.
 *
 * The model is plain data: a loaded vmp_config is immutable and may be read
 * from any thread. A reload builds a new one. Every value also stays
 * reachable as its source node (`root`, `pool->node`, provider nodes), so
 * keys the typed model does not name are still available (to providers,
 * to /config).
 *
 * Errors name file, line, column and key path:
 *   config/vmpool.yaml:14:5: pools[2].size: expected a non-negative integer, got "five"
 * Unknown keys are warnings, logged and collected in vmp_config.warnings.
 */
#ifndef VMP_CONFIG_H
#define VMP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "config_node.h"
#include "err.h"
#include "util.h"

/* Integer fields that a pool may leave unset use this value. */
#define VMP_UNSET (-1)

typedef struct vmp_pool_cfg {
    char *name;
    vmp_strlist aliases;    /* `alias:` as a list (a string alias becomes one item) */
    bool alias_is_list;     /* written as a list (status shows it as configured) */
    char *template_path;    /* `template:` */
    long long size;
    char *provider;         /* provider name (defaults to "dummy") */
    long long timeout;      /* minutes; resolved: pool, else :config:, else 15 */
    long long timeout_notification; /* minutes; resolved: pool, config, 5 */
    long long ready_ttl;    /* minutes; resolved: pool, config, 60 */
    bool ready_ttl_set;     /* the pool itself named ready_ttl */
    char *clone_target;     /* pool's, else :config: clone_target, else NULL */
    char *folder, *datastore, *datacenter, *network, *dns_plugin;
    char *domain;           /* from the pool's dns_plugin entry in :dns_configs:, or NULL */
    int create_linked_clone;            /* VMP_UNSET, 0, 1 */
    int check_hostname_for_mismatch;    /* resolved: pool, else config key, else 1 */
    double check_loop_delay_min;        /* seconds; resolved against :config: */
    double check_loop_delay_max;
    double check_loop_delay_decay;
    const vmp_cfg_node *node; /* the pool's mapping, every key as written */
    /* vSphere tuning options, as written (strings), or NULL */
    char *snapshot_mainMem_ioBlockPages, *snapshot_mainMem_iowait;
} vmp_pool_cfg;

typedef struct vmp_redis_cfg {
    char *server;        /* NULL: none configured -> embedded redis-server */
    int port;            /* 6379 when a server is named without a port */
    char *socket;        /* unix socket path (vmpool extension: `socket:`) */
    char *password;
    int db;              /* vmpool extension: `db:` (default 0) */
    long long data_ttl;  /* hours, default 168 */
    char *state_dir;     /* embedded redis state dir (vmpool extension `state_dir:`,
                            default "/var/lib/vmpool" as root, else "./vmpool-state") */
    char *prefix;        /* key prefix (vmpool extension `key_prefix:`, default "vmpooler") */
    int connection_pool_size;     /* 10 */
    double connection_pool_timeout; /* 5 s */
    int reconnect_attempts;       /* 10 */
} vmp_redis_cfg;

typedef struct vmp_global_cfg {
    char *site_name;       /* "<b>vmpooler</b>" */
    char *logfile;         /* NULL: stderr */
    long long task_limit;  /* 10 */
    long long timeout;     /* 15 */
    long long timeout_notification; /* 5 */
    long long vm_checktime; /* 1 */
    long long vm_lifetime;  /* 24 */
    long long vm_lifetime_auth; /* 0 = unset */
    long long max_lifetime_upper_limit; /* 0 = unset */
    long long ready_ttl;    /* 60 */
    vmp_strlist allowed_tags; /* empty = any */
    bool allowed_tags_set;
    char *prefix;           /* "" */
    char *clone_target;
    long long migration_limit; /* 0 = disabled */
    long long max_tries;       /* 3 */
    long long retry_factor;    /* 10 */
    double check_loop_delay_min;   /* 5 */
    double check_loop_delay_max;   /* 60 */
    double check_loop_delay_decay; /* 2.0 */
    bool check_ready_vm_hostname_for_mismatch; /* true */
    bool manage_host_selection;    /* false */
    long long host_selection_max_age; /* 60 */
    long long utilization_limit;      /* 90 */
    bool create_folders;              /* false */
    bool create_template_delta_disks; /* false */
    bool create_linked_clones;        /* true */
    bool experimental_features;       /* false */
    bool purge_unconfigured_resources; /* false (alias purge_unconfigured_folders) */
    bool usage_stats, request_logger;
    long long ondemand_clone_limit;    /* 10 */
    long long max_ondemand_instances_per_request; /* 10 */
    long long ondemand_request_ttl;    /* 5 */
    long long max_vm_retries;          /* 3 */
    bool dlq_enabled; long long dlq_ttl; long long dlq_max_entries; /* off, 168, 10000 */
    bool purge_enabled; long long purge_interval; bool purge_dry_run; /* off, 3600 */
    long long max_pending_age, max_ready_age, max_completed_age, max_orphaned_age;
    bool health_check_enabled; long long health_check_interval; /* off, 300 */
    bool rate_limiting_enabled;
    const vmp_cfg_node *backend_weight; /* map clone_target -> weight, or NULL */
    const vmp_cfg_node *node;           /* the :config: mapping */
    char *domain;          /* legacy (2017/0.1.0) `domain:` or env DOMAIN; NULL = unset */
    char *ssh_key;         /* accepted, unused by the core */
    vmp_strlist extra_config; /* files named by extra_config / EXTRA_CONFIG (already merged) */
    bool circuit_breaker_enabled;                /* true */
    long long circuit_breaker_failure_threshold; /* 5 */
    long long circuit_breaker_timeout;           /* 30 s */
    long long circuit_breaker_half_open_attempts; /* 3 */
    bool adaptive_timeout_enabled;               /* true */
    long long connection_pool_timeout_min;       /* 5 s */
    long long connection_pool_timeout_max;       /* 60 s */
    long long connection_pool_timeout_initial;   /* 30 s */
    bool connection_pool_monitor_enabled;        /* true */
    long long connection_pool_monitor_interval;  /* 10 s */
    struct {
        long long pending_queue_max;      /* 100 */
        long long ready_queue_max;        /* 500 */
        long long dlq_max_warning;        /* 100 */
        long long dlq_max_critical;       /* 1000 */
        long long stuck_vm_age_threshold; /* 7200 s */
        long long stuck_vm_max_warning;   /* 10 */
        long long stuck_vm_max_critical;  /* 50 */
    } health_thresholds;
} vmp_global_cfg;

typedef struct vmp_provider_cfg {
    char *name;           /* key under :providers: */
    char *provider_class; /* `provider_class`, default = name */
    const vmp_cfg_node *node; /* the entry's mapping (every option) */
    int purge_unconfigured_resources; /* VMP_UNSET, 0, 1 (old name purge_unconfigured_folders) */
    vmp_strlist resources_allowlist;  /* old name folder_whitelist */
    bool skip_dns_check_before_creating_vm;
} vmp_provider_cfg;

typedef struct vmp_auth_cfg {
    char *provider;       /* NULL: auth not configured; "dummy" or "ldap" */
    const vmp_cfg_node *node; /* the :auth: mapping */
    const vmp_cfg_node *ldap; /* the :ldap: mapping, or NULL */
    char *ldap_host;
    int ldap_port;                /* 389 */
    vmp_strlist ldap_base;        /* string or list */
    vmp_strlist ldap_user_object; /* string or list */
} vmp_auth_cfg;

typedef struct vmp_metrics_cfg {
    char *kind;           /* NULL, "statsd", "graphite" or "prometheus" (statsd wins) */
    char *server;
    int port;
    char *prefix;         /* "vmpooler" */
    char *prometheus_prefix, *prometheus_endpoint;
} vmp_metrics_cfg;

typedef struct vmp_api_cfg {
    char *listen_host;    /* vmpool extension `:api: listen:` default 127.0.0.1 */
    int listen_port;      /* 4567 */
} vmp_api_cfg;

typedef struct vmp_graphs_cfg {
    char *server;         /* dashboard graphite web front-end; falls back to :graphite: */
    char *prefix;         /* "vmpooler" */
} vmp_graphs_cfg;

typedef struct vmp_tracing_cfg {
    bool enabled;         /* false */
    char *jaeger_host;    /* "http://localhost:14268/api/traces" */
} vmp_tracing_cfg;

typedef struct vmp_config {
    char *path;            /* file it was loaded from, or "<string>" */
    vmp_cfg_node *root;    /* whole tree (after env overrides, legacy copies) */
    vmp_global_cfg global;
    vmp_redis_cfg redis;
    vmp_pool_cfg *pools;
    size_t n_pools;
    vmp_provider_cfg *providers;
    size_t n_providers;
    vmp_auth_cfg auth;
    vmp_metrics_cfg metrics;
    vmp_api_cfg api;
    const vmp_cfg_node *tagfilter;   /* map tag -> regex, or NULL */
    const vmp_cfg_node *dns_configs; /* map, or NULL */
    vmp_strlist lua_files;  /* `:config: lua:` (string or list), vmpool extension */
    vmp_strlist warnings;   /* "file:line:col: key: unknown key" ... */
    double loaded_at;       /* load time (status uptime) */
    vmp_graphs_cfg graphs;
    vmp_tracing_cfg tracing;
    const vmp_cfg_node *rate_limits; /* :rate_limits: map, or NULL */
    bool pools_configured;  /* the file had a :pools: list (vmpooler otherwise reads Redis) */
    bool debug;             /* VMPOOLER_DEBUG was set (dummy auth is allowed only then) */
} vmp_config;

/* Options for a load. Zero-initialise; every field is optional. */
typedef struct vmp_config_opts {
    bool no_env;            /* ignore environment overrides (tests) */
    const char *const *env; /* NULL: the process environment; else "K=V" list, NULL-ended */
    /* NULL-ended names of provider classes a pool may name without a
     * :providers: entry, besides the built-in "dummy" and "vsphere" (e.g.
     * classes registered by Lua). */
    const char *const *provider_classes;
    /* Called with the parsed tree (environment overrides applied, :config:
     * and :providers: present) before the typed model is built, so Lua
     * configuration can add, change or generate pools and providers (see
     * lua/script.h). Messages go to errors; non-zero fails the load. */
    int (*edit_tree)(vmp_cfg_node *root, const char *name, void *ud, vmp_strlist *errors,
                     vmp_err *err);
    void *edit_ud;
} vmp_config_opts;

/* Loads and validates the YAML file at path. On success *out (which must
 * point to NULL) receives a new config. On failure returns VMP_EINVAL (bad
 * content), VMP_ENOENT/VMP_EIO (file), VMP_ENOMEM; err holds the first error
 * and, when errors is non-NULL, every error message is appended to it. */
int vmp_config_load_file(const char *path, const vmp_config_opts *opts, vmp_config **out,
                         vmp_strlist *errors, vmp_err *err);
/* Same from YAML text; name is used in messages (e.g. "<VMPOOLER_CONFIG>"). */
int vmp_config_load_string(const char *yaml, const char *name, const vmp_config_opts *opts,
                           vmp_config **out, vmp_strlist *errors, vmp_err *err);
/* vmpooler's lookup: env VMPOOLER_CONFIG (YAML text) wins, else the file
 * named by VMPOOLER_CONFIG_FILE, else path (if non-NULL), else
 * "vmpooler.yaml". */
int vmp_config_load_default(const char *path, const vmp_config_opts *opts, vmp_config **out,
                            vmp_strlist *errors, vmp_err *err);

/* Reads YAML into a tree without building the model (Lua configuration
 * edits it, then calls vmp_config_from_tree): syntax checks, the first
 * document only, `extra_config` files merged in. *out must point to NULL and
 * receives a tree the caller owns. Errors as for the loaders. */
int vmp_config_parse_file(const char *path, const vmp_config_opts *opts, vmp_cfg_node **out,
                          vmp_strlist *errors, vmp_err *err);
int vmp_config_parse_string(const char *yaml, const char *name, const vmp_config_opts *opts,
                            vmp_cfg_node **out, vmp_strlist *errors, vmp_err *err);

/* Builds the typed model from an already-parsed tree (Lua configuration
 * edits the tree, then calls this to validate). Takes ownership of root. */
int vmp_config_from_tree(vmp_cfg_node *root, const char *name, const vmp_config_opts *opts,
                         vmp_config **out, vmp_strlist *errors, vmp_err *err);

void vmp_config_free(vmp_config *cfg);

/* Lookups. */
const vmp_pool_cfg *vmp_config_pool(const vmp_config *cfg, const char *name);
long vmp_config_pool_index(const vmp_config *cfg, const char *name);
const vmp_provider_cfg *vmp_config_provider(const vmp_config *cfg, const char *name);
/* Pools whose name is `name` or that list it as an alias, in config order.
 * Fills out (appends pool names); returns how many. */
size_t vmp_config_resolve_alias(const vmp_config *cfg, const char *name, vmp_strlist *out);

#endif
