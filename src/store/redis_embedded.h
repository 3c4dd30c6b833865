/*
 * redis_embedded: vmpool's own redis-server, used when the configuration
 * names no Redis server.
 *
 * It runs `redis-server` as a child process listening only on a unix socket
 * `<state_dir>/redis.sock` (port 0), with append-only persistence, its data,
 * pid file and log in the state directory (created 0700). Start waits until
 * the server answers PING (bounded) and reports a clear error, with the tail
 * of the server's log, when redis-server is missing or fails.
 *
 * Ownership: a flock on `<state_dir>/redis.lock` serialises starters. If a
 * server already answers on the socket, it is reused and this handle does
 * not own it: closing the handle leaves it running. Only the handle that
 * started the server stops it (SHUTDOWN, then SIGTERM, then SIGKILL after a
 * bound); if another handle (another vmpool on the same state directory)
 * still uses the server, it is left running for it. A handle that reuses a
 * server nobody else uses (one left behind by a vmpool that was killed)
 * adopts it and stops it on close.
 *
 * The child runs in its own session (a terminal's Ctrl-C does not reach it:
 * vmpool stops it in order) with every other descriptor closed. Unless
 * keep_on_parent_death is set, it gets SIGTERM (a clean shutdown that
 * flushes the append-only file) when the THREAD that started it ends,
 * including a SIGKILL of vmpool: start it from a thread that lives as long
 * as the server is needed (vmpoold: the main thread).
 */
#ifndef VMP_REDIS_EMBEDDED_H
#define VMP_REDIS_EMBEDDED_H

#include <stdbool.h>
#include <sys/types.h>

#include "err.h"

typedef struct vmp_redis_embedded vmp_redis_embedded;

typedef struct vmp_redis_embedded_opts {
    const char *state_dir;     /* required */
    const char *server_path;   /* NULL: "redis-server" from PATH */
    double start_timeout;      /* seconds to wait for PING; <= 0: 10 */
    double stop_timeout;       /* seconds per stop step (SHUTDOWN, SIGTERM) before
                                  the next; <= 0: 10 */
    bool keep_on_parent_death; /* do not SIGTERM the server when its starter dies */
} vmp_redis_embedded_opts;

/* Starts (or reuses) the server. *out must be NULL. */
int vmp_redis_embedded_start(const vmp_redis_embedded_opts *opts, vmp_redis_embedded **out,
                             vmp_err *err);
/* Unix socket path to connect to. */
const char *vmp_redis_embedded_socket(const vmp_redis_embedded *e);
/* Whether this handle started the server (and so will stop it). */
bool vmp_redis_embedded_owned(const vmp_redis_embedded *e);
/* Pid of the server (from its pid file when reused), or -1 if unknown. */
pid_t vmp_redis_embedded_pid(const vmp_redis_embedded *e);
/* Stops the server if owned, then frees e. NULL is a no-op. */
void vmp_redis_embedded_stop(vmp_redis_embedded *e);

#endif
