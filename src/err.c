#include "err.h"

#include <stdio.h>
#include <string.h>

void vmp_err_clear(vmp_err *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

int vmp_err_setv(vmp_err *err, int code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

int vmp_err_set(vmp_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmp_err_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

int vmp_err_prefix(vmp_err *err, const char *fmt, ...)
{
    if (!err)
        return 0;
    char prefix[VMP_ERR_MSG_MAX];
    char old[VMP_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    return err->code;
}

const char *vmp_strerror(int code)
{
    switch (code) {
    case VMP_OK: return "success";
    case VMP_EINVAL: return "invalid argument";
    case VMP_ENOMEM: return "out of memory";
    case VMP_ENOTSUP: return "not supported";
    case VMP_ENOENT: return "not found";
    case VMP_EEXIST: return "already exists";
    case VMP_EIO: return "I/O error";
    case VMP_ETIMEDOUT: return "timed out";
    case VMP_EREDIS: return "redis error";
    case VMP_EPROVIDER: return "provider error";
    case VMP_EFAILED: return "operation failed";
    case VMP_EAGAIN: return "try again";
    case VMP_ESTATE: return "wrong state";
    default: return "unknown error";
    }
}
