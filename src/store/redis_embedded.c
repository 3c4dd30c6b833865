/*
 * redis_embedded.c: start, reuse and stop vmpool's own redis-server.
 *
 * Files in the state directory:
 *   redis.conf   written at each start
 *   redis.sock   the only listener (port 0)
 *   redis.pid    written by redis-server
 *   redis.log    its log (stdout/stderr of the child go there too)
 *   redis.lock   flock: one starter/stopper at a time
 *   redis.users  flock LOCK_SH held by every open handle, so the owner can
 *                tell whether anyone else still uses the server
 *   appendonlydir/, dump.rdb   the data
 *
 * Ownership rule: the handle that started the server owns it and stops it
 * on close, unless another handle still uses it (then it is left running
 * for them). A handle that finds a server nobody uses (left by a vmpool
 * that was killed) adopts it. Otherwise a reused server is never stopped.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "log.h"
#include "store/redis_embedded.h"
#include "util.h"

struct vmp_redis_embedded {
    char *dir;
    char *sock;
    char *pidfile;
    char *logfile;
    pid_t pid;  /* server pid, -1 unknown */
    bool child; /* pid is our child (waitpid works) */
    bool owned;
    int users_fd; /* holds LOCK_SH while the handle is open */
    double stop_timeout;
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Blocks SIGPIPE in this thread around socket writes to a server that may
 * be going away; a SIGPIPE raised meanwhile is consumed. */
static void pipe_block(sigset_t *old)
{
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, old);
}

static void pipe_unblock(const sigset_t *old)
{
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    if (sigismember(&pending, SIGPIPE) == 1 && !sigismember(old, SIGPIPE)) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* 1: answers PING; 0: nothing there; -1: there but not ready (LOADING). */
static int ping_unguarded(const char *sock);

static int ping(const char *sock)
{
    sigset_t old;
    pipe_block(&old);
    int r = ping_unguarded(sock);
    pipe_unblock(&old);
    return r;
}

static int ping_unguarded(const char *sock)
{
    struct timeval tv = {0, 500000};
    redisContext *c = redisConnectUnixWithTimeout(sock, tv);
    if (!c)
        return 0;
    int res = 0;
    if (!c->err) {
        redisSetTimeout(c, tv);
        redisReply *r = redisCommand(c, "PING");
        if (r) {
            if (r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0)
                res = 1;
            else if (r->type == REDIS_REPLY_ERROR)
                res = -1;
            freeReplyObject(r);
        }
    }
    redisFree(c);
    return res;
}

static pid_t read_pidfile(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    long long v = -1;
    if (vmp_file_read(path, &data, &len, NULL) == 0) {
        if (vmp_parse_long(data, &v) < 0 || v <= 0)
            v = -1;
    }
    free(data);
    return (pid_t)v;
}

/* The last lines of the server log, joined with " | ", into buf. */
static void log_tail(const char *path, char *buf, size_t n)
{
    buf[0] = '\0';
    char *data = NULL;
    size_t len = 0;
    if (vmp_file_read(path, &data, &len, NULL) < 0 || len == 0) {
        free(data);
        snprintf(buf, n, "(no log)");
        return;
    }
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        data[--len] = '\0';
    /* Start of the 4th line from the end. */
    size_t start = len;
    int lines = 0;
    while (start > 0 && lines < 4) {
        start--;
        if (data[start] == '\n' && ++lines == 4) {
            start++;
            break;
        }
    }
    size_t o = 0;
    for (size_t i = start; i < len && o + 4 < n; i++) {
        if (data[i] == '\n') {
            o += (size_t)snprintf(buf + o, n - o, " | ");
            if (o >= n)
                break;
        } else if (data[i] != '\r') {
            buf[o++] = data[i];
        }
    }
    buf[o < n ? o : n - 1] = '\0';
    free(data);
}

static int lock_file(const char *path, int op, double timeout, int *fd_out, vmp_err *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return vmp_err_set(err, VMP_EIO, "%s: %s", path, strerror(errno));
    double deadline = vmp_monotonic() + timeout;
    while (flock(fd, op | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            int rc = vmp_err_set(err, VMP_EIO, "flock %s: %s", path, strerror(errno));
            close(fd);
            return rc;
        }
        if (vmp_monotonic() > deadline) {
            close(fd);
            return vmp_err_set(err, VMP_ETIMEDOUT, "%s: still locked after %.0f s", path, timeout);
        }
        sleep_ms(20);
    }
    *fd_out = fd;
    return 0;
}

/* Whether any other handle holds the users lock. Temporarily trades our
 * shared lock for an exclusive one. */
static bool others_use(vmp_redis_embedded *e)
{
    if (e->users_fd < 0)
        return false;
    if (flock(e->users_fd, LOCK_EX | LOCK_NB) == 0) {
        flock(e->users_fd, LOCK_SH);
        return false;
    }
    return true;
}

static int write_conf(const vmp_redis_embedded *e, const char *conf, vmp_err *err)
{
    vmp_buf b = VMP_BUF_INIT;
    vmp_buf_printf(&b,
                   "# Written by vmpool at each start of its embedded redis-server.\n"
                   "port 0\n"
                   "unixsocket \"%s\"\n"
                   "unixsocketperm 700\n"
                   "dir \"%s\"\n"
                   "pidfile \"%s\"\n"
                   "logfile \"%s\"\n"
                   "daemonize no\n"
                   "appendonly yes\n"
                   "appendfsync everysec\n",
                   e->sock, e->dir, e->pidfile, e->logfile);
    if (b.oom) {
        vmp_buf_free(&b);
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    }
    int rc = vmp_file_write_atomic(conf, b.s, b.len, err);
    vmp_buf_free(&b);
    return rc;
}

/* Child side of the fork: own session, no inherited descriptors, output to
 * the log, die with the parent, exec. Reports an exec failure's errno
 * through errfd. Never returns. */
static void exec_child(const char *server, const char *conf, const char *logfile, int errfd,
                       pid_t parent, bool die_with_parent)
{
    setsid();
    if (die_with_parent) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
    }
    int devnull = open("/dev/null", O_RDONLY);
    int logfd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (devnull >= 0)
        dup2(devnull, 0);
    if (logfd >= 0) {
        dup2(logfd, 1);
        dup2(logfd, 2);
    }
    long maxfd = sysconf(_SC_OPEN_MAX);
    if (maxfd < 0 || maxfd > 65536)
        maxfd = 65536;
    for (int fd = 3; fd < maxfd; fd++) {
        if (fd != errfd)
            close(fd);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    char *argv[] = {(char *)server, (char *)conf, NULL};
    execvp(server, argv);
    int e = errno;
    if (write(errfd, &e, sizeof e) < 0) {
        /* nothing more to do */
    }
    _exit(127);
}

static bool alive(vmp_redis_embedded *e)
{
    if (e->pid <= 0)
        return false;
    /* A server adopted from another handle of this process is our child
     * too: reap it whenever it is one. */
    int status;
    pid_t r = waitpid(e->pid, &status, WNOHANG);
    if (r == e->pid || (e->child && r < 0 && errno == ECHILD)) {
        e->child = false;
        e->pid = -1;
        return false;
    }
    if (r == 0)
        return true;
    if (kill(e->pid, 0) < 0 && errno != EPERM)
        return false;
    /* Not our child: a zombie waiting for its parent counts as gone. */
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)e->pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

static bool wait_gone(vmp_redis_embedded *e, double timeout)
{
    double deadline = vmp_monotonic() + timeout;
    while (alive(e)) {
        if (vmp_monotonic() > deadline)
            return false;
        sleep_ms(20);
    }
    return true;
}

static int start_server(vmp_redis_embedded *e, const vmp_redis_embedded_opts *opts, vmp_err *err)
{
    const char *server = opts->server_path ? opts->server_path : "redis-server";
    double timeout = opts->start_timeout > 0 ? opts->start_timeout : 10;
    char *conf = vmp_asprintf("%s/redis.conf", e->dir);
    int pipefd[2] = {-1, -1};
    int rc = 0;
    if (!conf) {
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
        goto out;
    }
    unlink(e->sock); /* a stale socket of a dead server */
    if ((rc = write_conf(e, conf, err)) < 0)
        goto out;
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        rc = vmp_err_set(err, VMP_EIO, "pipe: %s", strerror(errno));
        goto out;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        rc = vmp_err_set(err, VMP_EIO, "fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0)
        exec_child(server, conf, e->logfile, pipefd[1], parent, !opts->keep_on_parent_death);
    close(pipefd[1]);
    pipefd[1] = -1;
    e->pid = pid;
    e->child = true;
    e->owned = true;
    int child_errno = 0;
    ssize_t nr;
    while ((nr = read(pipefd[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR)
        ;
    if (nr == (ssize_t)sizeof child_errno) {
        wait_gone(e, 5);
        e->owned = false;
        rc = vmp_err_set(err, VMP_EIO, "embedded redis: cannot run %s: %s", server,
                         strerror(child_errno));
        goto out;
    }
    double deadline = vmp_monotonic() + timeout;
    for (;;) {
        if (ping(e->sock) == 1)
            break;
        if (!alive(e)) {
            char tail[200];
            log_tail(e->logfile, tail, sizeof tail);
            e->owned = false;
            rc = vmp_err_set(err, VMP_EIO, "embedded redis: %s exited during start (log %s: %s)",
                             server, e->logfile, tail);
            goto out;
        }
        if (vmp_monotonic() > deadline) {
            char tail[200];
            log_tail(e->logfile, tail, sizeof tail);
            kill(e->pid, SIGKILL);
            wait_gone(e, 5);
            e->owned = false;
            rc = vmp_err_set(err, VMP_ETIMEDOUT,
                             "embedded redis: no answer on %s after %.0f s (log %s: %s)", e->sock,
                             timeout, e->logfile, tail);
            goto out;
        }
        sleep_ms(20);
    }
    vmp_log(VMP_LOG_INFO, "store", "embedded redis-server started (pid %d, socket %s)", (int)e->pid,
            e->sock);
out:
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    free(conf);
    return rc;
}

int vmp_redis_embedded_start(const vmp_redis_embedded_opts *opts, vmp_redis_embedded **out,
                             vmp_err *err)
{
    if (!opts || !opts->state_dir || !opts->state_dir[0])
        return vmp_err_set(err, VMP_EINVAL, "embedded redis: no state directory");
    if (strpbrk(opts->state_dir, "\"\n\r\\"))
        return vmp_err_set(err, VMP_EINVAL,
                           "embedded redis: state directory %s: quotes, backslashes and "
                           "newlines are not supported",
                           opts->state_dir);
    vmp_redis_embedded *e = calloc(1, sizeof *e);
    if (!e)
        return vmp_err_set(err, VMP_ENOMEM, "out of memory");
    e->pid = -1;
    e->users_fd = -1;
    e->stop_timeout = opts->stop_timeout > 0 ? opts->stop_timeout : 10;
    int lock_fd = -1;
    char *lockpath = NULL, *userspath = NULL;
    int rc = 0;
    e->dir = realpath(opts->state_dir, NULL);
    if (!e->dir) {
        if ((rc = vmp_mkdir_p(opts->state_dir, 0700, err)) < 0)
            goto out;
        e->dir = realpath(opts->state_dir, NULL);
        if (!e->dir) {
            rc = vmp_err_set(err, VMP_EIO, "%s: %s", opts->state_dir, strerror(errno));
            goto out;
        }
    }
    e->sock = vmp_asprintf("%s/redis.sock", e->dir);
    e->pidfile = vmp_asprintf("%s/redis.pid", e->dir);
    e->logfile = vmp_asprintf("%s/redis.log", e->dir);
    lockpath = vmp_asprintf("%s/redis.lock", e->dir);
    userspath = vmp_asprintf("%s/redis.users", e->dir);
    if (!e->sock || !e->pidfile || !e->logfile || !lockpath || !userspath) {
        rc = vmp_err_set(err, VMP_ENOMEM, "out of memory");
        goto out;
    }
    if (strlen(e->sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        rc = vmp_err_set(err, VMP_EINVAL, "embedded redis: socket path %s is too long", e->sock);
        goto out;
    }
    if ((rc = lock_file(lockpath, LOCK_EX, 30, &lock_fd, err)) < 0)
        goto out;
    int state = ping(e->sock);
    if (state == -1) {
        /* Up but still loading its data: wait for it. */
        double deadline = vmp_monotonic() + (opts->start_timeout > 0 ? opts->start_timeout : 10);
        while ((state = ping(e->sock)) == -1 && vmp_monotonic() < deadline)
            sleep_ms(50);
    }
    if (state == 1) {
        e->pid = read_pidfile(e->pidfile);
        /* A server nobody uses (its vmpool was killed) is adopted. */
        int probe = -1;
        if (lock_file(userspath, LOCK_EX, 0, &probe, NULL) == 0) {
            e->owned = e->pid > 0;
            close(probe);
        }
        vmp_log(VMP_LOG_INFO, "store", "embedded redis-server already running on %s%s", e->sock,
                e->owned ? " (adopted)" : "");
    } else if ((rc = start_server(e, opts, err)) < 0) {
        goto out;
    }
    if ((rc = lock_file(userspath, LOCK_SH, 30, &e->users_fd, err)) < 0) {
        goto out;
    }
    *out = e;
    e = NULL;
out:
    /* Unlock before a failed handle's stop, which takes the lock itself. */
    if (lock_fd >= 0)
        close(lock_fd);
    free(lockpath);
    free(userspath);
    vmp_redis_embedded_stop(e);
    return rc;
}

const char *vmp_redis_embedded_socket(const vmp_redis_embedded *e) { return e->sock; }
bool vmp_redis_embedded_owned(const vmp_redis_embedded *e) { return e->owned; }
pid_t vmp_redis_embedded_pid(const vmp_redis_embedded *e) { return e->pid; }

static void shutdown_server(vmp_redis_embedded *e)
{
    /* SHUTDOWN flushes the append-only file; the server closes the
     * connection without a reply when it works. */
    bool sent = false;
    struct timeval tv = {2, 0};
    redisContext *c = e->sock ? redisConnectUnixWithTimeout(e->sock, tv) : NULL;
    if (c && !c->err) {
        redisSetTimeout(c, tv);
        sigset_t old;
        pipe_block(&old);
        redisReply *r = redisCommand(c, "SHUTDOWN");
        pipe_unblock(&old);
        sent = !r || r->type != REDIS_REPLY_ERROR;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    if (!sent && e->pid > 0)
        kill(e->pid, SIGTERM);
    if (wait_gone(e, e->stop_timeout))
        goto done;
    vmp_log(VMP_LOG_WARN, "store", "embedded redis-server (pid %d) still running, SIGTERM",
            (int)e->pid);
    kill(e->pid, SIGTERM);
    if (wait_gone(e, e->stop_timeout))
        goto done;
    vmp_log(VMP_LOG_WARN, "store", "embedded redis-server (pid %d) still running, SIGKILL",
            (int)e->pid);
    kill(e->pid, SIGKILL);
    wait_gone(e, 5);
done:
    vmp_log(VMP_LOG_INFO, "store", "embedded redis-server stopped");
}

void vmp_redis_embedded_stop(vmp_redis_embedded *e)
{
    if (!e)
        return;
    if (e->owned && e->pid > 0) {
        char *lockpath = vmp_asprintf("%s/redis.lock", e->dir);
        int lock_fd = -1;
        if (lockpath)
            lock_file(lockpath, LOCK_EX, 30, &lock_fd, NULL);
        if (others_use(e))
            vmp_log(VMP_LOG_INFO, "store",
                    "embedded redis-server still used by another vmpool, left running");
        else
            shutdown_server(e);
        if (lock_fd >= 0)
            close(lock_fd);
        free(lockpath);
    }
    if (e->users_fd >= 0)
        close(e->users_fd);
    free(e->dir);
    free(e->sock);
    free(e->pidfile);
    free(e->logfile);
    free(e);
}
