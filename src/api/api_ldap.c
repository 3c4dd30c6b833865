/*
 * api_ldap: the `ldap` auth provider (reference §8.6) on OpenLDAP's libldap.
 *
 * `:auth: :ldap:` keys: host, port (389), base (string or list),
 * user_object (string or list), encryption ({method: start_tls (default) |
 * simple_tls | plain, tls_options: {ca_file, cert_file, key_file,
 * verify_mode}}), service_account_hash ({user_dn, password}).
 *
 * Every base x user_object pair is tried until one succeeds. Without a
 * service account the user binds directly as `<user_object>=<login>,<base>`.
 * With one, the service account binds, searches `(<user_object>=<login>)`
 * under base and the found entry is bound with the user's password. The
 * login is escaped (RFC 4514 in DNs, RFC 4515 in filters) and an empty
 * password is refused (it would be an anonymous bind that "succeeds").
 */
#define LDAP_DEPRECATED 0
#include <ldap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_internal.h"
#include "log.h"

/* RFC 4514 escaping of an attribute value in a DN. */
static void dn_escape(const char *s, vmp_buf *b)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool lead = i == 0 && (c == ' ' || c == '#');
        bool trail = i == n - 1 && c == ' ';
        if (lead || trail || strchr(",+\"\\<>;=", c)) {
            vmp_buf_printf(b, "\\%c", c);
        } else if (c < 0x20 || c == 0x7f) {
            vmp_buf_printf(b, "\\%02x", c);
        } else {
            vmp_buf_append(b, (const char *)&c, 1);
        }
    }
}

/* RFC 4515 escaping of an assertion value in a filter. */
static void filter_escape(const char *s, vmp_buf *b)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '*' || c == '(' || c == ')' || c == '\\' || c < 0x20)
            vmp_buf_printf(b, "\\%02x", c);
        else
            vmp_buf_append(b, (const char *)&c, 1);
    }
}

static void list_of(const vmp_cfg_node *n, vmp_strlist *out)
{
    if (vmp_cfg_kind_of(n) == VMP_CFG_SEQ) {
        for (size_t i = 0; i < vmp_cfg_len(n); i++) {
            const char *s = vmp_cfg_scalar(vmp_cfg_at(n, i));
            if (s)
                vmp_strlist_push(out, s);
        }
    } else if (vmp_cfg_scalar(n)) {
        /* Ruby's String#split: on whitespace. */
        char *copy = vmp_strdup(vmp_cfg_scalar(n));
        char *save = NULL;
        for (char *t = copy ? strtok_r(copy, " \t\n", &save) : NULL; t;
             t = strtok_r(NULL, " \t\n", &save))
            vmp_strlist_push(out, t);
        free(copy);
    }
}

static int simple_bind(LDAP *ld, const char *dn, const char *password)
{
    struct berval cred;
    cred.bv_val = (char *)password;
    cred.bv_len = strlen(password);
    return ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
}

/* Connects (and starts TLS when asked). NULL on failure (logged). */
static LDAP *ldap_open(const vmp_cfg_node *cfg)
{
    const char *host = vmp_cfg_get_str(cfg, "host", NULL);
    long long port = vmp_cfg_get_int(cfg, "port", 389);
    const vmp_cfg_node *enc = vmp_cfg_get(cfg, "encryption");
    const char *method = enc ? vmp_cfg_get_str(enc, "method", NULL) : "start_tls";
    if (!method)
        method = "plain";
    const vmp_cfg_node *tls = vmp_cfg_get(enc, "tls_options");
    bool ldaps = !strcasecmp(method, "simple_tls") || !strcasecmp(method, "ldaps");
    bool starttls = !strcasecmp(method, "start_tls") || !strcasecmp(method, "starttls");
    if (!host) {
        vmp_log(VMP_LOG_WARN, "api", "ldap: no host configured");
        return NULL;
    }
    char uri[512];
    bool v6 = strchr(host, ':') != NULL;
    snprintf(uri, sizeof(uri), "%s://%s%s%s:%lld", ldaps ? "ldaps" : "ldap", v6 ? "[" : "", host,
             v6 ? "]" : "", port);
    LDAP *ld = NULL;
    int rc = ldap_initialize(&ld, uri);
    if (rc != LDAP_SUCCESS) {
        vmp_log(VMP_LOG_WARN, "api", "ldap %s: %s", uri, ldap_err2string(rc));
        return NULL;
    }
    int version = LDAP_VERSION3;
    ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
    struct timeval tv = {10, 0};
    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
    if (ldaps || starttls) {
        const char *ca = vmp_cfg_get_str(tls, "ca_file", NULL);
        const char *cert = vmp_cfg_get_str(tls, "cert_file", NULL);
        const char *key = vmp_cfg_get_str(tls, "key_file", NULL);
        const char *verify = vmp_cfg_get_str(tls, "verify_mode", NULL);
        if (ca)
            ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, ca);
        if (cert)
            ldap_set_option(ld, LDAP_OPT_X_TLS_CERTFILE, cert);
        if (key)
            ldap_set_option(ld, LDAP_OPT_X_TLS_KEYFILE, key);
        if (verify && (!strcmp(verify, "0") || !strcasecmp(verify, "none"))) {
            int never = LDAP_OPT_X_TLS_NEVER;
            ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &never);
        }
        int zero = 0;
        ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero);
    }
    if (starttls) {
        rc = ldap_start_tls_s(ld, NULL, NULL);
        if (rc != LDAP_SUCCESS) {
            vmp_log(VMP_LOG_WARN, "api", "ldap %s: STARTTLS: %s", uri, ldap_err2string(rc));
            ldap_unbind_ext_s(ld, NULL, NULL);
            return NULL;
        }
    }
    return ld;
}

static bool try_one(const vmp_cfg_node *cfg, const char *base, const char *uobj, const char *user,
                    const char *password)
{
    const vmp_cfg_node *sa = vmp_cfg_get(cfg, "service_account_hash");
    LDAP *ld = ldap_open(cfg);
    if (!ld)
        return false;
    bool ok = false;
    vmp_buf b = VMP_BUF_INIT;
    if (!sa) {
        vmp_buf_printf(&b, "%s=", uobj);
        dn_escape(user, &b);
        vmp_buf_printf(&b, ",%s", base);
        if (!b.oom && simple_bind(ld, vmp_buf_str(&b), password) == LDAP_SUCCESS)
            ok = true;
        goto out;
    }
    const char *sdn = vmp_cfg_get_str(sa, "user_dn", NULL);
    const char *spw = vmp_cfg_get_str(sa, "password", NULL);
    if (!sdn || !spw) {
        vmp_log(VMP_LOG_WARN, "api", "ldap: service_account_hash needs user_dn and password");
        goto out;
    }
    int rc = simple_bind(ld, sdn, spw);
    if (rc != LDAP_SUCCESS) {
        vmp_log(VMP_LOG_WARN, "api", "ldap: service account bind failed: %s", ldap_err2string(rc));
        goto out;
    }
    vmp_buf_printf(&b, "(%s=", uobj);
    filter_escape(user, &b);
    vmp_buf_puts(&b, ")");
    LDAPMessage *res = NULL;
    char *attrs[] = {LDAP_NO_ATTRS, NULL};
    rc = ldap_search_ext_s(ld, base, LDAP_SCOPE_SUBTREE, vmp_buf_str(&b), attrs, 0, NULL, NULL,
                           NULL, 2, &res);
    if (rc == LDAP_SUCCESS || rc == LDAP_SIZELIMIT_EXCEEDED) {
        LDAPMessage *e = ldap_first_entry(ld, res);
        char *dn = e ? ldap_get_dn(ld, e) : NULL;
        if (dn && ldap_count_entries(ld, res) == 1 && simple_bind(ld, dn, password) == LDAP_SUCCESS)
            ok = true;
        if (dn)
            ldap_memfree(dn);
    }
    if (res)
        ldap_msgfree(res);
out:
    vmp_buf_free(&b);
    ldap_unbind_ext_s(ld, NULL, NULL);
    return ok;
}

bool api_ldap_authenticate(const vmp_cfg_node *cfg, const char *user, const char *password)
{
    if (!cfg || !user || !*user || !password || !*password)
        return false;
    vmp_strlist bases = {0}, uobjs = {0};
    list_of(vmp_cfg_get(cfg, "base"), &bases);
    list_of(vmp_cfg_get(cfg, "user_object"), &uobjs);
    bool ok = false;
    for (size_t i = 0; i < bases.n && !ok; i++)
        for (size_t j = 0; j < uobjs.n && !ok; j++)
            ok = try_one(cfg, bases.v[i], uobjs.v[j], user, password);
    vmp_strlist_clear(&bases);
    vmp_strlist_clear(&uobjs);
    return ok;
}
