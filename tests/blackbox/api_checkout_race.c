/*
 * api_checkout_race: many concurrent clients checking out VMs from one or
 * more API servers that share a Redis; fails when any VM is handed out
 * twice or a multi-pool checkout comes back partial.
 *
 *   api_checkout_race THREADS REQUESTS_PER_THREAD BODY URL [URL...]
 *
 * Thread i talks to URL[i % nurls] (POST <url>/api/v3/vm with BODY, one
 * keep-alive connection per thread). Prints "checked out N VMs in M
 * checkouts, D duplicates, P partial" and exits 0 only when D and P are 0.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct worker {
    const char *url;
    const char *body;
    int requests;
    int wanted_keys;
    char **names;
    size_t n, cap;
    int ok, partial, failed;
} worker;

typedef struct buf {
    char *s;
    size_t len;
} buf;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    buf *b = ud;
    char *s = realloc(b->s, b->len + sz * n + 1);
    if (!s)
        return 0;
    memcpy(s + b->len, p, sz * n);
    b->s = s;
    b->len += sz * n;
    b->s[b->len] = '\0';
    return sz * n;
}

static void add_name(worker *w, const char *s)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 64;
        w->names = realloc(w->names, w->cap * sizeof(*w->names));
    }
    w->names[w->n++] = strdup(s);
}

static void *run(void *ud)
{
    worker *w = ud;
    CURL *c = curl_easy_init();
    char url[1024];
    snprintf(url, sizeof(url), "%s/api/v3/vm", w->url);
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, w->body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    for (int i = 0; i < w->requests; i++) {
        buf b = {0};
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        long status = 0;
        if (curl_easy_perform(c) != CURLE_OK) {
            w->failed++;
            free(b.s);
            continue;
        }
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (status == 200) {
            json_t *j = json_loads(b.s ? b.s : "", 0, NULL);
            const char *k;
            json_t *v;
            int keys = 0;
            json_object_foreach(j, k, v)
            {
                if (!strcmp(k, "ok"))
                    continue;
                keys++;
                json_t *h = json_object_get(v, "hostname");
                if (json_is_string(h)) {
                    add_name(w, json_string_value(h));
                } else {
                    for (size_t x = 0; x < json_array_size(h); x++)
                        add_name(w, json_string_value(json_array_get(h, x)));
                }
            }
            if (keys != w->wanted_keys)
                w->partial++;
            w->ok++;
            json_decref(j);
        } else if (status != 503) {
            w->failed++;
            fprintf(stderr, "unexpected %ld: %s\n", status, b.s ? b.s : "");
        }
        free(b.s);
    }
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s THREADS REQUESTS BODY URL [URL...]\n", argv[0]);
        return 2;
    }
    int nthreads = atoi(argv[1]), reqs = atoi(argv[2]);
    const char *body = argv[3];
    json_t *bj = json_loads(body, 0, NULL);
    int wanted = (int)json_object_size(bj);
    json_decref(bj);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    worker *ws = calloc((size_t)nthreads, sizeof(*ws));
    pthread_t *th = calloc((size_t)nthreads, sizeof(*th));
    for (int i = 0; i < nthreads; i++) {
        ws[i].url = argv[4 + i % (argc - 4)];
        ws[i].body = body;
        ws[i].requests = reqs;
        ws[i].wanted_keys = wanted;
        pthread_create(&th[i], NULL, run, &ws[i]);
    }
    size_t total = 0;
    int ok = 0, partial = 0, failed = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        total += ws[i].n;
        ok += ws[i].ok;
        partial += ws[i].partial;
        failed += ws[i].failed;
    }
    char **all = calloc(total + 1, sizeof(*all));
    size_t k = 0;
    for (int i = 0; i < nthreads; i++)
        for (size_t j = 0; j < ws[i].n; j++)
            all[k++] = ws[i].names[j];
    qsort(all, total, sizeof(*all), cmp);
    int dups = 0;
    for (size_t i = 1; i < total; i++)
        if (!strcmp(all[i], all[i - 1])) {
            fprintf(stderr, "handed out twice: %s\n", all[i]);
            dups++;
        }
    printf("checked out %zu VMs in %d checkouts, %d duplicates, %d partial, %d errors\n", total, ok,
           dups, partial, failed);
    for (size_t i = 0; i < total; i++)
        free(all[i]);
    free(all);
    for (int i = 0; i < nthreads; i++)
        free(ws[i].names);
    free(ws);
    free(th);
    curl_global_cleanup();
    return dups || partial || failed ? 1 : 0;
}
