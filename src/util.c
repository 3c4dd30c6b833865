#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- string list ------------------------------------------------------ */

int vmp_strlist_push_owned(vmp_strlist *l, char *s)
{
    if (!s)
        return VMP_ENOMEM;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            free(s);
            return VMP_ENOMEM;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return 0;
}

int vmp_strlist_push(vmp_strlist *l, const char *s)
{
    char *copy = strdup(s ? s : "");
    return copy ? vmp_strlist_push_owned(l, copy) : VMP_ENOMEM;
}

long vmp_strlist_find(const vmp_strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return (long)i;
    return -1;
}

bool vmp_strlist_contains(const vmp_strlist *l, const char *s) { return vmp_strlist_find(l, s) >= 0; }

void vmp_strlist_remove(vmp_strlist *l, size_t i)
{
    if (i >= l->n)
        return;
    free(l->v[i]);
    memmove(l->v + i, l->v + i + 1, (l->n - i - 1) * sizeof *l->v);
    l->n--;
}

void vmp_strlist_clear(vmp_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void vmp_strlist_sort(vmp_strlist *l)
{
    if (l->n > 1)
        qsort(l->v, l->n, sizeof *l->v, cmp_str);
}

/* ---- string buffer ---------------------------------------------------- */

static bool buf_reserve(vmp_buf *b, size_t extra)
{
    if (b->oom)
        return false;
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = true;
        return false;
    }
    b->s = s;
    b->cap = cap;
    return true;
}

void vmp_buf_append(vmp_buf *b, const char *s, size_t len)
{
    if (!buf_reserve(b, len))
        return;
    memcpy(b->s + b->len, s, len);
    b->len += len;
    b->s[b->len] = '\0';
}

void vmp_buf_puts(vmp_buf *b, const char *s) { vmp_buf_append(b, s, strlen(s)); }

void vmp_buf_vprintf(vmp_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0 || !buf_reserve(b, (size_t)n))
        return;
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void vmp_buf_printf(vmp_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmp_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

const char *vmp_buf_str(const vmp_buf *b) { return b->s && !b->oom ? b->s : ""; }

char *vmp_buf_take(vmp_buf *b)
{
    char *s = b->oom ? NULL : b->s;
    if (!s && !b->oom)
        s = strdup("");
    if (b->oom)
        free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
    b->oom = false;
    return s;
}

void vmp_buf_reset(vmp_buf *b)
{
    b->len = 0;
    if (b->s)
        b->s[0] = '\0';
    b->oom = false;
}

void vmp_buf_free(vmp_buf *b)
{
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

/* ---- memory and strings ---------------------------------------------- */

char *vmp_strdup(const char *s) { return s ? strdup(s) : NULL; }

char *vmp_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

int vmp_strlcpy(char *dst, const char *src, size_t n)
{
    if (n == 0)
        return -1;
    size_t len = strlen(src);
    if (len >= n) {
        memcpy(dst, src, n - 1);
        dst[n - 1] = '\0';
        return -1;
    }
    memcpy(dst, src, len + 1);
    return 0;
}

int vmp_parse_long(const char *s, long long *out)
{
    if (!s)
        return -1;
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s)
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    if (*end)
        return -1;
    *out = v;
    return 0;
}

int vmp_parse_double(const char *s, double *out)
{
    if (!s)
        return -1;
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || end == s)
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    if (*end)
        return -1;
    *out = v;
    return 0;
}

/* ---- time -------------------------------------------------------------- */

static void local_tm(double t, struct tm *tm)
{
    time_t secs = (time_t)t;
    localtime_r(&secs, tm);
}

void vmp_time_format(double t, char *buf, size_t n)
{
    struct tm tm;
    local_tm(t, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M:%S %z", &tm);
}

void vmp_time_format_rfc3339(double t, char *buf, size_t n)
{
    struct tm tm;
    local_tm(t, &tm);
    char zone[8];
    strftime(zone, sizeof zone, "%z", &tm); /* +hhmm */
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, n, "%s%.3s:%.2s", base, zone, zone + 3);
}

void vmp_date_format(double t, char *buf, size_t n)
{
    struct tm tm;
    local_tm(t, &tm);
    strftime(buf, n, "%Y-%m-%d", &tm);
}

void vmp_duration_format(double seconds, char *buf, size_t n) { snprintf(buf, n, "%.2f", seconds); }

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

int vmp_time_parse(const char *s, double *out)
{
    if (!s)
        return -1;
    while (isspace((unsigned char)*s))
        s++;
    int y, mo, d, h = 0, mi = 0, consumed = 0;
    double sec = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &consumed) != 3) {
        double v;
        if (vmp_parse_double(s, &v) == 0) {
            *out = v;
            return 0;
        }
        return -1;
    }
    const char *p = s + consumed;
    if (*p == 'T' || *p == ' ') {
        int c2 = 0;
        if (sscanf(p + 1, "%2d:%2d:%lf%n", &h, &mi, &sec, &c2) != 3)
            return -1;
        p += 1 + c2;
    }
    while (*p == ' ')
        p++;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 24 || mi > 59 || sec >= 61)
        return -1;
    long long days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    double utc = (double)(days * 86400 + h * 3600 + mi * 60) + sec;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        p++;
        int zh = 0, zm = 0;
        if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1])) {
            zh = (p[0] - '0') * 10 + (p[1] - '0');
            p += 2;
            if (*p == ':')
                p++;
            if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1])) {
                zm = (p[0] - '0') * 10 + (p[1] - '0');
                p += 2;
            }
        } else {
            return -1;
        }
        utc -= sign * (zh * 3600 + zm * 60);
    } else if (*p == '\0') {
        /* No zone: local time, as Ruby's Time.parse assumes. */
        struct tm tm = {0};
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = (int)sec;
        tm.tm_isdst = -1;
        time_t t = mktime(&tm);
        if (t == (time_t)-1)
            return -1;
        *out = (double)t + (sec - (int)sec);
        return 0;
    } else {
        return -1;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p)
        return -1;
    *out = utc;
    return 0;
}

double vmp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double vmp_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- files ------------------------------------------------------------ */

int vmp_file_write_atomic(const char *path, const char *data, size_t len, vmp_err *err)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
        return vmp_err_set(err, VMP_EINVAL, "%s: path too long", path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return vmp_err_set(err, VMP_EIO, "%s: cannot create temporary file: %s", path,
                           strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return vmp_err_set(err, VMP_EIO, "%s: write failed: %s", path, strerror(e));
        }
        off += (size_t)w;
    }
    if (fchmod(fd, 0644) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return vmp_err_set(err, VMP_EIO, "%s: sync failed: %s", path, strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return vmp_err_set(err, VMP_EIO, "%s: rename failed: %s", path, strerror(e));
    }
    return 0;
}

int vmp_file_read(const char *path, char **out, size_t *len, vmp_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return vmp_err_set(err, errno == ENOENT ? VMP_ENOENT : VMP_EIO, "%s: %s", path,
                           strerror(errno));
    vmp_buf b = VMP_BUF_INIT;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        vmp_buf_append(&b, chunk, n);
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        vmp_buf_free(&b);
        return vmp_err_set(err, VMP_EIO, "%s: read failed", path);
    }
    size_t l = b.len;
    char *s = vmp_buf_take(&b);
    if (!s)
        return vmp_err_set(err, VMP_ENOMEM, "%s: out of memory", path);
    *out = s;
    if (len)
        *len = l;
    return 0;
}

int vmp_mkdir_p(const char *path, unsigned mode, vmp_err *err)
{
    char buf[PATH_MAX];
    if (vmp_strlcpy(buf, path, sizeof buf) != 0)
        return vmp_err_set(err, VMP_EINVAL, "%s: path too long", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return vmp_err_set(err, VMP_EIO, "mkdir %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, mode) != 0 && errno != EEXIST)
        return vmp_err_set(err, VMP_EIO, "mkdir %s: %s", buf, strerror(errno));
    return 0;
}
