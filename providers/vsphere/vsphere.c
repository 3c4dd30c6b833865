#include "vsphere_priv.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const vsp_vm_paths[] = {"name",
                                    "runtime.powerState",
                                    "runtime.host",
                                    "runtime.bootTime",
                                    "summary.runtime.bootTime",
                                    "guest.hostName",
                                    "guest.ipAddress",
                                    "config.template",
                                    NULL};

/* ---- helpers ------------------------------------------------------------ */

const vmp_global_cfg *vsp_global(const vsp_instance *v)
{
    const vmp_config *cfg = vmp_provider_global_config(v->p);
    return cfg ? &cfg->global : NULL;
}

/* A key of the pool's mapping, else the provider's entry, else def. */
const char *vsp_pool_or_provider_str(const vsp_instance *v, const vmp_pool_cfg *pc, const char *key,
                                     const char *def)
{
    const char *s = pc ? vmp_cfg_get_str(pc->node, key, NULL) : NULL;
    return s ? s : vmp_cfg_get_str(vmp_provider_config(v->p), key, def);
}

long long vsp_pool_or_provider_int(const vsp_instance *v, const vmp_pool_cfg *pc, const char *key,
                                   long long def)
{
    long long x = pc ? vmp_cfg_get_int(pc->node, key, LLONG_MIN) : LLONG_MIN;
    return x != LLONG_MIN ? x : vmp_cfg_get_int(vmp_provider_config(v->p), key, def);
}

void vsp_log(const vsp_instance *v, vmp_log_level lvl, const char *pool, const char *vm,
             const char *fmt, ...)
{
    if (!vmp_log_enabled(lvl))
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    vmp_provider_log(v->p, lvl, pool, vm, "%s", msg);
}

int vsp_oom(vmp_err *err) { return vmp_err_set(err, VMP_ENOMEM, "out of memory"); }

void vsp_forget_inventory(vsp_instance *v)
{
    pthread_mutex_lock(&v->mu);
    for (size_t i = 0; i < v->n_paths; i++)
        free(v->paths[i].path);
    v->n_paths = 0;
    v->n_names = 0;
    pthread_mutex_unlock(&v->mu);
}

/* Looks path up, from the cache when fresh. */
int vsp_lookup(vsp_op *o, const char *path, vmp_moref *out, vmp_err *err)
{
    vsp_instance *v = o->v;
    double now = vmp_monotonic();
    if (v->cache_ttl > 0) {
        pthread_mutex_lock(&v->mu);
        for (size_t i = 0; i < v->n_paths; i++)
            if (strcmp(v->paths[i].path, path) == 0 && now - v->paths[i].at < v->cache_ttl) {
                *out = v->paths[i].ref;
                pthread_mutex_unlock(&v->mu);
                o->cached = true;
                return 0;
            }
        pthread_mutex_unlock(&v->mu);
    }
    int rc = vmp_vim_find_by_path(o->s, path, out, err);
    if (rc != 0 || v->cache_ttl <= 0)
        return rc;
    pthread_mutex_lock(&v->mu);
    size_t i;
    for (i = 0; i < v->n_paths; i++)
        if (strcmp(v->paths[i].path, path) == 0)
            break;
    if (i == v->n_paths) {
        char *copy = strdup(path);
        if (copy && v->n_paths == v->cap_paths) {
            size_t cap = v->cap_paths ? v->cap_paths * 2 : 16;
            vsp_path_entry *e = realloc(v->paths, cap * sizeof *e);
            if (e) {
                v->paths = e;
                v->cap_paths = cap;
            }
        }
        if (copy && v->n_paths < v->cap_paths) {
            v->paths[v->n_paths].path = copy;
            v->n_paths++;
        } else {
            free(copy); /* no room: just don't cache */
            i = (size_t)-1;
        }
    }
    if (i != (size_t)-1) {
        v->paths[i].ref = *out;
        v->paths[i].at = now;
    }
    pthread_mutex_unlock(&v->mu);
    return 0;
}

/* The name of a host (or any object with a `name`), cached by id. */
int vsp_object_name(vsp_op *o, const vmp_moref *ref, char *out, size_t len, vmp_err *err)
{
    vsp_instance *v = o->v;
    double now = vmp_monotonic();
    pthread_mutex_lock(&v->mu);
    for (size_t i = 0; i < v->n_names; i++)
        if (strcmp(v->names[i].id, ref->value) == 0 &&
            (v->cache_ttl <= 0 || now - v->names[i].at < v->cache_ttl * 10))
        {
            vmp_strlcpy(out, v->names[i].name, len);
            pthread_mutex_unlock(&v->mu);
            return 0;
        }
    pthread_mutex_unlock(&v->mu);
    static const char *const paths[] = {"name", NULL};
    const vmp_vim_propset set = {ref->type, paths};
    vmp_vim_objects *r = NULL;
    int rc = vmp_vim_retrieve(o->s, ref, 1, VMP_VIM_SELF, &set, 1, &r, err);
    if (rc == 0 && vmp_vim_prop_str(r, 0, "name", out, len) != 0)
        rc = vmp_err_set(err, VMP_EPROVIDER, "%s %s has no name", ref->type, ref->value);
    vmp_vim_objects_free(r);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&v->mu);
    size_t i;
    for (i = 0; i < v->n_names; i++)
        if (strcmp(v->names[i].id, ref->value) == 0)
            break;
    if (i == v->n_names && v->n_names == v->cap_names) {
        size_t cap = v->cap_names ? v->cap_names * 2 : 16;
        vsp_name_entry *e = realloc(v->names, cap * sizeof *e);
        if (e) {
            v->names = e;
            v->cap_names = cap;
        }
    }
    if (i < v->cap_names) {
        vmp_strlcpy(v->names[i].id, ref->value, sizeof v->names[i].id);
        vmp_strlcpy(v->names[i].name, out, sizeof v->names[i].name);
        v->names[i].at = now;
        if (i == v->n_names)
            v->n_names++;
    }
    pthread_mutex_unlock(&v->mu);
    return 0;
}

/* The first datacenter under the root folder (vmpooler's default when none
 * is configured). */
static int first_datacenter(vsp_op *o, char *out, size_t len, vmp_err *err)
{
    vsp_instance *v = o->v;
    pthread_mutex_lock(&v->mu);
    if (v->first_dc) {
        vmp_strlcpy(out, v->first_dc, len);
        pthread_mutex_unlock(&v->mu);
        return 0;
    }
    pthread_mutex_unlock(&v->mu);
    const vmp_soap_service *svc = vmp_soap_service_content(o->s);
    static const char *const paths[] = {"name", NULL};
    const vmp_vim_propset set = {"Datacenter", paths};
    vmp_vim_objects *r = NULL;
    int rc = vmp_vim_retrieve(o->s, &svc->root_folder, 1, VMP_VIM_FOLDER_TREE, &set, 1, &r, err);
    if (rc == 0) {
        rc = vmp_err_set(err, VMP_ENOENT, "the vCenter has no datacenter");
        for (size_t i = 0; i < vmp_vim_objects_count(r); i++)
            if (strcmp(vmp_vim_objects_ref(r, i)->type, "Datacenter") == 0 &&
                vmp_vim_prop_str(r, i, "name", out, len) == 0)
            {
                rc = 0;
                break;
            }
    }
    vmp_vim_objects_free(r);
    if (rc == 0) {
        pthread_mutex_lock(&v->mu);
        if (!v->first_dc)
            v->first_dc = strdup(out);
        pthread_mutex_unlock(&v->mu);
    }
    return rc;
}

int vsp_op_begin(vsp_instance *v, const char *pool, const char *vm, vsp_op *o, vmp_err *err)
{
    memset(o, 0, sizeof *o);
    o->v = v;
    o->pool = pool;
    o->vm = vm;
    o->pc = vmp_provider_pool_config(v->p, pool);
    if (!o->pc)
        return vmp_err_set(err, VMP_ENOENT, "pool '%s' is not configured", pool ? pool : "");
    int rc = vmp_sessions_get(v->sessions, &o->s, err);
    if (rc != 0)
        return rc;
    const char *dc = o->pc->datacenter ? o->pc->datacenter : v->datacenter;
    if (dc && dc[0])
        vmp_strlcpy(o->dc, dc, sizeof o->dc);
    else
        rc = first_datacenter(o, o->dc, sizeof o->dc, err);
    return rc;
}

/* Gives the session back; a failed op may have been caused by a stale
 * cached vsp_lookup, so the caches start afresh. */
int vsp_op_end(vsp_op *o, int rc)
{
    if (o->s)
        vmp_sessions_put(o->v->sessions, o->s);
    o->s = NULL;
    /* "Not found" is an answer, not a fault, unless a remembered object
     * may be the one that is gone. */
    if (rc != 0 && (rc != VMP_ENOENT || o->cached))
        vsp_forget_inventory(o->v);
    return rc;
}

/* "<dc>/vm/<folder>" (the datacenter's VM root when the pool has no folder). */
void vsp_folder_path(const vsp_op *o, char *buf, size_t len)
{
    const char *f = o->pc->folder;
    if (f && f[0])
        snprintf(buf, len, "%s/vm/%s", o->dc, f);
    else
        snprintf(buf, len, "%s/vm", o->dc);
}

/* Finds the pool's VM `name`; VMP_ENOENT when it does not exist. */
int vsp_find_vm(vsp_op *o, vmp_moref *out, vmp_err *err)
{
    char path[1024];
    vsp_folder_path(o, path, sizeof path);
    size_t l = strlen(path);
    snprintf(path + l, sizeof path - l, "/%s", o->vm);
    int rc = vmp_vim_find_by_path(o->s, path, out, err);
    if (rc == 0 && strcmp(out->type, "VirtualMachine") != 0)
        rc = VMP_ENOENT;
    if (rc == VMP_ENOENT)
        vmp_err_set(err, VMP_ENOENT, "VM %s does not exist in pool %s", o->vm, o->pool);
    return rc;
}

int vsp_read_vm(vsp_op *o, const vmp_moref *vm, const char *const *paths, vmp_vim_objects **r,
                vmp_err *err)
{
    const vmp_vim_propset set = {"VirtualMachine", paths};
    int rc = vmp_vim_retrieve(o->s, vm, 1, VMP_VIM_SELF, &set, 1, r, err);
    if (rc == 0 && vmp_vim_objects_count(*r) == 0) {
        vmp_vim_objects_free(*r);
        *r = NULL;
        rc = vmp_err_set(err, VMP_ENOENT, "VM %s does not exist", o->vm);
    }
    return rc;
}

/* Fills info from a read of vsp_vm_paths. */
int vsp_fill_info(vsp_op *o, const vmp_vim_objects *r, vmp_vm_info *out, vmp_err *err)
{
    vmp_vm_info_clear(out);
    memset(out, 0, sizeof *out);
    vmp_vim_prop_str(r, 0, "name", out->name, sizeof out->name);
    vmp_vim_prop_str(r, 0, "guest.hostName", out->hostname, sizeof out->hostname);
    vmp_strlcpy(out->template_path, o->pc->template_path ? o->pc->template_path : "",
                sizeof out->template_path);
    vmp_strlcpy(out->poolname, o->pool, sizeof out->poolname);
    /* vcsim updates only the summary's copy on power-on. */
    if (vmp_vim_prop_time(r, 0, "runtime.bootTime", &out->boottime) != 0 &&
        vmp_vim_prop_time(r, 0, "summary.runtime.bootTime", &out->boottime) != 0)
        out->boottime = 0;
    vmp_vim_prop_str(r, 0, "runtime.powerState", out->powerstate, sizeof out->powerstate);
    vmp_vim_prop_str(r, 0, "guest.ipAddress", out->ip, sizeof out->ip);
    vmp_moref host;
    if (vmp_vim_prop_moref(r, 0, "runtime.host", &host) == 0)
        return vsp_object_name(o, &host, out->host, sizeof out->host, err);
    return 0;
}

/* Powers vm off when it is on, then destroys it. A VM that disappears on
 * the way counts as destroyed. */
int vsp_destroy_ref(vsp_op *o, const vmp_moref *vm, const char *name, vmp_err *err)
{
    static const char *const paths[] = {"runtime.powerState", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    vmp_vim_objects *r = NULL;
    char what[VMP_NAME_MAX + 32];
    int rc = vmp_vim_retrieve(o->s, vm, 1, VMP_VIM_SELF, &set, 1, &r, err);
    if (rc == 0) {
        char ps[32] = "";
        vmp_vim_prop_str(r, 0, "runtime.powerState", ps, sizeof ps);
        if (strcmp(ps, "poweredOn") == 0) {
            snprintf(what, sizeof what, "power off of %s", name);
            rc = vmp_vim_run_task(o->s, "PowerOffVM_Task", vm, NULL, what, o->v->task_timeout, NULL,
                                  err);
            if (rc == VMP_ESTATE)
                rc = 0; /* off meanwhile */
        }
    }
    vmp_vim_objects_free(r);
    if (rc == 0) {
        snprintf(what, sizeof what, "destroy of %s", name);
        rc = vmp_vim_run_task(o->s, "Destroy_Task", vm, NULL, what, o->v->task_timeout, NULL, err);
    }
    return rc == VMP_ENOENT ? 0 : rc;
}

void vsp_close(void *self)
{
    vsp_instance *v = self;
    if (!v)
        return;
    vmp_sessions_free(v->sessions);
    vmp_soap_stats_free(v->stats);
    vsp_forget_inventory(v);
    free(v->paths);
    free(v->names);
    for (size_t i = 0; i < v->n_rrs; i++) {
        free(v->rrs[i].key);
        vmp_hostsel_rr_clear(&v->rrs[i].rr);
        free(v->rrs[i].facts);
    }
    free(v->rrs);
    pthread_mutex_destroy(&v->mu);
    pthread_mutex_destroy(&v->rr_mu);
    free(v->first_dc);
    free(v->url);
    free(v->username);
    free(v->datacenter);
    free(v->ready_check);
    free(v);
}

/* https://<server>/sdk from `server` (a host, host:port or a URL) and
 * `port`. */
static char *make_url(const char *server, long long port)
{
    if (strncasecmp(server, "https://", 8) == 0 || strncasecmp(server, "http://", 7) == 0) {
        const char *host = strstr(server, "//") + 2;
        if (strchr(host, '/'))
            return strdup(server);
        return vmp_asprintf("%s/sdk", server);
    }
    if (port > 0)
        return vmp_asprintf("https://%s:%lld/sdk", server, port);
    return vmp_asprintf("https://%s/sdk", server);
}

int vsp_open(vmp_provider *p, void **self, vmp_err *err)
{
    int rc = 0;
    const vmp_cfg_node *c = vmp_provider_config(p);
    const vmp_config *cfg = vmp_provider_global_config(p);
    vsp_instance *v = calloc(1, sizeof *v);
    if (!v)
        return vsp_oom(err);
    v->p = p;
    pthread_mutex_init(&v->mu, NULL);
    pthread_mutex_init(&v->rr_mu, NULL);

    const char *server = vmp_cfg_get_str(c, "server", NULL);
    const char *user = vmp_cfg_get_str(c, "username", NULL);
    const char *pass = vmp_cfg_get_str(c, "password", NULL);
    if (!server || !server[0] || !user || !user[0] || !pass) {
        rc = vmp_err_set(err, VMP_EINVAL,
                         "the vsphere provider needs server, username and "
                         "password in its :providers: entry");
        goto out;
    }
    const char *auth = strstr(server, "://") ? strstr(server, "://") + 3 : server;
    const char *at = strchr(auth, '@'), *slash = strchr(auth, '/');
    if (at && (!slash || at < slash)) {
        /* Credentials in the URL would end up in log lines and errors. */
        rc = vmp_err_set(err, VMP_EINVAL,
                         "server: put the user name and password in username "
                         "and password, not in the server address");
        goto out;
    }
    if (strstr(server, "://") && strncasecmp(server, "https://", 8) != 0 &&
        strncasecmp(server, "http://", 7) != 0)
    {
        rc =
            vmp_err_set(err, VMP_EINVAL, "server '%s': use a host name or an https:// URL", server);
        goto out;
    }
    v->url = make_url(server, vmp_cfg_get_int(c, "port", 0));
    v->username = strdup(user);
    const char *dc = vmp_cfg_get_str(c, "datacenter", NULL);
    v->datacenter = dc ? strdup(dc) : NULL;
    v->ready_check = strdup(vmp_cfg_get_str(c, "ready_check", "name"));
    if (!v->url || !v->username || (dc && !v->datacenter) || !v->ready_check) {
        rc = vsp_oom(err);
        goto out;
    }
    v->ready_port = (int)vmp_cfg_get_int(c, "ready_port", 22);
    v->ready_timeout = vmp_cfg_get_double(c, "ready_timeout", 5);
    v->task_timeout = vmp_cfg_get_double(c, "task_timeout", 3600);
    v->cache_ttl = vmp_cfg_get_double(c, "inventory_cache_ttl", 60);

    /* vmpooler: connection_pool_size, else the larger of the number of
     * pools this provider serves, task_limit and 2. */
    vmp_strlist provided = VMP_STRLIST_INIT;
    vmp_provider_provided_pools(p, &provided);
    long long dflt = (long long)provided.n;
    vmp_strlist_clear(&provided);
    if (cfg && cfg->global.task_limit > dflt)
        dflt = cfg->global.task_limit;
    if (dflt < 2)
        dflt = 2;
    long long size = vmp_cfg_get_int(c, "connection_pool_size", dflt);
    v->pool_size = size > 0 && size <= 1000 ? (int)size : (int)dflt;

    v->stats = vmp_soap_stats_new();
    if (!v->stats) {
        rc = vsp_oom(err);
        goto out;
    }
    vmp_sessions_opts so = {
        .soap = {.url = v->url,
                 .username = user,
                 .password = pass,
                 .ca_file = vmp_cfg_get_str(c, "ca_file", NULL),
                 .insecure = vmp_cfg_get_bool(c, "insecure", false),
                 .connect_timeout_ms = (long)(vmp_cfg_get_double(c, "connect_timeout", 30) * 1000),
                 .timeout_ms = (long)(vmp_cfg_get_double(c, "request_timeout", 300) * 1000),
                 .stats = v->stats},
        .size = v->pool_size,
        .timeout = vmp_cfg_get_double(c, "connection_pool_timeout", 60),
        .max_tries = cfg ? (int)cfg->global.max_tries : 3,
        .retry_factor = cfg ? (double)cfg->global.retry_factor : 10,
        .metrics = vmp_provider_metrics(p),
        .provider = vmp_provider_name(p),
    };
    if (so.soap.insecure)
        vmp_provider_log(p, VMP_LOG_WARN, NULL, NULL,
                         "insecure: true — the vCenter's TLS certificate is not verified");
    rc = vmp_sessions_new(&so, &v->sessions, err);
    if (rc != 0)
        goto out;
    vmp_provider_log(p, VMP_LOG_INFO, NULL, NULL, "vCenter %s as %s, %d sessions at most", v->url,
                     v->username, v->pool_size);
    *self = v;
    v = NULL;
out:
    vsp_close(v);
    return rc;
}

const vmp_provider_ops vmp_vsphere_provider_ops = {
    .abi = VMP_PROVIDER_ABI,
    .name = "vsphere",
    .open = vsp_open,
    .close = vsp_close,
    .vms_in_pool = vsp_vms_in_pool,
    .get_vm = vsp_get_vm,
    .create_vm = vsp_create_vm,
    .destroy_vm = vsp_destroy_vm,
    .vm_ready = vsp_vm_ready,
    .vm_exists = vsp_vm_exists,
    .get_vm_ip_address = vsp_get_vm_ip_address,
    .get_vm_host = vsp_get_vm_host,
    .find_least_used_compatible_host = vsp_find_least_used_compatible_host,
    .migrate_vm_to_host = vsp_migrate_vm_to_host,
    .migrate_vm = NULL, /* needs Redis (migration_limit); the engine drives the three ops above */
    .create_disk = vsp_create_disk,
    .create_snapshot = vsp_create_snapshot,
    .revert_snapshot = vsp_revert_snapshot,
    .create_template_delta_disks = vsp_create_template_delta_disks,
    .purge_unconfigured_resources = vsp_purge_unconfigured_resources,
    .tag_vm_user = NULL, /* the base default */
};

int vmp_vsphere_register(vmp_err *err)
{
    if (vmp_provider_class_find("vsphere"))
        return 0;
    vmp_err e = {0};
    int rc = vmp_provider_register(&vmp_vsphere_provider_ops, &e);
    if (rc == VMP_EEXIST)
        return 0;
    if (rc != 0)
        vmp_err_set(err, rc, "%s", e.msg);
    return rc;
}

static vsp_instance *instance(vmp_provider *p)
{
    if (!p || vmp_provider_ops_of(p) != &vmp_vsphere_provider_ops)
        return NULL;
    return vmp_provider_self(p);
}

int vmp_vsphere_counters(vmp_provider *p, vmp_soap_counters *out)
{
    vsp_instance *v = instance(p);
    if (!v)
        return VMP_EINVAL;
    vmp_soap_stats_get(v->stats, out);
    return 0;
}

int vmp_vsphere_counters_reset(vmp_provider *p)
{
    vsp_instance *v = instance(p);
    if (!v)
        return VMP_EINVAL;
    vmp_soap_stats_reset(v->stats);
    return 0;
}

int vmp_vsphere_sessions(vmp_provider *p, int *created, int *size)
{
    vsp_instance *v = instance(p);
    if (!v)
        return VMP_EINVAL;
    if (created)
        *created = vmp_sessions_created(v->sessions);
    if (size)
        *size = v->pool_size;
    return 0;
}

int vmp_vsphere_forget_inventory(vmp_provider *p)
{
    vsp_instance *v = instance(p);
    if (!v)
        return VMP_EINVAL;
    vsp_forget_inventory(v);
    pthread_mutex_lock(&v->mu);
    free(v->first_dc);
    v->first_dc = NULL;
    pthread_mutex_unlock(&v->mu);
    pthread_mutex_lock(&v->rr_mu);
    for (size_t i = 0; i < v->n_rrs; i++)
        v->rrs[i].rr.built_at = -1e18;
    pthread_mutex_unlock(&v->rr_mu);
    return 0;
}
