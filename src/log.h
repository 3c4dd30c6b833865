/*
 * log: leveled, timestamped log lines, to stderr, a file, or a host callback.
 *
 * Every line carries the time, the level, the subsystem and, where known, the
 * pool and VM it concerns:
 *
 *   [2026-11-25 12:00:00] INFO  engine: pool=debian-7 vm=poolvm-ab12: ready
 *
 * The level is checked before anything is formatted. Logging is thread-safe:
 * one line is written with one write, under a mutex. Library code logs only
 * through this module; an embedding host may take over the output with
 * vmp_log_set_callback().
 */
#ifndef VMP_LOG_H
#define VMP_LOG_H

#include <stdarg.h>
#include <stdbool.h>

typedef enum vmp_log_level {
    VMP_LOG_DEBUG = 0,
    VMP_LOG_INFO = 1,
    VMP_LOG_WARN = 2,
    VMP_LOG_ERROR = 3,
    VMP_LOG_OFF = 4,
} vmp_log_level;

/* Called with each formatted message (without time stamp or newline) when a
 * host callback is installed; pool and vm may be NULL. */
typedef void (*vmp_log_fn)(vmp_log_level level, const char *subsys, const char *pool,
                           const char *vm, const char *msg, void *ud);

/* Sets the minimum level that is written (default INFO). */
void vmp_log_set_level(vmp_log_level level);
vmp_log_level vmp_log_get_level(void);
bool vmp_log_enabled(vmp_log_level level);

/* Parses "debug", "info", "warn"/"warning", "error", "off" (any case).
 * Returns 0 and sets *out, or -1 for an unknown name. */
int vmp_log_level_parse(const char *name, vmp_log_level *out);
const char *vmp_log_level_name(vmp_log_level level);

/* Sends lines to the file at path (appended, created 0640) instead of stderr;
 * NULL goes back to stderr. Returns 0, or -1 with errno set. */
int vmp_log_open_file(const char *path);
/* Reopens the current log file (after rotation, on SIGHUP). */
int vmp_log_reopen(void);
void vmp_log_close(void);

/* Installs a callback that receives every enabled message instead of the
 * stream; fn NULL removes it. */
void vmp_log_set_callback(vmp_log_fn fn, void *ud);

void vmp_log(vmp_log_level level, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void vmp_log_vm(vmp_log_level level, const char *subsys, const char *pool, const char *vm,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void vmp_log_vmv(vmp_log_level level, const char *subsys, const char *pool, const char *vm,
                 const char *fmt, va_list ap);

/* Number of ERROR lines logged since start (tests assert on it). */
unsigned long vmp_log_error_count(void);

#endif
