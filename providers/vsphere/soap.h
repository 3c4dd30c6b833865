/*
 * soap: a vSphere (vim25) SOAP client over libcurl and libxml2.
 *
 * One vmp_soap is one logged-in session with one HTTP connection: it builds
 * the SOAP envelope around a method call, posts it, parses the answer, and
 * turns a SOAP fault into a vmp_err carrying the fault's type and text. It
 * keeps the session cookie, and when the server says the session is no
 * longer valid (a NotAuthenticated fault, or — as vcsim does for property
 * reads — an answer whose missingSet carries NotAuthenticated) it logs in
 * again once and repeats the call.
 *
 * TLS peers are verified by default (against ca_file when given, else the
 * system store); verification is off only when `insecure` is set. The
 * password is kept for re-login and never logged; request and response
 * bodies are never logged.
 *
 * A vmp_soap is used by one thread at a time (the vSphere provider keeps a
 * pool of them). Its counters (round trips, bytes, logins, faults) are
 * atomic, may also feed a shared vmp_soap_stats, and may be read from any
 * thread.
 */
#ifndef VMP_VSPHERE_SOAP_H
#define VMP_VSPHERE_SOAP_H

#include <libxml/tree.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "util.h"
#include "xml.h"

/* ---- counters ---------------------------------------------------------- */

typedef struct vmp_soap_counters {
    unsigned long long round_trips;    /* HTTP requests that got an answer */
    unsigned long long bytes_sent;     /* request headers + bodies */
    unsigned long long bytes_received; /* response headers + bodies */
    unsigned long long logins;         /* successful logins, first ones included */
    unsigned long long relogins;       /* logins made because a session expired */
    unsigned long long faults;         /* SOAP faults received */
} vmp_soap_counters;

/* Counters shared by several clients (atomic; any thread). */
typedef struct vmp_soap_stats vmp_soap_stats;
vmp_soap_stats *vmp_soap_stats_new(void);
void vmp_soap_stats_free(vmp_soap_stats *st);
void vmp_soap_stats_get(const vmp_soap_stats *st, vmp_soap_counters *out);
void vmp_soap_stats_reset(vmp_soap_stats *st);

/* ---- client ------------------------------------------------------------ */

typedef struct vmp_soap_opts {
    const char *url;      /* "https://vcenter.example.com/sdk" */
    const char *username; /* NULL: no login (only unauthenticated calls) */
    const char *password;
    const char *ca_file;     /* PEM bundle to verify the server; NULL: system store */
    bool insecure;           /* skip TLS verification (explicit configuration only) */
    long connect_timeout_ms; /* 0: 30 s */
    long timeout_ms;         /* whole request; 0: 300 s */
    vmp_soap_stats *stats;   /* also count into these; may be NULL; must outlive s */
} vmp_soap_opts;

/* What RetrieveServiceContent told us (the entry points of the API). */
typedef struct vmp_soap_service {
    vmp_moref root_folder;
    vmp_moref property_collector;
    vmp_moref view_manager;
    vmp_moref search_index;
    vmp_moref session_manager;
    vmp_moref virtual_disk_manager;
    vmp_moref file_manager;
    char api_type[32];    /* "VirtualCenter" or "HostAgent" */
    char api_version[32]; /* "6.5" */
    char full_name[160];
} vmp_soap_service;

typedef struct vmp_soap vmp_soap;
typedef struct vmp_soap_reply vmp_soap_reply;

/* Makes a client (no network traffic yet). Strings in opts are copied.
 * *out must be NULL. VMP_EINVAL for a missing or non-http(s) url. */
int vmp_soap_new(const vmp_soap_opts *opts, vmp_soap **out, vmp_err *err);
/* Frees s without logging out (see vmp_soap_logout). NULL is a no-op. */
void vmp_soap_free(vmp_soap *s);

/* Fetches the service content (once) and logs in when a user name is set
 * and the client is not logged in yet. A rejected login is VMP_EPROVIDER
 * with the server's text ("InvalidLogin: ..."). */
int vmp_soap_connect(vmp_soap *s, vmp_err *err);
bool vmp_soap_logged_in(const vmp_soap *s);
/* Ends the session on the server and forgets the cookie. */
int vmp_soap_logout(vmp_soap *s, vmp_err *err);
/* The service content, or NULL before a successful connect. */
const vmp_soap_service *vmp_soap_service_content(const vmp_soap *s);

/* Calls method on object `self` (NULL: no _this) with args, the already
 * escaped XML of the parameters after _this. On success *out (if out is
 * non-NULL; must point to NULL) receives the answer, owned by the caller.
 * A SOAP fault gives a negative code (see vmp_soap_fault_code) and err
 * "<method>: <FaultType>: <text>"; vmp_soap_last_fault() then names the
 * fault type. Transport errors are VMP_EIO / VMP_ETIMEDOUT with curl's text.
 * An expired session is renewed once, transparently. */
int vmp_soap_call(vmp_soap *s, const char *method, const vmp_moref *self, const char *args,
                  vmp_soap_reply **out, vmp_err *err);
/* The fault type of the last call ("" when it succeeded or failed without
 * a SOAP fault). Valid until the next call. */
const char *vmp_soap_last_fault(const vmp_soap *s);
/* This client's counters. */
void vmp_soap_counters_get(const vmp_soap *s, vmp_soap_counters *out);
const char *vmp_soap_url(const vmp_soap *s);
/* The whole-request timeout in milliseconds (calls that block on the
 * server, such as WaitForUpdatesEx, must ask for less). */
long vmp_soap_timeout_ms(const vmp_soap *s);

/* ---- replies ------------------------------------------------------------ */

/* The method's response element (<XxxResponse>). */
xmlNode *vmp_soap_reply_body(const vmp_soap_reply *r);
/* Its first <returnval> child, or NULL (void methods, empty answers). */
xmlNode *vmp_soap_reply_returnval(const vmp_soap_reply *r);
void vmp_soap_reply_free(vmp_soap_reply *r);

/* ---- the pure parts, exposed for tests -------------------------------- */

/* Appends the whole request document for method(self, args). */
void vmp_soap_envelope(vmp_buf *b, const char *method, const vmp_moref *self, const char *args);
/* Parses an HTTP answer. On a normal answer returns 0 and sets *out. On a
 * SOAP fault (any HTTP status) returns the fault's code, fills err and, if
 * fault is non-NULL, copies the fault type into it. A property read whose
 * missingSet reports NotAuthenticated counts as a NotAuthenticated fault.
 * A non-200 answer without a fault or an unparsable body is VMP_EPROVIDER. */
int vmp_soap_reply_parse(const char *data, size_t len, long http_status, const char *method,
                         vmp_soap_reply **out, char *fault, size_t faultlen, vmp_err *err);
/* Describes a fault element (the one carrying xsi:type, e.g. a
 * LocalizedMethodFault's <fault>) as "Type (field: value, ...)" listing its
 * simple fields. */
void vmp_soap_fault_describe(const xmlNode *fault, vmp_buf *b);
/* The vmp error code for a fault type: ManagedObjectNotFound -> VMP_ENOENT,
 * DuplicateName/AlreadyExists -> VMP_EEXIST, InvalidPowerState/InvalidState
 * -> VMP_ESTATE, NotSupported/MethodNotFound -> VMP_ENOTSUP, anything else
 * VMP_EPROVIDER. */
int vmp_soap_fault_code(const char *fault_type);
/* Parses a RetrieveServiceContent answer's returnval. */
int vmp_soap_parse_service(const xmlNode *returnval, vmp_soap_service *out, vmp_err *err);

#endif
