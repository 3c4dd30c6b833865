#define _GNU_SOURCE
/*
 * api_bench: checkout+return cycles against a running API server.
 *
 *   api_bench HOST PORT POOL CLIENTS SECONDS
 *
 * Each client thread keeps one HTTP/1.1 keep-alive connection (plain
 * sockets, so the load generator itself stays light on a small machine) and
 * loops: POST /api/v3/vm/<POOL>, then DELETE /api/v3/vm/<hostname>. Prints
 * cycles per second and the p50/p99 latency of each request kind. Timing is
 * measured here, never asserted.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct client {
    const char *host, *pool;
    int port;
    double seconds;
    double *co, *ret; /* latencies, ms */
    size_t n, cap;
    long errors, empty;
} client;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Sends one request and reads one response (Content-Length framed).
 * Returns the status, the body in body (NUL-terminated), or -1. */
static int roundtrip(int fd, const char *req, size_t reqlen, char *buf, size_t bufsz,
                     const char **body)
{
    size_t off = 0;
    while (off < reqlen) {
        ssize_t k = write(fd, req + off, reqlen - off);
        if (k <= 0)
            return -1;
        off += (size_t)k;
    }
    size_t len = 0;
    char *hend = NULL;
    long clen = -1;
    while (1) {
        ssize_t k = read(fd, buf + len, bufsz - 1 - len);
        if (k <= 0)
            return -1;
        len += (size_t)k;
        buf[len] = '\0';
        if (!hend) {
            hend = strstr(buf, "\r\n\r\n");
            if (hend) {
                const char *cl = strcasestr(buf, "\r\nContent-Length:");
                clen = cl && cl < hend ? strtol(cl + 17, NULL, 10) : 0;
            }
        }
        if (hend && (long)(len - (size_t)(hend + 4 - buf)) >= clen)
            break;
        if (len >= bufsz - 1)
            return -1;
    }
    *body = hend + 4;
    return (int)strtol(buf + 9, NULL, 10);
}

static void *run(void *ud)
{
    client *c = ud;
    int fd = dial(c->host, c->port);
    if (fd < 0) {
        c->errors++;
        return NULL;
    }
    char buf[16384], req[1024], co_req[512];
    const char *body;
    int co_len = snprintf(co_req, sizeof(co_req),
                          "POST /api/v3/vm/%s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n",
                          c->pool, c->host);
    double end = now() + c->seconds;
    while (now() < end) {
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 65536;
            c->co = realloc(c->co, c->cap * sizeof(double));
            c->ret = realloc(c->ret, c->cap * sizeof(double));
        }
        double t0 = now();
        int st = roundtrip(fd, co_req, (size_t)co_len, buf, sizeof(buf), &body);
        double t1 = now();
        if (st < 0) {
            c->errors++;
            break;
        }
        if (st != 200) {
            c->empty++;
            continue;
        }
        const char *p = strstr(body, "\"hostname\": \"");
        if (!p) {
            c->errors++;
            continue;
        }
        p += 13;
        size_t l = strcspn(p, "\"");
        int rl = snprintf(req, sizeof(req), "DELETE /api/v3/vm/%.*s HTTP/1.1\r\nHost: %s\r\n\r\n",
                          (int)l, p, c->host);
        st = roundtrip(fd, req, (size_t)rl, buf, sizeof(buf), &body);
        double t2 = now();
        if (st != 200) {
            c->errors++;
            if (st < 0)
                break;
            continue;
        }
        c->co[c->n] = (t1 - t0) * 1000.0;
        c->ret[c->n] = (t2 - t1) * 1000.0;
        c->n++;
    }
    close(fd);
    return NULL;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT POOL CLIENTS SECONDS\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[4]);
    double secs = atof(argv[5]);
    client *cs = calloc((size_t)n, sizeof(*cs));
    pthread_t *th = calloc((size_t)n, sizeof(*th));
    double t0 = now();
    for (int i = 0; i < n; i++) {
        cs[i].host = argv[1];
        cs[i].port = atoi(argv[2]);
        cs[i].pool = argv[3];
        cs[i].seconds = secs;
        pthread_create(&th[i], NULL, run, &cs[i]);
    }
    size_t total = 0;
    long errors = 0, empty = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        total += cs[i].n;
        errors += cs[i].errors;
        empty += cs[i].empty;
    }
    double elapsed = now() - t0;
    double *co = malloc((total + 1) * sizeof(double)), *ret = malloc((total + 1) * sizeof(double));
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (cs[i].n) {
            memcpy(co + k, cs[i].co, cs[i].n * sizeof(double));
            memcpy(ret + k, cs[i].ret, cs[i].n * sizeof(double));
        }
        k += cs[i].n;
        free(cs[i].co);
        free(cs[i].ret);
    }
    qsort(co, total, sizeof(double), cmpd);
    qsort(ret, total, sizeof(double), cmpd);
    printf("clients=%d cycles=%zu seconds=%.2f cycles_per_sec=%.0f checkout_p50_ms=%.3f "
           "checkout_p99_ms=%.3f return_p50_ms=%.3f return_p99_ms=%.3f errors=%ld empty=%ld\n",
           n, total, elapsed, (double)total / elapsed, pct(co, total, 0.5), pct(co, total, 0.99),
           pct(ret, total, 0.5), pct(ret, total, 0.99), errors, empty);
    free(co);
    free(ret);
    free(cs);
    free(th);
    return errors ? 1 : 0;
}
