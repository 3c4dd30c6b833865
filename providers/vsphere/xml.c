#include "xml.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int vmp_moref_set(vmp_moref *ref, const char *type, const char *value)
{
    if (vmp_strlcpy(ref->type, type ? type : "", sizeof ref->type) != 0 ||
        vmp_strlcpy(ref->value, value ? value : "", sizeof ref->value) != 0)
    {
        ref->type[0] = ref->value[0] = '\0';
        return -1;
    }
    return 0;
}

bool vmp_moref_is_set(const vmp_moref *ref) { return ref && ref->type[0] && ref->value[0]; }

bool vmp_moref_equal(const vmp_moref *a, const vmp_moref *b)
{
    return strcmp(a->type, b->type) == 0 && strcmp(a->value, b->value) == 0;
}

/* ---- writing ----------------------------------------------------------- */

void vmp_xml_escape(vmp_buf *b, const char *s)
{
    if (!s)
        return;
    const char *run = s;
    for (const char *p = s; *p; p++) {
        const char *rep = NULL;
        unsigned char c = (unsigned char)*p;
        switch (c) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        case '\t':
            rep = "&#9;";
            break;
        case '\n':
            rep = "&#10;";
            break;
        case '\r':
            rep = "&#13;";
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                rep = ""; /* not representable in XML 1.0: dropped */
            break;
        }
        if (rep) {
            vmp_buf_append(b, run, (size_t)(p - run));
            vmp_buf_puts(b, rep);
            run = p + 1;
        }
    }
    vmp_buf_puts(b, run);
}

void vmp_xml_elem(vmp_buf *b, const char *name, const char *text)
{
    vmp_buf_printf(b, "<%s>", name);
    vmp_xml_escape(b, text);
    vmp_buf_printf(b, "</%s>", name);
}

void vmp_xml_elem_int(vmp_buf *b, const char *name, long long v)
{
    vmp_buf_printf(b, "<%s>%lld</%s>", name, v, name);
}

void vmp_xml_elem_bool(vmp_buf *b, const char *name, bool v)
{
    vmp_buf_printf(b, "<%s>%s</%s>", name, v ? "true" : "false", name);
}

void vmp_xml_moref(vmp_buf *b, const char *name, const vmp_moref *ref)
{
    vmp_buf_printf(b, "<%s type=\"", name);
    vmp_xml_escape(b, ref->type);
    vmp_buf_puts(b, "\">");
    vmp_xml_escape(b, ref->value);
    vmp_buf_printf(b, "</%s>", name);
}

/* ---- reading ----------------------------------------------------------- */

bool vmp_xml_is(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && n->name &&
           (!name || strcmp((const char *)n->name, name) == 0);
}

xmlNode *vmp_xml_child(const xmlNode *n, const char *name)
{
    if (!n)
        return NULL;
    for (xmlNode *c = n->children; c; c = c->next)
        if (vmp_xml_is(c, name))
            return c;
    return NULL;
}

xmlNode *vmp_xml_next(const xmlNode *n, const char *name)
{
    if (!n)
        return NULL;
    for (xmlNode *c = n->next; c; c = c->next)
        if (vmp_xml_is(c, name))
            return c;
    return NULL;
}

xmlNode *vmp_xml_path(const xmlNode *n, const char *path)
{
    char step[128];
    const xmlNode *cur = n;
    const char *p = path;
    while (cur && *p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len >= sizeof step)
            return NULL;
        memcpy(step, p, len);
        step[len] = '\0';
        cur = vmp_xml_child(cur, step);
        p += len;
        if (*p == '/')
            p++;
    }
    return (xmlNode *)cur;
}

int vmp_xml_text(const xmlNode *n, char *buf, size_t len)
{
    if (len == 0)
        return -1;
    buf[0] = '\0';
    if (!n)
        return -1;
    xmlChar *t = xmlNodeGetContent(n);
    if (!t)
        return 0;
    int rc = vmp_strlcpy(buf, (const char *)t, len);
    xmlFree(t);
    return rc;
}

char *vmp_xml_text_dup(const xmlNode *n)
{
    if (!n)
        return NULL;
    xmlChar *t = xmlNodeGetContent(n);
    char *s = strdup(t ? (const char *)t : "");
    xmlFree(t);
    return s;
}

int vmp_xml_child_text(const xmlNode *n, const char *name, char *buf, size_t len)
{
    xmlNode *c = vmp_xml_child(n, name);
    if (!c) {
        if (len)
            buf[0] = '\0';
        return -1;
    }
    return vmp_xml_text(c, buf, len);
}

void vmp_xml_xsi_type(const xmlNode *n, char *buf, size_t len)
{
    if (len == 0)
        return;
    buf[0] = '\0';
    if (!n || n->type != XML_ELEMENT_NODE)
        return;
    xmlChar *t = xmlGetNsProp(n, BAD_CAST "type", BAD_CAST VMP_XSI_NS);
    if (!t)
        return;
    const char *s = (const char *)t;
    const char *colon = strrchr(s, ':');
    vmp_strlcpy(buf, colon ? colon + 1 : s, len);
    xmlFree(t);
}

int vmp_xml_read_moref(const xmlNode *n, vmp_moref *out)
{
    if (!n || n->type != XML_ELEMENT_NODE)
        return -1;
    /* The plain `type` attribute, not xsi:type (see the header). */
    xmlChar *type = xmlGetNoNsProp(n, BAD_CAST "type");
    if (!type)
        return -1;
    xmlChar *value = xmlNodeGetContent(n);
    int rc = vmp_moref_set(out, (const char *)type, value ? (const char *)value : "");
    xmlFree(type);
    xmlFree(value);
    if (rc == 0 && !vmp_moref_is_set(out))
        rc = -1;
    return rc;
}

int vmp_xml_parse_bool(const char *text, bool *out)
{
    if (!text)
        return -1;
    if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0) {
        *out = false;
        return 0;
    }
    return -1;
}

int vmp_xml_node_bool(const xmlNode *n, bool *out)
{
    char buf[16];
    if (!n || vmp_xml_text(n, buf, sizeof buf) != 0)
        return -1;
    return vmp_xml_parse_bool(buf, out);
}

int vmp_xml_node_ll(const xmlNode *n, long long *out)
{
    char buf[48];
    if (!n || vmp_xml_text(n, buf, sizeof buf) != 0)
        return -1;
    return vmp_parse_long(buf, out);
}

int vmp_xml_node_double(const xmlNode *n, double *out)
{
    char buf[64];
    if (!n || vmp_xml_text(n, buf, sizeof buf) != 0)
        return -1;
    return vmp_parse_double(buf, out);
}

/* Reads exactly n digits at *p, advancing it. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int vmp_xml_parse_datetime(const char *text, double *out)
{
    if (!text)
        return -1;
    const char *p = text;
    struct tm tm = {0};
    int y, mo, d, h, mi, s;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d) || *p++ != 'T' || digits(&p, 2, &h) || *p++ != ':' ||
        digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &s))
        return -1;
    double frac = 0, scale = 0.1;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p)) {
            frac += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    long offset = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;
        p++;
        if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om))
            return -1;
        offset = sign * (oh * 3600L + om * 60L);
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    time_t t = timegm(&tm);
    *out = (double)t - (double)offset + frac;
    return 0;
}
