/*
 * clock: the one source of time for the engine and the store, so tests can
 * move time by hand. The system clock is the default; a manual clock holds a
 * settable time.
 */
#ifndef VMP_CLOCK_H
#define VMP_CLOCK_H

typedef struct vmp_clock vmp_clock;

/* The process-wide system clock (wall time, seconds since the epoch).
 * Never freed. */
vmp_clock *vmp_clock_system(void);

/* A manual clock starting at `start` seconds since the epoch. */
vmp_clock *vmp_clock_manual_new(double start);
void vmp_clock_free(vmp_clock *c);

/* Current time in seconds since the epoch. */
double vmp_clock_now(const vmp_clock *c);

/* Manual clocks only: set or advance the time (no effect on the system
 * clock). */
void vmp_clock_set(vmp_clock *c, double t);
void vmp_clock_advance(vmp_clock *c, double seconds);

#endif
