/*
 * The keys the configuration loader knows, section by section: a read-only
 * view of the tables in config.c and config_pools.c, so that tests (and
 * tools) can check a configuration file or a document against the loader
 * itself rather than against a copy of its lists.
 */
#include <stddef.h>

#include "config_priv.h"

static const char *const sections[] = {
    "",
    "config",
    "config.health_thresholds",
    "redis",
    "auth",
    "auth.ldap",
    "statsd",
    "graphite",
    "prometheus",
    "graphs",
    "tracing",
    "api",
    "pools",
    "providers.dummy",
    NULL,
};

const char *const *vmp_cfg_known_sections(void) { return sections; }

const char *vmp_cfg_known_key(const char *section, size_t i)
{
    /* each section lives in exactly one of the two files */
    if (vmp_cfg_global_known_key(section, 0))
        return vmp_cfg_global_known_key(section, i);
    return vmp_cfg_pools_known_key(section, i);
}
