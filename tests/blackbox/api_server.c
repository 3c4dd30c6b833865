/*
 * vmpool-api-test-server: the HTTP API alone, for black-box tests and the
 * API benchmark (the same server vmpoold embeds, without the manager).
 *
 *   vmpool-api-test-server --config FILE (--redis-socket PATH | --redis-port N)
 *                          [--listen HOST:PORT] [--threads N] [--port-file FILE]
 *
 * Listens until SIGTERM or SIGINT. With port 0 the kernel picks a port; it
 * is written to --port-file (and stdout) once the server accepts requests.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "config.h"
#include "log.h"
#include "store/store.h"

int main(int argc, char **argv)
{
    const char *config = NULL, *sock = NULL, *listen = "127.0.0.1:0", *port_file = NULL;
    int rport = 0;
    unsigned threads = 0;
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"redis-socket", required_argument, NULL, 's'},
                                             {"redis-port", required_argument, NULL, 'p'},
                                             {"listen", required_argument, NULL, 'l'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"port-file", required_argument, NULL, 'f'},
                                             {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 's':
            sock = optarg;
            break;
        case 'p':
            rport = atoi(optarg);
            break;
        case 'l':
            listen = optarg;
            break;
        case 't':
            threads = (unsigned)atoi(optarg);
            break;
        case 'f':
            port_file = optarg;
            break;
        default:
            return 2;
        }
    }
    if (!config || (!sock && !rport)) {
        fprintf(stderr,
                "usage: %s --config FILE (--redis-socket PATH | --redis-port N) "
                "[--listen HOST:PORT] [--threads N] [--port-file FILE]\n",
                argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* as vmpoold */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    vmp_config *cfg = NULL;
    vmp_api *api = NULL;
    vmp_err err = {0};
    vmp_strlist errors = {0};
    char *host = NULL;
    int port = 0, rc = 1;
    if (vmp_config_load_file(config, NULL, &cfg, &errors, &err) != 0) {
        fprintf(stderr, "config: %s\n", err.msg);
        goto out;
    }
    vmp_store_opts so = {0};
    so.socket = sock;
    so.host = "127.0.0.1";
    so.port = rport;
    so.prefix = cfg->redis.prefix;
    if (strcmp(listen, "127.0.0.1:0") == 0) {
        host = strdup("127.0.0.1");
        port = VMP_API_PORT_ANY;
    } else if (vmp_api_parse_listen(listen, &host, &port, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        goto out;
    }
    vmp_api_opts ao = {
        .config = cfg, .store = &so, .listen_host = host, .listen_port = port, .threads = threads};
    if (vmp_api_new(&ao, &api, &err) != 0 || vmp_api_start(api, &err) != 0) {
        fprintf(stderr, "api: %s\n", err.msg);
        goto out;
    }
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", vmp_api_port(api)) < 0 || fclose(f) != 0 ||
            rename(tmp, port_file) != 0)
        {
            perror(port_file);
            goto out;
        }
    }
    printf("%d\n", vmp_api_port(api));
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    rc = 0;
out:
    vmp_api_free(api);
    vmp_config_free(cfg);
    vmp_strlist_clear(&errors);
    free(host);
    return rc;
}
