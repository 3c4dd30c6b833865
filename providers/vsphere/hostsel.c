#include "hostsel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vmp_hostsel_cpu_model(const char *description, char *out, size_t len)
{
    if (len)
        out[0] = '\0';
    if (!description)
        return;
    const char *p = description;
    for (int word = 0; *p; word++) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            return;
        const char *end = p;
        while (*end && *end != ' ' && *end != '\t')
            end++;
        if (word == 4) {
            snprintf(out, len, "%.*s", (int)(end - p), p);
            return;
        }
        p = end;
    }
}

bool vmp_hostsel_candidate(const vmp_host_facts *h, double limit, double *cpu_pct, double *mem_pct,
                           char *why, size_t whylen)
{
    const char *reason = NULL;
    double cpu = 0, mem = 0;
    if (!h->connected)
        reason = "not connected";
    else if (h->maintenance)
        reason = "in maintenance mode";
    else if (strcmp(h->status, "green") != 0)
        reason = "overall status is not green";
    else if (h->config_issue)
        reason = "has a configuration issue";
    else if (!h->have_stats || h->cpu_mhz <= 0 || h->cores <= 0 || h->mem_bytes <= 0)
        reason = "no usage statistics";
    if (!reason) {
        cpu = h->cpu_used_mhz / (h->cpu_mhz * h->cores) * 100.0;
        mem = h->mem_used_mb / (h->mem_bytes / 1024.0 / 1024.0) * 100.0;
        if (cpu_pct)
            *cpu_pct = cpu;
        if (mem_pct)
            *mem_pct = mem;
        if (cpu == 0.0 || mem == 0.0)
            reason = "usage statistics are zero";
        else if (cpu > limit)
            reason = "CPU use above the utilization limit";
        else if (mem > limit)
            reason = "memory use above the utilization limit";
    }
    if (reason && why && whylen)
        snprintf(why, whylen, "%s", reason);
    return reason == NULL;
}

long vmp_hostsel_least_used(const vmp_host_facts *h, size_t n, const char *model, double limit)
{
    long best = -1;
    double best_score = 0;
    for (size_t i = 0; i < n; i++) {
        double cpu;
        if (model && model[0] && strcmp(h[i].cpu_model, model) != 0)
            continue;
        if (!vmp_hostsel_candidate(&h[i], limit, &cpu, NULL, NULL, 0))
            continue;
        if (best < 0 || cpu < best_score) {
            best = (long)i;
            best_score = cpu;
        }
    }
    return best;
}

void vmp_hostsel_rr_clear(vmp_hostsel_rr *rr)
{
    vmp_strlist_clear(&rr->hosts);
    for (size_t i = 0; i < rr->models.n; i++)
        vmp_strlist_clear(&rr->per_model[i]);
    free(rr->per_model);
    rr->per_model = NULL;
    vmp_strlist_clear(&rr->models);
    rr->built_at = 0;
}

typedef struct scored {
    size_t i;
    double score;
} scored;

static int by_score(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i; /* stable: object order */
}

int vmp_hostsel_rr_build(vmp_hostsel_rr *rr, const vmp_host_facts *h, size_t n, double limit,
                         double now)
{
    vmp_hostsel_rr_clear(rr);
    scored *c = calloc(n ? n : 1, sizeof *c);
    if (!c)
        return VMP_ENOMEM;
    size_t nc = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double cpu;
        if (!vmp_hostsel_candidate(&h[i], limit, &cpu, NULL, NULL, 0))
            continue;
        c[nc].i = i;
        c[nc].score = cpu;
        sum += cpu;
        nc++;
    }
    qsort(c, nc, sizeof *c, by_score);
    double avg = nc ? sum / (double)nc : 0;
    int rc = 0;
    for (size_t k = 0; k < nc && rc == 0; k++) {
        if (c[k].score > avg)
            continue;
        const vmp_host_facts *f = &h[c[k].i];
        rc = vmp_strlist_push(&rr->hosts, f->name);
        if (rc != 0)
            break;
        long m = vmp_strlist_find(&rr->models, f->cpu_model);
        if (m < 0) {
            vmp_strlist *pm = realloc(rr->per_model, (rr->models.n + 1) * sizeof *pm);
            if (!pm) {
                rc = VMP_ENOMEM;
                break;
            }
            rr->per_model = pm;
            memset(&pm[rr->models.n], 0, sizeof *pm);
            rc = vmp_strlist_push(&rr->models, f->cpu_model);
            if (rc != 0)
                break;
            m = (long)rr->models.n - 1;
        }
        rc = vmp_strlist_push(&rr->per_model[m], f->name);
    }
    free(c);
    if (rc != 0)
        vmp_hostsel_rr_clear(rr);
    else
        rr->built_at = now;
    return rc;
}

/* Moves element i of l to its end. */
static void rotate_to_end(vmp_strlist *l, size_t i)
{
    if (i >= l->n)
        return;
    char *s = l->v[i];
    memmove(l->v + i, l->v + i + 1, (l->n - i - 1) * sizeof *l->v);
    l->v[l->n - 1] = s;
}

int vmp_hostsel_rr_next(vmp_hostsel_rr *rr, const char *model, char *out, size_t len)
{
    vmp_strlist *l = &rr->hosts;
    if (model) {
        long m = vmp_strlist_find(&rr->models, model);
        if (m < 0)
            return VMP_ENOENT;
        l = &rr->per_model[m];
    }
    if (l->n == 0)
        return VMP_ENOENT;
    vmp_strlcpy(out, l->v[0], len);
    rotate_to_end(l, 0);
    if (model) {
        long i = vmp_strlist_find(&rr->hosts, out);
        if (i >= 0)
            rotate_to_end(&rr->hosts, (size_t)i);
    }
    return 0;
}

bool vmp_hostsel_rr_contains(const vmp_hostsel_rr *rr, const char *model, const char *name)
{
    if (!model)
        return vmp_strlist_contains(&rr->hosts, name);
    long m = vmp_strlist_find(&rr->models, model);
    return m >= 0 && vmp_strlist_contains(&rr->per_model[m], name);
}
