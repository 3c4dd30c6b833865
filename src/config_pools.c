/*
 * The :providers:, :dns_configs: and :pools: sections: typed entries, the
 * values a pool inherits from :config:, and the checks that span entries
 * (duplicate pool names, a pool's provider and DNS configuration exist).
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_priv.h"
#include "log.h"

#define MAX_POOL_SIZE 100000

static bool is_default_mark(vmp_cfg_mark m) { return m.file == vmp_config_default_file; }

/* ---- :providers: --------------------------------------------------------- */

/* Options of the dummy provider (reference §6.2) that the loader checks. */
static const char *const dummy_percent[] = {"createvm_fail_percent",
                                            "vmready_fail_percent",
                                            "getvm_poweroff_percent",
                                            "getvm_rename_percent",
                                            "migratevm_couldmove_percent",
                                            "migratevm_fail_percent",
                                            "createdisk_fail_percent",
                                            "createsnapshot_fail_percent",
                                            "revertsnapshot_fail_percent",
                                            "destroyvm_fail_percent",
                                            NULL};
static const char *const dummy_seconds[] = {
    "createvm_max_time",       "migratevm_max_time",
    "createdisk_max_time",     "createsnapshot_max_time",
    "revertsnapshot_max_time", "destroyvm_max_shutdown_time",
    "destroyvm_max_time",      "is_ready_timeout",
    "connection_pool_timeout", NULL};

static void check_percent(vmp_cfg_diag *d, const vmp_cfg_node *m, const char *prefix,
                          const char *key)
{
    const vmp_cfg_node *v;
    vmp_cfg_mark mark;
    double x;
    if (!vmp_cfg_lookup(m, key, &v, &mark) || vmp_cfg_kind_of(v) == VMP_CFG_NULL)
        return;
    if (vmp_cfg_as_double(v, &x) == 0 && x >= 0 && x <= 100)
        return;
    char path[256], got[80];
    vmp_cfg_path(path, sizeof path, prefix, key);
    vmp_cfg_describe(v, got, sizeof got);
    vmp_cfg_diag_error(d, mark, path, "expected a percentage between 0 and 100, got %s", got);
}

static void check_dummy_options(vmp_cfg_diag *d, const vmp_cfg_node *m, const char *prefix)
{
    for (size_t i = 0; dummy_percent[i]; i++)
        check_percent(d, m, prefix, dummy_percent[i]);
    for (size_t i = 0; dummy_seconds[i]; i++) {
        double x = 0;
        vmp_cfg_read_double(d, m, prefix, dummy_seconds[i], 0, false, &x);
    }
    long long size = 1;
    char *filename = NULL;
    vmp_cfg_read_int(d, m, prefix, "connection_pool_size", 1, 10000, &size);
    vmp_cfg_read_str(d, m, prefix, "filename", NULL, &filename);
    free(filename);
}

/* vmpooler writes `:dummy:` with nothing under it; make such entries empty
 * maps so providers always get a map. */
static void fill_null_entries(vmp_cfg_node *providers, vmp_cfg_diag *d)
{
    for (size_t i = 0; i < vmp_cfg_len(providers); i++) {
        if (vmp_cfg_kind_of(vmp_cfg_at(providers, i)) != VMP_CFG_NULL)
            continue;
        vmp_cfg_mark mark = vmp_cfg_mark_of(vmp_cfg_at(providers, i));
        vmp_cfg_node *m = vmp_cfg_map_new();
        vmp_cfg_set_mark(m, mark);
        if (vmp_cfg_map_set_marked(providers, vmp_cfg_key_at(providers, i),
                                   vmp_cfg_key_is_symbol(providers, i),
                                   vmp_cfg_key_mark_at(providers, i), m))
            d->oom = true;
    }
}

static void build_provider(vmp_cfg_diag *d, const char *name, const vmp_cfg_node *m,
                           vmp_provider_cfg *pc)
{
    char prefix[200];
    bool b;
    vmp_cfg_path(prefix, sizeof prefix, "providers", name);
    if (!(pc->name = strdup(name)))
        d->oom = true;
    pc->node = m;
    pc->purge_unconfigured_resources = VMP_UNSET;
    vmp_cfg_read_str(d, m, prefix, "provider_class", name, &pc->provider_class);
    if (vmp_cfg_read_bool(d, m, prefix, "purge_unconfigured_folders", &b) > 0)
        pc->purge_unconfigured_resources = b;
    if (vmp_cfg_read_bool(d, m, prefix, "purge_unconfigured_resources", &b) > 0)
        pc->purge_unconfigured_resources = b;
    vmp_cfg_read_strlist(d, m, prefix, "folder_whitelist", false, &pc->resources_allowlist, NULL);
    vmp_cfg_read_strlist(d, m, prefix, "resources_allowlist", false, &pc->resources_allowlist,
                         NULL);
    vmp_cfg_read_bool(d, m, prefix, "skip_dns_check_before_creating_vm",
                      &pc->skip_dns_check_before_creating_vm);
    if (pc->provider_class && strcasecmp(pc->provider_class, "dummy") == 0)
        check_dummy_options(d, m, prefix);
}

void vmp_cfg_build_providers(vmp_config *cfg, vmp_cfg_diag *d)
{
    vmp_cfg_node *providers = vmp_cfg_get_mut(cfg->root, "providers");
    const vmp_cfg_node *checked = NULL;
    if (vmp_cfg_read_map(d, cfg->root, "", "providers", &checked) <= 0)
        return;
    fill_null_entries(providers, d);
    size_t n = vmp_cfg_len(providers);
    if (n && !(cfg->providers = calloc(n, sizeof *cfg->providers))) {
        d->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = vmp_cfg_key_at(providers, i);
        const vmp_cfg_node *m = vmp_cfg_at(providers, i);
        if (vmp_cfg_kind_of(m) != VMP_CFG_MAP) {
            char path[200], got[80];
            vmp_cfg_path(path, sizeof path, "providers", name);
            vmp_cfg_describe(m, got, sizeof got);
            vmp_cfg_diag_error(d, vmp_cfg_key_mark_at(providers, i), path, "expected a map, got %s",
                               got);
            continue;
        }
        build_provider(d, name, m, &cfg->providers[cfg->n_providers++]);
    }
}

/* ---- :dns_configs: ------------------------------------------------------- */

static void build_dns_configs(vmp_config *cfg, vmp_cfg_diag *d)
{
    if (vmp_cfg_read_map(d, cfg->root, "", "dns_configs", &cfg->dns_configs) <= 0)
        return;
    for (size_t i = 0; i < vmp_cfg_len(cfg->dns_configs); i++) {
        const char *name = vmp_cfg_key_at(cfg->dns_configs, i);
        const vmp_cfg_node *m = NULL;
        char *s = NULL;
        char prefix[200];
        vmp_cfg_path(prefix, sizeof prefix, "dns_configs", name);
        if (vmp_cfg_read_map(d, cfg->dns_configs, "dns_configs", name, &m) <= 0)
            continue;
        vmp_cfg_read_str(d, m, prefix, "dns_class", NULL, &s);
        free(s);
        s = NULL;
        vmp_cfg_read_str(d, m, prefix, "domain", NULL, &s);
        free(s);
    }
}

/* ---- :pools: ------------------------------------------------------------- */

static const char *const pool_known[] = {"name",
                                         "alias",
                                         "template",
                                         "size",
                                         "provider",
                                         "timeout",
                                         "timeout_notification",
                                         "ready_ttl",
                                         "clone_target",
                                         "folder",
                                         "datastore",
                                         "datacenter",
                                         "create_linked_clone",
                                         "network",
                                         "snapshot_mainMem_ioBlockPages",
                                         "snapshot_mainMem_iowait",
                                         "check_loop_delay_min",
                                         "check_loop_delay_max",
                                         "check_loop_delay_decay",
                                         "check_hostname_for_mismatch",
                                         "dns_plugin",
                                         "keep_discovered_vms", /* engine (docs/engine.md) */
                                         /* vSphere provider extensions (docs/vsphere.md) */
                                         "ready_check",
                                         "ready_port",
                                         "extra_config",
                                         NULL};

/* Pool names and aliases end up in Redis keys, URL paths and vmpooler's
 * "alias:pool:count" request strings, so a few characters are refused. */
static bool valid_name(const char *s)
{
    if (!*s)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == 0x7f || strchr("/,:", *p))
            return false;
    return true;
}

static void name_error(vmp_cfg_diag *d, vmp_cfg_mark mark, const char *path, const char *what,
                       const char *name)
{
    if (!*name)
        vmp_cfg_diag_error(d, mark, path, "%s must not be empty", what);
    else
        vmp_cfg_diag_error(d, mark, path,
                           "\"%s\" is not a valid %s (no spaces, control characters, '/', ',' "
                           "or ':')",
                           name, what);
}

static void read_name(vmp_cfg_diag *d, const vmp_cfg_node *pm, const char *prefix, vmp_pool_cfg *p)
{
    vmp_cfg_mark mark;
    char path[256];
    vmp_cfg_path(path, sizeof path, prefix, "name");
    if (!vmp_cfg_lookup(pm, "name", NULL, &mark) ||
        vmp_cfg_kind_of(vmp_cfg_get(pm, "name")) == VMP_CFG_NULL)
    {
        vmp_cfg_diag_error(d, vmp_cfg_mark_of(pm), prefix, "missing required key \"name\"");
        return;
    }
    if (vmp_cfg_read_str(d, pm, prefix, "name", NULL, &p->name) > 0 && !valid_name(p->name))
        name_error(d, mark, path, "pool name", p->name);
}

static void read_aliases(vmp_cfg_diag *d, const vmp_cfg_node *pm, const char *prefix,
                         vmp_pool_cfg *p)
{
    vmp_cfg_mark mark;
    char path[256];
    if (vmp_cfg_read_strlist(d, pm, prefix, "alias", false, &p->aliases, &p->alias_is_list) == 0)
        return;
    vmp_cfg_lookup(pm, "alias", NULL, &mark);
    vmp_cfg_path(path, sizeof path, prefix, "alias");
    for (size_t i = 0; i < p->aliases.n; i++)
        if (!valid_name(p->aliases.v[i]))
            name_error(d, mark, path, "alias", p->aliases.v[i]);
}

static void read_size(vmp_cfg_diag *d, const vmp_cfg_node *pm, const char *prefix, vmp_pool_cfg *p)
{
    const vmp_cfg_node *v = NULL;
    if (!vmp_cfg_lookup(pm, "size", &v, NULL)) {
        vmp_cfg_diag_error(d, vmp_cfg_mark_of(pm), prefix, "missing required key \"size\"");
        return;
    }
    if (vmp_cfg_kind_of(v) == VMP_CFG_NULL) {
        vmp_cfg_mark mark;
        char path[256];
        vmp_cfg_lookup(pm, "size", NULL, &mark);
        vmp_cfg_path(path, sizeof path, prefix, "size");
        vmp_cfg_diag_error(d, mark, path, "expected a non-negative integer, got null");
        return;
    }
    vmp_cfg_read_int(d, pm, prefix, "size", 0, MAX_POOL_SIZE, &p->size);
}

/* A key the user wrote (not one the loader filled in on an earlier pass). */
static bool user_set(const vmp_cfg_node *pm, const char *key)
{
    const vmp_cfg_node *v;
    vmp_cfg_mark mark;
    return vmp_cfg_lookup(pm, key, &v, &mark) && vmp_cfg_kind_of(v) != VMP_CFG_NULL &&
           !is_default_mark(vmp_cfg_mark_of(v));
}

static void read_loop_delays(vmp_cfg_diag *d, const vmp_global_cfg *g, const vmp_cfg_node *pm,
                             const char *prefix, vmp_pool_cfg *p)
{
    p->check_loop_delay_min = g->check_loop_delay_min;
    p->check_loop_delay_max = g->check_loop_delay_max;
    p->check_loop_delay_decay = g->check_loop_delay_decay;
    vmp_cfg_read_double(d, pm, prefix, "check_loop_delay_min", 0, true, &p->check_loop_delay_min);
    vmp_cfg_read_double(d, pm, prefix, "check_loop_delay_max", 0, false, &p->check_loop_delay_max);
    vmp_cfg_read_double(d, pm, prefix, "check_loop_delay_decay", -INFINITY, false,
                        &p->check_loop_delay_decay);
    if (p->check_loop_delay_decay <= 1.0)
        p->check_loop_delay_decay = 2.0;
    if (p->check_loop_delay_max < p->check_loop_delay_min)
        p->check_loop_delay_max = p->check_loop_delay_min;
}

static void read_strings(vmp_cfg_diag *d, const vmp_global_cfg *g, const vmp_cfg_node *pm,
                         const char *prefix, vmp_pool_cfg *p)
{
    vmp_cfg_read_str(d, pm, prefix, "template", NULL, &p->template_path);
    vmp_cfg_read_str(d, pm, prefix, "clone_target", g->clone_target, &p->clone_target);
    vmp_cfg_read_str(d, pm, prefix, "folder", NULL, &p->folder);
    vmp_cfg_read_str(d, pm, prefix, "datastore", NULL, &p->datastore);
    vmp_cfg_read_str(d, pm, prefix, "datacenter", NULL, &p->datacenter);
    vmp_cfg_read_str(d, pm, prefix, "network", NULL, &p->network);
    vmp_cfg_read_str(d, pm, prefix, "dns_plugin", NULL, &p->dns_plugin);
    vmp_cfg_read_str(d, pm, prefix, "snapshot_mainMem_ioBlockPages", NULL,
                     &p->snapshot_mainMem_ioBlockPages);
    vmp_cfg_read_str(d, pm, prefix, "snapshot_mainMem_iowait", NULL, &p->snapshot_mainMem_iowait);
    if (user_set(pm, "provider"))
        vmp_cfg_read_str(d, pm, prefix, "provider", "dummy", &p->provider);
    else if (!(p->provider = strdup("dummy")))
        d->oom = true;
}

static void read_pool(vmp_cfg_diag *d, const vmp_global_cfg *g, const vmp_cfg_node *pm,
                      const char *prefix, vmp_pool_cfg *p)
{
    bool b;
    p->node = pm;
    read_name(d, pm, prefix, p);
    read_aliases(d, pm, prefix, p);
    read_size(d, pm, prefix, p);
    read_strings(d, g, pm, prefix, p);
    p->timeout = g->timeout;
    p->timeout_notification = g->timeout_notification;
    p->ready_ttl = g->ready_ttl;
    vmp_cfg_read_int(d, pm, prefix, "timeout", 0, LLONG_MAX, &p->timeout);
    vmp_cfg_read_int(d, pm, prefix, "timeout_notification", 0, LLONG_MAX, &p->timeout_notification);
    p->ready_ttl_set = user_set(pm, "ready_ttl");
    if (p->ready_ttl_set)
        vmp_cfg_read_int(d, pm, prefix, "ready_ttl", 0, LLONG_MAX, &p->ready_ttl);
    p->create_linked_clone = VMP_UNSET;
    if (vmp_cfg_read_bool(d, pm, prefix, "create_linked_clone", &b) > 0)
        p->create_linked_clone = b;
    b = g->check_ready_vm_hostname_for_mismatch;
    vmp_cfg_read_bool(d, pm, prefix, "check_hostname_for_mismatch", &b);
    p->check_hostname_for_mismatch = b;
    read_loop_delays(d, g, pm, prefix, p);
    vmp_cfg_warn_unknown(d, pm, prefix, pool_known);
}

/* Writes what vmpooler writes into a pool: ready_ttl (the loader) and the
 * default provider (the manager at start). */
static void write_defaults(vmp_config *cfg, vmp_cfg_diag *d, vmp_cfg_node *pm, const char *prefix,
                           const vmp_pool_cfg *p)
{
    vmp_cfg_mark dm = {vmp_config_default_file, 0, 0};
    char num[32];
    if (!user_set(pm, "provider")) {
        if (!vmp_cfg_get(pm, "provider") && vmp_config_provider(cfg, "vsphere"))
            vmp_cfg_diag_warn(d, vmp_cfg_mark_of(pm), prefix,
                              "no provider given: using dummy, the default since vmpooler 1.0 "
                              "(older versions used vsphere)");
        vmp_cfg_node *v = vmp_cfg_scalar_new("dummy");
        vmp_cfg_set_mark(v, dm);
        if (vmp_cfg_map_set_marked(pm, "provider", false, dm, v))
            d->oom = true;
        vmp_log(VMP_LOG_DEBUG, "config", "pool %s: provider set to dummy (default)",
                p->name ? p->name : prefix);
    }
    if (!p->ready_ttl_set) {
        snprintf(num, sizeof num, "%lld", p->ready_ttl);
        vmp_cfg_node *v = vmp_cfg_scalar_new(num);
        vmp_cfg_set_mark(v, dm);
        if (vmp_cfg_map_set_marked(pm, "ready_ttl", false, dm, v))
            d->oom = true;
    }
}

/* ---- checks across pools ------------------------------------------------- */

static bool provider_known(const vmp_config *cfg, const vmp_config_opts *opts, const char *name)
{
    if (vmp_config_provider(cfg, name) || strcasecmp(name, "dummy") == 0 ||
        strcasecmp(name, "vsphere") == 0)
        return true;
    for (const char *const *c = opts ? opts->provider_classes : NULL; c && *c; c++)
        if (strcasecmp(*c, name) == 0)
            return true;
    return false;
}

static void check_provider(const vmp_config *cfg, const vmp_config_opts *opts, vmp_cfg_diag *d,
                           const vmp_pool_cfg *p, const char *prefix)
{
    vmp_cfg_mark mark;
    char path[256];
    if (!p->provider || provider_known(cfg, opts, p->provider))
        return;
    vmp_cfg_lookup(p->node, "provider", NULL, &mark);
    vmp_cfg_path(path, sizeof path, prefix, "provider");
    vmp_cfg_diag_error(d, mark, path,
                       "unknown provider \"%s\": not under :providers: and not a built-in "
                       "provider (dummy, vsphere)",
                       p->provider);
}

static void resolve_domain(vmp_config *cfg, vmp_cfg_diag *d, vmp_pool_cfg *p, const char *prefix)
{
    const char *domain = cfg->global.domain;
    if (p->dns_plugin) {
        const vmp_cfg_node *entry;
        if (!vmp_cfg_lookup(cfg->dns_configs, p->dns_plugin, &entry, NULL)) {
            vmp_cfg_mark mark;
            char path[256];
            vmp_cfg_lookup(p->node, "dns_plugin", NULL, &mark);
            vmp_cfg_path(path, sizeof path, prefix, "dns_plugin");
            vmp_cfg_diag_error(d, mark, path, "no entry \"%s\" under :dns_configs:", p->dns_plugin);
            return;
        }
        domain = vmp_cfg_get_str(entry, "domain", NULL);
    }
    if (domain && !(p->domain = strdup(domain)))
        d->oom = true;
}

static void check_duplicate(vmp_config *cfg, vmp_cfg_diag *d, size_t k, const size_t *src_index)
{
    const vmp_pool_cfg *p = &cfg->pools[k];
    for (size_t j = 0; p->name && j < k; j++) {
        if (!cfg->pools[j].name || strcmp(cfg->pools[j].name, p->name) != 0)
            continue;
        vmp_cfg_mark mark;
        char path[64];
        vmp_cfg_lookup(p->node, "name", NULL, &mark);
        snprintf(path, sizeof path, "pools[%zu].name", src_index[k]);
        vmp_cfg_diag_error(d, mark, path, "duplicate pool name \"%s\" (also pools[%zu])", p->name,
                           src_index[j]);
        return;
    }
}

void vmp_cfg_build_pools(vmp_config *cfg, const vmp_config_opts *opts, vmp_cfg_diag *d)
{
    build_dns_configs(cfg, d);
    vmp_cfg_node *pools = vmp_cfg_get_mut(cfg->root, "pools");
    vmp_cfg_mark mark;
    if (vmp_cfg_kind_of(pools) == VMP_CFG_NULL)
        return; /* no :pools: (vmpooler would read them from Redis) */
    if (vmp_cfg_kind_of(pools) != VMP_CFG_SEQ) {
        char got[80];
        vmp_cfg_lookup(cfg->root, "pools", NULL, &mark);
        vmp_cfg_describe(pools, got, sizeof got);
        vmp_cfg_diag_error(d, mark, "pools", "expected a list, got %s", got);
        return;
    }
    cfg->pools_configured = true;
    size_t n = vmp_cfg_len(pools);
    size_t *src_index = calloc(n ? n : 1, sizeof *src_index);
    if (n && !(cfg->pools = calloc(n, sizeof *cfg->pools)))
        d->oom = true;
    if (!src_index || d->oom) {
        d->oom = true;
        free(src_index);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char prefix[32], got[80];
        vmp_cfg_node *pm = vmp_cfg_at_mut(pools, i);
        snprintf(prefix, sizeof prefix, "pools[%zu]", i);
        if (vmp_cfg_kind_of(pm) != VMP_CFG_MAP) {
            vmp_cfg_describe(pm, got, sizeof got);
            vmp_cfg_diag_error(d, vmp_cfg_mark_of(pm), prefix, "expected a map, got %s", got);
            continue;
        }
        size_t k = cfg->n_pools++;
        src_index[k] = i;
        vmp_pool_cfg *p = &cfg->pools[k];
        read_pool(d, &cfg->global, pm, prefix, p);
        write_defaults(cfg, d, pm, prefix, p);
        check_provider(cfg, opts, d, p, prefix);
        resolve_domain(cfg, d, p, prefix);
        check_duplicate(cfg, d, k, src_index);
    }
    free(src_index);
}

void vmp_cfg_pools_free(vmp_config *cfg)
{
    for (size_t i = 0; i < cfg->n_pools; i++) {
        vmp_pool_cfg *p = &cfg->pools[i];
        free(p->name);
        vmp_strlist_clear(&p->aliases);
        free(p->template_path);
        free(p->provider);
        free(p->clone_target);
        free(p->folder);
        free(p->datastore);
        free(p->datacenter);
        free(p->network);
        free(p->dns_plugin);
        free(p->domain);
        free(p->snapshot_mainMem_ioBlockPages);
        free(p->snapshot_mainMem_iowait);
    }
    free(cfg->pools);
    for (size_t i = 0; i < cfg->n_providers; i++) {
        free(cfg->providers[i].name);
        free(cfg->providers[i].provider_class);
        vmp_strlist_clear(&cfg->providers[i].resources_allowlist);
    }
    free(cfg->providers);
}

/* ---- known keys (read by config_keys.c) ---------------------------------- */

static size_t count_keys(const char *const *keys)
{
    size_t n = 0;
    while (keys[n])
        n++;
    return n;
}

const char *vmp_cfg_pools_known_key(const char *section, size_t i)
{
    if (!section)
        return NULL;
    if (strcmp(section, "pools") == 0)
        return i < count_keys(pool_known) ? pool_known[i] : NULL;
    if (strcmp(section, "providers.dummy") == 0) {
        size_t np = count_keys(dummy_percent);
        if (i < np)
            return dummy_percent[i];
        return i - np < count_keys(dummy_seconds) ? dummy_seconds[i - np] : NULL;
    }
    return NULL;
}
