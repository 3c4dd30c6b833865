/*
 * metrics: the interface through which vmpool reports vmpooler's metrics
 * (reference §10): counters, gauges and timings by dotted name. A sink
 * (statsd, graphite, prometheus, a test recorder) implements the ops; the
 * null sink drops everything. Sinks never fail into the caller.
 */
#ifndef VMP_METRICS_H
#define VMP_METRICS_H

typedef struct vmp_metrics_ops {
    void (*increment)(void *ud, const char *name);
    void (*gauge)(void *ud, const char *name, double value);
    void (*timing)(void *ud, const char *name, double milliseconds);
    void (*free)(void *ud);
} vmp_metrics_ops;

typedef struct vmp_metrics vmp_metrics;

/* A sink over ops and ud (ud is passed to each op and freed with
 * ops->free, if any, by vmp_metrics_free). */
vmp_metrics *vmp_metrics_new(const vmp_metrics_ops *ops, void *ud);
/* The shared null sink (never freed; vmp_metrics_free ignores it). */
vmp_metrics *vmp_metrics_null(void);
void vmp_metrics_free(vmp_metrics *m);

/* Each formats the name with printf rules ("checkout.success.%s", pool).
 * m may be NULL (same as the null sink). */
void vmp_metrics_increment(vmp_metrics *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void vmp_metrics_gauge(vmp_metrics *m, double value, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void vmp_metrics_timing(vmp_metrics *m, double milliseconds, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
