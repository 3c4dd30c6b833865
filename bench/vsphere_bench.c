/*
 * vsphere_bench: what the vSphere provider costs on the wire and in time,
 * measured against a private vcsim through the provider ops (no engine):
 *
 *   1. a sequential VM lifecycle (create_vm, vm_ready until ready,
 *      destroy_vm), repeated: SOAP round trips, bytes sent/received and time
 *      per lifecycle and per op;
 *   2. filling a 50-VM pool with 10 threads calling create_vm (the engine's
 *      task_limit 10), without and with a simulated clone time;
 *   3. one inventory pass (vms_in_pool) of a 100-VM pool;
 *
 * and through the real lifecycle engine (threaded, as vmpoold runs it, on a
 * private redis-server):
 *
 *   4. filling a 50-VM pool with task_limit 10 from nothing to 50 ready,
 *      without and with a simulated clone time: the time, SOAP round trips
 *      and bytes per VM (the engine adds inventory passes, the IP address
 *      read and readiness checks), by SOAP method; then the pool's size set
 *      to 0 (a reload) until every VM is destroyed;
 *   5. optionally (IDLE_S > 0), what a full, quiet 50-VM pool costs per
 *      minute (inventory passes, ready checks every vm_checktime).
 *
 *   vsphere_bench VCSIM_DIR [LIFECYCLES] [CLONE_MS] [IDLE_S]
 *
 * Counts come from the SOAP client's own counters (vmp_vsphere_counters),
 * per method from its debug log lines. Figures are printed, never
 * asserted. vcsim answers in-process and finishes tasks at once unless
 * told otherwise, so times here are the provider's, the engine's and the
 * protocol's overhead, not a vCenter's.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "engine/engine.h"
#include "log.h"
#include "provider.h"
#include "redis_server.h"
#include "store/store.h"
#include "util.h"
#include "vcsim.h"
#include "vsphere/vim.h"
#include "vsphere/vsphere.h"

#define POOL "bench"
#define THREADS 10

static vmp_vcsim *sim;

static void die(const char *what, const vmp_err *err)
{
    fprintf(stderr, "vsphere_bench: %s: %s\n", what, err ? err->msg : "");
    vmp_vcsim_stop(sim);
    exit(1);
}

/* The template: a powered-off copy of a model VM in DC0/vm/templates. */
static void make_template(void)
{
    vmp_soap_opts o = {.url = vmp_vcsim_url(sim),
                       .username = vmp_vcsim_username(sim),
                       .password = vmp_vcsim_password(sim),
                       .ca_file = vmp_vcsim_cacert(sim)};
    vmp_soap *s = NULL;
    vmp_err err = {0};
    vmp_moref root, folder, vm, pool;
    if (vmp_soap_new(&o, &s, &err) || vmp_soap_connect(s, &err) ||
        vmp_vim_find_by_path(s, "DC0/vm", &root, &err) ||
        vmp_vim_create_folder(s, &root, "templates", &folder, &err) ||
        vmp_vim_find_by_path(s, "DC0/vm/DC0_C0_RP0_VM0", &vm, &err) ||
        vmp_vim_find_by_path(s, "DC0/host/DC0_C0/Resources", &pool, &err))
        die("template", &err);
    vmp_vim_clone c = {.location = {.pool = &pool}, .is_template = true};
    vmp_buf args = VMP_BUF_INIT;
    vmp_xml_moref(&args, "folder", &folder);
    vmp_xml_elem(&args, "name", "base");
    vmp_vim_clone_xml(&args, "spec", &c);
    if (vmp_vim_run_task(s, "CloneVM_Task", &vm, args.s, "template", 60, NULL, &err))
        die("template clone", &err);
    vmp_buf_free(&args);
    vmp_soap_free(s);
}

static int listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 128) ||
        getsockname(fd, (struct sockaddr *)&a, &l))
        die("listener", NULL);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Accepts and drops connections (the readiness probes). */
static void *acceptor(void *ud)
{
    int fd = *(int *)ud;
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c < 0)
            break;
        close(c);
    }
    return NULL;
}

typedef struct delta {
    vmp_soap_counters c0;
    double t0;
} delta;

static void mark(vmp_provider *p, delta *d)
{
    vmp_vsphere_counters(p, &d->c0);
    d->t0 = vmp_monotonic();
}

/* Adds what happened since mark to the totals. */
static void take(vmp_provider *p, const delta *d, double *rt, double *sent, double *recv,
                 double *ms)
{
    vmp_soap_counters c;
    vmp_vsphere_counters(p, &c);
    *rt += (double)(c.round_trips - d->c0.round_trips);
    *sent += (double)(c.bytes_sent - d->c0.bytes_sent);
    *recv += (double)(c.bytes_received - d->c0.bytes_received);
    *ms += (vmp_monotonic() - d->t0) * 1000;
}

typedef struct job {
    vmp_provider *p;
    int from, to, step;
    bool destroy;
    int failures;
} job;

static void *worker(void *ud)
{
    job *j = ud;
    for (int i = j->from; i < j->to; i += j->step) {
        char name[32];
        vmp_err err = {0};
        snprintf(name, sizeof name, "bench-%03d", i);
        int rc = j->destroy ? vmp_provider_destroy_vm(j->p, POOL, name, &err)
                            : vmp_provider_create_vm(j->p, POOL, name, NULL, &err);
        if (rc) {
            fprintf(stderr, "%s %s: %s\n", j->destroy ? "destroy" : "create", name, err.msg);
            j->failures++;
        }
    }
    return NULL;
}

/* VMs bench-<from>..bench-<to-1>, created or destroyed by THREADS threads. */
static double parallel(vmp_provider *p, int from, int to, bool destroy, int *failures)
{
    pthread_t th[THREADS];
    job jobs[THREADS];
    double t0 = vmp_monotonic();
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (job){p, from + i, to, THREADS, destroy, 0};
        pthread_create(&th[i], NULL, worker, &jobs[i]);
    }
    *failures = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        *failures += jobs[i].failures;
    }
    return vmp_monotonic() - t0;
}

static void control_delay(int clone_ms)
{
    char q[64];
    snprintf(q, sizeof q, "spec=CloneVM_Task:%d", clone_ms);
    if (clone_ms > 0)
        vmp_vcsim_control(sim, "POST", "task-delay", q, NULL, 0);
    else
        vmp_vcsim_control(sim, "DELETE", "task-delay", NULL, NULL, 0);
}

/* ---- through the engine ------------------------------------------------- */

/* SOAP calls per method, counted from the SOAP client's debug lines
 * ("<method>: HTTP <status>, ..."); other log lines at warning level and
 * above go to stderr. */
enum { MAX_METHODS = 32 };
static struct {
    pthread_mutex_t mu;
    bool on;
    int n;
    char name[MAX_METHODS][48];
    long count[MAX_METHODS];
} calls = {.mu = PTHREAD_MUTEX_INITIALIZER};

static FILE *log_copy; /* every line, when VMP_BENCH_LOG names a file */

static void log_sink(vmp_log_level level, const char *subsys, const char *pool, const char *vm,
                     const char *msg, void *ud)
{
    if (log_copy)
        fprintf(log_copy, "%.3f %s %s %s %s: %s\n", vmp_monotonic(), vmp_log_level_name(level),
                subsys, pool ? pool : "-", vm ? vm : "-", msg);
    const char *end = strcmp(subsys, "vsphere.soap") == 0 ? strstr(msg, ": HTTP ") : NULL;
    if (!end) {
        /* an empty pool is how every fill starts */
        if (level >= VMP_LOG_WARN && !strstr(msg, "pool is empty"))
            fprintf(stderr, "  [%s] %s%s%s%s %s\n", subsys, pool ? pool : "", vm ? "/" : "",
                    vm ? vm : "", pool ? ":" : "", msg);
        return;
    }
    size_t len = (size_t)(end - msg);
    pthread_mutex_lock(&calls.mu);
    if (calls.on) {
        int i = 0;
        while (i < calls.n && (strlen(calls.name[i]) != len || strncmp(calls.name[i], msg, len)))
            i++;
        if (i == calls.n && calls.n < MAX_METHODS && len < sizeof calls.name[0]) {
            memcpy(calls.name[i], msg, len);
            calls.name[i][len] = '\0';
            calls.count[i] = 0;
            calls.n++;
        }
        if (i < calls.n)
            calls.count[i]++;
    }
    pthread_mutex_unlock(&calls.mu);
}

static void calls_start(void)
{
    pthread_mutex_lock(&calls.mu);
    calls.n = 0;
    calls.on = true;
    pthread_mutex_unlock(&calls.mu);
}

/* Prints the calls since calls_start, divided by per, most frequent first. */
static void calls_print(const char *label, double per)
{
    pthread_mutex_lock(&calls.mu);
    calls.on = false;
    bool done[MAX_METHODS] = {false};
    printf("   %s:", label);
    for (int k = 0; k < calls.n; k++) {
        int best = -1;
        for (int i = 0; i < calls.n; i++)
            if (!done[i] && (best < 0 || calls.count[i] > calls.count[best]))
                best = i;
        done[best] = true;
        printf("%s %s %.2f", k ? "," : "", calls.name[best], (double)calls.count[best] / per);
    }
    printf("\n");
    pthread_mutex_unlock(&calls.mu);
}

#define EPOOL "efill"
#define EPOOL_SIZE 50

/* The engine's configuration: one vsphere pool of `size` VMs on redis at
 * sock, readiness by the IP Tools reports and the bench's listener. */
static vmp_config *engine_config(const char *sock, int port, int size)
{
    char *yaml = vmp_asprintf(
        "---\n:redis:\n  socket: '%s'\n"
        ":config:\n  task_limit: %d\n  create_folders: true\n  retry_factor: 0\n"
        ":providers:\n  :vsphere:\n    server: '%s'\n    username: '%s'\n    password: '%s'\n"
        "    ca_file: '%s'\n    datacenter: DC0\n    ready_port: %d\n"
        ":pools:\n  - name: " EPOOL "\n    template: templates/base\n    folder: vmpool/" EPOOL
        "\n    datastore: LocalDS_0\n    clone_target: DC0_C0\n    size: %d\n"
        "    provider: vsphere\n    ready_check: ip\n    extra_config:\n"
        "      SET.guest.ipAddress: 127.0.0.1\n",
        sock, THREADS, vmp_vcsim_url(sim), vmp_vcsim_username(sim), vmp_vcsim_password(sim),
        vmp_vcsim_cacert(sim), port, size);
    vmp_config *cfg = NULL;
    vmp_err err = {0};
    vmp_config_opts co = {.no_env = true};
    if (!yaml || vmp_config_load_string(yaml, "<bench-engine>", &co, &cfg, NULL, &err))
        die("engine config", &err);
    free(yaml);
    return cfg;
}

/* Waits until the pool's counts satisfy full (or empty); seconds, or -1
 * after limit seconds. */
static double wait_pool(vmp_store *st, double t0, bool full, double limit)
{
    for (;;) {
        vmp_store_pool_counts c;
        vmp_err err = {0};
        if (vmp_store_pool_counts_get(st, EPOOL, &c, &err))
            die("pool counts", &err);
        long long ready = c.n[VMP_VM_READY], pending = c.n[VMP_VM_PENDING],
                  completed = c.n[VMP_VM_COMPLETED];
        double t = vmp_monotonic() - t0;
        if (full ? ready == EPOOL_SIZE : ready + pending + completed == 0)
            return t;
        if (t > limit) {
            fprintf(stderr, "vsphere_bench: after %.0f s: %lld ready, %lld pending, %lld completed\n",
                    t, ready, pending, completed);
            return -1;
        }
        usleep(20000);
    }
}

static void print_delta(const char *what, vmp_provider *p, const delta *d, double per,
                        const char *unit)
{
    double r = 0, s = 0, rv = 0, m = 0;
    take(p, d, &r, &s, &rv, &m);
    printf("   %s: %.2f s; per %s %.1f round trips, %.0f bytes sent, %.0f received\n", what,
           m / 1000, unit, r / per, s / per, rv / per);
}

/* 4 (and 5): the engine fills the pool from nothing, (stays idle,) then
 * the pool's size goes to 0 and the engine destroys every VM. */
static void engine_run(int port, int clone_ms, int idle_s)
{
    char why[256];
    vmp_test_redis *redis = vmp_test_redis_start(false, why, sizeof why);
    if (!redis) {
        fprintf(stderr, "vsphere_bench: redis-server: %s\n", why);
        return;
    }
    vmp_config *cfg = engine_config(vmp_test_redis_socket(redis), port, EPOOL_SIZE);
    vmp_config *cfg0 = engine_config(vmp_test_redis_socket(redis), port, 0);
    vmp_store_opts so = {.socket = vmp_test_redis_socket(redis)};
    vmp_store *st = NULL;
    vmp_engine *e = NULL;
    vmp_err err = {0};
    if (vmp_store_open(&so, &st, &err))
        die("store", &err);
    vmp_engine_opts eo = {.config = cfg, .store = &so};
    if (vmp_engine_new(&eo, &e, &err))
        die("engine", &err);
    vmp_provider *p = vmp_engine_provider(e, "vsphere");
    if (!p)
        die("engine: no vsphere provider", NULL);

    control_delay(clone_ms);
    printf("   clone time %d ms\n", clone_ms);
    delta d;
    mark(p, &d);
    calls_start();
    if (vmp_engine_start(e, &err))
        die("engine start", &err);
    double secs = wait_pool(st, d.t0, true, 300);
    if (secs < 0)
        die("engine fill", NULL);
    vmp_engine_status es;
    vmp_engine_status_get(e, &es);
    print_delta("fill 0 -> 50 ready", p, &d, EPOOL_SIZE, "VM");
    calls_print("SOAP calls per VM", EPOOL_SIZE);
    printf("   pool passes during the fill: %lld\n", es.passes);
    control_delay(0);

    if (idle_s > 0) {
        long long passes0 = es.passes;
        mark(p, &d);
        calls_start();
        sleep((unsigned)idle_s);
        vmp_engine_status_get(e, &es);
        double r = 0, s = 0, rv = 0, m = 0;
        take(p, &d, &r, &s, &rv, &m);
        double mins = m / 60000;
        printf("   idle, full pool, %d s: %.0f round trips, %.0f bytes sent, %.0f received per "
               "minute; %lld passes\n",
               idle_s, r / mins, s / mins, rv / mins, es.passes - passes0);
        calls_print("SOAP calls per minute", mins);
    }

    mark(p, &d);
    calls_start();
    if (vmp_engine_reload(e, cfg0, &err))
        die("engine reload", &err);
    secs = wait_pool(st, d.t0, false, 300);
    if (secs < 0)
        die("engine drain", NULL);
    print_delta("size 50 -> 0, every VM destroyed", p, &d, EPOOL_SIZE, "VM");
    calls_print("SOAP calls per VM", EPOOL_SIZE);
    /* vcsim's folder listing can miss a VM while others are destroyed
     * (a data race in the simulator): the engine then forgets a VM it never
     * destroyed, and its next pass finds and destroys it. */
    vmp_strlist left = VMP_STRLIST_INIT;
    if (vmp_provider_vms_in_pool(p, EPOOL, &left, &err) == 0 && left.n > 0) {
        printf("   %zu VM(s) still in vcsim; waiting for the engine to destroy them\n", left.n);
        double t1 = vmp_monotonic();
        while (left.n > 0 && vmp_monotonic() - t1 < 180) {
            sleep(1);
            vmp_strlist_clear(&left);
            vmp_provider_vms_in_pool(p, EPOOL, &left, &err);
        }
        printf("   %s after %.0f s more\n", left.n ? "still there" : "gone",
               vmp_monotonic() - t1);
    }
    vmp_strlist_clear(&left);

    vmp_engine_stop(e, 10);
    vmp_engine_free(e);
    vmp_store_free(st);
    vmp_config_free(cfg);
    vmp_config_free(cfg0);
    vmp_test_redis_stop(redis);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: vsphere_bench VCSIM_DIR [LIFECYCLES] [CLONE_MS] [IDLE_S]\n");
        return 2;
    }
    int lifecycles = argc > 2 ? atoi(argv[2]) : 20;
    int clone_ms = argc > 3 ? atoi(argv[3]) : 1000;
    int idle_s = argc > 4 ? atoi(argv[4]) : 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    vmp_log_set_level(VMP_LOG_WARN);
    char why[512];
    vmp_vcsim_opts vo = {.script_dir = argv[1]};
    if (vmp_vcsim_start(&vo, &sim, why, sizeof why)) {
        fprintf(stderr, "vsphere_bench: vcsim: %s\n", why);
        return 1;
    }
    make_template();
    int port = 0, lfd = listener(&port);
    pthread_t acc;
    pthread_create(&acc, NULL, acceptor, &lfd);

    char *yaml = vmp_asprintf(
        "---\n:config:\n  task_limit: %d\n  create_folders: true\n  retry_factor: 0\n"
        ":providers:\n  :vsphere:\n    server: '%s'\n    username: '%s'\n    password: '%s'\n"
        "    ca_file: '%s'\n    datacenter: DC0\n    ready_port: %d\n"
        ":pools:\n  - name: " POOL "\n    template: templates/base\n    folder: vmpool/" POOL
        "\n    datastore: LocalDS_0\n    clone_target: DC0_C0\n    size: 50\n"
        "    provider: vsphere\n    ready_check: ip\n    extra_config:\n"
        "      SET.guest.ipAddress: 127.0.0.1\n",
        THREADS, vmp_vcsim_url(sim), vmp_vcsim_username(sim), vmp_vcsim_password(sim),
        vmp_vcsim_cacert(sim), port);
    vmp_config *cfg = NULL;
    vmp_provider *p = NULL;
    vmp_err err = {0};
    vmp_config_opts co = {.no_env = true};
    if (vmp_config_load_string(yaml, "<bench>", &co, &cfg, NULL, &err))
        die("config", &err);
    free(yaml);
    if (vmp_vsphere_register(&err) || vmp_provider_open(cfg, "vsphere", NULL, NULL, &p, &err))
        die("provider", &err);

    printf("vSphere provider against vcsim (%s)\n\n", vmp_vcsim_url(sim));

    /* Warm up: the first clone makes the folder and fills the caches. */
    if (vmp_provider_create_vm(p, POOL, "warmup", NULL, &err) ||
        vmp_provider_destroy_vm(p, POOL, "warmup", &err))
        die("warm-up", &err);

    /* 1. Sequential lifecycles. */
    double rt[3] = {0}, sent[3] = {0}, recv[3] = {0}, ms[3] = {0};
    for (int i = 0; i < lifecycles; i++) {
        char name[32];
        snprintf(name, sizeof name, "life-%03d", i);
        delta d;
        mark(p, &d);
        if (vmp_provider_create_vm(p, POOL, name, NULL, &err))
            die("create_vm", &err);
        take(p, &d, &rt[0], &sent[0], &recv[0], &ms[0]);
        mark(p, &d);
        bool ready = false;
        for (int tries = 0; !ready && tries < 100; tries++)
            if (vmp_provider_vm_ready(p, POOL, name, &ready, &err))
                die("vm_ready", &err);
        if (!ready)
            die("vm_ready: never ready", NULL);
        take(p, &d, &rt[1], &sent[1], &recv[1], &ms[1]);
        mark(p, &d);
        if (vmp_provider_destroy_vm(p, POOL, name, &err))
            die("destroy_vm", &err);
        take(p, &d, &rt[2], &sent[2], &recv[2], &ms[2]);
    }
    const char *ops[] = {"create_vm", "vm_ready", "destroy_vm"};
    printf("1. sequential lifecycle (create_vm, vm_ready, destroy_vm), mean of %d\n", lifecycles);
    printf("   %-12s %11s %12s %12s %9s\n", "op", "round trips", "bytes sent", "bytes recv",
           "ms");
    double trt = 0, ts = 0, tr = 0, tm = 0;
    for (int i = 0; i < 3; i++) {
        printf("   %-12s %11.2f %12.0f %12.0f %9.2f\n", ops[i], rt[i] / lifecycles,
               sent[i] / lifecycles, recv[i] / lifecycles, ms[i] / lifecycles);
        trt += rt[i], ts += sent[i], tr += recv[i], tm += ms[i];
    }
    printf("   %-12s %11.2f %12.0f %12.0f %9.2f\n\n", "lifecycle", trt / lifecycles,
           ts / lifecycles, tr / lifecycles, tm / lifecycles);

    /* 2. Fill 50 VMs with 10 threads, then again with slow clones. */
    int fails = 0;
    printf("2. filling a 50-VM pool with %d threads calling create_vm (connection_pool_size "
           "%d)\n",
           THREADS, THREADS);
    for (int pass = 0; pass < 2; pass++) {
        int delay = pass == 0 ? 0 : clone_ms;
        if (pass == 1 && clone_ms <= 0)
            break;
        control_delay(delay);
        delta d;
        double r = 0, s = 0, rv = 0, m = 0;
        mark(p, &d);
        double secs = parallel(p, 0, 50, false, &fails);
        take(p, &d, &r, &s, &rv, &m);
        printf("   clone time %5d ms: %6.2f s, %d failed, per VM %.1f round trips, %.0f bytes "
               "sent, %.0f received\n",
               delay, secs, fails, r / 50, s / 50, rv / 50);
        control_delay(0);
        if (pass == 0 && clone_ms > 0)
            parallel(p, 0, 50, true, &fails);
    }
    printf("\n");

    /* 3. Inventory passes of a 100-VM pool. */
    parallel(p, 50, 100, false, &fails);
    vmp_strlist names = VMP_STRLIST_INIT;
    if (vmp_provider_vms_in_pool(p, POOL, &names, &err))
        die("vms_in_pool", &err);
    size_t n = names.n;
    vmp_strlist_clear(&names);
    delta d;
    double r = 0, s = 0, rv = 0, m = 0;
    const int passes = 20;
    mark(p, &d);
    for (int i = 0; i < passes; i++) {
        if (vmp_provider_vms_in_pool(p, POOL, &names, &err))
            die("vms_in_pool", &err);
        vmp_strlist_clear(&names);
    }
    take(p, &d, &r, &s, &rv, &m);
    printf("3. inventory pass (vms_in_pool) of a %zu-VM pool, mean of %d\n", n, passes);
    printf("   %.1f round trips, %.0f bytes sent, %.0f bytes received, %.2f ms\n\n", r / passes,
           s / passes, rv / passes, m / passes);

    double secs = parallel(p, 0, 100, true, &fails);
    printf("destroying the 100 VMs with %d threads: %.2f s, %d failed\n", THREADS, secs, fails);
    vmp_soap_counters total;
    vmp_vsphere_counters(p, &total);
    int created = 0;
    vmp_vsphere_sessions(p, &created, NULL);
    printf("sessions: %d, logins %llu, re-logins %llu, faults %llu\n", created, total.logins,
           total.relogins, total.faults);


    /* 4, 5. The engine. */
    printf("\n4. the engine (threaded, task_limit %d, default loop delays) fills a %d-VM pool "
           "from nothing\n",
           THREADS, EPOOL_SIZE);
    if (getenv("VMP_BENCH_LOG") && !(log_copy = fopen(getenv("VMP_BENCH_LOG"), "w")))
        perror(getenv("VMP_BENCH_LOG"));
    vmp_log_set_callback(log_sink, NULL);
    vmp_log_set_level(VMP_LOG_DEBUG);
    engine_run(port, 0, idle_s);
    if (clone_ms > 0)
        engine_run(port, clone_ms, 0);
    vmp_log_set_level(VMP_LOG_WARN);
    vmp_log_set_callback(NULL, NULL);
    if (log_copy)
        fclose(log_copy);

    vmp_provider_close(p);
    vmp_config_free(cfg);
    shutdown(lfd, SHUT_RDWR);
    close(lfd);
    pthread_join(acc, NULL);
    vmp_vcsim_stop(sim);
    return 0;
}
