/*
 * vmpoold: the vmpool daemon. Runs the lifecycle engine (the "manager") and
 * the HTTP API in one process by default, or one of them alone.
 *
 * Signals: SIGTERM and SIGINT stop gracefully (no new work, running tasks
 * get a bounded time to finish, Redis left consistent, exit 0); SIGHUP
 * reloads the configuration (a bad one is rejected with its errors and the
 * old one kept) and reopens the log file.
 *
 * With no Redis server named in the configuration, vmpoold starts its own
 * redis-server on a unix socket under the state directory and stops it on
 * exit (see store/redis_embedded.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "config.h"
#include "dummy/dummy.h"
#include "engine/engine.h"
#include "err.h"
#include "log.h"
#include "lua/script.h"
#include "provider.h"
#include "store/redis_embedded.h"
#include "store/store.h"
#include "util.h"
#include "vsphere/vsphere.h"

enum { EXIT_USAGE = 2, MAX_LUA_FILES = 32 };

typedef struct options {
    const char *config_path;
    bool run_manager, run_api, check_config, daemonize;
    const char *listen;
    unsigned api_threads; /* 0: the API's default */
    const char *log_level;
    const char *log_file;
    const char *pidfile;
    double stop_timeout;
    const char *lua_files[MAX_LUA_FILES + 1]; /* --lua, NULL-ended */
    size_t n_lua;
} options;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: vmpoold [OPTIONS] [manager] [api]\n"
            "\n"
            "Keeps pools of ready VMs and hands them out over vmpooler's HTTP API v3.\n"
            "\n"
            "  -c, --config FILE     configuration file (default: $VMPOOLER_CONFIG_FILE,\n"
            "                        else vmpooler.yaml; $VMPOOLER_CONFIG holds YAML text)\n"
            "      --manager         run the lifecycle engine only\n"
            "      --api             run the HTTP API only\n"
            "                        (default, or both words: run both)\n"
            "      --check-config    validate the configuration, print every error, exit\n"
            "      --listen HOST:PORT  API address (default: config :api: listen, else\n"
            "                        127.0.0.1:4567)\n"
            "      --api-threads N   API worker threads, 1-64 (default: one per two CPUs)\n"
            "      --log-level LEVEL debug, info, warn or error (default info)\n"
            "      --log-file FILE   append log lines to FILE (default: config logfile,\n"
            "                        else stderr)\n"
            "      --pidfile FILE    write the process id to FILE\n"
            "      --daemonize       detach and run in the background\n"
            "      --stop-timeout S  seconds running tasks get to finish on stop (default 30)\n"
            "      --lua FILE        run a Lua configuration file after the YAML and the\n"
            "                        configuration's own (pools, providers, policies);\n"
            "                        may be given several times\n"
            "  -V, --version         print the version and exit\n"
            "  -h, --help            print this help and exit\n");
}

static int parse_args(int argc, char **argv, options *o)
{
    enum { OPT_MANAGER = 256, OPT_API, OPT_CHECK, OPT_LISTEN, OPT_LEVEL, OPT_LOGFILE, OPT_PID,
           OPT_DAEMON, OPT_STOP, OPT_LUA, OPT_API_THREADS };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"manager", no_argument, NULL, OPT_MANAGER},
        {"api", no_argument, NULL, OPT_API},
        {"check-config", no_argument, NULL, OPT_CHECK},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"api-threads", required_argument, NULL, OPT_API_THREADS},
        {"log-level", required_argument, NULL, OPT_LEVEL},
        {"log-file", required_argument, NULL, OPT_LOGFILE},
        {"pidfile", required_argument, NULL, OPT_PID},
        {"daemonize", no_argument, NULL, OPT_DAEMON},
        {"stop-timeout", required_argument, NULL, OPT_STOP},
        {"lua", required_argument, NULL, OPT_LUA},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "c:Vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o->config_path = optarg; break;
        case OPT_MANAGER: o->run_manager = true; break;
        case OPT_API: o->run_api = true; break;
        case OPT_CHECK: o->check_config = true; break;
        case OPT_LISTEN: o->listen = optarg; break;
        case OPT_API_THREADS: {
            long long n = 0;
            if (vmp_parse_long(optarg, &n) != 0 || n < 1 || n > 64) {
                fprintf(stderr, "vmpoold: --api-threads: expected 1-64, got \"%s\"\n", optarg);
                return -1;
            }
            o->api_threads = (unsigned)n;
            break;
        }
        case OPT_LEVEL: o->log_level = optarg; break;
        case OPT_LOGFILE: o->log_file = optarg; break;
        case OPT_PID: o->pidfile = optarg; break;
        case OPT_DAEMON: o->daemonize = true; break;
        case OPT_STOP:
            if (vmp_parse_double(optarg, &o->stop_timeout) != 0 || o->stop_timeout < 0) {
                fprintf(stderr, "vmpoold: --stop-timeout: expected seconds, got \"%s\"\n", optarg);
                return -1;
            }
            break;
        case OPT_LUA:
            if (o->n_lua == MAX_LUA_FILES) {
                fprintf(stderr, "vmpoold: --lua: at most %d files\n", MAX_LUA_FILES);
                return -1;
            }
            o->lua_files[o->n_lua++] = optarg;
            break;
        case 'V': printf("vmpoold %s\n", VMP_VERSION); exit(0);
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    /* vmpooler takes the components as words: `vmpooler api manager`. */
    for (int i = optind; i < argc; i++) {
        if (strcmp(argv[i], "manager") == 0) {
            o->run_manager = true;
        } else if (strcmp(argv[i], "api") == 0) {
            o->run_api = true;
        } else {
            fprintf(stderr, "vmpoold: unknown argument \"%s\" (expected manager or api)\n",
                    argv[i]);
            return -1;
        }
    }
    if (!o->run_manager && !o->run_api)
        o->run_manager = o->run_api = true;
    if (o->log_level) {
        vmp_log_level level;
        if (vmp_log_level_parse(o->log_level, &level) != 0) {
            fprintf(stderr, "vmpoold: --log-level: unknown level \"%s\"\n", o->log_level);
            return -1;
        }
        vmp_log_set_level(level);
    }
    return 0;
}

/* ---- configuration lifetime ---------------------------------------------
 * A configuration may be in use by the engine (until it retires it, from
 * one of its threads) and by the API (until vmp_api_set_config replaces
 * it). Each user holds a reference; the last one frees it. */

typedef struct held_config {
    vmp_config *cfg;
    atomic_int refs;
} held_config;

static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static held_config *held[64];

static held_config *hold_new(vmp_config *cfg, int refs)
{
    held_config *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->cfg = cfg;
    atomic_init(&h->refs, refs);
    pthread_mutex_lock(&held_lock);
    for (size_t i = 0; i < VMP_ARRAY_LEN(held); i++) {
        if (!held[i]) {
            held[i] = h;
            pthread_mutex_unlock(&held_lock);
            return h;
        }
    }
    pthread_mutex_unlock(&held_lock);
    free(h);
    return NULL;
}

static void release_config(const vmp_config *cfg)
{
    pthread_mutex_lock(&held_lock);
    for (size_t i = 0; i < VMP_ARRAY_LEN(held); i++) {
        held_config *h = held[i];
        if (h && h->cfg == cfg) {
            if (atomic_fetch_sub(&h->refs, 1) == 1) {
                held[i] = NULL;
                vmp_config_free(h->cfg);
                free(h);
            }
            break;
        }
    }
    pthread_mutex_unlock(&held_lock);
}

static void release_all_configs(void)
{
    pthread_mutex_lock(&held_lock);
    for (size_t i = 0; i < VMP_ARRAY_LEN(held); i++) {
        if (held[i]) {
            vmp_config_free(held[i]->cfg);
            free(held[i]);
            held[i] = NULL;
        }
    }
    pthread_mutex_unlock(&held_lock);
}

static void engine_retired_config(const vmp_config *cfg, void *ud)
{
    (void)ud;
    release_config(cfg);
}

/* The Lua configuration hook: kept for the whole run, it runs the Lua files
 * at every load and remembers the Lua provider classes they define. */
static vmp_lua_config *lua_config;

/* Loads the configuration (its Lua files included) and registers the Lua
 * provider classes it defines. Its errors go to the log, or, for
 * --check-config, to stderr as plain "file:line:col: key: message" lines. */
static int load_config(const options *o, vmp_config **out)
{
    vmp_strlist errors = VMP_STRLIST_INIT;
    vmp_err err;
    vmp_err_clear(&err);
    vmp_config_opts co = {0};
    int rc = lua_config ? 0 : vmp_lua_config_new(o->lua_files, &lua_config, &err);
    if (rc == 0) {
        vmp_lua_config_apply(lua_config, &co);
        rc = vmp_config_load_default(o->config_path, &co, out, &errors, &err);
    }
    if (rc == 0 && (rc = vmp_lua_config_register(lua_config, &err)) != 0) {
        vmp_config_free(*out);
        *out = NULL;
    }
    if (rc != 0 && errors.n == 0)
        vmp_strlist_push(&errors, err.msg);
    for (size_t i = 0; rc != 0 && i < errors.n; i++) {
        if (o->check_config)
            fprintf(stderr, "%s\n", errors.v[i]);
        else
            vmp_log(VMP_LOG_ERROR, "config", "%s", errors.v[i]);
    }
    vmp_strlist_clear(&errors);
    return rc;
}

/* ---- process plumbing ---------------------------------------------------- */

static int write_pidfile(const char *path)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    vmp_err err;
    if (vmp_file_write_atomic(path, buf, (size_t)n, &err) != 0) {
        vmp_log(VMP_LOG_ERROR, "vmpoold", "pid file: %s", err.msg);
        return -1;
    }
    return 0;
}

static int daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    umask(027);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        /* stderr too, unless it is where the log goes. */
        if (vmp_log_reopen() == 0)
            dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    return 0;
}

static int setup_log(const options *o, const vmp_config *cfg)
{
    const char *path = o->log_file ? o->log_file : cfg->global.logfile;
    if (path && vmp_log_open_file(path) != 0) {
        vmp_log(VMP_LOG_ERROR, "vmpoold", "cannot open log file %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- the daemon ------------------------------------------------------------ */

typedef struct daemon_state {
    options opts;
    vmp_config *cfg;
    vmp_redis_embedded *redis;
    vmp_store_opts store_opts;
    vmp_engine *engine;
    vmp_api *api;
    vmp_lua_policy *policy; /* the Lua policy hooks of the engine */
    vmp_engine_hooks hooks;
} daemon_state;

static int start_redis(daemon_state *d)
{
    const vmp_redis_cfg *rc = &d->cfg->redis;
    const char *socket = NULL;
    if (!rc->server && !rc->socket) {
        vmp_redis_embedded_opts eo = {.state_dir = rc->state_dir};
        vmp_err err;
        if (vmp_redis_embedded_start(&eo, &d->redis, &err) != 0) {
            vmp_log(VMP_LOG_ERROR, "vmpoold", "embedded redis: %s", err.msg);
            return -1;
        }
        socket = vmp_redis_embedded_socket(d->redis);
        vmp_log(VMP_LOG_INFO, "vmpoold", "embedded redis-server %s on %s (pid %ld)",
                vmp_redis_embedded_owned(d->redis) ? "started" : "reused", socket,
                (long)vmp_redis_embedded_pid(d->redis));
    }
    vmp_store_opts_from_cfg(rc, socket, &d->store_opts);
    return 0;
}

static int start_components(daemon_state *d)
{
    vmp_err err;
    vmp_err_clear(&err);
    /* Named here, not only found through the registry's weak references:
     * a static link pulls in only what is referenced. */
    if (vmp_dummy_register(&err) != 0 || vmp_vsphere_register(&err) != 0 ||
        vmp_provider_register_builtins(&err) != 0) {
        vmp_log(VMP_LOG_ERROR, "vmpoold", "providers: %s", err.msg);
        return -1;
    }
    if (d->opts.run_manager) {
        if (vmp_lua_policy_new(d->cfg, vmp_lua_config_files(lua_config),
                               vmp_lua_config_unsandboxed(lua_config), NULL, &d->policy,
                               &err) != 0) {
            vmp_log(VMP_LOG_ERROR, "vmpoold", "%s", err.msg);
            return -1;
        }
        vmp_lua_policy_hooks(d->policy, &d->hooks);
        vmp_engine_opts eo = {
            .config = d->cfg,
            .store = &d->store_opts,
            .hooks = &d->hooks,
            .config_retired = engine_retired_config,
            .stop_timeout = d->opts.stop_timeout,
        };
        if (vmp_engine_new(&eo, &d->engine, &err) != 0 || vmp_engine_start(d->engine, &err) != 0) {
            vmp_log(VMP_LOG_ERROR, "vmpoold", "manager: %s", err.msg);
            return -1;
        }
    }
    if (d->opts.run_api) {
        vmp_api_opts ao = {.config = d->cfg, .store = &d->store_opts,
                           .threads = d->opts.api_threads};
        char *host = NULL;
        if (d->opts.listen) {
            if (vmp_api_parse_listen(d->opts.listen, &host, &ao.listen_port, &err) != 0) {
                vmp_log(VMP_LOG_ERROR, "vmpoold", "--listen: %s", err.msg);
                return -1;
            }
            ao.listen_host = host;
        }
        int rc = vmp_api_new(&ao, &d->api, &err);
        free(host);
        if (rc != 0 || vmp_api_start(d->api, &err) != 0) {
            vmp_log(VMP_LOG_ERROR, "vmpoold", "api: %s", err.msg);
            return -1;
        }
        vmp_log(VMP_LOG_INFO, "vmpoold", "API listening on http://%s:%d/api/v3/",
                vmp_api_host(d->api), vmp_api_port(d->api));
    }
    return 0;
}

static void reload(daemon_state *d)
{
    vmp_log(VMP_LOG_INFO, "vmpoold", "SIGHUP: reloading the configuration");
    if (vmp_log_reopen() != 0)
        vmp_log(VMP_LOG_WARN, "vmpoold", "cannot reopen the log file: %s", strerror(errno));
    vmp_config *next = NULL;
    if (load_config(&d->opts, &next) != 0) {
        vmp_log(VMP_LOG_ERROR, "vmpoold", "new configuration rejected; the old one stays in force");
        return;
    }
    int users = (d->engine ? 1 : 0) + (d->api ? 1 : 0);
    if (!hold_new(next, users)) {
        vmp_log(VMP_LOG_ERROR, "vmpoold", "too many configurations in use; reload refused");
        vmp_config_free(next);
        return;
    }
    vmp_err err;
    vmp_err_clear(&err);
    if (d->engine && vmp_engine_reload(d->engine, next, &err) != 0) {
        vmp_log(VMP_LOG_ERROR, "vmpoold", "manager rejected the new configuration: %s", err.msg);
        /* The engine keeps the old one; the API must not diverge from it. */
        release_config(next);
        if (d->api)
            release_config(next);
        return;
    }
    if (d->policy && vmp_lua_policy_reload(d->policy, next, vmp_lua_config_files(lua_config),
                                           vmp_lua_config_unsandboxed(lua_config), &err) != 0)
        vmp_log(VMP_LOG_WARN, "vmpoold", "%s; the previous policy hooks stay in force", err.msg);
    if (d->api) {
        if (vmp_api_set_config(d->api, next, &err) != 0) {
            vmp_log(VMP_LOG_ERROR, "vmpoold", "api rejected the new configuration: %s", err.msg);
            release_config(next);
        } else {
            release_config(d->cfg); /* the API's reference to the old one */
        }
    }
    d->cfg = next;
    vmp_log(VMP_LOG_INFO, "vmpoold", "configuration reloaded: %zu pools", next->n_pools);
}

static int run(daemon_state *d)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    /* Blocked before any thread starts, so every thread inherits the mask
     * and only this one receives them, through sigwait. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int status = 0;
    if (start_redis(d) != 0 || start_components(d) != 0) {
        status = 1;
    } else {
        vmp_log(VMP_LOG_INFO, "vmpoold", "vmpoold %s running (%s%s%s), pid %ld", VMP_VERSION,
                d->opts.run_manager ? "manager" : "", d->opts.run_manager && d->opts.run_api ? " + " : "",
                d->opts.run_api ? "api" : "", (long)getpid());
        for (;;) {
            int sig = 0;
            if (sigwait(&set, &sig) != 0)
                continue;
            if (sig == SIGHUP) {
                reload(d);
                continue;
            }
            vmp_log(VMP_LOG_INFO, "vmpoold", "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
            break;
        }
    }

    if (d->api) {
        vmp_api_stop(d->api);
        vmp_api_free(d->api);
        d->api = NULL;
    }
    if (d->engine) {
        if (vmp_engine_stop(d->engine, -1) != 0)
            vmp_log(VMP_LOG_WARN, "vmpoold", "some tasks did not finish in time; "
                                             "their VMs are reconciled at the next start");
        vmp_engine_free(d->engine);
        d->engine = NULL;
    }
    vmp_lua_policy_free(d->policy);
    d->policy = NULL;
    vmp_redis_embedded_stop(d->redis);
    d->redis = NULL;
    vmp_log(VMP_LOG_INFO, "vmpoold", "stopped");
    return status;
}

int main(int argc, char **argv)
{
    daemon_state d = {0};
    if (parse_args(argc, argv, &d.opts) != 0)
        return EXIT_USAGE;

    if (load_config(&d.opts, &d.cfg) != 0)
        return 1;
    if (d.opts.check_config) {
        for (size_t i = 0; i < d.cfg->warnings.n; i++)
            fprintf(stderr, "warning: %s\n", d.cfg->warnings.v[i]);
        printf("%s: OK (%zu pools, %zu providers)\n", d.cfg->path, d.cfg->n_pools,
               d.cfg->n_providers);
        vmp_config_free(d.cfg);
        return 0;
    }
    if (setup_log(&d.opts, d.cfg) != 0) {
        vmp_config_free(d.cfg);
        return 1;
    }
    if (d.opts.daemonize && daemonize() != 0) {
        vmp_log(VMP_LOG_ERROR, "vmpoold", "cannot daemonize: %s", strerror(errno));
        vmp_config_free(d.cfg);
        return 1;
    }
    if (d.opts.pidfile && write_pidfile(d.opts.pidfile) != 0) {
        vmp_config_free(d.cfg);
        return 1;
    }
    int users = (d.opts.run_manager ? 1 : 0) + (d.opts.run_api ? 1 : 0);
    if (!hold_new(d.cfg, users)) {
        vmp_config_free(d.cfg);
        return 1;
    }

    int status = run(&d);

    release_all_configs();
    vmp_lua_config_free(lua_config);
    vmp_lua_provider_shutdown();
    if (d.opts.pidfile)
        unlink(d.opts.pidfile);
    vmp_log_close();
    return status;
}
