/*
 * redis_server: a private redis-server for tests.
 *
 * Starts `redis-server` as a child on a unix socket in a new temporary
 * directory (and optionally on a free loopback TCP port), with no
 * persistence, and stops it by pid. The child gets SIGTERM if the test
 * process dies, so a crashed test leaves no server behind. No hiredis
 * dependency: readiness is checked with a raw PING on the socket.
 *
 *   vmp_test_redis *r = vmp_test_redis_start(false, msg, sizeof msg);
 *   if (!r) skip();   // redis-server not installed: a visible skip
 *   ... connect to vmp_test_redis_socket(r) ...
 *   vmp_test_redis_stop(r);
 */
#ifndef VMP_TEST_REDIS_SERVER_H
#define VMP_TEST_REDIS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct vmp_test_redis vmp_test_redis;

/* Starts a server (tcp: also listen on 127.0.0.1:<free port>). Returns NULL
 * with a message in msg when redis-server is missing or does not start. */
vmp_test_redis *vmp_test_redis_start(bool tcp, char *msg, size_t msglen);

const char *vmp_test_redis_socket(const vmp_test_redis *r);
/* TCP port, 0 when started without tcp. */
int vmp_test_redis_port(const vmp_test_redis *r);
/* The server's pid, -1 while it is not running. */
pid_t vmp_test_redis_pid(const vmp_test_redis *r);
/* The temporary directory (removed by stop). */
const char *vmp_test_redis_dir(const vmp_test_redis *r);

/* SIGKILLs the server and waits for it (a crash). */
void vmp_test_redis_kill(vmp_test_redis *r);
/* Starts it again on the same socket and port (data is not kept).
 * Returns 0, or -1 with a message. */
int vmp_test_redis_restart(vmp_test_redis *r, char *msg, size_t msglen);
/* Stops the server (SIGTERM, SIGKILL after 5 s), removes the directory and
 * frees r. NULL is a no-op. */
void vmp_test_redis_stop(vmp_test_redis *r);

/* Whether a process with this pid exists (not a zombie). */
bool vmp_test_pid_alive(pid_t pid);

#endif
