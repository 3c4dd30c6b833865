#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

struct vmp_metrics {
    const vmp_metrics_ops *ops;
    void *ud;
};

static const vmp_metrics_ops null_ops = {0};
static vmp_metrics null_sink = {&null_ops, NULL};

vmp_metrics *vmp_metrics_new(const vmp_metrics_ops *ops, void *ud)
{
    vmp_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->ops = ops ? ops : &null_ops;
    m->ud = ud;
    return m;
}

vmp_metrics *vmp_metrics_null(void) { return &null_sink; }

void vmp_metrics_free(vmp_metrics *m)
{
    if (!m || m == &null_sink)
        return;
    if (m->ops->free)
        m->ops->free(m->ud);
    free(m);
}

#define FORMAT_NAME(buf, fmt)                                                                      \
    char buf[512];                                                                                 \
    do {                                                                                           \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        vsnprintf(buf, sizeof buf, fmt, ap);                                                       \
        va_end(ap);                                                                                \
    } while (0)

void vmp_metrics_increment(vmp_metrics *m, const char *fmt, ...)
{
    if (!m || !m->ops->increment)
        return;
    FORMAT_NAME(name, fmt);
    m->ops->increment(m->ud, name);
}

void vmp_metrics_gauge(vmp_metrics *m, double value, const char *fmt, ...)
{
    if (!m || !m->ops->gauge)
        return;
    FORMAT_NAME(name, fmt);
    m->ops->gauge(m->ud, name, value);
}

void vmp_metrics_timing(vmp_metrics *m, double milliseconds, const char *fmt, ...)
{
    if (!m || !m->ops->timing)
        return;
    FORMAT_NAME(name, fmt);
    m->ops->timing(m->ud, name, milliseconds);
}
