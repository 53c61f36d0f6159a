/* One upstream (backend) connection, as its owner (a client connection) and its pool see it:
 * connect, send the rebuilt request, relay the response through the owner's callbacks, report
 * how an attempt failed, decide whether it can be reused. It decides nothing about retries or
 * redirects. The connection is opaque: owners and the pool use these functions only. */
#ifndef SST_CORE_UPSTREAM_H
#define SST_CORE_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "base/list.h"
#include "core/buf.h"
#include "core/metrics.h"
#include "core/pool.h"
#include "core/transport.h"
#include "http/http1.h"
#include "sidestep/config.h"
#include "sidestep/route.h"

typedef struct sst_worker_s sst_worker_t;

/* What an upstream connection tells its owner (h2o's HTTP client reports to its caller the
 * same way). Every callback runs on the worker's loop from an I/O or timer callback of the
 * upstream, never from inside a call the owner made on it, and only while the owner is
 * attached. `owner` is the pointer given at connect/attach. */
typedef struct sst__upstream_cb_s {
    /* Connected: queue the request now (sst__upstream_send_head). Not called for a connection
     * taken from the pool, which is ready at once. */
    void (*on_ready)(void *owner);
    /* A valid final response head. `head` holds its text until on_done or on_fail. Returns 0,
     * or SST_E2BIG / SST_ENOMEM: the attempt then fails as a bad response. */
    int (*on_head)(void *owner, const sst_h1_response_t *resp, const sst_head_t *head);
    /* Response body bytes (chunk framing removed) in `chunk`, which the owner may reference
     * (sst__wreq_add) to write them on without a copy. */
    void (*on_body)(void *owner, sst_chunk_t *chunk, const char *at, size_t len);
    /* The end of one read's worth of response: write what was gathered. The owner may call
     * sst__upstream_pause here when it cannot take more. */
    void (*on_flush)(void *owner);
    /* The response is complete. The owner ends the exchange with sst__upstream_release. */
    void (*on_done)(void *owner);
    /* The attempt failed in `phase`, for `why` (counted as `kind`). The upstream is already
     * detached and closing: the owner forgets it and decides what follows. */
    void (*on_fail)(void *owner, sst_fail_phase_t phase, sst_m_upfail_t kind, const char *why);
    /* The request's write queue fell to half of limits.buffer after sst__upstream_writable said
     * false: the owner may send more body bytes. */
    void (*on_drained)(void *owner);
    /* Issue 15: the whole request was written try_ms ago (see sst__upstream_connect) and not a
     * byte of response came back. At most once per attempt. The owner either gives the
     * attempt up (sst__upstream_abort with SST_M_UP_TRY_TIMEOUT, then its failure handling) or
     * lets it wait on for timeouts.upstream_response (a request that may not be repeated). */
    void (*on_try_timeout)(void *owner);
} sst__upstream_cb_t;

/* ---- for the owner ----------------------------------------------------------------------------
 */

/* Opens a connection to pool's backend for `owner`. `cfg` is the owner's request config: its
 * limits and timeouts apply while attached (borrowed; the owner keeps it alive). `try_ms` is
 * the route's try_timeout (0: none, docs/routing.md §7.1): a connect still pending then fails
 * as a connect timeout (nothing was sent), and once the request is written on_try_timeout
 * tells the owner when no response byte came within it. `pp` (NULL or len 0: none) is the
 * PROXY header the connection opens with, copied: it describes the connection for its whole
 * life, and the pool hands the connection out again only to a request with the same header.
 * Returns 0 and *out (on_ready or on_fail follows, exactly once, later), or a negative error
 * (nothing opened, no callback). */
int sst__upstream_connect(sst_worker_t *w, sst_pool_t *pool, const sst_config_t *cfg,
                          uint64_t try_ms, const sst__upstream_cb_t *cb, void *owner,
                          const sst_tp_pp_out_t *pp, sst_upstream_t **out);
/* Attaches a connection taken from its pool (sst__pool_take): ready at once, no on_ready;
 * try_ms as for sst__upstream_connect. */
void sst__upstream_attach(sst_upstream_t *u, const sst_config_t *cfg, uint64_t try_ms,
                          const sst__upstream_cb_t *cb, void *owner);
/* Queues the request head, held by `chunk` (a reference is taken) or `heap` (ownership moves
 * to the write, even on error). `head_request`: the response to it has no body. Held back
 * until sst__upstream_flush so that body bytes read with the head leave in the same write.
 * Returns 0 or a negative error. */
int sst__upstream_send_head(sst_upstream_t *u, sst_chunk_t *chunk, char *heap, const char *head,
                            size_t len, bool head_request);
/* Queues body bytes living in `chunk` (may be NULL when n is 0) between an optional prefix
 * (copied) and an optional static suffix. Returns 0 or a negative error. */
int sst__upstream_send_body(sst_upstream_t *u, sst_chunk_t *chunk, const uv_buf_t *bufs, uint32_t n,
                            const char *prefix, size_t prefix_len, const char *suffix,
                            size_t suffix_len);
/* Writes the held-back request head (and the body bytes joined to it). Returns 0 or an error
 * (ENOMEM); a write error becomes a failed attempt through the read side. */
int sst__upstream_flush(sst_upstream_t *u);
/* The whole request is queued. */
void sst__upstream_request_sent(sst_upstream_t *u);
/* False while more than limits.buffer of the request waits to be written (on_drained follows
 * when it is down to half). */
bool sst__upstream_writable(sst_upstream_t *u);
/* Stops / resumes reading the response (the owner's client is slower than the backend). */
void sst__upstream_pause(sst_upstream_t *u);
void sst__upstream_resume(sst_upstream_t *u);
/* The owner is done with the exchange: the connection goes back to its pool when it finished
 * cleanly and the pool takes it, else it closes. No callback after this. */
void sst__upstream_release(sst_upstream_t *u);
/* Closes the connection now, for the owner: counted as a failure of `kind` unless
 * SST_M_UP_FAILS (not the backend's fault). No callback after this. */
void sst__upstream_abort(sst_upstream_t *u, sst_m_upfail_t kind);

/* ---- for the pool ---------------------------------------------------------------------------- */

/* The link an idle connection sits on in its pool, and back. */
sst_link_t *sst__upstream_link(sst_upstream_t *u);
sst_upstream_t *sst__upstream_of_link(sst_link_t *l);
/* When it went back to the pool (uv_now ms). */
uint64_t sst__upstream_idle_since(const sst_upstream_t *u);
/* A peek before reuse: false when the backend closed it meanwhile or sent bytes unasked. */
bool sst__upstream_alive(sst_upstream_t *u);
/* True when the connection opened with the PROXY header `pp` (NULL: with none). */
bool sst__upstream_pp_is(const sst_upstream_t *u, const sst_tp_pp_out_t *pp);
/* Closes an idle connection (the pool forgets it first). */
void sst__upstream_close(sst_upstream_t *u);

#endif
