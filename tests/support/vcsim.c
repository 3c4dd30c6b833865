#include "vcsim.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct vmp_vcsim {
    char script_dir[512];
    char run_dir[256];
    char url[256];
    char control[256];
    char cacert[512];
    char username[64];
    char password[64];
    int pid;
};

/* Runs `bash script` with extra environment entries; stdout (when out is
 * non-NULL) and stderr go to files in the run dir. Returns the exit status
 * or -1. */
static int run_script(const vmp_vcsim *v, const char *script, char *const *extra_env,
                      const char *out_file)
{
    char path[600], err_file[300];
    snprintf(path, sizeof path, "%s/%s", v->script_dir, script);
    snprintf(err_file, sizeof err_file, "%s/%s.log", v->run_dir, script);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        for (size_t i = 0; extra_env && extra_env[i]; i++)
            putenv(extra_env[i]);
        int fd = open(err_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        if (out_file) {
            int ofd = open(out_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (ofd >= 0)
                dup2(ofd, 1);
        } else if (fd >= 0) {
            dup2(fd, 1);
        }
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        execl("/bin/bash", "bash", path, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The last non-empty line of a file, for a skip message. */
static void last_line(const char *file, char *buf, size_t len)
{
    FILE *f = fopen(file, "r");
    char line[512];
    buf[0] = '\0';
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0])
            snprintf(buf, len, "%s", line);
    }
    fclose(f);
}

static void env_value(const char *file, const char *key, char *buf, size_t len)
{
    FILE *f = fopen(file, "r");
    char line[1024];
    size_t kl = strlen(key);
    buf[0] = '\0';
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, key, kl) == 0 && line[kl] == '=')
            snprintf(buf, len, "%s", line + kl + 1);
    }
    fclose(f);
}

static void remove_tree(const char *dir)
{
    if (!dir[0] || strncmp(dir, "/tmp/", 5) != 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/rm", "rm", "-rf", dir, (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
}

int vmp_vcsim_start(const vmp_vcsim_opts *opts, vmp_vcsim **out, char *why, size_t whylen)
{
    vmp_vcsim *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    snprintf(v->script_dir, sizeof v->script_dir, "%s", opts->script_dir);
    char start[600];
    snprintf(start, sizeof start, "%s/start-vcsim.sh", v->script_dir);
    if (access(start, R_OK) != 0) {
        snprintf(why, whylen, "%s not found", start);
        free(v);
        return -1;
    }
    snprintf(v->run_dir, sizeof v->run_dir, "/tmp/vmp-vcsim-XXXXXX");
    if (!mkdtemp(v->run_dir)) {
        snprintf(why, whylen, "mkdtemp: %s", strerror(errno));
        free(v);
        return -1;
    }
    char e_run[300], e_user[100], e_pass[100], e_args[600], e_tls[32];
    char *env[8];
    size_t n = 0;
    snprintf(e_run, sizeof e_run, "VCSIM_RUN_DIR=%s", v->run_dir);
    env[n++] = e_run;
    if (opts->username) {
        snprintf(e_user, sizeof e_user, "VCSIM_USERNAME=%s", opts->username);
        env[n++] = e_user;
    }
    if (opts->password) {
        snprintf(e_pass, sizeof e_pass, "VCSIM_PASSWORD=%s", opts->password);
        env[n++] = e_pass;
    }
    snprintf(e_args, sizeof e_args, "VCSIM_ARGS=%s", opts->args ? opts->args : "");
    env[n++] = e_args;
    snprintf(e_tls, sizeof e_tls, "VCSIM_TLS=%d", opts->plain_http ? 0 : 1);
    env[n++] = e_tls;
    env[n] = NULL;

    char url_file[300], log_file[300];
    snprintf(url_file, sizeof url_file, "%s/start.out", v->run_dir);
    snprintf(log_file, sizeof log_file, "%s/start-vcsim.sh.log", v->run_dir);
    int rc = run_script(v, "start-vcsim.sh", env, url_file);
    char envfile[300];
    snprintf(envfile, sizeof envfile, "%s/vcsim.env", v->run_dir);
    char pid[32];
    env_value(envfile, "VCSIM_URL", v->url, sizeof v->url);
    env_value(envfile, "VCSIM_CONTROL_URL", v->control, sizeof v->control);
    env_value(envfile, "VCSIM_CACERT", v->cacert, sizeof v->cacert);
    env_value(envfile, "VCSIM_USERNAME", v->username, sizeof v->username);
    env_value(envfile, "VCSIM_PASSWORD", v->password, sizeof v->password);
    env_value(envfile, "VCSIM_PID", pid, sizeof pid);
    v->pid = atoi(pid);
    /* The env file shell-quotes values (printf %q); use the credentials we
     * asked for as they are. */
    if (opts->username)
        snprintf(v->username, sizeof v->username, "%s", opts->username);
    if (opts->password)
        snprintf(v->password, sizeof v->password, "%s", opts->password);
    if (rc != 0 || !v->url[0] || v->pid <= 0) {
        char line[400];
        last_line(log_file, line, sizeof line);
        snprintf(why, whylen, "start-vcsim.sh exited with %d: %s", rc,
                 line[0] ? line : "(no output)");
        vmp_vcsim_stop(v);
        return -1;
    }
    *out = v;
    return 0;
}

void vmp_vcsim_stop(vmp_vcsim *v)
{
    if (!v)
        return;
    char e_run[300];
    snprintf(e_run, sizeof e_run, "VCSIM_RUN_DIR=%s", v->run_dir);
    char *env[] = {e_run, NULL};
    char pidfile[300];
    snprintf(pidfile, sizeof pidfile, "%s/vcsim.pid", v->run_dir);
    if (access(pidfile, F_OK) == 0)
        run_script(v, "stop-vcsim.sh", env, NULL);
    /* stop-vcsim.sh checks that the pid is the simulator before it signals;
     * if it is still alive after that, end it by its pid. */
    if (v->pid > 0 && kill(v->pid, 0) == 0) {
        kill(v->pid, SIGKILL);
    }
    remove_tree(v->run_dir);
    free(v);
}

const char *vmp_vcsim_url(const vmp_vcsim *v) { return v->url; }
const char *vmp_vcsim_cacert(const vmp_vcsim *v) { return v->cacert; }
const char *vmp_vcsim_username(const vmp_vcsim *v) { return v->username; }
const char *vmp_vcsim_password(const vmp_vcsim *v) { return v->password; }
int vmp_vcsim_pid(const vmp_vcsim *v) { return v->pid; }

typedef struct sink {
    char *buf;
    size_t len, used;
} sink;

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    sink *s = ud;
    size_t n = size * nmemb;
    if (s->buf && s->len) {
        size_t room = s->len - 1 - s->used;
        size_t k = n < room ? n : room;
        memcpy(s->buf + s->used, p, k);
        s->used += k;
        s->buf[s->used] = '\0';
    }
    return n;
}

int vmp_vcsim_control(vmp_vcsim *v, const char *method, const char *what, const char *query,
                      char *out, size_t outlen)
{
    char url[1024];
    snprintf(url, sizeof url, "%s/%s%s%s", v->control, what, query ? "?" : "", query ? query : "");
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    sink s = {out, outlen, 0};
    if (out && outlen)
        out[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    if (v->cacert[0])
        curl_easy_setopt(c, CURLOPT_CAINFO, v->cacert);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return (int)status;
}
