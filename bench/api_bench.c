/*
 * api_bench: checkout+return cycles against a running API server.
 *
 *   api_bench URL POOL CLIENTS SECONDS
 *
 * Each client thread keeps one HTTP keep-alive connection and loops:
 * POST /api/v3/vm/<POOL>, then DELETE /api/v3/vm/<hostname>. Prints cycles
 * per second and the p50/p99 latency of each request kind. Timing is
 * measured here, never asserted.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct buf {
    char s[4096];
    size_t len;
} buf;

typedef struct client {
    const char *url, *pool;
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

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    buf *b = ud;
    size_t k = sz * n;
    if (b->len + k >= sizeof(b->s))
        k = sizeof(b->s) - 1 - b->len;
    memcpy(b->s + b->len, p, k);
    b->len += k;
    b->s[b->len] = '\0';
    return sz * n;
}

static void *run(void *ud)
{
    client *c = ud;
    CURL *h = curl_easy_init();
    buf b;
    char url[512];
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    double end = now() + c->seconds;
    while (now() < end) {
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 65536;
            c->co = realloc(c->co, c->cap * sizeof(double));
            c->ret = realloc(c->ret, c->cap * sizeof(double));
        }
        snprintf(url, sizeof(url), "%s/api/v3/vm/%s", c->url, c->pool);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "POST");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        b.len = 0;
        b.s[0] = '\0';
        double t0 = now();
        long status = 0;
        if (curl_easy_perform(h) != CURLE_OK) {
            c->errors++;
            continue;
        }
        double t1 = now();
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200) {
            c->empty++;
            continue;
        }
        char *p = strstr(b.s, "\"hostname\": \"");
        if (!p) {
            c->errors++;
            continue;
        }
        p += 13;
        char host[256];
        size_t l = strcspn(p, "\"");
        if (l >= sizeof(host))
            l = sizeof(host) - 1;
        memcpy(host, p, l);
        host[l] = '\0';
        snprintf(url, sizeof(url), "%s/api/v3/vm/%s", c->url, host);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
        b.len = 0;
        if (curl_easy_perform(h) != CURLE_OK) {
            c->errors++;
            continue;
        }
        double t2 = now();
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200) {
            c->errors++;
            continue;
        }
        c->co[c->n] = (t1 - t0) * 1000.0;
        c->ret[c->n] = (t2 - t1) * 1000.0;
        c->n++;
    }
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    return NULL;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s URL POOL CLIENTS SECONDS\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[3]);
    double secs = atof(argv[4]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    client *cs = calloc((size_t)n, sizeof(*cs));
    pthread_t *th = calloc((size_t)n, sizeof(*th));
    double t0 = now();
    for (int i = 0; i < n; i++) {
        cs[i].url = argv[1];
        cs[i].pool = argv[2];
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
        memcpy(co + k, cs[i].co, cs[i].n * sizeof(double));
        memcpy(ret + k, cs[i].ret, cs[i].n * sizeof(double));
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
    curl_global_cleanup();
    return errors ? 1 : 0;
}
