/* create_vm: the clone of a pool's template into its folder, with
 * vmpooler's placement, specs and annotation; and template delta disks. */
#include "vsphere_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
static int pool_folder(vsp_op *o, vmp_moref *out, vmp_err *err)
{
    char path[1024];
    vsp_folder_path(o, path, sizeof path);
    int rc = vsp_lookup(o, path, out, err);
    const vmp_global_cfg *g = vsp_global(o->v);
    if (rc != VMP_ENOENT)
        return rc;
    if (!g || !g->create_folders)
        return vmp_err_set(err, VMP_ENOENT, "folder '%s' does not exist (create_folders is off)",
                           path);
    vmp_moref cur;
    char sofar[1024];
    snprintf(sofar, sizeof sofar, "%s/vm", o->dc);
    rc = vsp_lookup(o, sofar, &cur, err);
    if (rc != 0)
        return vmp_err_prefix(err, "datacenter '%s'", o->dc);
    char *copy = strdup(o->pc->folder);
    if (!copy)
        return vsp_oom(err);
    char *save = NULL;
    for (char *part = strtok_r(copy, "/", &save); part && rc == 0;
         part = strtok_r(NULL, "/", &save)) {
        size_t l = strlen(sofar);
        snprintf(sofar + l, sizeof sofar - l, "/%s", part);
        vmp_moref next;
        rc = vmp_vim_find_by_path(o->s, sofar, &next, err);
        if (rc == VMP_ENOENT) {
            rc = vmp_vim_create_folder(o->s, &cur, part, &next, err);
            if (rc == 0)
                vsp_log(o->v, VMP_LOG_INFO, o->pool, NULL, "created folder %s", sofar);
            else if (rc == VMP_EEXIST) /* made by someone else meanwhile */
                rc = vmp_vim_find_by_path(o->s, sofar, &next, err);
        }
        cur = next;
    }
    free(copy);
    if (rc == 0)
        *out = cur;
    return rc;
}

/* The resource pool a clone goes to when no cluster is configured: the
 * source's own, else the root pool of the compute resource of its host. */
static int source_pool(vsp_op *o, const vmp_vim_objects *tr, vmp_moref *pool, vmp_err *err)
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
static int network_change(vsp_op *o, const xmlNode *devices_val, vmp_buf *out, vmp_err *err)
{
    char path[1024];
    vmp_moref net;
    snprintf(path, sizeof path, "%s/network/%s", o->dc, o->pc->network);
    int rc = vsp_lookup(o, path, &net, err);
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
static int ensure_powered_on(vsp_op *o, const vmp_moref *vm, const vmp_vim_objects *r, vmp_err *err)
{
    char ps[32] = "";
    vmp_vim_prop_str(r, 0, "runtime.powerState", ps, sizeof ps);
    if (strcmp(ps, "poweredOn") == 0)
        return 0;
    char what[VMP_NAME_MAX + 32];
    snprintf(what, sizeof what, "power on of %s", o->vm);
    int rc =
        vmp_vim_run_task(o->s, "PowerOnVM_Task", vm, NULL, what, o->v->task_timeout, NULL, err);
    return rc == VMP_ESTATE ? 0 : rc; /* already on meanwhile */
}

int vsp_create_vm(void *self, const char *pool, const char *vm, vmp_vm_info *out, vmp_err *err)
{
    vsp_instance *v = self;
    vsp_op o;
    vmp_vim_objects *tr = NULL, *r = NULL;
    vmp_buf args = VMP_BUF_INIT, ann = VMP_BUF_INIT, devchange = VMP_BUF_INIT;
    vmp_vim_option *extra = NULL;
    char path[1024];
    int rc = vsp_op_begin(v, pool, vm, &o, err);
    if (rc != 0)
        goto out;
    const vmp_pool_cfg *pc = o.pc;
    const vmp_global_cfg *g = vsp_global(v);
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
    rc = vsp_lookup(&o, path, &tmpl, err);
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
        rc = vsp_lookup(&o, path, &datastore, err);
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
        rc = vsp_lookup(&o, path, &cluster, err);
        if (rc == VMP_ENOENT)
            rc = vmp_err_set(err, VMP_ENOENT, "clone_target '%s' not found", path);
        if (rc != 0)
            goto out;
        size_t l = strlen(path);
        snprintf(path + l, sizeof path - l, "/Resources");
        rc = vsp_lookup(&o, path, &rpool, err);
        if (rc != 0)
            goto out;
        if (g && g->manage_host_selection) {
            char hname[VMP_HOST_MAX];
            rc = vsp_next_host(&o, &cluster, pc->clone_target, NULL, hname, sizeof hname, &host,
                               err);
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
        rc = network_change(&o, vmp_vim_objects_prop(tr, 0, "config.hardware.device"), &devchange,
                            err);
        if (rc != 0)
            goto out;
    }

    /* extraConfig: guestinfo.hostname, the snapshot tuning keys, and the
     * pool's extra_config map. */
    const vmp_cfg_node *xc = vmp_cfg_get(pc->node, "extra_config");
    size_t nx = 3 + vmp_cfg_len(xc), k = 0;
    extra = calloc(nx, sizeof *extra);
    if (!extra) {
        rc = vsp_oom(err);
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
        rc = vsp_oom(err);
        goto out;
    }
    char what[VMP_NAME_MAX + 64];
    snprintf(what, sizeof what, "clone of %s to %s", tpath, vm);
    vmp_moref vmref = {0};
    vsp_log(v, VMP_LOG_DEBUG, pool, vm, "cloning %s (%s clone)%s%s", tpath,
            linked ? "linked" : "full", have_host ? " on host " : "", have_host ? host.value : "");
    rc = vmp_vim_run_task(o.s, "CloneVM_Task", &tmpl, args.s, what, v->task_timeout, &vmref, err);
    if (rc == 0 && !vmp_moref_is_set(&vmref))
        rc = vsp_find_vm(&o, &vmref, err);
    if (rc != 0)
        goto out;

    /* A clone spec's powerOn is not honoured everywhere (vcsim ignores it):
     * power on when the clone is still off. */
    rc = vsp_read_vm(&o, &vmref, vsp_vm_paths, &r, err);
    if (rc == 0) {
        char ps[32] = "";
        vmp_vim_prop_str(r, 0, "runtime.powerState", ps, sizeof ps);
        if (strcmp(ps, "poweredOn") != 0) {
            rc = ensure_powered_on(&o, &vmref, r, err);
            vmp_vim_objects_free(r);
            r = NULL;
            if (rc == 0 && out)
                rc = vsp_read_vm(&o, &vmref, vsp_vm_paths, &r, err);
        }
    }
    if (rc == 0 && out)
        rc = vsp_fill_info(&o, r, out, err);
    if (rc == 0) {
        vsp_log(v, VMP_LOG_DEBUG, pool, vm, "created %s", vmref.value);
    } else if (vmp_moref_is_set(&vmref)) {
        /* The clone exists but could not be made ready: take it away again,
         * so a failed create leaves nothing behind. */
        vmp_err e2 = {0};
        int drc = vsp_destroy_ref(&o, &vmref, vm, &e2);
        vsp_log(v, drc == 0 ? VMP_LOG_INFO : VMP_LOG_WARN, pool, vm,
                "destroying the clone after a failed create: %s", drc == 0 ? "done" : e2.msg);
    }
out:
    vmp_vim_objects_free(tr);
    vmp_vim_objects_free(r);
    vmp_buf_free(&args);
    vmp_buf_free(&ann);
    vmp_buf_free(&devchange);
    free(extra);
    return vsp_op_end(&o, rc);
}

int vsp_create_template_delta_disks(void *self, const char *pool, vmp_err *err)
{
    vsp_instance *v = self;
    vsp_op o;
    vmp_moref tmpl = {0}, rpool = {0}, dsref = {0};
    vmp_vim_objects *r = NULL, *dsr = NULL;
    vmp_vim_device *d = NULL;
    size_t n = 0;
    vmp_buf change = VMP_BUF_INIT, args = VMP_BUF_INIT;
    char path[1024], dsname[VMP_NAME_MAX] = "";
    bool unmarked = false;
    int rc = vsp_op_begin(v, pool, NULL, &o, err);
    if (rc != 0)
        goto out;
    snprintf(path, sizeof path, "%s/vm/%s", o.dc, o.pc->template_path ? o.pc->template_path : "");
    rc = vsp_lookup(&o, path, &tmpl, err);
    if (rc == VMP_ENOENT)
        rc = vmp_err_set(err, VMP_ENOENT, "template '%s' not found", path);
    static const char *const paths[] = {"config.template", "config.hardware.device", "resourcePool",
                                        "runtime.host", NULL};
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
        rc = vsp_oom(err);
        goto out;
    }
    /* A template cannot be reconfigured: make it a VM for the change. */
    bool is_template = false;
    vmp_vim_prop_bool(r, 0, "config.template", &is_template);
    if (is_template) {
        rc = source_pool(&o, r, &rpool, err);
        if (rc == 0 && o.pc->clone_target && o.pc->clone_target[0]) {
            snprintf(path, sizeof path, "%s/host/%s/Resources", o.dc, o.pc->clone_target);
            rc = vsp_lookup(&o, path, &rpool, err);
        }
        vmp_buf mark = VMP_BUF_INIT;
        vmp_xml_moref(&mark, "pool", &rpool);
        if (rc == 0)
            rc = mark.oom ? vsp_oom(err)
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
        vsp_log(v, VMP_LOG_INFO, pool, NULL, "added a delta disk layer to %d disk(s) of %s", disks,
                o.pc->template_path);
out:
    if (unmarked) {
        vmp_err e2 = {0};
        if (vmp_soap_call(o.s, "MarkAsTemplate", &tmpl, NULL, NULL, &e2) != 0) {
            vsp_log(v, VMP_LOG_ERROR, pool, NULL, "could not mark %s as a template again: %s",
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
    return vsp_op_end(&o, rc);
}
