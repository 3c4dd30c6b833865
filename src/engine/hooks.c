/*
 * hooks: calls into the policy hooks (engine.h), one at a time, with the
 * built-in behaviour as the fallback when a hook is absent or fails.
 * e->lock is never held here.
 */
#include <string.h>

#include "engine/engine_internal.h"
#include "log.h"

static void hook_failed(const char *hook, const char *pool, const vmp_err *err, int rc)
{
    if (rc == VMP_ENOTSUP) /* the hook has no opinion for this pool */
        return;
    vmp_log_vm(VMP_LOG_WARN, ENG_SUBSYS, pool, NULL,
               "policy hook %s failed (%s); using the built-in behaviour", hook,
               err->msg[0] ? err->msg : vmp_strerror(rc));
}

bool eng_hook_pool_size(vmp_engine *e, const char *pool, const vmp_engine_pool_stats *st,
                        long long *size)
{
    if (!e->has_hooks || !e->hooks.pool_size)
        return false;
    vmp_err err = {0};
    long long v = -1;
    pthread_mutex_lock(&e->hook_lock);
    int rc = e->hooks.pool_size(e->hooks.ud, pool, st, eng_now(e), &v, &err);
    pthread_mutex_unlock(&e->hook_lock);
    if (rc == 0 && v < 0) {
        rc = vmp_err_set(&err, VMP_EINVAL, "pool_size returned a negative size %lld", v);
    }
    if (rc != 0) {
        hook_failed("pool_size", pool, &err, rc);
        return false;
    }
    *size = v;
    return true;
}

bool eng_hook_vm_name(vmp_engine *e, const char *pool, char *name, size_t len)
{
    if (!e->has_hooks || !e->hooks.vm_name)
        return false;
    vmp_err err = {0};
    name[0] = '\0';
    pthread_mutex_lock(&e->hook_lock);
    int rc = e->hooks.vm_name(e->hooks.ud, pool, name, len, &err);
    pthread_mutex_unlock(&e->hook_lock);
    if (rc == 0) {
        name[len - 1] = '\0';
        bool ok = name[0] != '\0';
        for (const char *c = name; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.'))
                ok = false;
        if (!ok)
            rc = vmp_err_set(&err, VMP_EINVAL, "vm_name returned an unusable name '%s'", name);
    }
    if (rc != 0) {
        hook_failed("vm_name", pool, &err, rc);
        return false;
    }
    return true;
}

bool eng_hook_choose_host(vmp_engine *e, const char *pool, const char *vm, const char *current,
                          const char *proposed, char *host, size_t len)
{
    if (!e->has_hooks || !e->hooks.choose_host)
        return false;
    vmp_err err = {0};
    host[0] = '\0';
    pthread_mutex_lock(&e->hook_lock);
    int rc = e->hooks.choose_host(e->hooks.ud, pool, vm, current, proposed, host, len, &err);
    pthread_mutex_unlock(&e->hook_lock);
    if (rc == 0 && !host[0])
        rc = vmp_err_set(&err, VMP_EINVAL, "choose_host returned no host");
    if (rc != 0) {
        hook_failed("choose_host", pool, &err, rc);
        return false;
    }
    host[len - 1] = '\0';
    return true;
}

bool eng_hook_lifetime(vmp_engine *e, const char *pool, const char *vm, long long in,
                       const char *user, long long *hours)
{
    if (!e->has_hooks || !e->hooks.lifetime)
        return false;
    vmp_err err = {0};
    long long v = in;
    pthread_mutex_lock(&e->hook_lock);
    int rc = e->hooks.lifetime(e->hooks.ud, pool, vm, in, user, &v, &err);
    pthread_mutex_unlock(&e->hook_lock);
    if (rc == 0 && v <= 0 && v != in)
        rc = vmp_err_set(&err, VMP_EINVAL, "lifetime returned %lld hours", v);
    if (rc != 0) {
        hook_failed("lifetime", pool, &err, rc);
        return false;
    }
    *hours = v;
    return true;
}

void eng_event(vmp_engine *e, vmp_engine_event_kind kind, const char *pool, const char *vm,
               double duration, const char *error)
{
    if (!e->has_hooks || !e->hooks.on_event)
        return;
    vmp_engine_event ev = {
        .kind = kind,
        .pool = pool,
        .vm = vm,
        .time = eng_now(e),
        .duration = duration,
        .error = error,
    };
    pthread_mutex_lock(&e->hook_lock);
    e->hooks.on_event(e->hooks.ud, &ev);
    pthread_mutex_unlock(&e->hook_lock);
}
