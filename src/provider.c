#include "provider.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * The built-in classes live in their own modules, which depend on this one
 * and not the reverse. They are reached through weak references: a program
 * that links a provider's object gets it registered by
 * vmp_provider_register_builtins, one that does not simply lacks it.
 */
extern const vmp_provider_ops vmp_dummy_provider_ops __attribute__((weak));
extern const vmp_provider_ops vmp_vsphere_provider_ops __attribute__((weak));

/* Pools without `provider:` use this one (vmpooler 3.x). */
#define DEFAULT_PROVIDER "dummy"

/* ---- class registry ----------------------------------------------------- */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static const vmp_provider_ops **registry;
static size_t registry_len, registry_cap;

static long registry_index(const char *name)
{
    for (size_t i = 0; i < registry_len; i++)
        if (strcasecmp(registry[i]->name, name) == 0)
            return (long)i;
    return -1;
}

int vmp_provider_register(const vmp_provider_ops *ops, vmp_err *err)
{
    int rc = 0;
    if (!ops)
        return vmp_err_set(err, VMP_EINVAL, "provider registration: no ops table");
    if (ops->abi != VMP_PROVIDER_ABI)
        return vmp_err_set(err, VMP_EINVAL,
                           "provider class '%s': unsupported abi %u (this build expects %u)",
                           ops->name ? ops->name : "?", ops->abi, (unsigned)VMP_PROVIDER_ABI);
    if (!ops->name || !ops->name[0])
        return vmp_err_set(err, VMP_EINVAL, "provider registration: the class has no name");

    pthread_mutex_lock(&registry_lock);
    if (registry_index(ops->name) >= 0) {
        rc = vmp_err_set(err, VMP_EEXIST, "provider class '%s' is already registered", ops->name);
        goto out;
    }
    if (registry_len == registry_cap) {
        size_t cap = registry_cap ? registry_cap * 2 : 8;
        const vmp_provider_ops **v = realloc(registry, cap * sizeof *v);
        if (!v) {
            rc = vmp_err_set(err, VMP_ENOMEM, "out of memory registering provider class '%s'",
                             ops->name);
            goto out;
        }
        registry = v;
        registry_cap = cap;
    }
    registry[registry_len++] = ops;
out:
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

int vmp_provider_unregister(const char *name)
{
    if (!name)
        return VMP_EINVAL;
    int rc = VMP_ENOENT;
    pthread_mutex_lock(&registry_lock);
    long i = registry_index(name);
    if (i >= 0) {
        memmove(&registry[i], &registry[i + 1], (registry_len - (size_t)i - 1) * sizeof *registry);
        registry_len--;
        rc = 0;
    }
    if (registry_len == 0) {
        free(registry);
        registry = NULL;
        registry_cap = 0;
    }
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

const vmp_provider_ops *vmp_provider_class_find(const char *name)
{
    if (!name)
        return NULL;
    pthread_mutex_lock(&registry_lock);
    long i = registry_index(name);
    const vmp_provider_ops *ops = i >= 0 ? registry[i] : NULL;
    pthread_mutex_unlock(&registry_lock);
    return ops;
}

size_t vmp_provider_class_names(vmp_strlist *out)
{
    size_t n = 0;
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < registry_len; i++)
        if (!out || vmp_strlist_push(out, registry[i]->name) == 0)
            n++;
    pthread_mutex_unlock(&registry_lock);
    return n;
}

/* Registers ops unless a class of that name is there already (so a second
 * call, or a class registered by hand first, is not an error). */
static int register_if_absent(const vmp_provider_ops *ops, vmp_err *err)
{
    vmp_err e = {0};
    int rc = vmp_provider_register(ops, &e);
    if (rc == VMP_EEXIST)
        return 0;
    if (rc != 0)
        return vmp_err_set(err, rc, "%s", e.msg);
    return 0;
}

int vmp_provider_register_builtins(vmp_err *err)
{
    int rc = 0;
    if (&vmp_dummy_provider_ops != NULL) {
        rc = register_if_absent(&vmp_dummy_provider_ops, err);
        if (rc != 0)
            goto out;
    }
    if (&vmp_vsphere_provider_ops != NULL) {
        rc = register_if_absent(&vmp_vsphere_provider_ops, err);
        if (rc != 0)
            goto out;
    }
out:
    return rc;
}

/* ---- instances ---------------------------------------------------------- */

struct vmp_provider {
    char *name;
    const vmp_provider_ops *ops;
    void *self;
    const vmp_config *cfg;
    const vmp_cfg_node *options;
    vmp_metrics *metrics;
    const vmp_cfg_node *node; /* the :providers: entry, or `empty` */
    vmp_cfg_node *empty;      /* owned empty map when the entry is absent or not a map */
    char subsys[VMP_NAME_MAX + 16];
};

void vmp_vm_info_clear(vmp_vm_info *info)
{
    if (!info)
        return;
    vmp_strlist_clear(&info->snapshots);
    memset(info, 0, sizeof *info);
}

static const vmp_provider_cfg *find_provider_cfg(const vmp_config *cfg, const char *name)
{
    for (size_t i = 0; cfg && i < cfg->n_providers; i++)
        if (cfg->providers[i].name && strcmp(cfg->providers[i].name, name) == 0)
            return &cfg->providers[i];
    return NULL;
}

static const char *pool_provider(const vmp_pool_cfg *pool)
{
    return pool->provider && pool->provider[0] ? pool->provider : DEFAULT_PROVIDER;
}

/* The class a provider entry asks for: `provider_class`, else the name. */
static const char *class_for(const vmp_provider_cfg *pc, const char *name)
{
    if (pc && pc->provider_class && pc->provider_class[0])
        return pc->provider_class;
    if (pc) {
        const char *c = vmp_cfg_get_str(pc->node, "provider_class", NULL);
        if (c && c[0])
            return c;
    }
    return name;
}

static void unknown_class_error(vmp_err *err, const char *name, const char *cls)
{
    vmp_buf known = VMP_BUF_INIT;
    vmp_strlist names = VMP_STRLIST_INIT;
    vmp_provider_class_names(&names);
    for (size_t i = 0; i < names.n; i++)
        vmp_buf_printf(&known, "%s%s", i ? ", " : "", names.v[i]);
    if (strcmp(name, cls) == 0)
        vmp_err_set(err, VMP_EINVAL, "provider '%s': no provider class named '%s' (known: %s)",
                    name, cls, known.len ? vmp_buf_str(&known) : "none");
    else
        vmp_err_set(err, VMP_EINVAL, "provider '%s': unknown provider_class '%s' (known: %s)", name,
                    cls, known.len ? vmp_buf_str(&known) : "none");
    vmp_buf_free(&known);
    vmp_strlist_clear(&names);
}

int vmp_provider_open(const vmp_config *cfg, const char *name, const vmp_cfg_node *options,
                      vmp_metrics *metrics, vmp_provider **out, vmp_err *err)
{
    int rc = 0;
    vmp_provider *p = NULL;
    if (!cfg || !name || !name[0] || !out || *out)
        return vmp_err_set(err, VMP_EINVAL, "vmp_provider_open: bad arguments");

    const vmp_provider_cfg *pc = find_provider_cfg(cfg, name);
    const char *cls = class_for(pc, name);
    const vmp_provider_ops *ops = vmp_provider_class_find(cls);
    if (!ops) {
        unknown_class_error(err, name, cls);
        return VMP_EINVAL;
    }

    p = calloc(1, sizeof *p);
    if (!p || !(p->name = strdup(name))) {
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory opening provider '%s'", name);
        goto out;
    }
    p->ops = ops;
    p->cfg = cfg;
    p->options = options;
    p->metrics = metrics;
    snprintf(p->subsys, sizeof p->subsys, "provider.%s", name);
    if (pc && vmp_cfg_kind_of(pc->node) == VMP_CFG_MAP) {
        p->node = pc->node;
    } else {
        p->empty = vmp_cfg_map_new();
        if (!p->empty) {
            rc = vmp_err_set(err, VMP_ENOMEM, "out of memory opening provider '%s'", name);
            goto out;
        }
        p->node = p->empty;
    }

    vmp_provider_log(p, VMP_LOG_INFO, NULL, NULL, "creating provider '%s' (class %s)", name,
                     ops->name);
    if (ops->open) {
        vmp_err e = {0};
        rc = ops->open(p, &p->self, &e);
        if (rc != 0) {
            if (rc > 0)
                rc = VMP_EPROVIDER;
            vmp_err_set(err, rc, "provider '%s': %s", name, e.msg[0] ? e.msg : vmp_strerror(rc));
            p->self = NULL;
            goto out;
        }
    }
    *out = p;
    p = NULL;
out:
    if (p) {
        if (p->self && p->ops->close)
            p->ops->close(p->self);
        vmp_cfg_free(p->empty);
        free(p->name);
        free(p);
    }
    return rc;
}

void vmp_provider_close(vmp_provider *p)
{
    if (!p)
        return;
    if (p->ops->close && p->self)
        p->ops->close(p->self);
    vmp_cfg_free(p->empty);
    free(p->name);
    free(p);
}

void vmp_provider_rebind(vmp_provider *p, const vmp_config *cfg)
{
    if (p && cfg)
        __atomic_store_n(&p->cfg, cfg, __ATOMIC_RELEASE);
}

/* ---- provider sets ------------------------------------------------------ */

struct vmp_provider_set {
    const vmp_config *cfg;
    vmp_provider **v;
    size_t n;
};

int vmp_provider_set_open(const vmp_config *cfg, const vmp_cfg_node *options, vmp_metrics *metrics,
                          vmp_provider_set **out, vmp_err *err)
{
    int rc = 0;
    vmp_strlist names = VMP_STRLIST_INIT;
    vmp_strlist used = VMP_STRLIST_INIT;
    vmp_provider_set *set = NULL;
    if (!cfg || !out || *out)
        return vmp_err_set(err, VMP_EINVAL, "vmp_provider_set_open: bad arguments");

    /* Every name a pool uses must resolve; then the :providers: entries no
     * pool uses (those are opened too, so purge and status can reach them,
     * but an unknown class there is only a warning, as vmpooler never
     * instantiates them). */
    for (size_t i = 0; i < cfg->n_pools; i++) {
        const char *pn = pool_provider(&cfg->pools[i]);
        if (!vmp_strlist_contains(&used, pn) && vmp_strlist_push(&used, pn) != 0)
            goto oom;
    }
    for (size_t i = 0; i < used.n; i++)
        if (vmp_strlist_push(&names, used.v[i]) != 0)
            goto oom;
    for (size_t i = 0; i < cfg->n_providers; i++) {
        const char *pn = cfg->providers[i].name;
        if (!pn || !pn[0] || vmp_strlist_contains(&names, pn))
            continue;
        if (!vmp_provider_class_find(class_for(&cfg->providers[i], pn))) {
            vmp_log(VMP_LOG_WARN, "provider",
                    "provider '%s' is configured but its class '%s' is not available; no pool "
                    "uses it, ignoring it",
                    pn, class_for(&cfg->providers[i], pn));
            continue;
        }
        if (vmp_strlist_push(&names, pn) != 0)
            goto oom;
    }

    set = calloc(1, sizeof *set);
    if (!set || (names.n && !(set->v = calloc(names.n, sizeof *set->v))))
        goto oom;
    set->cfg = cfg;
    for (size_t i = 0; i < names.n; i++) {
        rc = vmp_provider_open(cfg, names.v[i], options, metrics, &set->v[i], err);
        if (rc != 0)
            goto out;
        set->n++;
    }
    *out = set;
    set = NULL;
    goto out;
oom:
    rc = vmp_err_set(err, VMP_ENOMEM, "out of memory opening providers");
out:
    vmp_provider_set_close(set);
    vmp_strlist_clear(&names);
    vmp_strlist_clear(&used);
    return rc;
}

void vmp_provider_set_close(vmp_provider_set *set)
{
    if (!set)
        return;
    for (size_t i = set->n; i > 0; i--)
        vmp_provider_close(set->v[i - 1]);
    free(set->v);
    free(set);
}

vmp_provider *vmp_provider_set_get(const vmp_provider_set *set, const char *name)
{
    if (!set || !name)
        return NULL;
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->v[i]->name, name) == 0)
            return set->v[i];
    return NULL;
}

vmp_provider *vmp_provider_set_for_pool(const vmp_provider_set *set, const char *pool)
{
    if (!set || !pool)
        return NULL;
    for (size_t i = 0; i < set->cfg->n_pools; i++)
        if (set->cfg->pools[i].name && strcmp(set->cfg->pools[i].name, pool) == 0)
            return vmp_provider_set_get(set, pool_provider(&set->cfg->pools[i]));
    return NULL;
}

size_t vmp_provider_set_len(const vmp_provider_set *set) { return set ? set->n : 0; }

vmp_provider *vmp_provider_set_at(const vmp_provider_set *set, size_t i)
{
    return set && i < set->n ? set->v[i] : NULL;
}

/* ---- helpers ------------------------------------------------------------ */

const char *vmp_provider_name(const vmp_provider *p) { return p ? p->name : NULL; }
const char *vmp_provider_class_name(const vmp_provider *p) { return p ? p->ops->name : NULL; }
const vmp_provider_ops *vmp_provider_ops_of(const vmp_provider *p) { return p ? p->ops : NULL; }
void *vmp_provider_self(const vmp_provider *p) { return p ? p->self : NULL; }
const vmp_cfg_node *vmp_provider_config(const vmp_provider *p) { return p ? p->node : NULL; }
const vmp_cfg_node *vmp_provider_options(const vmp_provider *p) { return p ? p->options : NULL; }
/* The configuration may be swapped by vmp_provider_rebind while ops run. */
static const vmp_config *cfg_of(const vmp_provider *p)
{
    return __atomic_load_n(&p->cfg, __ATOMIC_ACQUIRE);
}

const vmp_config *vmp_provider_global_config(const vmp_provider *p) { return p ? cfg_of(p) : NULL; }
vmp_metrics *vmp_provider_metrics(const vmp_provider *p) { return p ? p->metrics : NULL; }

const vmp_pool_cfg *vmp_provider_pool_config(const vmp_provider *p, const char *pool)
{
    if (!p || !pool)
        return NULL;
    const vmp_config *cfg = cfg_of(p);
    for (size_t i = 0; i < cfg->n_pools; i++)
        if (cfg->pools[i].name && strcmp(cfg->pools[i].name, pool) == 0)
            return &cfg->pools[i];
    return NULL;
}

int vmp_provider_provided_pools(const vmp_provider *p, vmp_strlist *out)
{
    if (!p || !out)
        return VMP_EINVAL;
    const vmp_config *cfg = cfg_of(p);
    for (size_t i = 0; i < cfg->n_pools; i++) {
        const vmp_pool_cfg *pool = &cfg->pools[i];
        if (pool->name && strcmp(pool_provider(pool), p->name) == 0)
            if (vmp_strlist_push(out, pool->name) != 0)
                return VMP_ENOMEM;
    }
    return 0;
}

void vmp_provider_log(const vmp_provider *p, vmp_log_level level, const char *pool, const char *vm,
                      const char *fmt, ...)
{
    if (!vmp_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    vmp_log_vmv(level, p ? p->subsys : "provider", pool, vm, fmt, ap);
    va_end(ap);
}

/* ---- calls -------------------------------------------------------------- */

static bool empty(const char *s) { return !s || !s[0]; }

static int bad_args(vmp_provider *p, vmp_err *err, const char *op, const char *what)
{
    return vmp_err_set(err, VMP_EINVAL, "%s: %s: %s", p ? p->name : "(no provider)", op, what);
}

static int not_supported(vmp_provider *p, vmp_err *err, const char *op)
{
    return vmp_err_set(err, VMP_ENOTSUP, "%s does not implement %s", p->name, op);
}

/* Normalises an op's result: a positive value counts as success (a sloppy
 * backend), and a failure always leaves a code and a message in err. */
static int finish(vmp_provider *p, int rc, vmp_err *err, const char *op)
{
    if (rc >= 0) {
        vmp_err_clear(err);
        return 0;
    }
    if (err) {
        if (!err->msg[0])
            vmp_err_set(err, rc, "%s: %s failed: %s", p->name, op, vmp_strerror(rc));
        else
            err->code = rc;
    }
    return rc;
}

/* Checks the common arguments; vm is checked unless the op names none
 * (need_vm false). Clears err first so no stale message survives. */
static int check_args(vmp_provider *p, vmp_err *err, const char *op, const char *pool,
                      const char *vm, bool need_vm)
{
    vmp_err_clear(err);
    if (!p)
        return bad_args(p, err, op, "no provider instance");
    if (empty(pool))
        return bad_args(p, err, op, "empty pool name");
    if (need_vm && empty(vm))
        return bad_args(p, err, op, "empty VM name");
    return 0;
}

#define CHECK_ARGS(op, need_vm)                                                                    \
    do {                                                                                           \
        int check_rc_ = check_args(p, err, op, pool, vm, need_vm);                                 \
        if (check_rc_ != 0)                                                                        \
            return check_rc_;                                                                      \
    } while (0)

int vmp_provider_vms_in_pool(vmp_provider *p, const char *pool, vmp_strlist *out, vmp_err *err)
{
    int rc = check_args(p, err, "vms_in_pool", pool, NULL, false);
    if (rc != 0)
        return rc;
    if (!out)
        return bad_args(p, err, "vms_in_pool", "no output list");
    if (!p->ops->vms_in_pool)
        return not_supported(p, err, "vms_in_pool");
    size_t had = out->n;
    rc = finish(p, p->ops->vms_in_pool(p->self, pool, out, err), err, "vms_in_pool");
    /* A failed listing adds nothing, not half a list. */
    while (rc != 0 && out->n > had)
        vmp_strlist_remove(out, out->n - 1);
    return rc;
}

int vmp_provider_get_vm(vmp_provider *p, const char *pool, const char *vm, vmp_vm_info *out,
                        vmp_err *err)
{
    CHECK_ARGS("get_vm", true);
    if (!out)
        return bad_args(p, err, "get_vm", "no output");
    vmp_vm_info_clear(out);
    if (!p->ops->get_vm)
        return not_supported(p, err, "get_vm");
    int rc = finish(p, p->ops->get_vm(p->self, pool, vm, out, err), err, "get_vm");
    if (rc != 0)
        vmp_vm_info_clear(out);
    return rc;
}

int vmp_provider_create_vm(vmp_provider *p, const char *pool, const char *vm, vmp_vm_info *out,
                           vmp_err *err)
{
    CHECK_ARGS("create_vm", true);
    if (out)
        vmp_vm_info_clear(out);
    if (!p->ops->create_vm)
        return not_supported(p, err, "create_vm");
    int rc = finish(p, p->ops->create_vm(p->self, pool, vm, out, err), err, "create_vm");
    if (rc != 0 && out)
        vmp_vm_info_clear(out);
    return rc;
}

int vmp_provider_destroy_vm(vmp_provider *p, const char *pool, const char *vm, vmp_err *err)
{
    CHECK_ARGS("destroy_vm", true);
    if (!p->ops->destroy_vm)
        return not_supported(p, err, "destroy_vm");
    return finish(p, p->ops->destroy_vm(p->self, pool, vm, err), err, "destroy_vm");
}

int vmp_provider_vm_ready(vmp_provider *p, const char *pool, const char *vm, bool *ready,
                          vmp_err *err)
{
    CHECK_ARGS("vm_ready", true);
    if (!ready)
        return bad_args(p, err, "vm_ready", "no output");
    *ready = false;
    if (!p->ops->vm_ready)
        return not_supported(p, err, "vm_ready");
    int rc = finish(p, p->ops->vm_ready(p->self, pool, vm, ready, err), err, "vm_ready");
    if (rc != 0)
        *ready = false;
    return rc;
}

int vmp_provider_vm_exists(vmp_provider *p, const char *pool, const char *vm, bool *exists,
                           vmp_err *err)
{
    CHECK_ARGS("vm_exists", true);
    if (!exists)
        return bad_args(p, err, "vm_exists", "no output");
    *exists = false;
    if (p->ops->vm_exists) {
        int rc = finish(p, p->ops->vm_exists(p->self, pool, vm, exists, err), err, "vm_exists");
        if (rc != 0)
            *exists = false;
        return rc;
    }
    /* The base class: a VM exists when get_vm finds it. */
    if (!p->ops->get_vm)
        return not_supported(p, err, "vm_exists");
    vmp_vm_info info = {0};
    int rc = p->ops->get_vm(p->self, pool, vm, &info, err);
    vmp_vm_info_clear(&info);
    if (rc == VMP_ENOENT) {
        vmp_err_clear(err);
        return 0;
    }
    rc = finish(p, rc, err, "vm_exists");
    if (rc == 0)
        *exists = true;
    return rc;
}

/* The string ops share their checks: an output buffer of at least one
 * byte, emptied before the call and again on failure. */
static int string_op(vmp_provider *p, const char *opname,
                     int (*op)(void *, const char *, const char *, char *, size_t, vmp_err *),
                     const char *pool, const char *vm, char *buf, size_t len, vmp_err *err)
{
    CHECK_ARGS(opname, true);
    if (!buf || len == 0)
        return bad_args(p, err, opname, "no output buffer");
    buf[0] = '\0';
    if (!op)
        return not_supported(p, err, opname);
    int rc = finish(p, op(p->self, pool, vm, buf, len, err), err, opname);
    if (rc != 0)
        buf[0] = '\0';
    buf[len - 1] = '\0';
    return rc;
}

int vmp_provider_get_vm_ip_address(vmp_provider *p, const char *pool, const char *vm, char *ip,
                                   size_t len, vmp_err *err)
{
    return string_op(p, "get_vm_ip_address", p ? p->ops->get_vm_ip_address : NULL, pool, vm, ip,
                     len, err);
}

int vmp_provider_get_vm_host(vmp_provider *p, const char *pool, const char *vm, char *host,
                             size_t len, vmp_err *err)
{
    return string_op(p, "get_vm_host", p ? p->ops->get_vm_host : NULL, pool, vm, host, len, err);
}

int vmp_provider_find_least_used_compatible_host(vmp_provider *p, const char *pool, const char *vm,
                                                 char *host, size_t len, vmp_err *err)
{
    return string_op(p, "find_least_used_compatible_host",
                     p ? p->ops->find_least_used_compatible_host : NULL, pool, vm, host, len, err);
}

int vmp_provider_migrate_vm_to_host(vmp_provider *p, const char *pool, const char *vm,
                                    const char *host, vmp_err *err)
{
    CHECK_ARGS("migrate_vm_to_host", true);
    if (empty(host))
        return bad_args(p, err, "migrate_vm_to_host", "empty host name");
    if (!p->ops->migrate_vm_to_host)
        return not_supported(p, err, "migrate_vm_to_host");
    return finish(p, p->ops->migrate_vm_to_host(p->self, pool, vm, host, err), err,
                  "migrate_vm_to_host");
}

int vmp_provider_migrate_vm(vmp_provider *p, const char *pool, const char *vm, vmp_err *err)
{
    CHECK_ARGS("migrate_vm", true);
    if (!p->ops->migrate_vm)
        return not_supported(p, err, "migrate_vm");
    return finish(p, p->ops->migrate_vm(p->self, pool, vm, err), err, "migrate_vm");
}

int vmp_provider_create_disk(vmp_provider *p, const char *pool, const char *vm, int size_gb,
                             vmp_err *err)
{
    CHECK_ARGS("create_disk", true);
    if (size_gb <= 0)
        return bad_args(p, err, "create_disk", "disk size must be a positive number of GB");
    if (!p->ops->create_disk)
        return not_supported(p, err, "create_disk");
    return finish(p, p->ops->create_disk(p->self, pool, vm, size_gb, err), err, "create_disk");
}

int vmp_provider_create_snapshot(vmp_provider *p, const char *pool, const char *vm,
                                 const char *snapshot, vmp_err *err)
{
    CHECK_ARGS("create_snapshot", true);
    if (empty(snapshot))
        return bad_args(p, err, "create_snapshot", "empty snapshot name");
    if (!p->ops->create_snapshot)
        return not_supported(p, err, "create_snapshot");
    return finish(p, p->ops->create_snapshot(p->self, pool, vm, snapshot, err), err,
                  "create_snapshot");
}

int vmp_provider_revert_snapshot(vmp_provider *p, const char *pool, const char *vm,
                                 const char *snapshot, vmp_err *err)
{
    CHECK_ARGS("revert_snapshot", true);
    if (empty(snapshot))
        return bad_args(p, err, "revert_snapshot", "empty snapshot name");
    if (!p->ops->revert_snapshot)
        return not_supported(p, err, "revert_snapshot");
    return finish(p, p->ops->revert_snapshot(p->self, pool, vm, snapshot, err), err,
                  "revert_snapshot");
}

int vmp_provider_create_template_delta_disks(vmp_provider *p, const char *pool, vmp_err *err)
{
    int rc = check_args(p, err, "create_template_delta_disks", pool, NULL, false);
    if (rc != 0)
        return rc;
    if (!p->ops->create_template_delta_disks) {
        /* vmpooler 3.x's base class only says so; the pool carries on. */
        vmp_provider_log(p, VMP_LOG_INFO, pool, NULL,
                         "%s does not implement create_template_delta_disks", p->name);
        return 0;
    }
    return finish(p, p->ops->create_template_delta_disks(p->self, pool, err), err,
                  "create_template_delta_disks");
}

int vmp_provider_purge_unconfigured_resources(vmp_provider *p, const vmp_strlist *allowlist,
                                              vmp_err *err)
{
    vmp_err_clear(err);
    if (!p)
        return bad_args(p, err, "purge_unconfigured_resources", "no provider instance");
    if (!p->ops->purge_unconfigured_resources)
        return not_supported(p, err, "purge_unconfigured_resources");
    vmp_strlist none = VMP_STRLIST_INIT;
    return finish(p,
                  p->ops->purge_unconfigured_resources(p->self, allowlist ? allowlist : &none, err),
                  err, "purge_unconfigured_resources");
}

int vmp_provider_tag_vm_user(vmp_provider *p, const char *pool, const char *vm, vmp_err *err)
{
    CHECK_ARGS("tag_vm_user", true);
    if (!p->ops->tag_vm_user)
        return 0; /* the base class: nothing to tag, success */
    return finish(p, p->ops->tag_vm_user(p->self, pool, vm, err), err, "tag_vm_user");
}
