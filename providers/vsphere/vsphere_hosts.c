/* Host facts, least used compatible host, round-robin host lists
 * (manage_host_selection) and migration by relocation. */
#include "vsphere_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The host facts of the hosts of a compute resource, in one collection. */
int vsp_host_facts(vsp_op *o, const vmp_moref *cluster, vmp_host_facts **out, size_t *n,
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
        return vsp_oom(err);
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
            vmp_vim_prop_ll(r, i, "summary.quickStats.overallMemoryUsage", &mem) == 0)
        {
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

double vsp_utilization_limit(const vsp_instance *v)
{
    const vmp_global_cfg *g = vsp_global(v);
    return g && g->utilization_limit > 0 ? (double)g->utilization_limit : 90;
}

/* manage_host_selection: the next host of the cluster's round-robin list
 * (of CPU model `model` when non-NULL), refreshing the list when it is
 * older than host_selection_max_age. out_ref receives its reference. */
int vsp_next_host(vsp_op *o, const vmp_moref *cluster, const char *cluster_name, const char *model,
                  char *name, size_t len, vmp_moref *out_ref, vmp_err *err)
{
    vsp_instance *v = o->v;
    const vmp_global_cfg *g = vsp_global(v);
    double max_age = g && g->host_selection_max_age > 0 ? (double)g->host_selection_max_age : 60;
    char key[VMP_NAME_MAX * 2 + 2];
    snprintf(key, sizeof key, "%s_%s", o->dc, cluster_name);
    int rc = 0;
    pthread_mutex_lock(&v->rr_mu);
    vsp_rr_entry *e = NULL;
    for (size_t i = 0; i < v->n_rrs; i++)
        if (strcmp(v->rrs[i].key, key) == 0)
            e = &v->rrs[i];
    if (!e) {
        vsp_rr_entry *a = realloc(v->rrs, (v->n_rrs + 1) * sizeof *a);
        if (!a || !(a[v->n_rrs].key = strdup(key))) {
            if (a)
                v->rrs = a;
            rc = vsp_oom(err);
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
        rc = vsp_host_facts(o, cluster, &f, &n, err);
        if (rc == 0)
            rc = vmp_hostsel_rr_build(&e->rr, f, n, vsp_utilization_limit(v), now);
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
        rc = vmp_err_set(err, VMP_EFAILED,
                         "no host of cluster %s is below the utilization "
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

int vsp_find_least_used_compatible_host(void *self, const char *pool, const char *vm, char *host,
                                        size_t len, vmp_err *err)
{
    vsp_instance *v = self;
    vsp_op o;
    vmp_moref ref, src, parent;
    vmp_vim_objects *r = NULL;
    vmp_host_facts *f = NULL;
    size_t n = 0;
    static const char *const paths[] = {"runtime.host", NULL};
    static const char *const hpaths[] = {"name", "parent", "hardware.cpuPkg", NULL};
    const vmp_vim_propset hset = {"HostSystem", hpaths};
    char model[64] = "", src_name[VMP_HOST_MAX] = "";
    int rc = vsp_op_begin(v, pool, vm, &o, err);
    if (rc == 0)
        rc = vsp_find_vm(&o, &ref, err);
    if (rc == 0)
        rc = vsp_read_vm(&o, &ref, paths, &r, err);
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
        rc = vsp_host_facts(&o, &parent, &f, &n, err);
    if (rc == 0) {
        long best = vmp_hostsel_least_used(f, n, model, vsp_utilization_limit(v));
        if (best < 0)
            rc = vmp_err_set(err, VMP_EFAILED,
                             "no host like %s (CPU model %s) is below the utilization limit of "
                             "%.0f%%",
                             src_name, model[0] ? model : "unknown", vsp_utilization_limit(v));
        else
            vmp_strlcpy(host, f[best].name, len);
    }
    free(f);
    vmp_vim_objects_free(r);
    return vsp_op_end(&o, rc);
}

int vsp_migrate_vm_to_host(void *self, const char *pool, const char *vm, const char *host,
                           vmp_err *err)
{
    vsp_instance *v = self;
    vsp_op o;
    vmp_moref ref, cluster, target;
    vmp_vim_objects *r = NULL;
    vmp_buf args = VMP_BUF_INIT;
    char path[1024];
    int rc = vsp_op_begin(v, pool, vm, &o, err);
    if (rc != 0)
        goto out;
    if (!o.pc->clone_target || !o.pc->clone_target[0]) {
        rc = vmp_err_set(err, VMP_EINVAL, "pool %s has no clone_target (cluster)", pool);
        goto out;
    }
    snprintf(path, sizeof path, "%s/host/%s", o.dc, o.pc->clone_target);
    rc = vsp_lookup(&o, path, &cluster, err);
    if (rc == VMP_ENOENT)
        rc = vmp_err_set(err, VMP_ENOENT, "cluster '%s' not found", path);
    if (rc == 0)
        rc = vsp_find_vm(&o, &ref, err);
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
        rc =
            vmp_err_set(err, VMP_EFAILED, "host %s is not in cluster %s", host, o.pc->clone_target);
        goto out;
    }
    vmp_vim_relocate rel = {.host = &target};
    vmp_vim_relocate_xml(&args, "spec", &rel);
    vmp_buf_puts(&args, "<priority>defaultPriority</priority>");
    if (args.oom) {
        rc = vsp_oom(err);
        goto out;
    }
    char what[VMP_NAME_MAX + VMP_HOST_MAX + 32];
    snprintf(what, sizeof what, "migration of %s to %s", vm, host);
    rc = vmp_vim_run_task(o.s, "RelocateVM_Task", &ref, args.s, what, v->task_timeout, NULL, err);
    if (rc == 0)
        vsp_log(v, VMP_LOG_DEBUG, pool, vm, "migrated to %s", host);
out:
    vmp_vim_objects_free(r);
    vmp_buf_free(&args);
    return vsp_op_end(&o, rc);
}
