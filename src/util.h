/*
 * util: small shared helpers with no vmpool policy in them: a growable list
 * of strings, a growable string buffer, vmpooler's time formats, and atomic
 * file replacement.
 */
#ifndef VMP_UTIL_H
#define VMP_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "err.h"

#define VMP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- string list ------------------------------------------------------ */

/* A growable array of owned, NUL-terminated strings. Zero-initialise it
 * (`vmp_strlist l = {0};`) or use VMP_STRLIST_INIT; free with _clear. */
typedef struct vmp_strlist {
    char **v;
    size_t n;
    size_t cap;
} vmp_strlist;
#define VMP_STRLIST_INIT {NULL, 0, 0}

/* Appends a copy of s. Returns 0 or VMP_ENOMEM. */
int vmp_strlist_push(vmp_strlist *l, const char *s);
/* Appends s itself, taking ownership of it (freed even on failure). */
int vmp_strlist_push_owned(vmp_strlist *l, char *s);
/* Index of s in l, or -1. */
long vmp_strlist_find(const vmp_strlist *l, const char *s);
bool vmp_strlist_contains(const vmp_strlist *l, const char *s);
/* Removes element i (order kept). */
void vmp_strlist_remove(vmp_strlist *l, size_t i);
/* Frees every string and the array; l is empty afterwards. */
void vmp_strlist_clear(vmp_strlist *l);
/* Sorts ascending (strcmp). */
void vmp_strlist_sort(vmp_strlist *l);

/* ---- string buffer ---------------------------------------------------- */

/* A growable string, always NUL-terminated once anything was appended.
 * An allocation failure sets `oom` and later appends do nothing, so a
 * caller may append freely and check once at the end. */
typedef struct vmp_buf {
    char *s;
    size_t len;
    size_t cap;
    bool oom;
} vmp_buf;
#define VMP_BUF_INIT {NULL, 0, 0, false}

void vmp_buf_append(vmp_buf *b, const char *s, size_t len);
void vmp_buf_puts(vmp_buf *b, const char *s);
void vmp_buf_printf(vmp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vmp_buf_vprintf(vmp_buf *b, const char *fmt, va_list ap);
/* The contents ("" when empty); valid until the next append. */
const char *vmp_buf_str(const vmp_buf *b);
/* Hands the string to the caller (NULL on oom); b is reset. */
char *vmp_buf_take(vmp_buf *b);
void vmp_buf_reset(vmp_buf *b);
void vmp_buf_free(vmp_buf *b);

/* ---- memory and strings ---------------------------------------------- */

/* strdup that accepts NULL (returns NULL). */
char *vmp_strdup(const char *s);
/* Formats into a new string (NULL on failure). */
char *vmp_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Copies src into dst of size n, always terminated; returns 0, or -1 when
 * truncated. */
int vmp_strlcpy(char *dst, const char *src, size_t n);
/* Parses a whole string as a base-10 integer (leading/trailing blanks
 * allowed). Returns 0 and sets *out, or -1. */
int vmp_parse_long(const char *s, long long *out);
/* Parses a whole string as a floating point number. */
int vmp_parse_double(const char *s, double *out);

/* ---- vmpooler's time formats ----------------------------------------- */

/* "YYYY-MM-DD HH:MM:SS +ZZZZ" in local time (Ruby's Time#to_s), as vmpooler
 * stores timestamps in Redis. buf must hold VMP_TIME_STR_MAX bytes. */
#define VMP_TIME_STR_MAX 40
void vmp_time_format(double t, char *buf, size_t n);
/* "YYYY-MM-DDTHH:MM:SS+ZZ:ZZ" (RFC 3339, local time). */
void vmp_time_format_rfc3339(double t, char *buf, size_t n);
/* "YYYY-MM-DD" of the local date (key names such as vmpooler__boot__<date>). */
void vmp_date_format(double t, char *buf, size_t n);
/* Seconds formatted with two decimals ("12.34"), vmpooler's durations. */
void vmp_duration_format(double seconds, char *buf, size_t n);
/* Parses what vmpooler (or vmpool) wrote: "YYYY-MM-DD HH:MM:SS +ZZZZ",
 * "YYYY-MM-DD HH:MM:SS" (local), ISO-8601 with 'T' and Z/+hh:mm, or a plain
 * number of seconds since the epoch. Returns 0 and sets *out, or -1. */
int vmp_time_parse(const char *s, double *out);

/* Wall-clock seconds since the epoch, and a monotonic clock in seconds. */
double vmp_now(void);
double vmp_monotonic(void);

/* ---- files ------------------------------------------------------------ */

/* Writes data to path atomically: a temporary file in the same directory,
 * fsync, rename. Returns 0 or a VMP_E* code with err set. */
int vmp_file_write_atomic(const char *path, const char *data, size_t len, vmp_err *err);
/* Reads a whole file into a new NUL-terminated buffer. */
int vmp_file_read(const char *path, char **out, size_t *len, vmp_err *err);
/* mkdir -p with the given mode. */
int vmp_mkdir_p(const char *path, unsigned mode, vmp_err *err);

#endif
