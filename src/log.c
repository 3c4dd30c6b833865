#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int min_level = VMP_LOG_INFO;
static atomic_ulong error_count;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = -1; /* -1: stderr */
static char *log_path;
static vmp_log_fn log_cb;
static void *log_cb_ud;

void vmp_log_set_level(vmp_log_level level) { min_level = level; }
vmp_log_level vmp_log_get_level(void) { return (vmp_log_level)min_level; }
bool vmp_log_enabled(vmp_log_level level) { return (int)level >= min_level && level < VMP_LOG_OFF; }

int vmp_log_level_parse(const char *name, vmp_log_level *out)
{
    static const struct {
        const char *name;
        vmp_log_level level;
    } names[] = {{"debug", VMP_LOG_DEBUG}, {"info", VMP_LOG_INFO},   {"warn", VMP_LOG_WARN},
                 {"warning", VMP_LOG_WARN}, {"error", VMP_LOG_ERROR}, {"off", VMP_LOG_OFF}};
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return -1;
}

const char *vmp_log_level_name(vmp_log_level level)
{
    switch (level) {
    case VMP_LOG_DEBUG: return "DEBUG";
    case VMP_LOG_INFO: return "INFO";
    case VMP_LOG_WARN: return "WARN";
    case VMP_LOG_ERROR: return "ERROR";
    default: return "OFF";
    }
}

static int open_path(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int vmp_log_open_file(const char *path)
{
    int fd = -1;
    char *copy = NULL;
    if (path) {
        fd = open_path(path);
        if (fd < 0)
            return -1;
        copy = strdup(path);
        if (!copy) {
            close(fd);
            errno = ENOMEM;
            return -1;
        }
    }
    pthread_mutex_lock(&log_lock);
    if (log_fd >= 0)
        close(log_fd);
    free(log_path);
    log_fd = fd;
    log_path = copy;
    pthread_mutex_unlock(&log_lock);
    return 0;
}

int vmp_log_reopen(void)
{
    int rc = 0;
    pthread_mutex_lock(&log_lock);
    if (log_path) {
        int fd = open_path(log_path);
        if (fd < 0) {
            rc = -1;
        } else {
            close(log_fd);
            log_fd = fd;
        }
    }
    pthread_mutex_unlock(&log_lock);
    return rc;
}

void vmp_log_close(void) { vmp_log_open_file(NULL); }

void vmp_log_set_callback(vmp_log_fn fn, void *ud)
{
    pthread_mutex_lock(&log_lock);
    log_cb = fn;
    log_cb_ud = ud;
    pthread_mutex_unlock(&log_lock);
}

unsigned long vmp_log_error_count(void) { return error_count; }

void vmp_log_vmv(vmp_log_level level, const char *subsys, const char *pool, const char *vm,
                 const char *fmt, va_list ap)
{
    if (!vmp_log_enabled(level))
        return;
    if (level == VMP_LOG_ERROR)
        error_count++;

    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);

    pthread_mutex_lock(&log_lock);
    if (log_cb) {
        vmp_log_fn fn = log_cb;
        void *ud = log_cb_ud;
        fn(level, subsys ? subsys : "", pool, vm, msg, ud);
        pthread_mutex_unlock(&log_lock);
        return;
    }
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);

    char line[2600];
    int n = snprintf(line, sizeof line, "[%s] %-5s %s:%s%s%s%s %s\n", stamp,
                     vmp_log_level_name(level), subsys ? subsys : "", pool ? " pool=" : "",
                     pool ? pool : "", vm ? " vm=" : "", vm ? vm : "", msg);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof line) {
        n = sizeof line - 1;
        line[n - 1] = '\n';
    }
    int fd = log_fd >= 0 ? log_fd : STDERR_FILENO;
    ssize_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, line + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += w;
    }
    pthread_mutex_unlock(&log_lock);
}

void vmp_log_vm(vmp_log_level level, const char *subsys, const char *pool, const char *vm,
                const char *fmt, ...)
{
    if (!vmp_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    vmp_log_vmv(level, subsys, pool, vm, fmt, ap);
    va_end(ap);
}

void vmp_log(vmp_log_level level, const char *subsys, const char *fmt, ...)
{
    if (!vmp_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    vmp_log_vmv(level, subsys, NULL, NULL, fmt, ap);
    va_end(ap);
}
