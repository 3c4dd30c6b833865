/*
 * api_json: JSON output byte-for-byte as Ruby's JSON.pretty_generate writes
 * it (clients and vmpooler's own tests compare bodies as text), request body
 * parsing, and config nodes as JSON.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_internal.h"

/* ---- output ------------------------------------------------------------- */

static void put_indent(vmp_buf *b, int depth)
{
    static const char spaces[] = "                                                  ";
    size_t n = (size_t)depth * 2;
    while (n > 0) {
        size_t k = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;
        vmp_buf_append(b, spaces, k);
        n -= k;
    }
}

static void put_string(vmp_buf *b, const char *s, size_t len)
{
    vmp_buf_append(b, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char ubuf[8];
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            if (c < 0x20) {
                snprintf(ubuf, sizeof(ubuf), "\\u%04x", c);
                esc = ubuf;
            }
        }
        if (esc) {
            vmp_buf_append(b, s + start, i - start);
            vmp_buf_puts(b, esc);
            start = i + 1;
        }
    }
    vmp_buf_append(b, s + start, len - start);
    vmp_buf_append(b, "\"", 1);
}

/* Ruby's Float#to_s: the shortest digits that read back as the same double,
 * fixed notation for decimal exponents -4..15, else "d.de+XX". */
static void put_real(vmp_buf *b, double v)
{
    if (!isfinite(v)) {
        vmp_buf_puts(b, "null");
        return;
    }
    if (v == 0) {
        vmp_buf_puts(b, signbit(v) ? "-0.0" : "0.0");
        return;
    }
    char tmp[64];
    int p;
    for (p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof(tmp), "%.*e", p - 1, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    /* tmp = "[-]d.ddde[+-]XX" */
    const char *s = tmp;
    bool neg = false;
    if (*s == '-') {
        neg = true;
        s++;
    }
    char digits[32];
    size_t nd = 0;
    const char *e = strchr(s, 'e');
    for (const char *q = s; q < e && nd < sizeof(digits) - 1; q++)
        if (isdigit((unsigned char)*q))
            digits[nd++] = *q;
    digits[nd] = '\0';
    while (nd > 1 && digits[nd - 1] == '0')
        digits[--nd] = '\0';
    int exp10 = atoi(e + 1);
    if (neg)
        vmp_buf_append(b, "-", 1);
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 >= 0) {
            for (int i = 0; i <= exp10; i++)
                vmp_buf_append(b, (size_t)i < nd ? &digits[i] : "0", 1);
            vmp_buf_append(b, ".", 1);
            if ((size_t)exp10 + 1 < nd)
                vmp_buf_puts(b, digits + exp10 + 1);
            else
                vmp_buf_append(b, "0", 1);
        } else {
            vmp_buf_puts(b, "0.");
            for (int i = 0; i < -exp10 - 1; i++)
                vmp_buf_append(b, "0", 1);
            vmp_buf_puts(b, digits);
        }
    } else {
        vmp_buf_append(b, digits, 1);
        vmp_buf_append(b, ".", 1);
        vmp_buf_puts(b, nd > 1 ? digits + 1 : "0");
        vmp_buf_printf(b, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    }
}

static void pretty(const json_t *v, vmp_buf *b, int depth)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (json_object_size(v) == 0) {
            vmp_buf_puts(b, "{}");
            return;
        }
        vmp_buf_puts(b, "{\n");
        const char *key;
        json_t *val;
        bool first = true;
        /* jansson keeps insertion order, as Ruby's Hash does. */
        json_object_foreach((json_t *)v, key, val)
        {
            if (!first)
                vmp_buf_puts(b, ",\n");
            first = false;
            put_indent(b, depth + 1);
            put_string(b, key, strlen(key));
            vmp_buf_puts(b, ": ");
            pretty(val, b, depth + 1);
        }
        vmp_buf_append(b, "\n", 1);
        put_indent(b, depth);
        vmp_buf_append(b, "}", 1);
        return;
    }
    case JSON_ARRAY: {
        if (json_array_size(v) == 0) {
            vmp_buf_puts(b, "[]");
            return;
        }
        vmp_buf_puts(b, "[\n");
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i > 0)
                vmp_buf_puts(b, ",\n");
            put_indent(b, depth + 1);
            pretty(json_array_get(v, i), b, depth + 1);
        }
        vmp_buf_append(b, "\n", 1);
        put_indent(b, depth);
        vmp_buf_append(b, "]", 1);
        return;
    }
    case JSON_STRING:
        put_string(b, json_string_value(v), json_string_length(v));
        return;
    case JSON_INTEGER:
        vmp_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return;
    case JSON_REAL:
        put_real(b, json_real_value(v));
        return;
    case JSON_TRUE:
        vmp_buf_puts(b, "true");
        return;
    case JSON_FALSE:
        vmp_buf_puts(b, "false");
        return;
    case JSON_NULL:
    default:
        vmp_buf_puts(b, "null");
        return;
    }
}

void api_json_pretty(const json_t *v, vmp_buf *b)
{
    if (!v) {
        vmp_buf_puts(b, "null");
        return;
    }
    pretty(v, b, 0);
}

json_t *api_jstr(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    /* Not valid UTF-8 (data written by someone else): keep the ASCII bytes,
     * replace the others with U+FFFD. */
    vmp_buf b = VMP_BUF_INIT;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x80)
            vmp_buf_append(&b, (const char *)p, 1);
        else
            vmp_buf_puts(&b, "\xEF\xBF\xBD");
    }
    j = json_string(vmp_buf_str(&b));
    vmp_buf_free(&b);
    return j;
}

/* ---- input --------------------------------------------------------------- */

json_t *api_json_parse(const char *body, size_t len, char *msg, size_t msgn)
{
    json_error_t jerr;
    json_t *v = json_loadb(body ? body : "", len, JSON_DECODE_ANY, &jerr);
    if (!v && msg)
        snprintf(msg, msgn, "%s at line %d column %d", jerr.text, jerr.line, jerr.column);
    return v;
}

int api_json_depth(const json_t *v)
{
    if (json_is_object(v)) {
        if (json_object_size(v) == 0)
            return 1;
        int m = 0;
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            int d = api_json_depth(x);
            if (d > m)
                m = d;
        }
        return m + 1;
    }
    if (json_is_array(v)) {
        if (json_array_size(v) == 0)
            return 1;
        int m = 0;
        for (size_t i = 0; i < json_array_size(v); i++) {
            int d = api_json_depth(json_array_get(v, i));
            if (d > m)
                m = d;
        }
        return m + 1;
    }
    return 0;
}

/* ---- config nodes ---------------------------------------------------------- */

bool api_is_secret_key(const char *key)
{
    static const char *const words[] = {"password",   "passwd",      "secret",  "token",
                                        "credential", "private_key", "api_key", "apikey",
                                        "auth_key",   "access_key"};
    if (!key)
        return false;
    for (size_t i = 0; i < VMP_ARRAY_LEN(words); i++)
        if (strcasestr(key, words[i]))
            return true;
    return false;
}

static bool all_digits(const char *s)
{
    if (*s == '+' || *s == '-')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s) && *s != '_')
            return false;
    return true;
}

/* A plain (unquoted) YAML scalar as Ruby's Psych would type it. */
static json_t *typed_scalar(const char *s)
{
    static const char *const trues[] = {"true", "True", "TRUE", "yes", "Yes",
                                        "YES",  "on",   "On",   "ON"};
    static const char *const falses[] = {"false", "False", "FALSE", "no", "No",
                                         "NO",    "off",   "Off",   "OFF"};
    if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
        return json_null();
    for (size_t i = 0; i < VMP_ARRAY_LEN(trues); i++)
        if (!strcmp(s, trues[i]))
            return json_true();
    for (size_t i = 0; i < VMP_ARRAY_LEN(falses); i++)
        if (!strcmp(s, falses[i]))
            return json_false();
    if (all_digits(s) && !strchr(s, '_')) {
        long long v;
        if (vmp_parse_long(s, &v) == 0)
            return json_integer(v);
    }
    /* Floats: digits with one '.' or an exponent. */
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (isdigit((unsigned char)*p) || (*p == '.' && isdigit((unsigned char)p[1]))) {
        char *end = NULL;
        double d = strtod(s, &end);
        if (end && !*end && (strchr(s, '.') || strchr(s, 'e') || strchr(s, 'E')) &&
            !strchr(s, 'x') && !strchr(s, 'X'))
            return json_real(d);
    }
    return api_jstr(s);
}

json_t *api_json_from_node(const vmp_cfg_node *n, bool redact)
{
    switch (vmp_cfg_kind_of(n)) {
    case VMP_CFG_SCALAR: {
        const char *s = vmp_cfg_scalar(n);
        if (vmp_cfg_scalar_quoted(n) || vmp_cfg_scalar_is_symbol(n))
            return api_jstr(s);
        return typed_scalar(s);
    }
    case VMP_CFG_MAP: {
        json_t *o = json_object();
        if (!o)
            return NULL;
        for (size_t i = 0; i < vmp_cfg_len(n); i++) {
            const char *k = vmp_cfg_key_at(n, i);
            json_t *v;
            if (redact && api_is_secret_key(k) && vmp_cfg_kind_of(vmp_cfg_at(n, i)) != VMP_CFG_NULL)
                v = json_string("<redacted>");
            else
                v = api_json_from_node(vmp_cfg_at(n, i), redact);
            if (!v || json_object_set_new(o, k ? k : "", v) != 0) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    case VMP_CFG_SEQ: {
        json_t *a = json_array();
        if (!a)
            return NULL;
        for (size_t i = 0; i < vmp_cfg_len(n); i++) {
            json_t *v = api_json_from_node(vmp_cfg_at(n, i), redact);
            if (!v || json_array_append_new(a, v) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case VMP_CFG_NULL:
    default:
        return json_null();
    }
}
