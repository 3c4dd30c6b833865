/* The VM-level ops: inventory, state, readiness, destroy, disks, snapshots,
 * and the purge of folders no pool owns. */
#include "vsphere_priv.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int vsp_vms_in_pool(void *self, const char *pool, vmp_strlist *out, vmp_err *err)
{
    vsp_instance *v = self;
    vsp_op o;
    if (!vmp_provider_pool_config(v->p, pool))
        return 0; /* a pool this provider does not know has no VMs */
    int rc = vsp_op_begin(v, pool, NULL, &o, err);
    if (rc != 0)
        return vsp_op_end(&o, rc);
    char path[1024];
    vsp_folder_path(&o, path, sizeof path);
    static const char *const paths[] = {"name", "config.template", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    vmp_vim_objects *r = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        vmp_moref folder;
        rc = vsp_lookup(&o, path, &folder, err);
        if (rc == VMP_ENOENT) {
            rc = 0; /* no folder yet: no VMs */
            goto out;
        }
        if (rc == 0)
            rc = vmp_vim_retrieve(o.s, &folder, 1, VMP_VIM_CHILDREN, &set, 1, &r, err);
        if (rc != VMP_ENOENT)
            break;
        vsp_forget_inventory(v); /* the remembered folder is gone: look again */
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
            rc = vsp_oom(err);
    }
out:
    vmp_vim_objects_free(r);
    return vsp_op_end(&o, rc);
}

int vsp_get_vm(void *self, const char *pool, const char *vm, vmp_vm_info *out, vmp_err *err)
{
    vsp_op o;
    vmp_moref ref;
    vmp_vim_objects *r = NULL;
    int rc = vsp_op_begin(self, pool, vm, &o, err);
    if (rc == 0)
        rc = vsp_find_vm(&o, &ref, err);
    if (rc == 0)
        rc = vsp_read_vm(&o, &ref, vsp_vm_paths, &r, err);
    if (rc == 0)
        rc = vsp_fill_info(&o, r, out, err);
    vmp_vim_objects_free(r);
    return vsp_op_end(&o, rc);
}

int vsp_vm_exists(void *self, const char *pool, const char *vm, bool *exists, vmp_err *err)
{
    vsp_op o;
    vmp_moref ref;
    *exists = false;
    int rc = vsp_op_begin(self, pool, vm, &o, err);
    if (rc == 0) {
        rc = vsp_find_vm(&o, &ref, err);
        *exists = rc == 0;
        if (rc == VMP_ENOENT)
            rc = 0;
    }
    return vsp_op_end(&o, rc);
}

int vsp_get_vm_ip_address(void *self, const char *pool, const char *vm, char *ip, size_t len,
                          vmp_err *err)
{
    vsp_op o;
    vmp_moref ref;
    vmp_vim_objects *r = NULL;
    static const char *const paths[] = {"guest.ipAddress", NULL};
    if (len)
        ip[0] = '\0';
    int rc = vsp_op_begin(self, pool, vm, &o, err);
    if (rc == 0)
        rc = vsp_find_vm(&o, &ref, err);
    if (rc == 0)
        rc = vsp_read_vm(&o, &ref, paths, &r, err);
    if (rc == 0)
        vmp_vim_prop_str(r, 0, "guest.ipAddress", ip, len); /* "" = none reported yet */
    vmp_vim_objects_free(r);
    return vsp_op_end(&o, rc);
}

int vsp_get_vm_host(void *self, const char *pool, const char *vm, char *host, size_t len,
                    vmp_err *err)
{
    vsp_op o;
    vmp_moref ref, h;
    vmp_vim_objects *r = NULL;
    static const char *const paths[] = {"runtime.host", NULL};
    int rc = vsp_op_begin(self, pool, vm, &o, err);
    if (rc == 0)
        rc = vsp_find_vm(&o, &ref, err);
    if (rc == 0)
        rc = vsp_read_vm(&o, &ref, paths, &r, err);
    if (rc == 0 && vmp_vim_prop_moref(r, 0, "runtime.host", &h) != 0)
        rc = vmp_err_set(err, VMP_ENOENT, "VM %s has no host", vm);
    if (rc == 0)
        rc = vsp_object_name(&o, &h, host, len, err);
    vmp_vim_objects_free(r);
    return vsp_op_end(&o, rc);
}

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

int vsp_vm_ready(void *self, const char *pool, const char *vm, bool *ready, vmp_err *err)
{
    vsp_instance *v = self;
    *ready = false;
    const vmp_pool_cfg *pc = vmp_provider_pool_config(v->p, pool);
    if (!pc)
        return vmp_err_set(err, VMP_ENOENT, "pool '%s' is not configured", pool);
    const char *mode = vsp_pool_or_provider_str(v, pc, "ready_check", v->ready_check);
    int port = (int)vsp_pool_or_provider_int(v, pc, "ready_port", v->ready_port);
    char target[VMP_HOST_MAX + 64];
    int rc = 0;
    if (strcmp(mode, "name") == 0) {
        /* vmpooler: the VM's name, resolved by the system resolver, with the
         * pool's (or the vsp_global) domain appended when there is one. */
        const vmp_global_cfg *g = vsp_global(v);
        const char *domain = pc->domain ? pc->domain : (g ? g->domain : NULL);
        if (domain && domain[0])
            snprintf(target, sizeof target, "%s.%s", vm, domain);
        else
            snprintf(target, sizeof target, "%s", vm);
    } else if (strcmp(mode, "ip") == 0 || strcmp(mode, "hostname") == 0) {
        /* What VMware Tools reports: the guest's IP address or host name. */
        vsp_op o;
        vmp_moref ref;
        vmp_vim_objects *r = NULL;
        bool ip = strcmp(mode, "ip") == 0;
        char ps[32] = "";
        rc = vsp_op_begin(v, pool, vm, &o, err);
        if (rc == 0)
            rc = vsp_find_vm(&o, &ref, err);
        if (rc == 0)
            rc = vsp_read_vm(&o, &ref, vsp_vm_paths, &r, err);
        if (rc == 0) {
            vmp_vim_prop_str(r, 0, "runtime.powerState", ps, sizeof ps);
            vmp_vim_prop_str(r, 0, ip ? "guest.ipAddress" : "guest.hostName", target,
                             sizeof target);
        }
        vmp_vim_objects_free(r);
        vsp_op_end(&o, rc);
        if (rc != 0)
            return rc;
        if (strcmp(ps, "poweredOn") != 0) {
            vsp_log(v, VMP_LOG_DEBUG, pool, vm, "not ready: powered off");
            return 0;
        }
        if (!target[0]) {
            vsp_log(v, VMP_LOG_DEBUG, pool, vm, "not ready: VMware Tools reports no %s yet",
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
        vsp_log(v, VMP_LOG_DEBUG, pool, vm, "not ready: %s", why);
    return 0;
}

int vsp_destroy_vm(void *self, const char *pool, const char *vm, vmp_err *err)
{
    vsp_op o;
    vmp_moref ref;
    int rc = vsp_op_begin(self, pool, vm, &o, err);
    if (rc == 0) {
        rc = vsp_find_vm(&o, &ref, err);
        if (rc == VMP_ENOENT)
            rc = 0; /* already gone */
        else if (rc == 0)
            rc = vsp_destroy_ref(&o, &ref, vm, err);
    }
    if (rc == 0)
        vsp_log(self, VMP_LOG_DEBUG, pool, vm, "destroyed");
    return vsp_op_end(&o, rc);
}

int vsp_create_disk(void *self, const char *pool, const char *vm, int size_gb, vmp_err *err)
{
    vsp_instance *v = self;
    vsp_op o;
    vmp_moref ref;
    vmp_vim_objects *r = NULL;
    vmp_vim_device *d = NULL;
    size_t n = 0;
    vmp_buf change = VMP_BUF_INIT, args = VMP_BUF_INIT;
    static const char *const paths[] = {"config.hardware.device", NULL};
    int rc = vsp_op_begin(v, pool, vm, &o, err);
    if (rc == 0)
        rc = vsp_find_vm(&o, &ref, err);
    if (rc != 0)
        goto out;
    if (size_gb <= 0) {
        rc = vmp_err_set(err, VMP_EFAILED, "disk size must be a positive number of GB, not %d",
                         size_gb);
        goto out;
    }
    rc = vsp_read_vm(&o, &ref, paths, &r, err);
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
        rc = vsp_oom(err);
        goto out;
    }
    char what[VMP_NAME_MAX + 48];
    snprintf(what, sizeof what, "adding a %d GB disk to %s", size_gb, vm);
    rc = vmp_vim_run_task(o.s, "ReconfigVM_Task", &ref, args.s, what, v->task_timeout, NULL, err);
    if (rc == 0)
        vsp_log(v, VMP_LOG_DEBUG, pool, vm, "added a %d GB disk (controller %d unit %d)", size_gb,
                ctrl, unit);
out:
    free(d);
    vmp_vim_objects_free(r);
    vmp_buf_free(&change);
    vmp_buf_free(&args);
    return vsp_op_end(&o, rc);
}

/* Reads the VM's snapshot tree and power state. */
static int read_snapshots(vsp_op *o, vmp_moref *ref, vmp_vim_objects **r, vmp_err *err)
{
    static const char *const paths[] = {"snapshot", "runtime.powerState", NULL};
    int rc = vsp_find_vm(o, ref, err);
    if (rc == 0)
        rc = vsp_read_vm(o, ref, paths, r, err);
    return rc;
}

int vsp_create_snapshot(void *self, const char *pool, const char *vm, const char *snapshot,
                        vmp_err *err)
{
    vsp_instance *v = self;
    vsp_op o;
    vmp_moref ref, existing;
    vmp_vim_objects *r = NULL;
    vmp_buf args = VMP_BUF_INIT;
    int rc = vsp_op_begin(v, pool, vm, &o, err);
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
        rc = vsp_oom(err);
        goto out;
    }
    char what[VMP_NAME_MAX * 2 + 32];
    snprintf(what, sizeof what, "snapshot '%s' of %s", snapshot, vm);
    rc = vmp_vim_run_task(o.s, "CreateSnapshot_Task", &ref, args.s, what, v->task_timeout, NULL,
                          err);
out:
    vmp_vim_objects_free(r);
    vmp_buf_free(&args);
    return vsp_op_end(&o, rc);
}

int vsp_revert_snapshot(void *self, const char *pool, const char *vm, const char *snapshot,
                        vmp_err *err)
{
    vsp_instance *v = self;
    vsp_op o;
    vmp_moref ref, snap;
    vmp_vim_objects *r = NULL;
    int rc = vsp_op_begin(v, pool, vm, &o, err);
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
    return vsp_op_end(&o, rc);
}

/* Powers off and destroys every VM in folder and its subfolders, then the
 * folder. */
static int destroy_folder(vsp_op *o, const vmp_moref *folder, const char *path, vmp_err *err)
{
    static const char *const paths[] = {"name", NULL};
    const vmp_vim_propset set = {"VirtualMachine", paths};
    vmp_vim_objects *r = NULL;
    int rc = vmp_vim_retrieve(o->s, folder, 1, VMP_VIM_FOLDER_TREE, &set, 1, &r, err);
    for (size_t i = 0; rc == 0 && i < vmp_vim_objects_count(r); i++) {
        const vmp_moref *vm = vmp_vim_objects_ref(r, i);
        char name[VMP_NAME_MAX] = "";
        if (strcmp(vm->type, "VirtualMachine") != 0)
            continue;
        vmp_vim_prop_str(r, i, "name", name, sizeof name);
        rc = vsp_destroy_ref(o, vm, name, err);
        if (rc == 0)
            vsp_log(o->v, VMP_LOG_INFO, NULL, name, "purged VM %s of unconfigured folder %s", name,
                    path);
    }
    vmp_vim_objects_free(r);
    if (rc == 0) {
        char what[1100];
        snprintf(what, sizeof what, "destroy of folder %s", path);
        rc = vmp_vim_run_task(o->s, "Destroy_Task", folder, NULL, what, o->v->task_timeout, NULL,
                              err);
        if (rc == 0)
            vsp_log(o->v, VMP_LOG_INFO, NULL, NULL, "purged unconfigured folder %s", path);
    }
    return rc;
}

/* vmpooler §7.8: below the parent folder of every pool folder of this
 * provider, destroy each folder that is neither a configured pool folder
 * nor in the allow list (with the VMs in it). */
int vsp_purge_unconfigured_resources(void *self, const vmp_strlist *allowlist, vmp_err *err)
{
    vsp_instance *v = self;
    vmp_strlist pools = VMP_STRLIST_INIT, bases = VMP_STRLIST_INIT, keep = VMP_STRLIST_INIT;
    int rc = vmp_provider_provided_pools(v->p, &pools);
    /* Configured folders and their parents, as datacenter paths. */
    for (size_t i = 0; rc == 0 && i < pools.n; i++) {
        vsp_op o;
        rc = vsp_op_begin(v, pools.v[i], NULL, &o, err);
        if (rc == 0 && o.pc->folder && o.pc->folder[0]) {
            char full[1024], base[1024];
            vsp_folder_path(&o, full, sizeof full);
            vmp_strlcpy(base, full, sizeof base);
            *strrchr(base, '/') = '\0';
            if (!vmp_strlist_contains(&keep, full))
                rc = vmp_strlist_push(&keep, full);
            if (rc == 0 && !vmp_strlist_contains(&bases, base))
                rc = vmp_strlist_push(&bases, base);
        }
        vsp_op_end(&o, rc);
    }
    for (size_t b = 0; rc == 0 && b < bases.n; b++) {
        vsp_op o = {.v = v};
        rc = vmp_sessions_get(v->sessions, &o.s, err);
        if (rc != 0)
            break;
        vmp_moref base;
        vmp_vim_objects *r = NULL;
        static const char *const paths[] = {"name", NULL};
        const vmp_vim_propset set = {"Folder", paths};
        rc = vmp_vim_find_by_path(o.s, bases.v[b], &base, err);
        if (rc == VMP_ENOENT) {
            rc = vsp_op_end(&o, 0);
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
            if (vmp_strlist_contains(&keep, full) ||
                (allowlist && vmp_strlist_contains(allowlist, name)))
                continue;
            rc = destroy_folder(&o, vmp_vim_objects_ref(r, i), full, err);
        }
        vmp_vim_objects_free(r);
        vsp_op_end(&o, rc);
    }
    vmp_strlist_clear(&pools);
    vmp_strlist_clear(&bases);
    vmp_strlist_clear(&keep);
    return rc;
}
