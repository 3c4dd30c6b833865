/*
 * err: the error type every fallible vmpool call fills in.
 *
 * A call returns 0 on success or a negative VMP_E* code, and writes a
 * human-readable message into the caller's vmp_err (which may be NULL when
 * the caller does not care). Setting an error never allocates, so it is safe
 * on out-of-memory paths.
 */
#ifndef VMP_ERR_H
#define VMP_ERR_H

#include <stdarg.h>

enum {
    VMP_OK = 0,
    VMP_EINVAL = -1,     /* bad argument or bad input (config, request) */
    VMP_ENOMEM = -2,     /* allocation failed */
    VMP_ENOTSUP = -3,    /* operation not supported (e.g. a NULL provider op) */
    VMP_ENOENT = -4,     /* no such pool, VM, key, file, snapshot */
    VMP_EEXIST = -5,     /* already exists (duplicate) */
    VMP_EIO = -6,        /* I/O or system call failure */
    VMP_ETIMEDOUT = -7,  /* a bound on time was reached */
    VMP_EREDIS = -8,     /* Redis unreachable or answered with an error */
    VMP_EPROVIDER = -9,  /* the provider's backend reported a failure */
    VMP_EFAILED = -10,   /* the operation ran and did not succeed ("false") */
    VMP_EAGAIN = -11,    /* try again later (busy, limit reached) */
    VMP_ESTATE = -12,    /* the object is not in the state the move needs */
};

#define VMP_ERR_MSG_MAX 256

typedef struct vmp_err {
    int code;
    char msg[VMP_ERR_MSG_MAX];
} vmp_err;

/* Clears err (code 0, empty message). err may be NULL. */
void vmp_err_clear(vmp_err *err);

/* Sets err's code and formats its message (truncated to fit). err may be
 * NULL. Returns code, so a caller can write `return vmp_err_set(...)`. */
int vmp_err_set(vmp_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int vmp_err_setv(vmp_err *err, int code, const char *fmt, va_list ap);

/* Prefixes err's message with the formatted text ("prefix: old message"),
 * keeping its code. Returns the code. */
int vmp_err_prefix(vmp_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A short constant name for a code ("invalid argument", ...). */
const char *vmp_strerror(int code);

#endif
