/* Client connections, as the worker sees them: accepting, deadlines, closing at stop, and the
 * per-worker state of the connection module (its lists, request states, balancer state). A
 * connection itself is opaque here; conn_int.h is for the conn*.c files and their tests. */
#ifndef SST_CORE_CONN_H
#define SST_CORE_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "base/list.h"
#include "core/buf.h"
#include "core/dheap.h"
#include "sidestep/config.h"
#include "sidestep/route.h"

typedef struct sst_worker_s sst_worker_t;
typedef struct sst_listener_s sst_listener_t;
typedef struct sst_conn_s sst_conn_t;
struct sst_req_s;

/* The connection module's per-worker state, embedded in the worker and touched only by
 * conn*.c (sst__conns_*) on the worker's thread. */
typedef struct sst_conns_s {
    sst_link_t all;  /* every client connection */
    sst_link_t idle; /* keep-alive connections waiting for a request, most recent first */
    size_t n_open;   /* connections not closing yet */
    struct sst_req_s *free_reqs;
    size_t n_free_reqs;
    sst_lb_state_t lb[SST_MAX_REGIONS]; /* balancer state of the config in force */
    /* Issue 15: when each backend of the config in force last sent this worker a response
     * head (uv_now ms, 0: never): after a timeout, a retry goes only to a backend that showed
     * life since the failed attempt began (docs/routing.md §7.1). */
    uint64_t alive_ms[SST_MAX_BACKENDS];
    /* request body bytes queued for an upstream during one parse pass of one connection (a
     * pass never interleaves with another connection's) */
    uv_buf_t out_bufs[SST_WREQ_BUFS];
    uint32_t n_out_bufs;
    char scratch[4096]; /* generated answers are built here and sent before the call returns */
} sst_conns_t;

void sst__conns_init(sst_conns_t *cs);
/* A new config is in force: the balancer starts over. */
void sst__conns_config_changed(sst_conns_t *cs);
/* Frees the request-state free list (the worker's end: every connection is gone). */
void sst__conns_free(sst_conns_t *cs);

/* Takes the connection waiting on `l` (reject: answer 503 and close, over the connection
 * limit). Returns 0, or a negative error when no connection could be set up: the connection
 * is still waiting in libuv and the caller deals with it. */
int sst__conn_accept(sst_worker_t *w, sst_listener_t *l, bool reject);
void sst__conn_close(sst_conn_t *c);
/* Closes up to `max` of the oldest idle keep-alive connections; returns how many it closed. */
size_t sst__conn_evict_idle(sst_worker_t *w, size_t max);
/* Graceful stop: idle connections close (after their queued answers). */
void sst__conn_shutdown_idle(sst_worker_t *w);
/* Stop now: every connection closes. */
void sst__conn_close_all(sst_worker_t *w);
/* Called by the worker when a connection's deadline passed (n is already out of the heap). */
void sst__conn_on_deadline(sst_dnode_t *n);

#endif
