/*
 * redis_server.c: a private redis-server for tests (see redis_server.h).
 */
#include "redis_server.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct vmp_test_redis {
    char dir[64];
    char sock[128];
    char log[128];
    int port;
    pid_t pid;
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Raw "PING" on the unix socket; true when "+PONG" comes back. */
static bool ping(const char *sock)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
    bool ok = false;
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && write(fd, "PING\r\n", 6) == 6) {
        char buf[16] = {0};
        ssize_t n = read(fd, buf, sizeof buf - 1);
        ok = n >= 5 && strncmp(buf, "+PONG", 5) == 0;
    }
    close(fd);
    return ok;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static bool reap(vmp_test_redis *r, double timeout)
{
    double deadline = mono() + timeout;
    for (;;) {
        int status;
        pid_t w = waitpid(r->pid, &status, WNOHANG);
        if (w == r->pid || (w < 0 && errno == ECHILD)) {
            r->pid = -1;
            return true;
        }
        if (mono() > deadline)
            return false;
        nap_ms(10);
    }
}

static int launch(vmp_test_redis *r, char *msg, size_t msglen)
{
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    unlink(r->sock);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(msg, msglen, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
        }
        int logfd = open(r->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (logfd >= 0)
            dup2(logfd, 2);
        char *argv[] = {"redis-server",
                        "--port",
                        port,
                        "--bind",
                        "127.0.0.1",
                        "--unixsocket",
                        r->sock,
                        "--unixsocketperm",
                        "700",
                        "--dir",
                        r->dir,
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--daemonize",
                        "no",
                        "--logfile",
                        r->log,
                        NULL};
        execvp("redis-server", argv);
        fprintf(stderr, "exec redis-server: %s\n", strerror(errno));
        _exit(127);
    }
    r->pid = pid;
    double deadline = mono() + 10;
    while (!ping(r->sock)) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            r->pid = -1;
            snprintf(msg, msglen, "redis-server exited at start (status %d, see %s)",
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1, r->log);
            return -1;
        }
        if (mono() > deadline) {
            kill(pid, SIGKILL);
            reap(r, 5);
            snprintf(msg, msglen, "redis-server did not answer on %s", r->sock);
            return -1;
        }
        nap_ms(10);
    }
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

vmp_test_redis *vmp_test_redis_start(bool tcp, char *msg, size_t msglen)
{
    vmp_test_redis *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(msg, msglen, "out of memory");
        return NULL;
    }
    r->pid = -1;
    snprintf(r->dir, sizeof r->dir, "/tmp/vmp-test-redis-XXXXXX");
    if (!mkdtemp(r->dir)) {
        snprintf(msg, msglen, "mkdtemp: %s", strerror(errno));
        free(r);
        return NULL;
    }
    snprintf(r->sock, sizeof r->sock, "%s/redis.sock", r->dir);
    snprintf(r->log, sizeof r->log, "%s/redis.log", r->dir);
    r->port = tcp ? free_port() : 0;
    if (tcp && r->port <= 0) {
        snprintf(msg, msglen, "no free port");
        vmp_test_redis_stop(r);
        return NULL;
    }
    if (launch(r, msg, msglen) < 0) {
        vmp_test_redis_stop(r);
        return NULL;
    }
    return r;
}

const char *vmp_test_redis_socket(const vmp_test_redis *r) { return r->sock; }
int vmp_test_redis_port(const vmp_test_redis *r) { return r->port; }
pid_t vmp_test_redis_pid(const vmp_test_redis *r) { return r->pid; }
const char *vmp_test_redis_dir(const vmp_test_redis *r) { return r->dir; }

void vmp_test_redis_kill(vmp_test_redis *r)
{
    if (r->pid <= 0)
        return;
    kill(r->pid, SIGKILL);
    reap(r, 10);
}

int vmp_test_redis_restart(vmp_test_redis *r, char *msg, size_t msglen)
{
    if (r->pid > 0)
        vmp_test_redis_kill(r);
    return launch(r, msg, msglen);
}

void vmp_test_redis_stop(vmp_test_redis *r)
{
    if (!r)
        return;
    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        if (!reap(r, 5)) {
            kill(r->pid, SIGKILL);
            reap(r, 5);
        }
    }
    if (r->dir[0] && strncmp(r->dir, "/tmp/vmp-test-redis-", 20) == 0)
        nftw(r->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(r);
}

bool vmp_test_pid_alive(pid_t pid)
{
    if (pid <= 0)
        return false;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* State is the field after the ")" that closes the command name. */
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}
