#include "clock.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "util.h"

struct vmp_clock {
    bool manual;
    pthread_mutex_t lock;
    double t;
};

static vmp_clock system_clock = {false, PTHREAD_MUTEX_INITIALIZER, 0};

vmp_clock *vmp_clock_system(void) { return &system_clock; }

vmp_clock *vmp_clock_manual_new(double start)
{
    vmp_clock *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->manual = true;
    pthread_mutex_init(&c->lock, NULL);
    c->t = start;
    return c;
}

void vmp_clock_free(vmp_clock *c)
{
    if (!c || c == &system_clock)
        return;
    pthread_mutex_destroy(&c->lock);
    free(c);
}

double vmp_clock_now(const vmp_clock *c)
{
    if (!c || !c->manual)
        return vmp_now();
    vmp_clock *m = (vmp_clock *)c;
    pthread_mutex_lock(&m->lock);
    double t = m->t;
    pthread_mutex_unlock(&m->lock);
    return t;
}

void vmp_clock_set(vmp_clock *c, double t)
{
    if (!c || !c->manual)
        return;
    pthread_mutex_lock(&c->lock);
    c->t = t;
    pthread_mutex_unlock(&c->lock);
}

void vmp_clock_advance(vmp_clock *c, double seconds)
{
    if (!c || !c->manual)
        return;
    pthread_mutex_lock(&c->lock);
    c->t += seconds;
    pthread_mutex_unlock(&c->lock);
}
