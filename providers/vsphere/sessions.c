#include "sessions.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

struct vmp_sessions {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    vmp_soap **all;  /* every session made, size of them at most */
    vmp_soap **idle; /* the free ones (a stack) */
    int size, created, n_idle;
    double timeout;
    int max_tries;
    double retry_factor;
    vmp_metrics *metrics;
    char *provider;
    /* copies of the strings of soap opts */
    char *url, *username, *password, *ca_file;
    vmp_soap_opts soap;
};

static void free_str(char *s, bool secret)
{
    if (s && secret)
        explicit_bzero(s, strlen(s));
    free(s);
}

int vmp_sessions_new(const vmp_sessions_opts *opts, vmp_sessions **out, vmp_err *err)
{
    vmp_sessions *sp = calloc(1, sizeof *sp);
    if (!sp)
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    sp->size = opts->size > 0 ? opts->size : 1;
    sp->timeout = opts->timeout > 0 ? opts->timeout : 60;
    sp->max_tries = opts->max_tries > 0 ? opts->max_tries : 1;
    sp->retry_factor = opts->retry_factor >= 0 ? opts->retry_factor : 0;
    sp->metrics = opts->metrics;
    sp->soap = opts->soap;
    sp->provider = strdup(opts->provider ? opts->provider : "vsphere");
    sp->url = vmp_strdup(opts->soap.url);
    sp->username = vmp_strdup(opts->soap.username);
    sp->password = vmp_strdup(opts->soap.password);
    sp->ca_file = vmp_strdup(opts->soap.ca_file);
    sp->all = calloc((size_t)sp->size, sizeof *sp->all);
    sp->idle = calloc((size_t)sp->size, sizeof *sp->idle);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sp->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&sp->mu, NULL);
    if (!sp->provider || (opts->soap.url && !sp->url) || (opts->soap.username && !sp->username) ||
        (opts->soap.password && !sp->password) || (opts->soap.ca_file && !sp->ca_file) ||
        !sp->all || !sp->idle)
    {
        vmp_sessions_free(sp);
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    }
    sp->soap.url = sp->url;
    sp->soap.username = sp->username;
    sp->soap.password = sp->password;
    sp->soap.ca_file = sp->ca_file;
    *out = sp;
    return 0;
}

void vmp_sessions_free(vmp_sessions *sp)
{
    if (!sp)
        return;
    for (int i = 0; sp->all && i < sp->size; i++) {
        if (!sp->all[i])
            continue;
        if (vmp_soap_logged_in(sp->all[i])) {
            vmp_err e = {0};
            if (vmp_soap_logout(sp->all[i], &e) != 0)
                vmp_log(VMP_LOG_DEBUG, "vsphere", "logout: %s", e.msg);
        }
        vmp_soap_free(sp->all[i]);
    }
    free(sp->all);
    free(sp->idle);
    pthread_mutex_destroy(&sp->mu);
    pthread_cond_destroy(&sp->cv);
    free(sp->provider);
    free(sp->url);
    free(sp->username);
    free_str(sp->password, true);
    free(sp->ca_file);
    free(sp);
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Logs s in, with vmpooler's retries. */
static int connect_session(vmp_sessions *sp, vmp_soap *s, vmp_err *err)
{
    int rc = 0;
    for (int attempt = 1; attempt <= sp->max_tries; attempt++) {
        rc = vmp_soap_connect(s, err);
        if (rc == 0) {
            vmp_metrics_increment(sp->metrics, "connect.open");
            return 0;
        }
        vmp_metrics_increment(sp->metrics, "connect.fail");
        /* A rejected user name or password will not get better by waiting. */
        if (strcmp(vmp_soap_last_fault(s), "InvalidLogin") == 0 || rc == VMP_ENOMEM)
            break;
        if (attempt < sp->max_tries) {
            double pause = attempt * sp->retry_factor;
            vmp_log(VMP_LOG_WARN, "vsphere",
                    "provider %s: connecting failed (attempt %d of %d), "
                    "retrying in %.0f s: %s",
                    sp->provider, attempt, sp->max_tries, pause, err ? err->msg : "");
            sleep_s(pause);
        }
    }
    return rc;
}

int vmp_sessions_get(vmp_sessions *sp, vmp_soap **out, vmp_err *err)
{
    int rc = 0;
    vmp_soap *s = NULL;
    bool make = false;
    double t0 = vmp_monotonic();
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)sp->timeout;
    deadline.tv_nsec += (long)((sp->timeout - (double)(time_t)sp->timeout) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }

    pthread_mutex_lock(&sp->mu);
    while (sp->n_idle == 0 && sp->created >= sp->size) {
        int w = pthread_cond_timedwait(&sp->cv, &sp->mu, &deadline);
        if (w == ETIMEDOUT && sp->n_idle == 0) {
            pthread_mutex_unlock(&sp->mu);
            return vmp_err_set(err, VMP_ETIMEDOUT,
                               "no vSphere session became free within %.0f s "
                               "(connection_pool_size %d)",
                               sp->timeout, sp->size);
        }
    }
    if (sp->n_idle > 0) {
        s = sp->idle[--sp->n_idle];
    } else {
        make = true;
        sp->created++; /* reserve the slot */
    }
    int avail = sp->n_idle + (sp->size - sp->created);
    pthread_mutex_unlock(&sp->mu);
    vmp_metrics_gauge(sp->metrics, avail, "connection_available.provider_connection_pool.%s",
                      sp->provider);
    vmp_metrics_timing(sp->metrics, (vmp_monotonic() - t0) * 1000,
                       "connection_waited.provider_connection_pool.%s", sp->provider);

    if (make) {
        rc = vmp_soap_new(&sp->soap, &s, err);
        pthread_mutex_lock(&sp->mu);
        if (rc != 0) {
            sp->created--;
            pthread_cond_signal(&sp->cv);
        } else {
            for (int i = 0; i < sp->size; i++)
                if (!sp->all[i]) {
                    sp->all[i] = s;
                    break;
                }
        }
        pthread_mutex_unlock(&sp->mu);
        if (rc != 0)
            return rc;
    }
    if (!vmp_soap_logged_in(s) && sp->username) {
        rc = connect_session(sp, s, err);
        if (rc != 0) {
            vmp_sessions_put(sp, s);
            return rc;
        }
    }
    *out = s;
    return 0;
}

void vmp_sessions_put(vmp_sessions *sp, vmp_soap *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&sp->mu);
    sp->idle[sp->n_idle++] = s;
    pthread_cond_signal(&sp->cv);
    pthread_mutex_unlock(&sp->mu);
}

int vmp_sessions_created(vmp_sessions *sp)
{
    pthread_mutex_lock(&sp->mu);
    int n = sp->created;
    pthread_mutex_unlock(&sp->mu);
    return n;
}

int vmp_sessions_available(vmp_sessions *sp)
{
    pthread_mutex_lock(&sp->mu);
    int n = sp->n_idle + (sp->size - sp->created);
    pthread_mutex_unlock(&sp->mu);
    return n;
}
