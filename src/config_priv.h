/*
 * config_priv: what the configuration loader's files share, not part of the
 * public API. The loader is split in four:
 *   config.c       the public entry points and the typed model
 *   config_read.c  diagnostics (errors and warnings with file:line:col and key
 *                  path) and the typed readers that produce them
 *   config_yaml.c  libyaml -> vmp_cfg_node tree, and reading files
 *   config_env.c   environment overrides and the extra_config merge
 */
#ifndef VMP_CONFIG_PRIV_H
#define VMP_CONFIG_PRIV_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "config_node.h"
#include "util.h"

/* Mark file of the values the loader writes into the tree itself (a pool's
 * default provider and ready_ttl), so a second validation of the same tree
 * can tell them from values the user wrote. */
extern const char vmp_config_default_file[];

/* ---- diagnostics (config_read.c) ----------------------------------------- */

typedef struct vmp_cfg_diag_entry {
    vmp_cfg_mark mark;
    char *text; /* the complete message, "file:line:col: path: message" */
} vmp_cfg_diag_entry;

typedef struct vmp_cfg_diag {
    const char *name; /* used for nodes that carry no file (built in code) */
    vmp_cfg_diag_entry *errors, *warnings;
    size_t n_errors, n_warnings, cap_errors, cap_warnings;
    bool oom;
} vmp_cfg_diag;

void vmp_cfg_diag_init(vmp_cfg_diag *d, const char *name);
void vmp_cfg_diag_clear(vmp_cfg_diag *d);
/* Records an error or a warning at mark for key path (may be "" or NULL). */
void vmp_cfg_diag_error(vmp_cfg_diag *d, vmp_cfg_mark mark, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void vmp_cfg_diag_warn(vmp_cfg_diag *d, vmp_cfg_mark mark, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Sorts both lists by file position (stable), logs the warnings, copies the
 * errors into errors (may be NULL) and the warnings into warnings (may be
 * NULL), and sets err from the first error. Returns 0 when there was no
 * error, else VMP_EINVAL (VMP_ENOMEM if an allocation failed). */
int vmp_cfg_diag_finish(vmp_cfg_diag *d, vmp_strlist *errors, vmp_strlist *warnings, vmp_err *err);

/* ---- typed readers (config_read.c) --------------------------------------- */

/* Joins a key path: "pools[2]" + "size" -> "pools[2].size". */
void vmp_cfg_path(char *buf, size_t n, const char *prefix, const char *key);
/* Finds key in map: its value (may be a null node) and the mark to report
 * (the key's, else the value's). Returns false when absent. */
bool vmp_cfg_lookup(const vmp_cfg_node *map, const char *key, const vmp_cfg_node **value,
                    vmp_cfg_mark *mark);
/* Describes a value for a message: 5, "five", a map, a list, null. */
void vmp_cfg_describe(const vmp_cfg_node *n, char *buf, size_t size);
/* True for a value Ruby treats as false or nil (absent, null, false/no/off). */
bool vmp_cfg_falsy(const vmp_cfg_node *n);

/* Each reader looks map[key] up. Absent or null: *out keeps its default
 * and the result is 0. Valid: *out is set, result 1. Invalid: an error is
 * recorded, *out keeps its default, result -1. */
int vmp_cfg_read_int(vmp_cfg_diag *d, const vmp_cfg_node *map, const char *prefix, const char *key,
                     long long min, long long max, long long *out);
/* Accepts numbers >= min (> min when exclusive). */
int vmp_cfg_read_double(vmp_cfg_diag *d, const vmp_cfg_node *map, const char *prefix,
                        const char *key, double min, bool exclusive, double *out);
int vmp_cfg_read_bool(vmp_cfg_diag *d, const vmp_cfg_node *map, const char *prefix, const char *key,
                      bool *out);
/* *out receives a copy of the value, or of def (which may be NULL). */
int vmp_cfg_read_str(vmp_cfg_diag *d, const vmp_cfg_node *map, const char *prefix, const char *key,
                     const char *def, char **out);
/* A string (one item; with split_commas, split at commas) or a list of
 * strings, appended to out; *is_list (may be NULL) tells which. */
int vmp_cfg_read_strlist(vmp_cfg_diag *d, const vmp_cfg_node *map, const char *prefix,
                         const char *key, bool split_commas, vmp_strlist *out, bool *is_list);
/* A map (or null/absent: *out = NULL, result 0). */
int vmp_cfg_read_map(vmp_cfg_diag *d, const vmp_cfg_node *map, const char *prefix, const char *key,
                     const vmp_cfg_node **out);
/* Warns about every key of map not in known (NULL-ended). */
void vmp_cfg_warn_unknown(vmp_cfg_diag *d, const vmp_cfg_node *map, const char *prefix,
                          const char *const *known);

/* ---- YAML (config_yaml.c) ------------------------------------------------ */

/* Parses the first YAML document of text (len bytes) into a tree whose
 * marks name file (which must outlive the tree). An empty document gives an
 * empty map (with a warning). Returns 0 and *out, or VMP_EINVAL with errors
 * in d, or VMP_ENOMEM. */
int vmp_cfg_yaml_parse(const char *text, size_t len, const char *file, vmp_cfg_diag *d,
                       vmp_cfg_node **out);
/* Reads a whole file. On failure returns VMP_ENOENT / VMP_EIO / VMP_ENOMEM
 * and writes the reason ("No such file or directory") into why. */
int vmp_cfg_read_file(const char *path, char **out, size_t *len, char *why, size_t why_size);

/* ---- environment and extra files (config_env.c) -------------------------- */

/* The value of an environment variable as opts see it (opts->env, else the
 * process environment; none with no_env), or NULL. */
const char *vmp_cfg_getenv(const vmp_config_opts *opts, const char *name);
/* Merges the files named by `:config: extra_config` (or env EXTRA_CONFIG)
 * into root, the way vmpooler's deep_merge does. */
int vmp_cfg_merge_extra(vmp_cfg_node *root, const vmp_config_opts *opts, vmp_cfg_diag *d);
/* Applies vmpooler's environment overrides (reference §8.7) to root. */
int vmp_cfg_apply_env(vmp_cfg_node *root, const vmp_config_opts *opts, vmp_cfg_diag *d);

/* ---- pools, providers, DNS configurations (config_pools.c) -------------- */

/* Fill cfg->providers / cfg->pools / cfg->dns_configs from cfg->root (after
 * normalisation; :config: already built), writing each pool's default
 * provider and ready_ttl into the tree. */
void vmp_cfg_build_providers(vmp_config *cfg, vmp_cfg_diag *d);
void vmp_cfg_build_pools(vmp_config *cfg, const vmp_config_opts *opts, vmp_cfg_diag *d);
void vmp_cfg_pools_free(vmp_config *cfg);

/* ---- known keys (config_keys.c) ------------------------------------------ */

/* The sections whose keys the loader checks by name, as key paths, NULL-ended:
 * "" (the top level), "config", "config.health_thresholds", "redis", "auth",
 * "auth.ldap", "statsd", "graphite", "prometheus", "graphs", "tracing", "api",
 * "pools" (every pool) and "providers.dummy" (the options it checks in an
 * entry of class dummy). */
const char *const *vmp_cfg_known_sections(void);
/* The i-th key the loader knows in section, or NULL past the last one or for
 * a section not in the list above. Read-only views of the loader's tables. */
const char *vmp_cfg_known_key(const char *section, size_t i);
/* The i-th environment override (config_env.c): its variable name, and the
 * section and key it sets (section "ldap" means auth.ldap). NULL past the
 * last one. */
const char *vmp_cfg_env_override(size_t i, const char **section, const char **key);
/* What vmp_cfg_known_key reads: the tables of config.c and config_pools.c. */
const char *vmp_cfg_global_known_key(const char *section, size_t i);
const char *vmp_cfg_pools_known_key(const char *section, size_t i);

#endif
