/*
 * engine_bench: figures for the lifecycle engine, printed beside their
 * targets. Not a test: nothing is asserted.
 *
 *   engine_bench [--seconds N] [--task-limit N] [scenario...]
 *
 * Scenarios (default: all, each in its own child process so its peak RSS is
 * its own, each with its own redis-server on a unix socket):
 *   fill      time to fill 100 pools x 100 VMs from empty       (target <= 2 s)
 *   idle1k    manager CPU and peak RSS with 1,000 ready VMs      (<= 0.25 % of a core, <= 16 MB)
 *   idle100k  the same with 100,000 ready VMs                    (<= 2 % of a core)
 *   cycle     Redis commands per VM lifecycle (clone -> ready -> expire -> destroy)
 *
 * The provider is the dummy with no latency. CPU is getrusage() of this
 * process (the engine's threads; redis-server is a separate process),
 * measured while the engine runs on its own with full pools for --seconds
 * (default 60).
 */
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "dummy/dummy.h"
#include "engine/engine.h"
#include "log.h"
#include "store/store.h"
#include "util.h"

static double g_seconds = 60;
static long g_task_limit = 10;

/* ---- a private redis-server ------------------------------------------------ */

typedef struct bredis {
    pid_t pid;
    char dir[256];
    char sock[300];
} bredis;

static int redis_start(bredis *r)
{
    snprintf(r->dir, sizeof r->dir, "/tmp/vmp-engine-bench-XXXXXX");
    if (!mkdtemp(r->dir))
        return -1;
    snprintf(r->sock, sizeof r->sock, "%s/redis.sock", r->dir);
    r->pid = fork();
    if (r->pid < 0)
        return -1;
    if (r->pid == 0) {
        int fd = open("/dev/null", 0);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", r->sock,
               "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", r->dir,
               (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        redisContext *c = redisConnectUnix(r->sock);
        if (c && !c->err) {
            redisReply *rep = redisCommand(c, "PING");
            bool ok = rep && rep->type == REDIS_REPLY_STATUS;
            freeReplyObject(rep);
            redisFree(c);
            if (ok)
                return 0;
        } else if (c) {
            redisFree(c);
        }
        struct timespec ts = {0, 25000000L};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static void redis_stop(bredis *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        waitpid(r->pid, NULL, 0);
    }
    char path[600];
    snprintf(path, sizeof path, "rm -rf '%s'", r->dir);
    if (system(path) != 0)
        fprintf(stderr, "could not remove %s\n", r->dir);
}

static long long redis_cmdstat_total(const char *sock, char *top, size_t toplen)
{
    redisContext *c = redisConnectUnix(sock);
    if (!c || c->err)
        return -1;
    redisReply *rep = redisCommand(c, "INFO commandstats");
    long long total = 0;
    vmp_buf b = VMP_BUF_INIT;
    if (rep && rep->type == REDIS_REPLY_STRING) {
        char *save = NULL;
        for (char *line = strtok_r(rep->str, "\r\n", &save); line;
             line = strtok_r(NULL, "\r\n", &save)) {
            char name[64];
            long long calls;
            if (sscanf(line, "cmdstat_%63[^:]:calls=%lld", name, &calls) != 2)
                continue;
            if (strcmp(name, "info") == 0 || strcmp(name, "config|resetstat") == 0 ||
                strcmp(name, "config") == 0)
                continue;
            total += calls;
            vmp_buf_printf(&b, "%s%s=%lld", b.len ? " " : "", name, calls);
        }
    }
    if (top)
        vmp_strlcpy(top, vmp_buf_str(&b), toplen);
    vmp_buf_free(&b);
    freeReplyObject(rep);
    redisFree(c);
    return total;
}

static void redis_resetstat(const char *sock)
{
    redisContext *c = redisConnectUnix(sock);
    if (c && !c->err)
        freeReplyObject(redisCommand(c, "CONFIG RESETSTAT"));
    if (c)
        redisFree(c);
}

/* ---- a metrics sink that counts clones and destroys ---------------------------- */

static long long g_clones, g_destroys;

static void m_gauge(void *ud, const char *name, double v)
{
    if (strncmp(name, "vmpooler_clone.", 15) == 0)
        __atomic_add_fetch(&g_clones, 1, __ATOMIC_RELAXED);
    else if (strncmp(name, "vmpooler_destroy.", 17) == 0)
        __atomic_add_fetch(&g_destroys, 1, __ATOMIC_RELAXED);
}
static const vmp_metrics_ops counting_ops = {.gauge = m_gauge};

/* ---- helpers ------------------------------------------------------------------ */

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A configuration of npools pools of size VMs each on the dummy provider. */
static vmp_config *make_config(int npools, int size, const char *extra)
{
    vmp_buf b = VMP_BUF_INIT;
    vmp_buf_printf(&b,
                   "---\n:config:\n  task_limit: %ld\n  prefix: 'b-'\n%s"
                   ":providers:\n  :dummy:\n    connection_pool_size: 16\n"
                   ":pools:\n",
                   g_task_limit, extra ? extra : "");
    for (int i = 0; i < npools; i++)
        vmp_buf_printf(&b,
                       "  - name: pool%03d\n    template: t/p%03d\n    size: %d\n"
                       "    provider: dummy\n",
                       i, i, size);
    vmp_config *cfg = NULL;
    vmp_err err = {0};
    vmp_config_opts o = {.no_env = true};
    if (vmp_config_load_string(vmp_buf_str(&b), "<bench>", &o, &cfg, NULL, &err) != 0)
        fprintf(stderr, "config: %s\n", err.msg);
    vmp_buf_free(&b);
    return cfg;
}

typedef struct run {
    bredis r;
    vmp_store_opts so;
    vmp_config *cfg;
    vmp_engine *e;
    vmp_store *st;
    vmp_clock *clock;
    vmp_metrics *metrics;
    const char **names;
    int npools, size;
} run;

static int run_open(run *x, int npools, int size, bool manual, const char *extra)
{
    memset(x, 0, sizeof *x);
    vmp_err err = {0};
    if (redis_start(&x->r) != 0) {
        fprintf(stderr, "cannot start redis-server\n");
        return -1;
    }
    x->so.socket = x->r.sock;
    x->npools = npools;
    x->size = size;
    x->cfg = make_config(npools, size, extra);
    if (!x->cfg)
        return -1;
    x->names = calloc((size_t)npools, sizeof *x->names);
    for (int i = 0; i < npools; i++)
        x->names[i] = x->cfg->pools[i].name;
    if (vmp_store_open(&x->so, &x->st, &err) != 0) {
        fprintf(stderr, "store: %s\n", err.msg);
        return -1;
    }
    if (manual)
        x->clock = vmp_clock_manual_new(1700000000.0);
    x->metrics = vmp_metrics_new(&counting_ops, NULL);
    vmp_engine_opts o = {.config = x->cfg,
                         .workers = getenv("BENCH_WORKERS") ? atoi(getenv("BENCH_WORKERS")) : 0,
                         .store = &x->so,
                         .clock = x->clock,
                         .metrics = x->metrics,
                         .manual = manual};
    if (vmp_engine_new(&o, &x->e, &err) != 0 || vmp_engine_start(x->e, &err) != 0) {
        fprintf(stderr, "engine: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static void run_close(run *x)
{
    vmp_engine_free(x->e);
    vmp_store_free(x->st);
    vmp_config_free(x->cfg);
    vmp_clock_free(x->clock);
    vmp_metrics_free(x->metrics);
    free(x->names);
    redis_stop(&x->r);
}

/* Redis's total_reads_processed: read events on client connections, about
 * one per round trip (a pipeline sent at once is one). -1 on error. */
static long long redis_reads(const char *sock)
{
    redisContext *c = redisConnectUnix(sock);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return -1;
    }
    redisReply *rep = redisCommand(c, "INFO stats");
    long long n = -1;
    const char *p = rep && rep->type == REDIS_REPLY_STRING ? strstr(rep->str, "total_reads_processed:")
                                                           : NULL;
    if (p)
        n = atoll(p + strlen("total_reads_processed:"));
    freeReplyObject(rep);
    redisFree(c);
    return n;
}

static long long g_polls; /* wait_full's reads, to subtract from round trips */

/* Ready VMs over all pools, -1 on error. */
static long long total_ready(run *x)
{
    vmp_store_pool_counts *c = calloc((size_t)x->npools, sizeof *c);
    vmp_err err = {0};
    long long n = -1;
    if (c && vmp_store_pools_counts_get(x->st, x->names, (size_t)x->npools, c, &err) == 0) {
        n = 0;
        for (int i = 0; i < x->npools; i++)
            n += c[i].n[VMP_VM_READY];
    }
    free(c);
    return n;
}

/* Waits until every pool is full; returns the seconds it took or -1. */
static double wait_full(run *x, double t0, double limit)
{
    long long want = (long long)x->npools * x->size;
    for (;;) {
        long long n = total_ready(x);
        g_polls++;
        double t = vmp_monotonic() - t0;
        if (n == want)
            return t;
        if (t > limit) {
            fprintf(stderr, "not full after %.0f s: %lld of %lld ready\n", t, n, want);
            return -1;
        }
        sleep_s(0.02); /* a cheap poll: this process is the one measured */
    }
}

/* ---- scenarios ------------------------------------------------------------------ */

static int sc_fill(void)
{
    run x;
    double t0 = vmp_monotonic();
    if (run_open(&x, 100, 100, false, NULL) != 0)
        return 1;
    g_polls = 0;
    double secs = wait_full(&x, t0, 300);
    double cpu = cpu_seconds();
    long long reads = redis_reads(x.r.sock);
    vmp_engine_status s;
    vmp_engine_status_get(x.e, &s);
    printf("fill 100 pools x 100 VMs: %.2f s (target <= 2 s)   [task_limit %ld; engine CPU %.2f s; "
           "%lld passes; %.2f Redis round trips per VM]\n",
           secs, g_task_limit, cpu, s.passes,
           reads < 0 ? -1.0 : (double)(reads - 1 - g_polls) / 10000.0);
    run_close(&x);
    return secs < 0;
}

static int sc_idle(int npools, int size, double cpu_target, const char *label)
{
    run x;
    double t0 = vmp_monotonic();
    if (run_open(&x, npools, size, false, NULL) != 0)
        return 1;
    double fill = wait_full(&x, t0, 1800);
    if (fill < 0) {
        run_close(&x);
        return 1;
    }
    /* let the fill's after-effects settle (first ready checks, delays decaying) */
    sleep_s(2);
    double c0 = cpu_seconds(), w0 = vmp_monotonic();
    sleep_s(g_seconds);
    double c1 = cpu_seconds(), w1 = vmp_monotonic();
    long long ready = total_ready(&x);
    double pct = (c1 - c0) / (w1 - w0) * 100.0;
    long rss = peak_rss_kb();
    printf("%s: %d pools x %d VMs (filled in %.1f s, %lld ready after): manager CPU %.3f %% of "
           "one core over %.0f s (target <= %.2f %%); peak RSS %.1f MB%s\n",
           label, npools, size, fill, ready, pct, w1 - w0, cpu_target, rss / 1024.0,
           npools * size <= 1000 ? " (target <= 16 MB)" : "");
    fflush(stdout);
    /* no orderly teardown of 100,000 records: this child only reports */
    redis_stop(&x.r);
    _exit(0);
}

static int sc_cycle(void)
{
    /* one pool of 100 VMs driven by hand with a manual clock: each round
     * expires every ready VM (ready_ttl), destroys it and refills */
    run x;
    const int size = 100, rounds = 5;
    if (run_open(&x, 1, size, true, "  ready_ttl: 30\n") != 0)
        return 1;
    vmp_err err = {0};
    vmp_engine_run_pass(x.e, x.names[0], NULL, &err);
    vmp_engine_wait_idle(x.e, 60);
    redis_resetstat(x.r.sock);
    long long c0 = g_clones, d0 = g_destroys, passes = 0;
    for (int r = 0; r < rounds; r++) {
        vmp_clock_advance(x.clock, 31 * 60); /* past ready_ttl: every VM expires */
        for (int k = 0; k < 3; k++) {        /* expire; destroy + refill; settle */
            vmp_engine_run_pass(x.e, x.names[0], NULL, &err);
            vmp_engine_wait_idle(x.e, 60);
            passes++;
            vmp_clock_advance(x.clock, 10);
        }
    }
    char top[2048];
    long long cmds = redis_cmdstat_total(x.r.sock, top, sizeof top);
    long long clones = g_clones - c0, destroys = g_destroys - d0;
    long long evals = 0;
    const char *ev = strstr(top, "evalsha=");
    if (ev)
        evals = atoll(ev + 8);
    printf("Redis commands per VM lifecycle (clone -> ready -> expire -> destroy): %.1f "
           "(commandstats, commands run inside scripts included); %.1f script calls (EVALSHA)\n"
           "  [%lld commands over %lld clones and %lld destroys, %lld passes of a %d-VM pool]\n",
           destroys ? (double)cmds / (double)destroys : 0.0,
           destroys ? (double)evals / (double)destroys : 0.0, cmds, clones, destroys, passes, size);
    printf("  by command: %s\n", top);
    run_close(&x);
    return 0;
}

static int run_child(const char *name)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        int rc = 1;
        if (strcmp(name, "fill") == 0)
            rc = sc_fill();
        else if (strcmp(name, "idle1k") == 0)
            rc = sc_idle(10, 100, 0.25, "idle1k");
        else if (strcmp(name, "idle100k") == 0)
            rc = sc_idle(100, 1000, 2.0, "idle100k");
        else if (strcmp(name, "cycle") == 0)
            rc = sc_cycle();
        else
            fprintf(stderr, "unknown scenario %s\n", name);
        fflush(stdout);
        _exit(rc);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int main(int argc, char **argv)
{
    const char *scen[8];
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            g_seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--task-limit") == 0 && i + 1 < argc)
            g_task_limit = atol(argv[++i]);
        else if (n < 8)
            scen[n++] = argv[i];
    }
    if (!n) {
        scen[n++] = "fill";
        scen[n++] = "idle1k";
        scen[n++] = "idle100k";
        scen[n++] = "cycle";
    }
    vmp_log_set_level(VMP_LOG_OFF);
    signal(SIGPIPE, SIG_IGN); /* as vmpoold does */
    vmp_err err = {0};
    if (vmp_dummy_register(&err) != 0) {
        fprintf(stderr, "dummy: %s\n", err.msg);
        return 1;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    double load[3] = {0};
    if (getloadavg(load, 3) < 0)
        load[0] = -1;
    printf("== engine_bench (%ld cores, load average %.2f %.2f %.2f, idle runs of %.0f s)\n", ncpu,
           load[0], load[1], load[2], g_seconds);
    int rc = 0;
    for (int i = 0; i < n; i++)
        rc |= run_child(scen[i]);
    return rc;
}
