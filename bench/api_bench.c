#define _GNU_SOURCE
/*
 * api_bench: checkout+return cycles against a running API server.
 *
 *   api_bench HOST PORT POOL CLIENTS SECONDS
 *
 * CLIENTS HTTP/1.1 keep-alive connections, driven by one thread with epoll
 * (so the load generator stays light on a small machine that also runs the
 * server and Redis). Each connection loops: POST /api/v3/vm/<POOL>, then
 * DELETE /api/v3/vm/<hostname>, with one request outstanding at a time (no
 * pipelining). Prints cycles per second and the p50/p99 latency of each
 * request kind (from the request's write to the end of its response, so
 * time the client spends on other connections counts too). Timing is
 * measured here, never asserted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { CO, RET };

typedef struct conn {
    int fd;
    int kind;  /* request in flight: CO or RET */
    double t0; /* its start */
    char buf[16384];
    size_t len;
} conn;

typedef struct lat {
    double *v;
    size_t n, cap;
} lat;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void lat_add(lat *l, double ms)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 65536;
        l->v = realloc(l->v, l->cap * sizeof(double));
        if (!l->v) {
            perror("realloc");
            exit(1);
        }
    }
    l->v[l->n++] = ms;
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

/* Writes a whole (small) request; the socket is blocking for writes, which
 * never wait here: one request per connection is in flight. */
static int send_all(int fd, const char *req, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t k = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (k <= 0)
            return -1;
        off += (size_t)k;
    }
    return 0;
}

/* The status and body of a complete response in c->buf, or 0 while more is
 * to come, -1 on a malformed one. */
static int complete(conn *c, const char **body)
{
    c->buf[c->len] = '\0';
    char *hend = strstr(c->buf, "\r\n\r\n");
    if (!hend)
        return 0;
    const char *cl = strcasestr(c->buf, "\r\nContent-Length:");
    long clen = cl && cl < hend ? strtol(cl + 17, NULL, 10) : 0;
    if ((long)(c->len - (size_t)(hend + 4 - c->buf)) < clen)
        return 0;
    if (strncmp(c->buf, "HTTP/1.1 ", 9) != 0)
        return -1;
    *body = hend + 4;
    return (int)strtol(c->buf + 9, NULL, 10);
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const lat *l, double p)
{
    if (!l->n)
        return 0;
    size_t i = (size_t)(p * (double)(l->n - 1) + 0.5);
    return l->v[i];
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT POOL CLIENTS SECONDS\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *pool = argv[3];
    int port = atoi(argv[2]), n = atoi(argv[4]);
    double secs = atof(argv[5]);
    if (n < 1)
        return 2;
    char co_req[512], req[1024];
    int co_len = snprintf(co_req, sizeof(co_req),
                          "POST /api/v3/vm/%s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n",
                          pool, host);
    conn *cs = calloc((size_t)n, sizeof(*cs));
    int ep = epoll_create1(0);
    lat co = {0}, ret = {0};
    long errors = 0, empty = 0, open = 0;
    double t0 = now(), end = t0 + secs;
    for (int i = 0; i < n; i++) {
        cs[i].fd = dial(host, port);
        if (cs[i].fd < 0) {
            errors++;
            continue;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
        cs[i].kind = CO;
        cs[i].t0 = now();
        if (send_all(cs[i].fd, co_req, (size_t)co_len) != 0) {
            errors++;
            close(cs[i].fd);
            cs[i].fd = -1;
            continue;
        }
        open++;
    }
    struct epoll_event evs[64];
    while (open > 0) {
        int k = epoll_wait(ep, evs, 64, 1000);
        if (k < 0 && errno != EINTR)
            break;
        for (int e = 0; e < k; e++) {
            conn *c = evs[e].data.ptr;
            ssize_t got = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
            const char *body = NULL;
            int st = got > 0 ? (c->len += (size_t)got, complete(c, &body)) : -1;
            if (st == 0 && c->len < sizeof(c->buf) - 1)
                continue;
            double t1 = now();
            int next = -1; /* -1: stop this connection */
            size_t rl = 0;
            if (st <= 0) {
                errors++;
            } else if (c->kind == CO) {
                const char *p = st == 200 ? strstr(body, "\"hostname\": \"") : NULL;
                if (st != 200) {
                    empty++;
                    next = CO;
                } else if (!p) {
                    errors++;
                    next = CO;
                } else {
                    lat_add(&co, (t1 - c->t0) * 1000.0);
                    p += 13;
                    size_t l = strcspn(p, "\"");
                    rl = (size_t)snprintf(req, sizeof(req),
                                          "DELETE /api/v3/vm/%.*s HTTP/1.1\r\nHost: %s\r\n\r\n",
                                          (int)l, p, host);
                    next = RET;
                }
            } else {
                if (st != 200) {
                    errors++;
                    co.n--; /* the cycle did not complete */
                } else {
                    lat_add(&ret, (t1 - c->t0) * 1000.0);
                }
                next = CO;
            }
            c->len = 0;
            if (next == CO && t1 >= end)
                next = -1;
            if (next >= 0) {
                c->kind = next;
                c->t0 = t1;
                if (next == CO)
                    st = send_all(c->fd, co_req, (size_t)co_len);
                else
                    st = send_all(c->fd, req, rl);
                if (st == 0)
                    continue;
                errors++;
            }
            close(c->fd);
            c->fd = -1;
            open--;
        }
    }
    double elapsed = now() - t0;
    size_t total = ret.n < co.n ? ret.n : co.n;
    co.n = ret.n = total;
    qsort(co.v, total, sizeof(double), cmpd);
    qsort(ret.v, total, sizeof(double), cmpd);
    printf("clients=%d cycles=%zu seconds=%.2f cycles_per_sec=%.0f checkout_p50_ms=%.3f "
           "checkout_p99_ms=%.3f return_p50_ms=%.3f return_p99_ms=%.3f errors=%ld empty=%ld\n",
           n, total, elapsed, (double)total / elapsed, pct(&co, 0.5), pct(&co, 0.99),
           pct(&ret, 0.5), pct(&ret, 0.99), errors, empty);
    free(co.v);
    free(ret.v);
    free(cs);
    close(ep);
    return errors ? 1 : 0;
}
