/* Diagnostics and typed readers of the configuration loader (see config_priv.h). */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_priv.h"
#include "log.h"

const char vmp_config_default_file[] = "(default)";

/* ---- diagnostics --------------------------------------------------------- */

void vmp_cfg_diag_init(vmp_cfg_diag *d, const char *name)
{
    memset(d, 0, sizeof *d);
    d->name = name ? name : "<config>";
}

static void clear_entries(vmp_cfg_diag_entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].text);
    free(v);
}

void vmp_cfg_diag_clear(vmp_cfg_diag *d)
{
    clear_entries(d->errors, d->n_errors);
    clear_entries(d->warnings, d->n_warnings);
    const char *name = d->name;
    vmp_cfg_diag_init(d, name);
}

static void diag_add(vmp_cfg_diag *d, bool error, vmp_cfg_mark mark, const char *path,
                     const char *fmt, va_list ap)
{
    char msg[768], line[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    const char *file = mark.file ? mark.file : d->name;
    const char *sep = path && *path ? ": " : "";
    if (mark.file && mark.line > 0)
        snprintf(line, sizeof line, "%s:%d:%d: %s%s%s", file, mark.line, mark.column,
                 path ? path : "", sep, msg);
    else
        snprintf(line, sizeof line, "%s: %s%s%s", file, path ? path : "", sep, msg);

    vmp_cfg_diag_entry **v = error ? &d->errors : &d->warnings;
    size_t *n = error ? &d->n_errors : &d->n_warnings;
    size_t *cap = error ? &d->cap_errors : &d->cap_warnings;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        vmp_cfg_diag_entry *nv = realloc(*v, nc * sizeof *nv);
        if (!nv) {
            d->oom = true;
            return;
        }
        *v = nv;
        *cap = nc;
    }
    char *text = strdup(line);
    if (!text) {
        d->oom = true;
        return;
    }
    (*v)[(*n)++] = (vmp_cfg_diag_entry){mark, text};
}

void vmp_cfg_diag_error(vmp_cfg_diag *d, vmp_cfg_mark mark, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_add(d, true, mark, path, fmt, ap);
    va_end(ap);
}

void vmp_cfg_diag_warn(vmp_cfg_diag *d, vmp_cfg_mark mark, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_add(d, false, mark, path, fmt, ap);
    va_end(ap);
}

/* Position order: entries with a line come first, grouped by file in the
 * order files first appear, then by line and column; the others keep their
 * order at the end. */
static long file_rank(const vmp_cfg_diag_entry *v, size_t n, const char *file)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].mark.file && v[i].mark.line > 0 && strcmp(v[i].mark.file, file) == 0)
            return (long)i;
    return (long)n;
}

static int entry_cmp(const vmp_cfg_diag_entry *v, size_t n, const vmp_cfg_diag_entry *a,
                     const vmp_cfg_diag_entry *b)
{
    bool ha = a->mark.file && a->mark.line > 0, hb = b->mark.file && b->mark.line > 0;
    if (ha != hb)
        return ha ? -1 : 1;
    if (!ha)
        return 0;
    long ra = file_rank(v, n, a->mark.file), rb = file_rank(v, n, b->mark.file);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    if (a->mark.line != b->mark.line)
        return a->mark.line < b->mark.line ? -1 : 1;
    if (a->mark.column != b->mark.column)
        return a->mark.column < b->mark.column ? -1 : 1;
    return 0;
}

static void sort_entries(vmp_cfg_diag_entry *v, size_t n)
{
    /* Ranks must come from the unsorted order, so sort a copy of the keys:
     * insertion sort on a snapshot keeps it stable and simple (lists are
     * short). */
    if (n < 2)
        return;
    vmp_cfg_diag_entry *orig = malloc(n * sizeof *orig);
    if (!orig)
        return; /* unsorted is still correct */
    memcpy(orig, v, n * sizeof *orig);
    for (size_t i = 1; i < n; i++) {
        vmp_cfg_diag_entry cur = v[i];
        size_t j = i;
        while (j > 0 && entry_cmp(orig, n, &v[j - 1], &cur) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = cur;
    }
    free(orig);
}

static bool copy_out(vmp_cfg_diag_entry *v, size_t n, vmp_strlist *out)
{
    for (size_t i = 0; out && i < n; i++)
        if (vmp_strlist_push(out, v[i].text))
            return false;
    return true;
}

int vmp_cfg_diag_finish(vmp_cfg_diag *d, vmp_strlist *errors, vmp_strlist *warnings, vmp_err *err)
{
    sort_entries(d->errors, d->n_errors);
    sort_entries(d->warnings, d->n_warnings);
    for (size_t i = 0; i < d->n_warnings; i++)
        vmp_log(VMP_LOG_WARN, "config", "%s", d->warnings[i].text);
    if (!copy_out(d->errors, d->n_errors, errors) ||
        !copy_out(d->warnings, d->n_warnings, warnings))
        d->oom = true;
    if (d->oom)
        return vmp_err_set(err, VMP_ENOMEM, "%s: out of memory while loading", d->name);
    if (d->n_errors) {
        if (d->n_errors > 1)
            return vmp_err_set(err, VMP_EINVAL, "%s (and %zu more errors)", d->errors[0].text,
                               d->n_errors - 1);
        return vmp_err_set(err, VMP_EINVAL, "%s", d->errors[0].text);
    }
    return 0;
}

/* ---- lookups and descriptions ------------------------------------------- */

void vmp_cfg_path(char *buf, size_t n, const char *prefix, const char *key)
{
    if (prefix && *prefix)
        snprintf(buf, n, "%s.%s", prefix, key);
    else
        snprintf(buf, n, "%s", key);
}

bool vmp_cfg_lookup(const vmp_cfg_node *map, const char *key, const vmp_cfg_node **value,
                    vmp_cfg_mark *mark)
{
    size_t n = vmp_cfg_len(map);
    if (vmp_cfg_kind_of(map) != VMP_CFG_MAP)
        return false;
    for (size_t i = n; i-- > 0;) {
        if (strcmp(vmp_cfg_key_at(map, i), key) != 0)
            continue;
        const vmp_cfg_node *v = vmp_cfg_at(map, i);
        if (value)
            *value = v;
        if (mark) {
            *mark = vmp_cfg_key_mark_at(map, i);
            if (!mark->file && mark->line == 0)
                *mark = vmp_cfg_mark_of(v);
        }
        return true;
    }
    return false;
}

static bool looks_plain_value(const char *s)
{
    long long i;
    double x;
    if (vmp_parse_long(s, &i) == 0 || vmp_parse_double(s, &x) == 0)
        return true;
    static const char *words[] = {"true", "false", "yes", "no", "on", "off"};
    for (size_t k = 0; k < VMP_ARRAY_LEN(words); k++)
        if (strcmp(s, words[k]) == 0)
            return true;
    return false;
}

void vmp_cfg_describe(const vmp_cfg_node *n, char *buf, size_t size)
{
    switch (vmp_cfg_kind_of(n)) {
    case VMP_CFG_MAP:
        snprintf(buf, size, "a map");
        return;
    case VMP_CFG_SEQ:
        snprintf(buf, size, "a list");
        return;
    case VMP_CFG_NULL:
        snprintf(buf, size, "null");
        return;
    default:
        break;
    }
    const char *s = vmp_cfg_scalar(n);
    if (!vmp_cfg_scalar_quoted(n) && *s && looks_plain_value(s)) {
        snprintf(buf, size, "%s", s);
        return;
    }
    if (strlen(s) > 60)
        snprintf(buf, size, "\"%.57s...\"", s);
    else
        snprintf(buf, size, "\"%s\"", s);
}

bool vmp_cfg_falsy(const vmp_cfg_node *n)
{
    bool b;
    if (!n || vmp_cfg_kind_of(n) == VMP_CFG_NULL)
        return true;
    return !vmp_cfg_scalar_quoted(n) && vmp_cfg_as_bool(n, &b) == 0 && !b;
}

/* Looks key up for a reader: 0 absent or null, 1 present (value, mark and
 * full path filled in). */
static int reader_lookup(const vmp_cfg_node *map, const char *prefix, const char *key,
                         const vmp_cfg_node **v, vmp_cfg_mark *mark, char *path, size_t n)
{
    if (!vmp_cfg_lookup(map, key, v, mark) || vmp_cfg_kind_of(*v) == VMP_CFG_NULL)
        return 0;
    vmp_cfg_path(path, n, prefix, key);
    return 1;
}

/* ---- typed readers ------------------------------------------------------- */

static void int_desc(long long min, char *buf, size_t n)
{
    if (min == 0)
        snprintf(buf, n, "a non-negative integer");
    else if (min == 1)
        snprintf(buf, n, "a positive integer");
    else if (min == LLONG_MIN)
        snprintf(buf, n, "an integer");
    else
        snprintf(buf, n, "an integer of at least %lld", min);
}

int vmp_cfg_read_int(vmp_cfg_diag *d, const vmp_cfg_node *map, const char *prefix, const char *key,
                     long long min, long long max, long long *out)
{
    const vmp_cfg_node *v;
    vmp_cfg_mark mark;
    char path[256], desc[64], got[80];
    if (!reader_lookup(map, prefix, key, &v, &mark, path, sizeof path))
        return 0;
    long long x;
    int_desc(min, desc, sizeof desc);
    if (vmp_cfg_as_int(v, &x) != 0 || x < min) {
        vmp_cfg_describe(v, got, sizeof got);
        vmp_cfg_diag_error(d, mark, path, "expected %s, got %s", desc, got);
        return -1;
    }
    if (x > max) {
        vmp_cfg_diag_error(d, mark, path, "must be at most %lld, got %lld", max, x);
        return -1;
    }
    *out = x;
    return 1;
}

int vmp_cfg_read_double(vmp_cfg_diag *d, const vmp_cfg_node *map, const char *prefix,
                        const char *key, double min, bool exclusive, double *out)
{
    const vmp_cfg_node *v;
    vmp_cfg_mark mark;
    char path[256], got[80];
    if (!reader_lookup(map, prefix, key, &v, &mark, path, sizeof path))
        return 0;
    double x;
    bool ok = vmp_cfg_as_double(v, &x) == 0 && isfinite(x);
    if (ok && (exclusive ? x > min : x >= min)) {
        *out = x;
        return 1;
    }
    vmp_cfg_describe(v, got, sizeof got);
    if (isinf(min))
        vmp_cfg_diag_error(d, mark, path, "expected a number, got %s", got);
    else if (min == 0 && !exclusive)
        vmp_cfg_diag_error(d, mark, path, "expected a non-negative number, got %s", got);
    else
        vmp_cfg_diag_error(d, mark, path, "expected a number %s %g, got %s",
                           exclusive ? "greater than" : "of at least", min, got);
    return -1;
}

int vmp_cfg_read_bool(vmp_cfg_diag *d, const vmp_cfg_node *map, const char *prefix, const char *key,
                      bool *out)
{
    const vmp_cfg_node *v;
    vmp_cfg_mark mark;
    char path[256], got[80];
    if (!reader_lookup(map, prefix, key, &v, &mark, path, sizeof path))
        return 0;
    bool b;
    if (vmp_cfg_as_bool(v, &b) != 0) {
        vmp_cfg_describe(v, got, sizeof got);
        vmp_cfg_diag_error(d, mark, path, "expected a boolean (true or false), got %s", got);
        return -1;
    }
    *out = b;
    return 1;
}

static int dup_into(vmp_cfg_diag *d, const char *s, char **out)
{
    free(*out);
    *out = NULL;
    if (s && !(*out = strdup(s)))
        d->oom = true;
    return 0;
}

int vmp_cfg_read_str(vmp_cfg_diag *d, const vmp_cfg_node *map, const char *prefix, const char *key,
                     const char *def, char **out)
{
    const vmp_cfg_node *v;
    vmp_cfg_mark mark;
    char path[256], got[80];
    if (!reader_lookup(map, prefix, key, &v, &mark, path, sizeof path))
        return dup_into(d, def, out);
    if (vmp_cfg_kind_of(v) != VMP_CFG_SCALAR) {
        vmp_cfg_describe(v, got, sizeof got);
        vmp_cfg_diag_error(d, mark, path, "expected a string, got %s", got);
        dup_into(d, def, out);
        return -1;
    }
    dup_into(d, vmp_cfg_scalar(v), out);
    return 1;
}

static void push_trimmed(vmp_cfg_diag *d, vmp_strlist *out, const char *s, size_t len)
{
    while (len && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (!len)
        return;
    char *c = strndup(s, len);
    if (!c || vmp_strlist_push_owned(out, c))
        d->oom = true;
}

static void push_split(vmp_cfg_diag *d, vmp_strlist *out, const char *s, bool split)
{
    if (!split) {
        if (vmp_strlist_push(out, s))
            d->oom = true;
        return;
    }
    for (const char *p = s;;) {
        const char *comma = strchr(p, ',');
        push_trimmed(d, out, p, comma ? (size_t)(comma - p) : strlen(p));
        if (!comma)
            break;
        p = comma + 1;
    }
}

int vmp_cfg_read_strlist(vmp_cfg_diag *d, const vmp_cfg_node *map, const char *prefix,
                         const char *key, bool split_commas, vmp_strlist *out, bool *is_list)
{
    const vmp_cfg_node *v;
    vmp_cfg_mark mark;
    char path[256], got[80], ipath[300];
    if (!reader_lookup(map, prefix, key, &v, &mark, path, sizeof path))
        return 0;
    if (vmp_cfg_kind_of(v) == VMP_CFG_SCALAR) {
        push_split(d, out, vmp_cfg_scalar(v), split_commas);
        if (is_list)
            *is_list = false;
        return 1;
    }
    if (vmp_cfg_kind_of(v) != VMP_CFG_SEQ) {
        vmp_cfg_describe(v, got, sizeof got);
        vmp_cfg_diag_error(d, mark, path, "expected a string or a list of strings, got %s", got);
        return -1;
    }
    int rc = 1;
    for (size_t i = 0; i < vmp_cfg_len(v); i++) {
        const vmp_cfg_node *item = vmp_cfg_at(v, i);
        if (vmp_cfg_kind_of(item) == VMP_CFG_SCALAR) {
            push_split(d, out, vmp_cfg_scalar(item), split_commas);
            continue;
        }
        if (vmp_cfg_kind_of(item) == VMP_CFG_NULL)
            continue;
        vmp_cfg_describe(item, got, sizeof got);
        snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
        vmp_cfg_mark im = vmp_cfg_mark_of(item);
        vmp_cfg_diag_error(d, im.line ? im : mark, ipath, "expected a string, got %s", got);
        rc = -1;
    }
    if (is_list)
        *is_list = true;
    return rc;
}

int vmp_cfg_read_map(vmp_cfg_diag *d, const vmp_cfg_node *map, const char *prefix, const char *key,
                     const vmp_cfg_node **out)
{
    const vmp_cfg_node *v;
    vmp_cfg_mark mark;
    char path[256], got[80];
    *out = NULL;
    if (!reader_lookup(map, prefix, key, &v, &mark, path, sizeof path))
        return 0;
    if (vmp_cfg_kind_of(v) != VMP_CFG_MAP) {
        vmp_cfg_describe(v, got, sizeof got);
        vmp_cfg_diag_error(d, mark, path, "expected a map, got %s", got);
        return -1;
    }
    *out = v;
    return 1;
}

void vmp_cfg_warn_unknown(vmp_cfg_diag *d, const vmp_cfg_node *map, const char *prefix,
                          const char *const *known)
{
    char path[256];
    if (vmp_cfg_kind_of(map) != VMP_CFG_MAP)
        return;
    for (size_t i = 0; i < vmp_cfg_len(map); i++) {
        const char *k = vmp_cfg_key_at(map, i);
        bool found = false;
        for (size_t j = 0; known[j] && !found; j++)
            found = strcmp(known[j], k) == 0;
        if (found)
            continue;
        vmp_cfg_path(path, sizeof path, prefix, k);
        vmp_cfg_diag_warn(d, vmp_cfg_key_mark_at(map, i), path, "unknown key");
    }
}
