#include "vsphere.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hostsel.h"
#include "sessions.h"
#include "vim.h"
#include "xml.h"

/* ---- instance ------------------------------------------------------------ */

typedef struct path_entry {
    char *path;
    vmp_moref ref;
    double at;
} path_entry;

typedef struct name_entry {
    char id[VMP_MOREF_VALUE_MAX];
    char name[VMP_HOST_MAX];
    double at;
} name_entry;

typedef struct rr_entry {
    char *key;             /* "<datacenter>_<cluster>" */
    vmp_hostsel_rr rr;
    vmp_host_facts *facts; /* as of the last refresh, for name -> id */
    size_t n;
} rr_entry;

typedef struct vsphere {
    vmp_provider *p;
    char *url, *username, *datacenter, *ready_check;
    int ready_port;
    double ready_timeout, task_timeout, cache_ttl;
    int pool_size;
    vmp_soap_stats *stats;
    vmp_sessions *sessions;

    pthread_mutex_t mu; /* the caches below */
    char *first_dc;
    path_entry *paths;
    size_t n_paths, cap_paths;
    name_entry *names;
    size_t n_names, cap_names;

    pthread_mutex_t rr_mu; /* round-robin host lists; held across a refresh */
    rr_entry *rrs;
    size_t n_rrs;
} vsphere;

/* What every op works with: the pool's configuration, a session, the
 * datacenter's inventory path. */
typedef struct op {
    vsphere *v;
    const char *pool, *vm;
    const vmp_pool_cfg *pc;
    vmp_soap *s;
    char dc[VMP_NAME_MAX];
} op;

static const char *const VM_PATHS[] = {
    "name",           "runtime.powerState", "runtime.host",    "runtime.bootTime",
    "summary.runtime.bootTime", "guest.hostName", "guest.ipAddress", "config.template", NULL};

/* ---- small helpers ------------------------------------------------------- */

static const vmp_global_cfg *global(const vsphere *v)
{
    const vmp_config *cfg = vmp_provider_global_config(v->p);
    return cfg ? &cfg->global : NULL;
}

/* A key of the pool's mapping, else the provider's entry, else def. */
static const char *pool_or_provider_str(const vsphere *v, const vmp_pool_cfg *pc, const char *key,
                                        const char *def)
{
    const char *s = pc ? vmp_cfg_get_str(pc->node, key, NULL) : NULL;
    return s ? s : vmp_cfg_get_str(vmp_provider_config(v->p), key, def);
}

static long long pool_or_provider_int(const vsphere *v, const vmp_pool_cfg *pc, const char *key,
                                      long long def)
{
    long long x = pc ? vmp_cfg_get_int(pc->node, key, LLONG_MIN) : LLONG_MIN;
    return x != LLONG_MIN ? x : vmp_cfg_get_int(vmp_provider_config(v->p), key, def);
}

static void log_vm(const vsphere *v, vmp_log_level lvl, const char *pool, const char *vm,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void log_vm(const vsphere *v, vmp_log_level lvl, const char *pool, const char *vm,
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

static int oom(vmp_err *err) { return vmp_err_set(err, VMP_ENOMEM, "out of memory"); }

/* ---- caches -------------------------------------------------------------- */

static void forget_inventory(vsphere *v)
{
    pthread_mutex_lock(&v->mu);
    for (size_t i = 0; i < v->n_paths; i++)
        free(v->paths[i].path);
    v->n_paths = 0;
    v->n_names = 0;
    pthread_mutex_unlock(&v->mu);
}

/* Looks path up, from the cache when fresh. */
static int lookup(op *o, const char *path, vmp_moref *out, vmp_err *err)
{
    vsphere *v = o->v;
    double now = vmp_monotonic();
    if (v->cache_ttl > 0) {
        pthread_mutex_lock(&v->mu);
        for (size_t i = 0; i < v->n_paths; i++)
            if (strcmp(v->paths[i].path, path) == 0 && now - v->paths[i].at < v->cache_ttl) {
                *out = v->paths[i].ref;
                pthread_mutex_unlock(&v->mu);
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
            path_entry *e = realloc(v->paths, cap * sizeof *e);
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
static int object_name(op *o, const vmp_moref *ref, char *out, size_t len, vmp_err *err)
{
    vsphere *v = o->v;
    double now = vmp_monotonic();
    pthread_mutex_lock(&v->mu);
    for (size_t i = 0; i < v->n_names; i++)
        if (strcmp(v->names[i].id, ref->value) == 0 &&
            (v->cache_ttl <= 0 || now - v->names[i].at < v->cache_ttl * 10)) {
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
        name_entry *e = realloc(v->names, cap * sizeof *e);
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

/* ---- op frame ------------------------------------------------------------- */

/* The first datacenter under the root folder (vmpooler's default when none
 * is configured). */
static int first_datacenter(op *o, char *out, size_t len, vmp_err *err)
{
    vsphere *v = o->v;
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
                vmp_vim_prop_str(r, i, "name", out, len) == 0) {
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

static int op_begin(vsphere *v, const char *pool, const char *vm, op *o, vmp_err *err)
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
 * cached lookup, so the caches start afresh. */
static int op_end(op *o, int rc)
{
    if (o->s)
        vmp_sessions_put(o->v->sessions, o->s);
    o->s = NULL;
    if (rc != 0 && rc != VMP_ENOENT)
        forget_inventory(o->v);
    return rc;
}

/* "<dc>/vm/<folder>" (the datacenter's VM root when the pool has no folder). */
static void folder_path(const op *o, char *buf, size_t len)
{
    const char *f = o->pc->folder;
    if (f && f[0])
        snprintf(buf, len, "%s/vm/%s", o->dc, f);
    else
        snprintf(buf, len, "%s/vm", o->dc);
}

/* Finds the pool's VM `name`; VMP_ENOENT when it does not exist. */
static int find_vm(op *o, vmp_moref *out, vmp_err *err)
{
    char path[1024];
    folder_path(o, path, sizeof path);
    size_t l = strlen(path);
    snprintf(path + l, sizeof path - l, "/%s", o->vm);
    int rc = vmp_vim_find_by_path(o->s, path, out, err);
    if (rc == 0 && strcmp(out->type, "VirtualMachine") != 0)
        rc = VMP_ENOENT;
    if (rc == VMP_ENOENT)
        vmp_err_set(err, VMP_ENOENT, "VM %s does not exist in pool %s", o->vm, o->pool);
    return rc;
}

static int read_vm(op *o, const vmp_moref *vm, const char *const *paths, vmp_vim_objects **r,
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

/* Fills info from a read of VM_PATHS. */
static int fill_info(op *o, const vmp_vim_objects *r, vmp_vm_info *out, vmp_err *err)
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
        return object_name(o, &host, out->host, sizeof out->host, err);
    return 0;
}

/* ---- open / close ---------------------------------------------------------- */

static void vs_close(void *self)
{
    vsphere *v = self;
    if (!v)
        return;
    vmp_sessions_free(v->sessions);
    vmp_soap_stats_free(v->stats);
    forget_inventory(v);
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

static int vs_open(vmp_provider *p, void **self, vmp_err *err)
{
    int rc = 0;
    const vmp_cfg_node *c = vmp_provider_config(p);
    const vmp_config *cfg = vmp_provider_global_config(p);
    vsphere *v = calloc(1, sizeof *v);
    if (!v)
        return oom(err);
    v->p = p;
    pthread_mutex_init(&v->mu, NULL);
    pthread_mutex_init(&v->rr_mu, NULL);

    const char *server = vmp_cfg_get_str(c, "server", NULL);
    const char *user = vmp_cfg_get_str(c, "username", NULL);
    const char *pass = vmp_cfg_get_str(c, "password", NULL);
    if (!server || !server[0] || !user || !user[0] || !pass) {
        rc = vmp_err_set(err, VMP_EINVAL, "the vsphere provider needs server, username and "
                                          "password in its :providers: entry");
        goto out;
    }
    if (strstr(server, "://") && strncasecmp(server, "https://", 8) != 0 &&
        strncasecmp(server, "http://", 7) != 0) {
        rc = vmp_err_set(err, VMP_EINVAL, "server '%s': use a host name or an https:// URL",
                         server);
        goto out;
    }
    v->url = make_url(server, vmp_cfg_get_int(c, "port", 0));
    v->username = strdup(user);
    const char *dc = vmp_cfg_get_str(c, "datacenter", NULL);
    v->datacenter = dc ? strdup(dc) : NULL;
    v->ready_check = strdup(vmp_cfg_get_str(c, "ready_check", "name"));
    if (!v->url || !v->username || (dc && !v->datacenter) || !v->ready_check) {
        rc = oom(err);
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
        rc = oom(err);
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
    vmp_provider_log(p, VMP_LOG_INFO, NULL, NULL, "vCenter %s as %s, %d sessions at most",
                     v->url, v->username, v->pool_size);
    *self = v;
    v = NULL;
out:
    vs_close(v);
    return rc;
}

/* ---- inventory ------------------------------------------------------------ */

static int vs_vms_in_pool(void *self, const char *pool, vmp_strlist *out, vmp_err *err)
{
    vsphere *v = self;
    op o;
    if (!vmp_provider_pool_config(v->p, pool))
        return 0; /* a pool this provider does not know has no VMs */
    int rc = op_begin(v, pool, NULL, &o, err);
    if (rc != 0)
        return op_end(&o, rc);
    char path[1024];
    folder_path(&o, path, sizeof path);
    static const char *const paths[] = {"name", "config.template", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    vmp_vim_objects *r = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        vmp_moref folder;
        rc = lookup(&o, path, &folder, err);
        if (rc == VMP_ENOENT) {
            rc = 0; /* no folder yet: no VMs */
            goto out;
        }
        if (rc == 0)
            rc = vmp_vim_retrieve(o.s, &folder, 1, VMP_VIM_CHILDREN, &set, 1, &r, err);
        if (rc != VMP_ENOENT)
            break;
        forget_inventory(v); /* the remembered folder is gone: look again */
    }
    for (size_t i = 0; rc == 0 && i < vmp_vim_objects_count(r); i++) {
        char name[VMP_NAME_MAX];
        bool tmpl = false;
        if (strcmp(vmp_vim_objects_ref(r, i)->type, "VirtualMachine") != 0)
            continue;
        vmp_vim_prop_bool(r, i, "config.template", &tmpl);
        if (tmpl || vmp_vim_prop_str(r, i, "name", name, sizeof name) != 0)
            continue;
        if (vmp_strlist_push(out, name) != 0)
            rc = oom(err);
    }
out:
    vmp_vim_objects_free(r);
    return op_end(&o, rc);
}

static int vs_get_vm(void *self, const char *pool, const char *vm, vmp_vm_info *out, vmp_err *err)
{
    op o;
    vmp_moref ref;
    vmp_vim_objects *r = NULL;
    int rc = op_begin(self, pool, vm, &o, err);
    if (rc == 0)
        rc = find_vm(&o, &ref, err);
    if (rc == 0)
        rc = read_vm(&o, &ref, VM_PATHS, &r, err);
    if (rc == 0)
        rc = fill_info(&o, r, out, err);
    vmp_vim_objects_free(r);
    return op_end(&o, rc);
}

static int vs_vm_exists(void *self, const char *pool, const char *vm, bool *exists, vmp_err *err)
{
    op o;
    vmp_moref ref;
    *exists = false;
    int rc = op_begin(self, pool, vm, &o, err);
    if (rc == 0) {
        rc = find_vm(&o, &ref, err);
        *exists = rc == 0;
        if (rc == VMP_ENOENT)
            rc = 0;
    }
    return op_end(&o, rc);
}

static int vs_get_vm_ip_address(void *self, const char *pool, const char *vm, char *ip, size_t len,
                                vmp_err *err)
{
    op o;
    vmp_moref ref;
    vmp_vim_objects *r = NULL;
    static const char *const paths[] = {"guest.ipAddress", NULL};
    if (len)
        ip[0] = '\0';
    int rc = op_begin(self, pool, vm, &o, err);
    if (rc == 0)
        rc = find_vm(&o, &ref, err);
    if (rc == 0)
        rc = read_vm(&o, &ref, paths, &r, err);
    if (rc == 0 && (vmp_vim_prop_str(r, 0, "guest.ipAddress", ip, len) != 0 || !ip[0]))
        rc = vmp_err_set(err, VMP_EFAILED, "VM %s has no IP address (VMware Tools reported none)",
                         vm);
    vmp_vim_objects_free(r);
    return op_end(&o, rc);
}

static int vs_get_vm_host(void *self, const char *pool, const char *vm, char *host, size_t len,
                          vmp_err *err)
{
    op o;
    vmp_moref ref, h;
    vmp_vim_objects *r = NULL;
    static const char *const paths[] = {"runtime.host", NULL};
    int rc = op_begin(self, pool, vm, &o, err);
    if (rc == 0)
        rc = find_vm(&o, &ref, err);
    if (rc == 0)
        rc = read_vm(&o, &ref, paths, &r, err);
    if (rc == 0 && vmp_vim_prop_moref(r, 0, "runtime.host", &h) != 0)
        rc = vmp_err_set(err, VMP_ENOENT, "VM %s has no host", vm);
    if (rc == 0)
        rc = object_name(&o, &h, host, len, err);
    vmp_vim_objects_free(r);
    return op_end(&o, rc);
}

/* ---- readiness ------------------------------------------------------------ */

/* Opens (and closes) a TCP connection to host:port within timeout seconds.
 * Returns 0 when it connected, else -1 with a reason in why. */
static int tcp_probe(const char *host, int port, double timeout, char *why, size_t whylen)
{
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(host, service, &hints, &res);
    if (g != 0) {
        snprintf(why, whylen, "cannot resolve %s: %s", host, gai_strerror(g));
        return -1;
    }
    int rc = -1;
    snprintf(why, whylen, "no address for %s", host);
    double deadline = vmp_monotonic() + timeout;
    for (struct addrinfo *a = res; a && rc != 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(why, whylen, "socket: %s", strerror(errno));
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            rc = 0;
        } else if (errno == EINPROGRESS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int left = (int)((deadline - vmp_monotonic()) * 1000);
            int pr = left > 0 ? poll(&pfd, 1, left) : 0;
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (pr == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
                rc = 0;
            else if (pr == 0)
                snprintf(why, whylen, "connecting to %s port %d timed out", host, port);
            else
                snprintf(why, whylen, "connecting to %s port %d: %s", host, port,
                         strerror(soerr ? soerr : errno));
        } else {
            snprintf(why, whylen, "connecting to %s port %d: %s", host, port, strerror(errno));
        }
        close(fd);
    }
    freeaddrinfo(res);
    return rc;
}

static int vs_vm_ready(void *self, const char *pool, const char *vm, bool *ready, vmp_err *err)
{
    vsphere *v = self;
    *ready = false;
    const vmp_pool_cfg *pc = vmp_provider_pool_config(v->p, pool);
    if (!pc)
        return vmp_err_set(err, VMP_ENOENT, "pool '%s' is not configured", pool);
    const char *mode = pool_or_provider_str(v, pc, "ready_check", v->ready_check);
    int port = (int)pool_or_provider_int(v, pc, "ready_port", v->ready_port);
    char target[VMP_HOST_MAX + 64];
    int rc = 0;
    if (strcmp(mode, "name") == 0) {
        /* vmpooler: the VM's name, resolved by the system resolver, with the
         * pool's (or the global) domain appended when there is one. */
        const vmp_global_cfg *g = global(v);
        const char *domain = pc->domain ? pc->domain : (g ? g->domain : NULL);
        if (domain && domain[0])
            snprintf(target, sizeof target, "%s.%s", vm, domain);
        else
            snprintf(target, sizeof target, "%s", vm);
    } else if (strcmp(mode, "ip") == 0 || strcmp(mode, "hostname") == 0) {
        /* What VMware Tools reports: the guest's IP address or host name. */
        op o;
        vmp_moref ref;
        vmp_vim_objects *r = NULL;
        bool ip = strcmp(mode, "ip") == 0;
        char ps[32] = "";
        rc = op_begin(v, pool, vm, &o, err);
        if (rc == 0)
            rc = find_vm(&o, &ref, err);
        if (rc == 0)
            rc = read_vm(&o, &ref, VM_PATHS, &r, err);
        if (rc == 0) {
            vmp_vim_prop_str(r, 0, "runtime.powerState", ps, sizeof ps);
            vmp_vim_prop_str(r, 0, ip ? "guest.ipAddress" : "guest.hostName", target,
                             sizeof target);
        }
        vmp_vim_objects_free(r);
        op_end(&o, rc);
        if (rc != 0)
            return rc;
        if (strcmp(ps, "poweredOn") != 0) {
            log_vm(v, VMP_LOG_DEBUG, pool, vm, "not ready: powered off");
            return 0;
        }
        if (!target[0]) {
            log_vm(v, VMP_LOG_DEBUG, pool, vm, "not ready: VMware Tools reports no %s yet",
                   ip ? "IP address" : "host name");
            return 0;
        }
    } else {
        return vmp_err_set(err, VMP_EINVAL, "ready_check '%s' is not one of name, ip, hostname",
                           mode);
    }
    char why[256];
    double timeout = v->ready_timeout;
    if (tcp_probe(target, port, timeout, why, sizeof why) == 0)
        *ready = true;
    else
        log_vm(v, VMP_LOG_DEBUG, pool, vm, "not ready: %s", why);
    return 0;
}

/* ---- create --------------------------------------------------------------- */

static void json_str(vmp_buf *b, const char *s)
{
    vmp_buf_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            vmp_buf_printf(b, "\\%c", *p);
        else if (*p < 0x20)
            vmp_buf_printf(b, "\\u%04x", *p);
        else
            vmp_buf_append(b, (const char *)p, 1);
    }
    vmp_buf_puts(b, "\"");
}

/* vmpooler's annotation: pretty JSON naming the VM, its creator, template
 * and creation time. */
static void annotation(vmp_buf *b, const char *vm, const char *user, const char *tmpl)
{
    char ts[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S UTC", &tm);
    vmp_buf_puts(b, "{\n  \"name\": ");
    json_str(b, vm);
    vmp_buf_puts(b, ",\n  \"created_by\": ");
    json_str(b, user);
    vmp_buf_puts(b, ",\n  \"base_template\": ");
    json_str(b, tmpl);
    vmp_buf_puts(b, ",\n  \"creation_timestamp\": ");
    json_str(b, ts);
    vmp_buf_puts(b, "\n}");
}

/* Finds the pool folder, creating the missing part of its path when
 * create_folders is on. */
static int pool_folder(op *o, vmp_moref *out, vmp_err *err)
{
    char path[1024];
    folder_path(o, path, sizeof path);
    int rc = lookup(o, path, out, err);
    const vmp_global_cfg *g = global(o->v);
    if (rc != VMP_ENOENT)
        return rc;
    if (!g || !g->create_folders)
        return vmp_err_set(err, VMP_ENOENT, "folder '%s' does not exist (create_folders is off)",
                           path);
    vmp_moref cur;
    char sofar[1024];
    snprintf(sofar, sizeof sofar, "%s/vm", o->dc);
    rc = lookup(o, sofar, &cur, err);
    if (rc != 0)
        return vmp_err_prefix(err, "datacenter '%s'", o->dc);
    char *copy = strdup(o->pc->folder);
    if (!copy)
        return oom(err);
    char *save = NULL;
    for (char *part = strtok_r(copy, "/", &save); part && rc == 0;
         part = strtok_r(NULL, "/", &save)) {
        size_t l = strlen(sofar);
        snprintf(sofar + l, sizeof sofar - l, "/%s", part);
        vmp_moref next;
        rc = vmp_vim_find_by_path(o->s, sofar, &next, err);
        if (rc == VMP_ENOENT) {
            rc = vmp_vim_create_folder(o->s, &cur, part, &next, err);
            if (rc == VMP_EEXIST) /* made by someone else meanwhile */
                rc = vmp_vim_find_by_path(o->s, sofar, &next, err);
            if (rc == 0)
                log_vm(o->v, VMP_LOG_INFO, o->pool, NULL, "created folder %s", sofar);
        }
        cur = next;
    }
    free(copy);
    if (rc == 0)
        *out = cur;
    return rc;
}

/* The host facts of the hosts of a compute resource, in one collection. */
static int host_facts(op *o, const vmp_moref *cluster, vmp_host_facts **out, size_t *n,
                      vmp_err *err)
{
    static const char *const paths[] = {"name",
                                        "runtime.connectionState",
                                        "runtime.inMaintenanceMode",
                                        "overallStatus",
                                        "configIssue",
                                        "hardware.cpuPkg",
                                        "summary.hardware.cpuMhz",
                                        "summary.hardware.numCpuCores",
                                        "summary.hardware.memorySize",
                                        "summary.quickStats.overallCpuUsage",
                                        "summary.quickStats.overallMemoryUsage",
                                        NULL};
    const vmp_vim_propset set = {"HostSystem", paths};
    vmp_vim_objects *r = NULL;
    int rc = vmp_vim_retrieve(o->s, cluster, 1, VMP_VIM_HOSTS, &set, 1, &r, err);
    if (rc != 0)
        return rc;
    size_t count = vmp_vim_objects_count(r);
    vmp_host_facts *f = calloc(count ? count : 1, sizeof *f);
    if (!f) {
        vmp_vim_objects_free(r);
        return oom(err);
    }
    for (size_t i = 0; i < count; i++) {
        vmp_host_facts *h = &f[i];
        char state[32], desc[256];
        long long ll;
        vmp_vim_prop_str(r, i, "name", h->name, sizeof h->name);
        vmp_strlcpy(h->id, vmp_vim_objects_ref(r, i)->value, sizeof h->id);
        vmp_vim_prop_str(r, i, "runtime.connectionState", state, sizeof state);
        h->connected = strcmp(state, "connected") == 0;
        vmp_vim_prop_bool(r, i, "runtime.inMaintenanceMode", &h->maintenance);
        vmp_vim_prop_str(r, i, "overallStatus", h->status, sizeof h->status);
        h->config_issue = vmp_xml_child(vmp_vim_objects_prop(r, i, "configIssue"), NULL) != NULL;
        xmlNode *pkg = vmp_xml_child(vmp_vim_objects_prop(r, i, "hardware.cpuPkg"), NULL);
        vmp_xml_child_text(pkg, "description", desc, sizeof desc);
        vmp_hostsel_cpu_model(desc, h->cpu_model, sizeof h->cpu_model);
        if (vmp_vim_prop_ll(r, i, "summary.hardware.cpuMhz", &ll) == 0)
            h->cpu_mhz = (double)ll;
        if (vmp_vim_prop_ll(r, i, "summary.hardware.numCpuCores", &ll) == 0)
            h->cores = (double)ll;
        if (vmp_vim_prop_ll(r, i, "summary.hardware.memorySize", &ll) == 0)
            h->mem_bytes = (double)ll;
        long long cpu, mem;
        if (vmp_vim_prop_ll(r, i, "summary.quickStats.overallCpuUsage", &cpu) == 0 &&
            vmp_vim_prop_ll(r, i, "summary.quickStats.overallMemoryUsage", &mem) == 0) {
            h->have_stats = true;
            h->cpu_used_mhz = (double)cpu;
            h->mem_used_mb = (double)mem;
        }
    }
    vmp_vim_objects_free(r);
    *out = f;
    *n = count;
    return 0;
}

static double utilization_limit(const vsphere *v)
{
    const vmp_global_cfg *g = global(v);
    return g && g->utilization_limit > 0 ? (double)g->utilization_limit : 90;
}

/* manage_host_selection: the next host of the cluster's round-robin list
 * (of CPU model `model` when non-NULL), refreshing the list when it is
 * older than host_selection_max_age. out_ref receives its reference. */
static int next_host(op *o, const vmp_moref *cluster, const char *cluster_name, const char *model,
                     char *name, size_t len, vmp_moref *out_ref, vmp_err *err)
{
    vsphere *v = o->v;
    const vmp_global_cfg *g = global(v);
    double max_age = g && g->host_selection_max_age > 0 ? (double)g->host_selection_max_age : 60;
    char key[VMP_NAME_MAX * 2 + 2];
    snprintf(key, sizeof key, "%s_%s", o->dc, cluster_name);
    int rc = 0;
    pthread_mutex_lock(&v->rr_mu);
    rr_entry *e = NULL;
    for (size_t i = 0; i < v->n_rrs; i++)
        if (strcmp(v->rrs[i].key, key) == 0)
            e = &v->rrs[i];
    if (!e) {
        rr_entry *a = realloc(v->rrs, (v->n_rrs + 1) * sizeof *a);
        if (!a || !(a[v->n_rrs].key = strdup(key))) {
            if (a)
                v->rrs = a;
            rc = oom(err);
            goto out;
        }
        v->rrs = a;
        e = &v->rrs[v->n_rrs++];
        memset(&e->rr, 0, sizeof e->rr);
        e->facts = NULL;
        e->n = 0;
    }
    double now = vmp_monotonic();
    if (!e->facts || now - e->rr.built_at >= max_age) {
        vmp_host_facts *f = NULL;
        size_t n = 0;
        rc = host_facts(o, cluster, &f, &n, err);
        if (rc == 0)
            rc = vmp_hostsel_rr_build(&e->rr, f, n, utilization_limit(v), now);
        if (rc != 0) {
            free(f);
            goto out;
        }
        free(e->facts);
        e->facts = f;
        e->n = n;
    }
    rc = vmp_hostsel_rr_next(&e->rr, model, name, len);
    if (rc != 0) {
        rc = vmp_err_set(err, VMP_EFAILED, "no host of cluster %s is below the utilization "
                                           "limit%s%s",
                         cluster_name, model ? " with CPU model " : "", model ? model : "");
        goto out;
    }
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->facts[i].name, name) == 0)
            vmp_moref_set(out_ref, "HostSystem", e->facts[i].id);
out:
    pthread_mutex_unlock(&v->rr_mu);
    return rc;
}

/* The resource pool a clone goes to when no cluster is configured: the
 * source's own, else the root pool of the compute resource of its host. */
static int source_pool(op *o, const vmp_vim_objects *tr, vmp_moref *pool, vmp_err *err)
{
    if (vmp_vim_prop_moref(tr, 0, "resourcePool", pool) == 0)
        return 0;
    vmp_moref host, cr;
    if (vmp_vim_prop_moref(tr, 0, "runtime.host", &host) != 0)
        return vmp_err_set(err, VMP_EINVAL, "template %s has no host; set clone_target",
                           o->pc->template_path);
    static const char *const hp[] = {"parent", NULL};
    static const char *const cp[] = {"resourcePool", NULL};
    const vmp_vim_propset hs = {"HostSystem", hp}, cs = {"ComputeResource", cp};
    vmp_vim_objects *r = NULL;
    int rc = vmp_vim_retrieve(o->s, &host, 1, VMP_VIM_SELF, &hs, 1, &r, err);
    if (rc == 0 && vmp_vim_prop_moref(r, 0, "parent", &cr) != 0)
        rc = vmp_err_set(err, VMP_EPROVIDER, "host %s has no parent", host.value);
    vmp_vim_objects_free(r);
    r = NULL;
    if (rc == 0) {
        const vmp_vim_propset s2 = {cr.type, cs.paths};
        rc = vmp_vim_retrieve(o->s, &cr, 1, VMP_VIM_SELF, &s2, 1, &r, err);
    }
    if (rc == 0 && vmp_vim_prop_moref(r, 0, "resourcePool", pool) != 0)
        rc = vmp_err_set(err, VMP_EPROVIDER, "%s has no resource pool", cr.value);
    vmp_vim_objects_free(r);
    return rc;
}

/* The <deviceChange> that puts the template's first NIC on the pool's
 * network (standard port group or distributed port group). */
static int network_change(op *o, const xmlNode *devices_val, vmp_buf *out, vmp_err *err)
{
    char path[1024];
    vmp_moref net;
    snprintf(path, sizeof path, "%s/network/%s", o->dc, o->pc->network);
    int rc = lookup(o, path, &net, err);
    if (rc == VMP_ENOENT)
        return vmp_err_set(err, VMP_ENOENT, "network '%s' not found", path);
    if (rc != 0)
        return rc;
    vmp_vim_device *d = NULL;
    size_t n = 0;
    rc = vmp_vim_devices_parse(devices_val, &d, &n, err);
    if (rc != 0)
        return rc;
    const vmp_vim_device *nic = NULL;
    for (size_t i = 0; i < n && !nic; i++)
        if (d[i].nic)
            nic = &d[i];
    if (!nic) {
        free(d);
        return vmp_err_set(err, VMP_EINVAL, "template %s has no network card to put on %s",
                           o->pc->template_path, o->pc->network);
    }
    if (strcmp(net.type, "DistributedVirtualPortgroup") == 0) {
        static const char *const pp[] = {"config.key", "config.distributedVirtualSwitch", NULL};
        static const char *const sp[] = {"uuid", NULL};
        const vmp_vim_propset ps = {"DistributedVirtualPortgroup", pp};
        vmp_vim_objects *r = NULL, *r2 = NULL;
        char key[128] = "", uuid[128] = "";
        vmp_moref dvs;
        rc = vmp_vim_retrieve(o->s, &net, 1, VMP_VIM_SELF, &ps, 1, &r, err);
        if (rc == 0 && (vmp_vim_prop_str(r, 0, "config.key", key, sizeof key) != 0 ||
                        vmp_vim_prop_moref(r, 0, "config.distributedVirtualSwitch", &dvs) != 0))
            rc = vmp_err_set(err, VMP_EPROVIDER, "port group %s has no key or switch",
                             o->pc->network);
        if (rc == 0) {
            const vmp_vim_propset ss = {dvs.type, sp};
            rc = vmp_vim_retrieve(o->s, &dvs, 1, VMP_VIM_SELF, &ss, 1, &r2, err);
        }
        if (rc == 0 && vmp_vim_prop_str(r2, 0, "uuid", uuid, sizeof uuid) != 0)
            rc = vmp_err_set(err, VMP_EPROVIDER, "switch %s has no uuid", dvs.value);
        if (rc == 0)
            vmp_vim_nic_network_xml(out, nic, NULL, NULL, uuid, key);
        vmp_vim_objects_free(r);
        vmp_vim_objects_free(r2);
    } else {
        vmp_vim_nic_network_xml(out, nic, o->pc->network, &net, NULL, NULL);
    }
    free(d);
    return rc;
}

/* Powers vm on unless it already is. */
static int ensure_powered_on(op *o, const vmp_moref *vm, const vmp_vim_objects *r, vmp_err *err)
{
    char ps[32] = "";
    vmp_vim_prop_str(r, 0, "runtime.powerState", ps, sizeof ps);
    if (strcmp(ps, "poweredOn") == 0)
        return 0;
    char what[VMP_NAME_MAX + 32];
    snprintf(what, sizeof what, "power on of %s", o->vm);
    int rc = vmp_vim_run_task(o->s, "PowerOnVM_Task", vm, NULL, what, o->v->task_timeout, NULL,
                              err);
    return rc == VMP_ESTATE ? 0 : rc; /* already on meanwhile */
}

static int vs_create_vm(void *self, const char *pool, const char *vm, vmp_vm_info *out,
                        vmp_err *err)
{
    vsphere *v = self;
    op o;
    vmp_vim_objects *tr = NULL, *r = NULL;
    vmp_buf args = VMP_BUF_INIT, ann = VMP_BUF_INIT, devchange = VMP_BUF_INIT;
    vmp_vim_option *extra = NULL;
    char path[1024];
    int rc = op_begin(v, pool, vm, &o, err);
    if (rc != 0)
        goto out;
    const vmp_pool_cfg *pc = o.pc;
    const vmp_global_cfg *g = global(v);
    const char *tpath = pc->template_path;
    size_t tl = tpath ? strlen(tpath) : 0;
    if (!tpath || !strchr(tpath, '/') || tpath[0] == '/' || tpath[tl - 1] == '/') {
        rc = vmp_err_set(err, VMP_EINVAL,
                         "pool %s: template '%s' must be an inventory path such as "
                         "'templates/debian-12' (a '/' inside, none at either end)",
                         pool, tpath ? tpath : "");
        goto out;
    }

    /* The template and what the clone needs to know about it. */
    vmp_moref tmpl = {0}, folder = {0}, datastore = {0}, rpool = {0}, host = {0}, cluster = {0};
    snprintf(path, sizeof path, "%s/vm/%s", o.dc, tpath);
    rc = lookup(&o, path, &tmpl, err);
    if (rc == VMP_ENOENT)
        rc = vmp_err_set(err, VMP_ENOENT, "template '%s' not found", path);
    if (rc != 0)
        goto out;
    bool want_net = pc->network && pc->network[0];
    static const char *const tpaths[] = {"config.template", "resourcePool", "runtime.host", NULL};
    static const char *const tpaths_net[] = {"config.template", "resourcePool", "runtime.host",
                                             "config.hardware.device", NULL};
    const vmp_vim_propset tset = {"VirtualMachine", want_net ? tpaths_net : tpaths};
    bool need_template_props = want_net || !pc->clone_target;
    if (need_template_props) {
        rc = vmp_vim_retrieve(o.s, &tmpl, 1, VMP_VIM_SELF, &tset, 1, &tr, err);
        if (rc != 0)
            goto out;
    }
    rc = pool_folder(&o, &folder, err);
    if (rc != 0)
        goto out;
    bool have_ds = pc->datastore && pc->datastore[0];
    if (have_ds) {
        snprintf(path, sizeof path, "%s/datastore/%s", o.dc, pc->datastore);
        rc = lookup(&o, path, &datastore, err);
        if (rc == VMP_ENOENT)
            rc = vmp_err_set(err, VMP_ENOENT, "datastore '%s' not found", path);
        if (rc != 0)
            goto out;
    }

    /* Placement: the cluster's root resource pool, and with
     * manage_host_selection the next host of the cluster's list. */
    bool have_host = false;
    if (pc->clone_target && pc->clone_target[0]) {
        snprintf(path, sizeof path, "%s/host/%s", o.dc, pc->clone_target);
        rc = lookup(&o, path, &cluster, err);
        if (rc == VMP_ENOENT)
            rc = vmp_err_set(err, VMP_ENOENT, "clone_target '%s' not found", path);
        if (rc != 0)
            goto out;
        size_t l = strlen(path);
        snprintf(path + l, sizeof path - l, "/Resources");
        rc = lookup(&o, path, &rpool, err);
        if (rc != 0)
            goto out;
        if (g && g->manage_host_selection) {
            char hname[VMP_HOST_MAX];
            rc = next_host(&o, &cluster, pc->clone_target, NULL, hname, sizeof hname, &host, err);
            if (rc != 0)
                goto out;
            have_host = vmp_moref_is_set(&host);
        }
    } else {
        rc = source_pool(&o, tr, &rpool, err);
        if (rc != 0)
            goto out;
    }

    if (want_net) {
        rc = network_change(&o, vmp_vim_objects_prop(tr, 0, "config.hardware.device"),
                            &devchange, err);
        if (rc != 0)
            goto out;
    }

    /* extraConfig: guestinfo.hostname, the snapshot tuning keys, and the
     * pool's extra_config map. */
    const vmp_cfg_node *xc = vmp_cfg_get(pc->node, "extra_config");
    size_t nx = 3 + vmp_cfg_len(xc), k = 0;
    extra = calloc(nx, sizeof *extra);
    if (!extra) {
        rc = oom(err);
        goto out;
    }
    extra[k++] = (vmp_vim_option){"guestinfo.hostname", vm};
    if (pc->snapshot_mainMem_ioBlockPages)
        extra[k++] = (vmp_vim_option){"mainMem.ioBlockPages", pc->snapshot_mainMem_ioBlockPages};
    if (pc->snapshot_mainMem_iowait)
        extra[k++] = (vmp_vim_option){"mainMem.iowait", pc->snapshot_mainMem_iowait};
    for (size_t i = 0; i < vmp_cfg_len(xc); i++) {
        const char *val = vmp_cfg_scalar(vmp_cfg_at(xc, i));
        if (vmp_cfg_kind_of(xc) == VMP_CFG_MAP && val)
            extra[k++] = (vmp_vim_option){vmp_cfg_key_at(xc, i), val};
    }
    annotation(&ann, vm, v->username, tpath);

    bool linked = pc->create_linked_clone != VMP_UNSET ? pc->create_linked_clone != 0
                                                       : (g ? g->create_linked_clones : true);
    vmp_vim_clone spec = {
        .location = {.datastore = have_ds ? &datastore : NULL,
                     .disk_move_type = linked ? "moveChildMostDiskBacking" : NULL,
                     .pool = &rpool,
                     .host = have_host ? &host : NULL},
        .config = {.annotation = vmp_buf_str(&ann),
                   .device_change = devchange.len ? vmp_buf_str(&devchange) : NULL,
                   .extra = extra,
                   .n_extra = k},
        .is_template = false,
        .power_on = true,
    };
    vmp_xml_moref(&args, "folder", &folder);
    vmp_xml_elem(&args, "name", vm);
    vmp_vim_clone_xml(&args, "spec", &spec);
    if (args.oom || ann.oom || devchange.oom) {
        rc = oom(err);
        goto out;
    }
    char what[VMP_NAME_MAX + 64];
    snprintf(what, sizeof what, "clone of %s to %s", tpath, vm);
    log_vm(v, VMP_LOG_DEBUG, pool, vm, "cloning %s (%s clone)%s%s", tpath,
           linked ? "linked" : "full", have_host ? " on host " : "", have_host ? host.value : "");
    vmp_moref vmref;
    rc = vmp_vim_run_task(o.s, "CloneVM_Task", &tmpl, args.s, what, v->task_timeout, &vmref, err);
    if (rc == 0 && !vmp_moref_is_set(&vmref))
        rc = find_vm(&o, &vmref, err);
    if (rc != 0)
        goto out;

    /* A clone spec's powerOn is not honoured everywhere (vcsim ignores it):
     * power on when the clone is still off. */
    rc = read_vm(&o, &vmref, VM_PATHS, &r, err);
    if (rc == 0) {
        char ps[32] = "";
        vmp_vim_prop_str(r, 0, "runtime.powerState", ps, sizeof ps);
        if (strcmp(ps, "poweredOn") != 0) {
            rc = ensure_powered_on(&o, &vmref, r, err);
            vmp_vim_objects_free(r);
            r = NULL;
            if (rc == 0 && out)
                rc = read_vm(&o, &vmref, VM_PATHS, &r, err);
        }
    }
    if (rc == 0 && out)
        rc = fill_info(&o, r, out, err);
    if (rc == 0)
        log_vm(v, VMP_LOG_DEBUG, pool, vm, "created %s", vmref.value);
out:
    vmp_vim_objects_free(tr);
    vmp_vim_objects_free(r);
    vmp_buf_free(&args);
    vmp_buf_free(&ann);
    vmp_buf_free(&devchange);
    free(extra);
    return op_end(&o, rc);
}

/* ---- destroy -------------------------------------------------------------- */

static int vs_destroy_vm(void *self, const char *pool, const char *vm, vmp_err *err)
{
    vsphere *v = self;
    op o;
    vmp_moref ref;
    vmp_vim_objects *r = NULL;
    static const char *const paths[] = {"runtime.powerState", NULL};
    char what[VMP_NAME_MAX + 32];
    int rc = op_begin(v, pool, vm, &o, err);
    if (rc == 0) {
        rc = find_vm(&o, &ref, err);
        if (rc == VMP_ENOENT) {
            rc = 0; /* already gone */
            goto out;
        }
    }
    if (rc == 0)
        rc = read_vm(&o, &ref, paths, &r, err);
    if (rc == 0) {
        char ps[32] = "";
        vmp_vim_prop_str(r, 0, "runtime.powerState", ps, sizeof ps);
        if (strcmp(ps, "poweredOn") == 0) {
            snprintf(what, sizeof what, "power off of %s", vm);
            rc = vmp_vim_run_task(o.s, "PowerOffVM_Task", &ref, NULL, what, v->task_timeout, NULL,
                                  err);
            if (rc == VMP_ESTATE)
                rc = 0; /* off meanwhile */
        }
    }
    if (rc == 0) {
        snprintf(what, sizeof what, "destroy of %s", vm);
        rc = vmp_vim_run_task(o.s, "Destroy_Task", &ref, NULL, what, v->task_timeout, NULL, err);
    }
    if (rc == VMP_ENOENT)
        rc = 0; /* gone meanwhile */
    if (rc == 0)
        log_vm(v, VMP_LOG_DEBUG, pool, vm, "destroyed");
out:
    vmp_vim_objects_free(r);
    return op_end(&o, rc);
}

/* ---- disks and snapshots --------------------------------------------------- */

static int vs_create_disk(void *self, const char *pool, const char *vm, int size_gb, vmp_err *err)
{
    vsphere *v = self;
    op o;
    vmp_moref ref;
    vmp_vim_objects *r = NULL;
    vmp_vim_device *d = NULL;
    size_t n = 0;
    vmp_buf change = VMP_BUF_INIT, args = VMP_BUF_INIT;
    static const char *const paths[] = {"config.hardware.device", NULL};
    int rc = op_begin(v, pool, vm, &o, err);
    if (rc == 0)
        rc = find_vm(&o, &ref, err);
    if (rc != 0)
        goto out;
    if (size_gb <= 0) {
        rc = vmp_err_set(err, VMP_EFAILED, "disk size must be a positive number of GB, not %d",
                         size_gb);
        goto out;
    }
    rc = read_vm(&o, &ref, paths, &r, err);
    if (rc == 0)
        rc = vmp_vim_devices_parse(vmp_vim_objects_prop(r, 0, "config.hardware.device"), &d, &n,
                                   err);
    if (rc != 0)
        goto out;
    int ctrl, unit;
    if (vmp_vim_disk_slot(d, n, &ctrl, &unit) != 0) {
        rc = vmp_err_set(err, VMP_EFAILED, "VM %s has no SCSI controller with a free unit", vm);
        goto out;
    }
    /* An empty file name: the server creates the disk in the VM's own
     * directory, on the VM's datastore. */
    vmp_vim_add_disk_xml(&change, ctrl, unit, (long long)size_gb * 1024 * 1024, "");
    vmp_vim_config cfg = {.device_change = vmp_buf_str(&change)};
    vmp_vim_config_xml(&args, "spec", &cfg);
    if (args.oom || change.oom) {
        rc = oom(err);
        goto out;
    }
    char what[VMP_NAME_MAX + 48];
    snprintf(what, sizeof what, "adding a %d GB disk to %s", size_gb, vm);
    rc = vmp_vim_run_task(o.s, "ReconfigVM_Task", &ref, args.s, what, v->task_timeout, NULL, err);
    if (rc == 0)
        log_vm(v, VMP_LOG_DEBUG, pool, vm, "added a %d GB disk (controller %d unit %d)", size_gb,
               ctrl, unit);
out:
    free(d);
    vmp_vim_objects_free(r);
    vmp_buf_free(&change);
    vmp_buf_free(&args);
    return op_end(&o, rc);
}

/* Reads the VM's snapshot tree and power state. */
static int read_snapshots(op *o, vmp_moref *ref, vmp_vim_objects **r, vmp_err *err)
{
    static const char *const paths[] = {"snapshot", "runtime.powerState", NULL};
    int rc = find_vm(o, ref, err);
    if (rc == 0)
        rc = read_vm(o, ref, paths, r, err);
    return rc;
}

static int vs_create_snapshot(void *self, const char *pool, const char *vm, const char *snapshot,
                              vmp_err *err)
{
    vsphere *v = self;
    op o;
    vmp_moref ref, existing;
    vmp_vim_objects *r = NULL;
    vmp_buf args = VMP_BUF_INIT;
    int rc = op_begin(v, pool, vm, &o, err);
    if (rc == 0)
        rc = read_snapshots(&o, &ref, &r, err);
    if (rc != 0)
        goto out;
    if (vmp_vim_snapshot_find(vmp_vim_objects_prop(r, 0, "snapshot"), snapshot, &existing) == 0) {
        rc = vmp_err_set(err, VMP_EEXIST, "snapshot '%s' already exists on VM %s", snapshot, vm);
        goto out;
    }
    char ps[32] = "";
    vmp_vim_prop_str(r, 0, "runtime.powerState", ps, sizeof ps);
    bool on = strcmp(ps, "poweredOn") == 0;
    vmp_xml_elem(&args, "name", snapshot);
    vmp_xml_elem(&args, "description", "vmpool");
    /* vmpooler takes memory and quiesced snapshots; a VM that is off has
     * neither memory nor a running guest to quiesce. */
    vmp_xml_elem_bool(&args, "memory", on);
    vmp_xml_elem_bool(&args, "quiesce", on);
    if (args.oom) {
        rc = oom(err);
        goto out;
    }
    char what[VMP_NAME_MAX * 2 + 32];
    snprintf(what, sizeof what, "snapshot '%s' of %s", snapshot, vm);
    rc = vmp_vim_run_task(o.s, "CreateSnapshot_Task", &ref, args.s, what, v->task_timeout, NULL,
                          err);
out:
    vmp_vim_objects_free(r);
    vmp_buf_free(&args);
    return op_end(&o, rc);
}

static int vs_revert_snapshot(void *self, const char *pool, const char *vm, const char *snapshot,
                              vmp_err *err)
{
    vsphere *v = self;
    op o;
    vmp_moref ref, snap;
    vmp_vim_objects *r = NULL;
    int rc = op_begin(v, pool, vm, &o, err);
    if (rc == 0)
        rc = read_snapshots(&o, &ref, &r, err);
    if (rc == 0 &&
        vmp_vim_snapshot_find(vmp_vim_objects_prop(r, 0, "snapshot"), snapshot, &snap) != 0)
        rc = vmp_err_set(err, VMP_ENOENT, "snapshot '%s' does not exist on VM %s", snapshot, vm);
    if (rc == 0) {
        char what[VMP_NAME_MAX * 2 + 32];
        snprintf(what, sizeof what, "revert of %s to snapshot '%s'", vm, snapshot);
        rc = vmp_vim_run_task(o.s, "RevertToSnapshot_Task", &snap, NULL, what, v->task_timeout,
                              NULL, err);
    }
    vmp_vim_objects_free(r);
    return op_end(&o, rc);
}

/* ---- hosts and migration --------------------------------------------------- */

static int vs_find_least_used_compatible_host(void *self, const char *pool, const char *vm,
                                              char *host, size_t len, vmp_err *err)
{
    vsphere *v = self;
    op o;
    vmp_moref ref, src, parent;
    vmp_vim_objects *r = NULL;
    vmp_host_facts *f = NULL;
    size_t n = 0;
    static const char *const paths[] = {"runtime.host", NULL};
    static const char *const hpaths[] = {"name", "parent", "hardware.cpuPkg", NULL};
    const vmp_vim_propset hset = {"HostSystem", hpaths};
    char model[64] = "", src_name[VMP_HOST_MAX] = "";
    int rc = op_begin(v, pool, vm, &o, err);
    if (rc == 0)
        rc = find_vm(&o, &ref, err);
    if (rc == 0)
        rc = read_vm(&o, &ref, paths, &r, err);
    if (rc == 0 && vmp_vim_prop_moref(r, 0, "runtime.host", &src) != 0)
        rc = vmp_err_set(err, VMP_ENOENT, "VM %s has no host", vm);
    vmp_vim_objects_free(r);
    r = NULL;
    if (rc == 0)
        rc = vmp_vim_retrieve(o.s, &src, 1, VMP_VIM_SELF, &hset, 1, &r, err);
    if (rc == 0) {
        char desc[256];
        vmp_vim_prop_str(r, 0, "name", src_name, sizeof src_name);
        vmp_xml_child_text(vmp_xml_child(vmp_vim_objects_prop(r, 0, "hardware.cpuPkg"), NULL),
                           "description", desc, sizeof desc);
        vmp_hostsel_cpu_model(desc, model, sizeof model);
        if (vmp_vim_prop_moref(r, 0, "parent", &parent) != 0)
            rc = vmp_err_set(err, VMP_EPROVIDER, "host %s has no parent", src.value);
    }
    if (rc == 0)
        rc = host_facts(&o, &parent, &f, &n, err);
    if (rc == 0) {
        long best = vmp_hostsel_least_used(f, n, model, utilization_limit(v));
        if (best < 0)
            rc = vmp_err_set(err, VMP_EFAILED,
                             "no host like %s (CPU model %s) is below the utilization limit of "
                             "%.0f%%",
                             src_name, model[0] ? model : "unknown", utilization_limit(v));
        else
            vmp_strlcpy(host, f[best].name, len);
    }
    free(f);
    vmp_vim_objects_free(r);
    return op_end(&o, rc);
}

static int vs_migrate_vm_to_host(void *self, const char *pool, const char *vm, const char *host,
                                 vmp_err *err)
{
    vsphere *v = self;
    op o;
    vmp_moref ref, cluster, target;
    vmp_vim_objects *r = NULL;
    vmp_buf args = VMP_BUF_INIT;
    char path[1024];
    int rc = op_begin(v, pool, vm, &o, err);
    if (rc != 0)
        goto out;
    if (!o.pc->clone_target || !o.pc->clone_target[0]) {
        rc = vmp_err_set(err, VMP_EINVAL, "pool %s has no clone_target (cluster)", pool);
        goto out;
    }
    snprintf(path, sizeof path, "%s/host/%s", o.dc, o.pc->clone_target);
    rc = lookup(&o, path, &cluster, err);
    if (rc == VMP_ENOENT)
        rc = vmp_err_set(err, VMP_ENOENT, "cluster '%s' not found", path);
    if (rc == 0)
        rc = find_vm(&o, &ref, err);
    static const char *const hp[] = {"name", NULL};
    const vmp_vim_propset hs = {"HostSystem", hp};
    if (rc == 0)
        rc = vmp_vim_retrieve(o.s, &cluster, 1, VMP_VIM_HOSTS, &hs, 1, &r, err);
    if (rc != 0)
        goto out;
    bool found = false;
    for (size_t i = 0; i < vmp_vim_objects_count(r) && !found; i++) {
        char name[VMP_HOST_MAX];
        if (vmp_vim_prop_str(r, i, "name", name, sizeof name) == 0 && strcmp(name, host) == 0) {
            target = *vmp_vim_objects_ref(r, i);
            found = true;
        }
    }
    if (!found) {
        rc = vmp_err_set(err, VMP_EFAILED, "host %s is not in cluster %s", host,
                         o.pc->clone_target);
        goto out;
    }
    vmp_vim_relocate rel = {.host = &target};
    vmp_vim_relocate_xml(&args, "spec", &rel);
    vmp_buf_puts(&args, "<priority>defaultPriority</priority>");
    if (args.oom) {
        rc = oom(err);
        goto out;
    }
    char what[VMP_NAME_MAX + VMP_HOST_MAX + 32];
    snprintf(what, sizeof what, "migration of %s to %s", vm, host);
    rc = vmp_vim_run_task(o.s, "RelocateVM_Task", &ref, args.s, what, v->task_timeout, NULL, err);
    if (rc == 0)
        log_vm(v, VMP_LOG_DEBUG, pool, vm, "migrated to %s", host);
out:
    vmp_vim_objects_free(r);
    vmp_buf_free(&args);
    return op_end(&o, rc);
}

/* ---- template delta disks ------------------------------------------------- */

static int vs_create_template_delta_disks(void *self, const char *pool, vmp_err *err)
{
    vsphere *v = self;
    op o;
    vmp_moref tmpl = {0}, rpool = {0}, dsref = {0};
    vmp_vim_objects *r = NULL, *dsr = NULL;
    vmp_vim_device *d = NULL;
    size_t n = 0;
    vmp_buf change = VMP_BUF_INIT, args = VMP_BUF_INIT;
    char path[1024], dsname[VMP_NAME_MAX] = "";
    bool unmarked = false;
    int rc = op_begin(v, pool, NULL, &o, err);
    if (rc != 0)
        goto out;
    snprintf(path, sizeof path, "%s/vm/%s", o.dc, o.pc->template_path ? o.pc->template_path : "");
    rc = lookup(&o, path, &tmpl, err);
    if (rc == VMP_ENOENT)
        rc = vmp_err_set(err, VMP_ENOENT, "template '%s' not found", path);
    static const char *const paths[] = {"config.template", "config.hardware.device",
                                        "resourcePool", "runtime.host", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    if (rc == 0)
        rc = vmp_vim_retrieve(o.s, &tmpl, 1, VMP_VIM_SELF, &set, 1, &r, err);
    if (rc == 0)
        rc = vmp_vim_devices_parse(vmp_vim_objects_prop(r, 0, "config.hardware.device"), &d, &n,
                                   err);
    if (rc != 0)
        goto out;
    for (size_t i = 0; i < n && !vmp_moref_is_set(&dsref); i++)
        if (d[i].disk && vmp_moref_is_set(&d[i].datastore))
            dsref = d[i].datastore;
    if (!vmp_moref_is_set(&dsref))
        goto out; /* no disk: nothing to layer */
    static const char *const dp[] = {"name", NULL};
    const vmp_vim_propset dset = {"Datastore", dp};
    rc = vmp_vim_retrieve(o.s, &dsref, 1, VMP_VIM_SELF, &dset, 1, &dsr, err);
    if (rc == 0 && vmp_vim_prop_str(dsr, 0, "name", dsname, sizeof dsname) != 0)
        rc = vmp_err_set(err, VMP_EPROVIDER, "datastore %s has no name", dsref.value);
    if (rc != 0)
        goto out;
    int disks = vmp_vim_delta_disks_xml(&change, d, n, dsname);
    vmp_vim_config cfg = {.device_change = vmp_buf_str(&change)};
    vmp_vim_config_xml(&args, "spec", &cfg);
    if (args.oom || change.oom) {
        rc = oom(err);
        goto out;
    }
    /* A template cannot be reconfigured: make it a VM for the change. */
    bool is_template = false;
    vmp_vim_prop_bool(r, 0, "config.template", &is_template);
    if (is_template) {
        rc = source_pool(&o, r, &rpool, err);
        if (rc == 0 && o.pc->clone_target && o.pc->clone_target[0]) {
            snprintf(path, sizeof path, "%s/host/%s/Resources", o.dc, o.pc->clone_target);
            rc = lookup(&o, path, &rpool, err);
        }
        vmp_buf mark = VMP_BUF_INIT;
        vmp_xml_moref(&mark, "pool", &rpool);
        if (rc == 0)
            rc = mark.oom ? oom(err)
                          : vmp_soap_call(o.s, "MarkAsVirtualMachine", &tmpl, mark.s, NULL, err);
        vmp_buf_free(&mark);
        if (rc != 0)
            goto out;
        unmarked = true;
    }
    char what[1100];
    snprintf(what, sizeof what, "delta disks on template %s", o.pc->template_path);
    rc = vmp_vim_run_task(o.s, "ReconfigVM_Task", &tmpl, args.s, what, v->task_timeout, NULL, err);
    if (rc == 0)
        log_vm(v, VMP_LOG_INFO, pool, NULL, "added a delta disk layer to %d disk(s) of %s", disks,
               o.pc->template_path);
out:
    if (unmarked) {
        vmp_err e2 = {0};
        if (vmp_soap_call(o.s, "MarkAsTemplate", &tmpl, NULL, NULL, &e2) != 0) {
            log_vm(v, VMP_LOG_ERROR, pool, NULL, "could not mark %s as a template again: %s",
                   o.pc->template_path, e2.msg);
            if (rc == 0)
                rc = vmp_err_set(err, e2.code, "%s", e2.msg);
        }
    }
    free(d);
    vmp_vim_objects_free(r);
    vmp_vim_objects_free(dsr);
    vmp_buf_free(&change);
    vmp_buf_free(&args);
    return op_end(&o, rc);
}

/* ---- purge ------------------------------------------------------------------ */

/* Powers off and destroys every VM directly in folder, then the folder. */
static int destroy_folder(op *o, const vmp_moref *folder, const char *path, vmp_err *err)
{
    static const char *const paths[] = {"name", "runtime.powerState", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    vmp_vim_objects *r = NULL;
    int rc = vmp_vim_retrieve(o->s, folder, 1, VMP_VIM_FOLDER_TREE, &set, 1, &r, err);
    for (size_t i = 0; rc == 0 && i < vmp_vim_objects_count(r); i++) {
        const vmp_moref *vm = vmp_vim_objects_ref(r, i);
        char name[VMP_NAME_MAX] = "", ps[32] = "", what[VMP_NAME_MAX + 32];
        if (strcmp(vm->type, "VirtualMachine") != 0)
            continue;
        vmp_vim_prop_str(r, i, "name", name, sizeof name);
        vmp_vim_prop_str(r, i, "runtime.powerState", ps, sizeof ps);
        snprintf(what, sizeof what, "power off of %s", name);
        if (strcmp(ps, "poweredOn") == 0) {
            rc = vmp_vim_run_task(o->s, "PowerOffVM_Task", vm, NULL, what, o->v->task_timeout,
                                  NULL, err);
            if (rc == VMP_ESTATE)
                rc = 0;
        }
        snprintf(what, sizeof what, "destroy of %s", name);
        if (rc == 0)
            rc = vmp_vim_run_task(o->s, "Destroy_Task", vm, NULL, what, o->v->task_timeout, NULL,
                                  err);
        if (rc == VMP_ENOENT)
            rc = 0;
        if (rc == 0)
            log_vm(o->v, VMP_LOG_INFO, NULL, name, "purged VM %s of unconfigured folder %s", name,
                   path);
    }
    vmp_vim_objects_free(r);
    if (rc == 0) {
        char what[1100];
        snprintf(what, sizeof what, "destroy of folder %s", path);
        rc = vmp_vim_run_task(o->s, "Destroy_Task", folder, NULL, what, o->v->task_timeout, NULL,
                              err);
        if (rc == 0)
            log_vm(o->v, VMP_LOG_INFO, NULL, NULL, "purged unconfigured folder %s", path);
    }
    return rc;
}

/* vmpooler §7.8: below the parent folder of every pool folder of this
 * provider, destroy each folder that is neither a configured pool folder
 * nor in the allow list (with the VMs in it). */
static int vs_purge_unconfigured_resources(void *self, const vmp_strlist *allowlist, vmp_err *err)
{
    vsphere *v = self;
    vmp_strlist pools = VMP_STRLIST_INIT, bases = VMP_STRLIST_INIT, keep = VMP_STRLIST_INIT;
    int rc = vmp_provider_provided_pools(v->p, &pools);
    /* Configured folders and their parents, as datacenter paths. */
    for (size_t i = 0; rc == 0 && i < pools.n; i++) {
        op o;
        rc = op_begin(v, pools.v[i], NULL, &o, err);
        if (rc == 0 && o.pc->folder && o.pc->folder[0]) {
            char full[1024], base[1024];
            folder_path(&o, full, sizeof full);
            vmp_strlcpy(base, full, sizeof base);
            *strrchr(base, '/') = '\0';
            if (!vmp_strlist_contains(&keep, full))
                rc = vmp_strlist_push(&keep, full);
            if (rc == 0 && !vmp_strlist_contains(&bases, base))
                rc = vmp_strlist_push(&bases, base);
        }
        op_end(&o, rc);
    }
    for (size_t b = 0; rc == 0 && b < bases.n; b++) {
        op o = {.v = v};
        rc = vmp_sessions_get(v->sessions, &o.s, err);
        if (rc != 0)
            break;
        vmp_moref base;
        vmp_vim_objects *r = NULL;
        static const char *const paths[] = {"name", NULL};
        const vmp_vim_propset set = {"Folder", paths};
        rc = vmp_vim_find_by_path(o.s, bases.v[b], &base, err);
        if (rc == VMP_ENOENT) {
            rc = op_end(&o, 0);
            continue;
        }
        if (rc == 0)
            rc = vmp_vim_retrieve(o.s, &base, 1, VMP_VIM_CHILDREN, &set, 1, &r, err);
        for (size_t i = 0; rc == 0 && i < vmp_vim_objects_count(r); i++) {
            char name[VMP_NAME_MAX], full[1400];
            if (strcmp(vmp_vim_objects_ref(r, i)->type, "Folder") != 0 ||
                vmp_vim_prop_str(r, i, "name", name, sizeof name) != 0)
                continue;
            snprintf(full, sizeof full, "%s/%s", bases.v[b], name);
            if (vmp_strlist_contains(&keep, full) || (allowlist && vmp_strlist_contains(allowlist,
                                                                                       name)))
                continue;
            rc = destroy_folder(&o, vmp_vim_objects_ref(r, i), full, err);
        }
        vmp_vim_objects_free(r);
        op_end(&o, rc);
    }
    vmp_strlist_clear(&pools);
    vmp_strlist_clear(&bases);
    vmp_strlist_clear(&keep);
    return rc;
}

/* ---- class ------------------------------------------------------------------ */

const vmp_provider_ops vmp_vsphere_provider_ops = {
    .abi = VMP_PROVIDER_ABI,
    .name = "vsphere",
    .open = vs_open,
    .close = vs_close,
    .vms_in_pool = vs_vms_in_pool,
    .get_vm = vs_get_vm,
    .create_vm = vs_create_vm,
    .destroy_vm = vs_destroy_vm,
    .vm_ready = vs_vm_ready,
    .vm_exists = vs_vm_exists,
    .get_vm_ip_address = vs_get_vm_ip_address,
    .get_vm_host = vs_get_vm_host,
    .find_least_used_compatible_host = vs_find_least_used_compatible_host,
    .migrate_vm_to_host = vs_migrate_vm_to_host,
    .migrate_vm = NULL, /* needs Redis (migration_limit); the engine drives the three ops above */
    .create_disk = vs_create_disk,
    .create_snapshot = vs_create_snapshot,
    .revert_snapshot = vs_revert_snapshot,
    .create_template_delta_disks = vs_create_template_delta_disks,
    .purge_unconfigured_resources = vs_purge_unconfigured_resources,
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

static vsphere *instance(vmp_provider *p)
{
    if (!p || vmp_provider_ops_of(p) != &vmp_vsphere_provider_ops)
        return NULL;
    return vmp_provider_self(p);
}

int vmp_vsphere_counters(vmp_provider *p, vmp_soap_counters *out)
{
    vsphere *v = instance(p);
    if (!v)
        return VMP_EINVAL;
    vmp_soap_stats_get(v->stats, out);
    return 0;
}

int vmp_vsphere_counters_reset(vmp_provider *p)
{
    vsphere *v = instance(p);
    if (!v)
        return VMP_EINVAL;
    vmp_soap_stats_reset(v->stats);
    return 0;
}

int vmp_vsphere_sessions(vmp_provider *p, int *created, int *size)
{
    vsphere *v = instance(p);
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
    vsphere *v = instance(p);
    if (!v)
        return VMP_EINVAL;
    forget_inventory(v);
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
