/*
 * The "mock" and "mock_minimal" provider classes for tests. See
 * mock_provider.h.
 */
#include "mock_provider.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct mock_vm {
    char *pool, *name, *hostname, *host, *powerstate;
    double boottime;
    bool ready;
    int ready_after; /* checks needed; 0 = use `ready` */
    int checks;
    bool tagged;
    size_t disks;
    vmp_strlist snapshots;
    struct mock_vm *next;
} mock_vm;

typedef struct fail_rule {
    vmp_mock_op op;
    char *pool, *vm;
    int remaining; /* < 0: forever */
    int code;
    char msg[VMP_ERR_MSG_MAX];
    struct fail_rule *next;
} fail_rule;

typedef struct call_rec {
    vmp_mock_op op;
    char *pool, *vm; /* may be NULL */
} call_rec;

typedef struct active_call {
    const char *pool, *vm;
    struct active_call *next;
} active_call;

struct vmp_mock {
    vmp_provider *p;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    mock_vm *vms, *vms_tail;
    bool ready_default;
    int ready_after;
    char *least_used_host;
    vmp_clock *clock;
    fail_rule *rules;
    bool blocked[VMP_MOCK_N_OPS];
    int waiting[VMP_MOCK_N_OPS];
    unsigned counts[VMP_MOCK_N_OPS];
    call_rec *calls;
    size_t n_calls, cap_calls;
    active_call *active;
    unsigned in_flight, max_in_flight, overlaps;
};

static const char *const op_names[VMP_MOCK_N_OPS] = {
    "vms_in_pool",
    "get_vm",
    "create_vm",
    "destroy_vm",
    "vm_ready",
    "vm_exists",
    "get_vm_ip_address",
    "get_vm_host",
    "find_least_used_compatible_host",
    "migrate_vm_to_host",
    "migrate_vm",
    "create_disk",
    "create_snapshot",
    "revert_snapshot",
    "create_template_delta_disks",
    "purge_unconfigured_resources",
    "tag_vm_user",
};

const char *vmp_mock_op_name(vmp_mock_op op)
{
    return (unsigned)op < VMP_MOCK_N_OPS ? op_names[op] : "?";
}

static pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;
static int open_skips, open_failures;
static int live_instances;

void vmp_mock_fail_open(int skip, int times)
{
    pthread_mutex_lock(&global_lock);
    open_skips = skip;
    open_failures = times;
    pthread_mutex_unlock(&global_lock);
}

int vmp_mock_live_instances(void)
{
    pthread_mutex_lock(&global_lock);
    int n = live_instances;
    pthread_mutex_unlock(&global_lock);
    return n;
}

/* ---- VMs ---------------------------------------------------------------- */

static bool same(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static mock_vm *find_vm(vmp_mock *m, const char *pool, const char *vm)
{
    for (mock_vm *v = m->vms; v; v = v->next)
        if (same(v->pool, pool) && same(v->name, vm))
            return v;
    return NULL;
}

static void vm_free(mock_vm *v)
{
    if (!v)
        return;
    free(v->pool);
    free(v->name);
    free(v->hostname);
    free(v->host);
    free(v->powerstate);
    vmp_strlist_clear(&v->snapshots);
    free(v);
}

static int replace(char **field, const char *value)
{
    char *c = strdup(value ? value : "");
    if (!c)
        return VMP_ENOMEM;
    free(*field);
    *field = c;
    return 0;
}

/* Caller holds the lock. */
static mock_vm *add_vm(vmp_mock *m, const char *pool, const char *vm)
{
    mock_vm *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    if (replace(&v->pool, pool) || replace(&v->name, vm) || replace(&v->hostname, vm) ||
        replace(&v->host, "host1") || replace(&v->powerstate, "PoweredOn"))
    {
        vm_free(v);
        return NULL;
    }
    v->boottime = vmp_clock_now(m->clock ? m->clock : vmp_clock_system());
    v->ready = m->ready_default;
    v->ready_after = m->ready_after > 1 ? m->ready_after : 0;
    if (m->vms_tail)
        m->vms_tail->next = v;
    else
        m->vms = v;
    m->vms_tail = v;
    return v;
}

static bool remove_vm(vmp_mock *m, const char *pool, const char *vm)
{
    mock_vm *prev = NULL;
    for (mock_vm *v = m->vms; v; prev = v, v = v->next) {
        if (same(v->pool, pool) && same(v->name, vm)) {
            if (prev)
                prev->next = v->next;
            else
                m->vms = v->next;
            if (m->vms_tail == v)
                m->vms_tail = prev;
            vm_free(v);
            return true;
        }
    }
    return false;
}

/* ---- the call protocol -------------------------------------------------- */

/* Starts a call: records it, waits while the op is blocked, and applies
 * the failure rules. Returns 0 to go on, or the scripted failure. */
static int begin(vmp_mock *m, vmp_mock_op op, const char *pool, const char *vm, active_call *me,
                 vmp_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&m->lock);
    m->counts[op]++;
    if (m->n_calls == m->cap_calls) {
        size_t cap = m->cap_calls ? m->cap_calls * 2 : 64;
        call_rec *c = realloc(m->calls, cap * sizeof *c);
        if (c) {
            m->calls = c;
            m->cap_calls = cap;
        }
    }
    if (m->n_calls < m->cap_calls) {
        call_rec *c = &m->calls[m->n_calls++];
        c->op = op;
        c->pool = pool ? strdup(pool) : NULL;
        c->vm = vm ? strdup(vm) : NULL;
    }
    if (vm) {
        for (active_call *a = m->active; a; a = a->next)
            if (same(a->pool, pool) && same(a->vm, vm))
                m->overlaps++;
    }
    me->pool = pool;
    me->vm = vm;
    me->next = m->active;
    m->active = me;
    if (++m->in_flight > m->max_in_flight)
        m->max_in_flight = m->in_flight;

    while (m->blocked[op]) {
        m->waiting[op]++;
        pthread_cond_broadcast(&m->cond);
        pthread_cond_wait(&m->cond, &m->lock);
        m->waiting[op]--;
    }

    for (fail_rule **pr = &m->rules; *pr; pr = &(*pr)->next) {
        fail_rule *r = *pr;
        if (r->op != op || (r->pool && !same(r->pool, pool)) || (r->vm && !same(r->vm, vm)))
            continue;
        rc = vmp_err_set(err, r->code, "%s", r->msg);
        if (r->remaining > 0 && --r->remaining == 0) {
            *pr = r->next;
            free(r->pool);
            free(r->vm);
            free(r);
        }
        break;
    }
    pthread_mutex_unlock(&m->lock);
    /* Leave a window in which an overlapping call on the same VM shows. */
    sched_yield();
    return rc;
}

static int end(vmp_mock *m, active_call *me, int rc)
{
    pthread_mutex_lock(&m->lock);
    for (active_call **pa = &m->active; *pa; pa = &(*pa)->next) {
        if (*pa == me) {
            *pa = me->next;
            break;
        }
    }
    m->in_flight--;
    pthread_mutex_unlock(&m->lock);
    return rc;
}

#define BEGIN(op, pool, vm)                                                                        \
    vmp_mock *m = self;                                                                            \
    active_call me_;                                                                               \
    int rc = begin(m, op, pool, vm, &me_, err);                                                    \
    if (rc != 0)                                                                                   \
        return end(m, &me_, rc);                                                                   \
    pthread_mutex_lock(&m->lock)

#define END()                                                                                      \
    pthread_mutex_unlock(&m->lock);                                                                \
    return end(m, &me_, rc)

static int missing(const char *pool, const char *vm, vmp_err *err)
{
    return vmp_err_set(err, VMP_ENOENT, "mock: no VM %s in pool %s", vm, pool);
}

/* ---- ops ---------------------------------------------------------------- */

static int mock_open(vmp_provider *p, void **self, vmp_err *err)
{
    pthread_mutex_lock(&global_lock);
    bool fail = false;
    if (open_skips > 0)
        open_skips--;
    else if (open_failures > 0)
        fail = open_failures-- > 0;
    pthread_mutex_unlock(&global_lock);
    if (fail)
        return vmp_err_set(err, VMP_EPROVIDER, "mock: scripted open failure");
    vmp_mock *m = calloc(1, sizeof *m);
    if (!m)
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    m->p = p;
    m->ready_default = true;
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->cond, NULL);
    pthread_mutex_lock(&global_lock);
    live_instances++;
    pthread_mutex_unlock(&global_lock);
    *self = m;
    return 0;
}

static void clear_calls(vmp_mock *m)
{
    for (size_t i = 0; i < m->n_calls; i++) {
        free(m->calls[i].pool);
        free(m->calls[i].vm);
    }
    m->n_calls = 0;
}

void vmp_mock_clear_failures(vmp_mock *m)
{
    pthread_mutex_lock(&m->lock);
    while (m->rules) {
        fail_rule *r = m->rules;
        m->rules = r->next;
        free(r->pool);
        free(r->vm);
        free(r);
    }
    pthread_mutex_unlock(&m->lock);
}

static void mock_close(void *self)
{
    vmp_mock *m = self;
    if (!m)
        return;
    vmp_mock_clear_failures(m);
    while (m->vms) {
        mock_vm *v = m->vms;
        m->vms = v->next;
        vm_free(v);
    }
    clear_calls(m);
    free(m->calls);
    free(m->least_used_host);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->lock);
    free(m);
    pthread_mutex_lock(&global_lock);
    live_instances--;
    pthread_mutex_unlock(&global_lock);
}

static int mock_vms_in_pool(void *self, const char *pool, vmp_strlist *out, vmp_err *err)
{
    BEGIN(VMP_MOCK_VMS_IN_POOL, pool, NULL);
    for (mock_vm *v = m->vms; v && rc == 0; v = v->next)
        if (same(v->pool, pool) && vmp_strlist_push(out, v->name) != 0)
            rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
    END();
}

static void fill(vmp_mock *m, const mock_vm *v, vmp_vm_info *out)
{
    const vmp_pool_cfg *pc = vmp_provider_pool_config(m->p, v->pool);
    vmp_strlcpy(out->name, v->name, sizeof out->name);
    vmp_strlcpy(out->hostname, v->hostname, sizeof out->hostname);
    vmp_strlcpy(out->template_path, pc && pc->template_path ? pc->template_path : v->pool,
                sizeof out->template_path);
    vmp_strlcpy(out->poolname, v->pool, sizeof out->poolname);
    out->boottime = v->boottime;
    vmp_strlcpy(out->powerstate, v->powerstate, sizeof out->powerstate);
    vmp_strlcpy(out->host, v->host, sizeof out->host);
    unsigned n = 0;
    for (const char *s = v->name; *s; s++)
        n = n * 31 + (unsigned char)*s;
    snprintf(out->ip, sizeof out->ip, "192.0.2.%u", 1 + n % 254);
    for (size_t i = 0; i < v->snapshots.n; i++)
        vmp_strlist_push(&out->snapshots, v->snapshots.v[i]);
}

static int mock_get_vm(void *self, const char *pool, const char *vm, vmp_vm_info *out, vmp_err *err)
{
    BEGIN(VMP_MOCK_GET_VM, pool, vm);
    mock_vm *v = find_vm(m, pool, vm);
    if (!v)
        rc = missing(pool, vm, err);
    else
        fill(m, v, out);
    END();
}

static int mock_create_vm(void *self, const char *pool, const char *vm, vmp_vm_info *out,
                          vmp_err *err)
{
    BEGIN(VMP_MOCK_CREATE_VM, pool, vm);
    mock_vm *v = NULL;
    if (find_vm(m, pool, vm))
        rc = vmp_err_set(err, VMP_EEXIST, "mock: VM %s already exists in pool %s", vm, pool);
    else if (!(v = add_vm(m, pool, vm)))
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
    else if (out)
        fill(m, v, out);
    END();
}

static int mock_destroy_vm(void *self, const char *pool, const char *vm, vmp_err *err)
{
    BEGIN(VMP_MOCK_DESTROY_VM, pool, vm);
    remove_vm(m, pool, vm);
    END();
}

static int mock_vm_ready(void *self, const char *pool, const char *vm, bool *ready, vmp_err *err)
{
    BEGIN(VMP_MOCK_VM_READY, pool, vm);
    mock_vm *v = find_vm(m, pool, vm);
    if (v) {
        v->checks++;
        if (v->ready_after > 0 && v->checks >= v->ready_after)
            v->ready = true;
        *ready = v->ready;
    }
    END();
}

static int mock_vm_exists(void *self, const char *pool, const char *vm, bool *exists, vmp_err *err)
{
    BEGIN(VMP_MOCK_VM_EXISTS, pool, vm);
    *exists = find_vm(m, pool, vm) != NULL;
    END();
}

static int mock_get_vm_ip_address(void *self, const char *pool, const char *vm, char *ip,
                                  size_t len, vmp_err *err)
{
    BEGIN(VMP_MOCK_GET_VM_IP_ADDRESS, pool, vm);
    mock_vm *v = find_vm(m, pool, vm);
    if (!v) {
        rc = missing(pool, vm, err);
    } else {
        vmp_vm_info info = {0};
        fill(m, v, &info);
        vmp_strlcpy(ip, info.ip, len);
        vmp_vm_info_clear(&info);
    }
    END();
}

static int mock_get_vm_host(void *self, const char *pool, const char *vm, char *host, size_t len,
                            vmp_err *err)
{
    BEGIN(VMP_MOCK_GET_VM_HOST, pool, vm);
    mock_vm *v = find_vm(m, pool, vm);
    if (!v)
        rc = missing(pool, vm, err);
    else
        vmp_strlcpy(host, v->host, len);
    END();
}

static int mock_find_least_used(void *self, const char *pool, const char *vm, char *host,
                                size_t len, vmp_err *err)
{
    BEGIN(VMP_MOCK_FIND_LEAST_USED_COMPATIBLE_HOST, pool, vm);
    mock_vm *v = find_vm(m, pool, vm);
    if (!v)
        rc = missing(pool, vm, err);
    else
        vmp_strlcpy(host, m->least_used_host ? m->least_used_host : v->host, len);
    END();
}

static int mock_migrate_vm_to_host(void *self, const char *pool, const char *vm, const char *host,
                                   vmp_err *err)
{
    BEGIN(VMP_MOCK_MIGRATE_VM_TO_HOST, pool, vm);
    mock_vm *v = find_vm(m, pool, vm);
    if (!v)
        rc = missing(pool, vm, err);
    else if (replace(&v->host, host) != 0)
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
    END();
}

static int mock_migrate_vm(void *self, const char *pool, const char *vm, vmp_err *err)
{
    BEGIN(VMP_MOCK_MIGRATE_VM, pool, vm);
    if (!find_vm(m, pool, vm))
        rc = missing(pool, vm, err);
    END();
}

static int mock_create_disk(void *self, const char *pool, const char *vm, int size_gb, vmp_err *err)
{
    BEGIN(VMP_MOCK_CREATE_DISK, pool, vm);
    mock_vm *v = find_vm(m, pool, vm);
    if (!v)
        rc = missing(pool, vm, err);
    else
        v->disks++;
    (void)size_gb;
    END();
}

static int mock_create_snapshot(void *self, const char *pool, const char *vm, const char *snapshot,
                                vmp_err *err)
{
    BEGIN(VMP_MOCK_CREATE_SNAPSHOT, pool, vm);
    mock_vm *v = find_vm(m, pool, vm);
    if (!v)
        rc = missing(pool, vm, err);
    else if (vmp_strlist_push(&v->snapshots, snapshot) != 0)
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
    END();
}

static int mock_revert_snapshot(void *self, const char *pool, const char *vm, const char *snapshot,
                                vmp_err *err)
{
    BEGIN(VMP_MOCK_REVERT_SNAPSHOT, pool, vm);
    mock_vm *v = find_vm(m, pool, vm);
    if (!v)
        rc = missing(pool, vm, err);
    else if (!vmp_strlist_contains(&v->snapshots, snapshot))
        rc = vmp_err_set(err, VMP_EFAILED, "mock: VM %s has no snapshot %s", vm, snapshot);
    END();
}

static int mock_create_template_delta_disks(void *self, const char *pool, vmp_err *err)
{
    BEGIN(VMP_MOCK_CREATE_TEMPLATE_DELTA_DISKS, pool, NULL);
    END();
}

static int mock_purge(void *self, const vmp_strlist *allowlist, vmp_err *err)
{
    BEGIN(VMP_MOCK_PURGE_UNCONFIGURED_RESOURCES, NULL, NULL);
    (void)allowlist;
    END();
}

static int mock_tag_vm_user(void *self, const char *pool, const char *vm, vmp_err *err)
{
    BEGIN(VMP_MOCK_TAG_VM_USER, pool, vm);
    mock_vm *v = find_vm(m, pool, vm);
    if (!v)
        rc = missing(pool, vm, err);
    else
        v->tagged = true;
    END();
}

const vmp_provider_ops vmp_mock_provider_ops = {
    .abi = VMP_PROVIDER_ABI,
    .name = "mock",
    .open = mock_open,
    .close = mock_close,
    .vms_in_pool = mock_vms_in_pool,
    .get_vm = mock_get_vm,
    .create_vm = mock_create_vm,
    .destroy_vm = mock_destroy_vm,
    .vm_ready = mock_vm_ready,
    .vm_exists = mock_vm_exists,
    .get_vm_ip_address = mock_get_vm_ip_address,
    .get_vm_host = mock_get_vm_host,
    .find_least_used_compatible_host = mock_find_least_used,
    .migrate_vm_to_host = mock_migrate_vm_to_host,
    .migrate_vm = mock_migrate_vm,
    .create_disk = mock_create_disk,
    .create_snapshot = mock_create_snapshot,
    .revert_snapshot = mock_revert_snapshot,
    .create_template_delta_disks = mock_create_template_delta_disks,
    .purge_unconfigured_resources = mock_purge,
    .tag_vm_user = mock_tag_vm_user,
};

const vmp_provider_ops vmp_mock_minimal_provider_ops = {
    .abi = VMP_PROVIDER_ABI,
    .name = "mock_minimal",
    .open = mock_open,
    .close = mock_close,
    .vms_in_pool = mock_vms_in_pool,
    .get_vm = mock_get_vm,
    .create_vm = mock_create_vm,
    .destroy_vm = mock_destroy_vm,
    .vm_ready = mock_vm_ready,
};

int vmp_mock_register(vmp_err *err)
{
    const vmp_provider_ops *classes[] = {&vmp_mock_provider_ops, &vmp_mock_minimal_provider_ops};
    for (size_t i = 0; i < VMP_ARRAY_LEN(classes); i++) {
        if (vmp_provider_class_find(classes[i]->name) == classes[i])
            continue;
        int rc = vmp_provider_register(classes[i], err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int vmp_mock_open(const vmp_config *cfg, const char *name, vmp_provider **out, vmp_err *err)
{
    int rc = vmp_mock_register(err);
    if (rc != 0)
        return rc;
    return vmp_provider_open(cfg, name, NULL, NULL, out, err);
}

vmp_mock *vmp_mock_of(vmp_provider *p)
{
    const vmp_provider_ops *ops = vmp_provider_ops_of(p);
    if (ops != &vmp_mock_provider_ops && ops != &vmp_mock_minimal_provider_ops)
        return NULL;
    return vmp_provider_self(p);
}

/* ---- inventory control -------------------------------------------------- */

int vmp_mock_add_vm(vmp_mock *m, const char *pool, const char *vm)
{
    pthread_mutex_lock(&m->lock);
    int rc = find_vm(m, pool, vm) ? VMP_EEXIST : add_vm(m, pool, vm) ? 0 : VMP_ENOMEM;
    pthread_mutex_unlock(&m->lock);
    return rc;
}

bool vmp_mock_remove_vm(vmp_mock *m, const char *pool, const char *vm)
{
    pthread_mutex_lock(&m->lock);
    bool r = remove_vm(m, pool, vm);
    pthread_mutex_unlock(&m->lock);
    return r;
}

bool vmp_mock_has_vm(vmp_mock *m, const char *pool, const char *vm)
{
    pthread_mutex_lock(&m->lock);
    bool r = find_vm(m, pool, vm) != NULL;
    pthread_mutex_unlock(&m->lock);
    return r;
}

size_t vmp_mock_vm_count(vmp_mock *m, const char *pool)
{
    size_t n = 0;
    pthread_mutex_lock(&m->lock);
    for (mock_vm *v = m->vms; v; v = v->next)
        if (!pool || same(v->pool, pool))
            n++;
    pthread_mutex_unlock(&m->lock);
    return n;
}

/* Runs under the lock on one VM's string field. */
static int set_field(vmp_mock *m, const char *pool, const char *vm, size_t off, const char *value)
{
    pthread_mutex_lock(&m->lock);
    mock_vm *v = find_vm(m, pool, vm);
    int rc = !v ? VMP_ENOENT : replace((char **)((char *)v + off), value);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int vmp_mock_set_hostname(vmp_mock *m, const char *pool, const char *vm, const char *hostname)
{
    return set_field(m, pool, vm, offsetof(mock_vm, hostname), hostname);
}

int vmp_mock_set_host(vmp_mock *m, const char *pool, const char *vm, const char *host)
{
    return set_field(m, pool, vm, offsetof(mock_vm, host), host);
}

int vmp_mock_set_powerstate(vmp_mock *m, const char *pool, const char *vm, const char *state)
{
    return set_field(m, pool, vm, offsetof(mock_vm, powerstate), state);
}

int vmp_mock_set_vm_ready(vmp_mock *m, const char *pool, const char *vm, bool ready)
{
    pthread_mutex_lock(&m->lock);
    mock_vm *v = find_vm(m, pool, vm);
    if (v) {
        v->ready = ready;
        v->ready_after = 0;
    }
    pthread_mutex_unlock(&m->lock);
    return v ? 0 : VMP_ENOENT;
}

bool vmp_mock_vm_tagged(vmp_mock *m, const char *pool, const char *vm)
{
    pthread_mutex_lock(&m->lock);
    mock_vm *v = find_vm(m, pool, vm);
    bool r = v && v->tagged;
    pthread_mutex_unlock(&m->lock);
    return r;
}

size_t vmp_mock_vm_disks(vmp_mock *m, const char *pool, const char *vm)
{
    pthread_mutex_lock(&m->lock);
    mock_vm *v = find_vm(m, pool, vm);
    size_t n = v ? v->disks : 0;
    pthread_mutex_unlock(&m->lock);
    return n;
}

void vmp_mock_set_ready_default(vmp_mock *m, bool ready)
{
    pthread_mutex_lock(&m->lock);
    m->ready_default = ready;
    m->ready_after = 0;
    pthread_mutex_unlock(&m->lock);
}

void vmp_mock_set_ready_after(vmp_mock *m, int n)
{
    pthread_mutex_lock(&m->lock);
    m->ready_after = n > 1 ? n : 0;
    m->ready_default = n <= 1;
    pthread_mutex_unlock(&m->lock);
}

void vmp_mock_set_least_used_host(vmp_mock *m, const char *host)
{
    pthread_mutex_lock(&m->lock);
    free(m->least_used_host);
    m->least_used_host = host ? strdup(host) : NULL;
    pthread_mutex_unlock(&m->lock);
}

void vmp_mock_set_clock(vmp_mock *m, vmp_clock *clock)
{
    pthread_mutex_lock(&m->lock);
    m->clock = clock;
    pthread_mutex_unlock(&m->lock);
}

/* ---- failures and blocking ---------------------------------------------- */

int vmp_mock_fail(vmp_mock *m, vmp_mock_op op, const char *pool, const char *vm, int times,
                  int code, const char *msg)
{
    if ((unsigned)op >= VMP_MOCK_N_OPS || times == 0 || code >= 0)
        return VMP_EINVAL;
    fail_rule *r = calloc(1, sizeof *r);
    if (!r)
        return VMP_ENOMEM;
    r->op = op;
    r->pool = pool ? strdup(pool) : NULL;
    r->vm = vm ? strdup(vm) : NULL;
    if ((pool && !r->pool) || (vm && !r->vm)) {
        free(r->pool);
        free(r->vm);
        free(r);
        return VMP_ENOMEM;
    }
    r->remaining = times;
    r->code = code;
    vmp_strlcpy(r->msg, msg ? msg : "mock: scripted failure", sizeof r->msg);
    pthread_mutex_lock(&m->lock);
    fail_rule **pr = &m->rules;
    while (*pr)
        pr = &(*pr)->next;
    *pr = r;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

void vmp_mock_block(vmp_mock *m, vmp_mock_op op)
{
    pthread_mutex_lock(&m->lock);
    m->blocked[op] = true;
    pthread_mutex_unlock(&m->lock);
}

void vmp_mock_unblock(vmp_mock *m, vmp_mock_op op)
{
    pthread_mutex_lock(&m->lock);
    m->blocked[op] = false;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

bool vmp_mock_wait_blocked(vmp_mock *m, vmp_mock_op op, int n, double timeout_s)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    /* (No libm here: the support library links before it.) */
    time_t whole = (time_t)timeout_s;
    deadline.tv_sec += whole;
    deadline.tv_nsec += (long)((timeout_s - (double)whole) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&m->lock);
    while (m->waiting[op] < n) {
        if (pthread_cond_timedwait(&m->cond, &m->lock, &deadline) == ETIMEDOUT)
            break;
    }
    bool ok = m->waiting[op] >= n;
    pthread_mutex_unlock(&m->lock);
    return ok;
}

/* ---- call records ------------------------------------------------------- */

unsigned vmp_mock_calls(vmp_mock *m, vmp_mock_op op)
{
    pthread_mutex_lock(&m->lock);
    unsigned n = (unsigned)op < VMP_MOCK_N_OPS ? m->counts[op] : 0;
    pthread_mutex_unlock(&m->lock);
    return n;
}

unsigned vmp_mock_calls_for(vmp_mock *m, vmp_mock_op op, const char *vm)
{
    unsigned n = 0;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n_calls; i++)
        if (m->calls[i].op == op && same(m->calls[i].vm, vm))
            n++;
    pthread_mutex_unlock(&m->lock);
    return n;
}

int vmp_mock_call_log(vmp_mock *m, vmp_strlist *out)
{
    int rc = 0;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n_calls && rc == 0; i++) {
        const call_rec *c = &m->calls[i];
        char *line = c->vm     ? vmp_asprintf("%s %s %s", op_names[c->op], c->pool, c->vm)
                     : c->pool ? vmp_asprintf("%s %s", op_names[c->op], c->pool)
                               : vmp_asprintf("%s", op_names[c->op]);
        rc = line ? vmp_strlist_push_owned(out, line) : VMP_ENOMEM;
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

unsigned vmp_mock_overlaps(vmp_mock *m)
{
    pthread_mutex_lock(&m->lock);
    unsigned n = m->overlaps;
    pthread_mutex_unlock(&m->lock);
    return n;
}

unsigned vmp_mock_max_in_flight(vmp_mock *m)
{
    pthread_mutex_lock(&m->lock);
    unsigned n = m->max_in_flight;
    pthread_mutex_unlock(&m->lock);
    return n;
}

void vmp_mock_reset_calls(vmp_mock *m)
{
    pthread_mutex_lock(&m->lock);
    clear_calls(m);
    memset(m->counts, 0, sizeof m->counts);
    m->overlaps = 0;
    m->max_in_flight = m->in_flight;
    pthread_mutex_unlock(&m->lock);
}

/* ---- hand-built configurations ------------------------------------------ */

vmp_config *vmp_mock_config_new(void)
{
    vmp_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return NULL;
    cfg->root = vmp_cfg_map_new();
    cfg->path = strdup("<test>");
    if (!cfg->root || !cfg->path) {
        vmp_mock_config_free(cfg);
        return NULL;
    }
    return cfg;
}

/* The map under root[key], made when absent. */
static vmp_cfg_node *section(vmp_config *cfg, const char *key)
{
    vmp_cfg_node *n = vmp_cfg_get_mut(cfg->root, key);
    if (!n) {
        n = vmp_cfg_map_new();
        if (!n || vmp_cfg_map_set(cfg->root, key, n) != 0)
            return NULL;
    }
    return n;
}

static int set_scalar(vmp_cfg_node *map, const char *key, const char *value)
{
    vmp_cfg_node *n = vmp_cfg_scalar_new(value);
    if (!n)
        return VMP_ENOMEM;
    return vmp_cfg_map_set(map, key, n);
}

int vmp_mock_config_add_pool(vmp_config *cfg, const char *name, const char *provider,
                             const char *template_path)
{
    vmp_pool_cfg *v = realloc(cfg->pools, (cfg->n_pools + 1) * sizeof *v);
    if (!v)
        return VMP_ENOMEM;
    cfg->pools = v;
    vmp_pool_cfg *pc = &v[cfg->n_pools];
    memset(pc, 0, sizeof *pc);
    vmp_cfg_node *pools = section(cfg, "pools_by_name");
    vmp_cfg_node *node = vmp_mock_map("name", name, NULL);
    int rc = node ? 0 : VMP_ENOMEM;
    if (rc == 0 && provider)
        rc = set_scalar(node, "provider", provider);
    if (rc == 0 && template_path)
        rc = set_scalar(node, "template", template_path);
    if (rc == 0 && !pools)
        rc = VMP_ENOMEM;
    if (rc != 0) {
        vmp_cfg_free(node);
        return rc;
    }
    if (vmp_cfg_map_set(pools, name, node) != 0)
        return VMP_ENOMEM;
    pc->name = strdup(name);
    pc->provider = provider ? strdup(provider) : NULL;
    pc->template_path = template_path ? strdup(template_path) : NULL;
    pc->node = node;
    pc->size = 1;
    cfg->n_pools++;
    if (!pc->name || (provider && !pc->provider) || (template_path && !pc->template_path))
        return VMP_ENOMEM;
    return 0;
}

int vmp_mock_config_add_provider(vmp_config *cfg, const char *name, const char *provider_class,
                                 vmp_cfg_node *options)
{
    vmp_cfg_node *providers = section(cfg, "providers");
    if (!options)
        options = vmp_cfg_map_new();
    if (!providers || !options) {
        vmp_cfg_free(options);
        return VMP_ENOMEM;
    }
    if (provider_class) {
        if (set_scalar(options, "provider_class", provider_class) != 0) {
            vmp_cfg_free(options);
            return VMP_ENOMEM;
        }
    }
    if (vmp_cfg_map_set(providers, name, options) != 0)
        return VMP_ENOMEM;
    vmp_provider_cfg *v = realloc(cfg->providers, (cfg->n_providers + 1) * sizeof *v);
    if (!v)
        return VMP_ENOMEM;
    cfg->providers = v;
    vmp_provider_cfg *pc = &v[cfg->n_providers];
    memset(pc, 0, sizeof *pc);
    pc->name = strdup(name);
    pc->provider_class = strdup(provider_class ? provider_class : name);
    pc->node = options;
    cfg->n_providers++;
    if (!pc->name || !pc->provider_class)
        return VMP_ENOMEM;
    return 0;
}

void vmp_mock_config_free(vmp_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_pools; i++) {
        free(cfg->pools[i].name);
        free(cfg->pools[i].provider);
        free(cfg->pools[i].template_path);
    }
    free(cfg->pools);
    for (size_t i = 0; i < cfg->n_providers; i++) {
        free(cfg->providers[i].name);
        free(cfg->providers[i].provider_class);
    }
    free(cfg->providers);
    vmp_cfg_free(cfg->root);
    free(cfg->path);
    free(cfg);
}

vmp_cfg_node *vmp_mock_map(const char *key, ...)
{
    vmp_cfg_node *map = vmp_cfg_map_new();
    if (!map)
        return NULL;
    va_list ap;
    va_start(ap, key);
    for (const char *k = key; k; k = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        vmp_cfg_node *n = v ? vmp_cfg_scalar_new(v) : vmp_cfg_null_new();
        if (!n || vmp_cfg_map_set(map, k, n) != 0) {
            vmp_cfg_free(map);
            map = NULL;
            break;
        }
    }
    va_end(ap);
    return map;
}
