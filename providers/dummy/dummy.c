/*
 * The dummy provider: vmpooler's dummy (reference §6) as a vmpool provider
 * class. See dummy.h for what it models and docs/writing-providers.md for
 * its options.
 */
#include "dummy.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "dummy_state.h"

/* An option that is not set. Percentages and times use it alike. */
#define OFF (-1.0)

typedef struct dummy_opts {
    char *filename;
    long long pool_size;      /* connection_pool_size (1) */
    double pool_timeout;      /* connection_pool_timeout (10 s) */
    double is_ready_timeout;  /* 5 s */
    double couldmove_percent; /* migratevm_couldmove_percent */
    double createvm_max_time, createvm_fail_percent;
    double vmready_fail_percent;
    double getvm_poweroff_percent, getvm_rename_percent;
    double migratevm_max_time, migratevm_fail_percent;
    double createdisk_max_time, createdisk_fail_percent;
    double createsnapshot_max_time, createsnapshot_fail_percent;
    double revertsnapshot_max_time, revertsnapshot_fail_percent;
    double destroyvm_max_shutdown_time, destroyvm_max_time, destroyvm_fail_percent;
} dummy_opts;

typedef struct dummy {
    vmp_provider *p;
    const char *name; /* the instance's name (owned by p) */
    char subsys[VMP_NAME_MAX + 16];
    dummy_opts o;

    pthread_mutex_t lock;   /* guards st and rng */
    pthread_cond_t changed; /* a VM's dummy_state changed or a VM went away */
    dummy_state st;
    uint64_t rng;

    /* The fake connection pool: a counting semaphore with a timed wait. */
    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cond;
    long long pool_available;
} dummy;

/* ---- small helpers ------------------------------------------------------ */

static void lock(dummy *d) { pthread_mutex_lock(&d->lock); }
static void unlock(dummy *d) { pthread_mutex_unlock(&d->lock); }

/* splitmix64: small, fast, and good enough to roll dice with. */
static uint64_t rng_next(dummy *d)
{
    uint64_t z = (d->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* 0 .. n-1 (n > 0). Caller holds the lock. */
static uint64_t rng_below(dummy *d, uint64_t n) { return rng_next(d) % n; }

/* vmpooler's fault roll: a uniform 1..100 at or below the percentage.
 * An unset percentage never fires (and draws nothing). */
static bool roll(dummy *d, double percent)
{
    if (percent < 0)
        return false;
    return (double)(1 + rng_below(d, 100)) <= percent;
}

/* vmpooler's delay: a uniform whole 1..max seconds. A fractional max (a
 * vmpool extension, handy in tests) gives a uniform real in (0, max]. An
 * unset or zero max is no delay. */
static double roll_delay(dummy *d, double max)
{
    if (max <= 0)
        return 0;
    if (max >= 1 && max < 1e15 && max == (double)(long long)max)
        return (double)(1 + rng_below(d, (uint64_t)max));
    double u = (double)(rng_next(d) >> 11) * 0x1.0p-53; /* [0, 1) */
    return max * (1.0 - u);
}

static void pause_for(double seconds)
{
    if (seconds <= 0)
        return;
    time_t whole = (time_t)seconds;
    struct timespec ts = {whole, (long)((seconds - (double)whole) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void deadline_after(double seconds, struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    if (seconds < 0)
        seconds = 0;
    if (seconds > 1e9)
        seconds = 1e9;
    time_t whole = (time_t)seconds; /* seconds >= 0: truncation is floor */
    ts->tv_sec += whole;
    ts->tv_nsec += (long)((seconds - (double)whole) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static int set_str(char **field, const char *value, vmp_err *err)
{
    if (dummy_vm_set(field, value) != 0)
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    return 0;
}

/* Writes the backing file, if there is one. Caller holds the lock, so the
 * file always shows one consistent inventory. */
static int persist(dummy *d, vmp_err *err)
{
    if (!d->o.filename)
        return 0;
    int rc = dummy_state_save_file(&d->st, d->o.filename, err);
    if (rc != 0)
        vmp_log(VMP_LOG_WARN, d->subsys, "cannot write backing file %s: %s", d->o.filename,
                err ? err->msg : vmp_strerror(rc));
    return rc;
}

static int missing_vm(dummy *d, const char *pool, const char *vm, vmp_err *err)
{
    return vmp_err_set(err, VMP_ENOENT, "VM %s does not exist in pool %s for the provider %s", vm,
                       pool, d->name);
}

static int knob_failure(vmp_err *err, const char *knob)
{
    return vmp_err_set(err, VMP_EPROVIDER, "Dummy Failure for %s", knob);
}

/* ---- the fake connection pool ------------------------------------------- */

static int conn_acquire(dummy *d, vmp_err *err)
{
    int rc = 0;
    double started = vmp_monotonic();
    pthread_mutex_lock(&d->pool_lock);
    if (d->pool_available <= 0) {
        struct timespec deadline;
        deadline_after(d->o.pool_timeout, &deadline);
        while (d->pool_available <= 0) {
            int w = pthread_cond_timedwait(&d->pool_cond, &d->pool_lock, &deadline);
            if (w == ETIMEDOUT && d->pool_available <= 0) {
                rc = vmp_err_set(err, VMP_ETIMEDOUT,
                                 "%s: no connection available after %gs (connection_pool_size "
                                 "%lld)",
                                 d->name, d->o.pool_timeout, d->o.pool_size);
                goto out;
            }
        }
    }
    d->pool_available--;
out:;
    long long available = d->pool_available;
    pthread_mutex_unlock(&d->pool_lock);
    if (rc == 0) {
        vmp_metrics *m = vmp_provider_metrics(d->p);
        vmp_metrics_gauge(m, (double)available, "connection_available.provider_connection_pool.%s",
                          d->name);
        vmp_metrics_timing(m, (vmp_monotonic() - started) * 1000.0,
                           "connection_waited.provider_connection_pool.%s", d->name);
    }
    return rc;
}

static void conn_release(dummy *d)
{
    pthread_mutex_lock(&d->pool_lock);
    d->pool_available++;
    pthread_cond_signal(&d->pool_cond);
    pthread_mutex_unlock(&d->pool_lock);
}

/* ---- options ------------------------------------------------------------ */

/* A number option: OFF when absent or null, an error when not a number. */
static int opt_number(const vmp_cfg_node *cfg, const char *key, double def, double *out,
                      const char *name, vmp_err *err)
{
    const vmp_cfg_node *n = vmp_cfg_get(cfg, key);
    *out = def;
    if (!n || vmp_cfg_kind_of(n) == VMP_CFG_NULL)
        return 0;
    if (vmp_cfg_as_double(n, out) != 0) {
        vmp_cfg_mark m = vmp_cfg_mark_of(n);
        if (m.file)
            return vmp_err_set(err, VMP_EINVAL, "%s:%d:%d: providers.%s.%s: expected a number",
                               m.file, m.line, m.column, name, key);
        return vmp_err_set(err, VMP_EINVAL, "providers.%s.%s: expected a number", name, key);
    }
    return 0;
}

static int read_options(dummy *d, vmp_err *err)
{
    const vmp_cfg_node *c = vmp_provider_config(d->p);
    dummy_opts *o = &d->o;
    const char *fn = vmp_cfg_get_str(c, "filename", NULL);
    if (fn && fn[0] && !(o->filename = strdup(fn)))
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    double size = 1;
    static const struct {
        const char *key;
        size_t off;
        double def;
    } nums[] = {
#define NUM(k, f, def) {k, offsetof(dummy_opts, f), def}
        NUM("connection_pool_timeout", pool_timeout, 10),
        NUM("is_ready_timeout", is_ready_timeout, 5),
        NUM("migratevm_couldmove_percent", couldmove_percent, OFF),
        NUM("createvm_max_time", createvm_max_time, OFF),
        NUM("createvm_fail_percent", createvm_fail_percent, OFF),
        NUM("vmready_fail_percent", vmready_fail_percent, OFF),
        NUM("getvm_poweroff_percent", getvm_poweroff_percent, OFF),
        NUM("getvm_rename_percent", getvm_rename_percent, OFF),
        NUM("migratevm_max_time", migratevm_max_time, OFF),
        NUM("migratevm_fail_percent", migratevm_fail_percent, OFF),
        NUM("createdisk_max_time", createdisk_max_time, OFF),
        NUM("createdisk_fail_percent", createdisk_fail_percent, OFF),
        NUM("createsnapshot_max_time", createsnapshot_max_time, OFF),
        NUM("createsnapshot_fail_percent", createsnapshot_fail_percent, OFF),
        NUM("revertsnapshot_max_time", revertsnapshot_max_time, OFF),
        NUM("revertsnapshot_fail_percent", revertsnapshot_fail_percent, OFF),
        NUM("destroyvm_max_shutdown_time", destroyvm_max_shutdown_time, OFF),
        NUM("destroyvm_max_time", destroyvm_max_time, OFF),
        NUM("destroyvm_fail_percent", destroyvm_fail_percent, OFF),
#undef NUM
    };
    for (size_t i = 0; i < VMP_ARRAY_LEN(nums); i++) {
        int rc = opt_number(c, nums[i].key, nums[i].def, (double *)((char *)o + nums[i].off),
                            d->name, err);
        if (rc != 0)
            return rc;
    }
    int rc = opt_number(c, "connection_pool_size", 1, &size, d->name, err);
    if (rc != 0)
        return rc;
    o->pool_size = size < 1 ? 1 : (long long)size;
    if (o->pool_timeout < 0)
        o->pool_timeout = 0;
    if (o->is_ready_timeout < 0)
        o->is_ready_timeout = 0;
    return 0;
}

/* The seed: `random_seed` from the :providers: entry, else from the provider
 * options, else from the system. */
static uint64_t initial_seed(dummy *d)
{
    const char *keys_from[] = {"config", "options"};
    const vmp_cfg_node *where[] = {vmp_provider_config(d->p), vmp_provider_options(d->p)};
    for (size_t i = 0; i < VMP_ARRAY_LEN(where); i++) {
        long long v;
        if (vmp_cfg_as_int(vmp_cfg_get(where[i], "random_seed"), &v) == 0) {
            vmp_log(VMP_LOG_DEBUG, d->subsys, "random_seed %lld (from %s)", v, keys_from[i]);
            return (uint64_t)v;
        }
    }
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = (uint64_t)(vmp_now() * 1e6) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)d;
    return seed;
}

/* ---- open / close ------------------------------------------------------- */

static void dummy_close(void *self)
{
    dummy *d = self;
    if (!d)
        return;
    dummy_state_clear(&d->st);
    pthread_cond_destroy(&d->changed);
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->pool_cond);
    pthread_mutex_destroy(&d->pool_lock);
    free(d->o.filename);
    free(d);
}

static int init_sync(dummy *d)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -1;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = 0;
    rc |= pthread_mutex_init(&d->lock, NULL);
    rc |= pthread_cond_init(&d->changed, &ca);
    rc |= pthread_mutex_init(&d->pool_lock, NULL);
    rc |= pthread_cond_init(&d->pool_cond, &ca);
    pthread_condattr_destroy(&ca);
    return rc;
}

/* A clone that was in progress when the process holding the file died was
 * never finished by anyone: like a backend that completes a clone task on
 * its own, finish it now, so the VM becomes ready instead of waiting for
 * the pending timeout. */
static size_t finish_interrupted_clones(dummy *d)
{
    size_t n = 0;
    for (dummy_pool *p = d->st.head; p; p = p->next) {
        for (dummy_vm *vm = p->head; vm; vm = vm->next) {
            if (!vm->dummy_state || strcmp(vm->dummy_state, "CLONING") != 0)
                continue;
            if (dummy_vm_set(&vm->dummy_state, "RUNNING") != 0)
                continue;
            vmp_log_vm(VMP_LOG_INFO, d->subsys, p->name, vm->name,
                       "clone interrupted by a restart: finished");
            n++;
        }
    }
    return n;
}

/* Removes "<filename>.tmp.*" files a killed process left behind while
 * writing the backing file (the file itself is always whole: it is
 * replaced by rename). */
static void remove_stale_temp_files(const dummy *d)
{
    char dir_buf[4096], base_buf[4096];
    if (vmp_strlcpy(dir_buf, d->o.filename, sizeof dir_buf) != 0 ||
        vmp_strlcpy(base_buf, d->o.filename, sizeof base_buf) != 0)
        return;
    const char *dir = dirname(dir_buf);
    char prefix[4200];
    snprintf(prefix, sizeof prefix, "%s.tmp.", basename(base_buf));
    DIR *dh = opendir(dir);
    if (!dh)
        return;
    struct dirent *e;
    while ((e = readdir(dh))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        char path[8400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0)
            vmp_log(VMP_LOG_INFO, d->subsys, "removed %s, left by an interrupted write", path);
    }
    closedir(dh);
}

static int dummy_open(vmp_provider *p, void **self, vmp_err *err)
{
    int rc = 0;
    dummy *d = calloc(1, sizeof *d);
    if (!d)
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    d->p = p;
    d->name = vmp_provider_name(p);
    snprintf(d->subsys, sizeof d->subsys, "provider.%s", d->name);
    dummy_state_init(&d->st);
    if (init_sync(d) != 0) {
        free(d);
        return vmp_err_set(err, VMP_ENOMEM, "cannot create the dummy provider's locks");
    }
    rc = read_options(d, err);
    if (rc != 0)
        goto out;
    d->rng = initial_seed(d);
    d->pool_available = d->o.pool_size;

    /* initial_state (tests), replaced by the backing file when it exists. */
    const vmp_cfg_node *initial = vmp_cfg_get(vmp_provider_options(p), "initial_state");
    if (initial) {
        rc = dummy_state_from_tree(&d->st, initial, "initial_state", d->subsys, err);
        if (rc != 0)
            goto out;
    }
    if (d->o.filename) {
        bool found = false;
        rc = dummy_state_load_file(&d->st, d->o.filename, d->subsys, &found, err);
        if (rc != 0)
            goto out;
        if (found)
            vmp_log(VMP_LOG_INFO, d->subsys, "loaded %zu VMs in %zu pools from %s", d->st.n_vms,
                    d->st.n_pools, d->o.filename);
        remove_stale_temp_files(d);
        if (found && finish_interrupted_clones(d) > 0 &&
            (rc = dummy_state_save_file(&d->st, d->o.filename, err)) != 0)
            goto out;
    }
    vmp_log(VMP_LOG_DEBUG, d->subsys, "connection pool of size %lld with timeout %gs",
            d->o.pool_size, d->o.pool_timeout);
    *self = d;
    d = NULL;
out:
    dummy_close(d);
    return rc;
}

/* ---- inventory ---------------------------------------------------------- */

static int dummy_vms_in_pool(void *self, const char *pool, vmp_strlist *out, vmp_err *err)
{
    dummy *d = self;
    int rc = conn_acquire(d, err);
    if (rc != 0)
        return rc;
    lock(d);
    dummy_pool *dp = dummy_state_pool(&d->st, pool, false);
    for (dummy_vm *vm = dp ? dp->head : NULL; vm; vm = vm->next) {
        if (vmp_strlist_push(out, vm->name) != 0) {
            rc = vmp_err_set(err, VMP_ENOMEM, "out of memory listing pool %s", pool);
            break;
        }
    }
    unlock(d);
    conn_release(d);
    return rc;
}

static void fake_ip(const char *pool, const char *vm, char *buf, size_t len)
{
    uint32_t h = 2166136261u;
    for (const char *s = pool; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    h = (h ^ '/') * 16777619u;
    for (const char *s = vm; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    snprintf(buf, len, "10.%u.%u.%u", (h >> 16) & 0xff, (h >> 8) & 0xff, 1 + (h & 0xff) % 254);
}

/* Fills out from vm. Caller holds the lock. */
static int fill_info(const dummy_vm *vm, vmp_vm_info *out, vmp_err *err)
{
    vmp_strlcpy(out->name, vm->name, sizeof out->name);
    vmp_strlcpy(out->hostname, vm->hostname ? vm->hostname : "", sizeof out->hostname);
    vmp_strlcpy(out->template_path, vm->template_name ? vm->template_name : "",
                sizeof out->template_path);
    vmp_strlcpy(out->poolname, vm->poolname ? vm->poolname : "", sizeof out->poolname);
    out->boottime = vm->boottime;
    vmp_strlcpy(out->powerstate, vm->powerstate ? vm->powerstate : "", sizeof out->powerstate);
    vmp_strlcpy(out->host, vm->vm_host ? vm->vm_host : "", sizeof out->host);
    fake_ip(vm->pool->name, vm->name, out->ip, sizeof out->ip);
    for (size_t i = 0; i < vm->snapshots.n; i++)
        if (vmp_strlist_push(&out->snapshots, vm->snapshots.v[i]) != 0)
            return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    return 0;
}

static int dummy_get_vm(void *self, const char *pool, const char *vm, vmp_vm_info *out,
                        vmp_err *err)
{
    dummy *d = self;
    int rc = conn_acquire(d, err);
    if (rc != 0)
        return rc;
    lock(d);
    dummy_vm *v = dummy_state_find(&d->st, pool, vm);
    if (!v) {
        rc = missing_vm(d, pool, vm, err);
        goto out;
    }
    bool changed = false;
    /* vmpooler's chaos knobs: a look at a VM may power it off or rename it. */
    if (v->powerstate && strcmp(v->powerstate, "PoweredOn") == 0 &&
        roll(d, d->o.getvm_poweroff_percent))
    {
        if ((rc = set_str(&v->powerstate, "PoweredOff", err)) != 0)
            goto out;
        changed = true;
        vmp_log_vm(VMP_LOG_DEBUG, d->subsys, pool, vm, "'%s' is being Dummy Powered Off", vm);
    }
    if (v->hostname && strcmp(v->hostname, v->name) == 0 && roll(d, d->o.getvm_rename_percent)) {
        char *renamed = vmp_asprintf("DUMMY%s", v->name);
        if (!renamed) {
            rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
            goto out;
        }
        free(v->hostname);
        v->hostname = renamed;
        changed = true;
        vmp_log_vm(VMP_LOG_DEBUG, d->subsys, pool, vm, "'%s' is being Dummy renamed", vm);
    }
    if (changed && (rc = persist(d, err)) != 0)
        goto out;
    if (out)
        rc = fill_info(v, out, err);
out:
    unlock(d);
    conn_release(d);
    return rc;
}

static int dummy_vm_exists(void *self, const char *pool, const char *vm, bool *exists, vmp_err *err)
{
    dummy *d = self;
    int rc = conn_acquire(d, err);
    if (rc != 0)
        return rc;
    lock(d);
    *exists = dummy_state_find(&d->st, pool, vm) != NULL;
    unlock(d);
    conn_release(d);
    return 0;
}

static int dummy_get_vm_ip_address(void *self, const char *pool, const char *vm, char *ip,
                                   size_t len, vmp_err *err)
{
    dummy *d = self;
    int rc = conn_acquire(d, err);
    if (rc != 0)
        return rc;
    lock(d);
    if (!dummy_state_find(&d->st, pool, vm))
        rc = missing_vm(d, pool, vm, err);
    else
        fake_ip(pool, vm, ip, len);
    unlock(d);
    conn_release(d);
    return rc;
}

/* ---- create / destroy --------------------------------------------------- */

static dummy_vm *new_record(const char *pool, const char *vm, const vmp_pool_cfg *pc)
{
    dummy_vm *v = dummy_vm_new(vm);
    if (!v)
        return NULL;
    int rc = 0;
    rc |= dummy_vm_set(&v->hostname, vm);
    rc |= dummy_vm_set(&v->domain, "dummy.local");
    rc |= dummy_vm_set(&v->vm_template, pc->template_path);
    rc |= dummy_vm_set(&v->template_name, pool);
    rc |= dummy_vm_set(&v->poolname, pool);
    rc |= dummy_vm_set(&v->powerstate, "PoweredOn");
    rc |= dummy_vm_set(&v->vm_host, "HOST1");
    rc |= dummy_vm_set(&v->dummy_state, "UNKNOWN");
    if (rc != 0) {
        dummy_vm_free(v);
        return NULL;
    }
    v->boottime = vmp_now();
    return v;
}

/* Removes a VM whose creation failed. Caller holds the lock. */
static void drop_record(dummy *d, const char *pool, const char *vm)
{
    dummy_vm *v = dummy_state_find(&d->st, pool, vm);
    if (v) {
        dummy_state_remove(&d->st, v);
        pthread_cond_broadcast(&d->changed);
        vmp_err ignored = {0}; /* persist logs it; the caller reports the first error */
        persist(d, &ignored);
    }
}

static int dummy_create_vm(void *self, const char *pool, const char *vm, vmp_vm_info *out,
                           vmp_err *err)
{
    dummy *d = self;
    int rc = 0;
    bool have_conn = false, inserted = false;
    const vmp_pool_cfg *pc = vmp_provider_pool_config(d->p, pool);
    if (!pc)
        return vmp_err_set(err, VMP_ENOENT, "Pool %s does not exist for the provider %s", pool,
                           d->name);

    /* The record goes in at once, so inventory sees the VM while it clones. */
    lock(d);
    if (dummy_state_find(&d->st, pool, vm)) {
        rc = vmp_err_set(err, VMP_EEXIST, "VM %s already exists in pool %s", vm, pool);
        unlock(d);
        goto out;
    }
    dummy_pool *dp = dummy_state_pool(&d->st, pool, true);
    dummy_vm *v = dp ? new_record(pool, vm, pc) : NULL;
    if (!v || dummy_state_append(&d->st, dp, v) != 0) {
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory creating VM %s", vm);
        unlock(d);
        goto out;
    }
    inserted = true;
    rc = persist(d, err);
    unlock(d);
    if (rc != 0)
        goto out;
    vmp_log_vm(VMP_LOG_DEBUG, d->subsys, pool, vm, "'%s' is being cloned from '%s'", vm,
               pc->template_path ? pc->template_path : "");

    rc = conn_acquire(d, err);
    if (rc != 0)
        goto out;
    have_conn = true;

    lock(d);
    double delay = roll_delay(d, d->o.createvm_max_time);
    bool fail = roll(d, d->o.createvm_fail_percent);
    if (delay > 0) {
        v = dummy_state_find(&d->st, pool, vm);
        if (v && (rc = set_str(&v->dummy_state, "CLONING", err)) == 0)
            rc = persist(d, err);
    }
    unlock(d);
    if (rc != 0)
        goto out;
    pause_for(delay);

    lock(d);
    v = dummy_state_find(&d->st, pool, vm);
    if (!v) {
        rc = vmp_err_set(err, VMP_ENOENT, "VM %s was destroyed while it was being created", vm);
        inserted = false;
    } else if (fail) {
        rc = knob_failure(err, "createvm_fail_percent");
    } else if ((rc = set_str(&v->dummy_state, "RUNNING", err)) == 0) {
        pthread_cond_broadcast(&d->changed);
        rc = persist(d, err);
    }
    unlock(d);
    if (rc != 0)
        goto out;

    conn_release(d);
    have_conn = false;
    /* vmpooler answers with get_vm, chaos knobs included. */
    vmp_vm_info scratch = {0};
    rc = dummy_get_vm(d, pool, vm, out ? out : &scratch, err);
    vmp_vm_info_clear(&scratch);
    inserted = rc == 0 ? false : inserted;
out:
    if (rc != 0 && inserted) {
        lock(d);
        drop_record(d, pool, vm);
        unlock(d);
    }
    if (have_conn)
        conn_release(d);
    return rc;
}

static int dummy_destroy_vm(void *self, const char *pool, const char *vm, vmp_err *err)
{
    dummy *d = self;
    int rc = conn_acquire(d, err);
    if (rc != 0)
        return rc;
    lock(d);
    dummy_vm *v = dummy_state_find(&d->st, pool, vm);
    if (!v) {
        /* Already gone counts as destroyed (vmpooler's dummy said false). */
        unlock(d);
        vmp_log_vm(VMP_LOG_DEBUG, d->subsys, pool, vm, "'%s' is already gone", vm);
        goto out;
    }
    if (!v->poolname || strcmp(v->poolname, pool) != 0) {
        rc = vmp_err_set(err, VMP_EFAILED, "VM %s belongs to pool %s, not %s", vm,
                         v->poolname ? v->poolname : "(none)", pool);
        unlock(d);
        goto out;
    }
    bool powered_on = v->powerstate && strcmp(v->powerstate, "PoweredOn") == 0;
    double shutdown = powered_on ? roll_delay(d, d->o.destroyvm_max_shutdown_time) : 0;
    unlock(d);

    if (powered_on) {
        vmp_log_vm(VMP_LOG_DEBUG, d->subsys, pool, vm, "'%s' is being shut down", vm);
        pause_for(shutdown);
        lock(d);
        v = dummy_state_find(&d->st, pool, vm);
        if (v && (rc = set_str(&v->powerstate, "PoweredOff", err)) == 0)
            rc = persist(d, err);
        unlock(d);
        if (rc != 0)
            goto out;
    }

    lock(d);
    double delay = roll_delay(d, d->o.destroyvm_max_time);
    bool fail = roll(d, d->o.destroyvm_fail_percent);
    unlock(d);
    pause_for(delay);
    if (fail) {
        rc = knob_failure(err, "destroyvm_fail_percent");
        goto out;
    }
    lock(d);
    v = dummy_state_find(&d->st, pool, vm);
    if (v) {
        dummy_state_remove(&d->st, v);
        pthread_cond_broadcast(&d->changed);
        rc = persist(d, err);
    }
    unlock(d);
out:
    conn_release(d);
    return rc;
}

/* ---- readiness ---------------------------------------------------------- */

static int dummy_vm_ready(void *self, const char *pool, const char *vm, bool *ready, vmp_err *err)
{
    dummy *d = self;
    int rc = 0;
    *ready = false;
    lock(d);
    dummy_vm *v = dummy_state_find(&d->st, pool, vm);
    if (!v || !v->poolname || strcmp(v->poolname, pool) != 0)
        goto out_locked;
    if (v->ready) {
        *ready = true;
        goto out_locked;
    }
    /* Ready means RUNNING: wait for a clone still in progress, at most
     * is_ready_timeout, woken by the state change itself (no polling). */
    if (!v->dummy_state || strcmp(v->dummy_state, "RUNNING") != 0) {
        struct timespec deadline;
        deadline_after(d->o.is_ready_timeout, &deadline);
        for (;;) {
            v = dummy_state_find(&d->st, pool, vm);
            if (!v)
                goto out_locked;
            if (v->dummy_state && strcmp(v->dummy_state, "RUNNING") == 0)
                break;
            if (pthread_cond_timedwait(&d->changed, &d->lock, &deadline) == ETIMEDOUT) {
                v = dummy_state_find(&d->st, pool, vm);
                if (v && v->dummy_state && strcmp(v->dummy_state, "RUNNING") == 0)
                    break;
                rc = vmp_err_set(err, VMP_ETIMEDOUT,
                                 "timed out after %gs waiting for VM %s to be RUNNING "
                                 "(state %s)",
                                 d->o.is_ready_timeout, vm,
                                 v && v->dummy_state ? v->dummy_state : "gone");
                goto out_locked;
            }
        }
    }
    unlock(d);

    rc = conn_acquire(d, err);
    if (rc != 0)
        return rc;
    lock(d);
    v = dummy_state_find(&d->st, pool, vm);
    if (v) {
        if (roll(d, d->o.vmready_fail_percent)) {
            rc = knob_failure(err, "vmready_fail_percent");
        } else {
            v->ready = true;
            rc = persist(d, err);
            *ready = rc == 0;
        }
    }
    unlock(d);
    conn_release(d);
    return rc;
out_locked:
    unlock(d);
    return rc;
}

/* ---- hosts and migration ------------------------------------------------ */

static int dummy_get_vm_host(void *self, const char *pool, const char *vm, char *host, size_t len,
                             vmp_err *err)
{
    dummy *d = self;
    int rc = conn_acquire(d, err);
    if (rc != 0)
        return rc;
    lock(d);
    dummy_vm *v = dummy_state_find(&d->st, pool, vm);
    if (!v)
        rc = vmp_err_set(err, VMP_ENOENT, "VM %s does not exist", vm);
    else
        vmp_strlcpy(host, v->vm_host ? v->vm_host : "", len);
    unlock(d);
    conn_release(d);
    return rc;
}

static int dummy_find_least_used_compatible_host(void *self, const char *pool, const char *vm,
                                                 char *host, size_t len, vmp_err *err)
{
    dummy *d = self;
    int rc = conn_acquire(d, err);
    if (rc != 0)
        return rc;
    lock(d);
    dummy_vm *v = dummy_state_find(&d->st, pool, vm);
    if (!v) {
        rc = vmp_err_set(err, VMP_ENOENT, "VM %s does not exist", vm);
        goto out;
    }
    const char *current = v->vm_host ? v->vm_host : "";
    if (!roll(d, d->o.couldmove_percent)) {
        vmp_strlcpy(host, current, len);
        goto out;
    }
    /* A ten-host cluster: any host but the current one. */
    char pick[16];
    do {
        snprintf(pick, sizeof pick, "HOST%u", (unsigned)(1 + rng_below(d, 10)));
    } while (strcmp(pick, current) == 0);
    vmp_strlcpy(host, pick, len);
out:
    unlock(d);
    conn_release(d);
    return rc;
}

/* The shape shared by migrate, disk and snapshot ops: find the VM, wait
 * the configured delay, roll the failure knob, then apply the change to
 * the VM (looked up again: it may have gone meanwhile). */
typedef int (*apply_fn)(dummy *d, dummy_vm *v, const void *arg, vmp_err *err);

static int delayed_change(dummy *d, const char *pool, const char *vm, double max_time,
                          double fail_percent, const char *knob, apply_fn apply, const void *arg,
                          vmp_err *err)
{
    int rc = conn_acquire(d, err);
    if (rc != 0)
        return rc;
    lock(d);
    if (!dummy_state_find(&d->st, pool, vm)) {
        rc = missing_vm(d, pool, vm, err);
        unlock(d);
        goto out;
    }
    double delay = roll_delay(d, max_time);
    bool fail = roll(d, fail_percent);
    unlock(d);
    pause_for(delay);
    if (fail) {
        rc = knob_failure(err, knob);
        goto out;
    }
    lock(d);
    dummy_vm *v = dummy_state_find(&d->st, pool, vm);
    rc = v ? apply(d, v, arg, err) : missing_vm(d, pool, vm, err);
    unlock(d);
out:
    conn_release(d);
    return rc;
}

static int apply_host(dummy *d, dummy_vm *v, const void *arg, vmp_err *err)
{
    int rc = set_str(&v->vm_host, arg, err);
    return rc ? rc : persist(d, err);
}

static int dummy_migrate_vm_to_host(void *self, const char *pool, const char *vm, const char *host,
                                    vmp_err *err)
{
    dummy *d = self;
    return delayed_change(d, pool, vm, d->o.migratevm_max_time, d->o.migratevm_fail_percent,
                          "migratevm_fail_percent", apply_host, host, err);
}

static int apply_disk(dummy *d, dummy_vm *v, const void *arg, vmp_err *err)
{
    char size[32];
    snprintf(size, sizeof size, "%d", *(const int *)arg);
    if (vmp_strlist_push(&v->disks, size) != 0)
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    return persist(d, err);
}

static int dummy_create_disk(void *self, const char *pool, const char *vm, int size_gb,
                             vmp_err *err)
{
    dummy *d = self;
    return delayed_change(d, pool, vm, d->o.createdisk_max_time, d->o.createdisk_fail_percent,
                          "createdisk_fail_percent", apply_disk, &size_gb, err);
}

static int apply_snapshot(dummy *d, dummy_vm *v, const void *arg, vmp_err *err)
{
    if (vmp_strlist_push(&v->snapshots, arg) != 0)
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    return persist(d, err);
}

static int dummy_create_snapshot(void *self, const char *pool, const char *vm, const char *snapshot,
                                 vmp_err *err)
{
    dummy *d = self;
    return delayed_change(d, pool, vm, d->o.createsnapshot_max_time,
                          d->o.createsnapshot_fail_percent, "createsnapshot_fail_percent",
                          apply_snapshot, snapshot, err);
}

static int apply_revert(dummy *d, dummy_vm *v, const void *arg, vmp_err *err)
{
    (void)d;
    if (!vmp_strlist_contains(&v->snapshots, arg))
        return vmp_err_set(err, VMP_EFAILED, "VM %s has no snapshot %s", v->name,
                           (const char *)arg);
    return 0;
}

static int dummy_revert_snapshot(void *self, const char *pool, const char *vm, const char *snapshot,
                                 vmp_err *err)
{
    dummy *d = self;
    return delayed_change(d, pool, vm, d->o.revertsnapshot_max_time,
                          d->o.revertsnapshot_fail_percent, "revertsnapshot_fail_percent",
                          apply_revert, snapshot, err);
}

/* ---- purge (a vmpool extension) ----------------------------------------- */

/* Removes the VMs of pools this instance does not serve, except pools and
 * VMs named in allowlist. */
static int dummy_purge_unconfigured_resources(void *self, const vmp_strlist *allowlist,
                                              vmp_err *err)
{
    dummy *d = self;
    vmp_strlist none = VMP_STRLIST_INIT, provided = VMP_STRLIST_INIT;
    if (!allowlist)
        allowlist = &none;
    int rc = vmp_provider_provided_pools(d->p, &provided);
    if (rc != 0) {
        vmp_strlist_clear(&provided);
        return vmp_err_set(err, rc, "out of memory");
    }
    rc = conn_acquire(d, err);
    if (rc != 0)
        goto out;
    lock(d);
    size_t purged = 0;
    for (dummy_pool *dp = d->st.head; dp; dp = dp->next) {
        if (vmp_strlist_contains(&provided, dp->name) || vmp_strlist_contains(allowlist, dp->name))
            continue;
        dummy_vm *v = dp->head;
        while (v) {
            dummy_vm *next = v->next;
            if (!vmp_strlist_contains(allowlist, v->name)) {
                vmp_log_vm(VMP_LOG_INFO, d->subsys, dp->name, v->name,
                           "purging '%s': pool %s is not configured", v->name, dp->name);
                dummy_state_remove(&d->st, v);
                purged++;
            }
            v = next;
        }
    }
    if (purged) {
        pthread_cond_broadcast(&d->changed);
        rc = persist(d, err);
    }
    unlock(d);
    conn_release(d);
out:
    vmp_strlist_clear(&provided);
    return rc;
}

/* ---- the class ---------------------------------------------------------- */

const vmp_provider_ops vmp_dummy_provider_ops = {
    .abi = VMP_PROVIDER_ABI,
    .name = "dummy",
    .open = dummy_open,
    .close = dummy_close,
    .vms_in_pool = dummy_vms_in_pool,
    .get_vm = dummy_get_vm,
    .create_vm = dummy_create_vm,
    .destroy_vm = dummy_destroy_vm,
    .vm_ready = dummy_vm_ready,
    .vm_exists = dummy_vm_exists,
    .get_vm_ip_address = dummy_get_vm_ip_address,
    .get_vm_host = dummy_get_vm_host,
    .find_least_used_compatible_host = dummy_find_least_used_compatible_host,
    .migrate_vm_to_host = dummy_migrate_vm_to_host,
    .migrate_vm = NULL, /* the engine drives get_vm_host / find_least_used / migrate_vm_to_host */
    .create_disk = dummy_create_disk,
    .create_snapshot = dummy_create_snapshot,
    .revert_snapshot = dummy_revert_snapshot,
    .create_template_delta_disks = NULL, /* the base default: nothing to do */
    .purge_unconfigured_resources = dummy_purge_unconfigured_resources,
    .tag_vm_user = NULL, /* the base default: nothing to tag */
};

int vmp_dummy_register(vmp_err *err)
{
    vmp_err e = {0};
    int rc = vmp_provider_register(&vmp_dummy_provider_ops, &e);
    if (rc == VMP_EEXIST)
        return 0;
    if (rc != 0)
        return vmp_err_set(err, rc, "%s", e.msg);
    return 0;
}

/* ---- test and inspection helpers ---------------------------------------- */

static dummy *dummy_of(vmp_provider *p)
{
    if (!p || vmp_provider_ops_of(p) != &vmp_dummy_provider_ops)
        return NULL;
    return vmp_provider_self(p);
}

int vmp_dummy_seed(vmp_provider *p, uint64_t seed)
{
    dummy *d = dummy_of(p);
    if (!d)
        return VMP_EINVAL;
    lock(d);
    d->rng = seed;
    unlock(d);
    return 0;
}

size_t vmp_dummy_vm_count(vmp_provider *p)
{
    dummy *d = dummy_of(p);
    if (!d)
        return 0;
    lock(d);
    size_t n = d->st.n_vms;
    unlock(d);
    return n;
}

static void join(const vmp_strlist *l, char *buf, size_t len)
{
    vmp_buf b = VMP_BUF_INIT;
    for (size_t i = 0; i < l->n; i++)
        vmp_buf_printf(&b, "%s%s", i ? "," : "", l->v[i]);
    vmp_strlcpy(buf, vmp_buf_str(&b), len);
    vmp_buf_free(&b);
}

int vmp_dummy_vm_field(vmp_provider *p, const char *pool, const char *vm, const char *field,
                       char *buf, size_t len, vmp_err *err)
{
    dummy *d = dummy_of(p);
    if (!d || !pool || !vm || !field || !buf || len == 0)
        return vmp_err_set(err, VMP_EINVAL, "vmp_dummy_vm_field: bad arguments");
    int rc = 0;
    buf[0] = '\0';
    lock(d);
    dummy_vm *v = dummy_state_find(&d->st, pool, vm);
    if (!v) {
        rc = missing_vm(d, pool, vm, err);
        goto out;
    }
    const struct {
        const char *name;
        const char *value;
    } strs[] = {
        {"name", v->name},
        {"hostname", v->hostname},
        {"domain", v->domain},
        {"vm_template", v->vm_template},
        {"template", v->template_name},
        {"poolname", v->poolname},
        {"powerstate", v->powerstate},
        {"vm_host", v->vm_host},
        {"dummy_state", v->dummy_state},
    };
    for (size_t i = 0; i < VMP_ARRAY_LEN(strs); i++) {
        if (strcmp(field, strs[i].name) == 0) {
            vmp_strlcpy(buf, strs[i].value ? strs[i].value : "", len);
            goto out;
        }
    }
    if (strcmp(field, "ready") == 0)
        vmp_strlcpy(buf, v->ready ? "true" : "false", len);
    else if (strcmp(field, "boottime") == 0 && v->boottime > 0)
        dummy_format_ruby_time(v->boottime, buf, len);
    else if (strcmp(field, "boottime") == 0)
        ;
    else if (strcmp(field, "snapshots") == 0)
        join(&v->snapshots, buf, len);
    else if (strcmp(field, "disks") == 0)
        join(&v->disks, buf, len);
    else
        rc = vmp_err_set(err, VMP_EINVAL, "no VM record field named '%s'", field);
out:
    unlock(d);
    return rc;
}
