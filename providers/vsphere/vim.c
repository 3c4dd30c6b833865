#include "vim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- lookups ----------------------------------------------------------- */

static int need_service(vmp_soap *s, const vmp_soap_service **svc, vmp_err *err)
{
    *svc = vmp_soap_service_content(s);
    if (*svc)
        return 0;
    int rc = vmp_soap_connect(s, err);
    if (rc == 0)
        *svc = vmp_soap_service_content(s);
    return rc;
}

/* Calls a SearchIndex method whose answer is an optional moref. */
static int search_call(vmp_soap *s, const char *method, const char *args, const char *what,
                       vmp_moref *out, vmp_err *err)
{
    const vmp_soap_service *svc;
    vmp_soap_reply *r = NULL;
    int rc = need_service(s, &svc, err);
    if (rc == 0)
        rc = vmp_soap_call(s, method, &svc->search_index, args, &r, err);
    if (rc == 0 && vmp_xml_read_moref(vmp_soap_reply_returnval(r), out) != 0)
        rc = vmp_err_set(err, VMP_ENOENT, "%s not found", what);
    vmp_soap_reply_free(r);
    return rc;
}

int vmp_vim_find_by_path(vmp_soap *s, const char *path, vmp_moref *out, vmp_err *err)
{
    vmp_buf args = VMP_BUF_INIT;
    vmp_xml_elem(&args, "inventoryPath", path);
    int rc = args.oom ? vmp_err_set(err, VMP_ENOMEM, "out of memory") : 0;
    if (rc == 0) {
        char what[300];
        snprintf(what, sizeof what, "inventory path '%s'", path);
        rc = search_call(s, "FindByInventoryPath", args.s, what, out, err);
    }
    vmp_buf_free(&args);
    return rc;
}

int vmp_vim_find_child(vmp_soap *s, const vmp_moref *parent, const char *name, vmp_moref *out,
                       vmp_err *err)
{
    vmp_buf args = VMP_BUF_INIT;
    vmp_xml_moref(&args, "entity", parent);
    vmp_xml_elem(&args, "name", name);
    int rc = args.oom ? vmp_err_set(err, VMP_ENOMEM, "out of memory") : 0;
    if (rc == 0) {
        char what[300];
        snprintf(what, sizeof what, "'%s' in %s", name, parent->value);
        rc = search_call(s, "FindChild", args.s, what, out, err);
    }
    vmp_buf_free(&args);
    return rc;
}

int vmp_vim_create_folder(vmp_soap *s, const vmp_moref *parent, const char *name, vmp_moref *out,
                          vmp_err *err)
{
    vmp_buf args = VMP_BUF_INIT;
    vmp_soap_reply *r = NULL;
    vmp_xml_elem(&args, "name", name);
    int rc = args.oom ? vmp_err_set(err, VMP_ENOMEM, "out of memory") : 0;
    if (rc == 0)
        rc = vmp_soap_call(s, "CreateFolder", parent, args.s, &r, err);
    if (rc == 0 && vmp_xml_read_moref(vmp_soap_reply_returnval(r), out) != 0)
        rc = vmp_err_set(err, VMP_EPROVIDER, "CreateFolder: no folder in the answer");
    vmp_soap_reply_free(r);
    vmp_buf_free(&args);
    return rc;
}

int vmp_vim_current_time(vmp_soap *s, double *out, vmp_err *err)
{
    vmp_moref si;
    vmp_soap_reply *r = NULL;
    char text[64];
    vmp_moref_set(&si, "ServiceInstance", "ServiceInstance");
    int rc = vmp_soap_call(s, "CurrentTime", &si, NULL, &r, err);
    if (rc == 0 && (vmp_xml_text(vmp_soap_reply_returnval(r), text, sizeof text) != 0 ||
                    vmp_xml_parse_datetime(text, out) != 0))
        rc = vmp_err_set(err, VMP_EPROVIDER, "CurrentTime: malformed answer");
    vmp_soap_reply_free(r);
    return rc;
}

/* ---- property collection ------------------------------------------------ */

typedef struct obj_entry {
    vmp_moref ref;
    xmlNode *node; /* <objects> (or RetrieveProperties' <returnval>) */
} obj_entry;

struct vmp_vim_objects {
    vmp_soap_reply **replies;
    size_t n_replies;
    obj_entry *objs;
    size_t n, cap;
};

void vmp_vim_retrieve_args(vmp_buf *b, const vmp_moref *objs, size_t n, vmp_vim_traverse traverse,
                           const vmp_vim_propset *sets, size_t nsets)
{
    vmp_buf_puts(b, "<specSet>");
    for (size_t i = 0; i < nsets; i++) {
        vmp_buf_puts(b, "<propSet>");
        vmp_xml_elem(b, "type", sets[i].type);
        for (const char *const *p = sets[i].paths; p && *p; p++)
            vmp_xml_elem(b, "pathSet", *p);
        vmp_buf_puts(b, "</propSet>");
    }
    for (size_t i = 0; i < n; i++) {
        vmp_buf_puts(b, "<objectSet>");
        vmp_xml_moref(b, "obj", &objs[i]);
        vmp_xml_elem_bool(b, "skip", traverse != VMP_VIM_SELF);
        switch (traverse) {
        case VMP_VIM_SELF:
            break;
        case VMP_VIM_CHILDREN:
            vmp_buf_puts(b, "<selectSet xsi:type=\"TraversalSpec\"><name>children</name>"
                            "<type>Folder</type><path>childEntity</path><skip>false</skip>"
                            "</selectSet>");
            break;
        case VMP_VIM_FOLDER_TREE:
            vmp_buf_puts(b, "<selectSet xsi:type=\"TraversalSpec\"><name>tree</name>"
                            "<type>Folder</type><path>childEntity</path><skip>false</skip>"
                            "<selectSet><name>tree</name></selectSet></selectSet>");
            break;
        case VMP_VIM_HOSTS:
            vmp_buf_puts(b, "<selectSet xsi:type=\"TraversalSpec\"><name>hosts</name>"
                            "<type>ComputeResource</type><path>host</path><skip>false</skip>"
                            "</selectSet>");
            break;
        }
        vmp_buf_puts(b, "</objectSet>");
    }
    vmp_buf_puts(b, "</specSet><options/>");
}

/* Indexes the <objects> of one answer; takes reply. */
static int objects_add(vmp_vim_objects *r, vmp_soap_reply *reply, char *token, size_t tokenlen,
                       vmp_err *err)
{
    if (token && tokenlen)
        token[0] = '\0';
    vmp_soap_reply **rs = realloc(r->replies, (r->n_replies + 1) * sizeof *rs);
    if (!rs) {
        vmp_soap_reply_free(reply);
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    }
    r->replies = rs;
    r->replies[r->n_replies++] = reply;
    xmlNode *rv = vmp_soap_reply_returnval(reply);
    if (!rv)
        return 0; /* nothing matched */
    if (token && tokenlen)
        vmp_xml_child_text(rv, "token", token, tokenlen);
    for (xmlNode *o = vmp_xml_child(rv, "objects"); o; o = vmp_xml_next(o, "objects")) {
        if (r->n == r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 16;
            obj_entry *v = realloc(r->objs, cap * sizeof *v);
            if (!v)
                return vmp_err_set(err, VMP_ENOMEM, "out of memory");
            r->objs = v;
            r->cap = cap;
        }
        obj_entry *e = &r->objs[r->n];
        if (vmp_xml_read_moref(vmp_xml_child(o, "obj"), &e->ref) != 0)
            continue;
        e->node = o;
        r->n++;
    }
    return 0;
}

int vmp_vim_objects_from_reply(vmp_soap_reply *reply, vmp_vim_objects **out, char *token,
                               size_t tokenlen, vmp_err *err)
{
    vmp_vim_objects *r = calloc(1, sizeof *r);
    if (!r) {
        vmp_soap_reply_free(reply);
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    }
    int rc = objects_add(r, reply, token, tokenlen, err);
    if (rc != 0) {
        vmp_vim_objects_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void vmp_vim_objects_free(vmp_vim_objects *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_replies; i++)
        vmp_soap_reply_free(r->replies[i]);
    free(r->replies);
    free(r->objs);
    free(r);
}

int vmp_vim_retrieve(vmp_soap *s, const vmp_moref *objs, size_t n, vmp_vim_traverse traverse,
                     const vmp_vim_propset *sets, size_t nsets, vmp_vim_objects **out, vmp_err *err)
{
    const vmp_soap_service *svc;
    vmp_vim_objects *r = NULL;
    vmp_soap_reply *reply = NULL;
    vmp_buf args = VMP_BUF_INIT;
    char token[256];
    int rc = need_service(s, &svc, err);
    if (rc != 0)
        goto out;
    vmp_vim_retrieve_args(&args, objs, n, traverse, sets, nsets);
    if (args.oom) {
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
        goto out;
    }
    rc = vmp_soap_call(s, "RetrievePropertiesEx", &svc->property_collector, args.s, &reply, err);
    if (rc != 0)
        goto out;
    rc = vmp_vim_objects_from_reply(reply, &r, token, sizeof token, err);
    reply = NULL;
    /* A server that pages (vCenter with many objects) hands out a token per
     * page; vcsim never does. */
    while (rc == 0 && token[0]) {
        vmp_buf_reset(&args);
        vmp_xml_elem(&args, "token", token);
        rc = vmp_soap_call(s, "ContinueRetrievePropertiesEx", &svc->property_collector,
                           vmp_buf_str(&args), &reply, err);
        if (rc == 0)
            rc = objects_add(r, reply, token, sizeof token, err);
        reply = NULL;
    }
    if (rc == 0) {
        *out = r;
        r = NULL;
    }
out:
    vmp_soap_reply_free(reply);
    vmp_vim_objects_free(r);
    vmp_buf_free(&args);
    return rc;
}

size_t vmp_vim_objects_count(const vmp_vim_objects *r) { return r ? r->n : 0; }

const vmp_moref *vmp_vim_objects_ref(const vmp_vim_objects *r, size_t i)
{
    return i < r->n ? &r->objs[i].ref : NULL;
}

long vmp_vim_objects_find(const vmp_vim_objects *r, const vmp_moref *ref)
{
    for (size_t i = 0; r && i < r->n; i++)
        if (vmp_moref_equal(&r->objs[i].ref, ref))
            return (long)i;
    return -1;
}

xmlNode *vmp_vim_objects_prop(const vmp_vim_objects *r, size_t i, const char *path)
{
    if (!r || i >= r->n)
        return NULL;
    char name[256];
    for (xmlNode *p = vmp_xml_child(r->objs[i].node, "propSet"); p; p = vmp_xml_next(p, "propSet"))
    {
        if (vmp_xml_child_text(p, "name", name, sizeof name) == 0 && strcmp(name, path) == 0)
            return vmp_xml_child(p, "val");
    }
    return NULL;
}

int vmp_vim_prop_str(const vmp_vim_objects *r, size_t i, const char *path, char *buf, size_t len)
{
    xmlNode *v = vmp_vim_objects_prop(r, i, path);
    if (!v) {
        if (len)
            buf[0] = '\0';
        return -1;
    }
    return vmp_xml_text(v, buf, len);
}

int vmp_vim_prop_bool(const vmp_vim_objects *r, size_t i, const char *path, bool *out)
{
    return vmp_xml_node_bool(vmp_vim_objects_prop(r, i, path), out);
}

int vmp_vim_prop_ll(const vmp_vim_objects *r, size_t i, const char *path, long long *out)
{
    return vmp_xml_node_ll(vmp_vim_objects_prop(r, i, path), out);
}

int vmp_vim_prop_moref(const vmp_vim_objects *r, size_t i, const char *path, vmp_moref *out)
{
    return vmp_xml_read_moref(vmp_vim_objects_prop(r, i, path), out);
}

int vmp_vim_prop_time(const vmp_vim_objects *r, size_t i, const char *path, double *out)
{
    char text[64];
    if (vmp_vim_prop_str(r, i, path, text, sizeof text) != 0)
        return -1;
    return vmp_xml_parse_datetime(text, out);
}

/* ---- tasks -------------------------------------------------------------- */

int vmp_vim_task_error(const xmlNode *error_val, const char *what, vmp_err *err)
{
    char type[64], msg[160];
    const xmlNode *fault = vmp_xml_child(error_val, "fault");
    vmp_xml_xsi_type(fault, type, sizeof type);
    vmp_xml_child_text(error_val, "localizedMessage", msg, sizeof msg);
    vmp_buf d = VMP_BUF_INIT;
    vmp_soap_fault_describe(fault, &d);
    int code = vmp_soap_fault_code(type);
    /* vcsim's localizedMessage is a Go type name ("*types.InvalidPowerState"):
     * only worth showing when it says more than the fault type. */
    if (msg[0] && !strstr(msg, "types."))
        vmp_err_set(err, code, "%s failed: %s: %s", what, vmp_buf_str(&d), msg);
    else
        vmp_err_set(err, code, "%s failed: %s", what, vmp_buf_str(&d));
    vmp_buf_free(&d);
    return code;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* One read of a task. Returns 1 while it runs (state in state), 0 when it
 * succeeded, a negative code when it failed or could not be read. */
static int task_read(vmp_soap *s, const vmp_moref *task, const char *what, vmp_moref *result,
                     char *state, size_t len, vmp_err *err)
{
    static const char *const paths[] = {"info.state", "info.result", "info.error", NULL};
    const vmp_vim_propset set = {"Task", paths};
    vmp_vim_objects *r = NULL;
    int rc = vmp_vim_retrieve(s, task, 1, VMP_VIM_SELF, &set, 1, &r, err);
    if (rc != 0) {
        vmp_err_prefix(err, "waiting for %s", what);
        return rc;
    }
    vmp_vim_prop_str(r, 0, "info.state", state, len);
    if (strcmp(state, "success") == 0) {
        if (result)
            vmp_vim_prop_moref(r, 0, "info.result", result);
        rc = 0;
    } else if (strcmp(state, "error") == 0) {
        rc = vmp_vim_task_error(vmp_vim_objects_prop(r, 0, "info.error"), what, err);
    } else if (!state[0]) {
        rc = vmp_err_set(err, VMP_EPROVIDER, "%s: task %s has no state", what, task->value);
    } else {
        rc = 1; /* queued or running */
    }
    vmp_vim_objects_free(r);
    return rc;
}

/* The task's info.state in a WaitForUpdatesEx answer, if it changed. */
static void update_state(const xmlNode *rv, const vmp_moref *filter, const vmp_moref *task,
                         char *state, size_t len)
{
    for (xmlNode *fs = vmp_xml_child(rv, "filterSet"); fs; fs = vmp_xml_next(fs, "filterSet")) {
        vmp_moref f;
        if (vmp_xml_read_moref(vmp_xml_child(fs, "filter"), &f) != 0 ||
            !vmp_moref_equal(&f, filter))
            continue;
        for (xmlNode *os = vmp_xml_child(fs, "objectSet"); os; os = vmp_xml_next(os, "objectSet")) {
            vmp_moref obj;
            if (vmp_xml_read_moref(vmp_xml_child(os, "obj"), &obj) != 0 ||
                !vmp_moref_equal(&obj, task))
                continue;
            char name[32];
            for (xmlNode *cs = vmp_xml_child(os, "changeSet"); cs;
                 cs = vmp_xml_next(cs, "changeSet"))
                if (vmp_xml_child_text(cs, "name", name, sizeof name) == 0 &&
                    strcmp(name, "info.state") == 0)
                    vmp_xml_child_text(cs, "val", state, len);
        }
    }
}

/* Waits with a property filter and WaitForUpdatesEx until the task leaves
 * the running states or the deadline passes. Returns 0 when it ended (the
 * caller reads the outcome), VMP_ETIMEDOUT, VMP_ENOTSUP when the server has
 * no filters for us (the caller polls instead), or another error. */
static int wait_updates(vmp_soap *s, const vmp_moref *task, const char *what, double deadline,
                        double timeout_s, char *state, size_t len, vmp_err *err)
{
    const vmp_soap_service *svc = vmp_soap_service_content(s);
    vmp_soap_reply *r = NULL;
    vmp_moref filter;
    vmp_buf args = VMP_BUF_INIT;
    vmp_buf_puts(&args, "<spec><propSet><type>Task</type><pathSet>info.state</pathSet></propSet>"
                        "<objectSet>");
    vmp_xml_moref(&args, "obj", task);
    vmp_buf_puts(&args, "</objectSet></spec><partialUpdates>false</partialUpdates>");
    int rc = args.oom ? vmp_err_set(err, VMP_ENOMEM, "out of memory") : 0;
    if (rc == 0)
        rc = vmp_soap_call(s, "CreateFilter", &svc->property_collector, args.s, &r, err);
    if (rc == 0 && vmp_xml_read_moref(vmp_soap_reply_returnval(r), &filter) != 0)
        rc = vmp_err_set(err, VMP_EPROVIDER, "CreateFilter: no filter in the answer");
    vmp_soap_reply_free(r);
    r = NULL;
    if (rc != 0) {
        vmp_buf_free(&args);
        /* A transport failure is real; anything else: fall back to polling. */
        return rc == VMP_EIO || rc == VMP_ETIMEDOUT || rc == VMP_ENOMEM ? rc : VMP_ENOTSUP;
    }
    /* A WaitForUpdatesEx must end well before the HTTP request times out. */
    long cap = vmp_soap_timeout_ms(s) / 1000 - 5;
    if (cap > 60)
        cap = 60;
    if (cap < 1)
        cap = 1;
    /* Each wait is short at first and doubles up to 16 s; when one ends
     * without news the task is read directly, so an update the server
     * failed to deliver (vcsim shares one change queue between sessions)
     * costs at most one wait. */
    char version[128] = "";
    long step = 1;
    double last_read = vmp_monotonic();
    for (;;) {
        double left = deadline - vmp_monotonic();
        if (left <= 0) {
            rc = vmp_err_set(err, VMP_ETIMEDOUT, "%s: task %s still %s after %.0f s", what,
                             task->value, state, timeout_s);
            break;
        }
        long wait = (long)(left + 0.999);
        if (wait > step)
            wait = step;
        if (wait > cap)
            wait = cap;
        vmp_buf_reset(&args);
        vmp_xml_elem(&args, "version", version);
        vmp_buf_printf(&args, "<options><maxWaitSeconds>%ld</maxWaitSeconds></options>", wait);
        rc = vmp_soap_call(s, "WaitForUpdatesEx", &svc->property_collector, vmp_buf_str(&args), &r,
                           err);
        if (rc != 0)
            break;
        xmlNode *rv = vmp_soap_reply_returnval(r);
        bool news = rv != NULL; /* no returnval: nothing changed within the wait */
        if (rv) {
            vmp_xml_child_text(rv, "version", version, sizeof version);
            update_state(rv, &filter, task, state, len);
        }
        vmp_soap_reply_free(r);
        r = NULL;
        if (strcmp(state, "success") == 0 || strcmp(state, "error") == 0)
            break;
        if (!news || vmp_monotonic() - last_read >= (double)step) {
            /* The wait ran out (or only others' updates came): look for
             * ourselves, then wait longer next time. */
            rc = task_read(s, task, what, NULL, state, len, err);
            last_read = vmp_monotonic();
            if (rc <= 0) {
                rc = 0; /* ended (or unreadable): the caller reads the outcome */
                break;
            }
            rc = 0;
            if (step < 16)
                step *= 2;
        }
    }
    vmp_err e2 = {0}; /* best effort: the filter dies with the session anyway */
    vmp_soap_call(s, "DestroyPropertyFilter", &filter, NULL, NULL, &e2);
    vmp_buf_free(&args);
    return rc;
}

int vmp_vim_task_wait(vmp_soap *s, const vmp_moref *task, const char *what, double timeout_s,
                      vmp_moref *result, vmp_err *err)
{
    double deadline = vmp_monotonic() + (timeout_s > 0 ? timeout_s : 3600);
    char state[32] = "";
    if (result)
        memset(result, 0, sizeof *result);
    /* Short tasks have often ended by the first read. */
    int rc = task_read(s, task, what, result, state, sizeof state, err);
    if (rc <= 0)
        return rc;
    rc = wait_updates(s, task, what, deadline, timeout_s, state, sizeof state, err);
    if (rc == 0) /* it ended: read the outcome */
        rc = task_read(s, task, what, result, state, sizeof state, err);
    if (rc != VMP_ENOTSUP && rc != 1)
        return rc;
    /* No property filters: poll, 50 ms doubling to 1 s. */
    for (long delay = 50;; delay = delay * 2 > 1000 ? 1000 : delay * 2) {
        double left = deadline - vmp_monotonic();
        if (left <= 0)
            return vmp_err_set(err, VMP_ETIMEDOUT, "%s: task %s still %s after %.0f s", what,
                               task->value, state, timeout_s);
        sleep_ms(delay < (long)(left * 1000) + 1 ? delay : (long)(left * 1000) + 1);
        rc = task_read(s, task, what, result, state, sizeof state, err);
        if (rc <= 0)
            return rc;
    }
}

int vmp_vim_run_task(vmp_soap *s, const char *method, const vmp_moref *self, const char *args,
                     const char *what, double timeout_s, vmp_moref *result, vmp_err *err)
{
    vmp_soap_reply *r = NULL;
    vmp_moref task;
    int rc = vmp_soap_call(s, method, self, args, &r, err);
    if (rc == 0 && vmp_xml_read_moref(vmp_soap_reply_returnval(r), &task) != 0)
        rc = vmp_err_set(err, VMP_EPROVIDER, "%s: no task in the answer", method);
    vmp_soap_reply_free(r);
    if (rc == 0)
        rc = vmp_vim_task_wait(s, &task, what, timeout_s, result, err);
    return rc;
}

/* ---- specs -------------------------------------------------------------- */

void vmp_vim_relocate_xml(vmp_buf *b, const char *elem, const vmp_vim_relocate *r)
{
    vmp_buf_printf(b, "<%s>", elem);
    /* Schema order: service, folder, datastore, diskMoveType, pool, host. */
    if (r->folder)
        vmp_xml_moref(b, "folder", r->folder);
    if (r->datastore)
        vmp_xml_moref(b, "datastore", r->datastore);
    if (r->disk_move_type)
        vmp_xml_elem(b, "diskMoveType", r->disk_move_type);
    if (r->pool)
        vmp_xml_moref(b, "pool", r->pool);
    if (r->host)
        vmp_xml_moref(b, "host", r->host);
    vmp_buf_printf(b, "</%s>", elem);
}

void vmp_vim_config_xml(vmp_buf *b, const char *elem, const vmp_vim_config *c)
{
    vmp_buf_printf(b, "<%s>", elem);
    /* Schema order: ..., annotation, ..., deviceChange, ..., extraConfig. */
    if (c->annotation)
        vmp_xml_elem(b, "annotation", c->annotation);
    if (c->device_change)
        vmp_buf_puts(b, c->device_change);
    for (size_t i = 0; i < c->n_extra; i++) {
        vmp_buf_puts(b, "<extraConfig>");
        vmp_xml_elem(b, "key", c->extra[i].key);
        vmp_buf_puts(b, "<value xsi:type=\"xsd:string\">");
        vmp_xml_escape(b, c->extra[i].value);
        vmp_buf_puts(b, "</value></extraConfig>");
    }
    vmp_buf_printf(b, "</%s>", elem);
}

void vmp_vim_clone_xml(vmp_buf *b, const char *elem, const vmp_vim_clone *c)
{
    vmp_buf_printf(b, "<%s>", elem);
    /* Schema order: location, template, config, customization, powerOn. */
    vmp_vim_relocate_xml(b, "location", &c->location);
    vmp_xml_elem_bool(b, "template", c->is_template);
    if (c->config.annotation || c->config.device_change || c->config.n_extra)
        vmp_vim_config_xml(b, "config", &c->config);
    vmp_xml_elem_bool(b, "powerOn", c->power_on);
    vmp_buf_printf(b, "</%s>", elem);
}

/* ---- devices ------------------------------------------------------------ */

static int child_int(const xmlNode *n, const char *name, int def)
{
    long long v;
    if (vmp_xml_node_ll(vmp_xml_child(n, name), &v) != 0)
        return def;
    return (int)v;
}

int vmp_vim_devices_parse(const xmlNode *val, vmp_vim_device **out, size_t *n, vmp_err *err)
{
    size_t count = 0, i = 0;
    for (xmlNode *d = vmp_xml_child(val, NULL); d; d = vmp_xml_next(d, NULL))
        count++;
    vmp_vim_device *v = calloc(count ? count : 1, sizeof *v);
    if (!v)
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    for (xmlNode *d = vmp_xml_child(val, NULL); d; d = vmp_xml_next(d, NULL), i++) {
        vmp_vim_device *e = &v[i];
        e->key = child_int(d, "key", 0);
        vmp_xml_xsi_type(d, e->xsi_type, sizeof e->xsi_type);
        xmlNode *info = vmp_xml_child(d, "deviceInfo");
        vmp_xml_child_text(info, "label", e->label, sizeof e->label);
        vmp_xml_child_text(info, "summary", e->summary, sizeof e->summary);
        e->controller_key = child_int(d, "controllerKey", -1);
        e->unit = child_int(d, "unitNumber", -1);
        e->scsi_unit = child_int(d, "scsiCtlrUnitNumber", -1);
        e->scsi_controller = e->scsi_unit >= 0;
        e->disk = strcmp(e->xsi_type, "VirtualDisk") == 0;
        e->nic = vmp_xml_child(d, "macAddress") || vmp_xml_child(d, "addressType");
        if (e->nic) {
            vmp_xml_child_text(d, "macAddress", e->mac, sizeof e->mac);
            vmp_xml_child_text(d, "addressType", e->address_type, sizeof e->address_type);
        }
        if (e->disk) {
            xmlNode *backing = vmp_xml_child(d, "backing");
            vmp_xml_child_text(backing, "fileName", e->file, sizeof e->file);
            vmp_xml_read_moref(vmp_xml_child(backing, "datastore"), &e->datastore);
            vmp_xml_child_text(backing, "diskMode", e->disk_mode, sizeof e->disk_mode);
            vmp_xml_node_bool(vmp_xml_child(backing, "thinProvisioned"), &e->thin);
            long long kb = 0;
            vmp_xml_node_ll(vmp_xml_child(d, "capacityInKB"), &kb);
            e->capacity_kb = kb;
        }
    }
    *out = v;
    *n = count;
    return 0;
}

int vmp_vim_disk_slot(const vmp_vim_device *d, size_t n, int *controller_key, int *unit)
{
    /* Controllers in key order. */
    int last = -1;
    for (;;) {
        int best = -1;
        size_t bi = 0;
        for (size_t i = 0; i < n; i++)
            if (d[i].scsi_controller && d[i].key > last && (best < 0 || d[i].key < best)) {
                best = d[i].key;
                bi = i;
            }
        if (best < 0)
            return -1;
        last = best;
        bool used[16] = {false};
        int on_it = 0;
        if (d[bi].scsi_unit >= 0 && d[bi].scsi_unit < 16)
            used[d[bi].scsi_unit] = true;
        for (size_t i = 0; i < n; i++)
            if (d[i].controller_key == best) {
                on_it++;
                if (d[i].unit >= 0 && d[i].unit < 16)
                    used[d[i].unit] = true;
            }
        if (on_it >= 15)
            continue;
        for (int u = 0; u < 16; u++)
            if (!used[u]) {
                *controller_key = best;
                *unit = u;
                return 0;
            }
    }
}

void vmp_vim_add_disk_xml(vmp_buf *b, int controller_key, int unit, long long capacity_kb,
                          const char *file)
{
    vmp_buf_puts(b, "<deviceChange><operation>add</operation><fileOperation>create</fileOperation>"
                    "<device xsi:type=\"VirtualDisk\"><key>-1</key>"
                    "<backing xsi:type=\"VirtualDiskFlatVer2BackingInfo\">");
    vmp_xml_elem(b, "fileName", file ? file : "");
    vmp_buf_puts(b, "<diskMode>persistent</diskMode><thinProvisioned>true</thinProvisioned>"
                    "</backing>");
    vmp_xml_elem_int(b, "controllerKey", controller_key);
    vmp_xml_elem_int(b, "unitNumber", unit);
    vmp_xml_elem_int(b, "capacityInKB", capacity_kb);
    vmp_buf_puts(b, "</device></deviceChange>");
}

/* A disk device with the given backing XML. */
static void disk_device(vmp_buf *b, const vmp_vim_device *d, const char *backing)
{
    vmp_buf_puts(b, "<device xsi:type=\"VirtualDisk\">");
    vmp_xml_elem_int(b, "key", d->key);
    vmp_buf_puts(b, backing);
    vmp_xml_elem_int(b, "controllerKey", d->controller_key);
    vmp_xml_elem_int(b, "unitNumber", d->unit);
    vmp_xml_elem_int(b, "capacityInKB", d->capacity_kb);
    vmp_buf_puts(b, "</device>");
}

int vmp_vim_delta_disks_xml(vmp_buf *b, const vmp_vim_device *d, size_t n,
                            const char *datastore_name)
{
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        if (!d[i].disk)
            continue;
        const char *mode = d[i].disk_mode[0] ? d[i].disk_mode : "persistent";
        /* The current backing, which becomes the parent. */
        vmp_buf old = VMP_BUF_INIT;
        vmp_xml_elem(&old, "fileName", d[i].file);
        if (vmp_moref_is_set(&d[i].datastore))
            vmp_xml_moref(&old, "datastore", &d[i].datastore);
        vmp_xml_elem(&old, "diskMode", mode);

        vmp_buf backing = VMP_BUF_INIT;
        vmp_buf_puts(&backing, "<backing xsi:type=\"VirtualDiskFlatVer2BackingInfo\">");
        vmp_buf_puts(&backing, vmp_buf_str(&old));
        vmp_buf_puts(&backing, "</backing>");
        vmp_buf_puts(b, "<deviceChange><operation>remove</operation>");
        disk_device(b, &d[i], vmp_buf_str(&backing));
        vmp_buf_puts(b, "</deviceChange>");

        /* The new top layer: a file the server names, in the same datastore,
         * whose parent is the old backing. */
        vmp_buf_reset(&backing);
        vmp_buf_puts(&backing, "<backing xsi:type=\"VirtualDiskFlatVer2BackingInfo\">");
        vmp_buf_puts(&backing, "<fileName>[");
        vmp_xml_escape(&backing, datastore_name);
        vmp_buf_puts(&backing, "]</fileName>");
        vmp_xml_elem(&backing, "diskMode", mode);
        vmp_buf_puts(&backing, "<parent xsi:type=\"VirtualDiskFlatVer2BackingInfo\">");
        vmp_buf_puts(&backing, vmp_buf_str(&old));
        vmp_buf_puts(&backing, "</parent></backing>");
        vmp_buf_puts(b, "<deviceChange><operation>add</operation>"
                        "<fileOperation>create</fileOperation>");
        disk_device(b, &d[i], vmp_buf_str(&backing));
        vmp_buf_puts(b, "</deviceChange>");
        if (old.oom || backing.oom)
            b->oom = true;
        vmp_buf_free(&old);
        vmp_buf_free(&backing);
        count++;
    }
    return count;
}

void vmp_vim_nic_network_xml(vmp_buf *b, const vmp_vim_device *d, const char *network_name,
                             const vmp_moref *network, const char *dvs_uuid,
                             const char *portgroup_key)
{
    vmp_buf_puts(b, "<deviceChange><operation>edit</operation><device xsi:type=\"");
    vmp_xml_escape(b, d->xsi_type[0] ? d->xsi_type : "VirtualEthernetCard");
    vmp_buf_puts(b, "\">");
    vmp_xml_elem_int(b, "key", d->key);
    /* The card's description as it was (vcsim needs one in an edit). */
    vmp_buf_puts(b, "<deviceInfo>");
    vmp_xml_elem(b, "label", d->label);
    vmp_xml_elem(b, "summary", d->summary);
    vmp_buf_puts(b, "</deviceInfo>");
    if (dvs_uuid) {
        vmp_buf_puts(b,
                     "<backing xsi:type=\"VirtualEthernetCardDistributedVirtualPortBackingInfo\">"
                     "<port>");
        vmp_xml_elem(b, "switchUuid", dvs_uuid);
        vmp_xml_elem(b, "portgroupKey", portgroup_key);
        vmp_buf_puts(b, "</port></backing>");
    } else {
        vmp_buf_puts(b, "<backing xsi:type=\"VirtualEthernetCardNetworkBackingInfo\">");
        vmp_xml_elem(b, "deviceName", network_name);
        if (network && vmp_moref_is_set(network))
            vmp_xml_moref(b, "network", network);
        vmp_buf_puts(b, "</backing>");
    }
    if (d->controller_key >= 0)
        vmp_xml_elem_int(b, "controllerKey", d->controller_key);
    if (d->unit >= 0)
        vmp_xml_elem_int(b, "unitNumber", d->unit);
    /* Keep the card's address: a server may treat the edit as a new card. */
    if (d->address_type[0])
        vmp_xml_elem(b, "addressType", d->address_type);
    if (d->mac[0])
        vmp_xml_elem(b, "macAddress", d->mac);
    vmp_buf_puts(b, "</device></deviceChange>");
}

/* ---- snapshots ---------------------------------------------------------- */

static int snapshot_search(const xmlNode *list_parent, const char *elem, const char *name,
                           vmp_moref *out, int depth)
{
    if (depth > 256)
        return VMP_ENOENT;
    char n[256];
    for (xmlNode *t = vmp_xml_child(list_parent, elem); t; t = vmp_xml_next(t, elem)) {
        if (vmp_xml_child_text(t, "name", n, sizeof n) == 0 && strcmp(n, name) == 0 &&
            vmp_xml_read_moref(vmp_xml_child(t, "snapshot"), out) == 0)
            return 0;
        if (snapshot_search(t, "childSnapshotList", name, out, depth + 1) == 0)
            return 0;
    }
    return VMP_ENOENT;
}

int vmp_vim_snapshot_find(const xmlNode *snapshot_val, const char *name, vmp_moref *out)
{
    if (!snapshot_val || !name)
        return VMP_ENOENT;
    return snapshot_search(snapshot_val, "rootSnapshotList", name, out, 0);
}
