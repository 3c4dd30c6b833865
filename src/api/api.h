/*
 * api: vmpool's HTTP API, version 3, a drop-in for vmpooler's (`/api/v3/...`:
 * same paths, methods, JSON shapes, key order, pretty printing, status codes,
 * token auth and rate limiter; docs/api.md lists every endpoint and every
 * deliberate deviation).
 *
 * The server runs on libmicrohttpd, one daemon per worker thread on a shared
 * listen socket; each thread has its own Redis connection (a vmp_store),
 * opened lazily on its first request, and sends the checkouts and returns
 * of the requests that arrive together as one pipeline.
 * The API never talks to providers: it reads and writes Redis through the
 * store only, and publishes events ("checkout <pool>", "return <pool>",
 * "config <pool>", ...) so a manager reacts at once. Any number of API
 * servers, in one process or many, may share one Redis: a checkout is one
 * atomic Redis script, so no VM is ever handed out twice.
 *
 * Lifecycle: vmp_api_new (checks options, nothing listens yet) ->
 * vmp_api_start (binds and serves) -> vmp_api_stop (stops accepting, waits
 * for requests in flight) -> vmp_api_free. vmp_api_set_config may be called
 * at any time from any thread (SIGHUP reload).
 */
#ifndef VMP_API_H
#define VMP_API_H

#include <stdbool.h>
#include <stddef.h>

#include "clock.h"
#include "config.h"
#include "err.h"
#include "metrics.h"
#include "store/store.h"

typedef struct vmp_api vmp_api;

/* listen_port value asking the kernel for any free port (tests); read the
 * port actually bound with vmp_api_port after vmp_api_start. */
#define VMP_API_PORT_ANY (-1)
/* Port used when neither the options nor the config name one. */
#define VMP_API_DEFAULT_PORT 4567
/* Default and hard cap of request bodies, bytes. */
#define VMP_API_DEFAULT_BODY_LIMIT (64 * 1024)

typedef struct vmp_api_opts {
    /* The loaded config (borrowed). It must stay valid until
     * vmp_api_set_config replaces it or the API is freed. Required. */
    const vmp_config *config;
    /* Redis connection for the per-thread stores (borrowed; the strings it
     * points to must outlive the API). Required. */
    const vmp_store_opts *store;
    /* Listen address: NULL uses config->api.listen_host, else "127.0.0.1".
     * An IPv6 literal may be given with or without brackets. */
    const char *listen_host;
    /* > 0: that port; 0: config->api.listen_port, else 4567;
     * VMP_API_PORT_ANY: any free port. */
    int listen_port;
    /* Worker threads of the HTTP server; 0: one per two online CPUs (at
     * least 1, at most 16). Each runs its own event loop and holds one
     * Redis connection. */
    unsigned threads;
    /* Time source for everything written to Redis and for the rate limiter
     * windows (borrowed); NULL: the system clock. */
    vmp_clock *clock;
    /* Metrics sink (borrowed); NULL: none. */
    vmp_metrics *metrics;
    /* Largest request body accepted, bytes; 0: VMP_API_DEFAULT_BODY_LIMIT.
     * Larger bodies get 413 with a JSON error, nothing is read further. */
    size_t body_limit;
    /* Seconds GET /status results are cached per `view` value (vmpooler
     * caches 30 s); 0: no cache, every request reads Redis. */
    double status_cache_seconds;
} vmp_api_opts;

/* Checks opts and builds a server that does not listen yet. *out must be
 * NULL and receives the new server. Nothing is connected: Redis is reached
 * by each worker thread on its first request. Fails with VMP_EINVAL (bad
 * options, e.g. an unusable :tagfilter: regex or an unknown auth provider)
 * or VMP_ENOMEM. */
int vmp_api_new(const vmp_api_opts *opts, vmp_api **out, vmp_err *err);

/* Binds the listen address and starts serving. VMP_EIO when the address
 * cannot be bound (err says why, e.g. "127.0.0.1:4567: Address already in
 * use"), VMP_EINVAL when already started. */
int vmp_api_start(vmp_api *api, vmp_err *err);

/* The TCP port the server is bound to (after a successful start), else 0. */
int vmp_api_port(const vmp_api *api);
/* The host it listens on ("127.0.0.1"). */
const char *vmp_api_host(const vmp_api *api);

/* Swaps the config (reload). New requests see cfg; requests in flight
 * finish with the old one before this returns, so the caller may free the
 * old config afterwards. cfg is borrowed like opts->config. The listen
 * address does not change. Returns VMP_EINVAL (and keeps the old config)
 * when cfg cannot be used, e.g. a bad :tagfilter: regex. */
int vmp_api_set_config(vmp_api *api, const vmp_config *cfg, vmp_err *err);

/* Stops accepting connections and waits for requests in flight. Safe to
 * call when not started or already stopped. */
void vmp_api_stop(vmp_api *api);

/* Stops (if needed) and frees. NULL does nothing. */
void vmp_api_free(vmp_api *api);

/* Parses a `--listen` argument: "HOST:PORT", "[V6]:PORT", ":PORT" (host
 * left NULL), or "PORT". *host (must point to NULL) receives a malloc'd
 * host or stays NULL; *port the port (1-65535). VMP_EINVAL on bad text. */
int vmp_api_parse_listen(const char *text, char **host, int *port, vmp_err *err);

#endif
