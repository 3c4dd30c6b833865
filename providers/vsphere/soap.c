#include "soap.h"

#include <curl/curl.h>
#include <libxml/parser.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#define SOAP_ACTION "SOAPAction: \"urn:vim25/6.5\""
#define MAX_ANSWER (256u * 1024u * 1024u) /* refuse answers larger than this */

struct vmp_soap_stats {
    atomic_ullong round_trips, bytes_sent, bytes_received, logins, relogins, faults;
};

struct vmp_soap_reply {
    xmlDoc *doc;
    xmlNode *body;
};

struct vmp_soap {
    CURL *curl;
    struct curl_slist *headers;
    char *url, *username, *password, *ca_file;
    bool insecure;
    long timeout_ms;
    struct vmp_soap_stats own;
    struct vmp_soap_stats *shared;
    bool have_service;
    vmp_soap_service svc;
    bool logged_in;
    char last_fault[64];
    char curl_err[CURL_ERROR_SIZE];
    vmp_buf answer;
    bool answer_too_big;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    xmlInitParser();
}

/* ---- counters ---------------------------------------------------------- */

vmp_soap_stats *vmp_soap_stats_new(void)
{
    vmp_soap_stats *st = calloc(1, sizeof *st);
    return st;
}

void vmp_soap_stats_free(vmp_soap_stats *st) { free(st); }

void vmp_soap_stats_get(const vmp_soap_stats *st, vmp_soap_counters *out)
{
    memset(out, 0, sizeof *out);
    if (!st)
        return;
    vmp_soap_stats *m = (vmp_soap_stats *)st;
    out->round_trips = atomic_load(&m->round_trips);
    out->bytes_sent = atomic_load(&m->bytes_sent);
    out->bytes_received = atomic_load(&m->bytes_received);
    out->logins = atomic_load(&m->logins);
    out->relogins = atomic_load(&m->relogins);
    out->faults = atomic_load(&m->faults);
}

void vmp_soap_stats_reset(vmp_soap_stats *st)
{
    if (!st)
        return;
    atomic_store(&st->round_trips, 0);
    atomic_store(&st->bytes_sent, 0);
    atomic_store(&st->bytes_received, 0);
    atomic_store(&st->logins, 0);
    atomic_store(&st->relogins, 0);
    atomic_store(&st->faults, 0);
}

/* Adds to the client's own counters and the shared ones. */
#define COUNT(s, field, n)                                                                         \
    do {                                                                                           \
        atomic_fetch_add(&(s)->own.field, (unsigned long long)(n));                                \
        if ((s)->shared)                                                                           \
            atomic_fetch_add(&(s)->shared->field, (unsigned long long)(n));                        \
    } while (0)

void vmp_soap_counters_get(const vmp_soap *s, vmp_soap_counters *out)
{
    vmp_soap_stats_get(&s->own, out);
}

/* ---- envelope ---------------------------------------------------------- */

void vmp_soap_envelope(vmp_buf *b, const char *method, const vmp_moref *self, const char *args)
{
    vmp_buf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                    "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\""
                    " xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\""
                    " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"
                    "<soapenv:Body>");
    vmp_buf_printf(b, "<%s xmlns=\"urn:vim25\">", method);
    if (self && vmp_moref_is_set(self))
        vmp_xml_moref(b, "_this", self);
    if (args)
        vmp_buf_puts(b, args);
    vmp_buf_printf(b, "</%s></soapenv:Body></soapenv:Envelope>", method);
}

/* ---- faults ------------------------------------------------------------ */

int vmp_soap_fault_code(const char *t)
{
    if (!t || !*t)
        return VMP_EPROVIDER;
    if (strcmp(t, "ManagedObjectNotFound") == 0)
        return VMP_ENOENT;
    if (strcmp(t, "DuplicateName") == 0 || strcmp(t, "AlreadyExists") == 0)
        return VMP_EEXIST;
    if (strcmp(t, "InvalidPowerState") == 0 || strcmp(t, "InvalidState") == 0)
        return VMP_ESTATE;
    if (strcmp(t, "NotSupported") == 0 || strcmp(t, "MethodNotFound") == 0)
        return VMP_ENOTSUP;
    return VMP_EPROVIDER;
}

/* The type of a fault element: its xsi:type, else its name without a
 * trailing "Fault" (<InvalidLoginFault> -> InvalidLogin). */
static void fault_type_of(const xmlNode *n, char *buf, size_t len)
{
    vmp_xml_xsi_type(n, buf, len);
    if (buf[0] || !n)
        return;
    vmp_strlcpy(buf, (const char *)n->name, len);
    size_t l = strlen(buf);
    if (l > 5 && strcmp(buf + l - 5, "Fault") == 0)
        buf[l - 5] = '\0';
}

/* Appends "field: value" for the simple fields of a fault, skipping any
 * whose text is `skip` (already said). Returns how many were written. */
static int fault_fields(const xmlNode *fault, vmp_buf *b, const char *skip)
{
    int n = 0;
    for (xmlNode *c = vmp_xml_child(fault, NULL); c && n < 6; c = vmp_xml_next(c, NULL)) {
        if (vmp_xml_child(c, NULL))
            continue; /* nested structure (faultCause, faultMessage): not a simple field */
        char text[160];
        vmp_xml_text(c, text, sizeof text);
        if (!text[0] || (skip && strcmp(text, skip) == 0))
            continue;
        vmp_buf_printf(b, "%s%s: %s", n ? ", " : "", (const char *)c->name, text);
        n++;
    }
    return n;
}

void vmp_soap_fault_describe(const xmlNode *fault, vmp_buf *b)
{
    char type[64];
    fault_type_of(fault, type, sizeof type);
    vmp_buf_puts(b, type[0] ? type : "unknown fault");
    vmp_buf tmp = VMP_BUF_INIT;
    if (fault && fault_fields(fault, &tmp, NULL) > 0)
        vmp_buf_printf(b, " (%s)", vmp_buf_str(&tmp));
    vmp_buf_free(&tmp);
}

/* Fills err from a <soapenv:Fault> element and returns the code. */
static int soap_fault(const xmlNode *f, const char *method, char *fault, size_t faultlen,
                      vmp_err *err)
{
    char text[200], type[64];
    vmp_xml_child_text(f, "faultstring", text, sizeof text);
    xmlNode *detail = vmp_xml_child(vmp_xml_child(f, "detail"), NULL);
    if (detail) {
        fault_type_of(detail, type, sizeof type);
    } else {
        /* No detail: keep the faultcode ("ServerFaultCode") as the type. */
        vmp_xml_child_text(f, "faultcode", type, sizeof type);
        char *colon = strrchr(type, ':');
        if (colon)
            memmove(type, colon + 1, strlen(colon));
    }
    if (fault && faultlen)
        vmp_strlcpy(fault, type, faultlen);
    vmp_buf fields = VMP_BUF_INIT;
    if (detail)
        fault_fields(detail, &fields, text);
    int code = vmp_soap_fault_code(type);
    const char *fs = vmp_buf_str(&fields);
    if (text[0] && fs[0])
        vmp_err_set(err, code, "%s: %s: %s (%s)", method, type, text, fs);
    else if (text[0])
        vmp_err_set(err, code, "%s: %s: %s", method, type, text);
    else if (fs[0])
        vmp_err_set(err, code, "%s: %s (%s)", method, type, fs);
    else
        vmp_err_set(err, code, "%s: %s", method, type);
    vmp_buf_free(&fields);
    return code;
}

/* True when a property read answer reports NotAuthenticated in a missingSet
 * (vcsim answers an unauthenticated RetrievePropertiesEx with HTTP 200 and
 * one such entry per property instead of a fault). */
static bool missing_not_authenticated(const xmlNode *body)
{
    for (xmlNode *rv = vmp_xml_child(body, "returnval"); rv; rv = vmp_xml_next(rv, "returnval")) {
        /* RetrievePropertiesEx: returnval/objects/missingSet;
         * RetrieveProperties: returnval/missingSet. */
        for (xmlNode *o = vmp_xml_child(rv, NULL); o; o = vmp_xml_next(o, NULL)) {
            xmlNode *ms = vmp_xml_is(o, "missingSet") ? o : vmp_xml_child(o, "missingSet");
            for (; ms; ms = vmp_xml_next(ms, "missingSet")) {
                char type[64];
                vmp_xml_xsi_type(vmp_xml_path(ms, "fault/fault"), type, sizeof type);
                if (strcmp(type, "NotAuthenticated") == 0)
                    return true;
            }
        }
    }
    return false;
}

/* A printable, short excerpt of a non-XML answer for an error message. */
static void excerpt(const char *data, size_t len, char *buf, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j + 1 < n && j < 80; i++) {
        unsigned char c = (unsigned char)data[i];
        buf[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : ' ';
    }
    buf[j] = '\0';
}

int vmp_soap_reply_parse(const char *data, size_t len, long http_status, const char *method,
                         vmp_soap_reply **out, char *fault, size_t faultlen, vmp_err *err)
{
    int rc = 0;
    xmlDoc *doc = NULL;
    if (fault && faultlen)
        fault[0] = '\0';
    pthread_once(&global_once, global_init);
    if (len > 0 && len < (size_t)0x7fffffff)
        doc = xmlReadMemory(data, (int)len, "answer.xml", NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    xmlNode *body = vmp_xml_is(root, "Envelope") ? vmp_xml_child(root, "Body") : NULL;
    if (!body) {
        char ex[96];
        excerpt(data, len, ex, sizeof ex);
        if (http_status != 200)
            rc = vmp_err_set(err, VMP_EPROVIDER, "%s: HTTP %ld: %s", method, http_status,
                             ex[0] ? ex : "(no SOAP answer)");
        else
            rc = vmp_err_set(err, VMP_EPROVIDER, "%s: malformed SOAP answer: %s", method,
                             ex[0] ? ex : "(empty)");
        goto out;
    }
    xmlNode *first = vmp_xml_child(body, NULL);
    if (vmp_xml_is(first, "Fault")) {
        rc = soap_fault(first, method, fault, faultlen, err);
        goto out;
    }
    if (http_status != 200) {
        rc = vmp_err_set(err, VMP_EPROVIDER, "%s: HTTP %ld without a SOAP fault", method,
                         http_status);
        goto out;
    }
    if (!first) {
        rc = vmp_err_set(err, VMP_EPROVIDER, "%s: empty SOAP body", method);
        goto out;
    }
    if (missing_not_authenticated(first)) {
        if (fault && faultlen)
            vmp_strlcpy(fault, "NotAuthenticated", faultlen);
        rc = vmp_err_set(err, VMP_EPROVIDER, "%s: NotAuthenticated (reported in missingSet)",
                         method);
        goto out;
    }
    if (out) {
        vmp_soap_reply *r = calloc(1, sizeof *r);
        if (!r) {
            rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
            goto out;
        }
        r->doc = doc;
        r->body = first;
        doc = NULL;
        *out = r;
    }
out:
    xmlFreeDoc(doc);
    return rc;
}

xmlNode *vmp_soap_reply_body(const vmp_soap_reply *r) { return r ? r->body : NULL; }

xmlNode *vmp_soap_reply_returnval(const vmp_soap_reply *r)
{
    return r ? vmp_xml_child(r->body, "returnval") : NULL;
}

void vmp_soap_reply_free(vmp_soap_reply *r)
{
    if (!r)
        return;
    xmlFreeDoc(r->doc);
    free(r);
}

int vmp_soap_parse_service(const xmlNode *rv, vmp_soap_service *out, vmp_err *err)
{
    memset(out, 0, sizeof *out);
    static const struct {
        const char *name;
        size_t off;
        bool required;
    } refs[] = {
        {"rootFolder", offsetof(vmp_soap_service, root_folder), true},
        {"propertyCollector", offsetof(vmp_soap_service, property_collector), true},
        {"viewManager", offsetof(vmp_soap_service, view_manager), false},
        {"searchIndex", offsetof(vmp_soap_service, search_index), true},
        {"sessionManager", offsetof(vmp_soap_service, session_manager), true},
        {"virtualDiskManager", offsetof(vmp_soap_service, virtual_disk_manager), false},
        {"fileManager", offsetof(vmp_soap_service, file_manager), false},
    };
    for (size_t i = 0; i < VMP_ARRAY_LEN(refs); i++) {
        vmp_moref *ref = (vmp_moref *)((char *)out + refs[i].off);
        if (vmp_xml_read_moref(vmp_xml_child(rv, refs[i].name), ref) != 0 && refs[i].required)
            return vmp_err_set(err, VMP_EPROVIDER, "RetrieveServiceContent: the answer has no %s",
                               refs[i].name);
    }
    xmlNode *about = vmp_xml_child(rv, "about");
    vmp_xml_child_text(about, "apiType", out->api_type, sizeof out->api_type);
    vmp_xml_child_text(about, "apiVersion", out->api_version, sizeof out->api_version);
    vmp_xml_child_text(about, "fullName", out->full_name, sizeof out->full_name);
    return 0;
}

/* ---- client ------------------------------------------------------------ */

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    vmp_soap *s = ud;
    size_t n = size * nmemb;
    if (s->answer.len + n > MAX_ANSWER) {
        s->answer_too_big = true;
        return 0;
    }
    vmp_buf_append(&s->answer, ptr, n);
    return s->answer.oom ? 0 : n;
}

int vmp_soap_new(const vmp_soap_opts *opts, vmp_soap **out, vmp_err *err)
{
    int rc = 0;
    vmp_soap *s = NULL;
    if (!opts || !opts->url ||
        (strncasecmp(opts->url, "https://", 8) != 0 && strncasecmp(opts->url, "http://", 7) != 0))
    {
        rc = vmp_err_set(err, VMP_EINVAL, "vSphere URL must start with https:// or http://: %s",
                         opts && opts->url ? opts->url : "(none)");
        goto out;
    }
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        rc = vmp_err_set(err, VMP_EIO, "curl_global_init: %s", curl_easy_strerror(global_rc));
        goto out;
    }
    s = calloc(1, sizeof *s);
    if (!s)
        goto oom;
    s->shared = opts->stats;
    s->insecure = opts->insecure;
    s->url = strdup(opts->url);
    s->username = vmp_strdup(opts->username);
    s->password = vmp_strdup(opts->password ? opts->password : "");
    s->ca_file = vmp_strdup(opts->ca_file);
    s->curl = curl_easy_init();
    if (!s->url || (opts->username && !s->username) || !s->password ||
        (opts->ca_file && !s->ca_file) || !s->curl)
        goto oom;
    static const char *const headers[] = {
        "Content-Type: text/xml; charset=utf-8", SOAP_ACTION,
        "Expect:", /* no 100-continue round trip */
    };
    for (size_t i = 0; i < VMP_ARRAY_LEN(headers); i++) {
        struct curl_slist *h = curl_slist_append(s->headers, headers[i]);
        if (!h)
            goto oom;
        s->headers = h;
    }

    CURL *c = s->curl;
    long ct = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 30000;
    long to = opts->timeout_ms > 0 ? opts->timeout_ms : 300000;
    curl_easy_setopt(c, CURLOPT_URL, s->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ct);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, to);
    s->timeout_ms = to;
    curl_easy_setopt(c, CURLOPT_COOKIEFILE, ""); /* cookie engine on, nothing loaded */
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s->curl_err);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "vmpool/" VMP_VERSION);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, ""); /* whatever curl can decode */
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    if (s->insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
        if (s->ca_file)
            curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file);
    }
    *out = s;
    s = NULL;
    goto out;
oom:
    rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
out:
    vmp_soap_free(s);
    return rc;
}

void vmp_soap_free(vmp_soap *s)
{
    if (!s)
        return;
    if (s->curl)
        curl_easy_cleanup(s->curl);
    curl_slist_free_all(s->headers);
    if (s->password) {
        explicit_bzero(s->password, strlen(s->password));
        free(s->password);
    }
    free(s->url);
    free(s->username);
    free(s->ca_file);
    vmp_buf_free(&s->answer);
    free(s);
}

const char *vmp_soap_url(const vmp_soap *s) { return s->url; }
long vmp_soap_timeout_ms(const vmp_soap *s) { return s->timeout_ms; }
const char *vmp_soap_last_fault(const vmp_soap *s) { return s->last_fault; }
bool vmp_soap_logged_in(const vmp_soap *s) { return s->logged_in; }

const vmp_soap_service *vmp_soap_service_content(const vmp_soap *s)
{
    return s->have_service ? &s->svc : NULL;
}

/* One HTTP round trip and its parse; no session renewal. */
static int call_once(vmp_soap *s, const char *method, const vmp_moref *self, const char *args,
                     vmp_soap_reply **out, vmp_err *err)
{
    int rc = 0;
    vmp_buf req = VMP_BUF_INIT;
    s->last_fault[0] = '\0';
    vmp_soap_envelope(&req, method, self, args);
    if (req.oom) {
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
        goto out;
    }
    vmp_buf_reset(&s->answer);
    s->answer_too_big = false;
    s->curl_err[0] = '\0';
    curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, req.s);
    curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req.len);
    double t0 = vmp_monotonic();
    CURLcode cc = curl_easy_perform(s->curl);
    /* The request is gone (or failed): don't keep a pointer to our buffer. */
    curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, NULL);
    if (cc != CURLE_OK) {
        const char *why = s->curl_err[0] ? s->curl_err : curl_easy_strerror(cc);
        if (s->answer_too_big)
            rc = vmp_err_set(err, VMP_EPROVIDER, "%s: answer larger than %u bytes", method,
                             MAX_ANSWER);
        else if (s->answer.oom)
            rc = vmp_err_set(err, VMP_ENOMEM, "out of memory reading the answer to %s", method);
        else
            rc = vmp_err_set(err, cc == CURLE_OPERATION_TIMEDOUT ? VMP_ETIMEDOUT : VMP_EIO,
                             "%s: %s", method, why);
        vmp_log(VMP_LOG_DEBUG, "vsphere.soap", "%s failed after %.0f ms: %s", method,
                (vmp_monotonic() - t0) * 1000, why);
        goto out;
    }
    long status = 0, req_hdr = 0, resp_hdr = 0;
    curl_off_t down = 0;
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(s->curl, CURLINFO_REQUEST_SIZE, &req_hdr);
    curl_easy_getinfo(s->curl, CURLINFO_HEADER_SIZE, &resp_hdr);
    curl_easy_getinfo(s->curl, CURLINFO_SIZE_DOWNLOAD_T, &down);
    COUNT(s, round_trips, 1);
    COUNT(s, bytes_sent, (unsigned long long)req_hdr + req.len);
    COUNT(s, bytes_received, (unsigned long long)resp_hdr + (unsigned long long)down);
    vmp_log(VMP_LOG_DEBUG, "vsphere.soap", "%s: HTTP %ld, %zu bytes out, %zu in, %.0f ms", method,
            status, req.len, s->answer.len, (vmp_monotonic() - t0) * 1000);
    rc = vmp_soap_reply_parse(s->answer.s ? s->answer.s : "", s->answer.len, status, method, out,
                              s->last_fault, sizeof s->last_fault, err);
    if (s->last_fault[0])
        COUNT(s, faults, 1);
out:
    vmp_buf_free(&req);
    return rc;
}

static int login(vmp_soap *s, vmp_err *err)
{
    vmp_buf args = VMP_BUF_INIT;
    vmp_xml_elem(&args, "userName", s->username);
    vmp_xml_elem(&args, "password", s->password);
    int rc = args.oom ? vmp_err_set(err, VMP_ENOMEM, "out of memory") : 0;
    /* Start from a clean cookie jar: a server may refuse a Login on a
     * session cookie it still knows. */
    if (rc == 0)
        curl_easy_setopt(s->curl, CURLOPT_COOKIELIST, "ALL");
    s->logged_in = false;
    if (rc == 0)
        rc = call_once(s, "Login", &s->svc.session_manager, args.s, NULL, err);
    if (args.s)
        explicit_bzero(args.s, args.len);
    vmp_buf_free(&args);
    if (rc == 0) {
        s->logged_in = true;
        COUNT(s, logins, 1);
    } else {
        vmp_err_prefix(err, "login to %s as %s", s->url, s->username);
    }
    return rc;
}

int vmp_soap_connect(vmp_soap *s, vmp_err *err)
{
    int rc = 0;
    vmp_soap_reply *r = NULL;
    if (!s->have_service) {
        vmp_moref si;
        vmp_moref_set(&si, "ServiceInstance", "ServiceInstance");
        rc = call_once(s, "RetrieveServiceContent", &si, NULL, &r, err);
        if (rc == 0)
            rc = vmp_soap_parse_service(vmp_soap_reply_returnval(r), &s->svc, err);
        if (rc != 0)
            goto out;
        s->have_service = true;
    }
    if (s->username && !s->logged_in)
        rc = login(s, err);
out:
    vmp_soap_reply_free(r);
    return rc;
}

int vmp_soap_logout(vmp_soap *s, vmp_err *err)
{
    int rc = 0;
    if (s->logged_in)
        rc = call_once(s, "Logout", &s->svc.session_manager, NULL, NULL, err);
    s->logged_in = false;
    curl_easy_setopt(s->curl, CURLOPT_COOKIELIST, "ALL");
    return rc;
}

int vmp_soap_call(vmp_soap *s, const char *method, const vmp_moref *self, const char *args,
                  vmp_soap_reply **out, vmp_err *err)
{
    int rc = 0;
    if (!s->have_service || (s->username && !s->logged_in)) {
        rc = vmp_soap_connect(s, err);
        if (rc != 0)
            return rc;
    }
    rc = call_once(s, method, self, args, out, err);
    if (rc != 0 && strcmp(s->last_fault, "NotAuthenticated") == 0 && s->username &&
        strcmp(method, "Login") != 0 && strcmp(method, "Logout") != 0)
    {
        /* The session expired (or was ended on the server): log in again and
         * repeat the call once. A NotAuthenticated call did nothing, so
         * repeating it is safe. */
        vmp_log(VMP_LOG_INFO, "vsphere.soap", "session on %s expired during %s; logging in again",
                s->url, method);
        rc = login(s, err);
        if (rc == 0) {
            COUNT(s, relogins, 1);
            rc = call_once(s, method, self, args, out, err);
        }
    }
    return rc;
}
