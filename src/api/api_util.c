/*
 * api_util: per-config derived state (auth kind, compiled tag filters, rate
 * limits), pool lookups, hostname rules, random names, tag filtering.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <fcntl.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "api/api_internal.h"
#include "log.h"

/* ---- derived state ------------------------------------------------------- */

static const char *const rl_names[4] = {"global_per_ip", "authenticated", "vm_creation",
                                        "vm_deletion"};
static const long long rl_defaults[4][2] = {{100, 60}, {500, 60}, {20, 60}, {50, 60}};

static bool node_truthy(const vmp_cfg_node *n)
{
    switch (vmp_cfg_kind_of(n)) {
    case VMP_CFG_NULL:
        return false;
    case VMP_CFG_SCALAR: {
        bool b;
        if (!vmp_cfg_scalar_quoted(n) && vmp_cfg_as_bool(n, &b) == 0)
            return b;
        return true;
    }
    default:
        return true;
    }
}

int api_cfgstate_build(const vmp_config *cfg, api_cfgstate **out, vmp_err *err)
{
    int rc = 0;
    api_cfgstate *st = calloc(1, sizeof(*st));
    if (!st)
        return vmp_err_set(err, VMP_ENOMEM, "api: out of memory");
    st->cfg = cfg;
    pthread_mutex_init(&st->snap_lock, NULL);
    st->auth_configured = cfg->auth.provider != NULL || node_truthy(cfg->auth.node);
    st->auth_kind = API_AUTH_NONE;
    if (st->auth_configured) {
        const char *p = cfg->auth.provider ? cfg->auth.provider : "";
        if (!strcmp(p, "dummy")) {
            if (getenv("VMPOOLER_DEBUG")) {
                st->auth_kind = API_AUTH_DUMMY;
            } else {
                st->auth_kind = API_AUTH_REFUSE;
                vmp_log(VMP_LOG_WARN, "api",
                        "auth provider 'dummy' needs VMPOOLER_DEBUG set; every login is refused");
            }
        } else if (!strcmp(p, "ldap")) {
            st->auth_kind = API_AUTH_LDAP;
        } else {
            st->auth_kind = API_AUTH_REFUSE;
            vmp_log(VMP_LOG_WARN, "api", "unknown auth provider '%s'; every login is refused", p);
        }
    }
    for (int i = 0; i < 4; i++) {
        st->rate_limits[i][0] = rl_defaults[i][0];
        st->rate_limits[i][1] = rl_defaults[i][1];
        const vmp_cfg_node *rl = vmp_cfg_get(vmp_cfg_get(cfg->root, "rate_limits"), rl_names[i]);
        if (rl) {
            long long l = vmp_cfg_get_int(rl, "limit", rl_defaults[i][0]);
            long long p = vmp_cfg_get_int(rl, "period", rl_defaults[i][1]);
            st->rate_limits[i][0] = l >= 0 ? l : rl_defaults[i][0];
            st->rate_limits[i][1] = p > 0 ? p : rl_defaults[i][1];
        }
    }
    const vmp_cfg_node *tf = cfg->tagfilter;
    size_t ntf = vmp_cfg_kind_of(tf) == VMP_CFG_MAP ? vmp_cfg_len(tf) : 0;
    if (ntf) {
        st->tagfilters = calloc(ntf, sizeof(*st->tagfilters));
        if (!st->tagfilters) {
            rc = vmp_err_set(err, VMP_ENOMEM, "api: out of memory");
            goto out;
        }
    }
    for (size_t i = 0; i < ntf; i++) {
        const char *tag = vmp_cfg_key_at(tf, i);
        const char *re = vmp_cfg_scalar(vmp_cfg_at(tf, i));
        if (!tag || !re) {
            rc = vmp_err_set(err, VMP_EINVAL, "tagfilter: %s: expected a regular expression",
                             tag ? tag : "?");
            goto out;
        }
        int ec = 0;
        PCRE2_SIZE off = 0;
        pcre2_code *code =
            pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &off, NULL);
        if (!code) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof(msg));
            rc = vmp_err_set(err, VMP_EINVAL, "tagfilter: %s: bad regular expression '%s': %s", tag,
                             re, (const char *)msg);
            goto out;
        }
        st->tagfilters[st->n_tagfilters].tag = vmp_strdup(tag);
        st->tagfilters[st->n_tagfilters].code = code;
        st->n_tagfilters++;
        if (!st->tagfilters[st->n_tagfilters - 1].tag) {
            rc = vmp_err_set(err, VMP_ENOMEM, "api: out of memory");
            goto out;
        }
    }
    *out = st;
    st = NULL;
out:
    api_cfgstate_free(st);
    return rc;
}

void api_cfgstate_free(api_cfgstate *st)
{
    if (!st)
        return;
    api_pools_drop(st);
    pthread_mutex_destroy(&st->snap_lock);
    for (size_t i = 0; i < st->n_tagfilters; i++) {
        free(st->tagfilters[i].tag);
        pcre2_code_free(st->tagfilters[i].code);
    }
    free(st->tagfilters);
    free(st);
}

/* Ruby: value.match(re) ? captures.join : value (groups that did not take
 * part count as ""). */
char *api_tagfilter_apply(const api_cfgstate *st, const char *tag, const char *value)
{
    for (size_t i = 0; i < st->n_tagfilters; i++) {
        if (strcmp(st->tagfilters[i].tag, tag) != 0)
            continue;
        pcre2_code *code = st->tagfilters[i].code;
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
        if (!md)
            return NULL;
        char *res = NULL;
        int n = pcre2_match(code, (PCRE2_SPTR)value, strlen(value), 0, 0, md, NULL);
        if (n > 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            uint32_t groups = 0;
            pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &groups);
            vmp_buf b = VMP_BUF_INIT;
            for (uint32_t g = 1; g <= groups; g++) {
                if ((int)g >= n || ov[2 * g] == PCRE2_UNSET)
                    continue;
                vmp_buf_append(&b, value + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
            }
            res = b.s ? vmp_buf_take(&b) : vmp_strdup("");
            vmp_buf_free(&b);
        } else {
            res = vmp_strdup(value);
        }
        pcre2_match_data_free(md);
        return res;
    }
    return vmp_strdup(value);
}

/* ---- pools ------------------------------------------------------------------ */

const vmp_pool_cfg *api_pool(const vmp_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_pools; i++)
        if (!strcmp(cfg->pools[i].name, name))
            return &cfg->pools[i];
    return NULL;
}

bool api_pool_exists(const vmp_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_pools; i++) {
        if (!strcmp(cfg->pools[i].name, name))
            return true;
        if (vmp_strlist_contains(&cfg->pools[i].aliases, name))
            return true;
    }
    return false;
}

const char *api_pool_domain(const vmp_config *cfg, const char *pool)
{
    const vmp_pool_cfg *p = api_pool(cfg, pool);
    /* A pool's DNS config wins; a legacy :config: domain still serves. */
    if (p && p->domain && *p->domain)
        return p->domain;
    return cfg->global.domain;
}

/* ---- hostnames ------------------------------------------------------------------ */

const char *api_hostname_error(const char *h)
{
    if (!h || !*h)
        return "Hostname is required";
    size_t len = strlen(h);
    if (len > 253)
        return "Hostname too long";
    /* Labels of 1-63 letters, digits and '-', not starting or ending with
     * '-', separated by single dots (case-insensitive). */
    const char *p = h;
    while (1) {
        const char *e = strchr(p, '.');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == 0 || l > 63 || p[0] == '-' || p[l - 1] == '-')
            return "Invalid hostname format";
        for (size_t i = 0; i < l; i++)
            if (!isalnum((unsigned char)p[i]) && p[i] != '-')
                return "Invalid hostname format";
        if (!e)
            break;
        p = e + 1;
    }
    return NULL;
}

void api_hostname_short(const char *h, char *buf, size_t n)
{
    size_t l = strcspn(h, ".");
    if (l >= n)
        l = n - 1;
    memcpy(buf, h, l);
    buf[l] = '\0';
}

/* ---- random names ------------------------------------------------------------------ */

static void random_bytes(unsigned char *b, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = getrandom(b + got, n - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    /* getrandom cannot fail here short of a broken kernel; still, never
     * hand out predictable zeros silently. */
    for (; got < n; got++)
        b[got] = (unsigned char)(rand() & 0xff);
}

void api_random_name(char out[33])
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char b[32];
    random_bytes(b, sizeof(b));
    /* Rejection-free mapping with a negligible bias is fine for names; the
     * first character is a-y as vmpooler's (o[rand(25)]). */
    out[0] = alnum[b[0] % 25];
    for (int i = 1; i < 32; i++)
        out[i] = alnum[b[i] % 36];
    out[32] = '\0';
}

void api_uuid(char out[37])
{
    unsigned char b[16];
    random_bytes(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}
