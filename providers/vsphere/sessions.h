/*
 * sessions: the vSphere provider's pool of logged-in SOAP sessions
 * (vmpooler's provider connection pool, reference §5.3 and §7.2).
 *
 * Up to `size` sessions are made on demand; a borrower waits at most
 * `timeout` seconds for a free one. A session logs in when first used;
 * a failed login is retried up to `max_tries` attempts, sleeping
 * attempt x `retry_factor` seconds between them (vmpooler's 10 s, 20 s).
 * An expired session renews itself inside the SOAP client, so borrowing
 * costs no round trip. Each borrow reports the gauge
 * `connection_available.provider_connection_pool.<provider>` and the timing
 * `connection_waited.provider_connection_pool.<provider>` (ms); logins
 * count `connect.open` / `connect.fail`.
 *
 * Thread-safe. Closing logs every session out.
 */
#ifndef VMP_VSPHERE_SESSIONS_H
#define VMP_VSPHERE_SESSIONS_H

#include <stdbool.h>

#include "err.h"
#include "metrics.h"
#include "soap.h"

typedef struct vmp_sessions_opts {
    vmp_soap_opts soap;   /* url, credentials, TLS, timeouts, stats */
    int size;             /* >= 1 */
    double timeout;       /* seconds to wait for a free session */
    int max_tries;        /* login attempts (>= 1) */
    double retry_factor;  /* seconds; sleep attempt x retry_factor between attempts */
    vmp_metrics *metrics; /* may be NULL */
    const char *provider; /* provider instance name, for metrics and logs */
} vmp_sessions_opts;

typedef struct vmp_sessions vmp_sessions;

int vmp_sessions_new(const vmp_sessions_opts *opts, vmp_sessions **out, vmp_err *err);
void vmp_sessions_free(vmp_sessions *sp);

/* Borrows a logged-in session (*out must be NULL). VMP_ETIMEDOUT when none
 * became free in time; the login's error when it could not log in. */
int vmp_sessions_get(vmp_sessions *sp, vmp_soap **out, vmp_err *err);
/* Gives a borrowed session back. */
void vmp_sessions_put(vmp_sessions *sp, vmp_soap *s);

/* Sessions made so far / free now. */
int vmp_sessions_created(vmp_sessions *sp);
int vmp_sessions_available(vmp_sessions *sp);

#endif
