/*
 * hostsel: choosing the host a VM should run on, by vmpooler's rules
 * (reference §7.5), from facts the vSphere provider read in one property
 * collection. Pure functions, no I/O.
 *
 * A host is a candidate when it is connected, not in maintenance mode, its
 * overall status is green, it has no configuration issue, its quick stats
 * are present and non-zero, and neither its CPU nor its memory use is above
 * the utilisation limit (percent). Its score is its CPU use in percent of
 * its capacity (cpu MHz x cores); the least used host has the lowest score,
 * ties going to the earlier host. Hosts may also be required to have a given
 * CPU model token: the fifth word of the first CPU package's description.
 *
 * For `manage_host_selection`, a round-robin list holds the candidates whose
 * score is at most the average score, least used first, plus the same per
 * CPU model; taking the next host rotates both.
 */
#ifndef VMP_VSPHERE_HOSTSEL_H
#define VMP_VSPHERE_HOSTSEL_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

typedef struct vmp_host_facts {
    char name[256];
    char id[128];        /* managed object id (informational) */
    bool connected;      /* runtime.connectionState == connected */
    bool maintenance;    /* runtime.inMaintenanceMode */
    char status[16];     /* overallStatus: green, yellow, red, gray */
    bool config_issue;   /* configIssue not empty */
    char cpu_model[64];  /* 5th word of hardware.cpuPkg[0].description */
    double cpu_mhz;      /* summary.hardware.cpuMhz (per core) */
    double cores;        /* summary.hardware.numCpuCores */
    double mem_bytes;    /* summary.hardware.memorySize */
    double cpu_used_mhz; /* summary.quickStats.overallCpuUsage */
    double mem_used_mb;  /* summary.quickStats.overallMemoryUsage */
    bool have_stats;     /* both quick stats were reported */
} vmp_host_facts;

/* The CPU model token of a package description: its fifth word, as
 * vmpooler takes it ("Intel(R) Xeon(R) CPU E5-2650 v2 @ 2.60GHz" -> "v2");
 * "" when it has fewer than 5 words. */
void vmp_hostsel_cpu_model(const char *description, char *out, size_t len);

/* Whether h is a candidate under limit (percent); sets *cpu_pct and *mem_pct
 * (may be NULL) when computable, and a short reason into why (may be NULL)
 * when it is not a candidate. */
bool vmp_hostsel_candidate(const vmp_host_facts *h, double limit, double *cpu_pct, double *mem_pct,
                           char *why, size_t whylen);

/* Index of the least used candidate among n hosts, only hosts of CPU model
 * `model` when it is non-NULL and non-empty; -1 when there is none. */
long vmp_hostsel_least_used(const vmp_host_facts *h, size_t n, const char *model, double limit);

/* The round-robin lists of one cluster. */
typedef struct vmp_hostsel_rr {
    vmp_strlist hosts;      /* candidates at or below the average score, least used first */
    vmp_strlist models;     /* CPU models, parallel to per_model */
    vmp_strlist *per_model; /* the same, per CPU model */
    double built_at;        /* monotonic seconds */
} vmp_hostsel_rr;

/* Rebuilds rr from facts (rr's old contents are freed). Returns 0 or
 * VMP_ENOMEM. */
int vmp_hostsel_rr_build(vmp_hostsel_rr *rr, const vmp_host_facts *h, size_t n, double limit,
                         double now);
void vmp_hostsel_rr_clear(vmp_hostsel_rr *rr);
/* Takes the next host (for CPU model `model` when non-NULL) and rotates
 * the lists. VMP_ENOENT when there is none. */
int vmp_hostsel_rr_next(vmp_hostsel_rr *rr, const char *model, char *out, size_t len);
/* True when name is in the list (for model when non-NULL). */
bool vmp_hostsel_rr_contains(const vmp_hostsel_rr *rr, const char *model, const char *name);

#endif
