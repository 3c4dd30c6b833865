/* Running a command for vmpool.exec: fork/exec without a shell, pipes for
 * the three standard streams, poll with a deadline, SIGKILL to the
 * command's process group when the deadline passes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lua/script_internal.h"

#define OUTPUT_MAX_DEFAULT (16u * 1024u * 1024u)

extern char **environ;

void vmp_exec_result_clear(vmp_exec_result *res)
{
    if (!res)
        return;
    free(res->out);
    free(res->err);
    memset(res, 0, sizeof *res);
}

/* argv[0] as a path to execute: as is when it has a '/', else the first
 * executable match in PATH (resolved here, before fork, so the child only
 * makes async-signal-safe calls). */
static char *resolve(const char *cmd)
{
    if (strchr(cmd, '/'))
        return strdup(cmd);
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char *cand = vmp_asprintf("%.*s/%s", (int)n, n ? p : ".", cmd);
        if (!cand)
            return NULL;
        struct stat st;
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
            return cand;
        free(cand);
        if (!end)
            break;
        p = end;
    }
    errno = ENOENT;
    return NULL;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Child side after fork: only async-signal-safe calls. */
static void child(const char *path, const vmp_exec_opts *o, int in, int out, int err, int report)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* the daemon blocks its signals */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, NULL); /* ignored by the daemon; exec keeps that */
    setpgid(0, 0);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        goto fail;
    if (o->cwd && chdir(o->cwd) != 0)
        goto fail;
    execve(path, (char *const *)o->argv, o->env ? (char *const *)o->env : environ);
fail:;
    int e = errno;
    ssize_t w = write(report, &e, sizeof e);
    (void)w;
    _exit(127);
}

static int append(char **buf, size_t *len, size_t *cap, const char *data, size_t n, size_t max,
                  bool *truncated)
{
    if (*len + n > max) {
        *truncated = true;
        n = *len < max ? max - *len : 0;
    }
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *len + n + 1)
            c *= 2;
        char *nb = realloc(*buf, c);
        if (!nb)
            return -1;
        *buf = nb;
        *cap = c;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}

static void kill_group(pid_t pid)
{
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
}

static void decode(int status, vmp_exec_result *res)
{
    if (WIFEXITED(status)) {
        res->status = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        res->status = -1;
        res->signal = WTERMSIG(status);
    }
}

int vmp_exec_run(const vmp_exec_opts *o, vmp_exec_result *res, vmp_err *err)
{
    int rc = 0;
    int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1}, rep[2] = {-1, -1};
    size_t cap_out = 0, cap_err = 0, written = 0;
    pid_t pid = -1;
    char *path = NULL;
    if (!o || !o->argv || !o->argv[0] || !res)
        return vmp_err_set(err, VMP_EINVAL, "exec: no command");
    memset(res, 0, sizeof *res);
    size_t max = o->output_max ? o->output_max : OUTPUT_MAX_DEFAULT;
    double deadline = o->timeout > 0 ? vmp_monotonic() + o->timeout : 0;

    if (!(path = resolve(o->argv[0]))) {
        rc = errno == ENOENT ? vmp_err_set(err, VMP_ENOENT, "%s: command not found", o->argv[0])
                             : vmp_err_set(err, VMP_ENOMEM, "exec: out of memory");
        goto out;
    }
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(er, O_CLOEXEC) ||
        pipe2(rep, O_CLOEXEC)) {
        rc = vmp_err_set(err, VMP_EIO, "exec %s: pipe: %s", o->argv[0], strerror(errno));
        goto out;
    }
    pid = fork();
    if (pid < 0) {
        rc = vmp_err_set(err, VMP_EIO, "exec %s: fork: %s", o->argv[0], strerror(errno));
        goto out;
    }
    if (pid == 0)
        child(path, o, in[0], out[1], er[1], rep[1]);
    setpgid(pid, pid); /* also in the child: whichever runs first */
    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&er[1]);
    close_fd(&rep[1]);

    /* The report pipe closes on exec (CLOEXEC) or carries errno. */
    int child_errno = 0;
    ssize_t r;
    while ((r = read(rep[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR)
        ;
    if (r == (ssize_t)sizeof child_errno) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        pid = -1;
        rc = vmp_err_set(err, child_errno == ENOENT ? VMP_ENOENT : VMP_EIO, "cannot run %s: %s",
                         o->argv[0], strerror(child_errno));
        goto out;
    }

    if (!o->input || o->input_len == 0)
        close_fd(&in[1]);
    else
        fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);

    while (out[0] >= 0 || er[0] >= 0 || in[1] >= 0) {
        struct pollfd p[3];
        int np = 0, io = -1, iout = -1, ierr = -1;
        if (in[1] >= 0)
            io = np, p[np++] = (struct pollfd){in[1], POLLOUT, 0};
        if (out[0] >= 0)
            iout = np, p[np++] = (struct pollfd){out[0], POLLIN, 0};
        if (er[0] >= 0)
            ierr = np, p[np++] = (struct pollfd){er[0], POLLIN, 0};
        int wait_ms = -1;
        if (deadline > 0) {
            double left = deadline - vmp_monotonic();
            if (left <= 0) {
                res->timed_out = true;
                break;
            }
            wait_ms = (int)(left * 1000) + 1;
        }
        int n = poll(p, (nfds_t)np, wait_ms);
        if (n < 0 && errno != EINTR) {
            rc = vmp_err_set(err, VMP_EIO, "exec %s: poll: %s", o->argv[0], strerror(errno));
            break;
        }
        if (n <= 0)
            continue;
        if (io >= 0 && p[io].revents) {
            ssize_t w = write(in[1], o->input + written, o->input_len - written);
            if (w > 0)
                written += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == o->input_len)
                close_fd(&in[1]); /* done, or the command closed its stdin */
        }
        int idx[2] = {iout, ierr};
        for (int k = 0; k < 2; k++) {
            if (idx[k] < 0 || !p[idx[k]].revents)
                continue;
            char buf[16384];
            ssize_t got = read(p[idx[k]].fd, buf, sizeof buf);
            if (got < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (got <= 0) {
                close_fd(k == 0 ? &out[0] : &er[0]);
                continue;
            }
            int a = k == 0 ? append(&res->out, &res->out_len, &cap_out, buf, (size_t)got, max,
                                    &res->truncated)
                           : append(&res->err, &res->err_len, &cap_err, buf, (size_t)got, max,
                                    &res->truncated);
            if (a != 0) {
                rc = vmp_err_set(err, VMP_ENOMEM, "exec %s: out of memory", o->argv[0]);
                goto out;
            }
        }
    }
    if (rc != 0)
        goto out;

    /* Streams closed (or deadline): wait for the exit, still bounded. */
    for (;;) {
        int status = 0;
        pid_t w = res->timed_out ? 0 : waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            decode(status, res);
            pid = -1;
            break;
        }
        if (w < 0 && errno != EINTR) {
            /* not ours to reap (SIGCHLD ignored by the host): status unknown */
            res->status = -1;
            pid = -1;
            break;
        }
        if (res->timed_out || (deadline > 0 && vmp_monotonic() > deadline)) {
            res->timed_out = true;
            kill_group(pid);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            decode(status, res);
            pid = -1;
            break;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!res->out && append(&res->out, &res->out_len, &cap_out, "", 0, max, &res->truncated))
        rc = vmp_err_set(err, VMP_ENOMEM, "exec: out of memory");
    if (!res->err && append(&res->err, &res->err_len, &cap_err, "", 0, max, &res->truncated))
        rc = vmp_err_set(err, VMP_ENOMEM, "exec: out of memory");
out:
    if (pid > 0) {
        kill_group(pid);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    close_fd(&in[0]);
    close_fd(&in[1]);
    close_fd(&out[0]);
    close_fd(&out[1]);
    close_fd(&er[0]);
    close_fd(&er[1]);
    close_fd(&rep[0]);
    close_fd(&rep[1]);
    free(path);
    if (rc != 0)
        vmp_exec_result_clear(res);
    return rc;
}
